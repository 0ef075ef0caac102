using Trellis.Proxy.Http;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Xunit;
using static Trellis.Proxy.Tests.Policies.PolicyFixtures;

namespace Trellis.Proxy.Tests.Policies;

public sealed class RoutePoliciesTests
{
    private static RouteModel Route(string name = "r1", RateLimitModel? limit = null, FaultModel? fault = null) =>
        new(name, new RouteMatchModel(PathMatchKind.Prefix, "/", [], []), [new WeightedClusterModel("svc", 1)], null, null, null, null,
            [], [], [], [], null, null, null)
        { RateLimit = limit, Fault = fault };

    private static RetryPolicyModel Retry(params string[] retryOn) =>
        new(retryOn, 2, null, TimeSpan.FromMilliseconds(25), TimeSpan.FromMilliseconds(250));

    [Fact]
    public void TryAcquireRateLimit_BurstUsed_RefusedUntilRefillThenCappedAtMax()
    {
        var clock = Clock();
        var policies = new RoutePolicies(clock, Seeded(1));
        var route = Route(limit: new RateLimitModel(5, 2, TimeSpan.FromSeconds(1)));

        for (var i = 0; i < 5; i++)
        {
            Assert.True(policies.TryAcquireRateLimit(route), $"burst request {i + 1}");
        }
        Assert.False(policies.TryAcquireRateLimit(route));

        clock.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(policies.TryAcquireRateLimit(route));
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(policies.TryAcquireRateLimit(route));
        Assert.True(policies.TryAcquireRateLimit(route));
        Assert.False(policies.TryAcquireRateLimit(route));

        clock.Advance(TimeSpan.FromHours(10)); // a long idle time refills to the maximum, not beyond
        var taken = 0;
        while (policies.TryAcquireRateLimit(route) && taken < 100)
        {
            taken++;
        }
        Assert.Equal(5, taken);
    }

    [Fact]
    public void TryAcquireRateLimit_PartialInterval_CarriedToTheNextFill()
    {
        var clock = Clock();
        var policies = new RoutePolicies(clock, Seeded(1));
        var route = Route(limit: new RateLimitModel(1, 1, TimeSpan.FromSeconds(1)));
        Assert.True(policies.TryAcquireRateLimit(route));

        clock.Advance(TimeSpan.FromMilliseconds(1500));
        Assert.True(policies.TryAcquireRateLimit(route));
        clock.Advance(TimeSpan.FromMilliseconds(500)); // 2 s after the start: the second fill is due

        Assert.True(policies.TryAcquireRateLimit(route));
    }

    [Fact]
    public void TryAcquireRateLimit_NoLimit_AlwaysAllowed()
    {
        var policies = new RoutePolicies(Clock(), Seeded(1));

        for (var i = 0; i < 1000; i++)
        {
            Assert.True(policies.TryAcquireRateLimit(Route()));
        }
    }

    [Fact]
    public void TryAcquireRateLimit_ModelSwapSameRouteAndLimit_SharesTheBucket()
    {
        var policies = new RoutePolicies(Clock(), Seeded(1));
        var before = Route(limit: new RateLimitModel(2, 1, TimeSpan.FromMinutes(1)));
        var after = Route(limit: new RateLimitModel(2, 1, TimeSpan.FromMinutes(1))); // compiled again: new objects, same values

        Assert.True(policies.TryAcquireRateLimit(before));
        Assert.True(policies.TryAcquireRateLimit(after));
        Assert.False(policies.TryAcquireRateLimit(after));

        var changed = Route(limit: new RateLimitModel(3, 1, TimeSpan.FromMinutes(1)));
        Assert.True(policies.TryAcquireRateLimit(changed)); // a new limit starts with a full bucket
        Assert.False(policies.TryAcquireRateLimit(Route(name: "r1", limit: new RateLimitModel(2, 1, TimeSpan.FromMinutes(1)))));
        Assert.True(policies.TryAcquireRateLimit(Route(name: "r2", limit: new RateLimitModel(2, 1, TimeSpan.FromMinutes(1)))));
    }

    [Fact]
    public void TryAcquireRateLimit_ManyThreads_ExactlyMaxTokensGranted()
    {
        var policies = new RoutePolicies(Clock(), Seeded(1));
        var route = Route(limit: new RateLimitModel(1000, 1, TimeSpan.FromHours(1)));
        var granted = 0;

        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            for (var i = 0; i < 1000; i++)
            {
                if (policies.TryAcquireRateLimit(route))
                {
                    Interlocked.Increment(ref granted);
                }
            }
        });

        Assert.Equal(1000, granted);
    }

    [Fact]
    public void TryAcquireRateLimit_Refused_CountedPerRoute()
    {
        var name = $"rl-metric-{Guid.NewGuid():N}";
        using var probe = new CounterProbe("trellis_proxy_ratelimited_total", "route", name);
        var policies = new RoutePolicies(Clock(), Seeded(1));
        var route = Route(name, limit: new RateLimitModel(1, 1, TimeSpan.FromMinutes(1)));

        policies.TryAcquireRateLimit(route);
        policies.TryAcquireRateLimit(route);
        policies.TryAcquireRateLimit(route);

        Assert.Equal(2, probe.Total);
    }

    [Fact]
    public void DecideFault_Percentages_WithinToleranceOver10000Requests()
    {
        var name = $"fault-{Guid.NewGuid():N}";
        using var delays = new CounterProbe("trellis_proxy_faults_injected_total", "route", name, "kind", "delay");
        using var aborts = new CounterProbe("trellis_proxy_faults_injected_total", "route", name, "kind", "abort");
        var policies = new RoutePolicies(Clock(), Seeded(17));
        var route = Route(name, fault: new FaultModel(30, TimeSpan.FromMilliseconds(200), 10.5, 503, null));
        int delayed = 0, aborted = 0;

        for (var i = 0; i < 10000; i++)
        {
            var d = policies.DecideFault(route);
            if (d.Delay > TimeSpan.Zero)
            {
                delayed++;
                Assert.Equal(TimeSpan.FromMilliseconds(200), d.Delay);
            }
            if (d.Aborts)
            {
                aborted++;
                Assert.Equal(503, d.AbortHttpStatus);
            }
        }

        Assert.InRange(delayed / 10000.0, 0.28, 0.32);
        Assert.InRange(aborted / 10000.0, 0.095, 0.115);
        Assert.Equal(delayed, delays.Total);
        Assert.Equal(aborted, aborts.Total);
    }

    [Fact]
    public void DecideFault_ZeroAndHundredPercent_NeverAndAlways()
    {
        var policies = new RoutePolicies(Clock(), Seeded(2));
        var never = Route(fault: new FaultModel(0, TimeSpan.FromSeconds(1), 0, 500, null));
        var always = Route(fault: new FaultModel(100, TimeSpan.FromSeconds(1), 100, 500, null));

        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal(FaultDecision.None, policies.DecideFault(never));
            var d = policies.DecideFault(always);
            Assert.True(d.Aborts && d.Delay == TimeSpan.FromSeconds(1));
        }
        Assert.Equal(FaultDecision.None, policies.DecideFault(Route()));
    }

    [Fact]
    public void DecideFault_GrpcAbort_CarriesGrpcStatusAndAnHttpStatus()
    {
        var policies = new RoutePolicies(Clock(), Seeded(2));

        var withBoth = policies.DecideFault(Route(fault: new FaultModel(0, TimeSpan.Zero, 100, 429, 8)));
        var grpcOnly = policies.DecideFault(Route(fault: new FaultModel(0, TimeSpan.Zero, 100, 0, 14)));

        Assert.Equal((429, (int?)8), (withBoth.AbortHttpStatus, withBoth.AbortGrpcStatus));
        Assert.Equal((503, (int?)14), (grpcOnly.AbortHttpStatus, grpcOnly.AbortGrpcStatus));
        Assert.True(grpcOnly.Aborts);
    }

    [Theory]
    // 5xx: any 5xx and any missing response
    [InlineData("5xx", 500, null, ProxyError.None, true)]
    [InlineData("5xx", 503, null, ProxyError.None, true)]
    [InlineData("5xx", 404, null, ProxyError.None, false)]
    [InlineData("5xx", 0, null, ProxyError.UpstreamConnectFailure, true)]
    [InlineData("5xx", 0, null, ProxyError.UpstreamReset, true)]
    [InlineData("5xx", 0, null, ProxyError.UpstreamProtocolError, true)]
    // gateway-error: 502/503/504 and missing responses
    [InlineData("gateway-error", 502, null, ProxyError.None, true)]
    [InlineData("gateway-error", 503, null, ProxyError.None, true)]
    [InlineData("gateway-error", 504, null, ProxyError.None, true)]
    [InlineData("gateway-error", 500, null, ProxyError.None, false)]
    [InlineData("gateway-error", 0, null, ProxyError.UpstreamReset, true)]
    // reset: only missing responses
    [InlineData("reset", 0, null, ProxyError.UpstreamReset, true)]
    [InlineData("reset", 0, null, ProxyError.UpstreamConnectFailure, true)]
    [InlineData("reset", 503, null, ProxyError.None, false)]
    // connect-failure and refused-stream
    [InlineData("connect-failure", 0, null, ProxyError.UpstreamConnectFailure, true)]
    [InlineData("connect-failure", 0, null, ProxyError.UpstreamReset, false)]
    [InlineData("connect-failure", 503, null, ProxyError.None, false)]
    [InlineData("refused-stream", 0, null, ProxyError.UpstreamReset, true)]
    [InlineData("refused-stream", 0, null, ProxyError.UpstreamConnectFailure, false)]
    [InlineData("refused-stream", 503, null, ProxyError.None, false)]
    // retriable-4xx: 409 only
    [InlineData("retriable-4xx", 409, null, ProxyError.None, true)]
    [InlineData("retriable-4xx", 429, null, ProxyError.None, false)]
    // gRPC statuses, matched on grpc-status whatever the HTTP status
    [InlineData("cancelled", 200, 1, ProxyError.None, true)]
    [InlineData("deadline-exceeded", 200, 4, ProxyError.None, true)]
    [InlineData("internal", 200, 13, ProxyError.None, true)]
    [InlineData("resource-exhausted", 200, 8, ProxyError.None, true)]
    [InlineData("unavailable", 200, 14, ProxyError.None, true)]
    [InlineData("unavailable", 200, 13, ProxyError.None, false)]
    [InlineData("unavailable", 200, null, ProxyError.None, false)]
    [InlineData("internal", 500, null, ProxyError.None, false)]
    // several tokens, unknown tokens
    [InlineData("connect-failure,retriable-4xx", 409, null, ProxyError.None, true)]
    [InlineData("retriable-headers,unknown", 503, null, ProxyError.None, false)]
    // the proxy's own refusals and the route timeout are never retried
    [InlineData("5xx,reset,gateway-error", 0, null, ProxyError.UpstreamTimeout, false)]
    [InlineData("5xx,reset,gateway-error", 0, null, ProxyError.CircuitOpen, false)]
    [InlineData("5xx,reset,gateway-error", 0, null, ProxyError.NoHealthyUpstream, false)]
    [InlineData("5xx,reset,gateway-error", 0, null, ProxyError.RateLimited, false)]
    public void IsRetriable_RetryOnTable(string retryOn, int status, int? grpcStatus, ProxyError error, bool expected)
    {
        Assert.Equal(expected, RoutePolicies.IsRetriable(Retry(retryOn.Split(',')), status, grpcStatus, error));
    }

    [Theory]
    [InlineData("5xx", true)]
    [InlineData("gateway-error", true)]
    [InlineData("reset", true)]
    [InlineData("connect-failure", false)]
    [InlineData("refused-stream", false)]
    [InlineData("retriable-4xx", false)]
    public void IsRetriable_PerTryTimeout_RetriedAsNoResponse(string retryOn, bool expected)
    {
        Assert.Equal(expected, RoutePolicies.IsRetriable(Retry(retryOn), 0, null, ProxyError.UpstreamTimeout, perTryTimeout: true));
    }

    [Fact]
    public void IsRetriable_NoRetryOnTokens_NeverRetriable()
    {
        Assert.False(RoutePolicies.IsRetriable(Retry(), 503, 14, ProxyError.None));
    }

    [Fact]
    public void Backoff_EachRetry_WithinExponentialCapAndSpreadOverIt()
    {
        var policies = new RoutePolicies(Clock(), Seeded(9));
        var policy = Retry("5xx");
        double[] caps = [25, 50, 100, 200, 250, 250, 250];

        for (var n = 1; n <= caps.Length; n++)
        {
            var max = 0.0;
            var sum = 0.0;
            for (var i = 0; i < 1000; i++)
            {
                var ms = policies.Backoff(policy, n).TotalMilliseconds;
                Assert.InRange(ms, 0, caps[n - 1]);
                max = Math.Max(max, ms);
                sum += ms;
            }
            Assert.True(max > 0.9 * caps[n - 1], $"retry {n}: largest wait {max} ms of {caps[n - 1]}");
            Assert.InRange(sum / 1000, 0.4 * caps[n - 1], 0.6 * caps[n - 1]); // full jitter: mean about half the cap
        }
    }

    [Fact]
    public void Backoff_HugeRetryNumber_StaysAtMaxInterval()
    {
        var policies = new RoutePolicies(Clock(), Seeded(9));

        for (var i = 0; i < 100; i++)
        {
            Assert.InRange(policies.Backoff(Retry("5xx"), int.MaxValue).TotalMilliseconds, 0, 250);
        }
        Assert.Equal(TimeSpan.Zero, policies.Backoff(new RetryPolicyModel(["5xx"], 1, null, TimeSpan.Zero, TimeSpan.Zero), 3));
    }

    [Fact]
    public void RoutePolicies_SteadyState_AllocateNothingPerRequest()
    {
        var policies = new RoutePolicies(Clock(), Seeded(3));
        var route = Route(limit: new RateLimitModel(1_000_000, 1, TimeSpan.FromHours(1)), fault: new FaultModel(50, TimeSpan.FromMilliseconds(5), 50, 503, 14));
        var retry = Retry("connect-failure", "refused-stream", "5xx", "unavailable");
        void Request(int i)
        {
            policies.TryAcquireRateLimit(route);
            policies.DecideFault(route);
            RoutePolicies.IsRetriable(retry, i % 2 == 0 ? 503 : 0, 14, i % 2 == 0 ? ProxyError.None : ProxyError.UpstreamReset);
            policies.Backoff(retry, (i % 4) + 1);
        }
        for (var i = 0; i < 100; i++)
        {
            Request(i);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10000; i++)
        {
            Request(i);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
