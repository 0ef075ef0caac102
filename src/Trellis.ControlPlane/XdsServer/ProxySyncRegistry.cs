using System.Collections.Concurrent;

namespace Trellis.ControlPlane.XdsServer;

/// <summary>What one proxy did with the last configuration of one type that it was sent.</summary>
internal sealed record TypeSyncView(
    string TypeUrl,
    string? SentVersion,
    DateTimeOffset? SentAt,
    IReadOnlyList<string> SentNames,
    string? AckedVersion,
    DateTimeOffset? AckedAt,
    string? NackedVersion,
    string? NackError,
    DateTimeOffset? NackedAt,
    bool LastResponseNacked);

/// <summary>A connected proxy as `trellis proxy-status` shows it.</summary>
internal sealed record ProxyView(
    string NodeId,
    string Cluster,
    string Protocol,
    string? Peer,
    string? UserAgent,
    DateTimeOffset ConnectedSince,
    string State,
    string? SnapshotVersion,
    IReadOnlyList<TypeSyncView> Types);

/// <summary>Sync state of one xDS stream: per type, what was sent, ACKed and NACKed.</summary>
internal sealed class ProxyConnection(long streamId, string nodeId, string cluster, string protocol, string? peer, string? userAgent, DateTimeOffset since)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TypeState> _types = new(StringComparer.Ordinal);

    public long StreamId { get; } = streamId;
    public string NodeId { get; } = nodeId;
    public string Cluster { get; } = cluster;
    public string Protocol { get; } = protocol;
    public string? Peer { get; } = peer;
    public string? UserAgent { get; } = userAgent;
    public DateTimeOffset ConnectedSince { get; } = since;

    /// <summary>Snapshot version the stream last looked at (after sending whatever it needed).</summary>
    public string? SnapshotVersion { get; set; }

    /// <summary>What the node's identity makes it see (role, service, locality); set when the stream learns the node.</summary>
    public ClientView View { get; set; }

    /// <summary>Records the proxy's current subscription to <paramref name="typeUrl"/>: wildcard, and the names asked for.</summary>
    public void OnSubscribed(string typeUrl, bool wildcard, IEnumerable<string> names)
    {
        var list = names.Order(StringComparer.Ordinal).ToArray();
        lock (_gate)
        {
            var t = Get(typeUrl);
            t.Wildcard = wildcard;
            t.Subscribed = list;
        }
    }

    /// <summary>The subscription to <paramref name="typeUrl"/>, or null if the proxy never asked for that type.</summary>
    public (bool Wildcard, IReadOnlyList<string> Names)? Subscription(string typeUrl)
    {
        lock (_gate)
        {
            return _types.TryGetValue(typeUrl, out var t) && t.Subscribed is { } names ? (t.Wildcard, names) : null;
        }
    }

    public void OnSent(string typeUrl, string version, string nonce, IReadOnlyList<string> names, DateTimeOffset now)
    {
        lock (_gate)
        {
            var t = Get(typeUrl);
            t.SentVersion = version;
            t.SentNonce = nonce;
            t.SentNames = names;
            t.SentAt = now;
            t.LastResponseNacked = false;
        }
    }

    /// <summary>Records an ACK of <paramref name="nonce"/>. Returns false if it names no response we sent.</summary>
    /// <param name="version">The version the proxy says it holds; null for delta, where the ACK is of the response itself.</param>
    public bool OnAck(string typeUrl, string? version, string nonce, DateTimeOffset now)
    {
        lock (_gate)
        {
            var t = Get(typeUrl);
            if (t.SentNonce != nonce)
            {
                return false;
            }
            t.AckedVersion = version ?? t.SentVersion;
            t.AckedNames = t.SentNames;
            t.AckedAt = now;
            t.LastResponseNacked = false;
            return true;
        }
    }

    public bool OnNack(string typeUrl, string nonce, string error, DateTimeOffset now)
    {
        lock (_gate)
        {
            var t = Get(typeUrl);
            if (t.SentNonce != nonce)
            {
                return false;
            }
            t.NackedVersion = t.SentVersion;
            t.NackedNames = t.SentNames;
            t.NackError = error;
            t.NackedAt = now;
            t.LastResponseNacked = true;
            return true;
        }
    }

    /// <summary>Resource names of <paramref name="typeUrl"/> in the last response, and whether it was ACKed or NACKed.</summary>
    public (IReadOnlyList<string> Names, string State, string? Error) ResourceState(string typeUrl)
    {
        lock (_gate)
        {
            if (!_types.TryGetValue(typeUrl, out var t) || t.SentNonce is null)
            {
                return ([], "NONE", null);
            }
            if (t.LastResponseNacked)
            {
                return (t.NackedNames, "NACKED", t.NackError);
            }
            return (t.SentNames, t.AckedVersion == t.SentVersion && t.AckedAt >= t.SentAt ? "ACKED" : "PENDING", null);
        }
    }

    public ProxyView ToView(string? currentSnapshotVersion)
    {
        lock (_gate)
        {
            var types = _types.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new TypeSyncView(
                p.Key, p.Value.SentVersion, p.Value.SentAt, p.Value.SentNames, p.Value.AckedVersion, p.Value.AckedAt,
                p.Value.NackedVersion, p.Value.NackError, p.Value.NackedAt, p.Value.LastResponseNacked)).ToList();
            string state;
            if (types.Any(t => t.LastResponseNacked))
            {
                state = "NACKED";
            }
            else if (types.Any(t => t.SentVersion is not null && (t.AckedVersion != t.SentVersion || t.AckedAt < t.SentAt))
                     || (currentSnapshotVersion is not null && SnapshotVersion != currentSnapshotVersion))
            {
                state = "STALE";
            }
            else
            {
                state = "SYNCED";
            }
            return new ProxyView(NodeId, Cluster, Protocol, Peer, UserAgent, ConnectedSince, state, SnapshotVersion, types);
        }
    }

    private TypeState Get(string typeUrl)
    {
        if (!_types.TryGetValue(typeUrl, out var t))
        {
            t = new TypeState();
            _types[typeUrl] = t;
        }
        return t;
    }

    private sealed class TypeState
    {
        public string? SentVersion;
        public string? SentNonce;
        public IReadOnlyList<string> SentNames = [];
        public DateTimeOffset? SentAt;
        public string? AckedVersion;
        public IReadOnlyList<string> AckedNames = [];
        public DateTimeOffset? AckedAt;
        public string? NackedVersion;
        public IReadOnlyList<string> NackedNames = [];
        public string? NackError;
        public DateTimeOffset? NackedAt;
        public bool LastResponseNacked;
        public bool Wildcard;
        public IReadOnlyList<string>? Subscribed;
    }
}

/// <summary>Every connected xDS stream and its sync state.</summary>
internal sealed class ProxySyncRegistry
{
    private readonly ConcurrentDictionary<long, ProxyConnection> _connections = new();
    private long _nextStreamId;

    public ProxyConnection Connect(string nodeId, string cluster, string protocol, string? peer, string? userAgent, DateTimeOffset now)
    {
        var c = new ProxyConnection(Interlocked.Increment(ref _nextStreamId), nodeId, cluster, protocol, peer, userAgent, now);
        _connections[c.StreamId] = c;
        return c;
    }

    public void Disconnect(ProxyConnection connection) => _connections.TryRemove(connection.StreamId, out _);

    public int Count => _connections.Count;

    public IEnumerable<ProxyConnection> Connections => _connections.Values;

    /// <summary>The newest stream of a node, if it is connected.</summary>
    public ProxyConnection? Find(string nodeId) =>
        _connections.Values.Where(c => c.NodeId == nodeId).MaxBy(c => c.StreamId);

    public IReadOnlyList<ProxyView> List(string? currentSnapshotVersion) =>
        _connections.Values.OrderBy(c => c.NodeId, StringComparer.Ordinal).ThenBy(c => c.StreamId)
            .Select(c => c.ToView(currentSnapshotVersion)).ToList();
}
