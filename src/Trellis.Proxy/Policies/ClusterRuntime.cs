using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Model;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Policies;

/// <summary>Which circuit-breaker limit refused something.</summary>
internal enum BreakerLimit { None, MaxConnections, MaxPendingRequests, MaxRequests, MaxRetries, RetryBudget }

/// <summary>One endpoint as the runtime sees it, for the admin /clusters page.</summary>
/// <param name="EjectedUntil">When an ejected endpoint returns (null when not ejected).</param>
/// <param name="TimesEjected">Ejections since the address appeared in the cluster.</param>
/// <param name="EwmaMs">The peak-EWMA latency estimate now (decayed for idle time); null before any response.</param>
internal sealed record EndpointStatus(
    IPEndPoint Address,
    EndpointHealthKind Health,
    int Priority,
    bool Ejected,
    DateTimeOffset? EjectedUntil,
    int TimesEjected,
    int Outstanding,
    double? EwmaMs,
    int Consecutive5xx,
    int ConsecutiveGatewayErrors);

/// <summary>
/// The long-lived state of one upstream cluster, kept across model swaps (the *State layer): the balancer, the
/// circuit-breaker counters, the retry budget and the per-endpoint statistics (outstanding requests, latency,
/// consecutive failures, ejections), keyed by endpoint address so they survive endpoint updates.
/// Every protocol path uses it the same way: TryEnterRequest, Pick, OnAttemptStart/OnAttemptEnd per try,
/// TryEnterRetry before a retry, ExitRequest at the end.
/// </summary>
/// <remarks>
/// Picks read immutable snapshots (<see cref="EndpointSet"/> per endpoint list, <see cref="PickView"/> per
/// ejection state) and take no lock; the one lock guards rebuilding those snapshots and outlier-detection changes,
/// which are rare. Outlier detection follows Envoy's consecutive-5xx and consecutive-gateway-failure detectors:
/// see <see cref="OnAttemptEnd"/> and <see cref="TryEject"/>.
/// </remarks>
internal sealed partial class ClusterRuntime : IDisposable
{
    /// <summary>Retries the retry budget always allows (Envoy's min_retry_concurrency default).</summary>
    public const int MinRetryConcurrency = 3;

    /// <summary>Longest ejection (Envoy's max_ejection_time default), unless the base ejection time is longer.</summary>
    public static readonly TimeSpan MaxEjectionTime = TimeSpan.FromSeconds(300);

    private readonly Lock _lock = new();
    private readonly ConcurrentDictionary<IPEndPoint, EndpointStats> _stats = new();
    private readonly Func<double> _random;
    private readonly ILogger? _log;
    private volatile ClusterModel _model;
    private volatile EndpointSet? _set;
    private volatile PickView? _view;
    private int _version;
    private int _ejectedCount;
    private long _nextExpiry = long.MaxValue;
    private ITimer? _timer;
    private TimeSpan _timerInterval;
    private long _neutralLatencyBits;
    private int _requests;
    private int _retries;
    private int _connections;
    private int _pending;
    private int _lastOverflow;

    public ClusterRuntime(ClusterModel model, TimeProvider time)
        : this(model, time, null)
    {
    }

    /// <param name="random">Uniform in [0, 1), thread-safe (default Random.Shared); tests pass a seeded one.</param>
    /// <param name="log">Logs ejections and returns.</param>
    public ClusterRuntime(ClusterModel model, TimeProvider time, Func<double>? random, ILogger? log = null)
    {
        _model = model;
        Time = time;
        _random = random ?? Random.Shared.NextDouble;
        _log = log;
        lock (_lock)
        {
            ConfigureOutlierTimer(model.OutlierDetection);
        }
    }

    public string Name => _model.Name;

    /// <summary>The cluster as of the latest model (endpoints, limits, balancer).</summary>
    public ClusterModel Model => _model;

    public TimeProvider Time { get; }

    /// <summary>Requests in flight (the circuit breaker's max_requests counts these).</summary>
    public int ActiveRequests => Volatile.Read(ref _requests);

    /// <summary>Retries in flight (max_retries or the retry budget counts these).</summary>
    public int ActiveRetries => Volatile.Read(ref _retries);

    /// <summary>Upstream connections open (max_connections counts these).</summary>
    public int ActiveConnections => Volatile.Read(ref _connections);

    /// <summary>Requests waiting for a connection (max_pending_requests counts these).</summary>
    public int PendingRequests => Volatile.Read(ref _pending);

    /// <summary>The limit that refused the latest refused request, retry or connection (None before any).</summary>
    public BreakerLimit LastOverflow => (BreakerLimit)Volatile.Read(ref _lastOverflow);

    /// <summary>Endpoints currently ejected by outlier detection.</summary>
    public int EjectedCount => Volatile.Read(ref _ejectedCount);

    /// <summary>
    /// Adopts a newer model of this cluster. Endpoint state is keyed by address, so endpoints that stay keep their
    /// counters and ejections; precomputed structures are rebuilt lazily, and only when the endpoint list differs.
    /// </summary>
    internal void Update(ClusterModel model)
    {
        if (ReferenceEquals(_model, model))
        {
            return;
        }
        lock (_lock)
        {
            var old = _model;
            _model = model;
            if (!Equals(old.OutlierDetection, model.OutlierDetection))
            {
                if (model.OutlierDetection is null)
                {
                    ClearEjectionsLocked();
                }
                ConfigureOutlierTimer(model.OutlierDetection);
                Interlocked.Increment(ref _version);
            }
        }
    }

    /// <summary>Starts a request; false when max_requests is reached (answer 503 circuit_open).</summary>
    public bool TryEnterRequest() => TryEnter(ref _requests, _model.CircuitBreakers.MaxRequests, BreakerLimit.MaxRequests, PolicyMetrics.RequestOverflows);

    public void ExitRequest() => Exit(ref _requests);

    /// <summary>Starts a retry; false when max_retries or the retry budget would be exceeded.</summary>
    public bool TryEnterRetry() => TryEnterRetry(out _);

    /// <summary>
    /// Starts a retry, telling which limit refused it. With a retry budget (RetryBudgetPercent set) the budget
    /// replaces max_retries, as in Envoy: retries in flight may reach budget% of the requests in flight, and at
    /// least <see cref="MinRetryConcurrency"/>. Without one, max_retries caps retries in flight.
    /// </summary>
    public bool TryEnterRetry(out BreakerLimit refusedBy)
    {
        var breakers = _model.CircuitBreakers;
        int limit;
        if (breakers.RetryBudgetPercent is double percent)
        {
            limit = Math.Max((int)(percent / 100.0 * ActiveRequests), MinRetryConcurrency);
            refusedBy = BreakerLimit.RetryBudget;
        }
        else
        {
            limit = breakers.MaxRetries;
            refusedBy = BreakerLimit.MaxRetries;
        }
        if (!TryEnter(ref _retries, limit, refusedBy, PolicyMetrics.RetryOverflows))
        {
            return false;
        }
        refusedBy = BreakerLimit.None;
        PolicyMetrics.AddCluster(PolicyMetrics.Retries, Name);
        return true;
    }

    public void ExitRetry() => Exit(ref _retries);

    /// <summary>Opens an upstream connection; false when max_connections is reached.</summary>
    public bool TryEnterConnection() => TryEnter(ref _connections, _model.CircuitBreakers.MaxConnections, BreakerLimit.MaxConnections, PolicyMetrics.ConnectionOverflows);

    public void ExitConnection() => Exit(ref _connections);

    /// <summary>Queues a request for a connection; false when max_pending_requests is reached.</summary>
    public bool TryEnterPending() => TryEnter(ref _pending, _model.CircuitBreakers.MaxPendingRequests, BreakerLimit.MaxPendingRequests, PolicyMetrics.PendingOverflows);

    public void ExitPending() => Exit(ref _pending);

    private bool TryEnter(ref int counter, int limit, BreakerLimit kind, System.Diagnostics.Metrics.Counter<long> overflows)
    {
        if (Interlocked.Increment(ref counter) > limit)
        {
            Interlocked.Decrement(ref counter);
            Volatile.Write(ref _lastOverflow, (int)kind);
            PolicyMetrics.AddCluster(overflows, Name);
            return false;
        }
        return true;
    }

    private static void Exit(ref int counter)
    {
        if (Interlocked.Decrement(ref counter) < 0)
        {
            Interlocked.Increment(ref counter);
        }
    }

    /// <summary>
    /// An endpoint for the next try: a usable one (healthy, lowest priority with any, not ejected) chosen by the
    /// cluster's balancer; <paramref name="hash"/> feeds ring hash; <paramref name="avoid"/> (the endpoint of the
    /// failed try) is skipped when another is usable. Null when none is usable (503 no_healthy_upstream).
    /// </summary>
    /// <remarks>
    /// Balancers: RoundRobin = smooth weighted round robin; LeastRequest = power of two choices (candidates drawn
    /// by weight, the one with fewer tries in flight wins); Random = weighted random; RingHash and Maglev = a
    /// consistent hash ring with points proportional to weight (a hash of 0 means "no key": a random point);
    /// Ewma = power of two choices on peak-EWMA latency x (tries in flight + 1). Ring hash ignores locality
    /// weights (as Envoy does); the others choose the locality first. See <see cref="PickView"/> for which
    /// endpoints are usable, priority failover and panic.
    /// </remarks>
    public EndpointModel? Pick(ulong hash, IPEndPoint? avoid)
    {
        var model = _model;
        var set = CurrentSet(model);
        SweepIfDue(set);
        var view = CurrentView(set);
        if (view.All is null)
        {
            return null;
        }
        var avoidIndex = set.IndexOf(avoid);
        if (avoidIndex >= 0 && !view.Usable[avoidIndex])
        {
            avoidIndex = -1;
        }
        var index = model.LoadBalancer is LoadBalancerKind.RingHash or LoadBalancerKind.Maglev
            ? PickFromRing(set, view, hash, avoidIndex)
            : PickBalanced(model.LoadBalancer, view, avoidIndex);
        return index < 0 ? null : set.Endpoints[index];
    }

    private int PickFromRing(EndpointSet set, PickView view, ulong hash, int avoidIndex)
    {
        var key = hash == 0 ? (ulong)(_random() * ulong.MaxValue) : HashRing.Mix(hash);
        var index = set.Ring(view.Priority).Find(key, view.Usable, avoidIndex);
        // The ring holds every healthy endpoint of the priority, and the usable ones are among them.
        return index >= 0 ? index : view.All!.Members[0];
    }

    private int PickBalanced(LoadBalancerKind kind, PickView view, int avoidIndex)
    {
        var group = view.All!;
        if (view.Localities is not null)
        {
            var locality = view.PickLocality(_random);
            // A locality whose only endpoint is the one to avoid: look in the whole priority instead.
            if (!(locality.Count == 1 && locality.Members[0] == avoidIndex && group.Count > 1))
            {
                group = locality;
            }
        }
        if (group.Count == 1)
        {
            return group.Members[0];
        }
        var avoid = group.PositionOf(avoidIndex);
        int position;
        switch (kind)
        {
            case LoadBalancerKind.RoundRobin:
                position = group.NextRoundRobin(avoid);
                break;
            case LoadBalancerKind.LeastRequest:
            case LoadBalancerKind.Ewma:
                position = PowerOfTwoChoices(view.Set, group, avoid, kind == LoadBalancerKind.Ewma);
                break;
            default:
                position = group.Sample(_random, avoid, -1);
                break;
        }
        return group.Members[position < 0 ? Math.Max(avoid, 0) : position];
    }

    private int PowerOfTwoChoices(EndpointSet set, EndpointGroup group, int avoid, bool latency)
    {
        var a = group.Sample(_random, avoid, -1);
        if (a < 0)
        {
            return -1;
        }
        var b = group.Sample(_random, avoid, a);
        if (b < 0)
        {
            return a;
        }
        var stats = set.Stats;
        var sa = stats[group.Members[a]];
        var sb = stats[group.Members[b]];
        if (!latency)
        {
            return sb.Outstanding < sa.Outstanding ? b : a;
        }
        var now = Time.GetTimestamp();
        var frequency = Time.TimestampFrequency;
        var neutral = BitConverter.Int64BitsToDouble(Volatile.Read(ref _neutralLatencyBits));
        // +1 µs keeps the cost meaningful (least request) before any latency is known.
        var costA = (sa.LatencyMs(now, frequency, neutral) + 0.001) * (sa.Outstanding + 1);
        var costB = (sb.LatencyMs(now, frequency, neutral) + 0.001) * (sb.Outstanding + 1);
        return costB < costA ? b : a;
    }

    /// <summary>A try to this endpoint starts (least request and EWMA count outstanding tries).</summary>
    public void OnAttemptStart(IPEndPoint endpoint) => Lookup(endpoint)?.AttemptStarted();

    /// <summary>
    /// A try ended: <paramref name="status"/> is the upstream's HTTP status, or 0 when there was no response
    /// (connect failure, reset, timeout: a gateway error for outlier detection).
    /// </summary>
    /// <remarks>
    /// Latency feeds the endpoint's EWMA only when a response arrived (a refused connection is fast and must not
    /// look attractive). A 5xx or no response extends the endpoint's consecutive-5xx run; 502, 503, 504 or no
    /// response extend its gateway-error run; any other status ends both. When a run reaches the cluster's
    /// Consecutive5xx or ConsecutiveGatewayErrors (0 = that detector is off) the endpoint is ejected.
    /// </remarks>
    public void OnAttemptEnd(IPEndPoint endpoint, int status, TimeSpan latency)
    {
        var stats = Lookup(endpoint);
        if (stats is null)
        {
            return;
        }
        stats.AttemptEnded();
        if (status != 0)
        {
            var ms = Math.Max(0, latency.TotalMilliseconds);
            stats.ObserveLatency(ms, Time.GetTimestamp(), Time.TimestampFrequency);
            UpdateNeutralLatency(ms);
        }
        var (fiveXx, gateway) = stats.RecordStatus(status);
        var od = _model.OutlierDetection;
        if (od is null || stats.Ejected || (fiveXx == 0 && gateway == 0))
        {
            return;
        }
        if (od.Consecutive5xx > 0 && fiveXx >= od.Consecutive5xx)
        {
            TryEject(stats, od, fiveXx, "consecutive 5xx");
        }
        else if (od.ConsecutiveGatewayErrors > 0 && gateway >= od.ConsecutiveGatewayErrors)
        {
            TryEject(stats, od, gateway, "consecutive gateway errors");
        }
    }

    private EndpointStats? Lookup(IPEndPoint endpoint)
    {
        var set = CurrentSet(_model);
        var i = set.IndexOf(endpoint);
        if (i >= 0)
        {
            return set.Stats[i];
        }
        // A try to an endpoint that left the cluster meanwhile: its stats stay until its last try ends.
        return _stats.TryGetValue(endpoint, out var stats) ? stats : null;
    }

    /// <summary>The latency a new endpoint is assumed to have: a running average over the cluster's responses.</summary>
    private void UpdateNeutralLatency(double ms)
    {
        while (true)
        {
            var bits = Volatile.Read(ref _neutralLatencyBits);
            var old = BitConverter.Int64BitsToDouble(bits);
            var updated = bits == 0 ? ms : (old * 0.9) + (ms * 0.1);
            if (Interlocked.CompareExchange(ref _neutralLatencyBits, BitConverter.DoubleToInt64Bits(updated), bits) == bits)
            {
                return;
            }
        }
    }

    /// <summary>The endpoints of the current model with their state, for the admin /clusters page.</summary>
    public IReadOnlyList<EndpointStatus> Describe()
    {
        var set = CurrentSet(_model);
        SweepIfDue(set);
        var now = Time.GetTimestamp();
        var utcNow = Time.GetUtcNow();
        var frequency = Time.TimestampFrequency;
        var result = new EndpointStatus[set.Count];
        for (var i = 0; i < set.Count; i++)
        {
            var e = set.Endpoints[i];
            var s = set.Stats[i];
            var ejected = s.Ejected;
            DateTimeOffset? until = ejected ? utcNow + TimeSpan.FromSeconds((s.EjectedUntil - now) / (double)frequency) : null;
            double? ewma = s.HasLatency ? s.LatencyMs(now, frequency, 0) : null;
            result[i] = new EndpointStatus(e.Address, e.Health, e.Priority, ejected, until, s.TimesEjected, s.Outstanding, ewma,
                s.Consecutive5xx, s.ConsecutiveGatewayErrors);
        }
        return result;
    }

    private EndpointSet CurrentSet(ClusterModel model)
    {
        var set = _set;
        if (set is not null && ReferenceEquals(set.Source, model.Endpoints))
        {
            return set;
        }
        lock (_lock)
        {
            set = _set;
            if (set is not null && ReferenceEquals(set.Source, model.Endpoints))
            {
                return set;
            }
            if (set is not null && set.SameEndpoints(model.Endpoints))
            {
                // A new model with the same endpoints: keep the set (and its rings), remember the new list.
                set.Source = model.Endpoints;
                return set;
            }
            set = new EndpointSet(model.Endpoints, _stats);
            foreach (var (address, stats) in _stats)
            {
                if (set.IndexOf(address) < 0 && stats.Outstanding == 0)
                {
                    _stats.TryRemove(address, out _);
                }
            }
            _set = set;
            RecountEjectionsLocked(set);
            Interlocked.Increment(ref _version);
            return set;
        }
    }

    private PickView CurrentView(EndpointSet set)
    {
        var view = _view;
        if (view is not null && ReferenceEquals(view.Set, set) && view.Version == Volatile.Read(ref _version))
        {
            return view;
        }
        lock (_lock)
        {
            view = _view;
            var version = _version;
            if (view is not null && ReferenceEquals(view.Set, set) && view.Version == version)
            {
                return view;
            }
            view = PickView.Build(set, version, _model.OutlierDetection is not null, _random);
            _view = view;
            return view;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _timer?.Dispose();
            _timer = null;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "cluster {Cluster}: endpoint {Endpoint} ejected for {Seconds} s after {Count} {Reason} (ejection number {Times})")]
    private static partial void LogEjected(ILogger log, string cluster, IPEndPoint endpoint, double seconds, int count, string reason, int times);

    [LoggerMessage(Level = LogLevel.Information, Message = "cluster {Cluster}: endpoint {Endpoint} returns after its ejection")]
    private static partial void LogReturned(ILogger log, string cluster, IPEndPoint endpoint);

    [LoggerMessage(Level = LogLevel.Information, Message = "cluster {Cluster}: endpoint {Endpoint} not ejected after {Count} {Reason}: max_ejection_percent {Percent} reached ({Ejected} of {Total} ejected)")]
    private static partial void LogEjectionCapped(ILogger log, string cluster, IPEndPoint endpoint, int count, string reason, int percent, int ejected, int total);
}

/// <summary>Every cluster's runtime, created on first use and refreshed to the model a request carries.</summary>
/// <remarks>
/// A connection keeps the model it started with, so requests on an old keep-alive connection may carry an older
/// model than the one just swapped in. With the <see cref="ModelState"/> given, a runtime always follows the
/// cluster of <see cref="ModelState.Current"/> (the newest) and never rolls back to an older one a request
/// carries: a request on an older model (told by reference: ProxyModel is not ordered) gets the runtime on the
/// newest endpoints and limits, or, when the newest model dropped the cluster, on the last ones it had. A request
/// whose model lacks the cluster gets null. The cost is one reference compare per call, plus one dictionary
/// lookup for requests on an older model. Without a ModelState (tests, tools) the runtime adopts whatever model
/// the caller passes when it differs from its own.
/// </remarks>
internal sealed class ClusterRuntimes : IDisposable
{
    private readonly ConcurrentDictionary<string, ClusterRuntime> _clusters = new(StringComparer.Ordinal);
    private readonly Lock _createLock = new();
    private readonly TimeProvider _time;
    private readonly ModelState? _state;
    private readonly Func<double>? _random;
    private readonly ILogger? _log;

    public ClusterRuntimes(TimeProvider time)
        : this(time, null)
    {
    }

    /// <param name="state">The proxy's model state: runtimes follow its newest model (see remarks).</param>
    /// <param name="random">Uniform in [0, 1), thread-safe; default Random.Shared.</param>
    public ClusterRuntimes(TimeProvider time, ModelState? state, Func<double>? random = null, ILogger? log = null)
    {
        _time = time;
        _state = state;
        _random = random;
        _log = log;
    }

    /// <summary>The runtime of a cluster of <paramref name="model"/>, or null when the model has no such cluster.</summary>
    public ClusterRuntime? Get(ProxyModel model, string cluster)
    {
        if (!model.Clusters.TryGetValue(cluster, out var c))
        {
            return null;
        }
        var target = c;
        var follow = true;
        if (_state is not null)
        {
            var current = _state.Current;
            if (!ReferenceEquals(current, model))
            {
                // The caller is on an older model: follow the newest one, or, if it dropped the cluster, keep the last state.
                follow = current.Clusters.TryGetValue(cluster, out var latest);
                target = latest ?? c;
            }
        }
        if (!_clusters.TryGetValue(cluster, out var runtime))
        {
            // Created under a lock: a runtime built and then discarded by a racing GetOrAdd would leave its timer running.
            lock (_createLock)
            {
                if (!_clusters.TryGetValue(cluster, out runtime))
                {
                    runtime = new ClusterRuntime(target, _time, _random, _log);
                    _clusters[cluster] = runtime;
                }
            }
        }
        if (follow && !ReferenceEquals(runtime.Model, target))
        {
            runtime.Update(target);
        }
        return runtime;
    }

    /// <summary>The runtime of a cluster if one was created (for the admin pages), without creating one.</summary>
    public ClusterRuntime? Find(string cluster) => _clusters.TryGetValue(cluster, out var runtime) ? runtime : null;

    public IEnumerable<ClusterRuntime> All => _clusters.Values;

    public void Dispose()
    {
        foreach (var runtime in _clusters.Values)
        {
            runtime.Dispose();
        }
    }
}
