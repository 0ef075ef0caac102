using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Proxy.Security;
using Trellis.Proxy.Tcp;
using Trellis.Proxy.Telemetry;
using Trellis.Proxy.Threading;

namespace Trellis.Proxy.Http.Http1;

/// <summary>
/// One downstream HTTP/1.x connection, served request by request (pipelined requests wait their turn in the
/// buffer). The whole data path of a request reads top to bottom here:
/// read head (limits, smuggling checks) -> route on the current model -> redirect / direct response -> rate limit
/// -> fault -> cluster runtime and circuit breaker -> 100-continue, body buffering for replay -> tries (endpoint
/// pick, pooled upstream connection, request head and body out, response head in) with per-try timeout and
/// retries -> response head and body streamed back (or a 101 switching to a byte relay).
/// Only framing and routing fields are parsed; field lines pass through as received unless a route rewrites them.
/// Timeouts run on one cancellation source per connection armed with the nearest deadline on the injected clock.
/// Expect: 100-continue is answered by the proxy itself (as Envoy does by default) once the request is about to be
/// forwarded; the Expect field is not sent upstream, and a 100 from the upstream is dropped.
/// </summary>
internal sealed partial class Http1Connection : IAsyncDisposable
{
    /// <summary>Request bodies up to this size are read whole before forwarding, so a try can be replayed.</summary>
    public const int MaxBufferedBody = 64 * 1024;

    /// <summary>A route without a timeout gets Envoy's default; a zero timeout disables it.</summary>
    public static readonly TimeSpan DefaultRouteTimeout = TimeSpan.FromSeconds(15);

    private static readonly PoolLimits FixedLimits = new(int.MaxValue, int.MaxValue, null, TimeSpan.FromMinutes(1));

    private enum Deadline { None, Idle, Request, Try, Connect }

    private enum Attempt { Response, ConnectFailure, Reset, ProtocolError, TryTimeout, RequestTimeout, CircuitOpen, BadRequestBody, ClientGone }

    private const int PhaseIdle = 0;
    private const int PhaseBusy = 1;
    private const int PhaseDrained = 2;

    private readonly Socket _socket;
    private readonly SslStream? _tls;
    private readonly PipeReader _in;
    private readonly PipeWriter _out;
    private readonly ListenerTarget _target;
    private readonly ModelState _models;
    private readonly ListenerServices _services;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationToken _draining;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeSpan _connectTimeoutDefault;
    private readonly string? _fixedPoolKey;
    private readonly RequestHead _request = new();
    private readonly ResponseHead _response = new();
    private CancellationTokenSource _cts;
    private Deadline _armed;
    private int _phase;
    private byte[]? _scratch;
    private ulong? _sourceHash;

    // The request being served (one at a time).
    private long _requestStart;
    private TimeSpan _requestTimeout;
    private long _tryStart;
    private TimeSpan? _perTry;
    private int _status;
    private bool _close;
    private bool _bodyConsumed;
    private bool _bodyHeld;
    private ReadOnlySequence<byte> _body;
    private bool _anyResponseByte;

    /// <summary>The number of the try under way (1, then 2 for the first retry ...), sent upstream on retries.</summary>
    private int _attempt = 1;
    private UpstreamConnection? _upstream;

    /// <summary>Why the last try could not connect, when there is more to say than the error code (a TLS handshake failure).</summary>
    private string? _connectDetail;
    private ClusterPool? _pool;
    private Task<CopyResult>? _bodyTask;

    /// <summary>A plaintext connection: <paramref name="prefix"/> holds the bytes detection already read.</summary>
    public Http1Connection(Socket socket, ReadOnlyMemory<byte> prefix, ListenerTarget target, ModelState models, ListenerServices services,
        ILogger logger, TimeSpan idleTimeout, TimeSpan connectTimeoutDefault, CancellationToken draining)
        : this(socket, null, new SocketReader(socket, prefix.Span), new SocketWriter(socket), target, models, services, logger, idleTimeout, connectTimeoutDefault, draining)
    {
    }

    /// <summary>
    /// A connection whose TLS the listener terminated: requests are read from and responses written to
    /// <paramref name="tls"/> (left open: the listener closes it with the socket), after <paramref name="prefix"/>,
    /// decrypted bytes detection already read (empty when ALPN chose http/1.1).
    /// </summary>
    public Http1Connection(Socket socket, SslStream tls, ReadOnlyMemory<byte> prefix, ListenerTarget target, ModelState models, ListenerServices services,
        ILogger logger, TimeSpan idleTimeout, TimeSpan connectTimeoutDefault, CancellationToken draining)
        : this(socket, tls, TlsPipes.Reader(prefix.IsEmpty ? tls : new ReplayStream(tls, prefix.Span)), TlsPipes.Writer(tls), target, models, services, logger,
            idleTimeout, connectTimeoutDefault, draining)
    {
    }

    private Http1Connection(Socket socket, SslStream? tls, PipeReader input, PipeWriter output, ListenerTarget target, ModelState models,
        ListenerServices services, ILogger logger, TimeSpan idleTimeout, TimeSpan connectTimeoutDefault, CancellationToken draining)
    {
        _socket = socket;
        _tls = tls;
        _in = input;
        _out = output;
        _target = target;
        _models = models;
        _services = services;
        _time = services.Time;
        _logger = logger;
        _draining = draining;
        _idleTimeout = idleTimeout;
        _connectTimeoutDefault = connectTimeoutDefault;
        _fixedPoolKey = target.Fixed is { } f ? $"fixed {f}" : null;
        _cts = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
    }

    public async Task RunAsync()
    {
        using var drain = _draining.UnsafeRegister(static s => ((Http1Connection)s!).OnDrain(), this);
        try
        {
            while (true)
            {
                Volatile.Write(ref _phase, PhaseIdle);
                if (_draining.IsCancellationRequested || !await ReadHeadAsync().ConfigureAwait(false))
                {
                    break;
                }
                if (!await HandleRequestAsync().ConfigureAwait(false))
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            Log.ConnectionEnded(_logger, _target.Name, ex.Message);
        }
    }

    /// <summary>The listener stopped: a connection waiting for its next request closes now; a busy one after its response.</summary>
    private void OnDrain()
    {
        if (Interlocked.CompareExchange(ref _phase, PhaseDrained, PhaseIdle) == PhaseIdle)
        {
            _cts.Cancel();
        }
    }

    // ---- 1. Request head ---------------------------------------------------------------------------------------

    /// <summary>Reads and parses the next request head; false when the connection ends (closed, idle, drained, or a bad head answered).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<bool> ReadHeadAsync()
    {
        Arm(_idleTimeout, Deadline.Idle);
        if (Volatile.Read(ref _phase) == PhaseDrained)
        {
            return false; // drained as the wait began (the source it cancelled may have been replaced by Arm)
        }
        var partial = false;
        while (true)
        {
            ReadResult read;
            try
            {
                read = await _in.ReadAsync(_cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                if (partial && Volatile.Read(ref _phase) == PhaseIdle)
                {
                    await RespondToBadHeadAsync(ProxyError.RequestTimeout, "the request head did not complete in time").ConfigureAwait(false);
                }
                return false;
            }
            var buffer = read.Buffer;
            var status = FindHead(buffer, out var start, out var end);
            if (status == HeadStatus.Incomplete)
            {
                if (read.IsCompleted)
                {
                    _in.AdvanceTo(buffer.End);
                    return false;
                }
                if (buffer.Length <= 2 * MessageHead.MaxBytes)
                {
                    partial = !buffer.IsEmpty;
                    _in.AdvanceTo(buffer.Start, buffer.End);
                    continue;
                }
                status = HeadStatus.TooLarge;
            }
            if (Interlocked.CompareExchange(ref _phase, PhaseBusy, PhaseIdle) != PhaseIdle)
            {
                return false; // drained while the head arrived: close; the client retries elsewhere
            }
            // The idle deadline stays armed until the request's own replaces it: every wait on the timer's token
            // is preceded by an Arm, and a deadline that fired in between is replaced by that Arm.
            if (status == HeadStatus.Complete)
            {
                status = _request.Load(buffer.Slice(start, end - start));
                _in.AdvanceTo(buffer.GetPosition(end));
                if (status == HeadStatus.Complete)
                {
                    return true;
                }
            }
            else
            {
                _in.AdvanceTo(buffer.End);
            }
            var error = status switch
            {
                HeadStatus.TooLarge => ProxyError.RequestHeadersTooLarge,
                HeadStatus.TooManyFields => ProxyError.TooManyHeaders,
                _ => ProxyError.BadRequest,
            };
            var detail = status switch
            {
                HeadStatus.TooLarge => "more than 60 KiB before the empty line",
                HeadStatus.TooManyFields => "more than 100 header fields",
                _ => _request.Problem.Length > 0 ? _request.Problem : MessageHead.BareLf,
            };
            await RespondToBadHeadAsync(error, detail).ConfigureAwait(false);
            return false;
        }
    }

    /// <summary>Finds a head's end in buffered bytes (copied to a scratch buffer when they span segments).</summary>
    private HeadStatus FindHead(in ReadOnlySequence<byte> buffer, out int start, out int end)
    {
        if (buffer.IsSingleSegment)
        {
            return MessageHead.FindEnd(buffer.FirstSpan, out start, out end);
        }
        var n = (int)Math.Min(buffer.Length, MessageHead.MaxBytes + 4);
        _scratch ??= ArrayPool<byte>.Shared.Rent(MessageHead.MaxBytes + 4);
        buffer.Slice(0, n).CopyTo(_scratch);
        return MessageHead.FindEnd(_scratch.AsSpan(0, n), out start, out end);
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask RespondToBadHeadAsync(ProxyError error, string detail)
    {
        Http1Writer.Simple(_out, error.HttpStatus(), error, null, $"{error.Message()}: {detail}\n", null, close: true, http10KeepAlive: false, headOnly: false);
        ProxyMetrics.RecordHttpRequest(_target.Name, error.HttpStatus(), TimeSpan.Zero);
        await BodyCopy.FlushAsync(_out, CancellationToken.None).ConfigureAwait(false);
    }

    // ---- 2. One request, top to bottom ---------------------------------------------------------------------------

    /// <summary>Serves the parsed request; true when the connection may carry the next one.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<bool> HandleRequestAsync()
    {
        _requestStart = _time.GetTimestamp();
        _status = 0;
        _close = !_request.KeepAlive;
        _bodyConsumed = !_request.HasBody;
        try
        {
            await ProcessAsync().ConfigureAwait(false);
        }
        finally
        {
            ReleaseHeldBody();
            DiscardUpstream();
            if (_bodyTask is { } body)
            {
                // A streamed body still going up when the request ended: the connection cannot take another request.
                _close |= !body.IsCompleted;
                _bodyTask = body.IsCompleted ? null : body;
            }
            ProxyMetrics.RecordHttpRequest(_target.Name, _status, _time.GetElapsedTime(_requestStart));
        }
        return !_close && _bodyConsumed;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask ProcessAsync()
    {
        // Routing reads the model current now: a route change applies from the next request on this connection.
        var model = _models.Current;
        var routeRequest = new RouteRequest(_request.Method, _request.Authority, _request.Path, _request);
        var decision = ListenerRouting.Resolve(_target, model, routeRequest, _services.Roll());
        if (decision.Error != ProxyError.None)
        {
            await RespondErrorAsync(decision.Error).ConfigureAwait(false);
            return;
        }
        var route = decision.Route;
        if (route is not null)
        {
            if (route.Redirect is { } redirect)
            {
                var location = Http1Writer.Location(redirect, route, routeRequest.Authority, routeRequest.Path);
                await RespondAsync(redirect.StatusCode > 0 ? redirect.StatusCode : 301, ProxyError.None, location, "", route).ConfigureAwait(false);
                return;
            }
            if (route.DirectResponseStatus is { } direct)
            {
                await RespondAsync(direct, ProxyError.None, null, route.DirectResponseBody ?? "", route).ConfigureAwait(false);
                return;
            }
            if (!_services.Policies.TryAcquireRateLimit(route))
            {
                await RespondErrorAsync(ProxyError.RateLimited).ConfigureAwait(false);
                return;
            }
            var fault = _services.Policies.DecideFault(route);
            if (fault.Delay > TimeSpan.Zero)
            {
                await Task.Delay(fault.Delay, _time).ConfigureAwait(false);
            }
            if (fault.Aborts)
            {
                await RespondErrorAsync(ProxyError.FaultInjected, fault.AbortHttpStatus).ConfigureAwait(false);
                return;
            }
        }
        await ForwardAsync(model, decision, route).ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask ForwardAsync(ProxyModel model, RouteDecision decision, RouteModel? route)
    {
        ClusterRuntime? runtime = null;
        PoolLimits limits;
        var connectTimeout = _connectTimeoutDefault;
        if (decision.Fixed is not null)
        {
            _pool = _services.Pools.For(_fixedPoolKey!);
            limits = FixedLimits;
        }
        else
        {
            runtime = _services.Clusters.Get(model, decision.Cluster!);
            if (runtime is null)
            {
                await RespondErrorAsync(ProxyError.NoCluster).ConfigureAwait(false);
                return;
            }
            if (!runtime.TryEnterRequest())
            {
                await RespondErrorAsync(ProxyError.CircuitOpen).ConfigureAwait(false);
                return;
            }
            var cluster = runtime.Model;
            _pool = _services.Pools.For(cluster.Name);
            limits = new PoolLimits(cluster.CircuitBreakers.MaxConnections, cluster.CircuitBreakers.MaxPendingRequests,
                cluster.MaxRequestsPerConnection, cluster.IdleTimeout);
            if (cluster.ConnectTimeout > TimeSpan.Zero)
            {
                connectTimeout = cluster.ConnectTimeout;
            }
        }
        try
        {
            _requestTimeout = route is null ? Timeout.InfiniteTimeSpan
                : route.Timeout is { } t ? (t <= TimeSpan.Zero ? Timeout.InfiniteTimeSpan : t)
                : DefaultRouteTimeout;
            if (await StartBodyAsync().ConfigureAwait(false))
            {
                await TryAllAsync(route, runtime, decision.Fixed, limits, connectTimeout).ConfigureAwait(false);
            }
        }
        finally
        {
            runtime?.ExitRequest();
        }
    }

    /// <summary>
    /// Answers 100-continue, and reads a body of known length up to <see cref="MaxBufferedBody"/> whole (kept in the
    /// pipe, not copied) so that tries can replay it. False when the client went away or was too slow.
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<bool> StartBodyAsync()
    {
        if (!_request.HasBody)
        {
            return true;
        }
        if (_request.Expect100 && !_request.IsHttp10)
        {
            _out.Write("HTTP/1.1 100 Continue\r\n\r\n"u8);
            if (await BodyCopy.FlushAsync(_out, CancellationToken.None).ConfigureAwait(false) != CopyResult.Done)
            {
                _close = true;
                return false;
            }
        }
        if (_request.Chunked || _request.ContentLength > MaxBufferedBody)
        {
            return true; // streamed during the try
        }
        ArmRequest();
        ReadResult read;
        try
        {
            read = await _in.ReadAtLeastAsync((int)_request.ContentLength, _cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await RespondErrorAsync(ProxyError.RequestTimeout).ConfigureAwait(false);
            return false;
        }
        if (read.Buffer.Length < _request.ContentLength)
        {
            _in.AdvanceTo(read.Buffer.End);
            _close = true;
            return false;
        }
        _body = read.Buffer.Slice(0, _request.ContentLength);
        _bodyHeld = true;
        return true;
    }

    private void ReleaseHeldBody()
    {
        if (_bodyHeld)
        {
            _in.AdvanceTo(_body.End);
            _body = default;
            _bodyHeld = false;
            _bodyConsumed = true;
        }
    }

    // ---- 3. Tries and retries ---------------------------------------------------------------------------------------

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask TryAllAsync(RouteModel? route, ClusterRuntime? runtime, IPEndPoint? fixedAddress, PoolLimits limits, TimeSpan connectTimeout)
    {
        var policy = route?.Retry;
        var replayable = !_request.HasBody || _bodyHeld;
        var hash = runtime is null ? 0 : Hash(route);
        IPEndPoint? avoid = null;
        var retries = 0;
        while (true)
        {
            IPEndPoint endpoint;
            if (runtime is null)
            {
                endpoint = fixedAddress!;
            }
            else if (runtime.Pick(hash, avoid) is { } picked)
            {
                endpoint = picked.Address;
            }
            else
            {
                if (retries > 0)
                {
                    runtime.ExitRetry();
                }
                await RespondErrorAsync(ProxyError.NoHealthyUpstream).ConfigureAwait(false);
                return;
            }

            runtime?.OnAttemptStart(endpoint);
            _attempt = retries + 1;
            var started = _time.GetTimestamp();
            var attempt = await TryAsync(endpoint, route, limits, connectTimeout, policy?.PerTryTimeout, runtime?.Model).ConfigureAwait(false);
            var status = attempt == Attempt.Response ? _response.Status : 0;
            runtime?.OnAttemptEnd(endpoint, status, _time.GetElapsedTime(started));
            if (retries > 0)
            {
                runtime!.ExitRetry();
            }

            var error = ToError(attempt);
            var retry = runtime is not null && policy is not null && retries < policy.NumRetries && replayable
                && attempt is not (Attempt.RequestTimeout or Attempt.CircuitOpen or Attempt.BadRequestBody or Attempt.ClientGone)
                && _services.IsRetriable(policy, status, null, error, attempt == Attempt.TryTimeout)
                && runtime.TryEnterRetry();
            if (!retry)
            {
                switch (attempt)
                {
                    case Attempt.Response:
                        await ForwardResponseAsync(route, limits).ConfigureAwait(false);
                        break;
                    case Attempt.ClientGone:
                        _close = true;
                        break;
                    case Attempt.BadRequestBody:
                        await RespondErrorAsync(error, detail: "the chunked body is malformed (chunk size line, CRLF after data, or trailer)").ConfigureAwait(false);
                        break;
                    case Attempt.ConnectFailure when _connectDetail is { } detail:
                        await RespondErrorAsync(error, detail: detail).ConfigureAwait(false);
                        break;
                    default:
                        await RespondErrorAsync(error).ConfigureAwait(false);
                        break;
                }
                return;
            }

            DiscardUpstream(); // a response being retried is dropped with its connection
            retries++;
            avoid = endpoint;
            ArmRequest();
            var backoff = _services.Policies.Backoff(policy!, retries);
            if (backoff > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(backoff, _time, _cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    runtime!.ExitRetry();
                    await RespondErrorAsync(ProxyError.UpstreamTimeout).ConfigureAwait(false);
                    return;
                }
            }
        }
    }

    private static ProxyError ToError(Attempt attempt) => attempt switch
    {
        Attempt.Response => ProxyError.None,
        Attempt.ConnectFailure => ProxyError.UpstreamConnectFailure,
        Attempt.Reset => ProxyError.UpstreamReset,
        Attempt.ProtocolError => ProxyError.UpstreamProtocolError,
        Attempt.TryTimeout or Attempt.RequestTimeout => ProxyError.UpstreamTimeout,
        Attempt.CircuitOpen => ProxyError.CircuitOpen,
        Attempt.BadRequestBody => ProxyError.BadRequest,
        _ => ProxyError.UpstreamReset,
    };

    /// <summary>
    /// One try against one endpoint: a pooled connection (or a new one within the connect timeout), the request out,
    /// the response head in. A reused connection that turns out closed before any response byte is replaced by a
    /// fresh one once, when the request can be replayed.
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<Attempt> TryAsync(IPEndPoint endpoint, RouteModel? route, PoolLimits limits, TimeSpan connectTimeout, TimeSpan? perTry,
        ClusterModel? cluster)
    {
        _tryStart = _time.GetTimestamp();
        _perTry = perTry;
        _connectDetail = null;
        var tls = cluster?.Tls;
        var fresh = false;
        while (true)
        {
            ArmTry(Timeout.InfiniteTimeSpan);
            (LeaseKind Kind, UpstreamConnection? Connection) lease;
            try
            {
                lease = await _pool!.AcquireAsync(endpoint, limits, _cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return TimedOut();
            }
            if (lease.Kind == LeaseKind.CircuitOpen)
            {
                return Attempt.CircuitOpen;
            }
            UpstreamConnection connection;
            var reused = lease.Kind == LeaseKind.Reused;
            if (reused && (fresh || !lease.Connection!.Matches(tls)))
            {
                // Replaced once already, or made for TLS settings the cluster no longer has.
                _pool.Release(lease.Connection!, reusable: false, default);
                continue;
            }
            if (reused)
            {
                connection = lease.Connection!;
            }
            else
            {
                var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                ArmTry(connectTimeout);
                try
                {
                    await socket.ConnectAsync(endpoint, _cts.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    socket.Dispose();
                    _pool.ReleaseSlot();
                    return ex is SocketException || _armed == Deadline.Connect ? Attempt.ConnectFailure : TimedOut();
                }
                if (tls is null)
                {
                    connection = new UpstreamConnection(socket, endpoint);
                }
                else
                {
                    // The handshake shares the connect deadline still armed.
                    var handshake = await UpstreamTls.HandshakeAsync(socket, endpoint, tls, UpstreamTls.Http11, requireAlpn: false, cluster!.Name, _time, _cts.Token)
                        .ConfigureAwait(false);
                    if (handshake.Stream is null)
                    {
                        socket.Dispose();
                        _pool.ReleaseSlot();
                        _connectDetail = handshake.Failure;
                        return handshake.Outcome != UpstreamTlsOutcome.Timeout || _armed == Deadline.Connect ? Attempt.ConnectFailure : TimedOut();
                    }
                    connection = new UpstreamConnection(socket, endpoint, handshake.Stream, tls.Key);
                }
                ArmTry(Timeout.InfiniteTimeSpan);
            }
            _upstream = connection;
            connection.Requests++;
            var attempt = await ExchangeAsync(connection, route).ConfigureAwait(false);
            if (attempt == Attempt.Reset && reused && !fresh && !_anyResponseByte && (!_request.HasBody || _bodyHeld))
            {
                // The upstream closed this idle connection as it was taken: not the request's fault.
                DiscardUpstream();
                fresh = true;
                continue;
            }
            return attempt;
        }
    }

    private Attempt TimedOut() => _armed == Deadline.Request ? Attempt.RequestTimeout : Attempt.TryTimeout;

    /// <summary>Sends the request head and body and reads the response head (a streamed body goes up while the response is awaited).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<Attempt> ExchangeAsync(UpstreamConnection connection, RouteModel? route)
    {
        Http1Writer.RequestHead(connection.Writer, _request, route, _request.IsUpgrade, _attempt);
        _anyResponseByte = false;
        try
        {
            if (!_request.HasBody || _bodyHeld)
            {
                if (_bodyHeld)
                {
                    BodyCopy.Write(connection.Writer, _body);
                }
                if (await BodyCopy.FlushAsync(connection.Writer, _cts.Token).ConfigureAwait(false) != CopyResult.Done)
                {
                    return Attempt.Reset;
                }
                return await ReadResponseHeadAsync(connection).ConfigureAwait(false);
            }

            // Streamed body: the head goes first so the upstream may answer early; the body follows as it arrives.
            if (await BodyCopy.FlushAsync(connection.Writer, _cts.Token).ConfigureAwait(false) != CopyResult.Done)
            {
                return Attempt.Reset;
            }
            _bodyTask = SendStreamedBodyAsync(connection).AsTask();
            var headTask = ReadResponseHeadAsync(connection).AsTask();
            if (await Task.WhenAny(_bodyTask, headTask).ConfigureAwait(false) == _bodyTask)
            {
                var sent = await _bodyTask.ConfigureAwait(false);
                if (sent is not (CopyResult.Done or CopyResult.SinkFailed))
                {
                    // The client's body failed (malformed chunks, or the client went away): stop waiting for an answer.
                    connection.Reader.CancelPendingRead();
                    await headTask.ConfigureAwait(false);
                    _bodyTask = null;
                    return sent == CopyResult.Malformed ? Attempt.BadRequestBody : Attempt.ClientGone;
                }
            }
            return await headTask.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return TimedOut();
        }
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<CopyResult> SendStreamedBodyAsync(UpstreamConnection connection)
    {
        var result = _request.Chunked
            ? await BodyCopy.CopyChunkedAsync(_in, connection.Writer, dechunk: false, _cts.Token).ConfigureAwait(false)
            : await BodyCopy.CopyLengthAsync(_in, connection.Writer, _request.ContentLength, _cts.Token).ConfigureAwait(false);
        _bodyConsumed = result == CopyResult.Done;
        return result == CopyResult.Done ? await BodyCopy.FlushAsync(connection.Writer, _cts.Token).ConfigureAwait(false) : result;
    }

    /// <summary>Reads the upstream's response head, skipping interim (1xx) responses other than 101.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<Attempt> ReadResponseHeadAsync(UpstreamConnection connection)
    {
        var reader = connection.Reader;
        try
        {
            while (true)
            {
                var read = await reader.ReadAsync(_cts.Token).ConfigureAwait(false);
                if (read.IsCanceled)
                {
                    return Attempt.Reset;
                }
                var buffer = read.Buffer;
                _anyResponseByte |= !buffer.IsEmpty;
                var status = FindHead(buffer, out var start, out var end);
                if (status == HeadStatus.Incomplete)
                {
                    if (read.IsCompleted)
                    {
                        reader.AdvanceTo(buffer.End);
                        return Attempt.Reset;
                    }
                    if (buffer.Length > 2 * MessageHead.MaxBytes)
                    {
                        return Attempt.ProtocolError;
                    }
                    reader.AdvanceTo(buffer.Start, buffer.End);
                    continue;
                }
                if (status != HeadStatus.Complete)
                {
                    reader.AdvanceTo(buffer.End);
                    return Attempt.ProtocolError;
                }
                status = _response.Load(buffer.Slice(start, end - start));
                reader.AdvanceTo(buffer.GetPosition(end));
                if (status != HeadStatus.Complete)
                {
                    return Attempt.ProtocolError;
                }
                if (_response.Status is >= 100 and < 200 and not 101)
                {
                    continue;
                }
                return Attempt.Response;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return Attempt.Reset;
        }
    }

    // ---- 4. The response -------------------------------------------------------------------------------------------

    /// <summary>Forwards the response head and streams its body; the upstream connection goes back to the pool when clean.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask ForwardResponseAsync(RouteModel? route, PoolLimits limits)
    {
        var connection = _upstream!;
        ReleaseHeldBody();
        ArmRequest();
        var status = _response.Status;
        var switching = status == 101;
        if (switching && !_request.IsUpgrade)
        {
            await RespondErrorAsync(ProxyError.UpstreamProtocolError).ConfigureAwait(false);
            return;
        }
        var noBody = _request.IsHead || status is (>= 100 and < 200) or 204 or 304 || (!_response.HasTransferEncoding && _response.ContentLength == 0);
        var dechunk = !noBody && _response.Chunked && _request.IsHttp10;
        var untilClose = !noBody && !switching && (_response.UntilClose || (!_response.Chunked && _response.ContentLength < 0));
        _close |= untilClose || dechunk || switching || _draining.IsCancellationRequested || (_bodyTask is { IsCompleted: false });
        var reusable = !switching && !_request.IsUpgrade && _response.KeepAlive && !untilClose
            && (limits.MaxRequestsPerConnection is not { } max || connection.Requests < max);

        Http1Writer.ResponseHead(_out, _response, route, switching, dechunk, close: _close && !switching, http10KeepAlive: _request.IsHttp10 && !_close);
        _status = status;
        if (switching)
        {
            await RelayUpgradedAsync(connection).ConfigureAwait(false);
            return;
        }
        CopyResult copied;
        try
        {
            copied = noBody ? CopyResult.Done
                : _response.Chunked ? await BodyCopy.CopyChunkedAsync(connection.Reader, _out, dechunk, _cts.Token).ConfigureAwait(false)
                : untilClose ? await BodyCopy.CopyToEndAsync(connection.Reader, _out, _cts.Token).ConfigureAwait(false)
                : await BodyCopy.CopyLengthAsync(connection.Reader, _out, _response.ContentLength, _cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            copied = CopyResult.Canceled; // the route's timeout passed mid-body: the client sees a cut response
        }
        if (copied != CopyResult.Done)
        {
            _close = true;
            await StopRequestBodyAsync(connection).ConfigureAwait(false);
            return;
        }
        if (!await StopRequestBodyAsync(connection).ConfigureAwait(false))
        {
            reusable = false;
        }
        if (reusable && connection.Reader.TryRead(out var extra))
        {
            // Bytes nobody asked for, or a close, after the response: the connection cannot be trusted again.
            reusable = extra.Buffer.IsEmpty && !extra.IsCompleted;
            connection.Reader.AdvanceTo(extra.Buffer.Start);
        }
        // The upstream connection is free before the client sees the end of the response.
        _pool!.Release(connection, reusable, limits.IdleTimeout);
        _upstream = null;
        try
        {
            if (await BodyCopy.FlushAsync(_out, _cts.Token).ConfigureAwait(false) != CopyResult.Done)
            {
                _close = true;
            }
        }
        catch (OperationCanceledException)
        {
            _close = true;
        }
    }

    /// <summary>
    /// After the response: a streamed request body still going up is stopped (the upstream answered early; the
    /// downstream connection then closes, as the rest of the body was never read). True when the body completed.
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<bool> StopRequestBodyAsync(UpstreamConnection connection)
    {
        if (_bodyTask is not { } task)
        {
            return true;
        }
        _bodyTask = null;
        // Stopping it shuts the downstream receive side and the upstream send side: neither connection can be
        // used again, even if the body happened to complete as it was stopped.
        var stopped = !task.IsCompleted;
        if (stopped)
        {
            _in.CancelPendingRead();
            connection.Writer.CancelPendingFlush();
        }
        CopyResult result;
        try
        {
            result = await task.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            result = CopyResult.Canceled;
        }
        if (stopped || result != CopyResult.Done)
        {
            _close = true;
            return false;
        }
        return true;
    }

    /// <summary>After a 101: bytes both ways until both sides finish or nothing moves for the idle timeout.</summary>
    private async ValueTask RelayUpgradedAsync(UpstreamConnection connection)
    {
        _close = true;
        if (await BodyCopy.FlushAsync(_out, CancellationToken.None).ConfigureAwait(false) != CopyResult.Done ||
            !await StopRequestBodyAsync(connection).ConfigureAwait(false))
        {
            return;
        }
        Arm(Timeout.InfiniteTimeSpan, Deadline.None);
        await BodyCopy.RelayAsync(_in, _out, new SendSide(_socket, _tls), connection.Reader, connection.Writer, connection.Send, _idleTimeout, _time).ConfigureAwait(false);
    }

    // ---- Answers of the proxy's own ----------------------------------------------------------------------------

    private ValueTask RespondErrorAsync(ProxyError error, int status = 0, string? detail = null)
    {
        if (error is ProxyError.BadRequest or ProxyError.RequestTimeout)
        {
            _close = true;
        }
        var body = detail is null ? error.Message() + "\n" : $"{error.Message()}: {detail}\n";
        return RespondAsync(status > 0 ? status : error.HttpStatus(), error, null, body, null);
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask RespondAsync(int status, ProxyError error, string? location, string body, RouteModel? route)
    {
        DiscardUpstream();
        ReleaseHeldBody();
        // A request body not read cannot be skipped safely: the connection closes after this answer.
        _close |= !_bodyConsumed || _draining.IsCancellationRequested || (_bodyTask is { IsCompleted: false });
        Http1Writer.Simple(_out, status, error, location, body, route, _close, _request.IsHttp10 && !_close, _request.IsHead);
        _status = status;
        await BodyCopy.FlushAsync(_out, CancellationToken.None).ConfigureAwait(false);
    }

    // ---- Helpers -------------------------------------------------------------------------------------------------

    /// <summary>The ring-hash key of the request: the route's hash header, hash cookie, or the client's address.</summary>
    private ulong Hash(RouteModel? route)
    {
        if (route is null)
        {
            return 0;
        }
        if (route.HashHeader is { } header)
        {
            var i = _request.Find(header);
            return i < 0 ? 0 : HttpSyntax.Fnv1a(_request.Value(i));
        }
        if (route.HashCookie is { } cookie)
        {
            for (var i = 0; i < _request.FieldCount; i++)
            {
                if (_request.Field(i).Kind == FieldKind.Cookie && CookieValue(_request.Value(i), cookie, out var value))
                {
                    return HttpSyntax.Fnv1a(value);
                }
            }
            return 0;
        }
        if (route.HashSourceIp)
        {
            return _sourceHash ??= SourceHash();
        }
        return 0;
    }

    private static bool CookieValue(ReadOnlySpan<byte> header, string name, out ReadOnlySpan<byte> value)
    {
        while (!header.IsEmpty)
        {
            var semi = header.IndexOf((byte)';');
            var pair = HttpSyntax.TrimOws(semi < 0 ? header : header[..semi]);
            var eq = pair.IndexOf((byte)'=');
            if (eq > 0 && System.Text.Ascii.Equals(pair[..eq], name))
            {
                value = pair[(eq + 1)..];
                return true;
            }
            header = semi < 0 ? default : header[(semi + 1)..];
        }
        value = default;
        return false;
    }

    private ulong SourceHash()
    {
        if (_socket.RemoteEndPoint is not IPEndPoint remote)
        {
            return 0;
        }
        Span<byte> bytes = stackalloc byte[16];
        return remote.Address.TryWriteBytes(bytes, out var n) ? HttpSyntax.Fnv1a(bytes[..n]) : 0;
    }

    private void DiscardUpstream()
    {
        if (_upstream is { } connection)
        {
            _upstream = null;
            _pool!.Release(connection, reusable: false, default);
        }
    }

    /// <summary>
    /// Points the connection's one timer at <paramref name="budget"/> from now (a fired source is replaced first).
    /// The request deadline is fixed once the request is routed, so arming it again while it is armed changes nothing
    /// and is skipped (the timer is re-pointed about twice per request instead of five times).
    /// </summary>
    private void Arm(TimeSpan budget, Deadline kind)
    {
        if (_cts.IsCancellationRequested)
        {
            ResetTimer();
        }
        else if (kind == Deadline.Request && _armed == Deadline.Request)
        {
            return;
        }
        _armed = kind;
        _cts.CancelAfter(budget == Timeout.InfiniteTimeSpan || budget > TimeSpan.Zero ? budget : TimeSpan.Zero);
    }

    private TimeSpan RequestLeft() =>
        _requestTimeout == Timeout.InfiniteTimeSpan ? Timeout.InfiniteTimeSpan : _requestTimeout - _time.GetElapsedTime(_requestStart);

    private void ArmRequest() => Arm(RequestLeft(), Deadline.Request);

    /// <summary>Arms the nearest of the request deadline, the try deadline and (while connecting) the connect timeout.</summary>
    private void ArmTry(TimeSpan connect)
    {
        var budget = RequestLeft();
        var kind = Deadline.Request;
        if (_perTry is { } perTry && perTry > TimeSpan.Zero)
        {
            var tryLeft = perTry - _time.GetElapsedTime(_tryStart);
            if (budget == Timeout.InfiniteTimeSpan || tryLeft < budget)
            {
                (budget, kind) = (tryLeft, Deadline.Try);
            }
        }
        if (connect != Timeout.InfiniteTimeSpan && (budget == Timeout.InfiniteTimeSpan || connect < budget))
        {
            (budget, kind) = (connect, Deadline.Connect);
        }
        Arm(budget, kind);
    }

    private void ResetTimer()
    {
        if (!_cts.TryReset())
        {
            _cts.Dispose();
            _cts = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        }
        _armed = Deadline.None;
    }

    public async ValueTask DisposeAsync()
    {
        if (_bodyTask is { } task)
        {
            _in.CancelPendingRead();
            try
            {
                await task.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
            {
            }
        }
        DiscardUpstream();
        _in.Complete();
        _out.Complete();
        _request.Dispose();
        _response.Dispose();
        if (_scratch is not null)
        {
            ArrayPool<byte>.Shared.Return(_scratch);
        }
        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Debug, "listener {Name}: HTTP/1.1 connection ended: {Reason}")]
        public static partial void ConnectionEnded(ILogger logger, string name, string reason);
    }
}
