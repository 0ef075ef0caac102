using System.Globalization;
using Trellis.Proxy.Model;

namespace Trellis.Proxy.Http;

/// <summary>
/// What a route changes in the request line, protocol independent: the path sent upstream (prefix rewrite) and
/// the Location of a redirect. Paths are request targets as received (path and query, not decoded).
/// </summary>
internal static class RouteRewrites
{
    /// <summary>
    /// The upstream path: with a prefix rewrite, the matched prefix (prefix match) or the whole path (exact match)
    /// is swapped for the rewrite and the rest, query included, is kept; otherwise the target unchanged.
    /// </summary>
    public static string UpstreamPath(RouteModel? route, string target)
    {
        if (route?.PrefixRewrite is not { } rewrite)
        {
            return target;
        }
        return SwapMatched(route.Match, rewrite, target);
    }

    /// <summary>The Location of a redirect answer for a request to <paramref name="authority"/> + <paramref name="target"/>.</summary>
    public static string RedirectLocation(RouteModel route, RedirectModel redirect, string scheme, string authority, string target)
    {
        var (host, port) = SplitAuthority(authority);
        host = redirect.Host ?? host;
        if (redirect.Port is { } p)
        {
            port = p.ToString(CultureInfo.InvariantCulture);
        }
        var path = target;
        if (redirect.Path is { } newPath)
        {
            var q = target.IndexOf('?', StringComparison.Ordinal);
            path = newPath.Contains('?', StringComparison.Ordinal) || q < 0 ? newPath : newPath + target[q..];
        }
        else if (redirect.PrefixRewrite is { } rewrite)
        {
            path = SwapMatched(route.Match, rewrite, target);
        }
        var s = redirect.Scheme ?? scheme;
        return port is null ? $"{s}://{host}{path}" : $"{s}://{host}:{port}{path}";
    }

    private static string SwapMatched(RouteMatchModel match, string rewrite, string target)
    {
        switch (match.PathKind)
        {
            case PathMatchKind.Prefix when target.StartsWith(match.Path, StringComparison.Ordinal):
                return string.Concat(rewrite, target.AsSpan(match.Path.Length));
            case PathMatchKind.Exact:
                var q = target.IndexOf('?', StringComparison.Ordinal);
                return q < 0 ? rewrite : string.Concat(rewrite, target.AsSpan(q));
            default:
                return target;
        }
    }

    /// <summary>Host and port of an authority ("name", "name:80", "[::1]:80"); port null when absent.</summary>
    private static (string Host, string? Port) SplitAuthority(string authority)
    {
        var colon = authority.LastIndexOf(':');
        if (colon > 0 && authority.IndexOf(']', StringComparison.Ordinal) < colon)
        {
            return (authority[..colon], authority[(colon + 1)..]);
        }
        return (authority, null);
    }
}
