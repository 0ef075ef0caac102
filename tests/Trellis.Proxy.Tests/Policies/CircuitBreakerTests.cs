using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Xunit;
using static Trellis.Proxy.Tests.Policies.PolicyFixtures;

namespace Trellis.Proxy.Tests.Policies;

public sealed class CircuitBreakerTests
{
    private static ClusterRuntime WithBreakers(int maxConnections = 1024, int maxPending = 1024, int maxRequests = 1024, int maxRetries = 3,
        double? budgetPercent = null, string name = "svc") =>
        Runtime(Cluster(LoadBalancerKind.RoundRobin, [Endpoint(1)], breakers: new CircuitBreakerModel(maxConnections, maxPending, maxRequests, maxRetries, budgetPercent), name: name));

    [Fact]
    public void TryEnterRequest_AtMaxRequests_RefusedUntilOneExits()
    {
        var runtime = WithBreakers(maxRequests: 3);

        Assert.True(runtime.TryEnterRequest());
        Assert.True(runtime.TryEnterRequest());
        Assert.True(runtime.TryEnterRequest());
        Assert.False(runtime.TryEnterRequest());
        Assert.Equal(BreakerLimit.MaxRequests, runtime.LastOverflow);
        Assert.Equal(3, runtime.ActiveRequests);

        runtime.ExitRequest();
        Assert.True(runtime.TryEnterRequest());
    }

    [Fact]
    public void TryEnterRetry_NoBudget_CappedByMaxRetries()
    {
        var runtime = WithBreakers(maxRetries: 2);
        for (var i = 0; i < 100; i++)
        {
            runtime.TryEnterRequest();
        }

        Assert.True(runtime.TryEnterRetry());
        Assert.True(runtime.TryEnterRetry());
        Assert.False(runtime.TryEnterRetry(out var refusedBy));
        Assert.Equal(BreakerLimit.MaxRetries, refusedBy);

        runtime.ExitRetry();
        Assert.True(runtime.TryEnterRetry(out refusedBy));
        Assert.Equal(BreakerLimit.None, refusedBy);
    }

    [Fact]
    public void TryEnterRetry_Budget20PercentOf100Requests_Allows20RetriesInFlight()
    {
        var runtime = WithBreakers(maxRetries: 3, budgetPercent: 20);
        for (var i = 0; i < 100; i++)
        {
            Assert.True(runtime.TryEnterRequest());
        }

        var allowed = 0;
        while (runtime.TryEnterRetry() && allowed < 1000)
        {
            allowed++;
        }

        Assert.Equal(20, allowed); // the budget replaces max_retries (3), as in Envoy
        Assert.Equal(BreakerLimit.RetryBudget, runtime.LastOverflow);
    }

    [Fact]
    public void TryEnterRetry_BudgetWithFewRequests_AtLeastThreeRetries()
    {
        var runtime = WithBreakers(budgetPercent: 20);
        for (var i = 0; i < 5; i++)
        {
            runtime.TryEnterRequest();
        }

        Assert.True(runtime.TryEnterRetry());
        Assert.True(runtime.TryEnterRetry());
        Assert.True(runtime.TryEnterRetry());
        Assert.False(runtime.TryEnterRetry());
    }

    [Fact]
    public void TryEnterRetry_BudgetFollowsActiveRequests_MoreRequestsMoreRetries()
    {
        var runtime = WithBreakers(budgetPercent: 50);
        for (var i = 0; i < 10; i++)
        {
            runtime.TryEnterRequest();
        }
        var first = 0;
        while (runtime.TryEnterRetry() && first < 100)
        {
            first++;
        }
        for (var i = 0; i < 10; i++)
        {
            runtime.TryEnterRequest();
        }

        Assert.Equal(5, first);
        Assert.True(runtime.TryEnterRetry()); // 20 requests in flight: 10 retries allowed now
    }

    [Fact]
    public void TryEnterConnectionAndPending_AtLimits_Refused()
    {
        var runtime = WithBreakers(maxConnections: 1, maxPending: 2);

        Assert.True(runtime.TryEnterConnection());
        Assert.False(runtime.TryEnterConnection());
        Assert.Equal(BreakerLimit.MaxConnections, runtime.LastOverflow);
        Assert.True(runtime.TryEnterPending());
        Assert.True(runtime.TryEnterPending());
        Assert.False(runtime.TryEnterPending());
        Assert.Equal(BreakerLimit.MaxPendingRequests, runtime.LastOverflow);

        runtime.ExitConnection();
        runtime.ExitPending();
        Assert.True(runtime.TryEnterConnection());
        Assert.True(runtime.TryEnterPending());
    }

    [Fact]
    public void ExitRequest_MoreExitsThanEnters_CountNeverNegative()
    {
        var runtime = WithBreakers(maxRequests: 1);

        runtime.ExitRequest();
        runtime.ExitRetry();

        Assert.Equal(0, runtime.ActiveRequests);
        Assert.True(runtime.TryEnterRequest());
        Assert.False(runtime.TryEnterRequest());
    }

    [Fact]
    public void TryEnterRequest_ManyThreads_NeverMoreThanMaxInFlight()
    {
        var runtime = WithBreakers(maxRequests: 5);
        var inFlight = 0;
        var peak = 0;
        var refused = 0;

        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            for (var i = 0; i < 20000; i++)
            {
                if (!runtime.TryEnterRequest())
                {
                    Interlocked.Increment(ref refused);
                    continue;
                }
                var now = Interlocked.Increment(ref inFlight);
                var seen = Volatile.Read(ref peak);
                while (now > seen && Interlocked.CompareExchange(ref peak, now, seen) != seen)
                {
                    seen = Volatile.Read(ref peak);
                }
                Interlocked.Decrement(ref inFlight);
                runtime.ExitRequest();
            }
        });

        Assert.InRange(peak, 1, 5);
        Assert.Equal(0, runtime.ActiveRequests);
    }

    [Fact]
    public void Overflows_Counted_InMetricsForTheCluster()
    {
        var cluster = $"cb-metric-{Guid.NewGuid():N}";
        using var requests = new CounterProbe("trellis_proxy_upstream_rq_overflow_total", "cluster", cluster);
        using var retries = new CounterProbe("trellis_proxy_upstream_rq_retry_total", "cluster", cluster);
        using var retryOverflows = new CounterProbe("trellis_proxy_upstream_rq_retry_overflow_total", "cluster", cluster);
        using var connections = new CounterProbe("trellis_proxy_upstream_cx_overflow_total", "cluster", cluster);
        var runtime = WithBreakers(maxConnections: 0, maxRequests: 1, maxRetries: 1, name: cluster);

        runtime.TryEnterRequest();
        runtime.TryEnterRequest();
        runtime.TryEnterRetry();
        runtime.TryEnterRetry();
        runtime.TryEnterRetry();
        runtime.TryEnterConnection();

        Assert.Equal(1, requests.Total);
        Assert.Equal(1, retries.Total);
        Assert.Equal(2, retryOverflows.Total);
        Assert.Equal(1, connections.Total);
    }
}
