using Envoy.Service.Discovery.V3;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Trellis.Xds;

namespace Trellis.ControlPlane.XdsServer;

/// <summary>
/// Incremental (delta) stream state. Per type: the subscription and the version of every resource the proxy
/// holds, so a response carries only what changed and removals go in removed_resources.
/// </summary>
internal sealed class DeltaStream(IServerStreamWriter<DeltaDiscoveryResponse> writer, TimeProvider time) : IXdsStream<DeltaDiscoveryRequest>
{
    private readonly Dictionary<string, TypeState> _types = new(StringComparer.Ordinal);
    private long _nonce;

    public async Task HandleRequestAsync(DeltaDiscoveryRequest request, XdsSnapshot snapshot, ProxyConnection connection, ILogger logger)
    {
        var typeUrl = request.TypeUrl;
        if (string.IsNullOrEmpty(typeUrl))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "type_url is required on an aggregated stream"));
        }
        var first = !_types.TryGetValue(typeUrl, out var state);
        if (state is null)
        {
            state = _types[typeUrl] = new TypeState();
            // What the proxy already holds from an earlier stream: nothing it has is sent again.
            foreach (var (name, version) in request.InitialResourceVersions)
            {
                state.Known[name] = version;
            }
        }

        var now = time.GetUtcNow();
        if (request.ResponseNonce.Length > 0)
        {
            if (request.ErrorDetail is not null)
            {
                if (connection.OnNack(typeUrl, request.ResponseNonce, request.ErrorDetail.Message, now))
                {
                    XdsLog.Nack(logger, connection.NodeId, TypeUrls.ShortName(typeUrl), null, request.ErrorDetail.Message);
                }
            }
            else
            {
                connection.OnAck(typeUrl, null, request.ResponseNonce, now);
            }
        }

        foreach (var name in request.ResourceNamesSubscribe)
        {
            if (name == "*")
            {
                state.Wildcard = true;
            }
            else
            {
                state.Names.Add(name);
            }
        }
        foreach (var name in request.ResourceNamesUnsubscribe)
        {
            if (name == "*")
            {
                state.Wildcard = false;
            }
            else
            {
                state.Names.Remove(name);
                state.Known.Remove(name);
                state.ToldMissing.Remove(name);
            }
        }
        if (first && request.ResourceNamesSubscribe.Count == 0 && (typeUrl is TypeUrls.Listener or TypeUrls.Cluster))
        {
            state.Wildcard = true;
        }
        if (first || request.ResourceNamesSubscribe.Count > 0 || request.ResourceNamesUnsubscribe.Count > 0)
        {
            state.ReconciledWith = null;
            connection.OnSubscribed(typeUrl, state.Wildcard, state.Names);
        }
        await SendAsync(typeUrl, state, snapshot, connection, logger).ConfigureAwait(false);
    }

    public async Task PushAsync(XdsSnapshot snapshot, ProxyConnection connection, ILogger logger)
    {
        foreach (var typeUrl in AdsService.PushOrder.Concat(_types.Keys.Where(t => Array.IndexOf(AdsService.PushOrder, t) < 0)).ToList())
        {
            if (_types.TryGetValue(typeUrl, out var state))
            {
                await SendAsync(typeUrl, state, snapshot, connection, logger).ConfigureAwait(false);
            }
        }
    }

    private async Task SendAsync(string typeUrl, TypeState state, XdsSnapshot snapshot, ProxyConnection connection, ILogger logger)
    {
        var set = snapshot.Get(typeUrl);
        if (state.ReconciledWith == set.Version)
        {
            // Same content and same subscription as last time: nothing can differ, so skip the walk over every name.
            return;
        }
        state.ReconciledWith = set.Version;
        var response = new DeltaDiscoveryResponse { TypeUrl = typeUrl, SystemVersionInfo = snapshot.Version };
        IEnumerable<string> wanted = state.Wildcard ? set.Items.Keys.Concat(state.Names) : state.Names;
        foreach (var name in wanted.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            if (set.Items.TryGetValue(name, out var r))
            {
                if (!state.Known.TryGetValue(name, out var held) || held != r.Version)
                {
                    response.Resources.Add(new Resource { Name = name, Version = r.Version, Resource_ = r.Any });
                }
            }
            else if (!state.Known.ContainsKey(name) && state.Names.Contains(name) && state.ToldMissing.Add(name))
            {
                // Asked for by name and does not exist: say so once, so the proxy need not wait for a timeout.
                response.RemovedResources.Add(name);
            }
        }
        foreach (var name in state.Known.Keys.Order(StringComparer.Ordinal))
        {
            if (!set.Items.ContainsKey(name))
            {
                response.RemovedResources.Add(name);
            }
        }
        if (response.Resources.Count == 0 && response.RemovedResources.Count == 0)
        {
            return;
        }
        foreach (var r in response.Resources)
        {
            state.Known[r.Name] = r.Version;
            state.ToldMissing.Remove(r.Name);
        }
        foreach (var name in response.RemovedResources)
        {
            state.Known.Remove(name);
        }
        response.Nonce = (++_nonce).ToString(System.Globalization.CultureInfo.InvariantCulture);
        connection.OnSent(typeUrl, set.Version, response.Nonce, response.Resources.Select(r => r.Name).Concat(response.RemovedResources).ToList(), time.GetUtcNow());
        XdsLog.Sent(logger, TypeUrls.ShortName(typeUrl), set.Version, response.Resources.Count, connection.NodeId);
        await writer.WriteAsync(response).ConfigureAwait(false);
    }

    private sealed class TypeState
    {
        public bool Wildcard;
        /// <summary>Version of the resource set this subscription was last compared with; null after it changed.</summary>
        public string? ReconciledWith;
        public readonly HashSet<string> Names = new(StringComparer.Ordinal);
        public readonly Dictionary<string, string> Known = new(StringComparer.Ordinal);
        public readonly HashSet<string> ToldMissing = new(StringComparer.Ordinal);
    }
}
