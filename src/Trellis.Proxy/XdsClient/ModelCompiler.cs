using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Envoy.Config.Core.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Extensions.Filters.Network.TcpProxy.V3;
using Envoy.Type.Matcher.V3;
using Google.Protobuf.WellKnownTypes;
using Trellis.Proxy.Model;
using Trellis.Xds;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;

namespace Trellis.Proxy.XdsClient;

/// <summary>The xDS resources a client holds: per name, the version and the decoded message.</summary>
internal sealed record XdsResources(
    IReadOnlyDictionary<string, XdsEntry<Listener>> Listeners,
    IReadOnlyDictionary<string, XdsEntry<RouteConfiguration>> Routes,
    IReadOnlyDictionary<string, XdsEntry<EnvoyCluster>> Clusters,
    IReadOnlyDictionary<string, XdsEntry<ClusterLoadAssignment>> Endpoints,
    bool ClustersReceived)
{
    public static readonly XdsResources Empty = new(
        new Dictionary<string, XdsEntry<Listener>>(), new Dictionary<string, XdsEntry<RouteConfiguration>>(),
        new Dictionary<string, XdsEntry<EnvoyCluster>>(), new Dictionary<string, XdsEntry<ClusterLoadAssignment>>(), false);
}

internal sealed record XdsEntry<T>(string Version, T Resource);

/// <summary>A compiled candidate: the model, whether it is complete, what is missing, and the errors that reject it.</summary>
internal sealed record CompileResult(
    ProxyModel Model,
    bool Complete,
    IReadOnlyList<string> Errors,
    IReadOnlyList<string> RouteNames,
    IReadOnlyList<string> EdsNames,
    IReadOnlyList<string> Missing)
{
    public bool IsValid => Errors.Count == 0;

    /// <summary>What the update accepts but an operator should know (e.g. a cluster that skips certificate checks); logged when applied.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>Envoy protos -> <see cref="ProxyModel"/>. Collects every error before deciding; protobuf stays in this folder.</summary>
internal static partial class ModelCompiler
{
    private static readonly FrozenSet<string> KnownHttpFilters = new[] { TypeUrls.Router, TypeUrls.HttpFault, TypeUrls.Rbac, TypeUrls.LocalRateLimit }.ToFrozenSet(StringComparer.Ordinal);

    private static readonly CircuitBreakerModel DefaultBreakers = new(1024, 1024, 1024, 3, null);

    public static CompileResult Compile(XdsResources resources)
    {
        var errors = new List<string>();
        var missing = new List<string>();
        var routes = new Dictionary<string, RouteTable>(StringComparer.Ordinal);
        var routeNames = new SortedSet<string>(StringComparer.Ordinal);
        var tcpClusters = new List<(string Listener, string Chain, string Cluster)>();
        var listeners = new Dictionary<string, ListenerModel>(StringComparer.Ordinal);
        // Names of HTTP filters some connection manager marks is_optional: per-route configs for them may be ignored.
        var optionalFilters = new HashSet<string>(StringComparer.Ordinal);

        foreach (var (name, entry) in resources.Listeners.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var l = CompileListener(name, entry.Resource, errors, routes, routeNames, tcpClusters, optionalFilters);
            if (l is not null)
            {
                listeners[name] = l;
            }
        }

        foreach (var rdsName in routeNames)
        {
            if (resources.Routes.TryGetValue(rdsName, out var rc))
            {
                var table = CompileRouteTable($"route configuration {rdsName}", rdsName, rc.Resource, optionalFilters, errors);
                routes[rdsName] = table;
            }
            else
            {
                missing.Add($"route configuration {rdsName}");
            }
        }

        var clusters = new Dictionary<string, ClusterModel>(StringComparer.Ordinal);
        var warnings = new List<string>();
        var edsNames = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (name, entry) in resources.Clusters.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var c = CompileCluster(name, entry.Resource, resources.Endpoints, errors, warnings, edsNames, missing);
            if (c is not null)
            {
                clusters[name] = c;
            }
        }

        if (resources.ClustersReceived)
        {
            foreach (var (listener, chain, cluster) in tcpClusters)
            {
                if (!clusters.ContainsKey(cluster))
                {
                    errors.Add($"listener {listener}: filter chain '{chain}': tcp_proxy.cluster '{cluster}' is not a known cluster");
                }
            }
        }

        var model = new ProxyModel(VersionOf(resources), listeners.ToFrozenDictionary(StringComparer.Ordinal),
            routes.ToFrozenDictionary(StringComparer.Ordinal), clusters.ToFrozenDictionary(StringComparer.Ordinal));
        var complete = missing.Count == 0 && resources.ClustersReceived && listeners.Count > 0;
        if (resources.Listeners.Count == 0)
        {
            missing.Add("listeners (none received yet)");
        }
        if (!resources.ClustersReceived)
        {
            missing.Add("clusters (none received yet)");
        }
        return new CompileResult(model, complete, errors, [.. routeNames], [.. edsNames], missing) { Warnings = warnings };
    }

    /// <summary>A short digest of every resource's type, name and version: changes with every applied update.</summary>
    private static string VersionOf(XdsResources r)
    {
        var sb = new StringBuilder();
        foreach (var p in r.Listeners.OrderBy(p => p.Key, StringComparer.Ordinal)) { sb.Append("L|").Append(p.Key).Append('|').Append(p.Value.Version).Append('\n'); }
        foreach (var p in r.Routes.OrderBy(p => p.Key, StringComparer.Ordinal)) { sb.Append("R|").Append(p.Key).Append('|').Append(p.Value.Version).Append('\n'); }
        foreach (var p in r.Clusters.OrderBy(p => p.Key, StringComparer.Ordinal)) { sb.Append("C|").Append(p.Key).Append('|').Append(p.Value.Version).Append('\n'); }
        foreach (var p in r.Endpoints.OrderBy(p => p.Key, StringComparer.Ordinal)) { sb.Append("E|").Append(p.Key).Append('|').Append(p.Value.Version).Append('\n'); }
        if (sb.Length == 0)
        {
            return "";
        }
        var hash = System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString()));
        return Convert.ToHexStringLower(hash.AsSpan(0, 6));
    }

    private static ListenerModel? CompileListener(string name, Listener l, List<string> errors, Dictionary<string, RouteTable> routes,
        SortedSet<string> routeNames, List<(string, string, string)> tcpClusters, HashSet<string> optionalFilters)
    {
        var where = $"listener {name}";
        if (l.ApiListener is not null)
        {
            errors.Add($"{where}: api_listener is not supported by the sidecar (socket listeners only)");
            return null;
        }
        var address = ParseAddress(l.Address, $"{where}: address", errors);
        var chains = new List<FilterChainModel>(l.FilterChains.Count);
        for (var i = 0; i < l.FilterChains.Count; i++)
        {
            var c = CompileChain(where, $"filter_chains[{i}]", l.FilterChains[i], errors, routes, routeNames, tcpClusters, optionalFilters);
            if (c is not null)
            {
                chains.Add(c);
            }
        }
        FilterChainModel? defaultChain = null;
        if (l.DefaultFilterChain is not null)
        {
            defaultChain = CompileChain(where, "default_filter_chain", l.DefaultFilterChain, errors, routes, routeNames, tcpClusters, optionalFilters);
        }
        if (chains.Count == 0 && defaultChain is null && l.FilterChains.Count == 0)
        {
            errors.Add($"{where}: has neither filter_chains nor a default_filter_chain");
        }
        if (address is null)
        {
            return null;
        }
        var direction = l.TrafficDirection switch
        {
            TrafficDirection.Inbound => TrafficDirectionKind.Inbound,
            TrafficDirection.Outbound => TrafficDirectionKind.Outbound,
            _ => TrafficDirectionKind.Unspecified,
        };
        return new ListenerModel(name, address, direction, chains, defaultChain);
    }

    private static FilterChainModel? CompileChain(string listenerWhere, string field, FilterChain chain, List<string> errors,
        Dictionary<string, RouteTable> routes, SortedSet<string> routeNames, List<(string, string, string)> tcpClusters, HashSet<string> optionalFilters)
    {
        var where = $"{listenerWhere}: {field} '{chain.Name}'";
        var chainName = chain.Name.Length > 0 ? chain.Name : field;
        int? port = chain.FilterChainMatch?.DestinationPort is { } p ? checked((int)p) : null;
        if (port is < 0 or > 65535)
        {
            errors.Add($"{where}: filter_chain_match.destination_port {port} is not a port");
            return null;
        }
        if (chain.TransportSocket is not null)
        {
            errors.Add($"{where}: transport_socket '{chain.TransportSocket.Name}' is not supported yet");
            return null;
        }
        if (chain.Filters.Count != 1)
        {
            errors.Add($"{where}: filters: expected exactly one network filter (http_connection_manager or tcp_proxy), got {chain.Filters.Count}");
            return null;
        }
        var filter = chain.Filters[0];
        var typeUrl = filter.TypedConfig?.TypeUrl ?? "";
        if (typeUrl == TypeUrls.HttpConnectionManager)
        {
            var hcm = filter.TypedConfig!.Unpack<HttpConnectionManager>();
            for (var i = 0; i < hcm.HttpFilters.Count; i++)
            {
                var hf = hcm.HttpFilters[i];
                var hfType = hf.TypedConfig?.TypeUrl ?? "";
                var hfWhere = $"{where}: http_connection_manager.http_filters[{i}] '{hf.Name}'";
                if (hf.IsOptional)
                {
                    optionalFilters.Add(hf.Name);
                }
                if (!KnownHttpFilters.Contains(hfType) && !hf.IsOptional)
                {
                    errors.Add($"{hfWhere}: unsupported filter type '{hfType}' (not marked is_optional)");
                }
                else if (!hf.IsOptional)
                {
                    CheckListenerWideFilter(hfWhere, hf.TypedConfig!, errors);
                }
            }
            if (hcm.HttpFilters.Count == 0 || hcm.HttpFilters[^1].TypedConfig?.TypeUrl != TypeUrls.Router)
            {
                errors.Add($"{where}: http_connection_manager.http_filters must end with the router filter ({TypeUrls.Router})");
            }
            switch (hcm.RouteSpecifierCase)
            {
                case HttpConnectionManager.RouteSpecifierOneofCase.Rds:
                    var rdsName = hcm.Rds.RouteConfigName;
                    if (string.IsNullOrEmpty(rdsName))
                    {
                        errors.Add($"{where}: http_connection_manager.rds.route_config_name is empty");
                        return null;
                    }
                    routeNames.Add(rdsName);
                    return new FilterChainModel(chainName, port, rdsName, null);
                case HttpConnectionManager.RouteSpecifierOneofCase.RouteConfig:
                    var inlineName = hcm.RouteConfig.Name.Length > 0 ? hcm.RouteConfig.Name : $"{listenerWhere["listener ".Length..]}|{chainName}";
                    routes[inlineName] = CompileRouteTable($"{where}: http_connection_manager.route_config", inlineName, hcm.RouteConfig, optionalFilters, errors);
                    return new FilterChainModel(chainName, port, inlineName, null);
                default:
                    errors.Add($"{where}: http_connection_manager has neither rds nor route_config");
                    return null;
            }
        }
        if (typeUrl == TypeUrls.TcpProxy)
        {
            var tcp = filter.TypedConfig!.Unpack<TcpProxy>();
            if (tcp.ClusterSpecifierCase != TcpProxy.ClusterSpecifierOneofCase.Cluster || tcp.Cluster.Length == 0)
            {
                errors.Add($"{where}: tcp_proxy: only 'cluster' is supported (got {tcp.ClusterSpecifierCase})");
                return null;
            }
            tcpClusters.Add((listenerWhere["listener ".Length..], chainName, tcp.Cluster));
            return new FilterChainModel(chainName, port, null, tcp.Cluster);
        }
        errors.Add($"{where}: filters[0] '{filter.Name}': unsupported network filter type '{typeUrl}'");
        return null;
    }

    private static RouteTable CompileRouteTable(string where, string name, RouteConfiguration rc, IReadOnlySet<string> optionalFilters, List<string> errors)
    {
        var vhosts = new List<VirtualHostModel>(rc.VirtualHosts.Count);
        foreach (var vh in rc.VirtualHosts)
        {
            var vwhere = $"{where}: virtual_host '{vh.Name}'";
            if (vh.Domains.Count == 0)
            {
                errors.Add($"{vwhere}: domains is empty");
            }
            var list = new List<RouteModel>(vh.Routes.Count);
            for (var i = 0; i < vh.Routes.Count; i++)
            {
                var r = CompileRoute($"{vwhere}: routes[{i}]", vh.Name, i, vh.Routes[i], optionalFilters, errors);
                if (r is not null)
                {
                    list.Add(r);
                }
            }
            vhosts.Add(new VirtualHostModel(vh.Name, [.. vh.Domains], list));
        }
        return new RouteTable(name, vhosts);
    }

    private static RouteModel? CompileRoute(string where, string vhost, int index, Route r, IReadOnlySet<string> optionalFilters, List<string> errors)
    {
        var name = r.Name.Length > 0 ? r.Name : $"{vhost}/{index.ToString(CultureInfo.InvariantCulture)}";
        where = $"{where} '{name}'";
        // Match models compile their regexes when built: build none once a pattern was found bad.
        var errorsBefore = errors.Count;
        var m = r.Match;
        if (m is null)
        {
            errors.Add($"{where}: match is missing");
            return null;
        }
        PathMatchKind kind;
        string path;
        switch (m.PathSpecifierCase)
        {
            case RouteMatch.PathSpecifierOneofCase.Prefix: kind = PathMatchKind.Prefix; path = m.Prefix; break;
            case RouteMatch.PathSpecifierOneofCase.PathSeparatedPrefix: kind = PathMatchKind.Prefix; path = m.PathSeparatedPrefix; break;
            case RouteMatch.PathSpecifierOneofCase.Path: kind = PathMatchKind.Exact; path = m.Path; break;
            case RouteMatch.PathSpecifierOneofCase.SafeRegex:
                kind = PathMatchKind.Regex;
                path = m.SafeRegex.Regex;
                if (!CheckRegex($"{where}: match.safe_regex.regex", path, errors))
                {
                    return null; // the model compiles regexes as it is built: a bad one must not reach it
                }
                break;
            default:
                errors.Add($"{where}: match: unsupported path specifier {m.PathSpecifierCase}");
                return null;
        }
        var headers = new List<HeaderMatchModel>(m.Headers.Count);
        for (var i = 0; i < m.Headers.Count; i++)
        {
            var h = m.Headers[i];
            var hwhere = $"{where}: match.headers[{i}] '{h.Name}'";
            switch (h.HeaderMatchSpecifierCase)
            {
                case HeaderMatcher.HeaderMatchSpecifierOneofCase.StringMatch:
                    var (exact, regex) = StringMatch(hwhere + ".string_match", h.StringMatch, errors);
                    if (errors.Count == errorsBefore)
                    {
                        headers.Add(new HeaderMatchModel(h.Name, exact, regex, h.InvertMatch));
                    }
                    break;
                case HeaderMatcher.HeaderMatchSpecifierOneofCase.PresentMatch:
                    headers.Add(new HeaderMatchModel(h.Name, null, "^.*$", h.InvertMatch != !h.PresentMatch));
                    break;
                default:
                    errors.Add($"{hwhere}: unsupported header match {h.HeaderMatchSpecifierCase}");
                    break;
            }
        }
        var queries = new List<HeaderMatchModel>(m.QueryParameters.Count);
        for (var i = 0; i < m.QueryParameters.Count; i++)
        {
            var q = m.QueryParameters[i];
            var qwhere = $"{where}: match.query_parameters[{i}] '{q.Name}'";
            if (q.QueryParameterMatchSpecifierCase == QueryParameterMatcher.QueryParameterMatchSpecifierOneofCase.StringMatch)
            {
                var (exact, regex) = StringMatch(qwhere + ".string_match", q.StringMatch, errors);
                if (errors.Count == errorsBefore)
                {
                    queries.Add(new HeaderMatchModel(q.Name, exact, regex, false));
                }
            }
            else
            {
                queries.Add(new HeaderMatchModel(q.Name, null, "^.*$", !q.PresentMatch));
            }
        }
        if (errors.Count > errorsBefore)
        {
            return null;
        }
        var match = new RouteMatchModel(kind, path, headers, queries);

        var clusters = new List<WeightedClusterModel>();
        TimeSpan? timeout = null;
        RetryPolicyModel? retry = null;
        string? prefixRewrite = null, hostRewrite = null, hashHeader = null, hashCookie = null, directBody = null;
        var hashSourceIp = false;
        RedirectModel? redirect = null;
        int? direct = null;
        switch (r.ActionCase)
        {
            case Route.ActionOneofCase.Route_:
                var a = r.Route_;
                switch (a.ClusterSpecifierCase)
                {
                    case RouteAction.ClusterSpecifierOneofCase.Cluster:
                        clusters.Add(new WeightedClusterModel(a.Cluster, 1));
                        break;
                    case RouteAction.ClusterSpecifierOneofCase.WeightedClusters:
                        foreach (var w in a.WeightedClusters.Clusters)
                        {
                            clusters.Add(new WeightedClusterModel(w.Name, (int)(w.Weight ?? 1)));
                        }
                        if (clusters.Count == 0)
                        {
                            errors.Add($"{where}: route.weighted_clusters has no clusters");
                        }
                        break;
                    default:
                        errors.Add($"{where}: route: unsupported cluster specifier {a.ClusterSpecifierCase} (cluster and weighted_clusters only)");
                        return null;
                }
                timeout = a.Timeout?.ToTimeSpan();
                if (a.RetryPolicy is { } rp)
                {
                    retry = new RetryPolicyModel(
                        rp.RetryOn.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                        (int)(rp.NumRetries ?? 1), rp.PerTryTimeout?.ToTimeSpan(),
                        rp.RetryBackOff?.BaseInterval?.ToTimeSpan() ?? TimeSpan.FromMilliseconds(25),
                        rp.RetryBackOff?.MaxInterval?.ToTimeSpan() ?? TimeSpan.FromMilliseconds(250));
                }
                prefixRewrite = a.PrefixRewrite.Length > 0 ? a.PrefixRewrite : null;
                hostRewrite = a.HostRewriteSpecifierCase == RouteAction.HostRewriteSpecifierOneofCase.HostRewriteLiteral ? a.HostRewriteLiteral : null;
                foreach (var hp in a.HashPolicy)
                {
                    switch (hp.PolicySpecifierCase)
                    {
                        case RouteAction.Types.HashPolicy.PolicySpecifierOneofCase.Header:
                            hashHeader ??= hp.Header.HeaderName;
                            break;
                        case RouteAction.Types.HashPolicy.PolicySpecifierOneofCase.Cookie:
                            hashCookie ??= hp.Cookie.Name;
                            break;
                        case RouteAction.Types.HashPolicy.PolicySpecifierOneofCase.ConnectionProperties:
                            hashSourceIp |= hp.ConnectionProperties.SourceIp;
                            break;
                    }
                }
                break;
            case Route.ActionOneofCase.Redirect:
                var rd = r.Redirect;
                var code = rd.ResponseCode switch
                {
                    RedirectAction.Types.RedirectResponseCode.Found => 302,
                    RedirectAction.Types.RedirectResponseCode.SeeOther => 303,
                    RedirectAction.Types.RedirectResponseCode.TemporaryRedirect => 307,
                    RedirectAction.Types.RedirectResponseCode.PermanentRedirect => 308,
                    _ => 301,
                };
                var scheme = rd.SchemeRewriteSpecifierCase switch
                {
                    RedirectAction.SchemeRewriteSpecifierOneofCase.HttpsRedirect => rd.HttpsRedirect ? "https" : null,
                    RedirectAction.SchemeRewriteSpecifierOneofCase.SchemeRedirect => rd.SchemeRedirect,
                    _ => null,
                };
                redirect = new RedirectModel(scheme, rd.HostRedirect.Length > 0 ? rd.HostRedirect : null, rd.PortRedirect > 0 ? (int)rd.PortRedirect : null,
                    rd.PathRewriteSpecifierCase == RedirectAction.PathRewriteSpecifierOneofCase.PathRedirect ? rd.PathRedirect : null,
                    rd.PathRewriteSpecifierCase == RedirectAction.PathRewriteSpecifierOneofCase.PrefixRewrite ? rd.PrefixRewrite : null, code);
                break;
            case Route.ActionOneofCase.DirectResponse:
                direct = (int)r.DirectResponse.Status;
                if (direct is < 100 or > 599)
                {
                    errors.Add($"{where}: direct_response.status {direct} is not an HTTP status");
                }
                directBody = DirectResponseBody($"{where}: direct_response.body", r.DirectResponse.Body, errors);
                break;
            default:
                errors.Add($"{where}: unsupported action {r.ActionCase}");
                return null;
        }
        var (fault, rateLimit) = CompilePerFilterConfigs(where, r.TypedPerFilterConfig, optionalFilters, errors);
        return new RouteModel(name, match, clusters, timeout, retry, prefixRewrite, hostRewrite,
            Mutations(r.RequestHeadersToAdd), [.. r.RequestHeadersToRemove], Mutations(r.ResponseHeadersToAdd), [.. r.ResponseHeadersToRemove],
            redirect, direct, hashHeader)
        {
            HashCookie = hashCookie,
            HashSourceIp = hashSourceIp,
            Fault = fault,
            RateLimit = rateLimit,
            DirectResponseBody = directBody,
        };
    }

    private static List<HeaderMutation> Mutations(IEnumerable<HeaderValueOption> options) =>
        [.. options.Where(o => o.Header is not null).Select(o => new HeaderMutation(o.Header.Key, o.Header.Value, o.AppendAction == HeaderValueOption.Types.HeaderAppendAction.AppendIfExistsOrAdd))];

    private static (string? Exact, string? Regex) StringMatch(string where, StringMatcher s, List<string> errors)
    {
        var ci = s.IgnoreCase ? "(?i)" : "";
        switch (s.MatchPatternCase)
        {
            case StringMatcher.MatchPatternOneofCase.Exact:
                return s.IgnoreCase ? (null, $"(?i)^{Regex.Escape(s.Exact)}$") : (s.Exact, null);
            case StringMatcher.MatchPatternOneofCase.Prefix:
                return (null, $"{ci}^{Regex.Escape(s.Prefix)}");
            case StringMatcher.MatchPatternOneofCase.Suffix:
                return (null, $"{ci}{Regex.Escape(s.Suffix)}$");
            case StringMatcher.MatchPatternOneofCase.Contains:
                return (null, $"{ci}{Regex.Escape(s.Contains)}");
            case StringMatcher.MatchPatternOneofCase.SafeRegex:
                return CheckRegex($"{where}.safe_regex.regex", s.SafeRegex.Regex, errors)
                    ? (null, $"^(?:{s.SafeRegex.Regex})$")
                    : (null, null); // recorded as an error: the update is rejected, the placeholder never serves
            default:
                errors.Add($"{where}: no match pattern");
                return (null, null);
        }
    }

    private static bool CheckRegex(string where, string pattern, List<string> errors)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
            return true;
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            errors.Add($"{where}: '{pattern}' does not compile with RegexOptions.NonBacktracking: {e.Message}");
            return false;
        }
    }

    private static ClusterModel? CompileCluster(string name, EnvoyCluster c, IReadOnlyDictionary<string, XdsEntry<ClusterLoadAssignment>> eds,
        List<string> errors, List<string> warnings, SortedSet<string> edsNames, List<string> missing)
    {
        var where = $"cluster {name}";
        var lb = c.LbPolicy switch
        {
            EnvoyCluster.Types.LbPolicy.RoundRobin => LoadBalancerKind.RoundRobin,
            EnvoyCluster.Types.LbPolicy.LeastRequest => LoadBalancerKind.LeastRequest,
            EnvoyCluster.Types.LbPolicy.Random => LoadBalancerKind.Random,
            EnvoyCluster.Types.LbPolicy.RingHash => LoadBalancerKind.RingHash,
            EnvoyCluster.Types.LbPolicy.Maglev => LoadBalancerKind.Maglev,
            _ => (LoadBalancerKind?)null,
        };
        if (lb is null)
        {
            errors.Add($"{where}: lb_policy {c.LbPolicy} is not supported");
            return null;
        }
        var tls = CompileUpstreamTls(where, c.TransportSocket, errors, warnings, out var tlsOk);
        if (!tlsOk)
        {
            return null;
        }
        IReadOnlyList<EndpointModel> endpoints;
        switch (c.Type)
        {
            case EnvoyCluster.Types.DiscoveryType.Static:
                endpoints = c.LoadAssignment is null ? [] : CompileEndpoints($"{where}: load_assignment", c.LoadAssignment, errors);
                break;
            case EnvoyCluster.Types.DiscoveryType.Eds:
                var service = c.EdsClusterConfig?.ServiceName is { Length: > 0 } sn ? sn : name;
                edsNames.Add(service);
                if (eds.TryGetValue(service, out var cla))
                {
                    endpoints = CompileEndpoints($"cluster load assignment {service}", cla.Resource, errors);
                }
                else
                {
                    endpoints = [];
                    missing.Add($"endpoints {service}");
                }
                break;
            default:
                errors.Add($"{where}: type {c.Type} is not supported (STATIC and EDS only)");
                return null;
        }
        var breakers = DefaultBreakers;
        if (c.CircuitBreakers?.Thresholds is { Count: > 0 } th)
        {
            var t = th[0];
            breakers = new CircuitBreakerModel((int)(t.MaxConnections ?? 1024), (int)(t.MaxPendingRequests ?? 1024), (int)(t.MaxRequests ?? 1024),
                (int)(t.MaxRetries ?? 3), t.RetryBudget?.BudgetPercent?.Value);
        }
        OutlierDetectionModel? outlier = null;
        if (c.OutlierDetection is { } o)
        {
            outlier = new OutlierDetectionModel((int)(o.Consecutive5Xx ?? 5), (int)(o.ConsecutiveGatewayFailure ?? 0),
                o.Interval?.ToTimeSpan() ?? TimeSpan.FromSeconds(10), o.BaseEjectionTime?.ToTimeSpan() ?? TimeSpan.FromSeconds(30),
                (int)(o.MaxEjectionPercent ?? 10));
        }
        if (IsEwma(c.Metadata))
        {
            lb = LoadBalancerKind.Ewma;
        }
        var model = new ClusterModel(name, lb.Value, c.ConnectTimeout?.ToTimeSpan() ?? TimeSpan.FromSeconds(5), endpoints, breakers, outlier) { Tls = tls };
        return ApplyProtocolOptions(where, model, c.TypedExtensionProtocolOptions, errors);
    }

    private static List<EndpointModel> CompileEndpoints(string where, ClusterLoadAssignment cla, List<string> errors)
    {
        var list = new List<EndpointModel>();
        for (var i = 0; i < cla.Endpoints.Count; i++)
        {
            var loc = cla.Endpoints[i];
            var lwhere = $"{where}: endpoints[{i}]";
            var localityWeight = (int)(loc.LoadBalancingWeight ?? 0);
            for (var j = 0; j < loc.LbEndpoints.Count; j++)
            {
                var e = loc.LbEndpoints[j];
                var ewhere = $"{lwhere}.lb_endpoints[{j}]";
                if (e.HostIdentifierCase != LbEndpoint.HostIdentifierOneofCase.Endpoint)
                {
                    errors.Add($"{ewhere}: endpoint is missing (endpoint_name is not supported)");
                    continue;
                }
                var address = ParseAddress(e.Endpoint.Address, $"{ewhere}.endpoint.address", errors);
                if (address is null)
                {
                    continue;
                }
                var health = e.HealthStatus switch
                {
                    HealthStatus.Healthy => EndpointHealthKind.Healthy,
                    HealthStatus.Unhealthy or HealthStatus.Timeout => EndpointHealthKind.Unhealthy,
                    HealthStatus.Draining => EndpointHealthKind.Draining,
                    _ => EndpointHealthKind.Unknown,
                };
                list.Add(new EndpointModel(address, (int)(e.LoadBalancingWeight ?? 1), health, (int)loc.Priority,
                    loc.Locality?.Region ?? "", loc.Locality?.Zone ?? "", localityWeight));
            }
        }
        return list;
    }

    private static IPEndPoint? ParseAddress(Address? a, string where, List<string> errors)
    {
        if (a?.SocketAddress is not { } sa)
        {
            errors.Add($"{where}: socket_address is missing");
            return null;
        }
        if (!IPAddress.TryParse(sa.Address, out var ip))
        {
            errors.Add($"{where}.socket_address.address: '{sa.Address}' is not an IP literal");
            return null;
        }
        if (sa.PortSpecifierCase != Envoy.Config.Core.V3.SocketAddress.PortSpecifierOneofCase.PortValue || sa.PortValue > 65535)
        {
            errors.Add($"{where}.socket_address.port_value: expected a port 0-65535");
            return null;
        }
        return new IPEndPoint(ip, (int)sa.PortValue);
    }
}
