namespace Trellis.Api.Resources;

/// <summary>Reference from a policy to what it applies to (a Service, in this version).</summary>
public sealed record PolicyTargetReference
{
    public string? Group { get; init; }
    public string Kind { get; init; } = "Service";
    public string Name { get; init; } = "";

    /// <summary>Applies to one port of the target only, when set.</summary>
    public int? Port { get; init; }
}

/// <summary>Resilience and load balancing for calls to a Service.</summary>
public sealed record TrafficPolicy : Resource<TrafficPolicySpec>
{
    public override string ApiVersion => ApiVersions.Trellis;
    public override string Kind => "TrafficPolicy";
}

public sealed record TrafficPolicySpec
{
    public PolicyTargetReference TargetRef { get; init; } = new();
    public LoadBalancerSettings? LoadBalancer { get; init; }
    public ConnectionPoolSettings? ConnectionPool { get; init; }
    public OutlierDetectionSettings? OutlierDetection { get; init; }
    public RetrySettings? Retries { get; init; }

    /// <summary>Default whole-request timeout for routes to the target that set none.</summary>
    public TimeSpan? Timeout { get; init; }
    public FailoverSettings? Failover { get; init; }

    /// <summary>TLS from the calling sidecars to the target's instances, when they serve TLS themselves (Istio's DestinationRule tls).</summary>
    public UpstreamTlsSettings? Tls { get; init; }
}

/// <summary>DISABLE: plaintext (the default). SIMPLE: the sidecar originates TLS and checks the server's certificate.</summary>
public enum UpstreamTlsMode { Disable, Simple }

/// <summary>How sidecars reach the target's instances over TLS (mode SIMPLE); Istio's field names.</summary>
public sealed record UpstreamTlsSettings
{
    public UpstreamTlsMode Mode { get; init; } = UpstreamTlsMode.Disable;

    /// <summary>Server name sent (SNI) and checked against the certificate; unset: no SNI, the instance's IP address is checked.</summary>
    public string? Sni { get; init; }

    /// <summary>PEM certificates of the CA(s) that sign the instances' certificates; unset: the system trust store.</summary>
    public string? CaCertificates { get; init; }

    /// <summary>Skip verifying the server's certificate (encrypted, not authenticated). Conflicts with caCertificates.</summary>
    public bool InsecureSkipVerify { get; init; }
}

public enum LoadBalancerAlgorithm { RoundRobin, LeastRequest, Random, RingHash, Ewma }

public sealed record LoadBalancerSettings
{
    public LoadBalancerAlgorithm Algorithm { get; init; } = LoadBalancerAlgorithm.RoundRobin;

    /// <summary>What RingHash hashes on.</summary>
    public HashOn? HashOn { get; init; }
}

public sealed record HashOn
{
    public string? Header { get; init; }
    public string? Cookie { get; init; }
    public bool? SourceIp { get; init; }
}

public sealed record ConnectionPoolSettings
{
    public int? MaxConnections { get; init; }
    public int? MaxPendingRequests { get; init; }
    public int? MaxRequests { get; init; }
    public int? MaxRequestsPerConnection { get; init; }
    public int? MaxRetries { get; init; }

    /// <summary>Idle upstream connections are closed after this long.</summary>
    public TimeSpan? IdleTimeout { get; init; }
}

public sealed record OutlierDetectionSettings
{
    public int? Consecutive5xx { get; init; }
    public int? ConsecutiveGatewayErrors { get; init; }
    public TimeSpan? Interval { get; init; }
    public TimeSpan? BaseEjectionTime { get; init; }
    public int? MaxEjectionPercent { get; init; }
}

public sealed record RetrySettings
{
    public int Attempts { get; init; } = 1;
    public TimeSpan? PerTryTimeout { get; init; }

    /// <summary>connect-failure, refused-stream, reset, 5xx, gateway-error, retriable-4xx, and gRPC: cancelled, deadline-exceeded, internal, resource-exhausted, unavailable.</summary>
    public IReadOnlyList<string>? RetryOn { get; init; }

    /// <summary>Retries may add at most this percentage of the active requests.</summary>
    public int? BudgetPercent { get; init; }
    public TimeSpan? BackoffBaseInterval { get; init; }
    public TimeSpan? BackoffMaxInterval { get; init; }
}

public sealed record FailoverSettings
{
    /// <summary>Locality levels to stay within, most preferred first: zone, region, cluster.</summary>
    public IReadOnlyList<string> Order { get; init; } = [];
}

/// <summary>Mesh-wide settings. Cluster-scoped: one per mesh, usually named "mesh".</summary>
public sealed record MeshConfig : Resource<MeshConfigSpec>
{
    public override string ApiVersion => ApiVersions.Trellis;
    public override string Kind => "MeshConfig";
}

public enum AccessDefault { Allow, Deny }

public sealed record MeshConfigSpec
{
    public string TrustDomain { get; init; } = "cluster.local";
    public AccessDefault DefaultAccess { get; init; } = AccessDefault.Allow;
    public TimeSpan? WorkloadCertTtl { get; init; }
}
