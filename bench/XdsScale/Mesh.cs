using System.Text;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Route.V3;
using Trellis.Xds;

namespace Trellis.Bench.XdsScale;

/// <summary>The configuration the benchmark applies, and the changes it measures.</summary>
internal static class Mesh
{
    public const int Port = 8080;

    public static string ClusterName(int service) => $"svc-{service}.default:{Port}";

    /// <summary><paramref name="services"/> Services with one HTTP port, each with <paramref name="endpoints"/> WorkloadEntries.</summary>
    public static string Initial(int services, int endpoints)
    {
        var sb = new StringBuilder();
        for (var s = 0; s < services; s++)
        {
            sb.Append($"""
                apiVersion: trellis.dev/v1alpha1
                kind: Service
                metadata: {"{"}name: svc-{s}, namespace: default{"}"}
                spec:
                  selector: {"{"}app: svc-{s}{"}"}
                  ports:
                  - {"{"}name: http, port: {Port}, protocol: http{"}"}
                ---

                """);
            for (var e = 0; e < endpoints; e++)
            {
                sb.Append($"""
                    apiVersion: trellis.dev/v1alpha1
                    kind: WorkloadEntry
                    metadata: {"{"}name: svc-{s}-{e}, namespace: default{"}"}
                    spec:
                      address: 127.0.{s % 250}.{e % 250 + 1}
                      ports: {"{"}http: {9000 + e}{"}"}
                      labels: {"{"}app: svc-{s}{"}"}
                    ---

                    """);
            }
        }
        return sb.ToString();
    }

    /// <summary>An HTTPRoute on svc-0 splitting between svc-1 and svc-2 (weights w and 100 - w).</summary>
    public static (string Yaml, Watch Watch) RouteChange(int weight)
    {
        var yaml = $"""
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {"{"}name: bench-split, namespace: default{"}"}
            spec:
              parentRefs: [{"{"}kind: Service, name: svc-0, port: {Port}{"}"}]
              rules:
              - backendRefs:
                - {"{"}kind: Service, name: svc-1, port: {Port}, weight: {weight}{"}"}
                - {"{"}kind: Service, name: svc-2, port: {Port}, weight: {100 - weight}{"}"}

            """;
        var target = ClusterName(1);
        var watch = new Watch(TypeUrls.RouteConfiguration, ClusterName(0), bytes =>
            RouteConfiguration.Parser.ParseFrom(bytes).VirtualHosts
                .SelectMany(v => v.Routes)
                .Any(r => r.Route_?.WeightedClusters?.Clusters.Any(c => c.Name == target && c.Weight == (uint)weight) == true));
        return (yaml, watch);
    }

    /// <summary>A WorkloadEntry of svc-3 whose address changes every time (127.0.250.N).</summary>
    public static (string Yaml, Watch Watch) EndpointChange(int n)
    {
        var address = $"127.0.250.{n % 250 + 1}";
        var yaml = $"""
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {"{"}name: bench-extra, namespace: default{"}"}
            spec:
              address: {address}
              ports: {"{"}http: 9100{"}"}
              labels: {"{"}app: svc-3{"}"}

            """;
        var watch = new Watch(TypeUrls.ClusterLoadAssignment, ClusterName(3), bytes =>
            ClusterLoadAssignment.Parser.ParseFrom(bytes).Endpoints
                .SelectMany(l => l.LbEndpoints)
                .Any(e => e.Endpoint?.Address?.SocketAddress?.Address == address));
        return (yaml, watch);
    }
}
