using System.Collections.Frozen;
using System.Text.RegularExpressions;
using Trellis.Proxy.Model;

namespace Trellis.Proxy.Http;

/// <summary>Header lookup for routing, implemented by each protocol's request type. Names are lower case.</summary>
public interface IRequestHeaders
{
    /// <summary>The value of the first header with this name, or null.</summary>
    string? Get(string name);
}

/// <summary>What routing looks at: method, authority (Host or :authority), path with query, headers.</summary>
public readonly record struct RouteRequest(string Method, string Authority, string Path, IRequestHeaders Headers);

/// <summary>
/// Route selection on the compiled model, protocol independent: virtual host by authority (exact, then *.suffix,
/// then prefix.*, then *; a port in the authority is tried with and without), then the first route of the host
/// whose path, method, header and query matches all hold.
/// </summary>
public static class Router
{
    internal static Regex CompileWhole(string pattern) =>
        new($"^(?:{pattern})$", RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    /// <summary>The route for a request, or null (no virtual host or no route matched: answer 404 no_route).</summary>
    public static RouteModel? Match(RouteTable table, in RouteRequest request)
    {
        var vhost = table.Index.Find(request.Authority);
        return vhost is null ? null : Match(vhost, request);
    }

    /// <summary>The first route of a virtual host that matches, or null.</summary>
    public static RouteModel? Match(VirtualHostModel vhost, in RouteRequest request)
    {
        var routes = vhost.Routes;
        for (var i = 0; i < routes.Count; i++)
        {
            if (Matches(routes[i].Match, request))
            {
                return routes[i];
            }
        }
        return null;
    }

    /// <summary>Picks a cluster of the route by weight; <paramref name="roll"/> is a uniform random number.</summary>
    public static string? PickCluster(RouteModel route, uint roll)
    {
        var clusters = route.Clusters;
        if (clusters.Count <= 1)
        {
            return clusters.Count == 0 ? null : clusters[0].Cluster;
        }
        long total = 0;
        for (var i = 0; i < clusters.Count; i++)
        {
            total += Math.Max(0, clusters[i].Weight);
        }
        if (total == 0)
        {
            return clusters[0].Cluster;
        }
        var ticket = roll % total;
        for (var i = 0; i < clusters.Count; i++)
        {
            ticket -= Math.Max(0, clusters[i].Weight);
            if (ticket < 0)
            {
                return clusters[i].Cluster;
            }
        }
        return clusters[^1].Cluster;
    }

    internal static bool Matches(RouteMatchModel match, in RouteRequest request)
    {
        var path = request.Path;
        var q = path.IndexOf('?', StringComparison.Ordinal);
        var pathOnly = q < 0 ? path.AsSpan() : path.AsSpan(0, q);
        var ok = match.PathKind switch
        {
            PathMatchKind.Prefix => pathOnly.StartsWith(match.Path, StringComparison.Ordinal),
            PathMatchKind.Exact => pathOnly.SequenceEqual(match.Path),
            PathMatchKind.Regex => match.CompiledPath!.IsMatch(pathOnly),
            _ => false,
        };
        if (!ok)
        {
            return false;
        }
        foreach (var h in match.Headers)
        {
            if (!ValueMatches(h, HeaderValue(request, h.Name)))
            {
                return false;
            }
        }
        if (match.QueryParameters.Count > 0)
        {
            var query = q < 0 ? ReadOnlySpan<char>.Empty : path.AsSpan(q + 1);
            foreach (var p in match.QueryParameters)
            {
                if (!ValueMatches(p, QueryValue(query, p.Name)))
                {
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>A header's value; the pseudo-headers :method, :authority and :path read the request line.</summary>
    private static string? HeaderValue(in RouteRequest request, string name) => name switch
    {
        ":method" => request.Method,
        ":authority" => request.Authority,
        ":path" => request.Path,
        _ => request.Headers.Get(name),
    };

    private static bool ValueMatches(HeaderMatchModel m, string? value)
    {
        bool hit;
        if (value is null)
        {
            hit = false;
        }
        else if (m.Exact is { } exact)
        {
            hit = string.Equals(exact, value, StringComparison.Ordinal);
        }
        else if (m.CompiledRegex is { } regex)
        {
            hit = regex.IsMatch(value);
        }
        else
        {
            hit = true; // present match
        }
        return hit != m.Invert;
    }

    /// <summary>The first value of a query parameter (not percent-decoded), "" when present without a value, or null.</summary>
    internal static string? QueryValue(ReadOnlySpan<char> query, string name)
    {
        while (!query.IsEmpty)
        {
            var amp = query.IndexOf('&');
            var pair = amp < 0 ? query : query[..amp];
            var eq = pair.IndexOf('=');
            var key = eq < 0 ? pair : pair[..eq];
            if (key.SequenceEqual(name))
            {
                return eq < 0 ? "" : pair[(eq + 1)..].ToString();
            }
            query = amp < 0 ? ReadOnlySpan<char>.Empty : query[(amp + 1)..];
        }
        return null;
    }
}

/// <summary>Virtual host lookup for one route table: exact domains, suffix wildcards (longest first), prefix wildcards, "*".</summary>
internal sealed class VirtualHostIndex
{
    private readonly FrozenDictionary<string, VirtualHostModel> _exact;
    private readonly FrozenDictionary<string, VirtualHostModel> _byName;
    private readonly (string Suffix, VirtualHostModel Host)[] _suffixes;
    private readonly (string Prefix, VirtualHostModel Host)[] _prefixes;
    private readonly VirtualHostModel? _any;

    public VirtualHostIndex(IReadOnlyList<VirtualHostModel> hosts)
    {
        var exact = new Dictionary<string, VirtualHostModel>(StringComparer.OrdinalIgnoreCase);
        var suffixes = new List<(string, VirtualHostModel)>();
        var prefixes = new List<(string, VirtualHostModel)>();
        var byName = new Dictionary<string, VirtualHostModel>(StringComparer.Ordinal);
        foreach (var h in hosts)
        {
            byName.TryAdd(h.Name, h);
            foreach (var d in h.Domains)
            {
                if (d == "*")
                {
                    _any ??= h;
                }
                else if (d.StartsWith('*'))
                {
                    suffixes.Add((d[1..], h));
                }
                else if (d.EndsWith('*'))
                {
                    prefixes.Add((d[..^1], h));
                }
                else
                {
                    exact.TryAdd(d, h);
                }
            }
        }
        _exact = exact.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        _byName = byName.ToFrozenDictionary(StringComparer.Ordinal);
        _suffixes = [.. suffixes.OrderByDescending(s => s.Item1.Length)];
        _prefixes = [.. prefixes.OrderByDescending(p => p.Item1.Length)];
    }

    /// <summary>The virtual host with this name (explicit listeners select theirs by service port name).</summary>
    public VirtualHostModel? ByName(string name) => _byName.GetValueOrDefault(name);

    public VirtualHostModel? Find(string authority)
    {
        if (FindExactOrWildcard(authority) is { } host)
        {
            return host;
        }
        // "name:port" may be listed without its port.
        var colon = authority.LastIndexOf(':');
        if (colon > 0 && authority.IndexOf(']', StringComparison.Ordinal) < colon && FindExactOrWildcard(authority[..colon]) is { } bare)
        {
            return bare;
        }
        return _any;
    }

    private VirtualHostModel? FindExactOrWildcard(string authority)
    {
        if (_exact.TryGetValue(authority, out var host))
        {
            return host;
        }
        foreach (var (suffix, h) in _suffixes)
        {
            if (authority.Length > suffix.Length && authority.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                return h;
            }
        }
        foreach (var (prefix, h) in _prefixes)
        {
            if (authority.Length > prefix.Length && authority.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return h;
            }
        }
        return null;
    }
}
