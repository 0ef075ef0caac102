using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Http.Http2;

/// <summary>Limits and defaults of the HTTP/2 frontend.</summary>
internal sealed record Http2FrontendOptions
{
    /// <summary>SETTINGS_MAX_CONCURRENT_STREAMS announced to each downstream connection.</summary>
    public int MaxStreamsPerConnection { get; init; } = 256;

    /// <summary>Decoded request header list size (HPACK); larger requests get 431 or, past what can be decoded, a connection error.</summary>
    public int MaxRequestHeadersTotalSize { get; init; } = 60 * 1024;

    public int MaxRequestHeaderCount { get; init; } = 100;

    /// <summary>Connect timeout for fixed targets and clusters that set none.</summary>
    public TimeSpan DefaultConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long <see cref="Http2Frontend.DisposeAsync"/> lets streams in flight finish.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// HTTP/2 (h2c, gRPC, and h2 over TLS the listener terminated) for the proxy's listeners: each handed-over
/// connection is served by our own <see cref="Http2ServerConnection"/>, and every request stream is routed and
/// forwarded by <see cref="Http2Forwarder"/> over the proxy's own HTTP/2 client connections. One instance per proxy
/// process. Each request reads the model current at its start, so route changes apply to the next request of a
/// long-lived connection.
/// </summary>
internal sealed partial class Http2Frontend : IHttp2Frontend, IAsyncDisposable
{
    private readonly Http2FrontendOptions _options;
    private readonly Http2ServerOptions _serverOptions;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Http2Forwarder _forwarder;
    private readonly Http2Metrics _metrics;
    private readonly bool _ownsMetrics;
    private readonly CancellationTokenSource _shutdown = new();
    private readonly ConcurrentDictionary<Http2ServerConnection, Task> _connections = new();
    private volatile bool _disposed;

    /// <param name="state">The proxy's model; each request reads <see cref="ModelState.Current"/>.</param>
    /// <param name="clusters">Per-cluster runtime state (shared with the other protocol paths).</param>
    /// <param name="policies">Rate limits, faults, retry decisions (shared with the other protocol paths).</param>
    /// <param name="time">Clock for timeouts, fault delays and retry backoff.</param>
    /// <param name="loggerFactory">Logs of the frontend and its connections.</param>
    /// <param name="options">Limits; null takes the defaults.</param>
    /// <param name="roll">Uniform random numbers for weighted cluster choice; null uses Random.Shared.</param>
    /// <param name="metrics">Instruments; null creates them on the "Trellis.Proxy" meter.</param>
    public Http2Frontend(ModelState state, ClusterRuntimes clusters, RoutePolicies policies, TimeProvider time,
        ILoggerFactory loggerFactory, Http2FrontendOptions? options = null, Func<uint>? roll = null, Http2Metrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options ?? new Http2FrontendOptions();
        _serverOptions = new Http2ServerOptions
        {
            MaxConcurrentStreams = _options.MaxStreamsPerConnection,
            MaxHeaderListSize = _options.MaxRequestHeadersTotalSize,
            MaxHeaderCount = _options.MaxRequestHeaderCount,
            DrainTimeout = _options.ShutdownTimeout,
        };
        _time = time;
        _log = loggerFactory.CreateLogger<Http2Frontend>();
        _ownsMetrics = metrics is null;
        _metrics = metrics ?? new Http2Metrics();
        _forwarder = new Http2Forwarder(state, clusters, policies, time, _options, roll ?? DefaultRoll, _metrics, loggerFactory.CreateLogger<Http2Forwarder>());
    }

    private static uint DefaultRoll() => (uint)Random.Shared.Next() ^ ((uint)Random.Shared.Next() << 1);

    /// <summary>
    /// Serves one connection whose first bytes were the HTTP/2 preface (or that chose h2 by ALPN), until the peer or
    /// the server ends it. Cancelling <paramref name="cancellationToken"/> asks for a graceful close (GOAWAY; streams
    /// in flight finish); a connection handed over with the token already cancelled is closed.
    /// Limits: a header list over MaxRequestHeadersTotalSize gets 431; a field block too large to decode at all is a
    /// connection error (COMPRESSION_ERROR).
    /// </summary>
    public async Task ServeAsync(DownstreamConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (cancellationToken.IsCancellationRequested || _disposed)
        {
            // Draining already: a connection that arrives now is closed, not served.
            return;
        }
        var server = connection.Tls is { } tls
            ? Http2ServerConnection.Create(tls, connection.Prefix, _serverOptions, _time, _log)
            : Http2ServerConnection.Create(connection.Socket, connection.Prefix, _serverOptions, _time, _log);
        _metrics.ConnectionOpened();
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _shutdown.Token);
        try
        {
            await using (server.ConfigureAwait(false))
            {
                var running = server.RunAsync(new Handler(_forwarder, connection), drain.Token);
                _connections[server] = running;
                try
                {
                    await running.ConfigureAwait(false);
                }
                finally
                {
                    _connections.TryRemove(server, out _);
                }
            }
        }
        finally
        {
            _metrics.ConnectionClosed();
        }
    }

    /// <summary>Drains every connection (streams in flight get <see cref="Http2FrontendOptions.ShutdownTimeout"/>), then the upstream pool.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        await _shutdown.CancelAsync().ConfigureAwait(false);
        var running = _connections.Values.ToArray();
        try
        {
            await Task.WhenAll(running).WaitAsync(_options.ShutdownTimeout + TimeSpan.FromSeconds(1), _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogShutdownTimedOut(_log, running.Length);
        }
        await _forwarder.DisposeAsync().ConfigureAwait(false);
        if (_ownsMetrics)
        {
            _metrics.Dispose();
        }
        _shutdown.Dispose();
    }

    /// <summary>The request callback of one connection: every stream to the forwarder, with the connection it came on.</summary>
    private sealed class Handler(Http2Forwarder forwarder, DownstreamConnection connection) : IHttp2ServerHandler
    {
        public ValueTask HandleAsync(Http2ServerStream stream) => forwarder.HandleAsync(stream, connection);
    }

    [LoggerMessage(1, LogLevel.Warning, "HTTP/2 frontend: {Count} connections still busy after the shutdown timeout; closing them")]
    private static partial void LogShutdownTimedOut(ILogger logger, int count);
}
