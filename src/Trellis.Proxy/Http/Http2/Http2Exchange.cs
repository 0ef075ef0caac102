using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Proxy.Listeners;

namespace Trellis.Proxy.Http.Http2;

/// <summary>
/// One HTTP/2 request on its way through the proxy: the downstream stream as routing sees it (method, authority,
/// target, fields), the call's deadline and cancellation, the response being built (status, fields; sent on the
/// first body write or at the end), and what the outcome was (for metrics and logs).
/// </summary>
internal sealed class Http2Exchange : IRequestHeaders, IDisposable
{
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _call;
    private readonly long _started;
    private ITimer? _deadline;
    private TimeSpan? _timeout;
    private volatile bool _timedOut;

    public Http2Exchange(Http2ServerStream stream, DownstreamConnection connection, TimeProvider time)
    {
        Stream = stream;
        Connection = connection;
        _time = time;
        _started = time.GetTimestamp();
        Method = stream.Method;
        Authority = stream.Authority;
        Target = stream.Path;
        IsGrpc = GrpcProtocol.IsGrpc(Get("content-type"));
        _call = CancellationTokenSource.CreateLinkedTokenSource(stream.Aborted);
    }

    public Http2ServerStream Stream { get; }

    /// <summary>The connection the request came in on.</summary>
    public DownstreamConnection Connection { get; }

    public string Method { get; }

    /// <summary>:authority (or the host field); empty when the client sent neither.</summary>
    public string Authority { get; }

    /// <summary>:path as received: path and query, not decoded.</summary>
    public string Target { get; }

    public bool IsGrpc { get; }

    /// <summary>The client reset the stream or went away.</summary>
    public bool ClientGone => Stream.Aborted.IsCancellationRequested;

    /// <summary>Cancelled when the client goes away or the call's deadline passes.</summary>
    public CancellationToken CallToken => _call.Token;

    /// <summary>The call's deadline passed (route timeout or grpc-timeout).</summary>
    public bool TimedOut => _timedOut;

    /// <summary>Time left before the deadline (null: no deadline).</summary>
    public TimeSpan? Remaining => _timeout - _time.GetElapsedTime(_started);

    /// <summary>The cluster the request went to ("" until chosen, and for the inbound target).</summary>
    public string Cluster { get; set; } = "";

    /// <summary>The proxy's own error, when the proxy answered instead of the upstream.</summary>
    public ProxyError Error { get; set; }

    /// <summary>grpc-status sent downstream (gRPC calls; null if the stream was reset).</summary>
    public int? GrpcStatus { get; set; }

    /// <summary>The response status (sent with the head).</summary>
    public int Status { get; set; } = 200;

    /// <summary>The response fields (lower-case names), sent with the head.</summary>
    public List<Http2HeaderField> ResponseFields { get; } = [];

    /// <summary>The response head went out: status and fields can no longer change.</summary>
    public bool HeadSent { get; private set; }

    /// <summary>The response was ended (end of stream sent).</summary>
    public bool Ended { get; private set; }

    /// <summary>Arms the call's deadline, counted from the request's arrival.</summary>
    public void StartDeadline(TimeSpan timeout)
    {
        _timeout = timeout;
        var left = timeout - _time.GetElapsedTime(_started);
        if (left <= TimeSpan.Zero)
        {
            OnDeadline();
            return;
        }
        _deadline = _time.CreateTimer(static s => ((Http2Exchange)s!).OnDeadline(), this, left, Timeout.InfiniteTimeSpan);
    }

    private void OnDeadline()
    {
        _timedOut = true;
        try
        {
            _call.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public string? Get(string name)
    {
        Span<byte> bytes = name.Length <= 128 ? stackalloc byte[name.Length] : new byte[name.Length];
        System.Text.Encoding.Latin1.GetBytes(name, bytes);
        return Stream.TryGetField(bytes, out var value) ? System.Text.Encoding.Latin1.GetString(value) : null;
    }

    /// <summary>Sets a response field, replacing any of that name.</summary>
    public void SetResponseField(string name, string value)
    {
        RemoveResponseField(name);
        ResponseFields.Add(new(name, value));
    }

    public void RemoveResponseField(string name)
    {
        // A loop, not RemoveAll with a lambda: route mutations run per request, and the lambda would capture name.
        for (var i = ResponseFields.Count - 1; i >= 0; i--)
        {
            if (ResponseFields[i].Name.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                ResponseFields.RemoveAt(i);
            }
        }
    }

    /// <summary>Sends the head now (a stream that has not produced its first message yet).</summary>
    public ValueTask SendHeadAsync()
    {
        HeadSent = true;
        return Stream.WriteResponseHeadAsync(Status, ResponseFields, endStream: false);
    }

    /// <summary>Sends body bytes (the head first, if it has not gone out).</summary>
    public async ValueTask WriteBodyAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (!HeadSent)
        {
            await SendHeadAsync().ConfigureAwait(false);
        }
        await Stream.WriteDataAsync(data, endStream: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends the last body bytes with the end of the stream (the head first, if it has not gone out).</summary>
    public async ValueTask WriteLastBodyAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Ended = true;
        if (!HeadSent)
        {
            await SendHeadAsync().ConfigureAwait(false);
        }
        await Stream.WriteDataAsync(data, endStream: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ends the response: with trailers when there are any, else with an empty end of stream (or a head-only response).</summary>
    public async ValueTask EndAsync(IReadOnlyList<Http2HeaderField>? trailers)
    {
        Ended = true;
        if (!HeadSent)
        {
            HeadSent = true;
            var hasTrailers = trailers is { Count: > 0 };
            await Stream.WriteResponseHeadAsync(Status, ResponseFields, endStream: !hasTrailers).ConfigureAwait(false);
            if (hasTrailers)
            {
                await Stream.WriteTrailersAsync(trailers!).ConfigureAwait(false);
            }
            return;
        }
        if (trailers is { Count: > 0 })
        {
            await Stream.WriteTrailersAsync(trailers).ConfigureAwait(false);
            return;
        }
        await Stream.WriteDataAsync(ReadOnlyMemory<byte>.Empty, endStream: true, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Resets the stream: the response cannot be finished properly.</summary>
    public void Abort() => Stream.Reset(Http2ErrorCode.InternalError);

    public void Dispose()
    {
        _deadline?.Dispose();
        _call.Dispose();
    }
}
