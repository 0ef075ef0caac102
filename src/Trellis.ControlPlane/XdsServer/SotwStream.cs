using Envoy.Service.Discovery.V3;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Trellis.Xds;

namespace Trellis.ControlPlane.XdsServer;

/// <summary>
/// State-of-the-world stream state. Per type: the subscription (named or wildcard), the nonce and version of the
/// last response, and the version the proxy rejected (never sent again).
/// </summary>
internal sealed class SotwStream(IServerStreamWriter<DiscoveryResponse> writer, TimeProvider time) : IXdsStream<DiscoveryRequest>
{
    private readonly Dictionary<string, TypeState> _types = new(StringComparer.Ordinal);
    private long _nonce;

    public async Task HandleRequestAsync(DiscoveryRequest request, XdsSnapshot snapshot, ProxyConnection connection, ILogger logger)
    {
        var typeUrl = request.TypeUrl;
        if (string.IsNullOrEmpty(typeUrl))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "type_url is required on an aggregated stream"));
        }
        var isNew = !_types.TryGetValue(typeUrl, out var state);
        state ??= _types[typeUrl] = new TypeState();

        var nonce = request.ResponseNonce;
        if (nonce.Length > 0 && nonce != state.LastNonce)
        {
            // A request answering an older response: the proxy will answer the current one too.
            XdsLog.StaleNonce(logger, connection.NodeId, TypeUrls.ShortName(typeUrl), nonce);
            return;
        }
        var now = time.GetUtcNow();
        if (request.ErrorDetail is not null && nonce.Length > 0)
        {
            connection.OnNack(typeUrl, nonce, request.ErrorDetail.Message, now);
            state.RejectedVersion = state.LastVersion;
            XdsLog.Nack(logger, connection.NodeId, TypeUrls.ShortName(typeUrl), state.LastVersion, request.ErrorDetail.Message);
        }
        else if (nonce.Length > 0)
        {
            connection.OnAck(typeUrl, request.VersionInfo, nonce, now);
        }

        var changed = state.Update(typeUrl, request.ResourceNames, isNew);
        if (changed || isNew)
        {
            connection.OnSubscribed(typeUrl, state.Wildcard, state.Names);
        }
        if (nonce.Length == 0 || changed)
        {
            await SendAsync(typeUrl, state, snapshot, connection, logger, force: true).ConfigureAwait(false);
        }
    }

    public async Task PushAsync(XdsSnapshot snapshot, ProxyConnection connection, ILogger logger)
    {
        foreach (var typeUrl in AdsService.PushOrder)
        {
            if (_types.TryGetValue(typeUrl, out var state))
            {
                await SendAsync(typeUrl, state, snapshot, connection, logger, force: false).ConfigureAwait(false);
            }
        }
        foreach (var (typeUrl, state) in _types)
        {
            if (Array.IndexOf(AdsService.PushOrder, typeUrl) < 0)
            {
                await SendAsync(typeUrl, state, snapshot, connection, logger, force: false).ConfigureAwait(false);
            }
        }
    }

    private async Task SendAsync(string typeUrl, TypeState state, XdsSnapshot snapshot, ProxyConnection connection, ILogger logger, bool force)
    {
        var selection = snapshot.Get(typeUrl).Select(state.Wildcard, state.Key, state.Names);
        var version = selection.Version;
        // Listeners and clusters: a response holds every subscribed resource, and one left out counts as deleted,
        // so an empty answer is meaningful. Routes and endpoints may be sent alone: nothing to send is no response.
        if (selection.Resources.Count == 0 && typeUrl is not (TypeUrls.Listener or TypeUrls.Cluster))
        {
            return;
        }
        if (version == state.RejectedVersion || (!force && version == state.LastVersion))
        {
            return;
        }

        // Routes and endpoints need not come all at once: after a change, send only what changed since the last
        // response (one edited route goes to every proxy as one resource, not all of them).
        var resources = selection.Resources;
        if (!force && state.LastSelection is { } last && typeUrl is TypeUrls.RouteConfiguration or TypeUrls.ClusterLoadAssignment)
        {
            resources = selection.ChangedSince(last);
            if (resources.Count == 0)
            {
                // Only removals: those types signal none in state of the world; the proxy keeps what it has.
                state.LastSelection = selection;
                state.LastVersion = version;
                return;
            }
        }

        var response = new DiscoveryResponse
        {
            TypeUrl = typeUrl,
            VersionInfo = version,
            Nonce = (++_nonce).ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        foreach (var r in resources)
        {
            response.Resources.Add(r.Any);
        }
        state.LastNonce = response.Nonce;
        state.LastVersion = version;
        state.LastSelection = selection;
        connection.OnSent(typeUrl, version, response.Nonce, selection.Names, time.GetUtcNow());
        XdsLog.Sent(logger, TypeUrls.ShortName(typeUrl), version, resources.Count, connection.NodeId);
        await writer.WriteAsync(response).ConfigureAwait(false);
    }

    /// <summary>The resources a state-of-the-world subscription holds, and the version of exactly that set.</summary>
    public static (IReadOnlyList<XdsResource> Resources, string Version) Select(XdsSnapshot snapshot, string typeUrl, bool wildcard, IEnumerable<string> names)
    {
        var list = names as IReadOnlyCollection<string> ?? names.ToList();
        var selection = snapshot.Get(typeUrl).Select(wildcard, XdsResourceSet.SubscriptionKey(list), list);
        return (selection.Resources, selection.Version);
    }

    private sealed class TypeState
    {
        public bool Wildcard;
        public HashSet<string> Names = new(StringComparer.Ordinal);
        public string Key = "";
        public string? LastNonce;
        public string? LastVersion;
        public string? RejectedVersion;

        /// <summary>What the proxy holds after the last response (shared with other streams, never modified).</summary>
        public XdsSelection? LastSelection;

        /// <summary>Applies the names of a request; returns true when the subscription changed.</summary>
        public bool Update(string typeUrl, IEnumerable<string> requested, bool first)
        {
            var names = new HashSet<string>(requested, StringComparer.Ordinal);
            var wildcard = names.Remove("*");
            // Legacy wildcard: listeners and clusters asked for with no names at all on the first request.
            if (names.Count == 0 && !wildcard && (typeUrl is TypeUrls.Listener or TypeUrls.Cluster) && (first || Wildcard))
            {
                wildcard = true;
            }
            var changed = wildcard != Wildcard || !names.SetEquals(Names);
            if (changed || first)
            {
                Key = XdsResourceSet.SubscriptionKey(names);
            }
            Wildcard = wildcard;
            Names = names;
            return changed;
        }
    }
}
