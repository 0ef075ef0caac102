using Envoy.Config.Cluster.V3;
using Envoy.Config.Core.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Extensions.TransportSockets.Tls.V3;
using Envoy.Type.Matcher.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Trellis.Api.Resources;
using Trellis.ControlPlane.Discovery;
using Trellis.ControlPlane.XdsServer;
using Trellis.Xds;
using ApiService = Trellis.Api.Resources.Service;
using EnvoyRoute = Envoy.Config.Route.V3.Route;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;
using EnvoyEndpoint = Envoy.Config.Endpoint.V3.Endpoint;
using EnvoyListener = Envoy.Config.Listener.V3.Listener;

namespace Trellis.ControlPlane.Translation;

/// <summary>Whether a resource made it into the served configuration, and why not where it did not.</summary>
internal sealed record TranslationStatus(bool Accepted, IReadOnlyList<string> Reasons);

/// <summary>A snapshot and what translation had to say about each input resource.</summary>
internal sealed record TranslationResult(XdsSnapshot Snapshot, IReadOnlyDictionary<string, TranslationStatus> Statuses);

/// <summary>
/// Turns mesh resources and discovered instances into Envoy v3 resources: per service port one Cluster, one
/// ClusterLoadAssignment, one RouteConfiguration, and api listeners under every name a proxyless client may dial.
/// Pure: the same inputs give byte-identical resources (and so the same versions).
/// </summary>
internal static class MeshTranslator
{
    public const string InlineRoutesAnnotation = "trellis.dev/route-config";

    private static readonly ConfigSource Ads = new() { Ads = new AggregatedConfigSource(), ResourceApiVersion = Envoy.Config.Core.V3.ApiVersion.V3 };

    public static TranslationResult Translate(MeshInputs inputs, long sequence)
    {
        var statuses = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var rejected = new HashSet<string>(StringComparer.Ordinal);
        void Note(Resource r, string reason, bool reject = false)
        {
            var key = XdsNames.Key(r);
            if (!statuses.TryGetValue(key, out var list))
            {
                statuses[key] = list = [];
            }
            if (!list.Contains(reason))
            {
                list.Add(reason);
            }
            if (reject)
            {
                rejected.Add(key);
            }
        }

        var services = inputs.Services.ToDictionary(s => (s.Metadata.Namespace, s.Metadata.Name));
        var policies = new Dictionary<(string, string), TrafficPolicy>();
        foreach (var p in inputs.TrafficPolicies.OrderBy(p => p.Metadata.Name, StringComparer.Ordinal))
        {
            var target = (p.Metadata.Namespace, p.Spec.TargetRef.Name);
            if (!services.ContainsKey(target))
            {
                Note(p, $"targetRef Service \"{p.Spec.TargetRef.Name}\" does not exist; the policy applies to nothing", reject: true);
            }
            else if (!policies.TryAdd(target, p))
            {
                Note(p, $"Service \"{p.Spec.TargetRef.Name}\" already has TrafficPolicy \"{policies[target].Metadata.Name}\"; this one is ignored", reject: true);
            }
        }

        var listeners = new List<XdsResource>();
        var routes = new List<XdsResource>();
        var clusters = new List<XdsResource>();
        var endpoints = new List<XdsResource>();
        var provenance = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        var localized = new Dictionary<string, Func<ClientLocality, IMessage>>(StringComparer.Ordinal);
        var sidecars = new SidecarResources();
        // Clusters as sidecars get them when they differ from what proxyless clients get (upstream TLS: grpc-js-xds
        // NACKs a validation context without a certificate provider instance, so only sidecars see the transport socket).
        var sidecarClusters = new Dictionary<string, XdsResource>(StringComparer.Ordinal);
        var outboundSources = new SortedSet<string>(StringComparer.Ordinal);
        var routeFilters = new RouteFilters(inputs, services, Note);

        // Routes attached to each service port, in Gateway API precedence order.
        var attached = CollectRoutes(inputs, services, routeFilters, Note);

        foreach (var svc in inputs.Services.OrderBy(s => s.Metadata.Namespace, StringComparer.Ordinal).ThenBy(s => s.Metadata.Name, StringComparer.Ordinal))
        {
            var ns = svc.Metadata.Namespace;
            policies.TryGetValue((ns, svc.Metadata.Name), out var policy);
            var inline = svc.Metadata.Annotations?.TryGetValue(InlineRoutesAnnotation, out var mode) == true && mode == "inline";
            for (var i = 0; i < svc.Spec.Ports.Count; i++)
            {
                var port = svc.Spec.Ports[i];
                var name = XdsNames.ServicePort(svc.Metadata.Name, ns, port.Port);
                var sources = new List<string> { XdsNames.Key(svc) };
                if (policy is not null)
                {
                    sources.Add(XdsNames.Key(policy));
                }

                // Cluster and its endpoints.
                var cluster = BuildCluster(name, policy);
                clusters.Add(new XdsResource(name, cluster));
                if (UpstreamTransportSocket(policy, port.Protocol) is { } transport)
                {
                    var secured = cluster.Clone();
                    secured.TransportSocket = transport;
                    sidecarClusters[name] = new XdsResource(name, secured);
                }
                provenance[TypeUrls.Cluster + "|" + name] = sources;
                var eps = EndpointResolver.Resolve(svc, port, inputs);
                endpoints.Add(new XdsResource(name, BuildLoadAssignment(name, eps, null)));
                if (policy?.Spec.Failover is { Order.Count: > 0 } failover)
                {
                    var order = failover.Order;
                    localized[name] = client => BuildLoadAssignment(name, eps, e => FailoverPriority(e, client, order));
                }
                provenance[TypeUrls.ClusterLoadAssignment + "|" + name] = [XdsNames.Key(svc), .. eps.Select(e => e.Source).Distinct()];

                // Routes: attached rules first, then the service itself for everything else.
                attached.TryGetValue((ns, svc.Metadata.Name, port.Port), out var rules);
                var routeConfig = BuildRouteConfiguration(name, rules ?? [], policy);
                routeFilters.ApplyPolicies(routeConfig, port.Protocol);
                var filterSources = routeFilters.SourcesOf(routeConfig).ToList();
                var routeSources = new List<string>(sources);
                routeSources.AddRange((rules ?? []).Select(r => r.SourceKey).Distinct());
                routeSources.AddRange(filterSources);
                sidecars.Add(svc, port, i == 0, routeConfig, m => Note(svc, m));
                if (port.Protocol != ServiceProtocol.Tcp)
                {
                    outboundSources.UnionWith(routeSources);
                }
                if (!inline)
                {
                    routes.Add(new XdsResource(name, routeConfig));
                    provenance[TypeUrls.RouteConfiguration + "|" + name] = routeSources;
                }

                var hcm = new HttpConnectionManager { StatPrefix = name };
                if (inline)
                {
                    hcm.RouteConfig = routeConfig;
                }
                else
                {
                    hcm.Rds = new Rds { ConfigSource = Ads, RouteConfigName = name };
                }
                hcm.HttpFilters.AddRange(RouteFilters.ChainFor(routeConfig.VirtualHosts));
                var hcmAny = Any.Pack(hcm);
                foreach (var listenerName in XdsNames.ListenerNames(svc.Metadata.Name, ns, port.Port, i == 0))
                {
                    var listener = new EnvoyListener { Name = listenerName, ApiListener = new ApiListener { ApiListener_ = hcmAny } };
                    listeners.Add(new XdsResource(listenerName, listener));
                    provenance[TypeUrls.Listener + "|" + listenerName] = inline ? routeSources : [.. sources, .. filterSources];
                }
            }
        }

        routes.Add(sidecars.OutboundRoutes());
        var outbound = sidecars.OutboundListener();
        provenance[TypeUrls.RouteConfiguration + "|" + SidecarResources.OutboundRouteName] = [.. outboundSources];
        provenance[TypeUrls.Listener + "|" + SidecarResources.OutboundListenerName] = [.. outboundSources];
        routeFilters.NoteUnused(Note);

        // What differs per client: endpoint priorities under locality failover, and a sidecar's socket listeners
        // (the shared outbound one and its own service's inbound one) in place of the api listeners.
        XdsSnapshot View(XdsSnapshot published, ClientView view)
        {
            var replaced = new Dictionary<string, XdsResourceSet>(StringComparer.Ordinal);
            if (localized.Count > 0)
            {
                replaced[TypeUrls.ClusterLoadAssignment] = new(published.Get(TypeUrls.ClusterLoadAssignment).Items.Values
                    .Select(r => localized.TryGetValue(r.Name, out var build) ? new XdsResource(r.Name, build(view.Locality)) : r));
            }
            if (view.Role == ClientRole.Sidecar)
            {
                var lds = new List<XdsResource> { outbound };
                var cds = published.Get(TypeUrls.Cluster).Items.Values
                    .Select(r => sidecarClusters.TryGetValue(r.Name, out var secured) ? secured : r).ToList();
                if (sidecars.Inbound(view.Namespace, view.Service) is { } inbound)
                {
                    lds.Add(inbound.Listener);
                    cds.AddRange(inbound.Clusters);
                }
                replaced[TypeUrls.Listener] = new(lds);
                replaced[TypeUrls.Cluster] = new(cds);
            }
            return replaced.Count == 0 ? published : published.With(replaced);
        }

        var snapshot = new XdsSnapshot(sequence, new Dictionary<string, XdsResourceSet>
        {
            [TypeUrls.Listener] = new(Dedupe(listeners)),
            [TypeUrls.RouteConfiguration] = new(routes),
            [TypeUrls.Cluster] = new(clusters),
            [TypeUrls.ClusterLoadAssignment] = new(endpoints),
        }, provenance, View,
            viewsVersion: ContentVersion.Of(sidecarClusters.Values.OrderBy(r => r.Name, StringComparer.Ordinal).Select(r => r.Name + "=" + r.Version)));

        var all = new List<Resource>();
        all.AddRange(inputs.Services);
        all.AddRange(inputs.WorkloadEntries);
        all.AddRange(inputs.HttpRoutes);
        all.AddRange(inputs.GrpcRoutes);
        all.AddRange(inputs.TcpRoutes);
        all.AddRange(inputs.TrafficPolicies);
        all.AddRange(inputs.FaultInjections);
        all.AddRange(inputs.RateLimits);
        if (inputs.Mesh is not null)
        {
            all.Add(inputs.Mesh);
        }
        var result = all.ToDictionary(XdsNames.Key, r =>
        {
            var key = XdsNames.Key(r);
            return new TranslationStatus(!rejected.Contains(key), statuses.TryGetValue(key, out var l) ? l : []);
        }, StringComparer.Ordinal);
        return new TranslationResult(snapshot, result);
    }

    /// <summary>
    /// Two services may both claim a short listener name (a port of "greeter" in namespace default and a service
    /// named "greeter.default"); the first in name order keeps it.
    /// </summary>
    private static IEnumerable<XdsResource> Dedupe(List<XdsResource> resources)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        return resources.Where(r => seen.Add(r.Name));
    }

    private sealed record AttachedRule(string SourceKey, int Order, EnvoyRoute Route);

    private static Dictionary<(string Ns, string Service, int Port), List<AttachedRule>> CollectRoutes(
        MeshInputs inputs, Dictionary<(string, string), ApiService> services, RouteFilters routeFilters, Action<Resource, string, bool> note)
    {
        var result = new Dictionary<(string, string, int), List<AttachedRule>>();
        void Attach(Resource route, ParentReference parent, Func<ApiService, ServicePort, IEnumerable<(EnvoyRoute Route, int Order)>> build)
        {
            var ns = parent.Namespace ?? route.Metadata.Namespace;
            if (!services.TryGetValue((ns, parent.Name), out var svc))
            {
                note(route, $"parentRef Service \"{ns}/{parent.Name}\" does not exist; not attached", true);
                return;
            }
            foreach (var port in svc.Spec.Ports.Where(p => parent.Port is null || p.Port == parent.Port))
            {
                var key = (ns, svc.Metadata.Name, port.Port);
                if (!result.TryGetValue(key, out var list))
                {
                    result[key] = list = [];
                }
                list.AddRange(build(svc, port).Select(b => new AttachedRule(XdsNames.Key(route), b.Order, b.Route)));
            }
        }

        foreach (var hr in inputs.HttpRoutes)
        {
            foreach (var parent in hr.Spec.ParentRefs)
            {
                Attach(hr, parent, (svc, port) => RouteBuilder.HttpRules(hr, svc, port, services, inputs.TrafficPolicies, routeFilters, m => note(hr, m, false)));
            }
        }
        foreach (var gr in inputs.GrpcRoutes)
        {
            foreach (var parent in gr.Spec.ParentRefs)
            {
                Attach(gr, parent, (svc, port) => RouteBuilder.GrpcRules(gr, svc, port, services, routeFilters, m => note(gr, m, false)));
            }
        }
        foreach (var list in result.Values)
        {
            list.Sort((a, b) => a.Order.CompareTo(b.Order) is var c and not 0 ? c : string.CompareOrdinal(a.SourceKey, b.SourceKey));
        }
        return result;
    }

    private static RouteConfiguration BuildRouteConfiguration(string name, IReadOnlyList<AttachedRule> rules, TrafficPolicy? policy)
    {
        var vhost = new VirtualHost { Name = name };
        vhost.Domains.Add("*");
        foreach (var r in rules)
        {
            vhost.Routes.Add(r.Route);
        }
        var fallback = new EnvoyRoute
        {
            Name = "default",
            Match = new RouteMatch { Prefix = "/" },
            Route_ = new RouteAction { Cluster = name },
        };
        RouteBuilder.ApplyPolicy(fallback.Route_, policy, null);
        vhost.Routes.Add(fallback);
        var rc = new RouteConfiguration { Name = name };
        rc.VirtualHosts.Add(vhost);
        return rc;
    }

    private static EnvoyCluster BuildCluster(string name, TrafficPolicy? policy)
    {
        var cluster = new EnvoyCluster
        {
            Name = name,
            Type = EnvoyCluster.Types.DiscoveryType.Eds,
            EdsClusterConfig = new EnvoyCluster.Types.EdsClusterConfig { EdsConfig = Ads, ServiceName = name },
            ConnectTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(5)),
            LbPolicy = EnvoyCluster.Types.LbPolicy.RoundRobin,
        };
        if (policy is null)
        {
            return cluster;
        }
        var spec = policy.Spec;
        if (spec.LoadBalancer is { } lb)
        {
            cluster.LbPolicy = lb.Algorithm switch
            {
                LoadBalancerAlgorithm.LeastRequest => EnvoyCluster.Types.LbPolicy.LeastRequest,
                LoadBalancerAlgorithm.Random => EnvoyCluster.Types.LbPolicy.Random,
                LoadBalancerAlgorithm.RingHash => EnvoyCluster.Types.LbPolicy.RingHash,
                // EWMA is a Trellis proxy balancer; standard clients see round robin.
                _ => EnvoyCluster.Types.LbPolicy.RoundRobin,
            };
            if (lb.Algorithm == LoadBalancerAlgorithm.Ewma)
            {
                cluster.Metadata = TrellisMetadata(ExtensionNames.LbPolicyKey, ExtensionNames.EwmaLbPolicy);
            }
        }
        if (spec.ConnectionPool is { } pool)
        {
            var t = new CircuitBreakers.Types.Thresholds { Priority = RoutingPriority.Default };
            if (pool.MaxConnections is int mc) { t.MaxConnections = (uint)mc; }
            if (pool.MaxPendingRequests is int mp) { t.MaxPendingRequests = (uint)mp; }
            if (pool.MaxRequests is int mr) { t.MaxRequests = (uint)mr; }
            if (pool.MaxRetries is int rt) { t.MaxRetries = (uint)rt; }
            cluster.CircuitBreakers = new CircuitBreakers();
            cluster.CircuitBreakers.Thresholds.Add(t);
            if (pool.MaxRequestsPerConnection is not null || pool.IdleTimeout is not null)
            {
                cluster.TypedExtensionProtocolOptions[ExtensionNames.UpstreamHttpProtocolOptions] = Any.Pack(UpstreamHttpOptions(pool));
            }
        }
        if (spec.Retries?.BudgetPercent is int budget)
        {
            cluster.CircuitBreakers ??= new CircuitBreakers();
            if (cluster.CircuitBreakers.Thresholds.Count == 0)
            {
                cluster.CircuitBreakers.Thresholds.Add(new CircuitBreakers.Types.Thresholds { Priority = RoutingPriority.Default });
            }
            cluster.CircuitBreakers.Thresholds[0].RetryBudget = new CircuitBreakers.Types.Thresholds.Types.RetryBudget
            {
                BudgetPercent = new Envoy.Type.V3.Percent { Value = budget },
            };
        }
        if (spec.OutlierDetection is { } od)
        {
            var o = new OutlierDetection();
            if (od.Consecutive5xx is int c5) { o.Consecutive5Xx = (uint)c5; }
            if (od.ConsecutiveGatewayErrors is int cg) { o.ConsecutiveGatewayFailure = (uint)cg; }
            if (od.Interval is TimeSpan iv) { o.Interval = Duration.FromTimeSpan(iv); }
            if (od.BaseEjectionTime is TimeSpan be) { o.BaseEjectionTime = Duration.FromTimeSpan(be); }
            if (od.MaxEjectionPercent is int mx) { o.MaxEjectionPercent = (uint)mx; }
            cluster.OutlierDetection = o;
        }
        return cluster;
    }

    /// <summary>
    /// The TLS transport socket of a sidecar's cluster for a service port whose TrafficPolicy says tls mode SIMPLE:
    /// ALPN by the port's protocol (h2 for http2 and grpc, http/1.1 for http, none for tcp), SNI only when given,
    /// trust from caCertificates (else the system store) or none with insecureSkipVerify. Null: plaintext.
    /// </summary>
    internal static TransportSocket? UpstreamTransportSocket(TrafficPolicy? policy, ServiceProtocol protocol)
    {
        if (policy?.Spec.Tls is not { Mode: UpstreamTlsMode.Simple } tls)
        {
            return null;
        }
        var common = new CommonTlsContext();
        switch (protocol)
        {
            case ServiceProtocol.Http2 or ServiceProtocol.Grpc:
                common.AlpnProtocols.Add("h2");
                break;
            case ServiceProtocol.Http:
                common.AlpnProtocols.Add("http/1.1");
                break;
        }
        if (tls.InsecureSkipVerify)
        {
            common.ValidationContext = new CertificateValidationContext
            {
                TrustChainVerification = CertificateValidationContext.Types.TrustChainVerification.AcceptUntrusted,
            };
        }
        else if (tls.CaCertificates is { } pem)
        {
            common.ValidationContext = new CertificateValidationContext { TrustedCa = new DataSource { InlineString = pem } };
        }
        var context = new UpstreamTlsContext { CommonTlsContext = common, Sni = tls.Sni ?? "" };
        return new TransportSocket { Name = ExtensionNames.TlsTransportSocket, TypedConfig = Any.Pack(context) };
    }

    /// <summary>Cluster metadata under the "trellis.dev" filter namespace: what only Trellis proxies read.</summary>
    private static Metadata TrellisMetadata(string key, string value)
    {
        var fields = new Struct();
        fields.Fields[key] = Value.ForString(value);
        var metadata = new Metadata();
        metadata.FilterMetadata[ExtensionNames.TrellisMetadata] = fields;
        return metadata;
    }

    /// <summary>Upstream connection reuse limits. Envoy requires a protocol choice: keep the caller's protocol.</summary>
    private static Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions UpstreamHttpOptions(ConnectionPoolSettings pool)
    {
        var common = new HttpProtocolOptions();
        if (pool.MaxRequestsPerConnection is int perConnection)
        {
            common.MaxRequestsPerConnection = (uint)perConnection;
        }
        if (pool.IdleTimeout is TimeSpan idle)
        {
            common.IdleTimeout = Duration.FromTimeSpan(idle);
        }
        return new Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions
        {
            CommonHttpProtocolOptions = common,
            UseDownstreamProtocolConfig = new Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions.Types.UseDownstreamHttpConfig(),
        };
    }

    /// <summary>
    /// Priority of an endpoint for a client under a failover order such as [zone, region, cluster]: 0 when it
    /// shares the client's zone, 1 its region, 2 its cluster, 3 otherwise (levels not in the order are skipped).
    /// </summary>
    internal static int FailoverPriority(ServiceEndpoint e, ClientLocality client, IReadOnlyList<string> order)
    {
        for (var i = 0; i < order.Count; i++)
        {
            var same = order[i] switch
            {
                "zone" => e.Region == client.Region && e.Zone == client.Zone && e.Cluster == client.Cluster,
                "region" => e.Region == client.Region && e.Cluster == client.Cluster,
                "cluster" => e.Cluster == client.Cluster,
                _ => false,
            };
            if (same)
            {
                return i;
            }
        }
        return order.Count;
    }

    /// <summary>Endpoints grouped by priority and locality; priorities renumbered 0, 1, 2... without gaps.</summary>
    private static ClusterLoadAssignment BuildLoadAssignment(string name, IReadOnlyList<ServiceEndpoint> endpoints, Func<ServiceEndpoint, int>? priorityOf)
    {
        var cla = new ClusterLoadAssignment { ClusterName = name };
        var raw = endpoints.Select(e => priorityOf?.Invoke(e) ?? 0).Distinct().Order().ToList();
        foreach (var group in endpoints.GroupBy(e => (Priority: raw.IndexOf(priorityOf?.Invoke(e) ?? 0), e.Region, e.Zone, e.SubZone))
                     .OrderBy(g => g.Key.Priority).ThenBy(g => g.Key.Region, StringComparer.Ordinal)
                     .ThenBy(g => g.Key.Zone, StringComparer.Ordinal).ThenBy(g => g.Key.SubZone, StringComparer.Ordinal))
        {
            var locality = new LocalityLbEndpoints
            {
                Locality = new Envoy.Config.Core.V3.Locality { Region = group.Key.Region, Zone = group.Key.Zone, SubZone = group.Key.SubZone },
                // Clients drop a locality without a weight; a locality weighs what its endpoints weigh.
                LoadBalancingWeight = (uint)group.Sum(e => e.Weight),
                Priority = (uint)group.Key.Priority,
            };
            foreach (var e in group)
            {
                locality.LbEndpoints.Add(new LbEndpoint
                {
                    Endpoint = new EnvoyEndpoint { Address = new Address { SocketAddress = new SocketAddress { Address = e.Address, PortValue = (uint)e.Port } } },
                    HealthStatus = e.Health switch
                    {
                        EndpointHealth.Unhealthy => HealthStatus.Unhealthy,
                        EndpointHealth.Draining => HealthStatus.Draining,
                        _ => HealthStatus.Healthy,
                    },
                    LoadBalancingWeight = (uint)e.Weight,
                });
            }
            cla.Endpoints.Add(locality);
        }
        return cla;
    }
}
