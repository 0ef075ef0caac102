using Envoy.Config.Core.V3;
using Envoy.Service.Discovery.V3;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Trellis.Xds;

namespace Trellis.ControlPlane.XdsServer;

/// <summary>One protocol variant's per-stream state (state of the world or delta).</summary>
internal interface IXdsStream<in TRequest>
{
    /// <summary>Handles a request (subscription change, ACK or NACK) and sends what it calls for.</summary>
    Task HandleRequestAsync(TRequest request, XdsSnapshot snapshot, ProxyConnection connection, ILogger logger);

    /// <summary>Sends whatever the proxy's subscriptions lack after a new snapshot.</summary>
    Task PushAsync(XdsSnapshot snapshot, ProxyConnection connection, ILogger logger);
}

/// <summary>
/// The aggregated discovery service: state-of-the-world and incremental (delta) ADS over gRPC.
/// Both are one loop over a protocol-specific stream state: wait for a request or a new snapshot, then send
/// what the proxy lacks. A stream only ever awaits its own proxy, so a slow or stuck proxy delays nobody else.
/// </summary>
internal sealed class AdsService(SnapshotCache cache, ProxySyncRegistry registry, ControlPlaneOptions options, TimeProvider time, ILogger<AdsService> logger)
    : AggregatedDiscoveryService.AggregatedDiscoveryServiceBase
{
    /// <summary>Order for pushes after a snapshot change: clusters and endpoints before the listeners and routes that use them.</summary>
    internal static readonly string[] PushOrder = [TypeUrls.Cluster, TypeUrls.ClusterLoadAssignment, TypeUrls.Listener, TypeUrls.RouteConfiguration, TypeUrls.Secret];

    public override Task StreamAggregatedResources(
        IAsyncStreamReader<DiscoveryRequest> requestStream, IServerStreamWriter<DiscoveryResponse> responseStream, ServerCallContext context) =>
        RunAsync("sotw", requestStream, r => r.Node, new SotwStream(responseStream, time), context);

    public override Task DeltaAggregatedResources(
        IAsyncStreamReader<DeltaDiscoveryRequest> requestStream, IServerStreamWriter<DeltaDiscoveryResponse> responseStream, ServerCallContext context) =>
        RunAsync("delta", requestStream, r => r.Node, new DeltaStream(responseStream, time), context);

    private async Task RunAsync<TRequest>(
        string protocol, IAsyncStreamReader<TRequest> requests, Func<TRequest, Node?> nodeOf, IXdsStream<TRequest> stream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        ProxyConnection? connection = null;
        var view = default(ClientView);
        var snapshot = cache.Current;
        var read = requests.MoveNext(ct);
        try
        {
            // Until translation has published there is nothing true to say: answering from the empty snapshot would
            // tell a client that reconnects right after a restart that every resource it holds was deleted.
            await cache.FirstPublished.WaitAsync(ct).ConfigureAwait(false);
            snapshot = cache.Current;
            while (true)
            {
                var done = await Task.WhenAny(read, cache.WhenChangedAsync(snapshot)).ConfigureAwait(false);
                snapshot = cache.Current;
                if (done == read)
                {
                    if (!await read.ConfigureAwait(false))
                    {
                        return;
                    }
                    var request = requests.Current;
                    if (connection is null)
                    {
                        // The node is sent on the first request only: remember it for the stream.
                        var node = nodeOf(request);
                        if (node is null || string.IsNullOrEmpty(node.Id))
                        {
                            throw new RpcException(new Status(StatusCode.InvalidArgument,
                                "the first discovery request of a stream must carry node.id; set the node id in the client's bootstrap"));
                        }
                        connection = registry.Connect(node.Id, node.Cluster, protocol, context.Peer, node.UserAgentName, time.GetUtcNow());
                        view = ClientView.Of(node, options.ClusterName);
                        connection.View = view;
                        XdsLog.StreamOpened(logger, protocol, connection.StreamId, connection.NodeId, context.Peer);
                        // Headers now: a client that already holds everything (delta with initial_resource_versions)
                        // may get no response for a long time, and still learns that the stream is up.
                        await context.WriteResponseHeadersAsync([]).ConfigureAwait(false);
                    }
                    await stream.HandleRequestAsync(request, snapshot.ForClient(view), connection, logger).ConfigureAwait(false);
                    read = requests.MoveNext(ct);
                }
                else if (connection is not null)
                {
                    await stream.PushAsync(snapshot.ForClient(view), connection, logger).ConfigureAwait(false);
                }
                if (connection is not null)
                {
                    // The published snapshot's version, not the client's locality view of it: proxy-status compares the two.
                    connection.SnapshotVersion = snapshot.Version;
                }
            }
        }
        catch (Exception ex) when (ct.IsCancellationRequested && ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The proxy went away.
        }
        finally
        {
            if (connection is not null)
            {
                registry.Disconnect(connection);
                XdsLog.StreamClosed(logger, connection.StreamId, connection.NodeId);
            }
        }
    }
}
