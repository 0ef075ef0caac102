using System.Globalization;

namespace Trellis.Api.Serialization;

/// <summary>Builds and walks field paths such as spec.rules[0].backendRefs[1].name or metadata.labels["app.kubernetes.io/name"].</summary>
internal static class FieldPath
{
    public static string Field(string parent, string name) => parent.Length == 0 ? name : parent + "." + name;

    public static string Index(string parent, int index) => parent + "[" + index.ToString(CultureInfo.InvariantCulture) + "]";

    /// <summary>Map key: dotted when it is a plain word, quoted in brackets otherwise.</summary>
    public static string Key(string parent, string key) =>
        key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')
            ? Field(parent, key)
            : parent + "[\"" + key.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"]";

    /// <summary>The path one step up; "" for a top-level field.</summary>
    public static string Parent(string path)
    {
        if (path.Length == 0)
        {
            return "";
        }

        if (path[^1] == ']')
        {
            // Find the matching '[' outside quotes by scanning from the start.
            var lastOpen = -1;
            var inQuotes = false;
            for (var i = 0; i < path.Length; i++)
            {
                var c = path[i];
                if (inQuotes)
                {
                    if (c == '\\')
                    {
                        i++;
                    }
                    else if (c == '"')
                    {
                        inQuotes = false;
                    }
                }
                else if (c == '"')
                {
                    inQuotes = true;
                }
                else if (c == '[')
                {
                    lastOpen = i;
                }
            }

            return lastOpen <= 0 ? "" : path[..lastOpen];
        }

        var dot = -1;
        var quoted = false;
        for (var i = 0; i < path.Length; i++)
        {
            var c = path[i];
            if (quoted)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == '.')
            {
                dot = i;
            }
        }

        return dot < 0 ? "" : path[..dot];
    }
}
