using System.Collections.Frozen;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Listeners;

public sealed class ListenerDispatchTests
{
    private const string Cluster = "echo.default:7";

    private static ModelState ModelWith(IPEndPoint endpoint)
    {
        var cluster = new ClusterModel(Cluster, LoadBalancerKind.RoundRobin, TimeSpan.FromSeconds(2),
            [new EndpointModel(endpoint, 1, EndpointHealthKind.Healthy, 0, "", "", 1)], new CircuitBreakerModel(1024, 1024, 1024, 3, null), null);
        var state = new ModelState();
        state.Swap(new ProxyModel("v1", ProxyModel.Empty.Listeners, ProxyModel.Empty.Routes,
            new Dictionary<string, ClusterModel> { [Cluster] = cluster }.ToFrozenDictionary()), complete: true);
        return state;
    }

    private static ExplicitListener Listener(ModelState model, TimeProvider clock, IHttp2Frontend? http2 = null, TimeSpan? idle = null)
    {
        var services = new ListenerServices(new ClusterRuntimes(clock), new RoutePolicies(clock, () => 0.5), clock, new Random(1))
        {
            // On the real clock a short detection timeout races with a loaded test machine: those tests send their
            // first bytes at once and never rely on the fallback. Fake clocks pass 100 ms drive it explicitly.
            DetectionTimeout = clock == TimeProvider.System ? TimeSpan.FromSeconds(10) : TimeSpan.FromMilliseconds(100),
        };
        var listener = new ExplicitListener(new ListenerTarget("t", new IPEndPoint(IPAddress.Loopback, 0), Cluster, null), model, NullLogger.Instance, services, http2)
        {
            IdleTimeout = idle ?? TimeSpan.FromHours(1),
        };
        listener.Start();
        return listener;
    }

    /// <summary>Accepts connections; each gets the banner first, then everything it sends is echoed back.</summary>
    private sealed class BannerEcho : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Task _loop;

        public BannerEcho(string banner)
        {
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                while (true)
                {
                    TcpClient c;
                    try
                    {
                        c = await _listener.AcceptTcpClientAsync();
                    }
                    catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                    {
                        return;
                    }
                    _ = Task.Run(async () =>
                    {
                        using (c)
                        {
                            var s = c.GetStream();
                            await s.WriteAsync(Encoding.ASCII.GetBytes(banner));
                            try
                            {
                                await s.CopyToAsync(s);
                            }
                            catch (IOException)
                            {
                            }
                        }
                    });
                }
            });
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _loop;
        }
    }

    private static async Task<string> ReadAsync(NetworkStream s, int count)
    {
        var buffer = new byte[count];
        await s.ReadExactlyAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        return Encoding.ASCII.GetString(buffer);
    }

    private static async Task AssertEndOfStreamAsync(NetworkStream s)
    {
        var buffer = new byte[16];
        try
        {
            Assert.Equal(0, await s.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
        }
    }

    [Fact]
    public async Task Accept_ServerFirstProtocol_RelaysAfterTheDetectionTimeout()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var server = new BannerEcho("220 ready\r\n");
        await using var listener = Listener(ModelWith(server.EndPoint), clock);
        using var client = new TcpClient();
        await client.ConnectAsync(listener.LocalEndPoint);
        var s = client.GetStream();

        // The client waits for the server to speak; the proxy waits for the client, until the detection timeout.
        while (await clock.NextTimerAsync() != TimeSpan.FromMilliseconds(100))
        {
        }
        clock.Advance(TimeSpan.FromMilliseconds(100));

        Assert.Equal("220 ready\r\n", await ReadAsync(s, 11));
        await s.WriteAsync("HELO x\r\n"u8.ToArray());
        Assert.Equal("HELO x\r\n", await ReadAsync(s, 8));
    }

    [Fact]
    public async Task Accept_TlsClientHello_IsRelayedWithTheBytesReadForDetection()
    {
        await using var server = new BannerEcho("");
        await using var listener = Listener(ModelWith(server.EndPoint), TimeProvider.System);
        using var client = new TcpClient();
        await client.ConnectAsync(listener.LocalEndPoint);
        var s = client.GetStream();
        byte[] hello = [0x16, 0x03, 0x01, 0x00, 0x02, 0xAA, 0xBB];
        await s.WriteAsync(hello);

        var echoed = new byte[hello.Length];
        await s.ReadExactlyAsync(echoed).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hello, echoed);
    }

    private sealed class RecordingHttp2Frontend : IHttp2Frontend
    {
        public TaskCompletionSource<DownstreamConnection> Served { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Prefix { get; private set; } = "";

        public async Task ServeAsync(DownstreamConnection connection, CancellationToken cancellationToken)
        {
            Prefix = Encoding.ASCII.GetString(connection.Prefix.Span); // valid only while ServeAsync runs
            Served.TrySetResult(connection);
            await connection.Socket.SendAsync("h2!"u8.ToArray(), SocketFlags.None, cancellationToken);
        }
    }

    [Fact]
    public async Task Accept_Http2Preface_GoesToTheHttp2FrontendWithThePrefix()
    {
        var model = ModelWith(new IPEndPoint(IPAddress.Loopback, 9));
        var h2 = new RecordingHttp2Frontend();
        await using var listener = Listener(model, TimeProvider.System, h2);
        using var client = new TcpClient();
        await client.ConnectAsync(listener.LocalEndPoint);
        var s = client.GetStream();
        await s.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());

        var served = await h2.Served.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(DetectedProtocol.Http2, served.Protocol);
        Assert.Equal("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", h2.Prefix);
        Assert.Same(model.Current, served.Model);
        Assert.Equal("t", served.Target.Name);
        Assert.Equal("h2!", await ReadAsync(s, 3));
    }

    [Fact]
    public async Task Accept_Http2PrefaceWithoutFrontend_IsRelayedAsTcp()
    {
        await using var server = new BannerEcho("");
        await using var listener = Listener(ModelWith(server.EndPoint), TimeProvider.System);
        using var client = new TcpClient();
        await client.ConnectAsync(listener.LocalEndPoint);
        var s = client.GetStream();
        await s.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());

        Assert.Equal("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", await ReadAsync(s, 24));
    }

    [Fact]
    public async Task Relay_NoByteForTheIdleTimeout_ClosesBothSides()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var server = new BannerEcho("");
        await using var listener = Listener(ModelWith(server.EndPoint), clock, idle: TimeSpan.FromSeconds(30));
        using var client = new TcpClient();
        await client.ConnectAsync(listener.LocalEndPoint);
        var s = client.GetStream();
        await s.WriteAsync("x"u8.ToArray());
        while (await clock.NextTimerAsync() != TimeSpan.FromSeconds(30))
        {
        }
        Assert.Equal("x", await ReadAsync(s, 1));

        // Activity at 20 s pushes the deadline to 50 s.
        clock.Advance(TimeSpan.FromSeconds(20));
        await s.WriteAsync("y"u8.ToArray());
        Assert.Equal("y", await ReadAsync(s, 1));
        clock.Advance(TimeSpan.FromSeconds(20));
        await s.WriteAsync("z"u8.ToArray());
        Assert.Equal("z", await ReadAsync(s, 1));

        clock.Advance(TimeSpan.FromSeconds(30));
        await AssertEndOfStreamAsync(s);
    }

    [Fact]
    public async Task Relay_UpstreamNeverAcceptsTheConnect_ClosesAfterTheClusterConnectTimeout()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        // A listener whose accept queue is full: further SYNs are dropped, so connects hang.
        using var full = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        full.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        full.Listen(0);
        using var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await filler.ConnectAsync(full.LocalEndPoint!);

        await using var listener = Listener(ModelWith((IPEndPoint)full.LocalEndPoint!), clock);
        using var client = new TcpClient();
        await client.ConnectAsync(listener.LocalEndPoint);
        var s = client.GetStream();
        await s.WriteAsync("x"u8.ToArray());
        while (await clock.NextTimerAsync() != TimeSpan.FromSeconds(2))
        {
        }
        Assert.Equal(1, listener.ActiveConnections);

        clock.Advance(TimeSpan.FromSeconds(2));
        await AssertEndOfStreamAsync(s);
        await Eventually.WaitAsync(() => listener.ActiveConnections == 0, "the relay to end after the connect timeout");
    }
}
