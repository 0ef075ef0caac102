namespace Trellis.Api.Validation;

/// <summary>Name rules shared by the reader and the validator.</summary>
internal static class Names
{
    public const string DnsLabelRule =
        "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

    /// <summary>RFC 1123 label: lower-case alphanumerics and '-', alphanumeric at both ends, 1-63 characters.</summary>
    public static bool IsDnsLabel(string? s)
    {
        if (string.IsNullOrEmpty(s) || s.Length > 63)
        {
            return false;
        }

        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            {
                return false;
            }
        }

        return s[0] != '-' && s[^1] != '-';
    }

    /// <summary>RFC 1123 subdomain: dot-separated labels, at most 253 characters.</summary>
    public static bool IsDnsName(string? s) =>
        !string.IsNullOrEmpty(s) && s.Length <= 253 && s.Split('.').All(IsDnsLabel);

    /// <summary>HTTP token (RFC 9110 tchar), as header names must be.</summary>
    public static bool IsToken(string? s)
    {
        if (string.IsNullOrEmpty(s))
        {
            return false;
        }

        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Edit distance, for "did you mean" hints.</summary>
    public static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            prev[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }

            (prev, cur) = (cur, prev);
        }

        return prev[b.Length];
    }

    /// <summary>The closest candidate when it is close enough to be a likely typo.</summary>
    public static string? Closest(string word, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var d = Distance(word, candidate);
            if (d < bestDistance)
            {
                best = candidate;
                bestDistance = d;
            }
        }

        var limit = word.Length <= 3 ? 1 : Math.Min(3, Math.Max(2, word.Length / 3));
        return best is not null && bestDistance <= limit ? best : null;
    }
}
