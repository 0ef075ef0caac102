using System.Text;

namespace Trellis.Cli;

/// <summary>Plain, aligned columns like kubectl's tables.</summary>
internal static class Table
{
    public static string Render(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = new List<IReadOnlyList<string>> { headers };
        all.AddRange(rows);
        var widths = new int[headers.Count];
        foreach (var row in all)
        {
            for (var i = 0; i < widths.Length && i < row.Count; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }
        var sb = new StringBuilder();
        foreach (var row in all)
        {
            for (var i = 0; i < widths.Length; i++)
            {
                var cell = i < row.Count ? row[i] : "";
                sb.Append(i == widths.Length - 1 ? cell : cell.PadRight(widths[i] + 3));
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    public static string Age(DateTimeOffset since, DateTimeOffset now)
    {
        var d = now - since;
        return d.TotalDays >= 1 ? $"{(int)d.TotalDays}d" : d.TotalHours >= 1 ? $"{(int)d.TotalHours}h" : d.TotalMinutes >= 1 ? $"{(int)d.TotalMinutes}m" : $"{Math.Max(0, (int)d.TotalSeconds)}s";
    }
}
