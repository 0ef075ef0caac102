using System.Text;

namespace Trellis.Proxy.Http.Http1;

/// <summary>Character classes and small helpers of HTTP/1.1 syntax (RFC 9110 section 5.6, RFC 9112).</summary>
internal static class HttpSyntax
{
    private static readonly bool[] TokenChars = BuildTokenChars();

    private static bool[] BuildTokenChars()
    {
        var t = new bool[128];
        for (var c = 'a'; c <= 'z'; c++)
        {
            t[c] = true;
            t[char.ToUpperInvariant(c)] = true;
        }
        for (var c = '0'; c <= '9'; c++)
        {
            t[c] = true;
        }
        foreach (var c in "!#$%&'*+-.^_`|~")
        {
            t[c] = true;
        }
        return t;
    }

    /// <summary>tchar: the characters of a method or a field name.</summary>
    public static bool IsToken(ReadOnlySpan<byte> s)
    {
        if (s.IsEmpty)
        {
            return false;
        }
        foreach (var b in s)
        {
            if (b >= 128 || !TokenChars[b])
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>field-value characters: visible ASCII, space, tab and obs-text; never CR, LF, NUL or other controls.</summary>
    public static bool IsFieldValue(ReadOnlySpan<byte> s)
    {
        foreach (var b in s)
        {
            if ((b < 0x20 && b != (byte)'\t') || b == 0x7F)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>A request-target: visible ASCII only (no spaces, controls or raw non-ASCII).</summary>
    public static bool IsTarget(ReadOnlySpan<byte> s)
    {
        if (s.IsEmpty)
        {
            return false;
        }
        foreach (var b in s)
        {
            if (b <= 0x20 || b >= 0x7F)
            {
                return false;
            }
        }
        return true;
    }

    public static ReadOnlySpan<byte> TrimOws(ReadOnlySpan<byte> s)
    {
        var (start, end) = OwsBounds(s);
        return s[start..end];
    }

    /// <summary>Where the content of <paramref name="s"/> starts and ends once optional whitespace (SP, HTAB) is left out.</summary>
    public static (int Start, int End) OwsBounds(ReadOnlySpan<byte> s)
    {
        var start = 0;
        var end = s.Length;
        while (start < end && (s[start] == ' ' || s[start] == '\t'))
        {
            start++;
        }
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        {
            end--;
        }
        return (start, end);
    }

    /// <summary>ASCII case-insensitive comparison of bytes with a lower-case ASCII string.</summary>
    public static bool EqualsLower(ReadOnlySpan<byte> bytes, string lower)
    {
        if (bytes.Length != lower.Length)
        {
            return false;
        }
        for (var i = 0; i < bytes.Length; i++)
        {
            var b = bytes[i];
            if ((uint)(b - 'A') <= 'Z' - 'A')
            {
                b |= 0x20;
            }
            if (b != lower[i])
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>ASCII case-insensitive comparison of two byte spans.</summary>
    public static bool EqualsIgnoreCase(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => Ascii.EqualsIgnoreCase(a, b);

    /// <summary>
    /// Parses a Content-Length value, which may be a list ("5, 5") as some senders merge repeated fields.
    /// Every element must be digits only and all must be equal (RFC 9110 8.6: identical values may be taken as one;
    /// differing values are an error). Returns -1 when invalid or conflicting.
    /// </summary>
    public static long ParseContentLength(ReadOnlySpan<byte> value)
    {
        long result = -1;
        while (true)
        {
            var comma = value.IndexOf((byte)',');
            var element = TrimOws(comma < 0 ? value : value[..comma]);
            if (element.IsEmpty || element.Length > 18)
            {
                return -1;
            }
            long n = 0;
            foreach (var b in element)
            {
                if ((uint)(b - '0') > 9)
                {
                    return -1;
                }
                n = (n * 10) + (b - '0');
            }
            if (result >= 0 && n != result)
            {
                return -1;
            }
            result = n;
            if (comma < 0)
            {
                return result;
            }
            value = value[(comma + 1)..];
        }
    }

    /// <summary>
    /// The next comma-separated, OWS-trimmed, non-empty element of a list value at or after <paramref name="from"/>:
    /// returns where to continue (after the element's comma) and sets its range; returns -1 when none is left.
    /// </summary>
    public static int NextListElement(ReadOnlySpan<byte> value, int from, out Range element)
    {
        while (from < value.Length)
        {
            var rest = value[from..];
            var comma = rest.IndexOf((byte)',');
            var (start, end) = OwsBounds(comma < 0 ? rest : rest[..comma]);
            var next = comma < 0 ? value.Length : from + comma + 1;
            if (end > start)
            {
                element = new Range(from + start, from + end);
                return next;
            }
            from = next;
        }
        element = default;
        return -1;
    }

    /// <summary>64-bit FNV-1a: a stable hash for ring-hash keys (header, cookie or address bytes).</summary>
    public static ulong Fnv1a(ReadOnlySpan<byte> data)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in data)
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return hash;
    }
}
