using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Http.Http1;
using Trellis.Proxy.Model;
using Trellis.Proxy.Security;
using Trellis.Proxy.Tcp;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Listeners;

/// <summary>
/// Where one listener sends what it accepts: a service port's cluster (an --upstream listener: HTTP requests take
/// the routes of that service port's virtual host), a fixed local address (the inbound listener), or, when both
/// are null, the outbound route table by Host / :authority (the shared --outbound port).
/// </summary>
public sealed record ListenerTarget(string Name, IPEndPoint Listen, string? Cluster, IPEndPoint? Fixed)
{
    /// <summary>When set, TLS connections are terminated here (ALPN h2 or http/1.1) instead of relayed as TCP.</summary>
    internal DownstreamTls? Tls { get; init; }
}

/// <summary>
/// An explicit listener (an --upstream port the application calls, the shared --outbound port, or the inbound
/// port): accepts connections, detects each one's protocol from its first bytes and hands it on: HTTP/1.x to the
/// HTTP/1.1 engine (routing and policies per request, on the model current when the request arrives), HTTP/2 to
/// the HTTP/2 frontend when there is one, and TLS, unknown or server-first protocols to the TCP relay (one model
/// and one endpoint for the connection's life).
/// </summary>
public sealed partial class ExplicitListener : IAsyncDisposable
{
    private readonly ListenerTarget _target;
    private readonly ModelState _model;
    private readonly ILogger _logger;
    private readonly ListenerServices _services;
    private readonly IHttp2Frontend? _http2;
    private readonly bool _ownsServices;
    private readonly Socket _socket;
    private readonly CancellationTokenSource _stop = new();
    private Task _accepting = Task.CompletedTask;
    private int _active;

    /// <summary>A listener with services of its own (system clock, shared random source), closed with it.</summary>
    public ExplicitListener(ListenerTarget target, ModelState model, ILogger logger)
        : this(target, model, logger, ListenerServices.CreateDefault(), null)
    {
        _ownsServices = true;
    }

    /// <summary>
    /// A listener sharing the proxy's <paramref name="services"/>; <paramref name="http2"/> serves connections that
    /// start with the HTTP/2 preface (null: they are relayed as TCP).
    /// </summary>
    internal ExplicitListener(ListenerTarget target, ModelState model, ILogger logger, ListenerServices services, IHttp2Frontend? http2)
    {
        _target = target;
        _model = model;
        _logger = logger;
        _services = services;
        _http2 = http2;
        _socket = new Socket(target.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
    }

    public ListenerTarget Target => _target;

    /// <summary>The bound address (the port is the real one when 0 was asked for).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Connections open now (being detected, relayed or served).</summary>
    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>Connect timeout when the cluster sets none (the fixed inbound target).</summary>
    public TimeSpan ConnectTimeoutDefault { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A TCP relay (or an upgraded HTTP connection) with no byte moving either way for this long is closed.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>A client that has not completed its TLS handshake this long after its ClientHello is closed.</summary>
    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Cancelled when the listener stops accepting: keep-alive connections close after their current request.</summary>
    internal CancellationToken Draining => _stop.Token;

    public void Start()
    {
        _socket.Bind(_target.Listen);
        _socket.Listen(1024);
        _accepting = AcceptLoopAsync();
        Log.Listening(_logger, _target.Name, LocalEndPoint.ToString(), _target.Cluster ?? _target.Fixed?.ToString() ?? "routes by Host");
    }

    /// <summary>Stops accepting; connections in flight finish their current request or relay.</summary>
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
        ProxyMetrics.ConnectionOpened(_target.Name);
        var buffer = ArrayPool<byte>.Shared.Rent(ProtocolDetector.BufferSize);
        try
        {
            using (client)
            {
                var detected = await ProtocolDetector.DetectAsync(client, buffer.AsMemory(0, ProtocolDetector.BufferSize),
                    _services.DetectionTimeout, _services.Time, _target.Name, CancellationToken.None).ConfigureAwait(false);
                var prefix = buffer.AsMemory(0, detected.Length);
                switch (detected.Protocol)
                {
                    case DetectedProtocol.Http1:
                        var http1 = new Http1Connection(client, prefix, _target, _model, _services, _logger, IdleTimeout, ConnectTimeoutDefault, _stop.Token);
                        await using (http1.ConfigureAwait(false))
                        {
                            await http1.RunAsync().ConfigureAwait(false);
                        }
                        break;
                    case DetectedProtocol.Http2 when _http2 is not null:
                        var connection = new DownstreamConnection(client, prefix, DetectedProtocol.Http2, _target, _model.Current, null);
                        await _http2.ServeAsync(connection, _stop.Token).ConfigureAwait(false);
                        break;
                    case DetectedProtocol.Tls when _target.Tls is { } tls:
                        await ServeTlsAsync(client, prefix, tls, buffer).ConfigureAwait(false);
                        break;
                    default:
                        await RelayTcpAsync(client, prefix).ConfigureAwait(false);
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The client went away (reset, closed) while detection or the handler ran: nothing more to do.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ProxyMetrics.ConnectionClosed(_target.Name);
            Interlocked.Decrement(ref _active);
        }
    }

    /// <summary>
    /// Terminates TLS, then serves what the client chose by ALPN: h2 to the HTTP/2 frontend, http/1.1 to the HTTP/1.1
    /// engine. A client that offered no ALPN is classified on its first decrypted bytes like a plaintext connection
    /// (an HTTP/2 preface, an HTTP/1 request line, else opaque TCP relayed decrypted to the target).
    /// </summary>
    private async Task ServeTlsAsync(Socket client, ReadOnlyMemory<byte> clientHello, DownstreamTls tls, byte[] buffer)
    {
        var tlsStream = new SslStream(new ReplayStream(new NetworkStream(client, ownsSocket: false), clientHello.Span), leaveInnerStreamOpen: false);
        await using (tlsStream.ConfigureAwait(false))
        {
            var started = _services.Time.GetTimestamp();
            using (var handshake = new CancellationTokenSource(TlsHandshakeTimeout, _services.Time))
            using (_stop.Token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), handshake))
            {
                try
                {
                    await tlsStream.AuthenticateAsServerAsync(tls.ServerOptions, handshake.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException)
                {
                    var reason = ex is not OperationCanceledException ? ex.Message
                        : _stop.IsCancellationRequested ? "the listener is stopping"
                        : $"no complete handshake within {TlsHandshakeTimeout.TotalSeconds:0.###} s";
                    ProxyMetrics.RecordDownstreamTlsHandshake(_target.Name, "failed", _services.Time.GetElapsedTime(started));
                    Log.TlsHandshakeFailed(_logger, _target.Name, SafeRemote(client), reason);
                    return;
                }
            }
            var alpn = tlsStream.NegotiatedApplicationProtocol;
            ProxyMetrics.RecordDownstreamTlsHandshake(_target.Name, alpn == DownstreamTls.Http2 ? "h2" : alpn == DownstreamTls.Http11 ? "http/1.1" : "none",
                _services.Time.GetElapsedTime(started));
            DetectedProtocol protocol;
            var length = 0;
            if (alpn == DownstreamTls.Http2)
            {
                protocol = DetectedProtocol.Http2;
            }
            else if (alpn == DownstreamTls.Http11)
            {
                protocol = DetectedProtocol.Http1;
            }
            else
            {
                (protocol, length) = await DetectDecryptedAsync(tlsStream, buffer).ConfigureAwait(false);
            }
            switch (protocol)
            {
                case DetectedProtocol.Http2 when _http2 is not null:
                    var connection = new DownstreamConnection(client, buffer.AsMemory(0, length), DetectedProtocol.Http2, _target, _model.Current, null) { Tls = tlsStream };
                    await _http2.ServeAsync(connection, _stop.Token).ConfigureAwait(false);
                    break;
                case DetectedProtocol.Http1:
                    var http1 = new Http1Connection(client, tlsStream, buffer.AsMemory(0, length), _target, _model, _services, _logger, IdleTimeout,
                        ConnectTimeoutDefault, _stop.Token);
                    await using (http1.ConfigureAwait(false))
                    {
                        await http1.RunAsync().ConfigureAwait(false);
                    }
                    break;
                default:
                    await RelayTcpAsync(client, buffer.AsMemory(0, length), tlsStream).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>Reads the first decrypted bytes until their protocol is known (bounded by the detection timeout).</summary>
    private async Task<(DetectedProtocol Protocol, int Length)> DetectDecryptedAsync(SslStream tls, byte[] buffer)
    {
        var length = 0;
        using var timeout = new CancellationTokenSource(_services.DetectionTimeout, _services.Time);
        try
        {
            while (length < ProtocolDetector.BufferSize)
            {
                var n = await tls.ReadAsync(buffer.AsMemory(length, ProtocolDetector.BufferSize - length), timeout.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }
                length += n;
                if (ProtocolDetector.Classify(buffer.AsSpan(0, length)) is { } found)
                {
                    return (found, length);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // A server-first protocol inside TLS: relay it.
        }
        return (DetectedProtocol.Tcp, length);
    }

    /// <summary>Relays an opaque connection to one endpoint of the target, chosen once on the connection's model.</summary>
    private async Task RelayTcpAsync(Socket downstream, ReadOnlyMemory<byte> prefix, SslStream? downstreamTls = null)
    {
        var model = _model.Current; // one model for the whole connection
        IPEndPoint? endpoint = null;
        UpstreamTlsModel? tls = null;
        var clusterName = "";
        var connectTimeout = ConnectTimeoutDefault;
        if (_target.Fixed is { } fixedAddress)
        {
            endpoint = fixedAddress;
        }
        else if (_target.Cluster is { } name && _services.Clusters.Get(model, name) is { } runtime)
        {
            endpoint = runtime.Pick(0, null)?.Address;
            tls = runtime.Model.Tls;
            clusterName = name;
            connectTimeout = runtime.Model.ConnectTimeout > TimeSpan.Zero ? runtime.Model.ConnectTimeout : connectTimeout;
        }
        if (endpoint is null)
        {
            Log.NoEndpoint(_logger, _target.Name, _target.Cluster ?? "(the shared outbound port routes only HTTP by Host)");
            return;
        }
        using var upstream = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        SslStream? secured = null;
        using (var connect = new CancellationTokenSource(connectTimeout, _services.Time))
        using (_stop.Token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), connect))
        {
            try
            {
                await upstream.ConnectAsync(endpoint, connect.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                Log.ConnectFailed(_logger, _target.Name, endpoint.ToString(), ex is OperationCanceledException ? $"no answer within {connectTimeout.TotalSeconds:0.###} s" : ex.Message);
                return;
            }
            if (tls is not null)
            {
                // The handshake shares the connect timeout; no ALPN unless the cluster lists some.
                var handshake = await UpstreamTls.HandshakeAsync(upstream, endpoint, tls, UpstreamTls.Configured(tls), requireAlpn: false, clusterName,
                    _services.Time, connect.Token).ConfigureAwait(false);
                if (handshake.Stream is null)
                {
                    Log.ConnectFailed(_logger, _target.Name, endpoint.ToString(), handshake.Failure!);
                    return;
                }
                secured = handshake.Stream;
            }
        }
        // Each side is its socket's stream, or the TLS stream over it (the listener's, or the cluster's).
        var down = downstreamTls ?? (Stream)new NetworkStream(downstream, ownsSocket: false);
        var up = secured ?? (Stream)new NetworkStream(upstream, ownsSocket: false);
        try
        {
            await TcpRelay.RunAsync(down, new SendSide(downstream, downstreamTls), prefix, up, new SendSide(upstream, secured), IdleTimeout,
                _services.Time, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            await up.DisposeAsync().ConfigureAwait(false);
            if (downstreamTls is null)
            {
                await down.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static string SafeRemote(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }

    /// <summary>Stops accepting. The stop source is not disposed: connections still in flight read its token.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAcceptingAsync().ConfigureAwait(false);
        if (_ownsServices)
        {
            _services.Pools.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "listener {Name} on {Address} -> {Target}")]
        public static partial void Listening(ILogger logger, string name, string address, string target);

        [LoggerMessage(2, LogLevel.Warning, "listener {Name}: no usable endpoint for {Cluster}; connection closed")]
        public static partial void NoEndpoint(ILogger logger, string name, string cluster);

        [LoggerMessage(3, LogLevel.Warning, "listener {Name}: connect to {Endpoint} failed: {Error}")]
        public static partial void ConnectFailed(ILogger logger, string name, string endpoint, string error);

        [LoggerMessage(4, LogLevel.Warning, "listener {Name}: accept failed: {Error}")]
        public static partial void AcceptFailed(ILogger logger, string name, string error);

        [LoggerMessage(5, LogLevel.Information, "listener {Name}: TLS handshake with {Client} failed: {Reason}")]
        public static partial void TlsHandshakeFailed(ILogger logger, string name, string client, string reason);
    }
}
