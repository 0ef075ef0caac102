using System.Net;
using Trellis.Proxy.Model;
using Xunit;
using static Trellis.Proxy.Tests.Http.Http1.TestModels;

namespace Trellis.Proxy.Tests.Http.Http1;

public sealed class Http1ForwardingTests
{
    private static ModelState OneRoute(TestBackend backend, Func<ClusterModel, ClusterModel>? cluster = null)
    {
        var c = Cluster("web", backend.EndPoint);
        return State(ModelOf([Route("all", "/", "web")], cluster is null ? c : cluster(c)));
    }

    [Fact]
    public async Task KeepAlive_TenRequestsOnOneClientConnection_UpstreamSeesOneConnection()
    {
        await using var backend = new TestBackend((r, x) => x.OkAsync("hello " + r.Target));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        for (var i = 0; i < 10; i++)
        {
            var response = await client.RoundTripAsync($"GET /n{i} HTTP/1.1\r\nHost: web\r\n\r\n");
            Assert.Equal(200, response.Status);
            Assert.Equal($"hello /n{i}", response.Body);
            Assert.Null(response.Header("connection"));
        }
        Assert.Equal(1, backend.Connections);
    }

    [Fact]
    public async Task KeepAlive_SeparateClientConnections_ReuseThePooledUpstreamConnection()
    {
        await using var backend = new TestBackend();
        await using var proxy = new TestProxy(OneRoute(backend));
        for (var i = 0; i < 3; i++)
        {
            using var client = await proxy.ConnectAsync();
            Assert.Equal(200, (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Status);
        }
        Assert.Equal(1, backend.Connections);
    }

    [Fact]
    public async Task Pipelining_TwoRequestsInOneWrite_AreAnsweredInOrder()
    {
        await using var backend = new TestBackend((r, x) => x.OkAsync(r.Target));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        await client.SendAsync("GET /first HTTP/1.1\r\nHost: web\r\n\r\nPOST /second HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabcGET /third HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal("/first", (await client.ReadResponseAsync()).Body);
        Assert.Equal("/second", (await client.ReadResponseAsync()).Body);
        Assert.Equal("/third", (await client.ReadResponseAsync()).Body);
        Assert.Equal(1, backend.Connections);
    }

    [Fact]
    public async Task Forward_HeaderLinesAndBody_ArriveAsSentWithoutHopByHopFields()
    {
        await using var backend = new TestBackend((r, x) => x.WriteAsync(
            "HTTP/1.1 201 Created\r\nX-Reply: One\r\nConnection: keep-alive, x-drop-me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 4\r\n\r\ndone"));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync(
            "POST /p?q=1 HTTP/1.1\r\nHost: web\r\nX-Custom:  Mixed Case  \r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nContent-Length: 5\r\n\r\nhello");
        var seen = await backend.NextRequestAsync();

        Assert.Equal(201, response.Status);
        Assert.Equal("done", response.Body);
        Assert.Equal("One", response.Header("x-reply"));
        Assert.Null(response.Header("x-drop-me"));
        Assert.Null(response.Header("keep-alive"));
        Assert.Equal("POST", seen.Method);
        Assert.Equal("/p?q=1", seen.Target);
        Assert.Equal("hello", seen.BodyText);
        Assert.Equal("Mixed Case", seen.Header("X-Custom"));
        Assert.Null(seen.Header("connection"));
        Assert.Null(seen.Header("x-secret"));
        Assert.Null(seen.Header("keep-alive"));
        Assert.Null(seen.Header("te"));
        Assert.Null(seen.Header("proxy-connection"));
    }

    [Fact]
    public async Task Chunked_RequestAndResponse_StreamThroughWithTrailers()
    {
        await using var backend = new TestBackend((r, x) => x.WriteAsync(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nreply\r\n6;ext=1\r\n-bytes\r\n0\r\nX-Sum: 11\r\n\r\n"));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync(
            "POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nA;name=value\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n");
        var seen = await backend.NextRequestAsync();

        Assert.True(seen.WasChunked);
        Assert.Equal("abcd0123456789", seen.BodyText);
        Assert.Equal("X-Trailer: t\n", seen.Trailers);
        Assert.True(response.WasChunked);
        Assert.Equal("reply-bytes", response.Body);
        // The connection stays usable after a chunked exchange.
        Assert.Equal(200, (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Status);
        Assert.Equal(1, backend.Connections);
    }

    [Fact]
    public async Task Chunked_BodyLargerThanTheBuffers_IsStreamedIntact()
    {
        var big = new string('x', 300_000);
        await using var backend = new TestBackend((r, x) => x.OkAsync(r.Body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync($"POST /big HTTP/1.1\r\nHost: web\r\nContent-Length: {big.Length}\r\n\r\n{big}");

        Assert.Equal("300000", response.Body);
    }

    [Fact]
    public async Task Expect100Continue_ProxyAnswers100ThenForwardsTheBody()
    {
        await using var backend = new TestBackend((r, x) => x.OkAsync("got " + r.BodyText));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        await client.SendAsync("PUT /f HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
        var interim = await client.ReadResponseAsync();
        Assert.Equal(100, interim.Status);
        await client.SendAsync("data");
        var response = await client.ReadResponseAsync();
        var seen = await backend.NextRequestAsync();

        Assert.Equal(200, response.Status);
        Assert.Equal("got data", response.Body);
        Assert.Null(seen.Header("expect"));
    }

    [Fact]
    public async Task Upgrade_Upstream101_SwitchesToAByteRelay()
    {
        await using var backend = new TestBackend(async (r, x) =>
        {
            await x.WriteAsync($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: {r.Header("upgrade")}\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: k\r\n\r\n");
            // Echo every byte until the proxy closes.
            var buffer = new byte[1024];
            int n;
            while ((n = await x.Stream.ReadAsync(buffer)) > 0)
            {
                await x.Stream.WriteAsync(buffer.AsMemory(0, n));
            }
            x.Close();
        });
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: abc\r\n\r\n");
        var seen = await backend.NextRequestAsync();

        Assert.Equal(101, response.Status);
        Assert.Equal("websocket", response.Header("upgrade"));
        Assert.Equal("k", response.Header("sec-websocket-accept"));
        Assert.Equal("websocket", seen.Header("upgrade"));
        Assert.Equal("upgrade", seen.Header("connection"));
        await client.SendAsync("frame-1");
        Assert.Equal("frame-1", await client.ReadExactlyAsync(7));
        await client.SendAsync("\u0001\u0002binary");
        Assert.Equal("\u0001\u0002binary", await client.ReadExactlyAsync(8));

        // The client's half-close reaches the backend, which closes; the client then sees the end.
        client.Stream.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        await client.AssertClosedAsync();
    }

    [Fact]
    public async Task Head_And204And304_HaveNoBodyAndKeepTheConnection()
    {
        await using var backend = new TestBackend((r, x) => r.Target switch
        {
            "/204" => x.WriteAsync("HTTP/1.1 204 No Content\r\n\r\n"),
            "/304" => x.WriteAsync("HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n"),
            _ => x.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        });
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var head = await client.RoundTripAsync("HEAD /h HTTP/1.1\r\nHost: web\r\n\r\n", head: true);
        Assert.Equal("1000", head.Header("content-length"));
        Assert.Equal(204, (await client.RoundTripAsync("GET /204 HTTP/1.1\r\nHost: web\r\n\r\n")).Status);
        Assert.Equal(304, (await client.RoundTripAsync("GET /304 HTTP/1.1\r\nHost: web\r\n\r\n")).Status);
        Assert.Equal(1, backend.Connections);
    }

    [Fact]
    public async Task CloseDelimitedResponse_IsRelayedAndTheClientConnectionCloses()
    {
        await using var backend = new TestBackend(async (r, x) =>
        {
            await x.WriteAsync("HTTP/1.1 200 OK\r\n\r\nuntil the end");
            x.Close();
        });
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal("until the end", response.Body);
        Assert.Equal("close", response.Header("connection"));
    }

    [Fact]
    public async Task Http10Client_ChunkedUpstreamResponse_IsDechunkedAndClosed()
    {
        await using var backend = new TestBackend((r, x) => x.WriteAsync("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET / HTTP/1.0\r\nHost: web\r\n\r\n");

        Assert.Equal("abc", response.Body);
        Assert.False(response.WasChunked);
        Assert.Null(response.Header("transfer-encoding"));
    }

    [Fact]
    public async Task UpstreamClosesIdleConnection_NextRequestReconnectsInsteadOfFailing()
    {
        await using var backend = new TestBackend(async (r, x) =>
        {
            await x.OkAsync("ok");
            if (r.Target == "/then-close")
            {
                x.Close(); // after answering, as servers do when their keep-alive timeout passes
            }
        });
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        Assert.Equal(200, (await client.RoundTripAsync("GET /then-close HTTP/1.1\r\nHost: web\r\n\r\n")).Status);
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            await backend.Closed.Reader.ReadAsync(cts.Token);
        }
        var response = await client.RoundTripAsync("POST /next HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhi");

        Assert.Equal(200, response.Status);
        Assert.Equal(2, backend.Connections);
    }

    [Fact]
    public async Task MaxRequestsPerConnection_Two_FourRequestsUseTwoUpstreamConnections()
    {
        await using var backend = new TestBackend((r, x) => x.OkAsync(r.Connection.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        await using var proxy = new TestProxy(OneRoute(backend, c => c with { MaxRequestsPerConnection = 2 }));
        using var client = await proxy.ConnectAsync();

        var connections = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            connections.Add((await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Body);
        }

        Assert.Equal(["1", "1", "2", "2"], connections);
    }

    [Fact]
    public async Task ModelSwap_OnAKeepAliveConnection_AppliesFromTheNextRequest()
    {
        await using var a = new TestBackend((r, x) => x.OkAsync("a"));
        await using var b = new TestBackend((r, x) => x.OkAsync("b"));
        var state = State(ModelOf([Route("all", "/", "a")], Cluster("a", a.EndPoint)));
        await using var proxy = new TestProxy(state);
        using var client = await proxy.ConnectAsync();

        Assert.Equal("a", (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Body);
        state.Swap(ModelOf([Route("all", "/", "b")], Cluster("b", b.EndPoint)), complete: true);
        Assert.Equal("b", (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Body);
    }

    [Fact]
    public async Task FixedTarget_InboundListener_ForwardsWithoutRouting()
    {
        await using var app = new TestBackend((r, x) => x.OkAsync("app " + r.Target));
        await using var proxy = new TestProxy(new ModelState(), fixedAddress: app.EndPoint);
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET /anything HTTP/1.1\r\nHost: whatever\r\n\r\n");

        Assert.Equal("app /anything", response.Body);
    }

    [Fact]
    public async Task Drain_IdleKeepAliveConnection_IsClosedWhenTheListenerStops()
    {
        await using var backend = new TestBackend();
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();
        Assert.Equal(200, (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Status);

        await proxy.Listener.StopAcceptingAsync();

        await client.AssertClosedAsync();
        await Trellis.Testing.Eventually.WaitAsync(() => proxy.Listener.ActiveConnections == 0, "the drained connection to end");
    }

    [Fact]
    public async Task AbsoluteFormTarget_AuthorityBecomesHostAndPathIsOriginForm()
    {
        await using var backend = new TestBackend();
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        Assert.Equal(200, (await client.RoundTripAsync("GET http://web:80/x?y=1 HTTP/1.1\r\nHost: ignored\r\n\r\n")).Status);
        var seen = await backend.NextRequestAsync();

        Assert.Equal("/x?y=1", seen.Target);
        Assert.Equal("web:80", seen.Header("host"));
        Assert.Equal(1, seen.Count("host"));
    }

    [Fact]
    public async Task StreamedBody_UpstreamAnswersBeforeReadingIt_ClientGetsTheAnswerAndTheConnectionCloses()
    {
        // A server that answers 413 as soon as it has the head, without reading the body.
        using var server = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        server.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        server.Listen(1);
        var serving = Task.Run(async () =>
        {
            using var s = await server.AcceptAsync();
            using var stream = new System.Net.Sockets.NetworkStream(s);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await new ByteReader(stream).ReadHeadAsync(cts.Token);
            await stream.WriteAsync("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbig"u8.ToArray());
        });
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "web")], Cluster("web", (IPEndPoint)server.LocalEndPoint!))));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync($"POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: 1000000\r\n\r\n{new string('x', 1000)}");
        await serving;

        Assert.Equal(413, response.Status);
        Assert.Equal("big", response.Body);
        Assert.Equal("close", response.Header("connection"));
        await client.AssertClosedAsync();
    }

    [Fact]
    public async Task InterimResponse_103FromUpstream_IsDroppedAndTheFinalResponseForwarded()
    {
        await using var backend = new TestBackend((r, x) => x.WriteAsync("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal"));
        await using var proxy = new TestProxy(OneRoute(backend));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal(200, response.Status);
        Assert.Equal("final", response.Body);
    }
}
