using System.Globalization;
using Envoy.Config.Cluster.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Http.Fault.V3;
using Envoy.Extensions.Filters.Http.LocalRatelimit.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Extensions.Filters.Network.TcpProxy.V3;
using Envoy.Type.Matcher.V3;
using Envoy.Type.V3;
using Google.Protobuf.WellKnownTypes;
using Trellis.ControlPlane.XdsServer;
using Trellis.Xds;
using UpstreamHttpProtocolOptions = Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions;

namespace Trellis.ControlPlane.Admin;

/// <summary>GET /api/v1/proxies/{node}/config: what the control plane serves one connected node, summarized.</summary>
internal sealed record ProxyConfigSummary(
    string Node, string Protocol, string State, string? SnapshotVersion, IReadOnlyList<ProxyConfigTypeState> Types,
    IReadOnlyList<ListenerSummary> Listeners, IReadOnlyList<RouteSummary> Routes, IReadOnlyList<ClusterSummary> Clusters,
    IReadOnlyList<EndpointSummary> Endpoints);

/// <summary>One xDS type for the node: its subscription and what it did with the last response (ACKED, NACKED, PENDING, NONE).</summary>
internal sealed record ProxyConfigTypeState(
    string Type, string TypeUrl, string State, bool Wildcard, IReadOnlyList<string> Subscribed, string? SentVersion,
    string? AckedVersion, string? NackedVersion, string? NackError);

/// <summary>A listener: its socket address ("api" for a proxyless client's api listener) and its filter chains.</summary>
internal sealed record ListenerSummary(string Name, string Address, string Direction, IReadOnlyList<ChainSummary> Chains);

/// <summary>A filter chain: matched on a destination port (null = any), carrying HTTP to a route table or TCP to a cluster.</summary>
internal sealed record ChainSummary(string Name, int? DestinationPort, string Protocol, string Target, IReadOnlyList<string> HttpFilters);

/// <summary>One route of a virtual host of a route table, with its match, action and per-route filters as text.</summary>
internal sealed record RouteSummary(string Table, string VirtualHost, IReadOnlyList<string> Domains, string Name, string Match, string Action, IReadOnlyList<string> Filters);

internal sealed record ClusterSummary(string Name, string Type, string Lb, string Breakers, string? Outlier, int? MaxRequestsPerConnection);

internal sealed record EndpointSummary(string Cluster, string Address, string Health, int Priority, string Locality, int Weight);

/// <summary>
/// Builds <see cref="ProxyConfigSummary"/> from the node's view of the current snapshot, limited to what its
/// subscriptions hold (a wildcard holds everything of the type).
/// </summary>
internal static class ProxyConfigView
{
    private static readonly (string Url, string Short)[] Types =
    [
        (TypeUrls.Listener, "LDS"), (TypeUrls.RouteConfiguration, "RDS"), (TypeUrls.Cluster, "CDS"), (TypeUrls.ClusterLoadAssignment, "EDS"),
    ];

    public static ProxyConfigSummary Build(ProxyConnection connection, XdsSnapshot published)
    {
        var snapshot = published.ForClient(connection.View);
        var view = connection.ToView(published.Version);
        var types = new List<ProxyConfigTypeState>();
        foreach (var (url, shortName) in Types)
        {
            var sync = view.Types.FirstOrDefault(t => t.TypeUrl == url);
            var subscription = connection.Subscription(url);
            var (_, state, _) = connection.ResourceState(url);
            types.Add(new ProxyConfigTypeState(shortName, url, state, subscription?.Wildcard ?? false, subscription?.Names ?? [],
                sync?.SentVersion, sync?.AckedVersion, sync?.NackedVersion, sync?.NackError));
        }

        var listeners = new List<ListenerSummary>();
        var routes = new List<RouteSummary>();
        foreach (var l in Held<Listener>(connection, snapshot, TypeUrls.Listener))
        {
            listeners.Add(Listener(l, routes));
        }
        foreach (var rc in Held<RouteConfiguration>(connection, snapshot, TypeUrls.RouteConfiguration))
        {
            AddRoutes(rc, routes);
        }
        var clusters = new List<ClusterSummary>();
        var endpoints = new List<EndpointSummary>();
        foreach (var c in Held<Cluster>(connection, snapshot, TypeUrls.Cluster))
        {
            clusters.Add(Cluster(c));
            if (c.LoadAssignment is { } inline)
            {
                AddEndpoints(c.Name, inline, endpoints);
            }
        }
        foreach (var cla in Held<ClusterLoadAssignment>(connection, snapshot, TypeUrls.ClusterLoadAssignment))
        {
            AddEndpoints(cla.ClusterName, cla, endpoints);
        }
        return new ProxyConfigSummary(connection.NodeId, connection.Protocol, view.State, view.SnapshotVersion, types, listeners, routes, clusters, endpoints);
    }

    /// <summary>The resources of a type that the node's subscription holds, by name.</summary>
    private static IEnumerable<T> Held<T>(ProxyConnection connection, XdsSnapshot snapshot, string typeUrl) where T : Google.Protobuf.IMessage<T>, new()
    {
        if (connection.Subscription(typeUrl) is not { } subscription)
        {
            return [];
        }
        var items = snapshot.Get(typeUrl).Items;
        var names = subscription.Wildcard ? items.Keys.Concat(subscription.Names).Distinct(StringComparer.Ordinal) : subscription.Names;
        return names.Order(StringComparer.Ordinal).Where(items.ContainsKey).Select(n => items[n].Any.Unpack<T>());
    }

    private static ListenerSummary Listener(Listener l, List<RouteSummary> routes)
    {
        var chains = new List<ChainSummary>();
        if (l.ApiListener?.ApiListener_ is { } api && api.Is(HttpConnectionManager.Descriptor))
        {
            chains.Add(HttpChain("api", null, api.Unpack<HttpConnectionManager>(), routes));
        }
        foreach (var chain in l.FilterChains)
        {
            chains.Add(Chain(chain, routes));
        }
        if (l.DefaultFilterChain is { } fallback)
        {
            chains.Add(Chain(fallback, routes));
        }
        var address = l.Address?.SocketAddress is { } sa ? $"{sa.Address}:{sa.PortValue}" : l.ApiListener is not null ? "api" : "";
        return new ListenerSummary(l.Name, address, l.TrafficDirection.ToString().ToLowerInvariant(), chains);
    }

    private static ChainSummary Chain(FilterChain chain, List<RouteSummary> routes)
    {
        int? port = chain.FilterChainMatch?.DestinationPort is { } p ? (int)p : null;
        var name = chain.Name.Length > 0 ? chain.Name : "default";
        var filter = chain.Filters.FirstOrDefault();
        if (filter?.TypedConfig is { } any && any.Is(HttpConnectionManager.Descriptor))
        {
            return HttpChain(name, port, any.Unpack<HttpConnectionManager>(), routes);
        }
        if (filter?.TypedConfig is { } tcp && tcp.Is(TcpProxy.Descriptor))
        {
            return new ChainSummary(name, port, "tcp", tcp.Unpack<TcpProxy>().Cluster, []);
        }
        return new ChainSummary(name, port, "unknown", filter?.TypedConfig?.TypeUrl ?? "", []);
    }

    private static ChainSummary HttpChain(string name, int? port, HttpConnectionManager hcm, List<RouteSummary> routes)
    {
        string target;
        if (hcm.RouteConfig is { } inline)
        {
            target = inline.Name;
            AddRoutes(inline, routes);
        }
        else
        {
            target = hcm.Rds?.RouteConfigName ?? "";
        }
        var filters = hcm.HttpFilters.Select(f => f.IsOptional ? f.Name + " (optional)" : f.Name).ToList();
        return new ChainSummary(name, port, "http", target, filters);
    }

    private static void AddRoutes(RouteConfiguration rc, List<RouteSummary> routes)
    {
        foreach (var vh in rc.VirtualHosts)
        {
            foreach (var r in vh.Routes)
            {
                routes.Add(new RouteSummary(rc.Name, vh.Name, [.. vh.Domains], r.Name, Match(r.Match), Action(r), Filters(r)));
            }
        }
    }

    internal static string Match(RouteMatch? m)
    {
        if (m is null)
        {
            return "";
        }
        var parts = new List<string>
        {
            m.PathSpecifierCase switch
            {
                RouteMatch.PathSpecifierOneofCase.Prefix => "prefix " + m.Prefix,
                RouteMatch.PathSpecifierOneofCase.Path => "exact " + m.Path,
                RouteMatch.PathSpecifierOneofCase.SafeRegex => "regex " + m.SafeRegex.Regex,
                RouteMatch.PathSpecifierOneofCase.PathSeparatedPrefix => "prefix " + m.PathSeparatedPrefix,
                _ => m.PathSpecifierCase.ToString(),
            },
        };
        foreach (var h in m.Headers)
        {
            var value = h.HeaderMatchSpecifierCase == HeaderMatcher.HeaderMatchSpecifierOneofCase.PresentMatch ? " present" : StringMatch(h.StringMatch);
            parts.Add((h.InvertMatch ? "!" : "") + h.Name + value);
        }
        foreach (var q in m.QueryParameters)
        {
            parts.Add("?" + q.Name + (q.StringMatch is null ? " present" : StringMatch(q.StringMatch)));
        }
        return string.Join(' ', parts);
    }

    private static string StringMatch(StringMatcher? s) => s?.MatchPatternCase switch
    {
        StringMatcher.MatchPatternOneofCase.Exact => "=" + s.Exact,
        StringMatcher.MatchPatternOneofCase.Prefix => "^=" + s.Prefix,
        StringMatcher.MatchPatternOneofCase.Suffix => "$=" + s.Suffix,
        StringMatcher.MatchPatternOneofCase.Contains => "*=" + s.Contains,
        StringMatcher.MatchPatternOneofCase.SafeRegex => "~" + s.SafeRegex.Regex,
        _ => "",
    };

    private static string Action(Route r) => r.ActionCase switch
    {
        Route.ActionOneofCase.Route_ => r.Route_.ClusterSpecifierCase switch
        {
            RouteAction.ClusterSpecifierOneofCase.Cluster => "cluster " + r.Route_.Cluster,
            RouteAction.ClusterSpecifierOneofCase.WeightedClusters =>
                "weighted " + string.Join(",", r.Route_.WeightedClusters.Clusters.Select(c => $"{c.Name}={c.Weight ?? 0}")),
            _ => r.Route_.ClusterSpecifierCase.ToString(),
        } + (r.Route_.Timeout is { } t ? $" timeout {Seconds(t)}" : ""),
        Route.ActionOneofCase.Redirect => "redirect " + r.Redirect.ResponseCode,
        Route.ActionOneofCase.DirectResponse => "direct " + r.DirectResponse.Status.ToString(CultureInfo.InvariantCulture),
        _ => r.ActionCase.ToString(),
    };

    private static List<string> Filters(Route r)
    {
        var list = new List<string>();
        foreach (var (name, raw) in r.TypedPerFilterConfig.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var any = raw.TypeUrl == TypeUrls.FilterConfig ? raw.Unpack<FilterConfig>().Config ?? raw : raw;
            list.Add(any.TypeUrl switch
            {
                TypeUrls.HttpFault => Fault(any.Unpack<HTTPFault>()),
                TypeUrls.LocalRateLimit => RateLimit(any.Unpack<LocalRateLimit>()),
                _ => name,
            });
        }
        return list;
    }

    internal static string Fault(HTTPFault f)
    {
        var parts = new List<string>();
        if (f.Delay is { } d)
        {
            parts.Add($"delay {Percent(d.Percentage)} {(d.FixedDelay is { } fd ? Seconds(fd) : "?")}");
        }
        if (f.Abort is { } a)
        {
            var status = a.ErrorTypeCase == FaultAbort.ErrorTypeOneofCase.GrpcStatus ? $"grpc {a.GrpcStatus}" : $"http {a.HttpStatus}";
            parts.Add($"abort {Percent(a.Percentage)} {status}");
        }
        return "fault: " + (parts.Count == 0 ? "none" : string.Join(", ", parts));
    }

    internal static string RateLimit(LocalRateLimit l) => l.TokenBucket is { } b
        ? $"ratelimit: {b.MaxTokens} tokens, +{b.TokensPerFill ?? 1} every {(b.FillInterval is { } fi ? Seconds(fi) : "?")}"
        : "ratelimit: none";

    private static string Percent(FractionalPercent? p)
    {
        if (p is null)
        {
            return "?%";
        }
        var denominator = p.Denominator switch
        {
            FractionalPercent.Types.DenominatorType.TenThousand => 10_000.0,
            FractionalPercent.Types.DenominatorType.Million => 1_000_000.0,
            _ => 100.0,
        };
        return (p.Numerator * 100.0 / denominator).ToString("0.##", CultureInfo.InvariantCulture) + "%";
    }

    private static string Seconds(Duration d) => d.ToTimeSpan().TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";

    private static ClusterSummary Cluster(Cluster c)
    {
        var lb = UpperSnake(c.LbPolicy.ToString());
        if (c.Metadata?.FilterMetadata.TryGetValue(ExtensionNames.TrellisMetadata, out var trellis) == true
            && trellis.Fields.TryGetValue(ExtensionNames.LbPolicyKey, out var special))
        {
            lb = $"{special.StringValue} (others: {lb})";
        }
        var breakers = c.CircuitBreakers?.Thresholds.FirstOrDefault() is { } t
            ? $"connections={t.MaxConnections ?? 1024} pending={t.MaxPendingRequests ?? 1024} requests={t.MaxRequests ?? 1024} retries={t.MaxRetries ?? 3}"
              + (t.RetryBudget?.BudgetPercent is { } budget ? $" retryBudget={budget.Value.ToString(CultureInfo.InvariantCulture)}%" : "")
            : "default";
        var outlier = c.OutlierDetection is { } o
            ? $"5xx={o.Consecutive5Xx ?? 5} interval={(o.Interval is { } i ? Seconds(i) : "10s")} ejection={(o.BaseEjectionTime is { } b ? Seconds(b) : "30s")} max={o.MaxEjectionPercent ?? 10}%"
            : null;
        int? perConnection = c.TypedExtensionProtocolOptions.TryGetValue(ExtensionNames.UpstreamHttpProtocolOptions, out var options)
                             && options.Is(UpstreamHttpProtocolOptions.Descriptor)
                             && options.Unpack<UpstreamHttpProtocolOptions>().CommonHttpProtocolOptions?.MaxRequestsPerConnection is { } n
            ? (int)n
            : null;
        return new ClusterSummary(c.Name, c.Type.ToString().ToUpperInvariant(), lb, breakers, outlier, perConnection);
    }

    /// <summary>"RoundRobin" as Envoy writes it: "ROUND_ROBIN".</summary>
    internal static string UpperSnake(string pascal) =>
        string.Concat(pascal.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant();

    private static void AddEndpoints(string cluster, ClusterLoadAssignment cla, List<EndpointSummary> endpoints)
    {
        foreach (var locality in cla.Endpoints)
        {
            var where = locality.Locality is { } l ? string.Join('/', new[] { l.Region, l.Zone, l.SubZone }.Where(s => s.Length > 0)) : "";
            foreach (var e in locality.LbEndpoints)
            {
                var sa = e.Endpoint?.Address?.SocketAddress;
                endpoints.Add(new EndpointSummary(cluster, sa is null ? "" : $"{sa.Address}:{sa.PortValue}", e.HealthStatus.ToString().ToLowerInvariant(),
                    (int)locality.Priority, where, (int)(e.LoadBalancingWeight ?? 1)));
            }
        }
    }
}
