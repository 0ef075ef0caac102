using Envoy.Config.Cluster.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Trellis.Api;
using Trellis.Api.Resources;
using Trellis.ControlPlane.Translation;
using Trellis.ControlPlane.XdsServer;
using Trellis.Xds;
using Xunit;

namespace Trellis.ControlPlane.Tests.Translation;

public sealed class MeshTranslatorTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    internal static MeshInputs Inputs(string yaml)
    {
        var read = ResourceReader.Read(yaml, "t.yaml");
        Assert.True(read.Ok, string.Join("\n", read.Errors));
        var all = read.Resources.Select(r => r.Resource).ToList();
        return new MeshInputs(all.OfType<Service>().ToList(), all.OfType<WorkloadEntry>().ToList(), all.OfType<HttpRoute>().ToList(),
            all.OfType<GrpcRoute>().ToList(), all.OfType<TcpRoute>().ToList(), all.OfType<TrafficPolicy>().ToList(),
            all.OfType<MeshConfig>().FirstOrDefault(), [], "primary", Now)
        {
            FaultInjections = all.OfType<FaultInjection>().ToList(),
            RateLimits = all.OfType<RateLimit>().ToList(),
        };
    }

    internal const string Base = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec: {selector: {app: greeter}, ports: [{name: grpc, port: 50051, protocol: grpc}]}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter-v1}
        spec: {selector: {app: greeter, version: v1}, ports: [{name: grpc, port: 50051, protocol: grpc}]}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter-v2}
        spec: {selector: {app: greeter, version: v2}, ports: [{name: grpc, port: 50051, protocol: grpc}]}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: a}
        spec: {address: 127.0.0.1, ports: {grpc: 50061}, labels: {app: greeter, version: v1}, locality: {region: r1, zone: zone-a}, weight: 1}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: b}
        spec: {address: 127.0.0.2, ports: {grpc: 50062}, labels: {app: greeter, version: v2}, locality: {region: r1, zone: zone-b}, weight: 3}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: c}
        spec: {address: 127.0.0.3, ports: {grpc: 50063}, labels: {app: greeter, version: v2}, locality: {region: r1, zone: zone-b}, health: draining}
        """;

    private static ClientView Proxyless(string region, string zone) => new(new ClientLocality(region, zone, "primary"), ClientRole.Proxyless, "", "");

    internal static T One<T>(XdsSnapshot s, string typeUrl, string name) where T : Google.Protobuf.IMessage<T>, new() =>
        s.Get(typeUrl).Items[name].Any.Unpack<T>();

    [Fact]
    public void Translate_ServiceWithEndpoints_BuildsEveryResourceUnderItsXdsName()
    {
        var s = MeshTranslator.Translate(Inputs(Base), 1).Snapshot;

        var cluster = One<Cluster>(s, TypeUrls.Cluster, "greeter.default:50051");
        Assert.Equal(Cluster.Types.DiscoveryType.Eds, cluster.Type);
        Assert.NotNull(cluster.EdsClusterConfig.EdsConfig.Ads);

        var cla = One<ClusterLoadAssignment>(s, TypeUrls.ClusterLoadAssignment, "greeter.default:50051");
        Assert.Equal(["zone-a", "zone-b"], cla.Endpoints.Select(l => l.Locality.Zone));
        Assert.Equal([1u, 4u], cla.Endpoints.Select(l => l.LoadBalancingWeight ?? 0));
        var draining = cla.Endpoints[1].LbEndpoints.Single(e => e.Endpoint.Address.SocketAddress.PortValue == 50063);
        Assert.Equal(Envoy.Config.Core.V3.HealthStatus.Draining, draining.HealthStatus);

        foreach (var name in new[] { "greeter", "greeter.default", "greeter.default:50051", "greeter:50051" })
        {
            var listener = One<Listener>(s, TypeUrls.Listener, name);
            var hcm = listener.ApiListener.ApiListener_.Unpack<HttpConnectionManager>();
            Assert.Equal("greeter.default:50051", hcm.Rds.RouteConfigName);
            Assert.Equal("envoy.filters.http.router", hcm.HttpFilters.Last().Name);
        }
        Assert.Empty(SnapshotConsistency.Check(s));
    }

    [Fact]
    public void Translate_SameInputsTwice_GivesSameVersions()
    {
        var a = MeshTranslator.Translate(Inputs(Base), 1).Snapshot;
        var b = MeshTranslator.Translate(Inputs(Base), 2).Snapshot;
        Assert.Equal(a.Version, b.Version);
        Assert.Equal(a.Get(TypeUrls.ClusterLoadAssignment).Items["greeter.default:50051"].Version, b.Get(TypeUrls.ClusterLoadAssignment).Items["greeter.default:50051"].Version);
    }

    [Fact]
    public void Translate_HttpRouteSplit_BuildsWeightedClustersBeforeTheFallback()
    {
        var s = MeshTranslator.Translate(Inputs(Base + """

            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: canary}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 50051}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-canary, value: "1"}]}]
                backendRefs: [{kind: Service, name: greeter-v2, port: 50051}]
              - backendRefs:
                - {kind: Service, name: greeter-v1, port: 50051, weight: 90}
                - {kind: Service, name: greeter-v2, port: 50051, weight: 10}
                timeouts: {request: 5s}
            """), 1).Snapshot;

        var rc = One<RouteConfiguration>(s, TypeUrls.RouteConfiguration, "greeter.default:50051");
        var routes = rc.VirtualHosts.Single().Routes;
        Assert.Equal("greeter-v2.default:50051", routes[0].Route_.Cluster);
        Assert.Equal("x-canary", routes[0].Match.Headers.Single().Name);
        var split = routes[1].Route_.WeightedClusters.Clusters;
        Assert.Equal([("greeter-v1.default:50051", 90u), ("greeter-v2.default:50051", 10u)], split.Select(c => (c.Name, c.Weight ?? 0)));
        Assert.Equal(5, routes[1].Route_.Timeout.Seconds);
        Assert.Equal("default", routes[^1].Name);
        Assert.Empty(SnapshotConsistency.Check(s));
    }

    [Fact]
    public void Translate_GrpcRouteMethodMatch_BecomesExactPath()
    {
        var s = MeshTranslator.Translate(Inputs(Base + """

            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: GRPCRoute
            metadata: {name: hello}
            spec:
              parentRefs: [{kind: Service, name: greeter}]
              rules:
              - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
                backendRefs: [{kind: Service, name: greeter-v2, port: 50051}]
            """), 1).Snapshot;
        var route = One<RouteConfiguration>(s, TypeUrls.RouteConfiguration, "greeter.default:50051").VirtualHosts[0].Routes[0];
        Assert.Equal("/helloworld.Greeter/SayHello", route.Match.Path);
        Assert.Equal("greeter-v2.default:50051", route.Route_.Cluster);
    }

    [Fact]
    public void Translate_InlineAnnotation_PutsTheRouteConfigInTheListener()
    {
        var yaml = Base.Replace("metadata: {name: greeter}", "metadata: {name: greeter, annotations: {trellis.dev/route-config: inline}}", StringComparison.Ordinal);
        var s = MeshTranslator.Translate(Inputs(yaml), 1).Snapshot;
        var hcm = One<Listener>(s, TypeUrls.Listener, "greeter").ApiListener.ApiListener_.Unpack<HttpConnectionManager>();
        Assert.Null(hcm.Rds);
        Assert.Equal("greeter.default:50051", hcm.RouteConfig.VirtualHosts[0].Routes[0].Route_.Cluster);
        Assert.False(s.Get(TypeUrls.RouteConfiguration).Items.ContainsKey("greeter.default:50051"));
        Assert.Empty(SnapshotConsistency.Check(s));
    }

    [Fact]
    public void Translate_TrafficPolicy_SetsLbPolicyBreakersOutlierAndRetries()
    {
        var s = MeshTranslator.Translate(Inputs(Base + """

            ---
            apiVersion: trellis.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: greeter}
            spec:
              targetRef: {kind: Service, name: greeter}
              loadBalancer: {algorithm: RingHash, hashOn: {header: x-user}}
              connectionPool: {maxConnections: 10, maxPendingRequests: 20, maxRequests: 30}
              outlierDetection: {consecutive5xx: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
              retries: {attempts: 2, perTryTimeout: 2s, retryOn: [connect-failure, 5xx], budgetPercent: 20}
              timeout: 15s
            """), 1).Snapshot;
        var cluster = One<Cluster>(s, TypeUrls.Cluster, "greeter.default:50051");
        Assert.Equal(Cluster.Types.LbPolicy.RingHash, cluster.LbPolicy);
        Assert.Equal(10u, cluster.CircuitBreakers.Thresholds[0].MaxConnections);
        Assert.Equal(20.0, cluster.CircuitBreakers.Thresholds[0].RetryBudget.BudgetPercent.Value);
        Assert.Equal(5u, cluster.OutlierDetection.Consecutive5Xx);
        var action = One<RouteConfiguration>(s, TypeUrls.RouteConfiguration, "greeter.default:50051").VirtualHosts[0].Routes[^1].Route_;
        Assert.Equal("connect-failure,5xx", action.RetryPolicy.RetryOn);
        Assert.Equal(2u, action.RetryPolicy.NumRetries);
        Assert.Equal(15, action.Timeout.Seconds);
        Assert.Equal("x-user", action.HashPolicy[0].Header.HeaderName);
    }

    [Fact]
    public void ForClient_FailoverOrder_GivesPrioritiesRelativeToTheClientWithoutGaps()
    {
        var s = MeshTranslator.Translate(Inputs(Base + """

            ---
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: far}
            spec: {address: 127.0.0.9, ports: {grpc: 50069}, labels: {app: greeter}, locality: {region: r2, zone: zone-x}}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: greeter}
            spec:
              targetRef: {kind: Service, name: greeter}
              failover: {order: [zone, region]}
            """), 1).Snapshot;

        // The published snapshot has every locality at priority 0.
        Assert.All(One<ClusterLoadAssignment>(s, TypeUrls.ClusterLoadAssignment, "greeter.default:50051").Endpoints, l => Assert.Equal(0u, l.Priority));

        var inZoneB = s.ForClient(Proxyless("r1", "zone-b"));
        var cla = One<ClusterLoadAssignment>(inZoneB, TypeUrls.ClusterLoadAssignment, "greeter.default:50051");
        var byZone = cla.Endpoints.ToDictionary(l => l.Locality.Zone, l => l.Priority);
        Assert.Equal(0u, byZone["zone-b"]);   // same zone
        Assert.Equal(1u, byZone["zone-a"]);   // same region
        Assert.Equal(2u, byZone["zone-x"]);   // elsewhere
        Assert.Same(inZoneB, s.ForClient(Proxyless("r1", "zone-b")));

        // A client far from everything: one priority per distance, renumbered from 0.
        var elsewhere = One<ClusterLoadAssignment>(s.ForClient(Proxyless("r9", "z9")), TypeUrls.ClusterLoadAssignment, "greeter.default:50051");
        Assert.All(elsewhere.Endpoints, l => Assert.Equal(0u, l.Priority));

        // Services without a failover order are the same for every client.
        Assert.Same(s.Get(TypeUrls.ClusterLoadAssignment).Items["greeter-v1.default:50051"].Any,
            inZoneB.Get(TypeUrls.ClusterLoadAssignment).Items["greeter-v1.default:50051"].Any);
    }

    [Fact]
    public void ForClient_Sidecar_GetsOutboundAndItsOwnInboundListenerInsteadOfApiListeners()
    {
        var s = MeshTranslator.Translate(Inputs(Base + """

            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: db}
            spec: {selector: {app: db}, ports: [{name: sql, port: 5432, protocol: tcp}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: web}
            spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
            """), 1).Snapshot;
        var view = s.ForClient(new ClientView(new ClientLocality("", "", "primary"), ClientRole.Sidecar, "web", "default"));

        Assert.Equal(["trellis.inbound|web.default", "trellis.outbound"], view.Get(TypeUrls.Listener).Items.Keys.Order());
        var outbound = One<Listener>(view, TypeUrls.Listener, "trellis.outbound");
        Assert.Equal(15001u, outbound.Address.SocketAddress.PortValue);
        var tcpChain = outbound.FilterChains.Single();
        Assert.Equal(5432u, tcpChain.FilterChainMatch.DestinationPort);
        Assert.Equal("db.default:5432", tcpChain.Filters[0].TypedConfig.Unpack<Envoy.Extensions.Filters.Network.TcpProxy.V3.TcpProxy>().Cluster);
        Assert.Equal(SidecarResources.OutboundRouteName, outbound.DefaultFilterChain.Filters[0].TypedConfig.Unpack<HttpConnectionManager>().Rds.RouteConfigName);

        var routes = One<RouteConfiguration>(view, TypeUrls.RouteConfiguration, SidecarResources.OutboundRouteName);
        var greeter = routes.VirtualHosts.Single(v => v.Name == "greeter.default:50051");
        Assert.Contains("greeter", greeter.Domains);
        Assert.Contains("greeter.default.svc.cluster.local:50051", greeter.Domains);
        Assert.Equal(routes.VirtualHosts.SelectMany(v => v.Domains).Count(), routes.VirtualHosts.SelectMany(v => v.Domains).Distinct().Count());

        var inbound = One<Listener>(view, TypeUrls.Listener, "trellis.inbound|web.default");
        Assert.Equal(15006u, inbound.Address.SocketAddress.PortValue);
        Assert.Equal(8080u, inbound.FilterChains.Single().FilterChainMatch.DestinationPort);
        var local = One<Cluster>(view, TypeUrls.Cluster, "inbound|80|web.default");
        Assert.Equal(Cluster.Types.DiscoveryType.Static, local.Type);
        Assert.Equal(8080u, local.LoadAssignment.Endpoints[0].LbEndpoints[0].Endpoint.Address.SocketAddress.PortValue);

        // Proxyless clients keep the api listeners and never see inbound clusters.
        var proxyless = s.ForClient(Proxyless("", ""));
        Assert.Contains("greeter", proxyless.Get(TypeUrls.Listener).Items.Keys);
        Assert.DoesNotContain("inbound|80|web.default", proxyless.Get(TypeUrls.Cluster).Items.Keys);
    }

    [Theory]
    [InlineData("web.default~10.0.0.5~1234", null, "Sidecar", "web", "default")]
    [InlineData("client-7", null, "Proxyless", "", "")]
    [InlineData("anything", "sidecar", "Sidecar", "", "default")]
    public void ClientViewOf_NodeIdAndMetadata_TellSidecarsFromProxylessClients(string id, string? proxyMeta, string role, string service, string ns)
    {
        var node = new Envoy.Config.Core.V3.Node { Id = id, Locality = new Envoy.Config.Core.V3.Locality { Region = "r", Zone = "z" } };
        if (proxyMeta is not null)
        {
            node.Metadata = new Google.Protobuf.WellKnownTypes.Struct();
            node.Metadata.Fields[ClientView.ProxyMetadataKey] = Google.Protobuf.WellKnownTypes.Value.ForString(proxyMeta);
        }
        var view = ClientView.Of(node, "primary");
        Assert.Equal(role, view.Role.ToString());
        Assert.Equal((service, ns), (view.Service, view.Namespace));
        Assert.Equal(new ClientLocality("r", "z", "primary"), view.Locality);
    }

    [Fact]
    public void Check_DanglingRouteConfigName_IsReported()
    {
        var s = MeshTranslator.Translate(Inputs(Base), 1).Snapshot;
        var broken = new XdsSnapshot(2, new Dictionary<string, XdsResourceSet>
        {
            [TypeUrls.Listener] = s.Get(TypeUrls.Listener),
            [TypeUrls.Cluster] = s.Get(TypeUrls.Cluster),
            [TypeUrls.ClusterLoadAssignment] = s.Get(TypeUrls.ClusterLoadAssignment),
            [TypeUrls.RouteConfiguration] = XdsResourceSet.Empty,
        });
        var problems = SnapshotConsistency.Check(broken);
        Assert.Contains(problems, p => p.Contains("route configuration greeter.default:50051", StringComparison.Ordinal));
    }
}

public sealed class EndpointResolverTests
{
    [Fact]
    public void Resolve_SameInstanceFromEntryAndRegistration_ListsItOnce()
    {
        var read = ResourceReader.Read("""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: vm}
            spec: {selector: {app: vm}, ports: [{name: http, port: 8080}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: vm-1}
            spec: {address: 10.0.0.1, ports: {http: 9000}, labels: {app: vm}}
            """, "t.yaml");
        var svc = read.Resources.Select(r => r.Resource).OfType<Service>().Single();
        var now = DateTimeOffset.UtcNow;
        var reg = new Trellis.ControlPlane.Discovery.Registration
        {
            Id = "vm-1", Service = "vm", Address = "10.0.0.1", Ports = new() { ["http"] = 9000 }, Ttl = TimeSpan.FromSeconds(30), LastHeartbeat = now,
        };
        var inputs = new MeshInputs([svc], read.Resources.Select(r => r.Resource).OfType<WorkloadEntry>().ToList(), [], [], [], [], null, [reg], "primary", now);
        var endpoints = EndpointResolver.Resolve(svc, svc.Spec.Ports[0], inputs);
        Assert.Equal("Registration/vm-1", Assert.Single(endpoints).Source);
    }
}
