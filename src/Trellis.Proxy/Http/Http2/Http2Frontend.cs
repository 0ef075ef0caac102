using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Abstractions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
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

    /// <summary>Decoded request header list size (HPACK); larger requests get 431 or a stream reset.</summary>
    public int MaxRequestHeadersTotalSize { get; init; } = 60 * 1024;

    public int MaxRequestHeaderCount { get; init; } = 100;

    /// <summary>Pooled upstream connections idle this long are closed (ClusterModel.IdleTimeout's default).</summary>
    public TimeSpan UpstreamIdleTimeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Connect timeout for fixed targets and clusters that set none.</summary>
    public TimeSpan DefaultConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long <see cref="Http2Frontend.DisposeAsync"/> lets streams in flight finish.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// HTTP/2 (h2c, gRPC) for the proxy's listeners: Kestrel's HTTP/2 server running on a transport of handed-over
/// sockets (it binds no port), with every request routed and forwarded by <see cref="Http2Forwarder"/> over the
/// proxy's own HTTP/2 client connections (<see cref="Client.Http2ClusterPool"/>). One instance per proxy process; Kestrel starts on the first connection (or
/// <see cref="StartAsync"/>). Each request reads the model current at its start, so route changes apply to the
/// next request of a long-lived connection.
/// </summary>
internal sealed partial class Http2Frontend : IHttp2Frontend, IAsyncDisposable
{
    private readonly Http2FrontendOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _log;
    private readonly HandoffListenerFactory _transport = new();
    private readonly Http2Forwarder _forwarder;
    private readonly Http2Metrics _metrics;
    private readonly bool _ownsMetrics;
    private readonly Lock _startLock = new();
    private Task<HandoffListener>? _starting;
    private KestrelServer? _server;
    private volatile bool _disposed;

    /// <param name="state">The proxy's model; each request reads <see cref="ModelState.Current"/>.</param>
    /// <param name="clusters">Per-cluster runtime state (shared with the other protocol paths).</param>
    /// <param name="policies">Rate limits, faults, retry decisions (shared with the other protocol paths).</param>
    /// <param name="time">Clock for timeouts, fault delays and retry backoff.</param>
    /// <param name="loggerFactory">Logs of the frontend and of Kestrel (Kestrel's own are mostly debug).</param>
    /// <param name="options">Limits; null takes the defaults.</param>
    /// <param name="roll">Uniform random numbers for weighted cluster choice; null uses Random.Shared.</param>
    /// <param name="metrics">Instruments; null creates them on the "Trellis.Proxy" meter.</param>
    public Http2Frontend(ModelState state, ClusterRuntimes clusters, RoutePolicies policies, TimeProvider time,
        ILoggerFactory loggerFactory, Http2FrontendOptions? options = null, Func<uint>? roll = null, Http2Metrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options ?? new Http2FrontendOptions();
        _loggerFactory = loggerFactory;
        _log = loggerFactory.CreateLogger<Http2Frontend>();
        _ownsMetrics = metrics is null;
        _metrics = metrics ?? new Http2Metrics();
        _forwarder = new Http2Forwarder(state, clusters, policies, time, _options, roll ?? DefaultRoll, _metrics, loggerFactory.CreateLogger<Http2Forwarder>());
    }

    private static uint DefaultRoll() => (uint)Random.Shared.Next() ^ ((uint)Random.Shared.Next() << 1);

    /// <summary>Starts Kestrel now instead of on the first connection.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default) => EnsureStartedAsync(cancellationToken);

    /// <summary>
    /// Serves one connection whose first bytes were the HTTP/2 preface, until the peer or the server ends it. The
    /// socket is closed when this returns. Cancelling <paramref name="cancellationToken"/> asks for a graceful close
    /// (GOAWAY; streams in flight finish); a connection handed over with the token already cancelled is closed.
    /// Limits: a header list over MaxRequestHeadersTotalSize gets 431; a single field over it fails HPACK decoding,
    /// which HTTP/2 answers by closing the connection (COMPRESSION_ERROR).
    /// </summary>
    public async Task ServeAsync(DownstreamConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var handoff = new HandoffConnection(connection);
        if (cancellationToken.IsCancellationRequested)
        {
            // Draining already: a connection that arrives now is closed, not served.
            await handoff.DisposeAsync().ConfigureAwait(false);
            return;
        }
        HandoffListener listener;
        try
        {
            listener = await EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await handoff.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        if (!listener.TryHandOver(handoff))
        {
            await handoff.DisposeAsync().ConfigureAwait(false);
            return;
        }
        _metrics.ConnectionOpened();
        try
        {
            using var close = cancellationToken.Register(static c => ((HandoffConnection)c!).RequestClose(), handoff);
            await handoff.Completed.ConfigureAwait(false);
        }
        finally
        {
            _metrics.ConnectionClosed();
        }
    }

    private Task<HandoffListener> EnsureStartedAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_startLock)
        {
            return _starting ??= StartServerAsync(cancellationToken);
        }
    }

    private async Task<HandoffListener> StartServerAsync(CancellationToken cancellationToken)
    {
        // AllowAlternateSchemes: a connection whose TLS the listener terminated arrives here decrypted, with :scheme https.
        var kestrel = new KestrelServerOptions { AddServerHeader = false, AllowAlternateSchemes = true };
        var limits = kestrel.Limits;
        limits.MaxRequestBodySize = null; // streamed, never buffered whole
        limits.MinRequestBodyDataRate = null; // long-lived gRPC streams may be idle
        limits.MinResponseDataRate = null;
        limits.MaxConcurrentConnections = null;
        limits.MaxRequestHeadersTotalSize = _options.MaxRequestHeadersTotalSize;
        limits.MaxRequestHeaderCount = _options.MaxRequestHeaderCount;
        limits.Http2.MaxStreamsPerConnection = _options.MaxStreamsPerConnection;
        limits.Http2.MaxRequestHeaderFieldSize = _options.MaxRequestHeadersTotalSize;
        // Http2 only: on a cleartext endpoint that means prior-knowledge h2c.
        kestrel.Listen(new HandoffEndPoint(), l => l.Protocols = HttpProtocols.Http2);
        var server = new KestrelServer(Options.Create(kestrel), _transport, _loggerFactory);
        await server.StartAsync(new ForwardingApplication(_forwarder), cancellationToken).ConfigureAwait(false);
        _server = server;
        LogStarted(_log, _options.MaxStreamsPerConnection);
        return _transport.Listener ?? throw new InvalidOperationException("Kestrel started without binding the HTTP/2 hand-off transport");
    }

    /// <summary>Stops Kestrel (streams in flight get <see cref="Http2FrontendOptions.ShutdownTimeout"/>), then the upstream pool.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Task<HandoffListener>? starting;
        lock (_startLock)
        {
            starting = _starting;
        }
        if (starting is not null)
        {
            try
            {
                await starting.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
            {
            }
        }
        if (_server is { } server)
        {
            using var timeout = new CancellationTokenSource(_options.ShutdownTimeout);
            await server.StopAsync(timeout.Token).ConfigureAwait(false);
            server.Dispose();
        }
        await _forwarder.DisposeAsync().ConfigureAwait(false);
        if (_ownsMetrics)
        {
            _metrics.Dispose();
        }
    }

    /// <summary>Kestrel's request callback: one reusable HttpContext per stream, each request to the forwarder.</summary>
    private sealed class ForwardingApplication(Http2Forwarder forwarder) : IHttpApplication<DefaultHttpContext>
    {
        public DefaultHttpContext CreateContext(IFeatureCollection contextFeatures)
        {
            if (contextFeatures is IHostContextContainer<DefaultHttpContext> container)
            {
                if (container.HostContext is { } reused)
                {
                    reused.Initialize(contextFeatures);
                    return reused;
                }
                var created = new DefaultHttpContext(contextFeatures);
                container.HostContext = created;
                return created;
            }
            return new DefaultHttpContext(contextFeatures);
        }

        public Task ProcessRequestAsync(DefaultHttpContext context) => forwarder.HandleAsync(context);

        public void DisposeContext(DefaultHttpContext context, Exception? exception) => context.Uninitialize();
    }

    [LoggerMessage(1, LogLevel.Information, "HTTP/2 frontend started (h2c, at most {Streams} streams per connection)")]
    private static partial void LogStarted(ILogger logger, int streams);
}
