using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Service.Discovery.V3;
using Trellis.Testing;
using Trellis.Xds;
using Xunit;

namespace Trellis.ControlPlane.Tests.XdsServer;

public sealed class AdsServerTests : IAsyncLifetime
{
    internal const string Mesh = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec:
          selector: {app: greeter}
          ports: [{name: grpc, port: 50051, protocol: grpc}]
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: billing}
        spec:
          selector: {app: billing}
          ports: [{name: http, port: 8080, protocol: http}]
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: greeter-a}
        spec: {address: 127.0.0.1, ports: {grpc: 50061}, labels: {app: greeter}}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: billing-a}
        spec: {address: 127.0.0.2, ports: {http: 8081}, labels: {app: billing}}
        """;

    internal static string Entry(string name, string app, string address, string port, int instancePort) => $"""
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {"{"}name: {name}{"}"}
        spec: {"{"}address: {address}, ports: {"{"}{port}: {instancePort}{"}"}, labels: {"{"}app: {app}{"}"}{"}"}
        """;

    private TestControlPlane _cp = null!;

    public async Task InitializeAsync()
    {
        _cp = await TestControlPlane.StartAsync();
        await _cp.ApplyAsync(Mesh);
        await WaitForAsync(() => _cp.Get<Trellis.ControlPlane.XdsServer.SnapshotCache>().Current.Get(TypeUrls.Cluster).Items.Count == 2);
    }

    public async Task DisposeAsync() => await _cp.DisposeAsync();

    private static Task WaitForAsync(Func<bool> condition) => Eventually.WaitAsync(condition, "the control plane's state to change");

    private static DiscoveryRequest Req(string typeUrl, string? nonce = null, string? version = null, params string[] names)
    {
        var r = new DiscoveryRequest { TypeUrl = typeUrl, ResponseNonce = nonce ?? "", VersionInfo = version ?? "" };
        r.ResourceNames.AddRange(names);
        return r;
    }

    [Fact]
    public async Task Sotw_WildcardListeners_ReceivesEveryDialableName()
    {
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        var first = Req(TypeUrls.Listener);
        first.Node = XdsTestClients.Node("sotw-1");
        await s.SendAsync(first);
        var response = await s.NextAsync();

        var names = response.Resources.Select(a => a.Unpack<Listener>().Name).ToHashSet();
        Assert.Contains("greeter", names);
        Assert.Contains("greeter.default:50051", names);
        Assert.Contains("billing.default:8080", names);
        Assert.Equal(TypeUrls.Listener, response.TypeUrl);
        Assert.NotEmpty(response.Nonce);
    }

    [Fact]
    public async Task Sotw_AckThenEndpointChange_PushesOnlyTheNewEndpoints()
    {
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        var first = Req(TypeUrls.ClusterLoadAssignment, names: "greeter.default:50051");
        first.Node = XdsTestClients.Node("sotw-2");
        await s.SendAsync(first);
        var r1 = await s.NextAsync();
        Assert.Single(r1.Resources[0].Unpack<ClusterLoadAssignment>().Endpoints.SelectMany(l => l.LbEndpoints));
        await s.SendAsync(Req(TypeUrls.ClusterLoadAssignment, r1.Nonce, r1.VersionInfo, "greeter.default:50051"));

        // A change to another service's endpoints is not this stream's business: nothing is sent for it.
        await _cp.ApplyAsync(Entry("billing-b", "billing", "127.0.0.3", "http", 8082));
        await _cp.ApplyAsync(Entry("greeter-b", "greeter", "127.0.0.4", "grpc", 50062));
        var r2 = await s.NextAsync();

        var cla = r2.Resources.Single().Unpack<ClusterLoadAssignment>();
        Assert.Equal("greeter.default:50051", cla.ClusterName);
        Assert.Equal(2, cla.Endpoints.SelectMany(l => l.LbEndpoints).Count());
        Assert.NotEqual(r1.VersionInfo, r2.VersionInfo);
    }

    [Fact]
    public async Task Sotw_EndpointChange_SendsOnlyTheChangedEndpointSet()
    {
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        var first = Req(TypeUrls.ClusterLoadAssignment, names: ["greeter.default:50051", "billing.default:8080"]);
        first.Node = XdsTestClients.Node("sotw-partial");
        await s.SendAsync(first);
        var r1 = await s.NextAsync();
        Assert.Equal(2, r1.Resources.Count);
        await s.SendAsync(Req(TypeUrls.ClusterLoadAssignment, r1.Nonce, r1.VersionInfo, "greeter.default:50051", "billing.default:8080"));

        await _cp.ApplyAsync(Entry("billing-b", "billing", "127.0.0.3", "http", 8082));
        var r2 = await s.NextAsync();
        Assert.Equal(["billing.default:8080"], r2.Resources.Select(a => a.Unpack<ClusterLoadAssignment>().ClusterName));
        Assert.NotEqual(r1.VersionInfo, r2.VersionInfo);
    }

    [Fact]
    public async Task Sotw_Nack_IsShownInProxyStatusAndTheRejectedVersionIsNotResent()
    {
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        var first = Req(TypeUrls.Cluster);
        first.Node = XdsTestClients.Node("nacker");
        await s.SendAsync(first);
        var r1 = await s.NextAsync();
        var nack = Req(TypeUrls.Cluster, r1.Nonce, "");
        nack.ErrorDetail = new Google.Rpc.Status { Code = 3, Message = "cluster greeter.default:50051: unsupported lb_policy" };
        await s.SendAsync(nack);

        await WaitForAsync(() => _cp.Get<Trellis.ControlPlane.XdsServer.ProxySyncRegistry>().List(null).Any(p => p.State == "NACKED"));
        var status = await _cp.GetJsonAsync("api/v1/proxies");
        var proxy = status["items"]!.AsArray().Single(p => p!["nodeId"]!.GetValue<string>() == "nacker")!;
        Assert.Equal("NACKED", proxy["state"]!.GetValue<string>());
        Assert.Contains("unsupported lb_policy", proxy.ToJsonString());

        // The service's status names the proxy that rejected it.
        var svc = await _cp.GetJsonAsync("api/v1/resources/services/greeter");
        Assert.Contains("NACKED", svc["status"]!.ToJsonString());
        Assert.Contains("unsupported lb_policy", svc["status"]!.ToJsonString());

        // A later, different configuration is sent; the rejected one never again.
        await _cp.ApplyAsync("""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: third}
            spec: {ports: [{name: http, port: 9090}]}
            """);
        var r2 = await s.NextAsync();
        Assert.NotEqual(r1.VersionInfo, r2.VersionInfo);
        Assert.Equal(3, r2.Resources.Count);
    }

    [Fact]
    public async Task Sotw_StaleNonce_IsIgnored()
    {
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        var first = Req(TypeUrls.ClusterLoadAssignment, names: "greeter.default:50051");
        first.Node = XdsTestClients.Node("stale");
        await s.SendAsync(first);
        var r1 = await s.NextAsync();
        await s.SendAsync(Req(TypeUrls.ClusterLoadAssignment, r1.Nonce, r1.VersionInfo, "greeter.default:50051"));
        await _cp.ApplyAsync(Entry("greeter-b", "greeter", "127.0.0.4", "grpc", 50062));
        var r2 = await s.NextAsync();

        // A request answering the older response asks for billing too: it must be ignored.
        await s.SendAsync(Req(TypeUrls.ClusterLoadAssignment, r1.Nonce, r1.VersionInfo, "greeter.default:50051", "billing.default:8080"));
        // The current nonce with the same names is an ACK: no response. Then a change shows what the stream holds.
        await s.SendAsync(Req(TypeUrls.ClusterLoadAssignment, r2.Nonce, r2.VersionInfo, "greeter.default:50051"));
        await _cp.ApplyAsync(Entry("greeter-c", "greeter", "127.0.0.5", "grpc", 50063));
        var r3 = await s.NextAsync();
        Assert.Equal(["greeter.default:50051"], r3.Resources.Select(a => a.Unpack<ClusterLoadAssignment>().ClusterName));
    }

    [Fact]
    public async Task Sotw_ListenersResponse_HoldsEverySubscribedResourceSoDeletionsShow()
    {
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        var first = Req(TypeUrls.Listener, names: ["greeter", "billing.default:8080"]);
        first.Node = XdsTestClients.Node("complete");
        await s.SendAsync(first);
        var r1 = await s.NextAsync();
        Assert.Equal(2, r1.Resources.Count);
        await s.SendAsync(Req(TypeUrls.Listener, r1.Nonce, r1.VersionInfo, "greeter", "billing.default:8080"));

        using var delete = await _cp.Http.DeleteAsync("api/v1/resources/services/billing");
        Assert.True(delete.IsSuccessStatusCode);
        var r2 = await s.NextAsync();
        Assert.Equal(["greeter"], r2.Resources.Select(a => a.Unpack<Listener>().Name));
    }

    [Fact]
    public async Task Delta_EndpointChange_SendsOnlyTheChangedResource()
    {
        await using var s = XdsTestClients.Delta(_cp.Channel);
        await s.SendAsync(new DeltaDiscoveryRequest { Node = XdsTestClients.Node("delta-1"), TypeUrl = TypeUrls.ClusterLoadAssignment, ResourceNamesSubscribe = { "greeter.default:50051", "billing.default:8080" } });
        var r1 = await s.NextAsync();
        Assert.Equal(2, r1.Resources.Count);
        await s.SendAsync(new DeltaDiscoveryRequest { TypeUrl = TypeUrls.ClusterLoadAssignment, ResponseNonce = r1.Nonce });

        await _cp.ApplyAsync(Entry("greeter-b", "greeter", "127.0.0.4", "grpc", 50062));
        var r2 = await s.NextAsync();
        Assert.Equal(["greeter.default:50051"], r2.Resources.Select(r => r.Name));
        Assert.Empty(r2.RemovedResources);
    }

    [Fact]
    public async Task Delta_DeletedService_ArrivesInRemovedResources()
    {
        await using var s = XdsTestClients.Delta(_cp.Channel);
        await s.SendAsync(new DeltaDiscoveryRequest { Node = XdsTestClients.Node("delta-2"), TypeUrl = TypeUrls.Cluster });
        var r1 = await s.NextAsync();
        Assert.Equal(["billing.default:8080", "greeter.default:50051"], r1.Resources.Select(r => r.Name).Order());
        await s.SendAsync(new DeltaDiscoveryRequest { TypeUrl = TypeUrls.Cluster, ResponseNonce = r1.Nonce });

        using var delete = await _cp.Http.DeleteAsync("api/v1/resources/services/billing");
        var r2 = await s.NextAsync();
        Assert.Empty(r2.Resources);
        Assert.Equal(["billing.default:8080"], r2.RemovedResources);
    }

    [Fact]
    public async Task Delta_ReconnectWithInitialResourceVersions_ReceivesNothingItHas()
    {
        Dictionary<string, string> held;
        await using (var s1 = XdsTestClients.Delta(_cp.Channel))
        {
            await s1.SendAsync(new DeltaDiscoveryRequest { Node = XdsTestClients.Node("delta-3"), TypeUrl = TypeUrls.ClusterLoadAssignment, ResourceNamesSubscribe = { "greeter.default:50051", "billing.default:8080" } });
            var r = await s1.NextAsync();
            held = r.Resources.ToDictionary(x => x.Name, x => x.Version);
        }

        await using var s2 = XdsTestClients.Delta(_cp.Channel);
        var again = new DeltaDiscoveryRequest { Node = XdsTestClients.Node("delta-3"), TypeUrl = TypeUrls.ClusterLoadAssignment, ResourceNamesSubscribe = { "greeter.default:50051", "billing.default:8080" } };
        again.InitialResourceVersions.Add(held);
        await s2.SendAsync(again);
        // Whatever arrives first must be caused by this later change, and hold only it.
        await _cp.ApplyAsync(Entry("billing-b", "billing", "127.0.0.3", "http", 8082));
        var first = await s2.NextAsync();
        Assert.Equal(["billing.default:8080"], first.Resources.Select(r => r.Name));
    }

    [Fact]
    public async Task Delta_SubscribeToMissingName_IsToldItDoesNotExist()
    {
        await using var s = XdsTestClients.Delta(_cp.Channel);
        await s.SendAsync(new DeltaDiscoveryRequest { Node = XdsTestClients.Node("delta-4"), TypeUrl = TypeUrls.RouteConfiguration, ResourceNamesSubscribe = { "nope.default:1" } });
        var r = await s.NextAsync();
        Assert.Empty(r.Resources);
        Assert.Equal(["nope.default:1"], r.RemovedResources);
    }

    [Fact]
    public async Task Sotw_ClientLocality_ReceivesFailoverPrioritiesRelativeToIt()
    {
        await _cp.ApplyAsync("""
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: greeter-far}
            spec: {address: 127.0.0.8, ports: {grpc: 50068}, labels: {app: greeter}, locality: {region: r2, zone: z2}}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: greeter-near}
            spec: {address: 127.0.0.7, ports: {grpc: 50067}, labels: {app: greeter}, locality: {region: r1, zone: z1}}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: greeter}
            spec: {targetRef: {kind: Service, name: greeter}, failover: {order: [zone, region, cluster]}}
            """);
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        var first = Req(TypeUrls.ClusterLoadAssignment, names: "greeter.default:50051");
        first.Node = XdsTestClients.Node("in-r2");
        first.Node.Locality = new Envoy.Config.Core.V3.Locality { Region = "r2", Zone = "z2" };
        await s.SendAsync(first);
        var response = await s.NextAsync();
        var cla = response.Resources.Single().Unpack<ClusterLoadAssignment>();
        Assert.Equal(0u, cla.Endpoints.Single(l => l.Locality.Zone == "z2").Priority);
        Assert.Equal(1u, cla.Endpoints.Single(l => l.Locality.Zone == "z1").Priority);

        // Its proxy-status is SYNCED once it ACKs, although its view differs from the published snapshot.
        await s.SendAsync(Req(TypeUrls.ClusterLoadAssignment, response.Nonce, response.VersionInfo, "greeter.default:50051"));
        var cache = _cp.Get<Trellis.ControlPlane.XdsServer.SnapshotCache>();
        await WaitForAsync(() => _cp.Get<Trellis.ControlPlane.XdsServer.ProxySyncRegistry>().List(cache.Current.Version)
            .Any(p => p.NodeId == "in-r2" && p.State == "SYNCED"));
    }

    [Fact]
    public async Task Delta_SidecarNode_WildcardListenersAreItsOutboundAndInboundOnly()
    {
        await using var s = XdsTestClients.Delta(_cp.Channel);
        await s.SendAsync(new DeltaDiscoveryRequest { Node = XdsTestClients.Node("greeter.default~vm-1~4242"), TypeUrl = TypeUrls.Listener });
        var r = await s.NextAsync();
        Assert.Equal(["trellis.inbound|greeter.default", "trellis.outbound"], r.Resources.Select(x => x.Name).Order());
    }

    [Fact]
    public async Task Stream_FirstRequestWithoutNode_IsRefusedWithAClearError()
    {
        await using var s = XdsTestClients.Sotw(_cp.Channel);
        await s.SendAsync(Req(TypeUrls.Listener));
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => s.NextAsync());
        Assert.Contains("node.id", ex.ToString());
    }

    [Fact]
    public async Task Sotw_StuckProxy_DoesNotDelayOthers()
    {
        // Enough listeners that one response overflows the HTTP/2 flow-control window of a proxy that never reads.
        var yaml = string.Join("---\n", Enumerable.Range(0, 300).Select(i => $"""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {"{"}name: bulk-{i}{"}"}
            spec: {"{"}ports: [{"{"}name: http, port: 8080{"}"}]{"}"}

            """));
        await _cp.ApplyAsync(yaml);
        await using var stuck = XdsTestClients.Sotw(_cp.Channel, read: false);
        var req = Req(TypeUrls.Listener);
        req.Node = XdsTestClients.Node("stuck");
        await stuck.SendAsync(req);

        await using var healthy = XdsTestClients.Sotw(_cp.Channel);
        var req2 = Req(TypeUrls.Cluster);
        req2.Node = XdsTestClients.Node("healthy");
        await healthy.SendAsync(req2);
        var r1 = await healthy.NextAsync();
        for (var i = 0; i < 5; i++)
        {
            await healthy.SendAsync(Req(TypeUrls.Cluster, r1.Nonce, r1.VersionInfo));
            await _cp.ApplyAsync($"""
                apiVersion: trellis.dev/v1alpha1
                kind: Service
                metadata: {"{"}name: extra-{i}{"}"}
                spec: {"{"}ports: [{"{"}name: http, port: 8080{"}"}]{"}"}
                """);
            var next = await healthy.NextAsync();
            Assert.Contains(next.Resources, a => a.Unpack<Envoy.Config.Cluster.V3.Cluster>().Name == $"extra-{i}.default:8080");
            r1 = next;
        }
    }
}
