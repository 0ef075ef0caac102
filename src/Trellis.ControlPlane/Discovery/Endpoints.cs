using Trellis.Api.Resources;

namespace Trellis.ControlPlane.Discovery;

/// <summary>One instance of a service port, wherever it came from.</summary>
/// <param name="Source">Where it came from: "WorkloadEntry/ns/name" or "Registration/id".</param>
internal sealed record ServiceEndpoint(
    string Address,
    int Port,
    string Cluster,
    string Region,
    string Zone,
    string SubZone,
    string? ServiceAccount,
    EndpointHealth Health,
    int Weight,
    string Source);

/// <summary>A VM or bare-metal instance registered through the API, kept alive by heartbeats.</summary>
internal sealed record Registration
{
    public string Id { get; init; } = "";
    public string Service { get; init; } = "";
    public string Namespace { get; init; } = "default";
    public string Address { get; init; } = "";

    /// <summary>Service port (name or number) to instance port. Empty: every service port at its target port.</summary>
    public Dictionary<string, int> Ports { get; init; } = [];
    public Dictionary<string, string> Labels { get; init; } = [];
    public string? ServiceAccount { get; init; }
    public string? Region { get; init; }
    public string? Zone { get; init; }
    public string? Cluster { get; init; }
    public int Weight { get; init; } = 1;
    public bool Draining { get; init; }
    public TimeSpan Ttl { get; init; }
    public DateTimeOffset RegisteredAt { get; init; }
    public DateTimeOffset LastHeartbeat { get; init; }

    /// <summary>Healthy until the TTL passes without a heartbeat; draining when the instance said so.</summary>
    public EndpointHealth HealthAt(DateTimeOffset now) =>
        Draining ? EndpointHealth.Draining : now - LastHeartbeat > Ttl ? EndpointHealth.Unhealthy : EndpointHealth.Healthy;
}
