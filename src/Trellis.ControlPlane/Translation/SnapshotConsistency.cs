using Envoy.Config.Cluster.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Trellis.ControlPlane.XdsServer;
using Trellis.Xds;

namespace Trellis.ControlPlane.Translation;

/// <summary>Checks that a snapshot names nothing it does not hold: every RDS name, routed cluster and EDS name.</summary>
internal static class SnapshotConsistency
{
    public static IReadOnlyList<string> Check(XdsSnapshot snapshot)
    {
        var problems = new List<string>();
        var routes = snapshot.Get(TypeUrls.RouteConfiguration).Items;
        var clusters = snapshot.Get(TypeUrls.Cluster).Items;
        var endpoints = snapshot.Get(TypeUrls.ClusterLoadAssignment).Items;
        var routeConfigs = new List<RouteConfiguration>(routes.Values.Select(r => r.Any.Unpack<RouteConfiguration>()));
        foreach (var l in snapshot.Get(TypeUrls.Listener).Items.Values)
        {
            var listener = l.Any.Unpack<Listener>();
            if (listener.ApiListener?.ApiListener_ is { } any && any.Is(HttpConnectionManager.Descriptor))
            {
                var hcm = any.Unpack<HttpConnectionManager>();
                if (hcm.Rds is { } rds && !routes.ContainsKey(rds.RouteConfigName))
                {
                    problems.Add($"listener {listener.Name} names route configuration {rds.RouteConfigName}, which is missing");
                }
                if (hcm.RouteConfig is { } inline)
                {
                    routeConfigs.Add(inline);
                }
            }
        }
        foreach (var rc in routeConfigs)
        {
            foreach (var route in rc.VirtualHosts.SelectMany(v => v.Routes))
            {
                if (route.Route_ is not { } action)
                {
                    continue;
                }
                IEnumerable<string> names = action.ClusterSpecifierCase switch
                {
                    RouteAction.ClusterSpecifierOneofCase.Cluster => [action.Cluster],
                    RouteAction.ClusterSpecifierOneofCase.WeightedClusters => action.WeightedClusters.Clusters.Select(c => c.Name),
                    _ => [],
                };
                foreach (var name in names.Where(n => !clusters.ContainsKey(n)))
                {
                    problems.Add($"route {rc.Name}/{route.Name} names cluster {name}, which is missing");
                }
            }
        }
        foreach (var c in clusters.Values)
        {
            var cluster = c.Any.Unpack<Cluster>();
            if (cluster.Type == Cluster.Types.DiscoveryType.Eds)
            {
                var edsName = string.IsNullOrEmpty(cluster.EdsClusterConfig?.ServiceName) ? cluster.Name : cluster.EdsClusterConfig.ServiceName;
                if (!endpoints.ContainsKey(edsName))
                {
                    problems.Add($"cluster {cluster.Name} names endpoints {edsName}, which are missing");
                }
            }
        }
        return problems;
    }
}
