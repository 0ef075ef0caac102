using System.Net;
using System.Net.Sockets;
using Trellis.Proxy.Model;
using Trellis.Testing;
using Xunit;
using static Trellis.Proxy.Tests.Http.Http1.TestModels;

namespace Trellis.Proxy.Tests.Http.Http1;

public sealed class Http1UpstreamFailureTests
{
    private const string Get = "GET / HTTP/1.1\r\nHost: web\r\n\r\n";

    [Fact]
    public async Task Upstream_HangsPastTheRouteTimeout_Answers504UpstreamTimeout()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        var hung = new TaskCompletionSource();
        await using var backend = new TestBackend(async (r, x) =>
        {
            hung.TrySetResult();
            await Task.Delay(Timeout.Infinite, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        });
        var route = Route("r", "/", "web") with { Timeout = TimeSpan.FromSeconds(3) };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))), clock: clock);
        using var client = await proxy.ConnectAsync();

        await client.SendAsync(Get);
        await hung.Task.WaitAsync(TimeSpan.FromSeconds(10));
        clock.Advance(TimeSpan.FromSeconds(2.9));
        Assert.False(client.Stream.DataAvailable);
        clock.Advance(TimeSpan.FromSeconds(0.1));
        var response = await client.ReadResponseAsync();

        Assert.Equal(504, response.Status);
        Assert.Equal("upstream_timeout", response.Header("x-trellis-error"));
        // The hung upstream connection is not reused: the next request opens another.
        var next = client.RoundTripAsync(Get);
        await backend.NextRequestAsync();
        await backend.NextRequestAsync();
        Assert.Equal(2, backend.Connections);
        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(504, (await next).Status);
    }

    /// <summary>Sends one GET to a backend behaving as <paramref name="handler"/> says; returns what the client got.</summary>
    private static async Task<ClientResponse> GetThroughAsync(Func<BackendRequest, BackendExchange, Task> handler)
    {
        await using var backend = new TestBackend(handler);
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "web")], Cluster("web", backend.EndPoint))));
        using var client = await proxy.ConnectAsync();
        return await client.RoundTripAsync(Get);
    }

    [Fact]
    public async Task Upstream_ResetsBeforeAnswering_Answers503UpstreamReset()
    {
        var response = await GetThroughAsync((r, x) =>
        {
            x.Reset();
            return Task.CompletedTask;
        });

        Assert.Equal(503, response.Status);
        Assert.Equal("upstream_reset", response.Header("x-trellis-error"));
        Assert.Contains("closed or reset", response.Body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("HTTP/1.1 2xx Nope\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")]
    [InlineData("HTTP/1.1 200 OK\nContent-Length: 0\n\n")]
    public async Task Upstream_MalformedResponse_Answers502UpstreamProtocolError(string answer)
    {
        var response = await GetThroughAsync((r, x) => x.WriteAsync(answer));

        Assert.Equal(502, response.Status);
        Assert.Equal("upstream_protocol_error", response.Header("x-trellis-error"));
    }

    [Fact]
    public async Task Upstream_ConnectionRefused_Answers503UpstreamConnectFailure()
    {
        // A port that was just bound and released: nothing listens there.
        var free = new TcpListener(IPAddress.Loopback, 0);
        free.Start();
        var closedPort = (IPEndPoint)free.LocalEndpoint;
        free.Stop();
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "web")], Cluster("web", closedPort))));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync(Get);

        Assert.Equal(503, response.Status);
        Assert.Equal("upstream_connect_failure", response.Header("x-trellis-error"));
        // The connection to the client stays usable.
        Assert.Equal(503, (await client.RoundTripAsync(Get)).Status);
    }

    [Fact]
    public async Task Pool_AtMaxConnectionsWithNoRoomToWait_Answers503CircuitOpen()
    {
        var release = new TaskCompletionSource();
        await using var backend = new TestBackend(async (r, x) =>
        {
            if (r.Target == "/slow")
            {
                await release.Task.WaitAsync(TimeSpan.FromSeconds(30));
            }
            await x.OkAsync("ok");
        });
        var cluster = Cluster("web", backend.EndPoint) with { CircuitBreakers = new CircuitBreakerModel(MaxConnections: 1, MaxPendingRequests: 0, 1024, 3, null) };
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "web")], cluster)));
        using var first = await proxy.ConnectAsync();
        using var second = await proxy.ConnectAsync();

        await first.SendAsync("GET /slow HTTP/1.1\r\nHost: web\r\n\r\n");
        await backend.NextRequestAsync();
        var rejected = await second.RoundTripAsync(Get);

        Assert.Equal(503, rejected.Status);
        Assert.Equal("circuit_open", rejected.Header("x-trellis-error"));
        release.SetResult();
        Assert.Equal(200, (await first.ReadResponseAsync()).Status);
        // Once the connection is back in the pool (just after the response went out), the next request gets it.
        await Eventually.WaitAsync(() => proxy.Services.Pools.For("web").Idle == 1, "the upstream connection to return to the pool");
        Assert.Equal(200, (await second.RoundTripAsync(Get)).Status);
        Assert.Equal(1, backend.Connections);
    }

    [Fact]
    public async Task Pool_AtMaxConnections_APendingRequestWaitsForTheConnection()
    {
        var release = new TaskCompletionSource();
        await using var backend = new TestBackend(async (r, x) =>
        {
            if (r.Target == "/slow")
            {
                await release.Task.WaitAsync(TimeSpan.FromSeconds(30));
            }
            await x.OkAsync(r.Target);
        });
        var cluster = Cluster("web", backend.EndPoint) with { CircuitBreakers = new CircuitBreakerModel(MaxConnections: 1, MaxPendingRequests: 1, 1024, 3, null) };
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "web")], cluster)));
        using var first = await proxy.ConnectAsync();
        using var second = await proxy.ConnectAsync();
        using var third = await proxy.ConnectAsync();

        await first.SendAsync("GET /slow HTTP/1.1\r\nHost: web\r\n\r\n");
        await backend.NextRequestAsync();
        await second.SendAsync("GET /waiting HTTP/1.1\r\nHost: web\r\n\r\n");
        await Eventually.WaitAsync(() => proxy.Services.Pools.For("web").Pending == 1, "the second request to wait for the connection");
        var rejected = await third.RoundTripAsync(Get);
        Assert.Equal("circuit_open", rejected.Header("x-trellis-error"));

        release.SetResult();
        Assert.Equal("/slow", (await first.ReadResponseAsync()).Body);
        Assert.Equal("/waiting", (await second.ReadResponseAsync()).Body);
        Assert.Equal(1, backend.Connections);
    }

    [Fact]
    public async Task Cluster_MaxRequestsReached_Answers503CircuitOpen()
    {
        var release = new TaskCompletionSource();
        await using var backend = new TestBackend(async (r, x) =>
        {
            await release.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await x.OkAsync("ok");
        });
        var cluster = Cluster("web", backend.EndPoint) with { CircuitBreakers = new CircuitBreakerModel(1024, 1024, MaxRequests: 1, 3, null) };
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "web")], cluster)));
        using var first = await proxy.ConnectAsync();
        using var second = await proxy.ConnectAsync();

        await first.SendAsync(Get);
        await backend.NextRequestAsync();
        var rejected = await second.RoundTripAsync(Get);
        release.SetResult();

        Assert.Equal(503, rejected.Status);
        Assert.Equal("circuit_open", rejected.Header("x-trellis-error"));
        Assert.Equal(200, (await first.ReadResponseAsync()).Status);
    }

    [Fact]
    public async Task Metrics_RequestsAreCountedByListenerAndStatus()
    {
        await using var backend = new TestBackend();
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/api", "web")], Cluster("web", backend.EndPoint))));
        using var codes = new MetricRecorder("trellis_proxy_http_requests_total", "test", "code");
        using var client = await proxy.ConnectAsync();

        await client.RoundTripAsync("GET /api HTTP/1.1\r\nHost: web\r\n\r\n");
        await client.RoundTripAsync("GET /nope HTTP/1.1\r\nHost: web\r\n\r\n");

        // Other tests' listeners are named "test" too: look for these two among what was recorded.
        await Eventually.WaitAsync(() => codes.Values.Contains("200") && codes.Values.Contains("404"), "a 200 and a 404 measurement");
    }
}
