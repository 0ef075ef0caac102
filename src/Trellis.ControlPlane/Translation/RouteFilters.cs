using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Common.Fault.V3;
using Envoy.Extensions.Filters.Http.Fault.V3;
using Envoy.Extensions.Filters.Http.LocalRatelimit.V3;
using Envoy.Extensions.Filters.Http.Router.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Type.V3;
using Google.Protobuf.WellKnownTypes;
using Trellis.Api.Resources;
using Trellis.Xds;
using ApiService = Trellis.Api.Resources.Service;
using EnvoyRoute = Envoy.Config.Route.V3.Route;
using RuntimeFractionalPercent = Envoy.Config.Core.V3.RuntimeFractionalPercent;

namespace Trellis.ControlPlane.Translation;

/// <summary>
/// FaultInjection and RateLimit as Envoy per-route filter configs. A rule's ExtensionRef sets them on its routes;
/// a targetRef policy then fills them in on every route that sends all its traffic to the target Service and has
/// none of that kind yet (so the rule's own filter wins). Remembers which resources each route was built from.
/// </summary>
internal sealed class RouteFilters
{
    /// <summary>Abort status for a rule whose ExtensionRef names nothing: the Gateway API asks for HTTP 500.</summary>
    public const int UnresolvedExtensionStatus = 500;

    private const string RateLimitStatPrefix = "http_local_rate_limiter";

    private static readonly FractionalPercent Always = Percent(100);

    private readonly Dictionary<(string Ns, string Name), FaultInjection> _faults = [];
    private readonly Dictionary<(string Ns, string Name), RateLimit> _limits = [];
    private readonly List<(FaultInjection Policy, PolicyTargetReference Target)> _faultPolicies = [];
    private readonly List<(RateLimit Policy, PolicyTargetReference Target)> _limitPolicies = [];
    private readonly Dictionary<string, (string Ns, string Service, int Port)> _clusters = new(StringComparer.Ordinal);
    private readonly Dictionary<EnvoyRoute, List<string>> _sources = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    /// <summary>Indexes the filters; a targetRef to a missing Service, or a second policy of a kind for one
    /// Service, is noted (rejected) on the resource.</summary>
    public RouteFilters(MeshInputs inputs, IReadOnlyDictionary<(string, string), ApiService> services, Action<Resource, string, bool> note)
    {
        foreach (var svc in inputs.Services)
        {
            foreach (var port in svc.Spec.Ports)
            {
                _clusters[XdsNames.ServicePort(svc.Metadata.Name, svc.Metadata.Namespace, port.Port)] = (svc.Metadata.Namespace, svc.Metadata.Name, port.Port);
            }
        }
        foreach (var f in inputs.FaultInjections)
        {
            _faults[(f.Metadata.Namespace, f.Metadata.Name)] = f;
        }
        foreach (var l in inputs.RateLimits)
        {
            _limits[(l.Metadata.Namespace, l.Metadata.Name)] = l;
        }
        IndexPolicies(inputs.FaultInjections, f => f.Spec.TargetRef, _faultPolicies, services, note);
        IndexPolicies(inputs.RateLimits, l => l.Spec.TargetRef, _limitPolicies, services, note);
    }

    private static void IndexPolicies<T>(IReadOnlyList<T> all, Func<T, PolicyTargetReference?> targetOf, List<(T Policy, PolicyTargetReference Target)> into,
        IReadOnlyDictionary<(string, string), ApiService> services, Action<Resource, string, bool> note) where T : Resource
    {
        foreach (var p in all.OrderBy(p => p.Metadata.Namespace, StringComparer.Ordinal).ThenBy(p => p.Metadata.Name, StringComparer.Ordinal))
        {
            if (targetOf(p) is not { } target)
            {
                continue;
            }
            if (!services.ContainsKey((p.Metadata.Namespace, target.Name)))
            {
                note(p, $"targetRef Service \"{target.Name}\" does not exist; the policy applies to nothing", true);
                continue;
            }
            var other = into.FirstOrDefault(o => o.Policy.Metadata.Namespace == p.Metadata.Namespace && o.Target.Name == target.Name
                && (o.Target.Port is null || target.Port is null || o.Target.Port == target.Port)).Policy;
            if (other is not null)
            {
                note(p, $"Service \"{target.Name}\" already has {p.Kind} \"{other.Metadata.Name}\"; this one is ignored", true);
                continue;
            }
            into.Add((p, target));
        }
    }

    /// <summary>Sets what a rule's ExtensionRef filters name on one of its routes. An unresolved name makes the route
    /// answer 500, as the Gateway API requires (a filter that cannot be found must not be skipped).</summary>
    public void ApplyExtensionRefs(EnvoyRoute route, Resource owner, IReadOnlyList<HttpRouteFilter>? filters, ServiceProtocol protocol, Action<string> note)
    {
        var unresolved = false;
        foreach (var f in filters ?? [])
        {
            if (f is not { Type: HttpRouteFilterType.ExtensionRef, ExtensionRef: { } extension })
            {
                continue;
            }
            var key = (owner.Metadata.Namespace, extension.Name);
            switch (extension.Kind)
            {
                case "FaultInjection" when _faults.TryGetValue(key, out var fault):
                    route.TypedPerFilterConfig[ExtensionNames.FaultFilter] = Any.Pack(Fault(fault.Spec, protocol));
                    Record(route, fault);
                    break;
                case "RateLimit" when _limits.TryGetValue(key, out var limit):
                    route.TypedPerFilterConfig[ExtensionNames.LocalRateLimitFilter] = Any.Pack(RateLimitConfig(limit.Spec));
                    Record(route, limit);
                    break;
                case "FaultInjection" or "RateLimit":
                    note($"extensionRef {extension.Kind} \"{extension.Name}\" does not exist; the rule's requests get HTTP {UnresolvedExtensionStatus} until it does");
                    unresolved = true;
                    break;
                default:
                    note($"extensionRef kind \"{extension.Kind}\" is not supported; ignored");
                    break;
            }
        }
        if (unresolved)
        {
            route.TypedPerFilterConfig[ExtensionNames.FaultFilter] = Any.Pack(new HTTPFault
            {
                Abort = new FaultAbort { HttpStatus = UnresolvedExtensionStatus, Percentage = Always.Clone() },
            });
        }
    }

    /// <summary>Fills in targetRef policies on the routes of one service port's route configuration whose every
    /// backend is the target Service; a route that already has a filter of that kind keeps it.</summary>
    public void ApplyPolicies(RouteConfiguration rc, ServiceProtocol protocol)
    {
        if (_faultPolicies.Count == 0 && _limitPolicies.Count == 0)
        {
            return;
        }
        foreach (var route in rc.VirtualHosts.SelectMany(v => v.Routes))
        {
            if (route.Route_ is not { } action || Backend(action) is not { } backend)
            {
                continue;
            }
            if (!route.TypedPerFilterConfig.ContainsKey(ExtensionNames.FaultFilter) && Target(_faultPolicies, backend) is { } fault)
            {
                route.TypedPerFilterConfig[ExtensionNames.FaultFilter] = Any.Pack(Fault(fault.Spec, protocol));
                Record(route, fault);
            }
            if (!route.TypedPerFilterConfig.ContainsKey(ExtensionNames.LocalRateLimitFilter) && Target(_limitPolicies, backend) is { } limit)
            {
                route.TypedPerFilterConfig[ExtensionNames.LocalRateLimitFilter] = Any.Pack(RateLimitConfig(limit.Spec));
                Record(route, limit);
            }
        }
    }

    /// <summary>The one service every cluster of a route action belongs to, if there is one, with its port (-1 when the
    /// clusters are several ports of it, so a port-specific policy does not apply).</summary>
    private (string Ns, string Service, int Port)? Backend(RouteAction action)
    {
        IEnumerable<string> names = action.ClusterSpecifierCase switch
        {
            RouteAction.ClusterSpecifierOneofCase.Cluster => [action.Cluster],
            RouteAction.ClusterSpecifierOneofCase.WeightedClusters => action.WeightedClusters.Clusters.Select(c => c.Name),
            _ => [],
        };
        (string Ns, string Service, int Port)? found = null;
        foreach (var name in names)
        {
            if (!_clusters.TryGetValue(name, out var sp))
            {
                return null;
            }
            if (found is { } f && (f.Ns != sp.Ns || f.Service != sp.Service))
            {
                return null;
            }
            found = found is { } prev && prev.Port != sp.Port ? (sp.Ns, sp.Service, -1) : sp;
        }
        return found;
    }

    private static T? Target<T>(List<(T Policy, PolicyTargetReference Target)> policies, (string Ns, string Service, int Port) backend) where T : Resource =>
        policies.FirstOrDefault(p => p.Policy.Metadata.Namespace == backend.Ns && p.Target.Name == backend.Service
            && (p.Target.Port is null || p.Target.Port == backend.Port)).Policy;

    private void Record(EnvoyRoute route, Resource source)
    {
        var key = XdsNames.Key(source);
        _used.Add(key);
        if (!_sources.TryGetValue(route, out var list))
        {
            _sources[route] = list = [];
        }
        if (!list.Contains(key))
        {
            list.Add(key);
        }
    }

    /// <summary>The FaultInjection and RateLimit resources ("Kind/ns/name") the routes of <paramref name="rc"/> carry.</summary>
    public IEnumerable<string> SourcesOf(RouteConfiguration rc) =>
        rc.VirtualHosts.SelectMany(v => v.Routes).SelectMany(r => _sources.TryGetValue(r, out var list) ? list : []).Distinct();

    /// <summary>Notes, on every FaultInjection and RateLimit that reached no route, that it does nothing yet.</summary>
    public void NoteUnused(Action<Resource, string, bool> note)
    {
        foreach (var r in _faults.Values.Cast<Resource>().Concat(_limits.Values))
        {
            if (!_used.Contains(XdsNames.Key(r)))
            {
                note(r, "applies to no route yet: no HTTPRoute or GRPCRoute rule names it in an ExtensionRef filter, and no route sends all its traffic to its targetRef", false);
            }
        }
    }

    /// <summary>
    /// The HTTP filters of a connection manager whose routes are <paramref name="vhosts"/>: fault and local rate limit
    /// (optional, since proxyless gRPC clients lack it) when some route uses them, then the router.
    /// </summary>
    public static IEnumerable<HttpFilter> ChainFor(IEnumerable<VirtualHost> vhosts)
    {
        var routes = vhosts.SelectMany(v => v.Routes).ToList();
        if (routes.Any(r => r.TypedPerFilterConfig.ContainsKey(ExtensionNames.FaultFilter)))
        {
            yield return new HttpFilter { Name = ExtensionNames.FaultFilter, TypedConfig = Any.Pack(new HTTPFault()) };
        }
        if (routes.Any(r => r.TypedPerFilterConfig.ContainsKey(ExtensionNames.LocalRateLimitFilter)))
        {
            // Without a token bucket the filter passes everything; each route brings its own bucket.
            yield return new HttpFilter
            {
                Name = ExtensionNames.LocalRateLimitFilter,
                IsOptional = true,
                TypedConfig = Any.Pack(new LocalRateLimit { StatPrefix = RateLimitStatPrefix }),
            };
        }
        yield return new HttpFilter { Name = ExtensionNames.RouterFilter, TypedConfig = Any.Pack(new Router()) };
    }

    /// <summary>HTTPFault for a FaultInjection. With both statuses, gRPC ports abort with the grpc-status, others with the HTTP status.</summary>
    public static HTTPFault Fault(FaultInjectionSpec spec, ServiceProtocol protocol)
    {
        var fault = new HTTPFault();
        if (spec.Delay is { FixedDelay: { } delay } d)
        {
            fault.Delay = new FaultDelay { FixedDelay = Duration.FromTimeSpan(delay), Percentage = Percent(d.Percent ?? 100) };
        }
        if (spec.Abort is { } a)
        {
            fault.Abort = new FaultAbort { Percentage = Percent(a.Percent ?? 100) };
            if (a.GrpcStatus is { } grpc && (a.HttpStatus is null || protocol == ServiceProtocol.Grpc))
            {
                fault.Abort.GrpcStatus = (uint)grpc;
            }
            else
            {
                fault.Abort.HttpStatus = (uint)(a.HttpStatus ?? UnresolvedExtensionStatus);
            }
        }
        return fault;
    }

    /// <summary>A route's LocalRateLimit, wrapped in a FilterConfig marked optional so clients without the filter accept it.</summary>
    public static FilterConfig RateLimitConfig(RateLimitSpec spec)
    {
        var bucket = spec.TokenBucket ?? new TokenBucketSettings();
        var max = (uint)Math.Max(bucket.MaxTokens ?? 1, 1);
        var limit = new LocalRateLimit
        {
            StatPrefix = RateLimitStatPrefix,
            TokenBucket = new TokenBucket
            {
                MaxTokens = max,
                TokensPerFill = (uint)(bucket.TokensPerFill ?? (int)max),
                FillInterval = Duration.FromTimeSpan(bucket.FillInterval ?? TimeSpan.FromSeconds(1)),
            },
            // Envoy enforces nothing unless the filter is enabled and enforced for a share of requests: all of them.
            FilterEnabled = new RuntimeFractionalPercent { DefaultValue = Always.Clone() },
            FilterEnforced = new RuntimeFractionalPercent { DefaultValue = Always.Clone() },
            RateLimitedAsResourceExhausted = true,
        };
        return new FilterConfig { Config = Any.Pack(limit), IsOptional = true };
    }

    private static FractionalPercent Percent(int percent) =>
        new() { Numerator = (uint)Math.Clamp(percent, 0, 100), Denominator = FractionalPercent.Types.DenominatorType.Hundred };
}
