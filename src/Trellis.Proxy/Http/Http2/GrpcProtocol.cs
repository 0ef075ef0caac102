using System.Globalization;
using System.Text;

namespace Trellis.Proxy.Http.Http2;

/// <summary>The parts of the gRPC-over-HTTP/2 protocol the proxy reads or writes.</summary>
internal static class GrpcProtocol
{
    public const string StatusHeader = "grpc-status";
    public const string MessageHeader = "grpc-message";
    public const string TimeoutHeader = "grpc-timeout";
    public const string ContentType = "application/grpc";

    private const int MaxTimeoutDigits = 8;
    private static readonly string[] StatusText = [.. Enumerable.Range(0, 17).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    /// <summary>True for application/grpc and its variants (application/grpc+proto, application/grpc-web...).</summary>
    public static bool IsGrpc(string? contentType) =>
        contentType is not null && contentType.StartsWith(ContentType, StringComparison.OrdinalIgnoreCase);

    /// <summary>The text of a grpc-status value (cached for the 17 defined codes).</summary>
    public static string StatusString(int status) =>
        (uint)status < (uint)StatusText.Length ? StatusText[status] : status.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Parses a grpc-timeout value: 1 to 8 ASCII digits and a unit, H (hours), M (minutes), S (seconds),
    /// m (milliseconds), u (microseconds), n (nanoseconds). False for anything else (the header is then ignored).
    /// </summary>
    public static bool TryParseTimeout(ReadOnlySpan<char> value, out TimeSpan timeout)
    {
        timeout = default;
        if (value.Length < 2 || value.Length > MaxTimeoutDigits + 1)
        {
            return false;
        }
        long amount = 0;
        foreach (var c in value[..^1])
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
            amount = (amount * 10) + (c - '0');
        }
        long? ticks = value[^1] switch
        {
            'H' => amount * TimeSpan.TicksPerHour,
            'M' => amount * TimeSpan.TicksPerMinute,
            'S' => amount * TimeSpan.TicksPerSecond,
            'm' => amount * TimeSpan.TicksPerMillisecond,
            'u' => amount * TimeSpan.TicksPerMicrosecond,
            'n' => amount / TimeSpan.NanosecondsPerTick,
            _ => null,
        };
        if (ticks is not { } t)
        {
            return false;
        }
        timeout = TimeSpan.FromTicks(t);
        return true;
    }

    /// <summary>
    /// A grpc-timeout value for a positive duration, in the finest unit that fits in 8 digits (rounded up, so the
    /// upstream never gets more time than is left).
    /// </summary>
    public static string FormatTimeout(TimeSpan timeout)
    {
        var ticks = Math.Max(1, timeout.Ticks);
        ReadOnlySpan<(long Ticks, char Unit)> units =
        [
            (TimeSpan.TicksPerMicrosecond, 'u'),
            (TimeSpan.TicksPerMillisecond, 'm'),
            (TimeSpan.TicksPerSecond, 'S'),
            (TimeSpan.TicksPerMinute, 'M'),
            (TimeSpan.TicksPerHour, 'H'),
        ];
        foreach (var (size, unit) in units)
        {
            var amount = (ticks + size - 1) / size;
            if (amount <= 99_999_999)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{amount}{unit}");
            }
        }
        return "99999999H";
    }

    /// <summary>
    /// grpc-message encoding: UTF-8, with every byte outside printable ASCII (0x20-0x7E) and '%' written as %XX.
    /// </summary>
    public static string EncodeMessage(string message)
    {
        var clean = true;
        foreach (var c in message)
        {
            if (c is < ' ' or > '~' or '%')
            {
                clean = false;
                break;
            }
        }
        if (clean)
        {
            return message;
        }
        var bytes = Encoding.UTF8.GetBytes(message);
        var sb = new StringBuilder(bytes.Length + 16);
        foreach (var b in bytes)
        {
            if (b is < 0x20 or > 0x7E or (byte)'%')
            {
                sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
            else
            {
                sb.Append((char)b);
            }
        }
        return sb.ToString();
    }

    /// <summary>The grpc-status a gRPC client derives from an HTTP status (gRPC's http-grpc-status-mapping).</summary>
    public static int StatusFromHttp(int httpStatus) => httpStatus switch
    {
        400 => 13, // INTERNAL
        401 => 16, // UNAUTHENTICATED
        403 => 7, // PERMISSION_DENIED
        404 => 12, // UNIMPLEMENTED
        429 or 502 or 503 or 504 => 14, // UNAVAILABLE
        _ => 2, // UNKNOWN
    };
}
