using System.Diagnostics;
using Envoy.Config.Core.V3;
using Envoy.Service.Discovery.V3;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Trellis.Xds;

namespace Trellis.Bench.XdsScale;

/// <summary>One simulated proxy: its own ADS stream and node id, subscribing and ACKing like a real client.</summary>
internal abstract class SimulatedProxy(int index, int expectedClusters)
{
    private Watch? _watch;
    private long _watchHitAt;
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Index { get; } = index;
    public string NodeId { get; } = $"bench-proxy-{index}";
    protected int ExpectedClusters { get; } = expectedClusters;

    /// <summary>Completes when the proxy first holds the full configuration.</summary>
    public Task Synced => _synced.Task;

    /// <summary>Set when the stream ended with an error, for the report.</summary>
    public Exception? Failure { get; private set; }

    public abstract string Mode { get; }

    /// <summary>Arms the watch for the next change; the timestamp of the matching ACK is read from <see cref="WatchHitAt"/>.</summary>
    public void Arm(Watch watch)
    {
        Volatile.Write(ref _watchHitAt, 0);
        Volatile.Write(ref _watch, watch);
    }

    /// <summary>Stopwatch timestamp right after the ACK of the watched content was written; 0 until then.</summary>
    public long WatchHitAt => Volatile.Read(ref _watchHitAt);

    protected Node Node => new() { Id = NodeId, Cluster = "bench", UserAgentName = "xds-scale" };

    /// <summary>True when <paramref name="content"/> is what the armed watch waits for.</summary>
    protected bool IsWatched(string typeUrl, string name, ByteString content)
    {
        var w = Volatile.Read(ref _watch);
        return w is not null && w.TypeUrl == typeUrl && w.Name == name && Volatile.Read(ref _watchHitAt) == 0 && w.Matches(content);
    }

    protected void RecordHit() => Volatile.Write(ref _watchHitAt, Stopwatch.GetTimestamp());

    protected void MarkSynced() => _synced.TrySetResult();

    public async Task RunAsync(GrpcChannel channel, CancellationToken ct)
    {
        try
        {
            await RunStreamAsync(new AggregatedDiscoveryService.AggregatedDiscoveryServiceClient(channel), ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ct.IsCancellationRequested && ex is OperationCanceledException or RpcException or IOException)
        {
        }
        catch (Exception ex)
        {
            Failure = ex;
            _synced.TrySetException(ex);
        }
    }

    protected abstract Task RunStreamAsync(AggregatedDiscoveryService.AggregatedDiscoveryServiceClient client, CancellationToken ct);
}

/// <summary>
/// State of the world: CDS and LDS wildcard; EDS for every cluster received and RDS for every route name the
/// listeners name. Each response is ACKed with its version, nonce and the same names.
/// </summary>
internal sealed class SotwProxy(int index, int expectedClusters) : SimulatedProxy(index, expectedClusters)
{
    public override string Mode => "sotw";

    private sealed class TypeState
    {
        public string Version = "";
        public string Nonce = "";
        public List<string>? Names; // null: wildcard
        public readonly HashSet<string> Received = new(StringComparer.Ordinal);
        public bool Got;
        public bool Requested;
    }

    protected override async Task RunStreamAsync(AggregatedDiscoveryService.AggregatedDiscoveryServiceClient client, CancellationToken ct)
    {
        using var call = client.StreamAggregatedResources(cancellationToken: ct);
        var cds = new TypeState();
        var lds = new TypeState();
        var eds = new TypeState { Names = [] };
        var rds = new TypeState { Names = [] };
        var types = new Dictionary<string, TypeState>(StringComparer.Ordinal)
        {
            [TypeUrls.Cluster] = cds, [TypeUrls.Listener] = lds, [TypeUrls.ClusterLoadAssignment] = eds, [TypeUrls.RouteConfiguration] = rds,
        };
        await call.RequestStream.WriteAsync(new DiscoveryRequest { Node = Node, TypeUrl = TypeUrls.Cluster }, ct).ConfigureAwait(false);
        await call.RequestStream.WriteAsync(new DiscoveryRequest { TypeUrl = TypeUrls.Listener }, ct).ConfigureAwait(false);

        await foreach (var response in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
        {
            if (!types.TryGetValue(response.TypeUrl, out var state))
            {
                continue;
            }
            state.Version = response.VersionInfo;
            state.Nonce = response.Nonce;
            state.Got = true;
            state.Received.Clear();
            var hit = false;
            SortedSet<string>? follow = null;
            if (state == cds || state == lds)
            {
                follow = new SortedSet<string>(StringComparer.Ordinal);
            }
            foreach (var any in response.Resources)
            {
                var name = Resources.NameOf(any.Value);
                state.Received.Add(name);
                hit |= IsWatched(response.TypeUrl, name, any.Value);
                if (state == cds)
                {
                    follow!.Add(Resources.EdsNameOf(any.Value));
                }
                else if (state == lds)
                {
                    var rdsName = Resources.RdsNameOf(any.Value);
                    if (rdsName.Length > 0)
                    {
                        follow!.Add(rdsName);
                    }
                }
            }
            await call.RequestStream.WriteAsync(Request(response.TypeUrl, state), ct).ConfigureAwait(false);
            if (hit)
            {
                RecordHit();
            }
            if (follow is not null)
            {
                var target = state == cds ? eds : rds;
                var typeUrl = state == cds ? TypeUrls.ClusterLoadAssignment : TypeUrls.RouteConfiguration;
                if (!target.Requested || !follow.SetEquals(target.Names!))
                {
                    target.Names = [.. follow];
                    target.Requested = true;
                    await call.RequestStream.WriteAsync(Request(typeUrl, target), ct).ConfigureAwait(false);
                }
            }
            if (!Synced.IsCompleted && cds.Got && lds.Got && cds.Received.Count >= ExpectedClusters
                && eds.Got && rds.Got && eds.Received.SetEquals(eds.Names!) && rds.Received.SetEquals(rds.Names!))
            {
                MarkSynced();
            }
        }
    }

    private static DiscoveryRequest Request(string typeUrl, TypeState state)
    {
        var r = new DiscoveryRequest { TypeUrl = typeUrl, VersionInfo = state.Version, ResponseNonce = state.Nonce };
        if (state.Names is not null)
        {
            r.ResourceNames.AddRange(state.Names);
        }
        return r;
    }
}

/// <summary>
/// Incremental: wildcard ("*") for CDS and LDS, named subscriptions for EDS and RDS that follow what arrived
/// (subscribe on add, unsubscribe on removal). Each response is ACKed with its nonce.
/// </summary>
internal sealed class DeltaProxy(int index, int expectedClusters) : SimulatedProxy(index, expectedClusters)
{
    public override string Mode => "delta";

    private sealed class TypeState
    {
        public readonly HashSet<string> Held = new(StringComparer.Ordinal);
        public readonly HashSet<string> Subscribed = new(StringComparer.Ordinal);
        // For CDS and LDS: which EDS / RDS name each held resource asked for.
        public readonly Dictionary<string, string> Follows = new(StringComparer.Ordinal);
        public bool Got;
    }

    protected override async Task RunStreamAsync(AggregatedDiscoveryService.AggregatedDiscoveryServiceClient client, CancellationToken ct)
    {
        using var call = client.DeltaAggregatedResources(cancellationToken: ct);
        var cds = new TypeState();
        var lds = new TypeState();
        var eds = new TypeState();
        var rds = new TypeState();
        var types = new Dictionary<string, TypeState>(StringComparer.Ordinal)
        {
            [TypeUrls.Cluster] = cds, [TypeUrls.Listener] = lds, [TypeUrls.ClusterLoadAssignment] = eds, [TypeUrls.RouteConfiguration] = rds,
        };
        await call.RequestStream.WriteAsync(new DeltaDiscoveryRequest { Node = Node, TypeUrl = TypeUrls.Cluster, ResourceNamesSubscribe = { "*" } }, ct).ConfigureAwait(false);
        await call.RequestStream.WriteAsync(new DeltaDiscoveryRequest { TypeUrl = TypeUrls.Listener, ResourceNamesSubscribe = { "*" } }, ct).ConfigureAwait(false);

        await foreach (var response in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
        {
            if (!types.TryGetValue(response.TypeUrl, out var state))
            {
                continue;
            }
            state.Got = true;
            var hit = false;
            var isParent = state == cds || state == lds;
            foreach (var r in response.Resources)
            {
                state.Held.Add(r.Name);
                if (r.Resource_ is { } any)
                {
                    hit |= IsWatched(response.TypeUrl, r.Name, any.Value);
                    if (state == cds)
                    {
                        state.Follows[r.Name] = Resources.EdsNameOf(any.Value);
                    }
                    else if (state == lds)
                    {
                        state.Follows[r.Name] = Resources.RdsNameOf(any.Value);
                    }
                }
            }
            foreach (var name in response.RemovedResources)
            {
                state.Held.Remove(name);
                state.Follows.Remove(name);
            }
            await call.RequestStream.WriteAsync(new DeltaDiscoveryRequest { TypeUrl = response.TypeUrl, ResponseNonce = response.Nonce }, ct).ConfigureAwait(false);
            if (hit)
            {
                RecordHit();
            }
            if (isParent)
            {
                var target = state == cds ? eds : rds;
                var wanted = new HashSet<string>(state.Follows.Values.Where(n => n.Length > 0), StringComparer.Ordinal);
                var request = new DeltaDiscoveryRequest { TypeUrl = state == cds ? TypeUrls.ClusterLoadAssignment : TypeUrls.RouteConfiguration };
                request.ResourceNamesSubscribe.AddRange(wanted.Where(n => !target.Subscribed.Contains(n)).Order(StringComparer.Ordinal));
                request.ResourceNamesUnsubscribe.AddRange(target.Subscribed.Where(n => !wanted.Contains(n)).Order(StringComparer.Ordinal));
                if (request.ResourceNamesSubscribe.Count > 0 || request.ResourceNamesUnsubscribe.Count > 0)
                {
                    target.Subscribed.UnionWith(request.ResourceNamesSubscribe);
                    target.Subscribed.ExceptWith(request.ResourceNamesUnsubscribe);
                    foreach (var gone in request.ResourceNamesUnsubscribe)
                    {
                        target.Held.Remove(gone);
                    }
                    await call.RequestStream.WriteAsync(request, ct).ConfigureAwait(false);
                }
            }
            if (!Synced.IsCompleted && cds.Got && lds.Got && cds.Held.Count >= ExpectedClusters
                && eds.Got && rds.Got && eds.Subscribed.IsSubsetOf(eds.Held) && rds.Subscribed.IsSubsetOf(rds.Held))
            {
                MarkSynced();
            }
        }
    }
}
