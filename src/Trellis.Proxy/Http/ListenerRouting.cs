using System.Net;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;

namespace Trellis.Proxy.Http;

/// <summary>Where one HTTP request goes: a route and its chosen cluster, a fixed address, or a proxy error.</summary>
internal readonly record struct RouteDecision(RouteModel? Route, string? Cluster, IPEndPoint? Fixed, ProxyError Error)
{
    public static RouteDecision Fail(ProxyError error) => new(null, null, null, error);
}

/// <summary>
/// Request routing per listener kind, shared by the HTTP/1.1 and HTTP/2 paths. An --upstream listener uses the
/// virtual host named after its service port (SVC.NS:PORT) in the outbound route table, whatever the Host header
/// says; the shared outbound listener selects the virtual host by authority; the inbound listener forwards to the
/// local application.
/// </summary>
internal static class ListenerRouting
{
    public static RouteDecision Resolve(ListenerTarget target, ProxyModel model, in RouteRequest request, uint roll)
    {
        if (target.Fixed is { } fixedAddress)
        {
            return new RouteDecision(null, null, fixedAddress, ProxyError.None);
        }
        var table = OutboundRouteTable(model);
        RouteModel? route;
        if (target.Cluster is { } cluster)
        {
            var vhost = table?.Index.ByName(cluster);
            if (vhost is null)
            {
                // No HTTP routes for this service port (a TCP port, or no route table yet): straight to its cluster.
                return new RouteDecision(null, cluster, null, ProxyError.None);
            }
            route = Router.Match(vhost, request);
        }
        else
        {
            route = table is null ? null : Router.Match(table, request);
        }
        if (route is null)
        {
            return RouteDecision.Fail(ProxyError.NoRoute);
        }
        if (route.Redirect is not null || route.DirectResponseStatus is not null)
        {
            return new RouteDecision(route, null, null, ProxyError.None);
        }
        var chosen = Router.PickCluster(route, roll);
        return chosen is null ? RouteDecision.Fail(ProxyError.NoCluster) : new RouteDecision(route, chosen, null, ProxyError.None);
    }

    /// <summary>The route table of the model's outbound listener (its HTTP chain), or null.</summary>
    public static RouteTable? OutboundRouteTable(ProxyModel model)
    {
        foreach (var listener in model.Listeners.Values)
        {
            if (listener.Direction != TrafficDirectionKind.Outbound)
            {
                continue;
            }
            foreach (var chain in listener.Chains)
            {
                if (chain.RouteTableName is { } name && model.Routes.TryGetValue(name, out var table))
                {
                    return table;
                }
            }
            if (listener.DefaultChain?.RouteTableName is { } d && model.Routes.TryGetValue(d, out var dt))
            {
                return dt;
            }
        }
        return null;
    }
}
