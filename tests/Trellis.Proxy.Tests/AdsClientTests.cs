using System.Text.Json.Nodes;
using Trellis.Proxy.Model;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests;

public sealed class AdsClientTests
{
    private static bool HasEverything(ModelState s) =>
        s.IsReady
        && s.Current.Listeners.ContainsKey("trellis.outbound")
        && s.Current.Listeners.ContainsKey("trellis.inbound|web.default")
        && s.Current.Routes.ContainsKey("trellis.outbound.http")
        && s.Current.Clusters.Values.Any(c => c.Endpoints.Any(e => e.Address.Port == 18080));

    [Theory]
    [InlineData(XdsProtocol.Delta)]
    [InlineData(XdsProtocol.Sotw)]
    public async Task RunAsync_SidecarNode_BecomesReadyWithListenersRoutesAndEndpoints(XdsProtocol protocol)
    {
        await using var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(ProxyHarness.MeshYaml);
        await using var proxy = ProxyHarness.Start([ProxyHarness.Address(cp)], protocol);

        var model = await proxy.WaitAsync(HasEverything, "a complete sidecar config");

        Assert.True(proxy.Client.Status.Connected);
        var outbound = model.Listeners["trellis.outbound"];
        Assert.Equal(15001, outbound.Address.Port);
        Assert.Equal(TrafficDirectionKind.Outbound, outbound.Direction);
        Assert.Equal("trellis.outbound.http", outbound.DefaultChain!.RouteTableName);
        var tcp = Assert.Single(outbound.Chains, c => c.DestinationPort == 5432);
        Assert.NotNull(tcp.TcpCluster);
        Assert.Contains(model.Clusters[tcp.TcpCluster!].Endpoints, e => e.Address.Port == 15432);
        var inbound = model.Listeners["trellis.inbound|web.default"];
        Assert.Equal(15006, inbound.Address.Port);
        Assert.Contains(inbound.Chains, c => c.IsHttp);
        Assert.Contains("inbound|8080|web.default", model.Clusters.Keys);
        var vhost = Assert.Single(model.Routes["trellis.outbound.http"].VirtualHosts, v => v.Domains.Contains("web"));
        Assert.Contains("web.default:8080", vhost.Domains);
        var webCluster = vhost.Routes[0].Clusters[0].Cluster;
        Assert.Equal(18080, Assert.Single(model.Clusters[webCluster].Endpoints).Address.Port);
    }

    [Theory]
    [InlineData(XdsProtocol.Delta)]
    [InlineData(XdsProtocol.Sotw)]
    public async Task RunAsync_EndpointAdded_NewEndpointArrives(XdsProtocol protocol)
    {
        await using var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(ProxyHarness.MeshYaml);
        await using var proxy = ProxyHarness.Start([ProxyHarness.Address(cp)], protocol);
        await proxy.WaitAsync(HasEverything, "a complete sidecar config");
        var before = proxy.State.Current.Version;

        await cp.ApplyAsync("""
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: web-b, namespace: default}
            spec:
              address: 127.0.0.2
              ports: {http: 18081}
              labels: {app: web}
            """, "more.yaml");

        var model = await proxy.WaitAsync(s => s.Current.Clusters.Values.Any(c => c.Endpoints.Any(e => e.Address.Port == 18081)), "the second web endpoint");
        Assert.NotEqual(before, model.Version);
        var web = model.Clusters.Values.Single(c => c.Endpoints.Any(e => e.Address.Port == 18081));
        Assert.Equal(2, web.Endpoints.Count);
    }

    [Fact]
    public async Task RunAsync_GoodConfig_ControlPlaneShowsProxySynced()
    {
        await using var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(ProxyHarness.MeshYaml);
        await using var proxy = ProxyHarness.Start([ProxyHarness.Address(cp)], node: "web.default~synced~1");
        await proxy.WaitAsync(HasEverything, "a complete sidecar config");

        JsonNode? node = null;
        await Eventually.WaitAsync(async () =>
        {
            var proxies = await cp.GetJsonAsync("/api/v1/proxies");
            node = proxies["items"]!.AsArray().FirstOrDefault(p => p!["nodeId"]!.GetValue<string>() == "web.default~synced~1");
            return node?["state"]?.GetValue<string>() == "SYNCED";
        }, "the control plane to list the proxy as SYNCED", TimeSpan.FromSeconds(5));

        Assert.Equal("SYNCED", node?["state"]?.GetValue<string>());
        Assert.Equal(0, proxy.Client.NackCount);
    }

    [Fact]
    public async Task RunAsync_FirstAddressDead_FailsOverToSecond()
    {
        await using var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(ProxyHarness.MeshYaml);
        var dead = $"127.0.0.1:{TestControlPlane.FreePort()}";
        await using var proxy = ProxyHarness.Start([dead, ProxyHarness.Address(cp)]);

        await proxy.WaitAsync(HasEverything, "a complete config through the second control plane");

        Assert.Equal(ProxyHarness.Address(cp), proxy.Client.Status.Address);
        Assert.True(proxy.Client.Status.Connected);
    }

    [Fact]
    public async Task RunAsync_ControlPlaneStops_KeepsLastGoodModelAndReportsDisconnected()
    {
        var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(ProxyHarness.MeshYaml);
        await using var proxy = ProxyHarness.Start([ProxyHarness.Address(cp)]);
        var model = await proxy.WaitAsync(HasEverything, "a complete sidecar config");

        await cp.DisposeAsync();
        await Eventually.WaitAsync(() => !proxy.Client.Status.Connected, "the client to notice the control plane is gone", TimeSpan.FromSeconds(20));

        Assert.False(proxy.Client.Status.Connected);
        Assert.NotNull(proxy.Client.Status.LastError);
        Assert.Same(model, proxy.State.Current);
        Assert.True(proxy.State.IsReady);
    }
}
