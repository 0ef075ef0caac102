namespace Trellis.Api.Resources;

/// <summary>One instance on a VM or bare metal.</summary>
public sealed record WorkloadEntry : Resource<WorkloadEntrySpec>
{
    public override string ApiVersion => ApiVersions.Trellis;
    public override string Kind => "WorkloadEntry";
}

public sealed record WorkloadEntrySpec
{
    /// <summary>IP literal (v4 or v6).</summary>
    public string Address { get; init; } = "";

    /// <summary>Service port name to instance port.</summary>
    public IReadOnlyDictionary<string, int>? Ports { get; init; }
    public IReadOnlyDictionary<string, string>? Labels { get; init; }
    public string? ServiceAccount { get; init; }
    public Locality? Locality { get; init; }

    /// <summary>Name of the cluster the instance runs in; the control plane's cluster when empty.</summary>
    public string? Cluster { get; init; }
    public int Weight { get; init; } = 1;
    public EndpointHealth Health { get; init; } = EndpointHealth.Healthy;
}

public sealed record Locality
{
    public string? Region { get; init; }
    public string? Zone { get; init; }
    public string? SubZone { get; init; }
}

public enum EndpointHealth { Healthy, Unhealthy, Draining }
