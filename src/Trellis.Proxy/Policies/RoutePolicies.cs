using System.Collections.Concurrent;
using Trellis.Proxy.Http;
using Trellis.Proxy.Model;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Policies;

/// <summary>What fault injection decided for one request.</summary>
internal readonly record struct FaultDecision(TimeSpan Delay, int AbortHttpStatus, int? AbortGrpcStatus)
{
    public static readonly FaultDecision None = new(TimeSpan.Zero, 0, null);

    public bool Aborts => AbortHttpStatus != 0;
}

/// <summary>
/// Per-route policies that are the same for every protocol: local rate limit (one token bucket per route, kept
/// across model swaps while the route's limit is unchanged), fault injection, retry decisions and backoff.
/// </summary>
/// <param name="random">Uniform in [0, 1), thread-safe (Random.Shared.NextDouble in the proxy; seeded in tests).</param>
internal sealed class RoutePolicies(TimeProvider time, Func<double> random)
{
    /// <summary>Status of an abort whose fault names only a grpc-status (gRPC callers answer with that instead).</summary>
    public const int DefaultAbortHttpStatus = 503;

    // Keyed by route name and limit (a value-equal record): a model swap that keeps both keeps the bucket and its
    // tokens; a changed limit starts a new, full bucket. Buckets of old limits stay (a few bytes each).
    private readonly ConcurrentDictionary<(string Route, RateLimitModel Limit), TokenBucket> _buckets = new();

    public TimeProvider Time { get; } = time;

    /// <summary>Takes a token from the route's bucket; false means answer 429 rate_limited.</summary>
    public bool TryAcquireRateLimit(RouteModel route)
    {
        if (route.RateLimit is not { } limit)
        {
            return true;
        }
        var bucket = _buckets.GetOrAdd((route.Name, limit), static (key, time) => new TokenBucket(key.Limit, time), Time);
        if (bucket.TryTake(Time.GetTimestamp()))
        {
            return true;
        }
        PolicyMetrics.RateLimited.Add(1, new KeyValuePair<string, object?>("route", route.Name));
        return false;
    }

    /// <summary>
    /// Rolls the route's fault percentages for one request: the delay and the abort are decided independently
    /// (a request may get both: delayed, then aborted). Percentages are 0-100 (fractions allowed); 0 never,
    /// 100 always. An abort with only a grpc-status answers HTTP <see cref="DefaultAbortHttpStatus"/> to non-gRPC
    /// callers.
    /// </summary>
    public FaultDecision DecideFault(RouteModel route)
    {
        if (route.Fault is not { } fault)
        {
            return FaultDecision.None;
        }
        var delay = fault.DelayPercent > 0 && fault.Delay > TimeSpan.Zero && random() * 100 < fault.DelayPercent;
        var abort = fault.AbortPercent > 0 && random() * 100 < fault.AbortPercent;
        if (delay)
        {
            PolicyMetrics.FaultsInjected.Add(1, new KeyValuePair<string, object?>("route", route.Name), new KeyValuePair<string, object?>("kind", "delay"));
        }
        if (abort)
        {
            PolicyMetrics.FaultsInjected.Add(1, new KeyValuePair<string, object?>("route", route.Name), new KeyValuePair<string, object?>("kind", "abort"));
        }
        if (!delay && !abort)
        {
            return FaultDecision.None;
        }
        return new FaultDecision(
            delay ? fault.Delay : TimeSpan.Zero,
            abort ? (fault.AbortHttpStatus > 0 ? fault.AbortHttpStatus : DefaultAbortHttpStatus) : 0,
            abort ? fault.AbortGrpcStatus : null);
    }

    /// <summary>
    /// Whether a failed try may be retried under the route's retry_on: <paramref name="status"/> is the upstream's
    /// HTTP status (0 when none arrived), <paramref name="grpcStatus"/> the grpc-status if the response had one,
    /// <paramref name="error"/> the proxy-side failure (connect failure, reset, timeout) or None.
    /// </summary>
    /// <remarks>
    /// <see cref="ProxyError.UpstreamTimeout"/> here is the route timeout, which covers the whole request with its
    /// retries and is never retriable. A per-try timeout is reported through the overload with
    /// <c>perTryTimeout: true</c> (or as <see cref="ProxyError.UpstreamReset"/>).
    /// </remarks>
    public static bool IsRetriable(RetryPolicyModel policy, int status, int? grpcStatus, ProxyError error) =>
        IsRetriable(policy, status, grpcStatus, error, perTryTimeout: false);

    /// <summary>
    /// As the four-argument form; <paramref name="perTryTimeout"/> tells that the try was abandoned at the retry
    /// policy's per-try timeout (no response).
    /// </summary>
    /// <remarks>
    /// retry_on tokens, as Envoy's router reads them:
    /// "5xx": any 5xx, or no response at all (reset, connect failure, malformed response, per-try timeout);
    /// "gateway-error": 502, 503, 504, or no response at all (Envoy counts a reset as a 5xx for both);
    /// "reset": no response at all (every kind of reset, connect failures included, and per-try timeouts);
    /// "connect-failure": the connection could not be made; "refused-stream": the upstream reset the stream before
    /// answering (reported as UpstreamReset with status 0); "retriable-4xx": 409;
    /// "cancelled" (1), "deadline-exceeded" (4), "internal" (13), "resource-exhausted" (8), "unavailable" (14):
    /// that grpc-status. Proxy-side refusals (circuit open, no healthy upstream, rate limited ...) and the route
    /// timeout are never retriable. Unknown tokens are ignored.
    /// </remarks>
    public static bool IsRetriable(RetryPolicyModel policy, int status, int? grpcStatus, ProxyError error, bool perTryTimeout)
    {
        bool noResponse;
        if (perTryTimeout)
        {
            noResponse = true;
            error = ProxyError.None;
        }
        else
        {
            switch (error)
            {
                case ProxyError.None:
                    noResponse = false;
                    break;
                case ProxyError.UpstreamConnectFailure:
                case ProxyError.UpstreamReset:
                case ProxyError.UpstreamProtocolError:
                    noResponse = true;
                    break;
                default:
                    return false; // the route timeout and the proxy's own refusals
            }
        }
        var retryOn = policy.RetryOn;
        for (var i = 0; i < retryOn.Count; i++)
        {
            var matched = retryOn[i] switch
            {
                "5xx" => noResponse || status is >= 500 and <= 599,
                "gateway-error" => noResponse || status is 502 or 503 or 504,
                "reset" => noResponse,
                "connect-failure" => error == ProxyError.UpstreamConnectFailure,
                "refused-stream" => error == ProxyError.UpstreamReset && status == 0,
                "retriable-4xx" => status == 409,
                "cancelled" => grpcStatus == 1,
                "deadline-exceeded" => grpcStatus == 4,
                "internal" => grpcStatus == 13,
                "resource-exhausted" => grpcStatus == 8,
                "unavailable" => grpcStatus == 14,
                _ => false,
            };
            if (matched)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Wait before retry number <paramref name="retry"/> (1-based): exponential from base, capped, full jitter.</summary>
    /// <remarks>A uniform draw in [0, min(BaseInterval x 2^(retry-1), MaxInterval)).</remarks>
    public TimeSpan Backoff(RetryPolicyModel policy, int retry)
    {
        var exponent = Math.Clamp(retry - 1, 0, 40);
        var cap = policy.BaseInterval.Ticks * Math.Pow(2, exponent);
        if (cap > policy.MaxInterval.Ticks)
        {
            cap = policy.MaxInterval.Ticks;
        }
        return cap <= 0 ? TimeSpan.Zero : TimeSpan.FromTicks((long)(random() * cap));
    }
}

/// <summary>
/// A token bucket: starts full with MaxTokens, gains TokensPerFill every FillInterval (whole intervals only, the
/// remainder carried), never above MaxTokens. Refilled lazily from the clock on each take; a tiny lock keeps the
/// count and the fill time consistent. A FillInterval of zero or less never limits (the compiler should have
/// refused it); MaxTokens of zero or less refuses everything.
/// </summary>
internal sealed class TokenBucket
{
    private readonly Lock _lock = new();
    private readonly long _max;
    private readonly long _perFill;
    private readonly long _interval;
    private long _tokens;
    private long _lastFill;

    public TokenBucket(RateLimitModel limit, TimeProvider time)
    {
        _max = limit.MaxTokens;
        _perFill = Math.Max(0, limit.TokensPerFill);
        _interval = limit.FillInterval <= TimeSpan.Zero ? 0 : (long)Math.Max(1, limit.FillInterval.TotalSeconds * time.TimestampFrequency);
        _tokens = Math.Max(0, _max);
        _lastFill = time.GetTimestamp();
    }

    public bool TryTake(long now)
    {
        if (_interval == 0)
        {
            return true;
        }
        lock (_lock)
        {
            var elapsed = now - _lastFill;
            if (elapsed >= _interval)
            {
                var fills = elapsed / _interval;
                if (_perFill > 0)
                {
                    // Fills needed to reach the top, computed first so a long idle time cannot overflow.
                    var toFull = (_max - _tokens + _perFill - 1) / _perFill;
                    _tokens = fills >= toFull ? _max : _tokens + (fills * _perFill);
                }
                _lastFill += fills * _interval;
            }
            if (_tokens <= 0)
            {
                return false;
            }
            _tokens--;
            return true;
        }
    }
}
