using Microsoft.Extensions.Time.Testing;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Xunit;
using static Trellis.Proxy.Tests.Policies.PolicyFixtures;

namespace Trellis.Proxy.Tests.Policies;

public sealed class OutlierDetectionTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan BaseTime = TimeSpan.FromSeconds(30);

    private static OutlierDetectionModel Detector(int consecutive5xx = 5, int gateway = 0, int maxPercent = 100) =>
        new(consecutive5xx, gateway, Interval, BaseTime, maxPercent);

    private static (ClusterRuntime Runtime, FakeTimeProvider Clock) Start(OutlierDetectionModel od, int endpoints = 3,
        LoadBalancerKind balancer = LoadBalancerKind.RoundRobin, string name = "svc")
    {
        var clock = Clock();
        var list = new List<EndpointModel>();
        for (var i = 1; i <= endpoints; i++)
        {
            list.Add(Endpoint(i));
        }
        return (Runtime(Cluster(balancer, list, od, name: name), clock), clock);
    }

    /// <summary>Advances in Interval steps so every timer tick runs at its own time.</summary>
    private static void Advance(FakeTimeProvider clock, TimeSpan by)
    {
        while (by > TimeSpan.Zero)
        {
            var step = by < Interval ? by : Interval;
            clock.Advance(step);
            by -= step;
        }
    }

    [Fact]
    public void OnAttemptEnd_Consecutive5xxReached_EndpointEjectedAndNotPicked()
    {
        var (runtime, _) = Start(Detector(consecutive5xx: 5));

        Fail(runtime, Address(1), 4);
        Assert.False(IsEjected(runtime, Address(1)));
        Fail(runtime, Address(1), 1);

        Assert.True(IsEjected(runtime, Address(1)));
        Assert.False(CountPicks(runtime, 100).ContainsKey(Address(1)));
    }

    [Fact]
    public void OnAttemptEnd_SuccessInsideTheRun_RunStartsOver()
    {
        var (runtime, _) = Start(Detector(consecutive5xx: 3));

        Fail(runtime, Address(1), 2);
        Fail(runtime, Address(1), 1, status: 200);
        Fail(runtime, Address(1), 2);

        Assert.False(IsEjected(runtime, Address(1)));
        Assert.Equal(2, runtime.Describe().Single(s => s.Address.Equals(Address(1))).Consecutive5xx);
    }

    [Fact]
    public void OnAttemptEnd_Consecutive5xxZero_DetectorOff()
    {
        var (runtime, _) = Start(Detector(consecutive5xx: 0));

        Fail(runtime, Address(1), 50);

        Assert.False(IsEjected(runtime, Address(1)));
    }

    [Theory]
    [InlineData(502, true)]
    [InlineData(503, true)]
    [InlineData(504, true)]
    [InlineData(0, true)]
    [InlineData(500, false)]
    public void OnAttemptEnd_GatewayErrorRun_EjectsOnlyForGatewayErrors(int status, bool ejected)
    {
        var (runtime, _) = Start(Detector(consecutive5xx: 0, gateway: 3));

        Fail(runtime, Address(2), 3, status);

        Assert.Equal(ejected, IsEjected(runtime, Address(2)));
    }

    [Fact]
    public void OnAttemptEnd_NonGateway5xxInsideGatewayRun_GatewayRunStartsOver()
    {
        var (runtime, _) = Start(Detector(consecutive5xx: 0, gateway: 3));

        Fail(runtime, Address(2), 2, 503);
        Fail(runtime, Address(2), 1, 500);
        Fail(runtime, Address(2), 2, 503);

        Assert.False(IsEjected(runtime, Address(2)));
    }

    [Fact]
    public void Ejection_BaseTimeElapsed_EndpointReturns()
    {
        var (runtime, clock) = Start(Detector());
        Fail(runtime, Address(1), 5);

        Advance(clock, BaseTime - TimeSpan.FromSeconds(1));
        Assert.False(CountPicks(runtime, 30).ContainsKey(Address(1)));
        clock.Advance(TimeSpan.FromSeconds(1));

        Assert.True(CountPicks(runtime, 30).ContainsKey(Address(1)));
        Assert.False(IsEjected(runtime, Address(1)));
    }

    [Fact]
    public void Ejection_IntervalTick_ReturnsEndpointWithoutAnyPick()
    {
        var (runtime, clock) = Start(Detector());
        Fail(runtime, Address(1), 5);
        Assert.Equal(1, runtime.EjectedCount);

        Advance(clock, BaseTime);

        Assert.Equal(0, runtime.EjectedCount);
    }

    [Fact]
    public void Ejection_SecondRightAfterReturn_LastsTwiceTheBaseTime()
    {
        var (runtime, clock) = Start(Detector());
        Fail(runtime, Address(1), 5);
        Advance(clock, BaseTime);
        Assert.False(IsEjected(runtime, Address(1)));

        Fail(runtime, Address(1), 5);
        var status = runtime.Describe().Single(s => s.Address.Equals(Address(1)));

        Assert.True(status.Ejected);
        Assert.Equal(2, status.TimesEjected);
        Assert.Equal(clock.GetUtcNow() + (2 * BaseTime), status.EjectedUntil);
        Advance(clock, (2 * BaseTime) - TimeSpan.FromSeconds(1));
        Assert.True(IsEjected(runtime, Address(1)));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.False(IsEjected(runtime, Address(1)));
    }

    [Fact]
    public void Ejection_QuietIntervalsAfterReturn_MultiplierDecaysToBaseTime()
    {
        var (runtime, clock) = Start(Detector());
        Fail(runtime, Address(1), 5);
        Advance(clock, BaseTime);
        Fail(runtime, Address(1), 5); // second ejection: 60 s
        Advance(clock, 2 * BaseTime);

        Advance(clock, 2 * Interval); // two quiet intervals: the multiplier steps 2 -> 0
        Fail(runtime, Address(1), 5);

        var status = runtime.Describe().Single(s => s.Address.Equals(Address(1)));
        Assert.Equal(3, status.TimesEjected);
        Assert.Equal(clock.GetUtcNow() + BaseTime, status.EjectedUntil);
    }

    [Fact]
    public void Ejection_RepeatedEjections_CappedAt300Seconds()
    {
        var (runtime, clock) = Start(Detector());
        for (var i = 0; i < 12; i++)
        {
            Fail(runtime, Address(1), 5);
            var until = runtime.Describe().Single(s => s.Address.Equals(Address(1))).EjectedUntil!.Value;
            Assert.True(until - clock.GetUtcNow() <= TimeSpan.FromSeconds(300), $"ejection {i + 1} lasts {until - clock.GetUtcNow()}");
            Advance(clock, until - clock.GetUtcNow());
        }

        Fail(runtime, Address(1), 5);
        Assert.Equal(clock.GetUtcNow() + TimeSpan.FromSeconds(300), runtime.Describe().Single(s => s.Address.Equals(Address(1))).EjectedUntil);
    }

    [Fact]
    public void Ejection_MaxEjectionPercent50_AtMostHalfEjected()
    {
        var (runtime, _) = Start(Detector(maxPercent: 50), endpoints: 4);

        for (var n = 1; n <= 4; n++)
        {
            Fail(runtime, Address(n), 5);
        }

        Assert.Equal(2, runtime.EjectedCount);
        Assert.Equal(2, runtime.Describe().Count(s => s.Ejected));
        Assert.Equal(2, CountPicks(runtime, 40).Count);
    }

    [Fact]
    public void Ejection_MaxEjectionPercent10WithFewEndpoints_NoneEjected()
    {
        // As Envoy: one ejection of 4 endpoints would be 25% > 10%.
        var (runtime, _) = Start(Detector(maxPercent: 10), endpoints: 4);

        Fail(runtime, Address(1), 5);

        Assert.Equal(0, runtime.EjectedCount);
    }

    [Fact]
    public void Ejection_CapFreedLater_NextFullRunEjects()
    {
        var (runtime, clock) = Start(Detector(maxPercent: 50), endpoints: 2);
        Fail(runtime, Address(1), 5);
        Fail(runtime, Address(2), 5); // refused: 2 of 2 would be 100%
        Assert.False(IsEjected(runtime, Address(2)));

        Advance(clock, BaseTime); // endpoint 1 returns
        Fail(runtime, Address(2), 5);

        Assert.True(IsEjected(runtime, Address(2)));
    }

    [Fact]
    public void Pick_EveryEndpointEjected_PanicUsesThemAll()
    {
        var (runtime, _) = Start(Detector(maxPercent: 100), endpoints: 2);
        Fail(runtime, Address(1), 5);
        Fail(runtime, Address(2), 5);
        Assert.Equal(2, runtime.EjectedCount);

        var counts = CountPicks(runtime, 40);

        Assert.Equal(20, counts[Address(1)]);
        Assert.Equal(20, counts[Address(2)]);
    }

    [Fact]
    public void Pick_PriorityZeroEjected_FailsOverToPriorityOne()
    {
        var clock = Clock();
        var runtime = Runtime(Cluster(LoadBalancerKind.LeastRequest, [Endpoint(1), Endpoint(2, priority: 1)], Detector()), clock);

        Fail(runtime, Address(1), 5);
        Assert.Equal(30, CountPicks(runtime, 30)[Address(2)]);

        Advance(clock, BaseTime);
        Assert.Equal(30, CountPicks(runtime, 30)[Address(1)]);
    }

    [Fact]
    public void Pick_RingHashOwnerEjected_ItsKeysMoveAndComeBack()
    {
        var (runtime, clock) = Start(Detector(maxPercent: 50), endpoints: 4, balancer: LoadBalancerKind.RingHash);
        var before = new Dictionary<ulong, System.Net.IPEndPoint>();
        for (ulong k = 1; k <= 400; k++)
        {
            before[k] = runtime.Pick(k, null)!.Address;
        }

        Fail(runtime, Address(1), 5);
        for (ulong k = 1; k <= 400; k++)
        {
            var now = runtime.Pick(k, null)!.Address;
            Assert.NotEqual(Address(1), now);
            Assert.True(now.Equals(before[k]) || before[k].Equals(Address(1)));
        }

        Advance(clock, BaseTime);
        for (ulong k = 1; k <= 400; k++)
        {
            Assert.Equal(before[k], runtime.Pick(k, null)!.Address);
        }
    }

    [Fact]
    public void Ejection_ModelSwapKeepsEndpoint_StillEjected()
    {
        var (runtime, _) = Start(Detector());
        Fail(runtime, Address(1), 5);

        runtime.Update(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1), Endpoint(2), Endpoint(3), Endpoint(4)], Detector()));

        Assert.True(IsEjected(runtime, Address(1)));
        Assert.False(CountPicks(runtime, 60).ContainsKey(Address(1)));
    }

    [Fact]
    public void Ejection_OutlierDetectionRemoved_EveryEndpointReturns()
    {
        var (runtime, _) = Start(Detector());
        Fail(runtime, Address(1), 5);

        runtime.Update(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1), Endpoint(2), Endpoint(3)], outlier: null));

        Assert.False(IsEjected(runtime, Address(1)));
        Assert.True(CountPicks(runtime, 30).ContainsKey(Address(1)));
    }

    [Fact]
    public void Ejection_Counted_InEjectionsMetricForTheCluster()
    {
        var cluster = $"od-metric-{Guid.NewGuid():N}";
        using var probe = new CounterProbe("trellis_proxy_outlier_ejections_total", "cluster", cluster);
        var (runtime, _) = Start(Detector(), name: cluster);

        Fail(runtime, Address(1), 5);
        Fail(runtime, Address(2), 5);

        Assert.Equal(2, probe.Total);
    }

    [Fact]
    public void Describe_AfterTraffic_ReportsOutstandingLatencyAndEjection()
    {
        var (runtime, clock) = Start(Detector());
        runtime.OnAttemptStart(Address(2));
        runtime.OnAttemptStart(Address(3));
        runtime.OnAttemptEnd(Address(3), 200, TimeSpan.FromMilliseconds(40));
        Fail(runtime, Address(1), 5);

        var byAddress = runtime.Describe().ToDictionary(s => s.Address);

        Assert.True(byAddress[Address(1)].Ejected);
        Assert.Equal(clock.GetUtcNow() + BaseTime, byAddress[Address(1)].EjectedUntil);
        Assert.Equal(1, byAddress[Address(1)].TimesEjected);
        Assert.Equal(1, byAddress[Address(2)].Outstanding);
        Assert.Null(byAddress[Address(2)].EwmaMs);
        Assert.Equal(40, byAddress[Address(3)].EwmaMs!.Value, 3);
        Assert.False(byAddress[Address(3)].Ejected);
        Assert.Null(byAddress[Address(3)].EjectedUntil);
    }
}
