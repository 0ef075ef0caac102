using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Trellis.Proxy.Model;
using Trellis.Proxy.Security;
using Trellis.Proxy.Tcp;

namespace Trellis.Proxy.Http.Http1;

/// <summary>One keep-alive connection to an upstream endpoint, with pipes over its socket (or over its TLS stream).</summary>
internal sealed class UpstreamConnection : IDisposable
{
    /// <summary>A plaintext connection: the pipes read and write the socket directly.</summary>
    public UpstreamConnection(Socket socket, IPEndPoint endpoint)
    {
        Socket = socket;
        Endpoint = endpoint;
        Reader = new SocketReader(socket);
        Writer = new SocketWriter(socket);
    }

    /// <summary>A TLS connection: the pipes read and write <paramref name="tls"/>, made with <paramref name="tlsKey"/>.</summary>
    public UpstreamConnection(Socket socket, IPEndPoint endpoint, SslStream tls, string tlsKey)
    {
        Socket = socket;
        Endpoint = endpoint;
        Tls = tls;
        TlsKey = tlsKey;
        Reader = TlsPipes.Reader(tls);
        Writer = TlsPipes.Writer(tls);
    }

    public Socket Socket { get; }
    public IPEndPoint Endpoint { get; }
    public PipeReader Reader { get; }
    public PipeWriter Writer { get; }

    /// <summary>The TLS stream, null on a plaintext connection.</summary>
    public SslStream? Tls { get; }

    /// <summary><see cref="UpstreamTlsModel.Key"/> of the settings it was made with (null: plaintext): a pooled
    /// connection is reused only while its cluster's TLS settings are the same.</summary>
    public string? TlsKey { get; }

    /// <summary>The half-close handle of this connection (TLS sends close_notify first).</summary>
    public SendSide Send => new(Socket, Tls);

    /// <summary>Requests sent on this connection so far.</summary>
    public int Requests { get; set; }

    /// <summary>When it went back to the idle list (timestamp of the pool's clock).</summary>
    public long IdleSince { get; set; }

    public TimeSpan IdleTimeout { get; set; }

    /// <summary>Whether this connection was made for the cluster's current TLS settings (same reference or same key).</summary>
    public bool Matches(UpstreamTlsModel? tls) =>
        tls is null ? TlsKey is null : TlsKey is not null && string.Equals(TlsKey, tls.Key, StringComparison.Ordinal);

    /// <summary>
    /// True when the upstream closed the connection (or sent something unasked) while it was idle: the socket is
    /// readable though no request is outstanding. One non-blocking poll. A TLS server may send records of its own
    /// after the handshake (TLS 1.3 session tickets), so a TLS connection looks closed only at end of stream.
    /// </summary>
    public bool LooksClosed()
    {
        try
        {
            return Socket.Poll(0, SelectMode.SelectRead) && (Tls is null || Socket.Available == 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    public void Dispose()
    {
        Socket.Dispose();
        if (Tls is null)
        {
            Reader.Complete();
            Writer.Complete();
            return;
        }
        // Completing a stream pipe writes what it still holds: with the socket closed that fails at once.
        try
        {
            Reader.Complete();
            Writer.Complete();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
        {
        }
        Tls.Dispose();
    }
}

/// <summary>Connection limits of one cluster (its circuit breakers and connection settings).</summary>
internal readonly record struct PoolLimits(int MaxConnections, int MaxPending, int? MaxRequestsPerConnection, TimeSpan IdleTimeout);

internal enum LeaseKind { Reused, Open, CircuitOpen }

/// <summary>
/// Every upstream pool of the proxy, one per cluster (or fixed address), shared by all listeners; a timer on the
/// injected clock closes connections that sat idle past their cluster's idle timeout or that the upstream closed.
/// </summary>
internal sealed class UpstreamPools : IDisposable
{
    /// <summary>Idle connections younger than this are reused without checking that the upstream kept them open.</summary>
    internal static readonly TimeSpan TrustIdleFor = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, ClusterPool> _pools = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly ITimer _sweep;

    public UpstreamPools(TimeProvider time, TimeSpan sweepInterval)
    {
        _time = time;
        _sweep = time.CreateTimer(static s => ((UpstreamPools)s!).Sweep(), this, sweepInterval, sweepInterval);
    }

    /// <summary>The pool of a cluster (by name) or of a fixed address (by a key the caller builds once).</summary>
    public ClusterPool For(string key) => _pools.TryGetValue(key, out var pool) ? pool : _pools.GetOrAdd(key, static (_, t) => new ClusterPool(t), _time);

    public void Sweep()
    {
        foreach (var pool in _pools.Values)
        {
            pool.Sweep();
        }
    }

    public void Dispose()
    {
        _sweep.Dispose();
        foreach (var pool in _pools.Values)
        {
            pool.Clear();
        }
    }
}

/// <summary>
/// The keep-alive connections of one cluster: idle connections per endpoint address (a bounded LIFO list, so the
/// warmest is reused first), the count of open connections against max_connections, and the requests waiting for
/// a connection when the limit is reached (bounded by max_pending_requests: beyond it, circuit_open).
/// The lock guards only list and counter updates; sockets are closed and polled outside it.
/// </summary>
internal sealed class ClusterPool(TimeProvider time)
{
    /// <summary>Most idle connections kept per endpoint; more are closed when they come back.</summary>
    public const int MaxIdlePerEndpoint = 256;

    private readonly Lock _lock = new();
    private readonly Dictionary<IPEndPoint, Stack<UpstreamConnection>> _idle = [];
    private readonly Queue<TaskCompletionSource> _waiters = new();
    private int _open;
    private int _pending;

    /// <summary>Connections open (busy or idle).</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>Requests waiting for a connection.</summary>
    public int Pending => Volatile.Read(ref _pending);

    public int Idle
    {
        get
        {
            lock (_lock)
            {
                var n = 0;
                foreach (var stack in _idle.Values)
                {
                    n += stack.Count;
                }
                return n;
            }
        }
    }

    /// <summary>
    /// A connection to <paramref name="endpoint"/>: an idle one that is still good (<see cref="LeaseKind.Reused"/>),
    /// or a reserved slot to open a new one (<see cref="LeaseKind.Open"/>; the caller connects, and calls
    /// <see cref="ReleaseSlot"/> if that fails), or <see cref="LeaseKind.CircuitOpen"/> when the cluster is at its
    /// connection limit and too many requests already wait. Waiting ends with the token (the request's timeout).
    /// </summary>
    public async ValueTask<(LeaseKind Kind, UpstreamConnection? Connection)> AcquireAsync(IPEndPoint endpoint, PoolLimits limits, CancellationToken ct)
    {
        while (true)
        {
            UpstreamConnection? candidate = null;
            UpstreamConnection? evicted = null;
            TaskCompletionSource? wait = null;
            lock (_lock)
            {
                if (_idle.TryGetValue(endpoint, out var stack) && stack.Count > 0)
                {
                    candidate = stack.Pop();
                }
                else if (_open < limits.MaxConnections)
                {
                    _open++;
                    return (LeaseKind.Open, null);
                }
                else if (TakeAnyIdle() is { } other)
                {
                    evicted = other; // its slot passes to the new connection
                }
                else if (_pending >= limits.MaxPending)
                {
                    return (LeaseKind.CircuitOpen, null);
                }
                else
                {
                    _pending++;
                    wait = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _waiters.Enqueue(wait);
                }
            }
            if (candidate is not null)
            {
                // A connection idle only briefly is taken as is (the poll is a syscall per request, and a close that
                // races with reuse is caught anyway: a reused connection failing before any response byte is
                // replaced once); one idle longer is checked first.
                var idle = time.GetElapsedTime(candidate.IdleSince);
                if (idle < candidate.IdleTimeout && (idle < UpstreamPools.TrustIdleFor || !candidate.LooksClosed()))
                {
                    return (LeaseKind.Reused, candidate);
                }
                candidate.Dispose();
                lock (_lock)
                {
                    _open--;
                }
                continue;
            }
            if (evicted is not null)
            {
                evicted.Dispose();
                return (LeaseKind.Open, null);
            }
            try
            {
                await wait!.Task.WaitAsync(ct).ConfigureAwait(false);
            }
            finally
            {
                wait!.TrySetCanceled(CancellationToken.None);
                lock (_lock)
                {
                    _pending--;
                }
            }
        }
    }

    private UpstreamConnection? TakeAnyIdle()
    {
        foreach (var stack in _idle.Values)
        {
            if (stack.Count > 0)
            {
                return stack.Pop();
            }
        }
        return null;
    }

    /// <summary>Returns a connection after a request: kept idle when <paramref name="reusable"/> and there is room, else closed.</summary>
    public void Release(UpstreamConnection connection, bool reusable, TimeSpan idleTimeout)
    {
        var close = !reusable;
        lock (_lock)
        {
            if (reusable)
            {
                if (!_idle.TryGetValue(connection.Endpoint, out var stack))
                {
                    stack = new Stack<UpstreamConnection>();
                    _idle[connection.Endpoint] = stack;
                }
                if (stack.Count < MaxIdlePerEndpoint)
                {
                    connection.IdleSince = time.GetTimestamp();
                    connection.IdleTimeout = idleTimeout;
                    stack.Push(connection);
                }
                else
                {
                    close = true;
                }
            }
            if (close)
            {
                _open--;
            }
            WakeOne();
        }
        if (close)
        {
            connection.Dispose();
        }
    }

    /// <summary>Gives back a slot reserved by <see cref="AcquireAsync"/> whose connect failed.</summary>
    public void ReleaseSlot()
    {
        lock (_lock)
        {
            _open--;
            WakeOne();
        }
    }

    private void WakeOne()
    {
        while (_waiters.TryDequeue(out var waiter))
        {
            if (waiter.TrySetResult())
            {
                return;
            }
        }
    }

    /// <summary>Closes idle connections past their idle timeout or closed by the upstream.</summary>
    public void Sweep()
    {
        List<UpstreamConnection>? dead = null;
        lock (_lock)
        {
            foreach (var stack in _idle.Values)
            {
                if (stack.Count == 0)
                {
                    continue;
                }
                var kept = stack.ToArray(); // top first
                stack.Clear();
                for (var i = kept.Length - 1; i >= 0; i--)
                {
                    var c = kept[i];
                    if (time.GetElapsedTime(c.IdleSince) >= c.IdleTimeout || c.LooksClosed())
                    {
                        (dead ??= []).Add(c);
                        _open--;
                    }
                    else
                    {
                        stack.Push(c);
                    }
                }
            }
            if (dead is not null)
            {
                WakeOne();
            }
        }
        if (dead is not null)
        {
            foreach (var c in dead)
            {
                c.Dispose();
            }
        }
    }

    /// <summary>Closes every idle connection.</summary>
    public void Clear()
    {
        List<UpstreamConnection> all = [];
        lock (_lock)
        {
            foreach (var stack in _idle.Values)
            {
                while (stack.TryPop(out var c))
                {
                    all.Add(c);
                    _open--;
                }
            }
        }
        foreach (var c in all)
        {
            c.Dispose();
        }
    }
}
