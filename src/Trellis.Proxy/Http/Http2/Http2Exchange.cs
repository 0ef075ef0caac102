using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Trellis.Proxy.Listeners;

namespace Trellis.Proxy.Http.Http2;

/// <summary>
/// One HTTP/2 request on its way through the proxy: the downstream request as routing sees it (method, authority,
/// target, headers), the call's deadline and cancellation, and what the outcome was (for metrics and logs).
/// </summary>
internal sealed class Http2Exchange : IRequestHeaders, IDisposable
{
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _call;
    private readonly long _started;
    private ITimer? _deadline;
    private TimeSpan? _timeout;
    private volatile bool _timedOut;

    public Http2Exchange(HttpContext http, TimeProvider time)
    {
        Http = http;
        _time = time;
        _started = time.GetTimestamp();
        Connection = http.Features.Get<IDownstreamConnectionFeature>()?.Connection;
        var request = http.Request;
        Method = request.Method;
        Authority = request.Headers.Host.ToString();
        Target = http.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } raw ? raw : request.Path.Value + request.QueryString.Value;
        IsGrpc = GrpcProtocol.IsGrpc(request.ContentType);
        _call = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
    }

    public HttpContext Http { get; }

    /// <summary>The handed-over connection the request came in on (null only if Kestrel lost the feature).</summary>
    public DownstreamConnection? Connection { get; }

    public string Method { get; }

    /// <summary>:authority (Kestrel keeps it as the Host header); empty when the client sent none.</summary>
    public string Authority { get; }

    /// <summary>:path as received: path and query, not decoded.</summary>
    public string Target { get; }

    public bool IsGrpc { get; }

    /// <summary>The client reset the stream or went away.</summary>
    public bool ClientGone => Http.RequestAborted.IsCancellationRequested;

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

    public string? Get(string name) =>
        Http.Request.Headers.TryGetValue(name, out var values) && values.Count > 0 ? values[0] : null;

    public void Dispose()
    {
        _deadline?.Dispose();
        _call.Dispose();
    }
}
