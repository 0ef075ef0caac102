using Envoy.Config.Cluster.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Service.Discovery.V3;
using Grpc.Core;
using Grpc.Net.Client;
using Trellis.Xds;
using Node = Envoy.Config.Core.V3.Node;

namespace Trellis.Cli.Demo;

/// <summary>
/// The demo's caller: it learns where "greeter" lives the way a proxyless gRPC client does (listener, route,
/// clusters, endpoints over ADS, ACKing each response), then picks a backend per request from the route's
/// matches and weights. Deliberately small: the sidecar proxy is the real data plane.
/// </summary>
internal sealed class XdsDemoClient(string grpcAddress, string nodeId, string target)
{
    private volatile RouteConfiguration? _routes;
    private volatile IReadOnlyDictionary<string, IReadOnlyList<string>> _endpoints = new Dictionary<string, IReadOnlyList<string>>();
    private long _rr;

    public bool Ready => _routes is not null && _endpoints.Count > 0;

    public async Task RunAsync(CancellationToken ct)
    {
        using var channel = GrpcChannel.ForAddress($"http://{grpcAddress}");
        var client = new AggregatedDiscoveryService.AggregatedDiscoveryServiceClient(channel);
        using var call = client.StreamAggregatedResources(cancellationToken: ct);
        var node = new Node { Id = nodeId, Cluster = "demo" };
        await Send(call, TypeUrls.Listener, [target], null, node).ConfigureAwait(false);
        await Send(call, TypeUrls.Cluster, [], null, null).ConfigureAwait(false);
        var edsNames = new List<string>();
        var endpoints = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        try
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
            {
                string[] names = [];
                switch (response.TypeUrl)
                {
                    case TypeUrls.Listener:
                        var hcm = response.Resources.Select(a => a.Unpack<Listener>()).First().ApiListener.ApiListener_.Unpack<HttpConnectionManager>();
                        names = [target];
                        if (hcm.Rds is { } rds)
                        {
                            await Send(call, TypeUrls.RouteConfiguration, [rds.RouteConfigName], null, null).ConfigureAwait(false);
                        }
                        else
                        {
                            _routes = hcm.RouteConfig;
                        }
                        break;
                    case TypeUrls.RouteConfiguration:
                        _routes = response.Resources[0].Unpack<RouteConfiguration>();
                        names = [_routes.Name];
                        break;
                    case TypeUrls.Cluster:
                        var clusters = response.Resources.Select(a => a.Unpack<Cluster>().Name).Order(StringComparer.Ordinal).ToList();
                        if (!clusters.SequenceEqual(edsNames))
                        {
                            edsNames = clusters;
                            await Send(call, TypeUrls.ClusterLoadAssignment, edsNames, null, null).ConfigureAwait(false);
                        }
                        break;
                    case TypeUrls.ClusterLoadAssignment:
                        foreach (var cla in response.Resources.Select(a => a.Unpack<ClusterLoadAssignment>()))
                        {
                            endpoints[cla.ClusterName] = cla.Endpoints.SelectMany(l => l.LbEndpoints)
                                .Where(e => e.HealthStatus is Envoy.Config.Core.V3.HealthStatus.Healthy or Envoy.Config.Core.V3.HealthStatus.Unknown)
                                .Select(e => $"{e.Endpoint.Address.SocketAddress.Address}:{e.Endpoint.Address.SocketAddress.PortValue}").ToList();
                        }
                        _endpoints = new Dictionary<string, IReadOnlyList<string>>(endpoints);
                        names = [.. edsNames];
                        break;
                }
                // ACK: the version and nonce of what arrived, with the names this type is subscribed to.
                await Send(call, response.TypeUrl, response.TypeUrl == TypeUrls.Cluster ? [] : names, response, null).ConfigureAwait(false);
            }
        }
        catch (RpcException) when (ct.IsCancellationRequested)
        {
        }
    }

    private static Task Send(AsyncDuplexStreamingCall<DiscoveryRequest, DiscoveryResponse> call, string typeUrl, IEnumerable<string> names, DiscoveryResponse? ack, Node? node)
    {
        var request = new DiscoveryRequest { TypeUrl = typeUrl, Node = node, VersionInfo = ack?.VersionInfo ?? "", ResponseNonce = ack?.Nonce ?? "" };
        request.ResourceNames.AddRange(names);
        return call.RequestStream.WriteAsync(request);
    }

    /// <summary>Picks "host:port" for a request with the given headers, following the route's matches and weights.</summary>
    public (string Cluster, string Endpoint)? Pick(string path, IReadOnlyDictionary<string, string> headers)
    {
        var routes = _routes;
        if (routes is null)
        {
            return null;
        }
        foreach (var route in routes.VirtualHosts.SelectMany(v => v.Routes))
        {
            var m = route.Match;
            var pathOk = m.PathSpecifierCase switch
            {
                RouteMatch.PathSpecifierOneofCase.Prefix => path.StartsWith(m.Prefix, StringComparison.Ordinal),
                RouteMatch.PathSpecifierOneofCase.Path => path == m.Path,
                _ => false,
            };
            if (!pathOk || !m.Headers.All(h => headers.TryGetValue(h.Name, out var v) && v == h.StringMatch?.Exact) || route.Route_ is not { } action)
            {
                continue;
            }
            var cluster = action.ClusterSpecifierCase == RouteAction.ClusterSpecifierOneofCase.Cluster ? action.Cluster : Weighted(action.WeightedClusters);
            if (_endpoints.TryGetValue(cluster, out var eps) && eps.Count > 0)
            {
                return (cluster, eps[(int)(Interlocked.Increment(ref _rr) % eps.Count)]);
            }
            return null;
        }
        return null;
    }

    private static string Weighted(WeightedCluster wc)
    {
        var total = wc.Clusters.Sum(c => (long)(c.Weight ?? 0));
#pragma warning disable CA5394 // traffic splitting, not security
        var pick = Random.Shared.NextInt64(Math.Max(1, total));
#pragma warning restore CA5394
        foreach (var c in wc.Clusters)
        {
            pick -= c.Weight ?? 0;
            if (pick < 0)
            {
                return c.Name;
            }
        }
        return wc.Clusters[^1].Name;
    }
}
