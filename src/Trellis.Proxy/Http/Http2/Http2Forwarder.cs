using System.Buffers;
using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Http.Http1;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Proxy.Security;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Http.Http2;

/// <summary>
/// The HTTP/2 data path, top to bottom: route the request on the current model; answer direct responses,
/// redirects and proxy errors itself; apply the route's rate limit and faults; enter the cluster (circuit breaker);
/// then try endpoints (retries with backoff while the body is replayable and nothing was sent downstream) and relay
/// the chosen response: headers, body as it arrives, trailers.
/// </summary>
internal sealed partial class Http2Forwarder : IAsyncDisposable
{
    private const int ResponseBufferSize = 16 * 1024;

    /// <summary>Limits of a fixed target (the inbound listener's application): no circuit breaking there.</summary>
    private static readonly PoolLimits FixedLimits = new(int.MaxValue, int.MaxValue, null, TimeSpan.FromMinutes(1));

    /// <summary>Request headers never copied upstream: connection-specific ones, and those the proxy sets itself.</summary>
    private static readonly FrozenSet<string> SkippedRequestHeaders = FrozenSet.Create(StringComparer.OrdinalIgnoreCase,
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings", "host", "content-length");

    /// <summary>Response headers never copied downstream (connection-specific, forbidden in HTTP/2).</summary>
    private static readonly FrozenSet<string> SkippedResponseHeaders = FrozenSet.Create(StringComparer.OrdinalIgnoreCase,
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade");

    private readonly ModelState _state;
    private readonly ClusterRuntimes _clusters;
    private readonly RoutePolicies _policies;
    private readonly TimeProvider _time;
    private readonly Http2FrontendOptions _options;
    private readonly Func<uint> _roll;
    private readonly Http2Metrics _metrics;
    private readonly ILogger _log;
    private readonly Http2ConnectionPools _pools;

    public Http2Forwarder(ModelState state, ClusterRuntimes clusters, RoutePolicies policies, TimeProvider time,
        Http2FrontendOptions options, Func<uint> roll, Http2Metrics metrics, ILogger log)
    {
        _state = state;
        _clusters = clusters;
        _policies = policies;
        _time = time;
        _options = options;
        _roll = roll;
        _metrics = metrics;
        _log = log;
        _pools = new Http2ConnectionPools(time, new Http2ClientOptions { ConnectTimeout = options.DefaultConnectTimeout }, TimeSpan.FromSeconds(5));
    }

    /// <summary>Serves one request stream of <paramref name="connection"/> to its end.</summary>
    public async ValueTask HandleAsync(Http2ServerStream stream, DownstreamConnection connection)
    {
        using var exchange = new Http2Exchange(stream, connection, _time);
        try
        {
            await RouteAsync(exchange).ConfigureAwait(false);
            if (!exchange.Ended && !exchange.ClientGone)
            {
                await exchange.EndAsync(null).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (exchange.ClientGone || ex is Http2StreamException)
        {
            // The client reset the stream or closed the connection (a write downstream failed): nobody to answer.
        }
        catch (Exception ex)
        {
            LogUnexpected(_log, exchange.Method, exchange.Target, ex);
            exchange.Abort();
        }
        finally
        {
            var grpc = exchange.IsGrpc;
            _metrics.Request(exchange.Cluster, exchange.Status, exchange.Error == ProxyError.None ? "" : exchange.Error.Code(),
                grpc, exchange.ClientGone ? null : exchange.GrpcStatus);
        }
    }

    private async Task RouteAsync(Http2Exchange exchange)
    {
        var model = _state.Current; // per request: route changes apply to the next request of a live connection
        var target = exchange.Connection.Target;
        var request = new RouteRequest(exchange.Method, exchange.Authority, exchange.Target, exchange);
        var decision = ListenerRouting.Resolve(target, model, request, _roll());
        if (decision.Error != ProxyError.None)
        {
            await RespondErrorAsync(exchange, decision.Error).ConfigureAwait(false);
            return;
        }
        var route = decision.Route;
        if (route is not null)
        {
            if (route.DirectResponseStatus is { } status)
            {
                await RespondDirectAsync(exchange, route, status).ConfigureAwait(false);
                return;
            }
            if (route.Redirect is { } redirect)
            {
                await RespondRedirectAsync(exchange, route, redirect).ConfigureAwait(false);
                return;
            }
            if (!_policies.TryAcquireRateLimit(route))
            {
                await RespondErrorAsync(exchange, ProxyError.RateLimited).ConfigureAwait(false);
                return;
            }
            var fault = _policies.DecideFault(route);
            if (fault.Delay > TimeSpan.Zero)
            {
                await Task.Delay(fault.Delay, _time, exchange.Stream.Aborted).ConfigureAwait(false);
            }
            if (fault.Aborts)
            {
                var grpcStatus = fault.AbortGrpcStatus ?? GrpcProtocol.StatusFromHttp(fault.AbortHttpStatus);
                await RespondErrorAsync(exchange, ProxyError.FaultInjected, fault.AbortHttpStatus, grpcStatus).ConfigureAwait(false);
                return;
            }
        }
        StartDeadline(exchange, route);
        if (decision.Fixed is { } fixedAddress)
        {
            await ForwardAsync(exchange, route, null, fixedAddress, _options.DefaultConnectTimeout).ConfigureAwait(false);
            return;
        }
        exchange.Cluster = decision.Cluster ?? "";
        var runtime = _clusters.Get(model, exchange.Cluster);
        if (runtime is null)
        {
            await RespondErrorAsync(exchange, ProxyError.NoCluster).ConfigureAwait(false);
            return;
        }
        if (!runtime.TryEnterRequest())
        {
            await RespondErrorAsync(exchange, ProxyError.CircuitOpen).ConfigureAwait(false);
            return;
        }
        try
        {
            var connectTimeout = runtime.Model.ConnectTimeout > TimeSpan.Zero ? runtime.Model.ConnectTimeout : _options.DefaultConnectTimeout;
            await ForwardAsync(exchange, route, runtime, null, connectTimeout).ConfigureAwait(false);
        }
        finally
        {
            runtime.ExitRequest();
        }
    }

    /// <summary>The call's deadline: the route's timeout and, for gRPC, the client's grpc-timeout, whichever is sooner.</summary>
    private static void StartDeadline(Http2Exchange exchange, RouteModel? route)
    {
        TimeSpan? timeout = route?.Timeout is { } t && t > TimeSpan.Zero ? t : null;
        if (exchange.IsGrpc
            && exchange.Get(GrpcProtocol.TimeoutHeader) is { } value
            && GrpcProtocol.TryParseTimeout(value, out var grpcTimeout)
            && (timeout is null || grpcTimeout < timeout))
        {
            timeout = grpcTimeout;
        }
        if (timeout is { } deadline)
        {
            exchange.StartDeadline(deadline);
        }
    }

    private async Task ForwardAsync(Http2Exchange exchange, RouteModel? route, ClusterRuntime? runtime, IPEndPoint? fixedAddress, TimeSpan connectTimeout)
    {
        var policy = route?.Retry is { NumRetries: > 0 } retry ? retry : null;
        var body = exchange.Stream.RequestHeadEndsStream ? null : new RequestBody(exchange.Stream, keepCopy: policy is not null);
        try
        {
            var hash = runtime is null ? 0 : RequestHash(route, exchange);
            IPEndPoint? avoid = null;
            var retries = 0;
            var lastError = ProxyError.None;
            while (true)
            {
                IPEndPoint address;
                if (fixedAddress is not null)
                {
                    address = fixedAddress;
                }
                else if (runtime!.Pick(hash, avoid) is { } endpoint)
                {
                    address = endpoint.Address;
                }
                else
                {
                    await RespondErrorAsync(exchange, lastError == ProxyError.None ? ProxyError.NoHealthyUpstream : lastError).ConfigureAwait(false);
                    return;
                }

                var started = _time.GetTimestamp();
                runtime?.OnAttemptStart(address);
                UpstreamAttempt attempt;
                try
                {
                    attempt = await SendAsync(exchange, route, address, runtime?.Model, body, connectTimeout, policy?.PerTryTimeout, retries + 1).ConfigureAwait(false);
                }
                finally
                {
                    if (retries > 0)
                    {
                        runtime?.ExitRetry();
                    }
                }
                using (attempt)
                {
                    var latency = _time.GetElapsedTime(started);
                    if (attempt.Head is { } head)
                    {
                        var status = head.Status;
                        runtime?.OnAttemptEnd(address, status, latency);
                        if (policy is not null
                            && RoutePolicies.IsRetriable(policy, status, ParseGrpcStatus(head.Fields), ProxyError.None)
                            && await TryStartRetryAsync(exchange, runtime, policy, body, retries + 1).ConfigureAwait(false))
                        {
                            avoid = address;
                            retries++;
                            continue;
                        }
                        if (exchange.CallToken.IsCancellationRequested)
                        {
                            await FailAsync(exchange, ProxyError.UpstreamTimeout).ConfigureAwait(false);
                            return;
                        }
                        await RelayAsync(exchange, route, attempt.Stream!, head).ConfigureAwait(false);
                        return;
                    }

                    runtime?.OnAttemptEnd(address, 0, latency);
                    if (exchange.ClientGone)
                    {
                        return;
                    }
                    lastError = attempt.Error;
                    LogAttemptFailed(_log, exchange.Cluster, address.ToString(), attempt.Error.Code(), attempt.Detail ?? "");
                    if (policy is not null
                        && RoutePolicies.IsRetriable(policy, 0, null, attempt.Error,
                            perTryTimeout: attempt.Error == ProxyError.UpstreamTimeout && !exchange.CallToken.IsCancellationRequested)
                        && await TryStartRetryAsync(exchange, runtime, policy, body, retries + 1).ConfigureAwait(false))
                    {
                        avoid = address;
                        retries++;
                        continue;
                    }
                    await FailAsync(exchange, exchange.TimedOut ? ProxyError.UpstreamTimeout : attempt.Error, exchange.TimedOut ? null : attempt.ClientDetail).ConfigureAwait(false);
                    return;
                }
            }
        }
        finally
        {
            if (body is not null)
            {
                await body.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Whether retry number <paramref name="retry"/> may start: tries left, time left, a replayable body, room in
    /// the cluster's retry limit. Waits the backoff; on true the caller owns one retry slot (ExitRetry after the try).
    /// </summary>
    private async ValueTask<bool> TryStartRetryAsync(Http2Exchange exchange, ClusterRuntime? runtime, RetryPolicyModel policy, RequestBody? body, int retry)
    {
        if (retry > policy.NumRetries || exchange.CallToken.IsCancellationRequested || (body is not null && !body.CanReplay))
        {
            return false;
        }
        if (runtime is not null && !runtime.TryEnterRetry())
        {
            return false;
        }
        try
        {
            var wait = _policies.Backoff(policy, retry);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, _time, exchange.CallToken).ConfigureAwait(false);
            }
            return true;
        }
        catch (OperationCanceledException)
        {
            runtime?.ExitRetry();
            return false;
        }
    }

    /// <summary>Answers with the proxy error unless the client is gone.</summary>
    private Task FailAsync(Http2Exchange exchange, ProxyError error, string? detail = null) =>
        exchange.ClientGone ? Task.CompletedTask : RespondErrorAsync(exchange, error, error.HttpStatus(), error.GrpcStatus(), detail);

    /// <summary>One try: the request to one endpoint, until its response headers (or failure).</summary>
    private async Task<UpstreamAttempt> SendAsync(Http2Exchange exchange, RouteModel? route, IPEndPoint address, ClusterModel? cluster, RequestBody? body,
        TimeSpan connectTimeout, TimeSpan? perTryTimeout, int attemptNumber)
    {
        var fields = BuildFields(exchange, route, cluster?.Tls is null ? "http" : "https", attemptNumber);
        var tryCancel = CancellationTokenSource.CreateLinkedTokenSource(exchange.CallToken);
        var perTry = perTryTimeout is { } t && t > TimeSpan.Zero
            ? _time.CreateTimer(static s => CancelQuietly((CancellationTokenSource)s!), tryCancel, t, Timeout.InfiniteTimeSpan)
            : null;
        Http2ClientStream? stream = null;
        try
        {
            var pool = cluster is null ? _pools.For(FixedPoolKey(address)) : _pools.For(cluster.Name);
            var limits = cluster is null ? FixedLimits : Limits(cluster);
            var lease = await pool.OpenStreamAsync(address, cluster?.Tls, limits, connectTimeout, fields, endStream: body is null, tryCancel.Token)
                .ConfigureAwait(false);
            if (lease.Stream is null)
            {
                return new UpstreamAttempt(null, null, tryCancel, lease.Error, lease.Detail) { ClientDetail = lease.ClientDetail };
            }
            stream = lease.Stream;
            if (body is not null)
            {
                // The body streams up while the response is awaited (bidirectional gRPC needs both at once).
                _ = body.SendAsync(stream, tryCancel.Token);
            }
            var head = await stream.ReadResponseHeadAsync(tryCancel.Token).ConfigureAwait(false);
            return new UpstreamAttempt(stream, head, tryCancel, ProxyError.None, null);
        }
        catch (OperationCanceledException ex)
        {
            // The client went away, or the call's deadline or this try's timeout passed (our token fired).
            var error = exchange.ClientGone ? ProxyError.None
                : tryCancel.IsCancellationRequested ? ProxyError.UpstreamTimeout
                : ProxyError.UpstreamReset;
            return new UpstreamAttempt(stream, null, tryCancel, error, ex.Message);
        }
        catch (Exception ex) when (ex is Http2StreamException or IOException or SocketException)
        {
            return new UpstreamAttempt(stream, null, tryCancel, Classify(ex), ex.Message);
        }
        finally
        {
            // The per-try timeout covers the wait for response headers.
            perTry?.Dispose();
        }
    }

    private static string FixedPoolKey(IPEndPoint address) => string.Concat("fixed ", address.ToString());

    /// <summary>The cluster's connection limits (its circuit breakers and HTTP protocol options).</summary>
    private static PoolLimits Limits(ClusterModel cluster) =>
        new(cluster.CircuitBreakers.MaxConnections, cluster.CircuitBreakers.MaxPendingRequests, cluster.MaxRequestsPerConnection, cluster.IdleTimeout);

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// What an upstream failure means: malformed HTTP/2 (PROTOCOL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR: for
    /// instance an HTTP/1.1-only server), or the upstream broke off an exchange under way (a reset stream, including a
    /// refused one, or a closed connection).
    /// </summary>
    internal static ProxyError Classify(Exception failure) => failure switch
    {
        Http2StreamException { ErrorCode: Http2ErrorCode.ProtocolError or Http2ErrorCode.FrameSizeError or Http2ErrorCode.CompressionError } => ProxyError.UpstreamProtocolError,
        _ => ProxyError.UpstreamReset,
    };

    /// <summary>
    /// The request head for the upstream: pseudo-headers (:authority from the route's host rewrite or the caller's,
    /// :path after the route's rewrite), then the caller's fields except connection-specific ones and those the
    /// route removes or replaces, the route's additions, the attempt count on retries, and for gRPC what is left of
    /// the caller's deadline. Names are lower case, as HTTP/2 requires.
    /// </summary>
    private static List<Http2HeaderField> BuildFields(Http2Exchange exchange, RouteModel? route, string scheme, int attemptNumber)
    {
        var stream = exchange.Stream;
        var fields = new List<Http2HeaderField>(stream.FieldCount + 6)
        {
            new(":method", exchange.Method),
            new(":scheme", scheme),
            new(":authority", route?.HostRewrite ?? exchange.Authority),
            new(":path", RouteRewrites.UpstreamPath(route, exchange.Target)),
        };
        var remaining = exchange.IsGrpc ? exchange.Remaining : null;
        for (var i = 0; i < stream.FieldCount; i++)
        {
            var nameBytes = stream.FieldName(i);
            if (nameBytes.IsEmpty || nameBytes[0] == (byte)':')
            {
                continue;
            }
            var name = HeaderName(nameBytes);
            if (SkippedRequestHeaders.Contains(name))
            {
                continue;
            }
            var value = System.Text.Encoding.Latin1.GetString(stream.FieldValue(i));
            if (name == "te")
            {
                // The only TE allowed in HTTP/2; gRPC servers require it.
                if (value.Contains("trailers", StringComparison.OrdinalIgnoreCase))
                {
                    fields.Add(new("te", "trailers"));
                }
                continue;
            }
            if ((remaining is not null && name == GrpcProtocol.TimeoutHeader) || (route is not null && IsReplaced(route, name)))
            {
                continue;
            }
            fields.Add(new(name, value));
        }
        if (stream.ContentLength >= 0)
        {
            fields.Add(new("content-length", stream.ContentLength.ToString(CultureInfo.InvariantCulture)));
        }
        if (route is not null)
        {
            foreach (var add in route.RequestHeadersToAdd)
            {
                fields.Add(new(LowerCase(add.Name), add.Value));
            }
        }
        if (attemptNumber > 1)
        {
            fields.Add(new("x-trellis-attempt-count", attemptNumber.ToString(CultureInfo.InvariantCulture)));
        }
        if (remaining is { } left)
        {
            // What is left of the caller's deadline, so the application stops when the proxy gives up.
            fields.Add(new(GrpcProtocol.TimeoutHeader, GrpcProtocol.FormatTimeout(left)));
        }
        return fields;
    }

    /// <summary>A request field name as a string: the names every request carries come from a table, not a new string.</summary>
    private static string HeaderName(ReadOnlySpan<byte> name)
    {
        foreach (var known in CommonRequestHeaders)
        {
            if (name.Length == known.Length && Latin1Equals(name, known))
            {
                return known;
            }
        }
        return System.Text.Encoding.Latin1.GetString(name);
    }

    private static bool Latin1Equals(ReadOnlySpan<byte> bytes, string text)
    {
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] != text[i])
            {
                return false;
            }
        }
        return true;
    }

    private static readonly string[] CommonRequestHeaders =
        ["content-type", "te", "user-agent", "accept", "accept-encoding", "grpc-timeout", "grpc-accept-encoding", "grpc-encoding", "content-length", "host"];

    /// <summary>The name in lower case (names that already are, which is every name an HTTP/2 client sends, are not copied).</summary>
    private static string LowerCase(string name)
    {
        foreach (var c in name)
        {
            if (char.IsAsciiLetterUpper(c))
            {
                return name.ToLowerInvariant();
            }
        }
        return name;
    }

    /// <summary>A request header the route removes, or sets (replacing what the client sent).</summary>
    private static bool IsReplaced(RouteModel route, string name)
    {
        foreach (var removed in route.RequestHeadersToRemove)
        {
            if (removed.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        foreach (var add in route.RequestHeadersToAdd)
        {
            if (!add.Append && add.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Relays the upstream response: status and headers, the body as it arrives, then trailers.</summary>
    private async Task RelayAsync(Http2Exchange exchange, RouteModel? route, Http2ClientStream upstream, Http2ResponseHead head)
    {
        var status = head.Status;
        exchange.Status = status;
        long? contentLength = null;
        foreach (var field in head.Fields)
        {
            if (SkippedResponseHeaders.Contains(field.Name))
            {
                continue;
            }
            if (contentLength is null && field.Name == "content-length" && long.TryParse(field.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                contentLength = n;
            }
            exchange.ResponseFields.Add(field);
        }
        if (route is not null)
        {
            ApplyResponseMutations(route, exchange);
        }
        if (exchange.IsGrpc)
        {
            // Trailers-only answers carry grpc-status in the headers.
            exchange.GrpcStatus = ParseGrpcStatus(head.Fields) ?? (status == 200 ? null : GrpcProtocol.StatusFromHttp(status));
        }
        if (head.EndStream)
        {
            await exchange.EndAsync(null).ConfigureAwait(false);
            return;
        }

        // A body of known small length gets a buffer its size: hundreds of concurrent streams each renting 16 KiB
        // outran the shared pool, and those buffers were most of the bytes allocated per request.
        var buffer = ArrayPool<byte>.Shared.Rent(contentLength is long length and >= 0 and < ResponseBufferSize
            ? (int)Math.Max(length, 1)
            : ResponseBufferSize);
        try
        {
            while (true)
            {
                int read;
                try
                {
                    var pending = upstream.ReadDataAsync(buffer, exchange.CallToken);
                    if (!pending.IsCompleted && !exchange.HeadSent)
                    {
                        // Nothing to send yet (a stream that has not produced its first message): headers go out now.
                        await exchange.SendHeadAsync().ConfigureAwait(false);
                    }
                    read = await pending.ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or Http2StreamException)
                {
                    await FailMidResponseAsync(exchange, ex).ConfigureAwait(false);
                    return;
                }
                if (read == 0)
                {
                    break;
                }
                if (upstream.BodyDrained && upstream.Trailers is not { Count: > 0 })
                {
                    // The upstream is done and has no trailers: this is the last DATA frame (no empty one after it).
                    await exchange.WriteLastBodyAsync(buffer.AsMemory(0, read), exchange.Stream.Aborted).ConfigureAwait(false);
                    return;
                }
                await exchange.WriteBodyAsync(buffer.AsMemory(0, read), exchange.Stream.Aborted).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var trailers = upstream.Trailers;
        if (trailers is { Count: > 0 } && exchange.IsGrpc && ParseGrpcStatus(trailers) is { } trailerStatus)
        {
            exchange.GrpcStatus = trailerStatus;
        }
        await exchange.EndAsync(trailers).ConfigureAwait(false);
    }

    /// <summary>
    /// The upstream failed after its headers arrived. Before anything was sent downstream the proxy still answers
    /// with its own error; a gRPC call already under way ends with the error in its trailers; anything else is reset.
    /// </summary>
    private async Task FailMidResponseAsync(Http2Exchange exchange, Exception failure)
    {
        if (exchange.ClientGone)
        {
            return;
        }
        var error = exchange.TimedOut
            ? ProxyError.UpstreamTimeout
            : Classify(failure);
        LogResponseFailed(_log, exchange.Cluster, error.Code(), failure.Message);
        if (!exchange.HeadSent)
        {
            await RespondErrorAsync(exchange, error).ConfigureAwait(false);
            return;
        }
        exchange.Error = error;
        if (exchange.IsGrpc)
        {
            var grpcStatus = error.GrpcStatus();
            exchange.GrpcStatus = grpcStatus;
            await exchange.EndAsync(
            [
                new(GrpcProtocol.StatusHeader, GrpcProtocol.StatusString(grpcStatus)),
                new(GrpcProtocol.MessageHeader, GrpcProtocol.EncodeMessage(error.Message())),
                new(ProxyErrors.HeaderName, error.Code()),
            ]).ConfigureAwait(false);
            return;
        }
        exchange.Abort();
    }

    private static void ApplyResponseMutations(RouteModel route, Http2Exchange exchange)
    {
        foreach (var name in route.ResponseHeadersToRemove)
        {
            exchange.RemoveResponseField(name);
        }
        foreach (var add in route.ResponseHeadersToAdd)
        {
            var name = LowerCase(add.Name);
            if (add.Append)
            {
                exchange.ResponseFields.Add(new(name, add.Value));
            }
            else
            {
                exchange.SetResponseField(name, add.Value);
            }
        }
    }

    private static int? ParseGrpcStatus(IReadOnlyList<Http2HeaderField> fields) =>
        Http2HeaderFields.Get(fields, GrpcProtocol.StatusHeader) is { } value
        && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var status)
            ? status
            : null;

    private static async Task RespondDirectAsync(Http2Exchange exchange, RouteModel route, int status)
    {
        exchange.Status = status;
        ApplyResponseMutations(route, exchange);
        if (exchange.IsGrpc && status != 200)
        {
            exchange.GrpcStatus = GrpcProtocol.StatusFromHttp(status);
        }
        if (route.DirectResponseBody is { Length: > 0 } body)
        {
            if (!exchange.ResponseFields.Exists(f => f.Name == "content-type"))
            {
                exchange.ResponseFields.Add(new("content-type", "text/plain; charset=utf-8"));
            }
            await exchange.WriteBodyAsync(System.Text.Encoding.UTF8.GetBytes(body), exchange.Stream.Aborted).ConfigureAwait(false);
        }
        await exchange.EndAsync(null).ConfigureAwait(false);
    }

    private static ValueTask RespondRedirectAsync(Http2Exchange exchange, RouteModel route, RedirectModel redirect)
    {
        exchange.Status = redirect.StatusCode;
        exchange.SetResponseField("location", RouteRewrites.RedirectLocation(route, redirect, exchange.Stream.Scheme is { Length: > 0 } scheme ? scheme : "http",
            exchange.Authority, exchange.Target));
        ApplyResponseMutations(route, exchange);
        if (exchange.IsGrpc)
        {
            exchange.GrpcStatus = GrpcProtocol.StatusFromHttp(redirect.StatusCode);
        }
        return exchange.EndAsync(null);
    }

    private static Task RespondErrorAsync(Http2Exchange exchange, ProxyError error) =>
        RespondErrorAsync(exchange, error, error.HttpStatus(), error.GrpcStatus(), null);

    /// <summary>
    /// The proxy's own answer: for gRPC calls HTTP 200 trailers-only with grpc-status and grpc-message, otherwise
    /// the HTTP status with a text body; both with x-trellis-error naming the error.
    /// </summary>
    private static async Task RespondErrorAsync(Http2Exchange exchange, ProxyError error, int httpStatus, int grpcStatus, string? detail = null)
    {
        var message = detail is null ? error.Message() : string.Concat(error.Message(), ": ", detail);
        exchange.Error = error;
        var fields = exchange.ResponseFields;
        fields.Clear();
        fields.Add(new(ProxyErrors.HeaderName, error.Code()));
        if (exchange.IsGrpc)
        {
            exchange.Status = 200;
            fields.Add(new("content-type", GrpcProtocol.ContentType));
            fields.Add(new(GrpcProtocol.StatusHeader, GrpcProtocol.StatusString(grpcStatus)));
            fields.Add(new(GrpcProtocol.MessageHeader, GrpcProtocol.EncodeMessage(message)));
            exchange.GrpcStatus = grpcStatus;
            await exchange.EndAsync(null).ConfigureAwait(false);
            return;
        }
        exchange.Status = httpStatus;
        fields.Add(new("content-type", "text/plain; charset=utf-8"));
        await exchange.WriteBodyAsync(System.Text.Encoding.UTF8.GetBytes(string.Concat(message, "\n")), exchange.Stream.Aborted).ConfigureAwait(false);
        await exchange.EndAsync(null).ConfigureAwait(false);
    }

    /// <summary>The value of cookie <paramref name="name"/> in a cookie field ("a=1; b=2"), or null.</summary>
    private static string? CookieValue(string? header, string name)
    {
        if (header is null)
        {
            return null;
        }
        foreach (var part in header.Split(';'))
        {
            var pair = part.AsSpan().Trim();
            var eq = pair.IndexOf('=');
            if (eq > 0 && pair[..eq].SequenceEqual(name))
            {
                return pair[(eq + 1)..].ToString();
            }
        }
        return null;
    }

    /// <summary>The key for ring hash / consistent choice: the route's hash header, cookie or the caller's address.</summary>
    private static ulong RequestHash(RouteModel? route, Http2Exchange exchange)
    {
        if (route is null)
        {
            return 0;
        }
        string? key = null;
        if (route.HashHeader is { } header)
        {
            key = exchange.Get(header);
        }
        else if (route.HashCookie is { } cookie)
        {
            key = CookieValue(exchange.Get("cookie"), cookie);
        }
        else if (route.HashSourceIp)
        {
            key = (exchange.Connection.Socket.RemoteEndPoint as IPEndPoint)?.Address.ToString();
        }
        if (key is null)
        {
            return 0;
        }
        // FNV-1a, 64 bit: stable across processes, so every proxy maps a key to the same ring position.
        var hash = 14695981039346656037UL;
        foreach (var c in key)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }
        return hash;
    }

    public ValueTask DisposeAsync() => _pools.DisposeAsync();

    /// <summary>One try's stream and response head (null when it failed) and cancellation, disposed together.</summary>
    private sealed class UpstreamAttempt(Http2ClientStream? stream, Http2ResponseHead? head, CancellationTokenSource cancel, ProxyError error, string? detail) : IDisposable
    {
        public Http2ClientStream? Stream { get; } = stream;
        public Http2ResponseHead? Head { get; } = head;
        public ProxyError Error { get; } = error;
        public string? Detail { get; } = detail;

        /// <summary>The reason shown to the client (why a TLS handshake failed), when there is one worth showing.</summary>
        public string? ClientDetail { get; init; }

        public void Dispose()
        {
            // Resets the stream if it is unfinished (the response was not relayed to its end).
            Stream?.Dispose();
            cancel.Dispose();
        }
    }

    [LoggerMessage(10, LogLevel.Debug, "cluster {Cluster}: try to {Endpoint} failed: {Error} ({Detail})")]
    private static partial void LogAttemptFailed(ILogger logger, string cluster, string endpoint, string error, string detail);

    [LoggerMessage(11, LogLevel.Debug, "cluster {Cluster}: upstream response broke off: {Error} ({Detail})")]
    private static partial void LogResponseFailed(ILogger logger, string cluster, string error, string detail);

    [LoggerMessage(12, LogLevel.Warning, "HTTP/2 request {Method} {Target} failed unexpectedly")]
    private static partial void LogUnexpected(ILogger logger, string method, string target, Exception exception);
}
