using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Trellis.Proxy.Http.Http1;
using Trellis.Proxy.Model;
using Trellis.Proxy.Security;

namespace Trellis.Proxy.Http.Http2.Client;

/// <summary>
/// A stream opened upstream, or why none was: the error the proxy answers with, the reason (for logs) and, when it is
/// worth telling the client (a failed TLS handshake: an untrusted or misnamed certificate), the reason for it.
/// </summary>
internal readonly record struct Http2StreamLease(Http2ClientStream? Stream, ProxyError Error, string? Detail)
{
    public string? ClientDetail { get; init; }

    public static Http2StreamLease Failed(ProxyError error, string? detail, string? clientDetail = null) => new(null, error, detail) { ClientDetail = clientDetail };
}

/// <summary>
/// The proxy's HTTP/2 connections to upstream endpoints, one <see cref="Http2ClusterPool"/> per cluster (or fixed
/// address), shared by every listener. A timer on the injected clock closes connections idle past their cluster's
/// idle timeout.
/// </summary>
internal sealed class Http2ConnectionPools : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Http2ClusterPool> _pools = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly Http2ClientOptions _options;
    private readonly ITimer _sweep;

    public Http2ConnectionPools(TimeProvider time, Http2ClientOptions options, TimeSpan sweepInterval)
    {
        options.Validate();
        _time = time;
        _options = options;
        _sweep = time.CreateTimer(static s => ((Http2ConnectionPools)s!).Sweep(), this, sweepInterval, sweepInterval);
    }

    /// <summary>The pool of a cluster (by name) or of a fixed address (by a key the caller builds once).</summary>
    public Http2ClusterPool For(string key) =>
        _pools.TryGetValue(key, out var pool) ? pool : _pools.GetOrAdd(key, static (k, s) => new Http2ClusterPool(k, s._time, s._options), this);

    public void Sweep()
    {
        foreach (var pool in _pools.Values)
        {
            pool.Sweep();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _sweep.DisposeAsync().ConfigureAwait(false);
        foreach (var pool in _pools.Values)
        {
            await pool.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>
/// The HTTP/2 connections of one cluster. A request gets a stream on the least busy connection to its endpoint that
/// can take one (made with the cluster's current TLS settings); when every such connection is at the server's
/// SETTINGS_MAX_CONCURRENT_STREAMS a new one is opened, while the cluster is below max_connections (one connect per
/// endpoint at a time: requests arriving meanwhile wait for it); at the limit, requests wait for a stream to end,
/// at most max_pending_requests of them (beyond: circuit_open). A connection that has carried
/// max_requests_per_connection streams takes no more and closes when its last stream ends.
/// The lock guards only the lists and counters; connecting, opening streams and closing happen outside it.
/// </summary>
internal sealed class Http2ClusterPool : IAsyncDisposable
{
    /// <summary>A request goes round the choose-or-connect loop at most this often (races with GOAWAY, closes).</summary>
    private const int MaxRounds = 8;

    private readonly string _key;
    private readonly TimeProvider _time;
    private readonly Http2ClientOptions _options;
    private readonly Lock _lock = new();
    private readonly List<Entry> _entries = [];
    private readonly HashSet<IPEndPoint> _connecting = [];
    private readonly Action<Http2ClientConnection> _onStreamClosed;
    private TaskCompletionSource _changed = NewSignal();
    private int _waiting;
    private long _idleTimeoutTicks = TimeSpan.FromMinutes(1).Ticks;
    private bool _disposed;

    public Http2ClusterPool(string key, TimeProvider time, Http2ClientOptions options)
    {
        _key = key;
        _time = time;
        _options = options;
        // A stream ending matters only to requests waiting for a slot: no signal (and no allocation) otherwise.
        _onStreamClosed = _ =>
        {
            if (Volatile.Read(ref _waiting) > 0)
            {
                Signal();
            }
        };
    }

    /// <summary>Connections open (closed ones are dropped when next seen).</summary>
    public int Connections
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Requests waiting for a stream slot.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>
    /// Opens a stream to <paramref name="endpoint"/> and sends <paramref name="fields"/> (see
    /// <see cref="Http2ClientConnection.OpenStreamAsync"/>). Failures are results, not exceptions:
    /// upstream_connect_failure (connect, TLS handshake or the server's SETTINGS failed; the detail says which),
    /// circuit_open (at max_connections with max_pending_requests already waiting). The token bounds waiting and
    /// connecting (the request's or the try's deadline): cancellation is thrown.
    /// </summary>
    public async ValueTask<Http2StreamLease> OpenStreamAsync(IPEndPoint endpoint, UpstreamTlsModel? tls, PoolLimits limits, TimeSpan connectTimeout,
        IReadOnlyList<Http2HeaderField> fields, bool endStream, CancellationToken ct)
    {
        var tlsKey = tls?.Key;
        Volatile.Write(ref _idleTimeoutTicks, limits.IdleTimeout.Ticks);
        string? lastRefusal = null;
        for (var round = 0; round < MaxRounds; round++)
        {
            Entry? chosen;
            Task? wait = null;
            var connect = false;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                // Counted as waiting and holding the current signal before looking: a stream that ends while we look
                // either shows as a free slot or completes this signal (never neither).
                Interlocked.Increment(ref _waiting);
                var signal = _changed.Task;
                chosen = ChooseLocked(endpoint, tlsKey, limits);
                if (chosen is null)
                {
                    if (!_connecting.Contains(endpoint) && _entries.Count + _connecting.Count < limits.MaxConnections)
                    {
                        _connecting.Add(endpoint);
                        connect = true;
                    }
                    else if (_waiting > limits.MaxPending)
                    {
                        Interlocked.Decrement(ref _waiting);
                        return Http2StreamLease.Failed(ProxyError.CircuitOpen,
                            $"{_entries.Count} HTTP/2 connections (max_connections {limits.MaxConnections}) are full and {_waiting} requests wait (max_pending_requests {limits.MaxPending})");
                    }
                    else
                    {
                        wait = signal;
                    }
                }
                if (wait is null)
                {
                    Interlocked.Decrement(ref _waiting);
                }
            }
            if (connect)
            {
                Entry? entry = null;
                string? failure;
                bool tlsFailure;
                try
                {
                    (entry, failure, tlsFailure) = await ConnectAsync(endpoint, tls, connectTimeout, ct).ConfigureAwait(false);
                }
                finally
                {
                    // Also when the caller gave up (its token): the endpoint must not stay "connecting" for ever.
                    lock (_lock)
                    {
                        _connecting.Remove(endpoint);
                        if (entry is not null)
                        {
                            _entries.Add(entry);
                        }
                    }
                    Signal();
                }
                if (entry is null)
                {
                    return Http2StreamLease.Failed(ProxyError.UpstreamConnectFailure, failure, tlsFailure ? failure : null);
                }
                continue;
            }
            if (wait is not null)
            {
                try
                {
                    await wait.WaitAsync(ct).ConfigureAwait(false);
                }
                finally
                {
                    Interlocked.Decrement(ref _waiting);
                }
                round--; // waiting for a slot is not a failed round
                continue;
            }
            try
            {
                var stream = await chosen!.Connection.OpenStreamAsync(fields, endStream, ct).ConfigureAwait(false);
                return new Http2StreamLease(stream, ProxyError.None, null);
            }
            catch (Http2StreamException e) when (e.NotProcessed)
            {
                // GOAWAY or the stream limit raced with the choice: the request never left; choose again.
                lastRefusal = e.Message;
            }
        }
        return Http2StreamLease.Failed(ProxyError.UpstreamReset, lastRefusal ?? $"no HTTP/2 connection to {endpoint} took the stream");
    }

    /// <summary>
    /// The least busy usable connection to <paramref name="endpoint"/> with the TLS settings asked for, counted as
    /// carrying one more stream; null when none can take a stream now. Closed connections are dropped.
    /// </summary>
    private Entry? ChooseLocked(IPEndPoint endpoint, string? tlsKey, PoolLimits limits)
    {
        Entry? best = null;
        var bestActive = int.MaxValue;
        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            var entry = _entries[i];
            if (entry.Connection.Closed.IsCompleted)
            {
                _entries.RemoveAt(i);
                continue;
            }
            if (entry.Retired || !entry.Endpoint.Equals(endpoint) || !string.Equals(entry.TlsKey, tlsKey, StringComparison.Ordinal)
                || !entry.Connection.CanOpenStream)
            {
                continue;
            }
            var active = entry.Connection.ActiveStreams;
            if (active < bestActive)
            {
                (best, bestActive) = (entry, active);
            }
        }
        if (best is not null)
        {
            best.Streams++;
            if (limits.MaxRequestsPerConnection is { } max && best.Streams >= max)
            {
                best.Retired = true; // this stream is its last; closed once idle
            }
        }
        return best;
    }

    private async Task<(Entry? Entry, string? Failure, bool TlsFailure)> ConnectAsync(IPEndPoint endpoint, UpstreamTlsModel? tls, TimeSpan connectTimeout, CancellationToken ct)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = new CancellationTokenSource(connectTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            await socket.ConnectAsync(endpoint, linked.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException || (ex is OperationCanceledException && timeout.IsCancellationRequested && !ct.IsCancellationRequested))
        {
            socket.Dispose();
            return (null, ex is SocketException s ? $"connect to {endpoint} failed: {s.Message}" : $"connect to {endpoint}: no answer within {connectTimeout.TotalSeconds:0.###} s", false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        System.Net.Security.SslStream? stream = null;
        if (tls is not null)
        {
            // The handshake shares the connect timeout; the server must choose h2.
            var handshake = await UpstreamTls.HandshakeAsync(socket, endpoint, tls, UpstreamTls.H2, requireAlpn: true, _key, _time, linked.Token).ConfigureAwait(false);
            if (handshake.Stream is null)
            {
                ct.ThrowIfCancellationRequested();
                return (null, handshake.Failure, true);
            }
            stream = handshake.Stream;
        }
        try
        {
            var connection = await Http2ClientConnection.StartAsync(socket, stream, endpoint, _options, _time, linked.Token).ConfigureAwait(false);
            connection.StreamClosed = _onStreamClosed;
            // A connection that closes (GOAWAY, error) may leave room under max_connections for a waiting request.
            _ = connection.Closed.ContinueWith(static (_, pool) => ((Http2ClusterPool)pool!).Signal(), this, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return (new Entry(connection, endpoint, tls?.Key, _time.GetTimestamp()), null, false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or TimeoutException or Http2StreamException
            || (ex is OperationCanceledException && timeout.IsCancellationRequested && !ct.IsCancellationRequested))
        {
            return (null, $"HTTP/2 connection to {endpoint} failed: {ex.Message}", false);
        }
    }

    /// <summary>Wakes every waiting request (each then chooses again).</summary>
    private void Signal() => Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Closes connections that are retired and idle, already closed, or idle past the cluster's idle timeout (as
    /// last given with a request).
    /// </summary>
    public void Sweep()
    {
        var limit = TimeSpan.FromTicks(Volatile.Read(ref _idleTimeoutTicks));
        List<Entry>? closing = null;
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            for (var i = _entries.Count - 1; i >= 0; i--)
            {
                var entry = _entries[i];
                var active = entry.Connection.ActiveStreams;
                if (active > 0)
                {
                    entry.IdleSince = now;
                    continue;
                }
                if (entry.Retired || entry.Connection.Closed.IsCompleted || _time.GetElapsedTime(entry.IdleSince, now) >= limit)
                {
                    _entries.RemoveAt(i);
                    (closing ??= []).Add(entry);
                }
            }
        }
        if (closing is not null)
        {
            foreach (var entry in closing)
            {
                _ = entry.Connection.DisposeAsync().AsTask();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Entry[] all;
        lock (_lock)
        {
            _disposed = true;
            all = [.. _entries];
            _entries.Clear();
        }
        Signal();
        foreach (var entry in all)
        {
            await entry.Connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class Entry(Http2ClientConnection connection, IPEndPoint endpoint, string? tlsKey, long idleSince)
    {
        public Http2ClientConnection Connection { get; } = connection;
        public IPEndPoint Endpoint { get; } = endpoint;
        public string? TlsKey { get; } = tlsKey;

        /// <summary>Streams this connection was chosen for.</summary>
        public int Streams { get; set; }

        /// <summary>Takes no new stream (max_requests_per_connection reached).</summary>
        public bool Retired { get; set; }

        /// <summary>When it was last seen with no stream open (by the sweep).</summary>
        public long IdleSince { get; set; } = idleSince;
    }
}
