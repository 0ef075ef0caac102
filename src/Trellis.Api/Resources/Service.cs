namespace Trellis.Api.Resources;

/// <summary>A logical service: a label selector over instances and the ports it serves.</summary>
public sealed record Service : Resource<ServiceSpec>
{
    public override string ApiVersion => ApiVersions.Trellis;
    public override string Kind => "Service";
}

public sealed record ServiceSpec
{
    /// <summary>Matches WorkloadEntry, registration and pod labels. Empty selects nothing.</summary>
    public IReadOnlyDictionary<string, string>? Selector { get; init; }
    public IReadOnlyList<ServicePort> Ports { get; init; } = [];
}

public sealed record ServicePort
{
    public string Name { get; init; } = "";
    public int Port { get; init; }

    /// <summary>Instance port when no per-instance mapping exists; defaults to <see cref="Port"/>.</summary>
    public int? TargetPort { get; init; }
    public ServiceProtocol Protocol { get; init; } = ServiceProtocol.Http;
}

public enum ServiceProtocol { Http, Http2, Grpc, Tcp }
