using Envoy.Config.Core.V3;
using Envoy.Config.Route.V3;
using Envoy.Type.Matcher.V3;
using Google.Protobuf.WellKnownTypes;
using Trellis.Api.Resources;
using ApiService = Trellis.Api.Resources.Service;
using EnvoyRoute = Envoy.Config.Route.V3.Route;

namespace Trellis.ControlPlane.Translation;

/// <summary>Builds Envoy routes from HTTPRoute and GRPCRoute rules, with the Gateway API's precedence as a sort key.</summary>
internal static class RouteBuilder
{
    public static IEnumerable<(EnvoyRoute Route, int Order)> HttpRules(
        HttpRoute route, ApiService parent, ServicePort parentPort, Dictionary<(string, string), ApiService> services,
        IReadOnlyList<TrafficPolicy> policies, RouteFilters routeFilters, Action<string> note)
    {
        var ns = route.Metadata.Namespace;
        for (var ri = 0; ri < route.Spec.Rules.Count; ri++)
        {
            var rule = route.Spec.Rules[ri];
            var matches = rule.Matches is { Count: > 0 } ? rule.Matches : [new HttpRouteMatch()];
            for (var mi = 0; mi < matches.Count; mi++)
            {
                var m = matches[mi];
                var match = new RouteMatch();
                var path = m.Path ?? new HttpPathMatch();
                switch (path.Type)
                {
                    case PathMatchType.Exact:
                        match.Path = path.Value;
                        break;
                    case PathMatchType.RegularExpression:
                        match.SafeRegex = new RegexMatcher { Regex = path.Value };
                        break;
                    default:
                        match.Prefix = path.Value;
                        break;
                }
                foreach (var h in m.Headers ?? [])
                {
                    match.Headers.Add(Header(h.Name, h.Type, h.Value));
                }
                foreach (var q in m.QueryParams ?? [])
                {
                    match.QueryParameters.Add(new QueryParameterMatcher { Name = q.Name, StringMatch = Str(q.Type, q.Value) });
                }
                if (m.Method is { Length: > 0 } method)
                {
                    match.Headers.Add(Header(":method", StringMatchType.Exact, method));
                }
                var envoyRoute = new EnvoyRoute { Name = $"{route.Metadata.Name}/{ri}/{mi}", Match = match };
                ApplyFilters(envoyRoute, rule.Filters, note);
                routeFilters.ApplyExtensionRefs(envoyRoute, route, rule.Filters, parentPort.Protocol, note);
                if (envoyRoute.ActionCase == EnvoyRoute.ActionOneofCase.None)
                {
                    envoyRoute.Route_ = Action(rule.BackendRefs, ns, parent, parentPort, services, note);
                    var policy = PolicyFor(envoyRoute.Route_, ns, services, policies);
                    ApplyPolicy(envoyRoute.Route_, policy, rule.Timeouts);
                    ApplyRewrite(envoyRoute.Route_, rule.Filters);
                }
                var order = Precedence(path.Type, path.Value.Length, m.Method is not null, m.Headers?.Count ?? 0, m.QueryParams?.Count ?? 0);
                yield return (envoyRoute, order);
            }
        }
    }

    public static IEnumerable<(EnvoyRoute Route, int Order)> GrpcRules(
        GrpcRoute route, ApiService parent, ServicePort parentPort, Dictionary<(string, string), ApiService> services, RouteFilters routeFilters, Action<string> note)
    {
        var ns = route.Metadata.Namespace;
        for (var ri = 0; ri < route.Spec.Rules.Count; ri++)
        {
            var rule = route.Spec.Rules[ri];
            var matches = rule.Matches is { Count: > 0 } ? rule.Matches : [new GrpcRouteMatch()];
            for (var mi = 0; mi < matches.Count; mi++)
            {
                var m = matches[mi];
                var match = new RouteMatch();
                var order = Precedence(PathMatchType.PathPrefix, 1, false, m.Headers?.Count ?? 0, 0);
                if (m.Method is { } gm)
                {
                    var svc = string.IsNullOrEmpty(gm.Service) ? null : gm.Service;
                    var meth = string.IsNullOrEmpty(gm.Method) ? null : gm.Method;
                    if (gm.Type == StringMatchType.RegularExpression)
                    {
                        match.SafeRegex = new RegexMatcher { Regex = $"/{svc ?? "[^/]+"}/{meth ?? "[^/]+"}" };
                        order = Precedence(PathMatchType.RegularExpression, 0, false, m.Headers?.Count ?? 0, 0);
                    }
                    else if (svc is not null && meth is not null)
                    {
                        match.Path = $"/{svc}/{meth}";
                        order = Precedence(PathMatchType.Exact, match.Path.Length, false, m.Headers?.Count ?? 0, 0);
                    }
                    else if (svc is not null)
                    {
                        match.Prefix = $"/{svc}/";
                        order = Precedence(PathMatchType.PathPrefix, match.Prefix.Length, false, m.Headers?.Count ?? 0, 0);
                    }
                    else if (meth is not null)
                    {
                        match.SafeRegex = new RegexMatcher { Regex = $"/[^/]+/{System.Text.RegularExpressions.Regex.Escape(meth)}" };
                        order = Precedence(PathMatchType.RegularExpression, 0, false, m.Headers?.Count ?? 0, 0);
                    }
                    else
                    {
                        match.Prefix = "/";
                    }
                }
                else
                {
                    match.Prefix = "/";
                }
                foreach (var h in m.Headers ?? [])
                {
                    match.Headers.Add(Header(h.Name, h.Type, h.Value));
                }
                var envoyRoute = new EnvoyRoute { Name = $"{route.Metadata.Name}/{ri}/{mi}", Match = match };
                ApplyFilters(envoyRoute, rule.Filters, note);
                routeFilters.ApplyExtensionRefs(envoyRoute, route, rule.Filters, parentPort.Protocol, note);
                if (envoyRoute.ActionCase == EnvoyRoute.ActionOneofCase.None)
                {
                    envoyRoute.Route_ = Action(rule.BackendRefs, ns, parent, parentPort, services, note);
                    ApplyPolicy(envoyRoute.Route_, null, rule.Timeouts);
                    ApplyRewrite(envoyRoute.Route_, rule.Filters);
                }
                yield return (envoyRoute, order);
            }
        }
    }

    /// <summary>Gateway API precedence: exact path, then longest prefix, then method, headers, query parameters.</summary>
    private static int Precedence(PathMatchType type, int pathLength, bool method, int headers, int query)
    {
        var rank = type switch { PathMatchType.Exact => 0, PathMatchType.PathPrefix => 1, _ => 2 };
        return rank * 100_000_000 + (1023 - Math.Min(pathLength, 1023)) * 100_000 + (method ? 0 : 10_000) + (99 - Math.Min(headers, 99)) * 100 + (99 - Math.Min(query, 99));
    }

    private static HeaderMatcher Header(string name, StringMatchType type, string value) =>
        new() { Name = name, StringMatch = Str(type, value) };

    private static StringMatcher Str(StringMatchType type, string value) =>
        type == StringMatchType.RegularExpression ? new StringMatcher { SafeRegex = new RegexMatcher { Regex = value } } : new StringMatcher { Exact = value };

    private static RouteAction Action(
        IReadOnlyList<BackendRef>? backendRefs, string ns, ApiService parent, ServicePort parentPort,
        Dictionary<(string, string), ApiService> services, Action<string> note)
    {
        var targets = new List<(string Cluster, int Weight)>();
        if (backendRefs is null || backendRefs.Count == 0)
        {
            targets.Add((XdsNames.ServicePort(parent.Metadata.Name, parent.Metadata.Namespace, parentPort.Port), 1));
        }
        else
        {
            foreach (var b in backendRefs)
            {
                var bns = b.Namespace ?? ns;
                if (!services.TryGetValue((bns, b.Name), out var backend))
                {
                    note($"backendRef Service \"{bns}/{b.Name}\" does not exist; its share of traffic fails");
                    continue;
                }
                var port = b.Port is int p ? backend.Spec.Ports.FirstOrDefault(x => x.Port == p) : (backend.Spec.Ports.Count > 0 ? backend.Spec.Ports[0] : null);
                if (port is null)
                {
                    note($"backendRef Service \"{bns}/{b.Name}\" has no port {b.Port}; its share of traffic fails");
                    continue;
                }
                if (b.Weight > 0)
                {
                    targets.Add((XdsNames.ServicePort(backend.Metadata.Name, bns, port.Port), b.Weight));
                }
            }
        }
        var action = new RouteAction();
        if (targets.Count == 1)
        {
            action.Cluster = targets[0].Cluster;
        }
        else if (targets.Count > 1)
        {
            var wc = new WeightedCluster();
            foreach (var (cluster, weight) in targets)
            {
                wc.Clusters.Add(new WeightedCluster.Types.ClusterWeight { Name = cluster, Weight = (uint)weight });
            }
            action.WeightedClusters = wc;
        }
        else
        {
            // No usable backend: name a cluster that does not exist so the request fails with "no healthy upstream".
            action.Cluster = XdsNames.ServicePort(parent.Metadata.Name, parent.Metadata.Namespace, parentPort.Port);
            note("no backendRef of a rule resolves; its traffic goes to the parent Service");
        }
        return action;
    }

    private static TrafficPolicy? PolicyFor(RouteAction action, string ns, Dictionary<(string, string), ApiService> services, IReadOnlyList<TrafficPolicy> policies)
    {
        if (action.ClusterSpecifierCase != RouteAction.ClusterSpecifierOneofCase.Cluster)
        {
            return null;
        }
        var serviceName = action.Cluster[..action.Cluster.LastIndexOf(':')];
        return policies.FirstOrDefault(p => $"{p.Spec.TargetRef.Name}.{p.Metadata.Namespace}" == serviceName);
    }

    /// <summary>Timeouts, retries and hashing for a route from its rule's timeouts and the target's TrafficPolicy.</summary>
    public static void ApplyPolicy(RouteAction action, TrafficPolicy? policy, HttpRouteTimeouts? timeouts)
    {
        var timeout = timeouts?.Request ?? policy?.Spec.Timeout;
        if (timeout is TimeSpan t)
        {
            action.Timeout = Duration.FromTimeSpan(t);
        }
        var retries = policy?.Spec.Retries;
        if (retries is not null || timeouts?.BackendRequest is not null)
        {
            var rp = new RetryPolicy
            {
                RetryOn = string.Join(',', retries?.RetryOn ?? ["connect-failure", "reset", "unavailable"]),
                NumRetries = (uint)(retries?.Attempts ?? 0),
            };
            var perTry = timeouts?.BackendRequest ?? retries?.PerTryTimeout;
            if (perTry is TimeSpan pt)
            {
                rp.PerTryTimeout = Duration.FromTimeSpan(pt);
            }
            if (retries?.BackoffBaseInterval is TimeSpan bb)
            {
                rp.RetryBackOff = new RetryPolicy.Types.RetryBackOff { BaseInterval = Duration.FromTimeSpan(bb) };
                if (retries.BackoffMaxInterval is TimeSpan bm)
                {
                    rp.RetryBackOff.MaxInterval = Duration.FromTimeSpan(bm);
                }
            }
            action.RetryPolicy = rp;
        }
        if (policy?.Spec.LoadBalancer is { Algorithm: LoadBalancerAlgorithm.RingHash, HashOn: { } hash })
        {
            var hp = new RouteAction.Types.HashPolicy();
            if (hash.Header is { Length: > 0 } header)
            {
                hp.Header = new RouteAction.Types.HashPolicy.Types.Header { HeaderName = header };
            }
            else if (hash.Cookie is { Length: > 0 } cookie)
            {
                hp.Cookie = new RouteAction.Types.HashPolicy.Types.Cookie { Name = cookie };
            }
            else
            {
                hp.ConnectionProperties = new RouteAction.Types.HashPolicy.Types.ConnectionProperties { SourceIp = true };
            }
            action.HashPolicy.Add(hp);
        }
    }

    private static void ApplyFilters(EnvoyRoute route, IReadOnlyList<HttpRouteFilter>? filters, Action<string> note)
    {
        foreach (var f in filters ?? [])
        {
            switch (f.Type)
            {
                case HttpRouteFilterType.RequestHeaderModifier when f.RequestHeaderModifier is { } mod:
                    AddHeaders(route.RequestHeadersToAdd, mod);
                    route.RequestHeadersToRemove.AddRange(mod.Remove ?? []);
                    break;
                case HttpRouteFilterType.ResponseHeaderModifier when f.ResponseHeaderModifier is { } mod:
                    AddHeaders(route.ResponseHeadersToAdd, mod);
                    route.ResponseHeadersToRemove.AddRange(mod.Remove ?? []);
                    break;
                case HttpRouteFilterType.RequestRedirect when f.RequestRedirect is { } rr:
                    var redirect = new RedirectAction
                    {
                        ResponseCode = rr.StatusCode == 301 ? RedirectAction.Types.RedirectResponseCode.MovedPermanently : RedirectAction.Types.RedirectResponseCode.Found,
                    };
                    if (rr.Scheme is { } scheme) { redirect.SchemeRedirect = scheme; }
                    if (rr.Hostname is { } host) { redirect.HostRedirect = host; }
                    if (rr.Port is int port) { redirect.PortRedirect = (uint)port; }
                    if (rr.Path is { Type: PathModifierType.ReplaceFullPath, ReplaceFullPath: { } full }) { redirect.PathRedirect = full; }
                    if (rr.Path is { Type: PathModifierType.ReplacePrefixMatch, ReplacePrefixMatch: { } prefix }) { redirect.PrefixRewrite = prefix; }
                    route.Redirect = redirect;
                    break;
                case HttpRouteFilterType.URLRewrite:
                case HttpRouteFilterType.ExtensionRef:
                    break; // applied with the route action (URLRewrite) or by RouteFilters (ExtensionRef)
                default:
                    note($"filter {f.Type} has no settings; ignored");
                    break;
            }
        }
    }

    private static void ApplyRewrite(RouteAction action, IReadOnlyList<HttpRouteFilter>? filters)
    {
        var rewrite = filters?.FirstOrDefault(f => f.Type == HttpRouteFilterType.URLRewrite)?.UrlRewrite;
        if (rewrite is null)
        {
            return;
        }
        if (rewrite.Hostname is { } host) { action.HostRewriteLiteral = host; }
        if (rewrite.Path is { Type: PathModifierType.ReplacePrefixMatch, ReplacePrefixMatch: { } prefix }) { action.PrefixRewrite = prefix; }
        if (rewrite.Path is { Type: PathModifierType.ReplaceFullPath, ReplaceFullPath: { } full })
        {
            action.RegexRewrite = new RegexMatchAndSubstitute { Pattern = new RegexMatcher { Regex = "^.*$" }, Substitution = full };
        }
    }

    private static void AddHeaders(Google.Protobuf.Collections.RepeatedField<HeaderValueOption> target, HeaderModifier mod)
    {
        foreach (var h in mod.Set ?? [])
        {
            target.Add(new HeaderValueOption { Header = new HeaderValue { Key = h.Name, Value = h.Value }, AppendAction = HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd });
        }
        foreach (var h in mod.Add ?? [])
        {
            target.Add(new HeaderValueOption { Header = new HeaderValue { Key = h.Name, Value = h.Value }, AppendAction = HeaderValueOption.Types.HeaderAppendAction.AppendIfExistsOrAdd });
        }
    }
}
