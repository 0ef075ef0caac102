using System.Globalization;
using System.Text;

namespace Trellis.Api;

/// <summary>Go-style durations as written in resources: "100ms", "5s", "1m30s", "2h", "1.5s".</summary>
public static class Durations
{
    private const long TicksPerMicrosecond = TimeSpan.TicksPerMillisecond / 1000;

    /// <summary>Parses a duration: an optional sign, then one or more decimal numbers each followed by a unit
    /// (ns, us, µs, ms, s, m, h). "0" alone is zero. Nanoseconds round to the nearest 100 ns tick.</summary>
    public static bool TryParse(string s, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(s))
        {
            return false;
        }

        var text = s.Trim();
        var negative = false;
        var i = 0;
        if (text[0] is '+' or '-')
        {
            negative = text[0] == '-';
            i = 1;
        }

        if (text.AsSpan(i).SequenceEqual("0"))
        {
            return true;
        }

        if (i >= text.Length)
        {
            return false;
        }

        decimal totalTicks = 0;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'))
            {
                i++;
            }

            if (i == start || !decimal.TryParse(text.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            var unitStart = i;
            while (i < text.Length && !char.IsAsciiDigit(text[i]) && text[i] != '.')
            {
                i++;
            }

            decimal ticksPerUnit = text[unitStart..i] switch
            {
                "ns" => 0.01m,
                "us" or "µs" or "μs" => TicksPerMicrosecond,
                "ms" => TimeSpan.TicksPerMillisecond,
                "s" => TimeSpan.TicksPerSecond,
                "m" => TimeSpan.TicksPerMinute,
                "h" => TimeSpan.TicksPerHour,
                _ => -1m,
            };
            if (ticksPerUnit < 0)
            {
                return false;
            }

            try
            {
                totalTicks += number * ticksPerUnit;
            }
            catch (OverflowException)
            {
                return false;
            }

            if (totalTicks > TimeSpan.MaxValue.Ticks)
            {
                return false;
            }
        }

        var ticks = (long)decimal.Round(totalTicks, MidpointRounding.AwayFromZero);
        value = TimeSpan.FromTicks(negative ? -ticks : ticks);
        return true;
    }

    /// <summary>Formats compactly, leaving out zero parts: "2h", "1m30s", "1.5s", "100ms", "250us", "0s".</summary>
    public static string Format(TimeSpan value)
    {
        if (value == TimeSpan.Zero)
        {
            return "0s";
        }

        var sb = new StringBuilder();
        var ticks = value.Ticks;
        if (ticks < 0)
        {
            sb.Append('-');
            ticks = ticks == long.MinValue ? long.MaxValue : -ticks;
        }

        if (ticks < TimeSpan.TicksPerSecond)
        {
            if (ticks >= TimeSpan.TicksPerMillisecond)
            {
                AppendFraction(sb, ticks, TimeSpan.TicksPerMillisecond, "ms");
            }
            else if (ticks >= TicksPerMicrosecond)
            {
                AppendFraction(sb, ticks, TicksPerMicrosecond, "us");
            }
            else
            {
                sb.Append((ticks * 100).ToString(CultureInfo.InvariantCulture)).Append("ns");
            }

            return sb.ToString();
        }

        var hours = ticks / TimeSpan.TicksPerHour;
        ticks %= TimeSpan.TicksPerHour;
        var minutes = ticks / TimeSpan.TicksPerMinute;
        ticks %= TimeSpan.TicksPerMinute;
        if (hours > 0)
        {
            sb.Append(hours.ToString(CultureInfo.InvariantCulture)).Append('h');
        }

        if (minutes > 0)
        {
            sb.Append(minutes.ToString(CultureInfo.InvariantCulture)).Append('m');
        }

        if (ticks > 0)
        {
            AppendFraction(sb, ticks, TimeSpan.TicksPerSecond, "s");
        }

        return sb.ToString();
    }

    private static void AppendFraction(StringBuilder sb, long ticks, long ticksPerUnit, string unit)
    {
        var whole = ticks / ticksPerUnit;
        var rest = ticks % ticksPerUnit;
        sb.Append(whole.ToString(CultureInfo.InvariantCulture));
        if (rest != 0)
        {
            var digits = ticksPerUnit.ToString(CultureInfo.InvariantCulture).Length - 1;
            var fraction = rest.ToString(CultureInfo.InvariantCulture).PadLeft(digits, '0').TrimEnd('0');
            sb.Append('.').Append(fraction);
        }

        sb.Append(unit);
    }
}
