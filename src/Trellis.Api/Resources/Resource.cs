namespace Trellis.Api.Resources;

/// <summary>Kubernetes-style object metadata shared by every resource.</summary>
public sealed record ObjectMeta
{
    public string Name { get; init; } = "";

    /// <summary>Namespace; "default" when not written. Empty for cluster-scoped kinds (MeshConfig, Cluster).</summary>
    public string Namespace { get; init; } = "default";

    public IReadOnlyDictionary<string, string>? Labels { get; init; }
    public IReadOnlyDictionary<string, string>? Annotations { get; init; }

    /// <summary>The store revision that last changed this resource (read-only; set by the control plane).</summary>
    public long? ResourceVersion { get; init; }

    /// <summary>When the control plane first stored this resource (read-only).</summary>
    public DateTimeOffset? CreationTimestamp { get; init; }
}

/// <summary>Read-only status written by the control plane.</summary>
public sealed record ResourceStatus
{
    /// <summary>True when the resource was accepted and is part of the served configuration.</summary>
    public bool Accepted { get; init; }

    /// <summary>Why it is or is not accepted, one line each.</summary>
    public IReadOnlyList<string>? Reasons { get; init; }

    /// <summary>Proxies that consume this resource and what they did with the version carrying it.</summary>
    public IReadOnlyList<ProxyResourceStatus>? Proxies { get; init; }
}

/// <summary>One proxy's verdict on the configuration that carries a resource.</summary>
public sealed record ProxyResourceStatus
{
    public string Node { get; init; } = "";

    /// <summary>ACKED, NACKED or PENDING.</summary>
    public string State { get; init; } = "";

    public string? Version { get; init; }

    /// <summary>The proxy's error text when it rejected the configuration.</summary>
    public string? Error { get; init; }
}

/// <summary>A mesh resource: apiVersion, kind, metadata and a typed spec.</summary>
public abstract record Resource
{
    public abstract string ApiVersion { get; }
    public abstract string Kind { get; }
    public ObjectMeta Metadata { get; init; } = new();
    public ResourceStatus? Status { get; init; }

    /// <summary>The spec object, for generic handling (serialization, diffing).</summary>
    public abstract object SpecObject { get; }
}

/// <summary>A resource with a spec of type <typeparamref name="TSpec"/>.</summary>
public abstract record Resource<TSpec> : Resource where TSpec : class, new()
{
    public TSpec Spec { get; init; } = new();
    public override object SpecObject => Spec;
}

/// <summary>API groups and versions.</summary>
public static class ApiVersions
{
    public const string Trellis = "trellis.dev/v1alpha1";
    public const string GatewayV1 = "gateway.networking.k8s.io/v1";
    public const string GatewayV1Alpha2 = "gateway.networking.k8s.io/v1alpha2";
}
