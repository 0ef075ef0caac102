using System.Net;
using System.Net.Sockets;
using Trellis.Proxy.Http;
using Trellis.Proxy.Model;
using Trellis.Testing;
using Xunit;
using static Trellis.Proxy.Tests.Http.Http1.TestModels;

namespace Trellis.Proxy.Tests.Http.Http1;

/// <summary>
/// The retry flow of the HTTP/1.1 path. Which failures are retriable is the route policy's rule; these tests give a
/// simple rule (5xx, reset, connect failure, timeout) so they exercise the flow itself.
/// </summary>
public sealed class Http1RetryTests
{
    private const string Get = "GET / HTTP/1.1\r\nHost: web\r\n\r\n";

    private static bool Retriable(RetryPolicyModel policy, int status, int? grpcStatus, ProxyError error) =>
        status >= 500 || error is ProxyError.UpstreamReset or ProxyError.UpstreamConnectFailure or ProxyError.UpstreamTimeout;

    private static RouteModel RetryRoute(int retries, TimeSpan? perTry = null) =>
        Route("r", "/", "web") with { Retry = new RetryPolicyModel(["5xx"], retries, perTry, TimeSpan.Zero, TimeSpan.Zero) };

    private static TestBackend Answering(int status, string body) =>
        new((r, x) => x.WriteAsync($"HTTP/1.1 {status} X\r\ncontent-length: {body.Length}\r\n\r\n{body}"));

    /// <summary>Answers 503 to the first request it sees and 200 to the others.</summary>
    private static TestBackend FailingOnce(Func<BackendExchange, Task>? first = null)
    {
        var seen = 0;
        return new TestBackend((r, x) => Interlocked.Increment(ref seen) == 1
            ? first?.Invoke(x) ?? x.WriteAsync("HTTP/1.1 503 X\r\ncontent-length: 4\r\n\r\ndown")
            : x.WriteAsync("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nup"));
    }

    [Fact]
    public async Task Retry_UpstreamAnswers503Once_TheRetryReplaysTheBodyAndTheClientGets200()
    {
        await using var backend = FailingOnce();
        await using var proxy = new TestProxy(State(ModelOf([RetryRoute(1)], Cluster("web", backend.EndPoint))), isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n\r\nbody");

        Assert.Equal(200, response.Status);
        Assert.Equal("up", response.Body);
        Assert.Equal("body", (await backend.NextRequestAsync()).BodyText);
        Assert.Equal("body", (await backend.NextRequestAsync()).BodyText);
        // The 503's connection was dropped with its response; the retry used a new one.
        Assert.Equal(2, backend.Connections);
    }

    [Fact]
    public async Task Retry_TwoEndpointsOneFailing_TheClientGetsTheHealthyAnswer()
    {
        await using var failing = Answering(503, "down");
        await using var good = Answering(200, "up");
        await using var proxy = new TestProxy(State(ModelOf([RetryRoute(1)], Cluster("web", failing.EndPoint, good.EndPoint))), isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync(Get);

        Assert.Equal(200, response.Status);
        Assert.Equal("up", response.Body);
        Assert.True(failing.Connections <= 1);
    }

    [Fact]
    public async Task Retry_AttemptsExhausted_ForwardsTheLastUpstreamResponse()
    {
        await using var failing = Answering(503, "still down");
        await using var proxy = new TestProxy(State(ModelOf([RetryRoute(2)], Cluster("web", failing.EndPoint))), isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync(Get);

        Assert.Equal(503, response.Status);
        Assert.Equal("still down", response.Body);
        Assert.Null(response.Header("x-trellis-error"));
        for (var i = 0; i < 3; i++)
        {
            await failing.NextRequestAsync();
        }
        Assert.False(failing.Requests.Reader.TryRead(out _));
    }

    [Fact]
    public async Task Retry_RetryBudgetAtZero_ForwardsTheFirstResponse()
    {
        await using var failing = Answering(503, "down");
        var cluster = Cluster("web", failing.EndPoint) with { CircuitBreakers = new CircuitBreakerModel(1024, 1024, 1024, MaxRetries: 0, null) };
        await using var proxy = new TestProxy(State(ModelOf([RetryRoute(3)], cluster)), isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();

        Assert.Equal(503, (await client.RoundTripAsync(Get)).Status);
        await failing.NextRequestAsync();
        Assert.False(failing.Requests.Reader.TryRead(out _));
    }

    [Fact]
    public async Task Retry_BodyTooLargeToReplay_IsNotRetried()
    {
        // Both endpoints fail: a retry would reach the other one, whichever the balancer picks first.
        await using var a = Answering(503, "down-a");
        await using var b = Answering(503, "down-b");
        await using var proxy = new TestProxy(State(ModelOf([RetryRoute(1)], Cluster("web", a.EndPoint, b.EndPoint))), isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();
        var body = new string('b', 70 * 1024);

        var response = await client.RoundTripAsync($"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: {body.Length}\r\n\r\n{body}");

        Assert.Equal(503, response.Status);
        var tried = a.Connections == 1 ? a : b;
        Assert.Equal(body.Length, (await tried.NextRequestAsync()).Body.Length);
        Assert.Equal(1, a.Connections + b.Connections);
    }

    [Fact]
    public async Task Retry_ConnectRefusedOnFirstEndpoint_SecondEndpointAnswers()
    {
        var free = new TcpListener(IPAddress.Loopback, 0);
        free.Start();
        var refused = (IPEndPoint)free.LocalEndpoint;
        free.Stop();
        await using var good = Answering(200, "up");
        await using var proxy = new TestProxy(State(ModelOf([RetryRoute(1)], Cluster("web", refused, good.EndPoint))), isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync(Get);

        Assert.Equal(200, response.Status);
    }

    /// <summary>Never answers the first request (signals <paramref name="hung"/> when it has it); answers 200 to the others.</summary>
    private static TestBackend HangingOnce(TaskCompletionSource hung) => FailingOnce(async x =>
    {
        hung.TrySetResult();
        await Task.Delay(Timeout.Infinite, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
    });

    [Fact]
    public async Task Retry_PerTryTimeoutOnAHungTry_RetriesAndAnswers()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        var hung = new TaskCompletionSource();
        await using var backend = HangingOnce(hung);
        var route = RetryRoute(1, perTry: TimeSpan.FromSeconds(1)) with { Timeout = TimeSpan.FromSeconds(10) };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))), clock: clock, isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();

        await client.SendAsync(Get);
        await hung.Task.WaitAsync(TimeSpan.FromSeconds(10));
        clock.Advance(TimeSpan.FromSeconds(1));
        var response = await client.ReadResponseAsync();

        Assert.Equal(200, response.Status);
        Assert.Equal("up", response.Body);
    }

    [Fact]
    public async Task Retry_RouteTimeoutBeforeAnyRetry_Answers504WithoutRetrying()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        var hung = new TaskCompletionSource();
        await using var backend = HangingOnce(hung);
        var route = RetryRoute(1, perTry: TimeSpan.FromSeconds(5)) with { Timeout = TimeSpan.FromSeconds(2) };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))), clock: clock, isRetriable: Retriable);
        using var client = await proxy.ConnectAsync();

        await client.SendAsync(Get);
        await hung.Task.WaitAsync(TimeSpan.FromSeconds(10));
        clock.Advance(TimeSpan.FromSeconds(2));
        var response = await client.ReadResponseAsync();

        Assert.Equal(504, response.Status);
        Assert.Equal("upstream_timeout", response.Header("x-trellis-error"));
        Assert.Equal(1, backend.Connections);
    }
}
