using Trellis.Proxy.Model;
using Trellis.Testing;
using Xunit;
using static Trellis.Proxy.Tests.Http.Http1.TestModels;

namespace Trellis.Proxy.Tests.Http.Http1;

/// <summary>
/// Route policies on the HTTP/1.1 path: the engine asks RoutePolicies for the rate limit and fault decisions of each
/// request. The rules themselves live in Policies/RoutePolicies.cs; these tests check that the path applies them.
/// </summary>
public sealed class Http1PolicyTests
{
    private const string Get = "GET / HTTP/1.1\r\nHost: web\r\n\r\n";

    [Fact]
    public async Task RateLimit_BucketOfOne_SecondRequestAnswers429RateLimited()
    {
        await using var backend = new TestBackend();
        var route = Route("r", "/", "web") with { RateLimit = new RateLimitModel(1, 1, TimeSpan.FromHours(1)) };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))));
        using var client = await proxy.ConnectAsync();

        Assert.Equal(200, (await client.RoundTripAsync(Get)).Status);
        var limited = await client.RoundTripAsync(Get);

        Assert.Equal(429, limited.Status);
        Assert.Equal("rate_limited", limited.Header("x-trellis-error"));
    }

    [Fact]
    public async Task Fault_AbortEveryRequest_AnswersTheFaultStatusWithoutTheUpstream()
    {
        await using var backend = new TestBackend();
        var route = Route("r", "/", "web") with { Fault = new FaultModel(0, TimeSpan.Zero, 100, 418, null) };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync(Get);

        Assert.Equal(418, response.Status);
        Assert.Equal("fault_injected", response.Header("x-trellis-error"));
        Assert.Equal(0, backend.Connections);
    }

    [Fact]
    public async Task Fault_DelayEveryRequest_WaitsOnTheClockThenForwards()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var backend = new TestBackend();
        var route = Route("r", "/", "web") with { Fault = new FaultModel(100, TimeSpan.FromSeconds(2), 0, 0, null) };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))), clock: clock);
        using var client = await proxy.ConnectAsync();

        await client.SendAsync(Get);
        while (await clock.NextTimerAsync() != TimeSpan.FromSeconds(2))
        {
        }
        Assert.Equal(0, backend.Connections);
        clock.Advance(TimeSpan.FromSeconds(2));

        Assert.Equal(200, (await client.ReadResponseAsync()).Status);
    }
}
