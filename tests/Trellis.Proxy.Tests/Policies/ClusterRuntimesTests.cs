using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.Proxy.Admin;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Xunit;
using static Trellis.Proxy.Tests.Policies.PolicyFixtures;

namespace Trellis.Proxy.Tests.Policies;

public sealed class ClusterRuntimesTests
{
    private static ProxyModel Model(string version, params ClusterModel[] clusters) =>
        new(version, ProxyModel.Empty.Listeners, ProxyModel.Empty.Routes, clusters.ToFrozenDictionary(c => c.Name, StringComparer.Ordinal));

    /// <summary>Runtimes on a model state that went from v1 (endpoint 1) to v2 (endpoint 2), with a runtime made on v1.</summary>
    private static (ClusterRuntimes Runtimes, ProxyModel V1, ProxyModel V2) SwappedState()
    {
        var state = new ModelState();
        var runtimes = new ClusterRuntimes(Clock(), state);
        var v1 = Model("v1", Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1)]));
        var v2 = Model("v2", Cluster(LoadBalancerKind.RoundRobin, [Endpoint(2)]));
        state.Swap(v1, complete: true);
        runtimes.Get(v1, "svc");
        state.Swap(v2, complete: true);
        return (runtimes, v1, v2);
    }

    [Fact]
    public void Get_OlderModelAfterNewer_RuntimeKeepsTheNewest()
    {
        var (runtimes, v1, v2) = SwappedState();

        var fromNew = runtimes.Get(v2, "svc")!;
        var fromOld = runtimes.Get(v1, "svc")!; // a keep-alive connection still on v1

        Assert.Same(fromNew, fromOld);
        Assert.Same(v2.Clusters["svc"], fromOld.Model);
        Assert.Equal(Address(2), fromOld.Pick(0, null)!.Address);
    }

    [Fact]
    public void Get_OldModelFirstAfterSwap_RuntimeMovesToTheNewest()
    {
        var (runtimes, v1, v2) = SwappedState();

        var runtime = runtimes.Get(v1, "svc")!;

        Assert.Same(v2.Clusters["svc"], runtime.Model);
    }

    [Fact]
    public void Get_WithoutModelState_AdoptsTheCallersModel()
    {
        var runtimes = new ClusterRuntimes(Clock());
        var v1 = Model("v1", Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1)]));
        var v2 = Model("v2", Cluster(LoadBalancerKind.RoundRobin, [Endpoint(2)]));

        Assert.Same(v1.Clusters["svc"], runtimes.Get(v1, "svc")!.Model);
        Assert.Same(v2.Clusters["svc"], runtimes.Get(v2, "svc")!.Model);
    }

    [Fact]
    public void Get_UnknownCluster_NullAndNothingCreated()
    {
        var runtimes = new ClusterRuntimes(Clock());

        Assert.Null(runtimes.Get(Model("v1"), "missing"));
        Assert.Null(runtimes.Find("missing"));
        Assert.Empty(runtimes.All);
    }

    [Fact]
    public void Get_ModelSwapKeepingEndpoints_StateSurvives()
    {
        var runtimes = new ClusterRuntimes(Clock());
        var v1 = Model("v1", Cluster(LoadBalancerKind.LeastRequest, [Endpoint(1), Endpoint(2)]));
        var v2 = Model("v2", Cluster(LoadBalancerKind.LeastRequest, [Endpoint(1), Endpoint(2), Endpoint(3)]));
        var runtime = runtimes.Get(v1, "svc")!;
        runtime.OnAttemptStart(Address(1));
        runtime.OnAttemptStart(Address(1));
        Assert.True(runtime.TryEnterRequest());

        var after = runtimes.Get(v2, "svc")!;

        Assert.Same(runtime, after);
        Assert.Equal(1, after.ActiveRequests);
        Assert.Equal(2, after.Describe().Single(s => s.Address.Equals(Address(1))).Outstanding);
        after.OnAttemptEnd(Address(1), 200, TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, after.Describe().Single(s => s.Address.Equals(Address(1))).Outstanding);
    }

    [Fact]
    public void OnAttemptEnd_EndpointRemovedWhileInFlight_CountsStayConsistent()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1), Endpoint(2)]));
        runtime.OnAttemptStart(Address(1));

        runtime.Update(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(2)]));
        runtime.Pick(0, null);
        runtime.OnAttemptEnd(Address(1), 200, TimeSpan.FromMilliseconds(1));
        runtime.Update(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1), Endpoint(2)]));

        Assert.Equal(0, runtime.Describe().Single(s => s.Address.Equals(Address(1))).Outstanding);
    }

    [Fact]
    public void ClusterDump_WithRuntime_ShowsEjectionOutstandingAndLatencyInJson()
    {
        var od = new OutlierDetectionModel(2, 0, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), 100);
        var model = Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1), Endpoint(2)], od);
        var runtime = Runtime(model);
        Fail(runtime, Address(1), 2);
        runtime.OnAttemptStart(Address(2));
        runtime.OnAttemptStart(Address(2));
        runtime.OnAttemptEnd(Address(2), 200, TimeSpan.FromMilliseconds(12.5));

        var json = JsonSerializer.Serialize(new ClustersDump("v1", [AdminServer.Cluster(model, runtime), AdminServer.Cluster(model, null)]),
            AdminJsonContext.Default.ClustersDump);
        var clusters = JsonNode.Parse(json)!["clusters"]!.AsArray();

        var live = clusters[0]!["endpoints"]!.AsArray();
        Assert.True(live[0]!["ejected"]!.GetValue<bool>());
        Assert.Equal(1, live[0]!["times_ejected"]!.GetValue<int>());
        Assert.NotNull(live[0]!["ejected_until"]);
        Assert.False(live[1]!["ejected"]!.GetValue<bool>());
        Assert.Equal(1, live[1]!["outstanding"]!.GetValue<int>());
        Assert.Equal(12.5, live[1]!["ewma_ms"]!.GetValue<double>());
        var plain = clusters[1]!["endpoints"]!.AsArray();
        Assert.Null(plain[0]!["ejected"]);
        Assert.Null(plain[0]!["outstanding"]);
    }
}
