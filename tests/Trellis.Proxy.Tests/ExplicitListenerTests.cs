using System.Collections.Frozen;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Tcp;
using Xunit;

namespace Trellis.Proxy.Tests;

public sealed class ExplicitListenerTests
{
    /// <summary>A loopback TCP server that answers each connection with its name, then echoes until the peer closes.</summary>
    private sealed class EchoServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Task _loop;
        private readonly CancellationTokenSource _cts = new();

        public EchoServer(string name)
        {
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                while (!_cts.IsCancellationRequested)
                {
                    TcpClient c;
                    try
                    {
                        c = await _listener.AcceptTcpClientAsync(_cts.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                    _ = Task.Run(async () =>
                    {
                        using (c)
                        {
                            var s = c.GetStream();
                            await s.WriteAsync(Encoding.ASCII.GetBytes(name + ":"));
                            await s.CopyToAsync(s);
                        }
                    });
                }
            });
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            _listener.Stop();
            await _loop;
        }
    }

    private static ModelState ModelWith(params EndpointModel[] endpoints)
    {
        var cluster = new ClusterModel("echo.default:7", LoadBalancerKind.RoundRobin, TimeSpan.FromSeconds(2), endpoints,
            new CircuitBreakerModel(1024, 1024, 1024, 3, null), null);
        var state = new ModelState();
        state.Swap(new ProxyModel("v1", ProxyModel.Empty.Listeners, ProxyModel.Empty.Routes,
            new Dictionary<string, ClusterModel> { [cluster.Name] = cluster }.ToFrozenDictionary()), complete: true);
        return state;
    }

    private static EndpointModel Ep(IPEndPoint a, int weight = 1, EndpointHealthKind health = EndpointHealthKind.Healthy, int priority = 0) =>
        new(a, weight, health, priority, "", "", weight);

    private static async Task<string> RoundTripAsync(IPEndPoint proxy, string payload)
    {
        using var c = new TcpClient();
        await c.ConnectAsync(proxy);
        var s = c.GetStream();
        await s.WriteAsync(Encoding.ASCII.GetBytes(payload));
        c.Client.Shutdown(SocketShutdown.Send);
        using var ms = new MemoryStream();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await s.CopyToAsync(ms, cts.Token);
        return Encoding.ASCII.GetString(ms.ToArray());
    }

    [Fact]
    public async Task Accept_ClusterTarget_RelaysBothWaysAndPassesTheHalfCloseOn()
    {
        await using var a = new EchoServer("a");
        var model = ModelWith(Ep(a.EndPoint));
        await using var listener = new ExplicitListener(new ListenerTarget("up", new IPEndPoint(IPAddress.Loopback, 0), "echo.default:7", null), model, NullLogger.Instance);
        listener.Start();

        Assert.Equal("a:hello", await RoundTripAsync(listener.LocalEndPoint, "hello"));
    }

    [Fact]
    public async Task Accept_TwoEndpoints_AlternatesBetweenThem_AndFollowsAModelSwap()
    {
        await using var a = new EchoServer("a");
        await using var b = new EchoServer("b");
        await using var c = new EchoServer("c");
        var model = ModelWith(Ep(a.EndPoint), Ep(b.EndPoint));
        await using var listener = new ExplicitListener(new ListenerTarget("up", new IPEndPoint(IPAddress.Loopback, 0), "echo.default:7", null), model, NullLogger.Instance);
        listener.Start();

        var seen = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            seen.Add((await RoundTripAsync(listener.LocalEndPoint, "x"))[..1]);
        }
        Assert.Equal(2, seen.Count(x => x == "a"));
        Assert.Equal(2, seen.Count(x => x == "b"));

        var swapped = ModelWith(Ep(c.EndPoint)).Current;
        model.Swap(swapped, complete: true);
        Assert.Equal("c:y", await RoundTripAsync(listener.LocalEndPoint, "y"));
    }

    [Fact]
    public async Task Accept_NoUsableEndpoint_ClosesTheConnection()
    {
        var model = ModelWith(Ep(new IPEndPoint(IPAddress.Loopback, 9), health: EndpointHealthKind.Unhealthy));
        await using var listener = new ExplicitListener(new ListenerTarget("up", new IPEndPoint(IPAddress.Loopback, 0), "echo.default:7", null), model, NullLogger.Instance);
        listener.Start();
        // Closed at once with nothing sent back: a clean end of stream, or a reset because "x" was never read.
        try
        {
            Assert.Equal("", await RoundTripAsync(listener.LocalEndPoint, "x"));
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
        }
    }

    [Fact]
    public async Task Accept_FixedTarget_ForwardsToTheLocalApplication()
    {
        await using var app = new EchoServer("app");
        await using var listener = new ExplicitListener(new ListenerTarget("inbound", new IPEndPoint(IPAddress.Loopback, 0), null, app.EndPoint), new ModelState(), NullLogger.Instance);
        listener.Start();
        Assert.Equal("app:in", await RoundTripAsync(listener.LocalEndPoint, "in"));
    }

    [Fact]
    public void Pick_WeightsPrioritiesAndHealth_AreHonoured()
    {
        var e1 = new IPEndPoint(IPAddress.Loopback, 1);
        var e2 = new IPEndPoint(IPAddress.Loopback, 2);
        var e3 = new IPEndPoint(IPAddress.Loopback, 3);
        var cluster = new ClusterModel("c", LoadBalancerKind.RoundRobin, TimeSpan.FromSeconds(1),
            [Ep(e1, weight: 1), Ep(e2, weight: 3), Ep(e3, priority: 1)], new CircuitBreakerModel(1, 1, 1, 1, null), null);
        var picker = new EndpointPicker();
        var picks = Enumerable.Range(0, 8).Select(_ => picker.Pick(cluster)).ToList();
        Assert.Equal(2, picks.Count(p => p!.Equals(e1)));
        Assert.Equal(6, picks.Count(p => p!.Equals(e2)));

        // Priority 1 serves only when priority 0 has nothing healthy.
        var failover = cluster with { Endpoints = [Ep(e1, health: EndpointHealthKind.Unhealthy), Ep(e2, health: EndpointHealthKind.Draining), Ep(e3, priority: 1)] };
        Assert.Equal(e3, picker.Pick(failover));
    }
}
