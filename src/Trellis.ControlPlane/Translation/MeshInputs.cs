using Trellis.Api.Resources;
using Trellis.ControlPlane.Discovery;

namespace Trellis.ControlPlane.Translation;

/// <summary>Everything translation reads: the accepted resources and the discovered instances, at one moment.</summary>
internal sealed record MeshInputs(
    IReadOnlyList<Service> Services,
    IReadOnlyList<WorkloadEntry> WorkloadEntries,
    IReadOnlyList<HttpRoute> HttpRoutes,
    IReadOnlyList<GrpcRoute> GrpcRoutes,
    IReadOnlyList<TcpRoute> TcpRoutes,
    IReadOnlyList<TrafficPolicy> TrafficPolicies,
    MeshConfig? Mesh,
    IReadOnlyList<Registration> Registrations,
    string LocalCluster,
    DateTimeOffset Now)
{
    public IReadOnlyList<FaultInjection> FaultInjections { get; init; } = [];
    public IReadOnlyList<RateLimit> RateLimits { get; init; } = [];

    public static MeshInputs Empty(string localCluster, DateTimeOffset now) => new([], [], [], [], [], [], null, [], localCluster, now);
}

/// <summary>Names of the xDS resources built for a service port. Users see them in proxy-status and client targets.</summary>
internal static class XdsNames
{
    /// <summary>Cluster, endpoint set and route configuration of one service port: "greeter.default:50051".</summary>
    public static string ServicePort(string service, string ns, int port) => $"{service}.{ns}:{port}";

    /// <summary>Listener names a proxyless client may dial for a port (xds:///greeter, xds:///greeter.default:50051, ...).</summary>
    public static IEnumerable<string> ListenerNames(string service, string ns, int port, bool firstPort)
    {
        yield return $"{service}.{ns}:{port}";
        yield return $"{service}.{ns}.svc.cluster.local:{port}";
        if (ns == "default")
        {
            yield return $"{service}:{port}";
        }
        if (firstPort)
        {
            yield return $"{service}.{ns}";
            if (ns == "default")
            {
                yield return service;
            }
        }
    }

    public static string Key(Resource r) => r.Metadata.Namespace.Length == 0 ? $"{r.Kind}/{r.Metadata.Name}" : $"{r.Kind}/{r.Metadata.Namespace}/{r.Metadata.Name}";
}
