using System.Collections.Frozen;
using System.Net;

namespace Trellis.Proxy.Model;

/// <summary>
/// The proxy's whole configuration, compiled from xDS into plain immutable types (no protobuf types past the
/// XdsClient's translation). Every connection reads <see cref="ModelState.Current"/> once and keeps that model.
/// </summary>
public sealed class ProxyModel
{
    public static readonly ProxyModel Empty = new("", FrozenDictionary<string, ListenerModel>.Empty, FrozenDictionary<string, RouteTable>.Empty, FrozenDictionary<string, ClusterModel>.Empty);

    public ProxyModel(string version, FrozenDictionary<string, ListenerModel> listeners, FrozenDictionary<string, RouteTable> routes, FrozenDictionary<string, ClusterModel> clusters)
    {
        Version = version;
        Listeners = listeners;
        Routes = routes;
        Clusters = clusters;
    }

    /// <summary>Changes with every applied update (versions of the parts it was built from).</summary>
    public string Version { get; }
    public FrozenDictionary<string, ListenerModel> Listeners { get; }
    public FrozenDictionary<string, RouteTable> Routes { get; }
    public FrozenDictionary<string, ClusterModel> Clusters { get; }
}

public enum TrafficDirectionKind { Unspecified, Inbound, Outbound }

/// <summary>A socket listener: where it binds and, per original destination port, what carries the traffic.</summary>
public sealed record ListenerModel(
    string Name,
    IPEndPoint Address,
    TrafficDirectionKind Direction,
    IReadOnlyList<FilterChainModel> Chains,
    FilterChainModel? DefaultChain);

/// <summary>Traffic on a listener: matched on the original destination port (null = any), handled as HTTP or TCP.</summary>
/// <param name="RouteTableName">HTTP: the route table (RDS name, or the inline table's name, also in ProxyModel.Routes).</param>
/// <param name="TcpCluster">TCP: the cluster to forward to.</param>
public sealed record FilterChainModel(string Name, int? DestinationPort, string? RouteTableName, string? TcpCluster)
{
    public bool IsHttp => RouteTableName is not null;
}

/// <summary>Virtual hosts selected by Host / :authority.</summary>
public sealed record RouteTable(string Name, IReadOnlyList<VirtualHostModel> VirtualHosts)
{
    /// <summary>Domain lookup built once per table (exact names in a frozen dictionary, then wildcards).</summary>
    internal Http.VirtualHostIndex Index { get; } = new(VirtualHosts);
}

public sealed record VirtualHostModel(string Name, IReadOnlyList<string> Domains, IReadOnlyList<RouteModel> Routes);

public enum PathMatchKind { Prefix, Exact, Regex }

public sealed record HeaderMatchModel(string Name, string? Exact, string? Regex, bool Invert)
{
    /// <summary>The whole-value regex, compiled once (non-backtracking: linear time on any input).</summary>
    internal System.Text.RegularExpressions.Regex? CompiledRegex { get; } = Regex is null ? null : Http.Router.CompileWhole(Regex);
}

public sealed record RouteMatchModel(PathMatchKind PathKind, string Path, IReadOnlyList<HeaderMatchModel> Headers, IReadOnlyList<HeaderMatchModel> QueryParameters)
{
    internal System.Text.RegularExpressions.Regex? CompiledPath { get; } = PathKind == PathMatchKind.Regex ? Http.Router.CompileWhole(Path) : null;
}

public sealed record WeightedClusterModel(string Cluster, int Weight);

public sealed record RetryPolicyModel(IReadOnlyList<string> RetryOn, int NumRetries, TimeSpan? PerTryTimeout, TimeSpan BaseInterval, TimeSpan MaxInterval);

public sealed record HeaderMutation(string Name, string Value, bool Append);

public sealed record RedirectModel(string? Scheme, string? Host, int? Port, string? Path, string? PrefixRewrite, int StatusCode);

/// <summary>One route: a match and what to do (forward to clusters, redirect, or answer directly).</summary>
public sealed record RouteModel(
    string Name,
    RouteMatchModel Match,
    IReadOnlyList<WeightedClusterModel> Clusters,
    TimeSpan? Timeout,
    RetryPolicyModel? Retry,
    string? PrefixRewrite,
    string? HostRewrite,
    IReadOnlyList<HeaderMutation> RequestHeadersToAdd,
    IReadOnlyList<string> RequestHeadersToRemove,
    IReadOnlyList<HeaderMutation> ResponseHeadersToAdd,
    IReadOnlyList<string> ResponseHeadersToRemove,
    RedirectModel? Redirect,
    int? DirectResponseStatus,
    string? HashHeader)
{
    /// <summary>Ring hash on this cookie (when <see cref="HashHeader"/> is not set).</summary>
    public string? HashCookie { get; init; }

    /// <summary>Ring hash on the caller's IP address (when neither header nor cookie is set).</summary>
    public bool HashSourceIp { get; init; }

    /// <summary>Delays or aborts injected on this route (the fault filter's per-route config).</summary>
    public FaultModel? Fault { get; init; }

    /// <summary>A token bucket shared by every request on this route in this proxy (local rate limit).</summary>
    public RateLimitModel? RateLimit { get; init; }

    /// <summary>Body text of a direct response.</summary>
    public string? DirectResponseBody { get; init; }
}

/// <summary>Fault injection: each request is delayed with <paramref name="DelayPercent"/> chance and aborted with <paramref name="AbortPercent"/> chance.</summary>
/// <param name="AbortGrpcStatus">For gRPC requests, the grpc-status to answer with instead of the HTTP status.</param>
public sealed record FaultModel(double DelayPercent, TimeSpan Delay, double AbortPercent, int AbortHttpStatus, int? AbortGrpcStatus);

/// <summary>Local rate limit: a bucket of <paramref name="MaxTokens"/> refilled by <paramref name="TokensPerFill"/> every <paramref name="FillInterval"/>.</summary>
public sealed record RateLimitModel(int MaxTokens, int TokensPerFill, TimeSpan FillInterval);

public enum LoadBalancerKind { RoundRobin, LeastRequest, Random, RingHash, Maglev, Ewma }

public enum EndpointHealthKind { Healthy, Unhealthy, Draining, Unknown }

/// <summary>One upstream instance. Priority 0 is preferred; higher priorities serve only when lower ones have no healthy endpoint.</summary>
public sealed record EndpointModel(IPEndPoint Address, int Weight, EndpointHealthKind Health, int Priority, string Region, string Zone, int LocalityWeight);

public sealed record CircuitBreakerModel(int MaxConnections, int MaxPendingRequests, int MaxRequests, int MaxRetries, double? RetryBudgetPercent);

public sealed record OutlierDetectionModel(int Consecutive5xx, int ConsecutiveGatewayErrors, TimeSpan Interval, TimeSpan BaseEjectionTime, int MaxEjectionPercent);

/// <summary>An upstream cluster with its endpoints (from EDS or inline) and its policies.</summary>
public sealed record ClusterModel(
    string Name,
    LoadBalancerKind LoadBalancer,
    TimeSpan ConnectTimeout,
    IReadOnlyList<EndpointModel> Endpoints,
    CircuitBreakerModel CircuitBreakers,
    OutlierDetectionModel? OutlierDetection)
{
    /// <summary>Upstream connections are closed after this many requests (null: no limit).</summary>
    public int? MaxRequestsPerConnection { get; init; }

    /// <summary>Idle upstream connections are closed after this long.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>TLS origination to the endpoints (Cluster.transport_socket); null: plaintext.</summary>
    public UpstreamTlsModel? Tls { get; init; }
}

/// <summary>
/// The proxy's current model, swapped whole. Readers take <see cref="Current"/> once per connection or request;
/// in-flight work finishes on the model it started with.
/// </summary>
public sealed class ModelState
{
    private volatile ProxyModel _current = ProxyModel.Empty;
    private volatile TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ProxyModel Current => _current;

    /// <summary>True once a complete configuration (listeners, their routes, clusters and endpoints) was applied.</summary>
    public bool IsReady { get; private set; }

    /// <summary>Completes at the next swap.</summary>
    public Task Changed => _changed.Task;

    public void Swap(ProxyModel model, bool complete)
    {
        _current = model;
        IsReady |= complete;
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }
}
