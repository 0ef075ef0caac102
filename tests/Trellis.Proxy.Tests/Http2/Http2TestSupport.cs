using System.Collections.Frozen;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Http.Http2;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Proxy.Telemetry;
using Trellis.Testing.Grpc;

namespace Trellis.Proxy.Tests.Http2;

internal sealed record BackendName(string Name);

/// <summary>The test gRPC service: one method of each kind, each ending with a custom trailer.</summary>
internal sealed class EchoService(BackendName backend) : Echo.EchoBase
{
    public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
    {
        if (request.FailWith != 0)
        {
            throw new RpcException(new Status((StatusCode)request.FailWith, "app says no"), new Metadata { { "x-app-trailer", "failed" } });
        }
        context.ResponseTrailers.Add("x-app-trailer", "unary");
        return Task.FromResult(new EchoReply { Text = request.Text, Instance = backend.Name });
    }

    public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        for (var i = 0; i < request.Count; i++)
        {
            await responseStream.WriteAsync(new EchoReply { Text = $"{request.Text}-{i}", Instance = backend.Name });
        }
        context.ResponseTrailers.Add("x-app-trailer", "server-stream");
    }

    public override async Task<EchoReply> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context)
    {
        var texts = new List<string>();
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            texts.Add(request.Text);
        }
        context.ResponseTrailers.Add("x-app-trailer", "client-stream");
        return new EchoReply { Text = string.Join(",", texts), Instance = backend.Name };
    }

    public override async Task Bidi(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            await responseStream.WriteAsync(new EchoReply { Text = "echo:" + request.Text, Instance = backend.Name });
        }
        context.ResponseTrailers.Add("x-app-trailer", "bidi");
    }
}

/// <summary>
/// A Kestrel h2c backend on loopback: the Echo gRPC service plus, for every other request, a text answer naming the
/// backend, the path it saw and every request header ("h:name=value" lines); it sets x-backend and x-remove-me.
/// </summary>
internal sealed class H2Backend : IAsyncDisposable
{
    private readonly WebApplication _app;

    private H2Backend(WebApplication app, string name, IPEndPoint endPoint)
    {
        _app = app;
        Name = name;
        EndPoint = endPoint;
    }

    public string Name { get; }
    public IPEndPoint EndPoint { get; }

    /// <param name="fallback">Replaces the text answer (and the gRPC service) when set.</param>
    public static async Task<H2Backend> StartAsync(string name, RequestDelegate? fallback = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(new BackendName(name));
        var app = builder.Build();
        if (fallback is null)
        {
            app.MapGrpcService<EchoService>();
        }
        app.MapFallback(fallback ?? (ctx => Describe(ctx, name)));
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        return new H2Backend(app, name, new IPEndPoint(IPAddress.Loopback, port));
    }

    private static Task Describe(HttpContext ctx, string name)
    {
        var text = new StringBuilder();
        text.Append("backend=").Append(name).Append('\n');
        text.Append("path=").Append(ctx.Request.Path).Append(ctx.Request.QueryString).Append('\n');
        foreach (var h in ctx.Request.Headers)
        {
            text.Append("h:").Append(h.Key.ToLowerInvariant()).Append('=').Append(h.Value.ToString()).Append('\n');
        }
        ctx.Response.Headers["x-backend"] = name;
        ctx.Response.Headers["x-remove-me"] = "1";
        ctx.Response.ContentType = "text/plain";
        return ctx.Response.WriteAsync(text.ToString());
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Two text/gRPC backends shared by the tests of a class.</summary>
public sealed class H2Backends : IAsyncDisposable, Xunit.IAsyncLifetime
{
    internal H2Backend A { get; private set; } = null!;
    internal H2Backend B { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        A = await H2Backend.StartAsync("a");
        B = await H2Backend.StartAsync("b");
    }

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
    }

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();
}

/// <summary>
/// Plays the proxy's listener: accepts loopback connections, reads the start of each (at least the 24-byte HTTP/2
/// preface, often more), checks the preface and hands the socket with the bytes read to the frontend, which must
/// replay them.
/// </summary>
internal sealed class FrontendHarness : IAsyncDisposable
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _tasks = [];
    private readonly CancellationTokenSource _stop = new();
    private CancellationTokenSource _close = new();
    private int _accepted;

    public FrontendHarness(ProxyModel model, TimeProvider? time = null, Http2Metrics? metrics = null)
    {
        time ??= TimeProvider.System;
        State.Swap(model, complete: true);
        Frontend = new Http2Frontend(State, new ClusterRuntimes(time), new RoutePolicies(time, Random.Shared.NextDouble), time,
            NullLoggerFactory.Instance, metrics: metrics);
    }

    public ModelState State { get; } = new();
    public Http2Frontend Frontend { get; }

    /// <summary>Connections handed to the frontend so far.</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Starts a listener for <paramref name="target"/> and returns its address.</summary>
    public IPEndPoint Listen(ListenerTarget target)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(64);
        _listeners.Add(socket);
        lock (_tasks)
        {
            _tasks.Add(AcceptLoopAsync(socket, target));
        }
        return (IPEndPoint)socket.LocalEndPoint!;
    }

    private async Task AcceptLoopAsync(Socket listener, ListenerTarget target)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            var prefix = await ReadPrefaceAsync(client);
            if (prefix is null)
            {
                client.Dispose();
                continue;
            }
            Interlocked.Increment(ref _accepted);
            var connection = new DownstreamConnection(client, prefix, DetectedProtocol.Http2, target, State.Current, null);
            lock (_tasks)
            {
                _tasks.Add(Frontend.ServeAsync(connection, _close.Token));
            }
        }
    }

    /// <summary>
    /// Cancels the token the connections served so far got (the frontend should close them gracefully); later
    /// connections get a fresh token.
    /// </summary>
    public Task CloseConnectionsAsync() => Interlocked.Exchange(ref _close, new CancellationTokenSource()).CancelAsync();

    private static async Task<byte[]?> ReadPrefaceAsync(Socket client)
    {
        var buffer = new byte[4096];
        var read = 0;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (read < Preface.Length)
        {
            var n = await client.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, limit.Token);
            if (n == 0)
            {
                return null;
            }
            read += n;
        }
        return buffer.AsSpan(0, Preface.Length).SequenceEqual(Preface) ? buffer[..read] : null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var l in _listeners)
        {
            l.Dispose();
        }
        await Frontend.DisposeAsync();
        Task[] all;
        lock (_tasks)
        {
            all = [.. _tasks];
        }
        await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(10));
        _stop.Dispose();
        _close.Dispose();
    }
}

/// <summary>A frontend with one listener for a target, and a client of each kind pointed at it.</summary>
internal sealed class Proxied : IAsyncDisposable
{
    public Proxied(ProxyModel model, ListenerTarget target, TimeProvider? time = null, Http2Metrics? metrics = null)
    {
        Harness = new FrontendHarness(model, time, metrics);
        Proxy = Harness.Listen(target);
        Channel = H2Models.Channel(Proxy);
        Grpc = new Echo.EchoClient(Channel);
        Http = H2Models.H2cClient();
    }

    public FrontendHarness Harness { get; }
    public IPEndPoint Proxy { get; }
    public GrpcChannel Channel { get; }
    public Echo.EchoClient Grpc { get; }
    public HttpClient Http { get; }

    public string Url(string path) => $"http://{Proxy}{path}";

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Channel.Dispose();
        await Harness.DisposeAsync();
    }
}

/// <summary>Hand-made models: one outbound route table whose virtual host is named after a service port.</summary>
internal static class H2Models
{
    public const string WebTarget = "web.default:80";

    public static EndpointModel Endpoint(IPEndPoint address) => new(address, 1, EndpointHealthKind.Healthy, 0, "local", "a", 1);

    public static ClusterModel Cluster(string name, params IPEndPoint[] endpoints) =>
        new(name, LoadBalancerKind.RoundRobin, TimeSpan.FromSeconds(2), [.. endpoints.Select(Endpoint)],
            new CircuitBreakerModel(1024, 1024, 1024, 3, null), null);

    public static RouteModel Route(string name, string prefix, string cluster) =>
        new(name, new RouteMatchModel(PathMatchKind.Prefix, prefix, [], []), [new WeightedClusterModel(cluster, 100)],
            null, null, null, null, [], [], [], [], null, null, null);

    public static ProxyModel Model(string version, IReadOnlyList<RouteModel> routes, params ClusterModel[] clusters)
    {
        var table = new RouteTable("outbound", [new VirtualHostModel(WebTarget, ["*"], routes)]);
        var listener = new ListenerModel("outbound", new IPEndPoint(IPAddress.Any, 15001), TrafficDirectionKind.Outbound, [],
            new FilterChainModel("http", null, table.Name, null));
        return new ProxyModel(version,
            new Dictionary<string, ListenerModel> { [listener.Name] = listener }.ToFrozenDictionary(),
            new Dictionary<string, RouteTable> { [table.Name] = table }.ToFrozenDictionary(),
            clusters.ToDictionary(c => c.Name).ToFrozenDictionary());
    }

    /// <summary>A listener of an --upstream port for this service port (its virtual host, or straight to its cluster).</summary>
    public static ListenerTarget Target(string cluster) => new($"upstream {cluster}", new IPEndPoint(IPAddress.Loopback, 0), cluster, null);

    /// <summary>A loopback port nothing listens on (bound, then closed).</summary>
    public static IPEndPoint ClosedPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (IPEndPoint)s.LocalEndPoint!;
    }

    public static HttpClient H2cClient() => new(new SocketsHttpHandler())
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(10),
    };

    public static GrpcChannel Channel(IPEndPoint proxy) =>
        GrpcChannel.ForAddress($"http://{proxy}", new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler() });
}
