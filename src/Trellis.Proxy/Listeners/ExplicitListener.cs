using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Model;
using Trellis.Proxy.Tcp;

namespace Trellis.Proxy.Listeners;

/// <summary>
/// Where one listener sends what it accepts: a service port's cluster (an --upstream listener: HTTP requests take
/// the routes of that service port's virtual host), a fixed local address (the inbound listener), or, when both
/// are null, the outbound route table by Host / :authority (the shared outbound port).
/// </summary>
public sealed record ListenerTarget(string Name, IPEndPoint Listen, string? Cluster, IPEndPoint? Fixed);

/// <summary>
/// An explicit listener (an `--upstream` port the application calls, or the inbound port): accepts connections,
/// reads the model once per connection, picks an endpoint and relays bytes both ways. Opaque TCP for now: HTTP,
/// HTTP/2 and gRPC pass through unchanged; the HTTP-aware path (routing, retries, policies) comes next.
/// </summary>
public sealed partial class ExplicitListener : IAsyncDisposable
{
    private readonly ListenerTarget _target;
    private readonly ModelState _model;
    private readonly ILogger _logger;
    private readonly Socket _socket;
    private readonly EndpointPicker _picker = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _accepting = Task.CompletedTask;
    private int _active;

    public ExplicitListener(ListenerTarget target, ModelState model, ILogger logger)
    {
        _target = target;
        _model = model;
        _logger = logger;
        _socket = new Socket(target.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
    }

    public ListenerTarget Target => _target;

    /// <summary>The bound address (the port is the real one when 0 was asked for).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Connections being relayed now.</summary>
    public int ActiveConnections => Volatile.Read(ref _active);

    public TimeSpan ConnectTimeoutDefault { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(1);

    public void Start()
    {
        _socket.Bind(_target.Listen);
        _socket.Listen(1024);
        _accepting = AcceptLoopAsync();
        Log.Listening(_logger, _target.Name, LocalEndPoint.ToString(), _target.Cluster ?? _target.Fixed?.ToString() ?? "?");
    }

    /// <summary>Stops accepting; connections in flight continue until they finish.</summary>
    public async Task StopAcceptingAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        try
        {
            await _accepting.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                Log.AcceptFailed(_logger, _target.Name, ex.Message);
                continue;
            }
            client.NoDelay = true;
            _ = HandleAsync(client);
        }
    }

    private async Task HandleAsync(Socket client)
    {
        Interlocked.Increment(ref _active);
        using var downstream = client;
        try
        {
            var model = _model.Current; // one model for the whole connection
            IPEndPoint? endpoint;
            var connectTimeout = ConnectTimeoutDefault;
            if (_target.Fixed is { } fixedAddress)
            {
                endpoint = fixedAddress;
            }
            else if (_target.Cluster is { } name && model.Clusters.TryGetValue(name, out var cluster))
            {
                endpoint = _picker.Pick(cluster);
                connectTimeout = cluster.ConnectTimeout > TimeSpan.Zero ? cluster.ConnectTimeout : connectTimeout;
            }
            else
            {
                endpoint = null;
            }
            if (endpoint is null)
            {
                Log.NoEndpoint(_logger, _target.Name, _target.Cluster ?? "?");
                return;
            }
            using var upstream = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
            {
                connect.CancelAfter(connectTimeout);
                try
                {
                    await upstream.ConnectAsync(endpoint, connect.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    Log.ConnectFailed(_logger, _target.Name, endpoint.ToString(), ex.Message);
                    return;
                }
            }
            await TcpRelay.RunAsync(downstream, upstream, IdleTimeout, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _active);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAcceptingAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "listener {Name} on {Address} -> {Target}")]
        public static partial void Listening(ILogger logger, string name, string address, string target);

        [LoggerMessage(2, LogLevel.Warning, "listener {Name}: no usable endpoint in cluster {Cluster}; connection closed")]
        public static partial void NoEndpoint(ILogger logger, string name, string cluster);

        [LoggerMessage(3, LogLevel.Warning, "listener {Name}: connect to {Endpoint} failed: {Error}")]
        public static partial void ConnectFailed(ILogger logger, string name, string endpoint, string error);

        [LoggerMessage(4, LogLevel.Warning, "listener {Name}: accept failed: {Error}")]
        public static partial void AcceptFailed(ILogger logger, string name, string error);
    }
}
