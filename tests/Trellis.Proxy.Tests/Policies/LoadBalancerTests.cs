using System.Collections.Frozen;
using System.Net;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Xunit;
using static Trellis.Proxy.Tests.Policies.PolicyFixtures;

namespace Trellis.Proxy.Tests.Policies;

public sealed class LoadBalancerTests
{
    [Fact]
    public void Pick_RoundRobinWeights1To3_ExactProportionsOverWholeCycles()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1, weight: 1), Endpoint(2, weight: 2), Endpoint(3, weight: 3)]));

        var counts = CountPicks(runtime, 600);

        Assert.Equal(100, counts[Address(1)]);
        Assert.Equal(200, counts[Address(2)]);
        Assert.Equal(300, counts[Address(3)]);
    }

    [Fact]
    public void Pick_RoundRobinEqualWeights_EachEndpointOncePerRound()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1), Endpoint(2), Endpoint(3)]));

        for (var round = 0; round < 50; round++)
        {
            var seen = new HashSet<IPEndPoint>();
            for (var i = 0; i < 3; i++)
            {
                seen.Add(runtime.Pick(0, null)!.Address);
            }
            Assert.Equal(3, seen.Count);
        }
    }

    [Fact]
    public void Pick_RoundRobinWeights5To1To1_NeverPicksALightEndpointTwiceInARow()
    {
        // Smooth weighted round robin interleaves the light endpoints instead of sending bursts.
        var runtime = Runtime(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1, weight: 5), Endpoint(2), Endpoint(3)]));

        var previous = runtime.Pick(0, null)!.Address;
        for (var i = 0; i < 700; i++)
        {
            var next = runtime.Pick(0, null)!.Address;
            Assert.False(!next.Equals(Address(1)) && next.Equals(previous), $"{next} picked twice in a row at pick {i}");
            previous = next;
        }
    }

    [Fact]
    public void Pick_LeastRequest_NeverChoosesTheEndpointWithMoreTriesInFlight()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.LeastRequest, [Endpoint(1), Endpoint(2), Endpoint(3)]));
        runtime.Pick(0, null);
        for (var i = 0; i < 5; i++)
        {
            runtime.OnAttemptStart(Address(1));
        }

        var counts = CountPicks(runtime, 300);

        Assert.False(counts.ContainsKey(Address(1)), "the busy endpoint was picked");
        Assert.True(counts[Address(2)] > 50 && counts[Address(3)] > 50, $"idle endpoints: {counts[Address(2)]} / {counts[Address(3)]}");
    }

    [Fact]
    public void Pick_LeastRequestUnderLoad_SpreadsTriesInFlightEvenly()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.LeastRequest, [Endpoint(1), Endpoint(2), Endpoint(3), Endpoint(4)]));

        // 40 tries start and none ends: power of two choices keeps the endpoints close to each other.
        for (var i = 0; i < 40; i++)
        {
            runtime.OnAttemptStart(runtime.Pick(0, null)!.Address);
        }

        foreach (var s in runtime.Describe())
        {
            Assert.InRange(s.Outstanding, 7, 13);
        }
    }

    [Fact]
    public void Pick_LeastRequestIdleWeights1To3_FollowsWeightsWithinTolerance()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.LeastRequest, [Endpoint(1, weight: 1), Endpoint(2, weight: 3)]), seed: 7);

        var counts = CountPicks(runtime, 4000);

        Assert.InRange(counts[Address(2)] / 4000.0, 0.72, 0.78);
    }

    [Fact]
    public void Pick_RandomWeights1To3_WithinTolerance()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.Random, [Endpoint(1, weight: 1), Endpoint(2, weight: 3)]), seed: 42);

        var counts = CountPicks(runtime, 4000);

        Assert.InRange(counts[Address(2)] / 4000.0, 0.72, 0.78);
    }

    [Fact]
    public void Pick_RandomEqualWeights_EveryEndpointNearItsShare()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.Random, [Endpoint(1), Endpoint(2), Endpoint(3), Endpoint(4)]), seed: 3);

        var counts = CountPicks(runtime, 4000);

        foreach (var n in new[] { 1, 2, 3, 4 })
        {
            Assert.InRange(counts[Address(n)] / 4000.0, 0.22, 0.28);
        }
    }

    private static List<EndpointModel> Endpoints(int count, Func<int, int>? weight = null)
    {
        var list = new List<EndpointModel>();
        for (var i = 0; i < count; i++)
        {
            list.Add(Endpoint(i, weight: weight?.Invoke(i) ?? 1));
        }
        return list;
    }

    private static ulong Key(int i) => (ulong)i * 2654435761UL + 1;

    [Fact]
    public void Pick_RingHashSameKey_SameEndpointAcrossPicksAndProxies()
    {
        var model = Cluster(LoadBalancerKind.RingHash, Endpoints(10));
        var one = Runtime(model, seed: 1);
        var other = Runtime(Cluster(LoadBalancerKind.RingHash, Endpoints(10)), seed: 99); // another proxy, same endpoints

        for (var i = 0; i < 1000; i++)
        {
            var first = one.Pick(Key(i), null)!.Address;
            Assert.Equal(first, one.Pick(Key(i), null)!.Address);
            Assert.Equal(first, other.Pick(Key(i), null)!.Address);
        }
    }

    [Fact]
    public void Pick_RingHashEndpointRemoved_OnlyItsKeysMove()
    {
        const int keys = 10000;
        var all = Endpoints(10);
        var runtime = Runtime(Cluster(LoadBalancerKind.RingHash, all));
        var before = new IPEndPoint[keys];
        for (var i = 0; i < keys; i++)
        {
            before[i] = runtime.Pick(Key(i), null)!.Address;
        }

        var removed = Address(3);
        runtime.Update(Cluster(LoadBalancerKind.RingHash, [.. all.Where(e => !e.Address.Equals(removed))]));

        var moved = 0;
        for (var i = 0; i < keys; i++)
        {
            var after = runtime.Pick(Key(i), null)!.Address;
            if (!after.Equals(before[i]))
            {
                moved++;
                Assert.Equal(removed, before[i]); // a key that moved belonged to the removed endpoint
            }
            Assert.NotEqual(removed, after);
        }
        Assert.InRange(moved / (double)keys, 0.05, 0.1 + 0.04);
    }

    [Fact]
    public void Pick_RingHashWeights1To3_KeysProportionalToWeight()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.RingHash, [Endpoint(1, weight: 1), Endpoint(2, weight: 3)]));
        var heavy = 0;
        for (var i = 0; i < 8000; i++)
        {
            heavy += runtime.Pick(Key(i), null)!.Address.Equals(Address(2)) ? 1 : 0;
        }

        Assert.InRange(heavy / 8000.0, 0.70, 0.80);
    }

    [Fact]
    public void Pick_MaglevCluster_BehavesAsRingHash()
    {
        var ring = Runtime(Cluster(LoadBalancerKind.RingHash, Endpoints(5)));
        var maglev = Runtime(Cluster(LoadBalancerKind.Maglev, Endpoints(5)));

        for (var i = 0; i < 500; i++)
        {
            Assert.Equal(ring.Pick(Key(i), null)!.Address, maglev.Pick(Key(i), null)!.Address);
        }
    }

    [Fact]
    public void Pick_Ewma_ShiftsTrafficAwayFromSlowEndpoint()
    {
        var clock = Clock();
        var runtime = Runtime(Cluster(LoadBalancerKind.Ewma, [Endpoint(1), Endpoint(2), Endpoint(3)]), clock, seed: 5);
        var slow = Address(1);
        var slowPicks = 0;

        for (var i = 0; i < 1000; i++)
        {
            var e = runtime.Pick(0, null)!.Address;
            runtime.OnAttemptStart(e);
            clock.Advance(TimeSpan.FromMilliseconds(10));
            runtime.OnAttemptEnd(e, 200, TimeSpan.FromMilliseconds(e.Equals(slow) ? 200 : 20));
            if (i >= 500 && e.Equals(slow))
            {
                slowPicks++;
            }
        }

        Assert.True(slowPicks < 50, $"the slow endpoint still got {slowPicks} of the last 500 picks");
        var ewma = runtime.Describe().ToDictionary(s => s.Address, s => s.EwmaMs!.Value);
        Assert.True(ewma[slow] > 2 * ewma[Address(2)], $"EWMA slow {ewma[slow]} ms, fast {ewma[Address(2)]} ms");
    }

    [Fact]
    public void Pick_EwmaEndpointAdded_StartsAtNeutralCostNotFavoured()
    {
        var clock = Clock();
        var old = new List<EndpointModel> { Endpoint(1), Endpoint(2) };
        var runtime = Runtime(Cluster(LoadBalancerKind.Ewma, old), clock, seed: 11);
        for (var i = 0; i < 100; i++)
        {
            var e = runtime.Pick(0, null)!.Address;
            runtime.OnAttemptStart(e);
            runtime.OnAttemptEnd(e, 200, TimeSpan.FromMilliseconds(50));
        }

        runtime.Update(Cluster(LoadBalancerKind.Ewma, [.. old, Endpoint(3)]));
        var counts = CountPicks(runtime, 900);

        // Costs are equal, so the new endpoint gets about a third (a zero start would win two thirds and more).
        Assert.InRange(counts.GetValueOrDefault(Address(3)) / 900.0, 0.2, 0.45);
    }

    [Theory]
    [InlineData(EndpointHealthKind.Unhealthy)]
    [InlineData(EndpointHealthKind.Draining)]
    public void Pick_PriorityZeroAllNotHealthy_FailsOverToPriorityOne(EndpointHealthKind health)
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.RoundRobin,
            [Endpoint(1, health: health), Endpoint(2, health: health), Endpoint(3, priority: 1), Endpoint(4, priority: 2)]));

        var counts = CountPicks(runtime, 100);

        Assert.Equal(100, counts[Address(3)]);
    }

    [Fact]
    public void Pick_PriorityZeroHasOneUsable_PriorityOneGetsNothing()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.Random,
            [Endpoint(1, health: EndpointHealthKind.Unhealthy), Endpoint(2, health: EndpointHealthKind.Unknown), Endpoint(3, priority: 1)]));

        var counts = CountPicks(runtime, 100);

        Assert.Equal(100, counts[Address(2)]);
    }

    [Fact]
    public void Pick_NoUsableEndpoint_ReturnsNull()
    {
        Assert.Null(Runtime(Cluster(LoadBalancerKind.RoundRobin, [])).Pick(0, null));
        Assert.Null(Runtime(Cluster(LoadBalancerKind.LeastRequest,
            [Endpoint(1, health: EndpointHealthKind.Unhealthy), Endpoint(2, health: EndpointHealthKind.Draining, priority: 1)])).Pick(0, null));
        Assert.Null(Runtime(Cluster(LoadBalancerKind.RingHash, [Endpoint(1, health: EndpointHealthKind.Unhealthy)])).Pick(42, null));
    }

    [Theory]
    [InlineData(LoadBalancerKind.RoundRobin)]
    [InlineData(LoadBalancerKind.Random)]
    [InlineData(LoadBalancerKind.LeastRequest)]
    public void Pick_LocalityWeights1To3_TrafficSplitsByLocalityWithinTolerance(LoadBalancerKind balancer)
    {
        // Zone b has fewer endpoints but three times the weight: the split follows locality weight, not endpoint count.
        var runtime = Runtime(Cluster(balancer,
            [Endpoint(1, zone: "a", localityWeight: 1), Endpoint(2, zone: "a", localityWeight: 1), Endpoint(3, zone: "a", localityWeight: 1),
             Endpoint(4, zone: "b", localityWeight: 3)]), seed: 21);

        var counts = CountPicks(runtime, 4000);

        Assert.InRange(counts[Address(4)] / 4000.0, 0.72, 0.78);
    }

    [Fact]
    public void Pick_LocalityMostlyUnhealthy_ItsShareShrinks()
    {
        // Zone a keeps 1 of 4 endpoints: its weight is scaled by 1.4 x 1/4 = 0.35, so it gets 0.35 / 1.35 of the traffic.
        var runtime = Runtime(Cluster(LoadBalancerKind.RoundRobin,
            [Endpoint(1, zone: "a", localityWeight: 1), Endpoint(2, zone: "a", localityWeight: 1, health: EndpointHealthKind.Unhealthy),
             Endpoint(3, zone: "a", localityWeight: 1, health: EndpointHealthKind.Unhealthy), Endpoint(4, zone: "a", localityWeight: 1, health: EndpointHealthKind.Unhealthy),
             Endpoint(5, zone: "b", localityWeight: 1)]), seed: 8);

        var counts = CountPicks(runtime, 4000);

        Assert.InRange(counts[Address(1)] / 4000.0, 0.23, 0.29);
    }

    [Theory]
    [InlineData(LoadBalancerKind.RoundRobin)]
    [InlineData(LoadBalancerKind.Random)]
    [InlineData(LoadBalancerKind.LeastRequest)]
    [InlineData(LoadBalancerKind.Ewma)]
    [InlineData(LoadBalancerKind.RingHash)]
    public void Pick_AvoidGiven_AnotherEndpointChosen(LoadBalancerKind balancer)
    {
        var runtime = Runtime(Cluster(balancer, [Endpoint(1), Endpoint(2), Endpoint(3)]));

        for (var i = 0; i < 300; i++)
        {
            Assert.NotEqual(Address(2), runtime.Pick(Key(i), Address(2))!.Address);
        }
    }

    [Theory]
    [InlineData(LoadBalancerKind.RoundRobin)]
    [InlineData(LoadBalancerKind.LeastRequest)]
    [InlineData(LoadBalancerKind.RingHash)]
    public void Pick_AvoidIsTheOnlyUsable_StillReturnsIt(LoadBalancerKind balancer)
    {
        var runtime = Runtime(Cluster(balancer, [Endpoint(1), Endpoint(2, health: EndpointHealthKind.Unhealthy)]));

        Assert.Equal(Address(1), runtime.Pick(7, Address(1))!.Address);
    }

    [Fact]
    public void Pick_AvoidIsTheOnlyEndpointOfChosenLocality_OtherLocalityUsed()
    {
        var runtime = Runtime(Cluster(LoadBalancerKind.RoundRobin,
            [Endpoint(1, zone: "a", localityWeight: 9), Endpoint(2, zone: "b", localityWeight: 1)]));

        var counts = CountPicks(runtime, 200, avoid: Address(1));

        Assert.Equal(200, counts[Address(2)]);
    }

    [Fact]
    public void Pick_ManyThreads_EveryTryAccountedForAndBalanced()
    {
        var runtime = new ClusterRuntime(Cluster(LoadBalancerKind.LeastRequest, [Endpoint(1), Endpoint(2), Endpoint(3), Endpoint(4)]), TimeProvider.System);
        var picks = new int[4];

        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            for (var i = 0; i < 5000; i++)
            {
                var e = runtime.Pick((ulong)i, null)!;
                runtime.OnAttemptStart(e.Address);
                Interlocked.Increment(ref picks[e.Address.Address.GetAddressBytes()[3] - 2]);
                runtime.OnAttemptEnd(e.Address, 200, TimeSpan.FromMilliseconds(1));
            }
        });

        Assert.Equal(20000, picks.Sum());
        Assert.All(picks, p => Assert.InRange(p, 3000, 7000));
        Assert.All(runtime.Describe(), s => Assert.Equal(0, s.Outstanding));
    }

    [Theory]
    [InlineData(LoadBalancerKind.RoundRobin)]
    [InlineData(LoadBalancerKind.LeastRequest)]
    [InlineData(LoadBalancerKind.Random)]
    [InlineData(LoadBalancerKind.RingHash)]
    [InlineData(LoadBalancerKind.Ewma)]
    public void Pick_SteadyState_AllocatesNothingPerRequest(LoadBalancerKind balancer)
    {
        var runtimes = new ClusterRuntimes(Clock(), null, Seeded(4));
        var model = new ProxyModel("v1", ProxyModel.Empty.Listeners, ProxyModel.Empty.Routes,
            new Dictionary<string, ClusterModel>
            {
                ["svc"] = Cluster(balancer, [Endpoint(1, weight: 2, zone: "a", localityWeight: 1), Endpoint(2, zone: "a", localityWeight: 1),
                    Endpoint(3, zone: "b", localityWeight: 2), Endpoint(4, priority: 1)],
                    new OutlierDetectionModel(1000, 1000, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), 50)), // counts, never ejects
            }.ToFrozenDictionary());
        var avoid = Address(1);
        void Request(int i)
        {
            var runtime = runtimes.Get(model, "svc")!;
            runtime.TryEnterRequest();
            var e = runtime.Pick((ulong)i + 1, i % 7 == 0 ? avoid : null)!;
            runtime.OnAttemptStart(e.Address);
            runtime.OnAttemptEnd(e.Address, i % 3 == 0 ? 503 : 200, TimeSpan.FromMilliseconds(3));
            runtime.ExitRequest();
        }
        for (var i = 0; i < 100; i++)
        {
            Request(i); // builds the endpoint set, views, ring and schedule
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10000; i++)
        {
            Request(i);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
