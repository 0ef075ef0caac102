using System.Diagnostics.Metrics;

namespace Trellis.Proxy.Telemetry;

/// <summary>
/// Counters of the load-balancing and resilience policies, incremented where each decision is made (circuit
/// breakers and retries in ClusterRuntime, ejections in its outlier detector, rate limits and faults in
/// RoutePolicies). One tag each: the cluster or the route.
/// </summary>
internal static class PolicyMetrics
{
    public const string MeterName = "Trellis.Proxy";

    public static readonly Meter Meter = new(MeterName);

    /// <summary>Retries started (tag cluster).</summary>
    public static readonly Counter<long> Retries = Meter.CreateCounter<long>(
        "trellis_proxy_upstream_rq_retry_total", description: "Retries started, per cluster");

    /// <summary>Retries refused by max_retries or the retry budget (tag cluster).</summary>
    public static readonly Counter<long> RetryOverflows = Meter.CreateCounter<long>(
        "trellis_proxy_upstream_rq_retry_overflow_total", description: "Retries refused by the circuit breaker's max_retries or retry budget, per cluster");

    /// <summary>Connections refused by max_connections (tag cluster).</summary>
    public static readonly Counter<long> ConnectionOverflows = Meter.CreateCounter<long>(
        "trellis_proxy_upstream_cx_overflow_total", description: "Upstream connections refused by the circuit breaker's max_connections, per cluster");

    /// <summary>Requests refused by max_requests (tag cluster).</summary>
    public static readonly Counter<long> RequestOverflows = Meter.CreateCounter<long>(
        "trellis_proxy_upstream_rq_overflow_total", description: "Requests refused by the circuit breaker's max_requests, per cluster");

    /// <summary>Requests refused by max_pending_requests (tag cluster).</summary>
    public static readonly Counter<long> PendingOverflows = Meter.CreateCounter<long>(
        "trellis_proxy_upstream_rq_pending_overflow_total", description: "Requests refused by the circuit breaker's max_pending_requests, per cluster");

    /// <summary>Endpoints ejected by outlier detection (tag cluster).</summary>
    public static readonly Counter<long> OutlierEjections = Meter.CreateCounter<long>(
        "trellis_proxy_outlier_ejections_total", description: "Endpoints ejected by outlier detection, per cluster");

    /// <summary>Requests answered 429 by the route's local rate limit (tag route).</summary>
    public static readonly Counter<long> RateLimited = Meter.CreateCounter<long>(
        "trellis_proxy_ratelimited_total", description: "Requests refused by the route's local rate limit, per route");

    /// <summary>Faults injected (tags route, kind = delay | abort).</summary>
    public static readonly Counter<long> FaultsInjected = Meter.CreateCounter<long>(
        "trellis_proxy_faults_injected_total", description: "Delays and aborts injected by fault injection, per route and kind");

    public static void AddCluster(Counter<long> counter, string cluster) => counter.Add(1, new KeyValuePair<string, object?>("cluster", cluster));
}
