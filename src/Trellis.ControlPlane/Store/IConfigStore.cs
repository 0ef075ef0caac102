namespace Trellis.ControlPlane.Store;

/// <summary>Identifies one stored object. Namespace is "" for cluster-scoped kinds.</summary>
public readonly record struct ResourceKey(string Kind, string Namespace, string Name)
{
    public override string ToString() => Namespace.Length == 0 ? $"{Kind}/{Name}" : $"{Kind}/{Namespace}/{Name}";
}

/// <summary>An object as the store holds it: an opaque JSON document plus revisions.</summary>
/// <param name="CreateRevision">Store revision at which the key was created.</param>
/// <param name="ModRevision">Store revision of the last change to the key.</param>
/// <param name="LeaseId">Lease the key is attached to (deleted when the lease expires), or 0.</param>
public sealed record StoredObject(ResourceKey Key, string Json, long CreateRevision, long ModRevision, long LeaseId = 0);

/// <summary>One write inside an atomic commit.</summary>
/// <param name="ExpectedModRevision">Compare-and-swap guard: null = unconditional, 0 = key must not exist,
/// n = key's ModRevision must be n.</param>
public abstract record StoreWrite(ResourceKey Key, long? ExpectedModRevision);

public sealed record StorePut(ResourceKey Key, string Json, long? ExpectedModRevision = null, long LeaseId = 0)
    : StoreWrite(Key, ExpectedModRevision);

public sealed record StoreDelete(ResourceKey Key, long? ExpectedModRevision = null)
    : StoreWrite(Key, ExpectedModRevision);

/// <summary>Outcome of <see cref="IConfigStore.CommitAsync"/>.</summary>
/// <param name="Succeeded">False when a guard failed; nothing was written then.</param>
/// <param name="Revision">The new store revision on success, the current one on failure.</param>
/// <param name="Conflicts">Keys whose guard failed, with their current ModRevision (0 = absent).</param>
public sealed record CommitResult(bool Succeeded, long Revision, IReadOnlyList<(ResourceKey Key, long ActualModRevision)> Conflicts);

public enum WatchEventType { Put, Delete }

/// <summary>A change at <paramref name="Revision"/>; for deletes, Object holds the last value.</summary>
public sealed record WatchEvent(WatchEventType Type, StoredObject Object, long Revision);

/// <summary>A consistent read: every object of the asked kinds at one revision.</summary>
public sealed record StoreList(IReadOnlyList<StoredObject> Objects, long Revision);

/// <summary>Thrown by watches that ask for history the store has compacted away; relist and watch again.</summary>
public sealed class StoreCompactedException(long requested, long compactedTo)
    : Exception($"revision {requested} was compacted (oldest kept is {compactedTo}); list again and watch from the listed revision")
{
    public long Requested { get; } = requested;
    public long CompactedTo { get; } = compactedTo;
}

/// <summary>
/// The control plane's configuration store: a revisioned key-value store with atomic multi-key commits,
/// compare-and-swap, watches from a revision, and leases. The embedded default is SQLite; etcd and
/// the Kubernetes API server implement the same contract.
/// </summary>
public interface IConfigStore : IAsyncDisposable
{
    /// <summary>Short description for logs and status, e.g. "sqlite:/root/.trellis/trellis.db".</summary>
    string Description { get; }

    /// <summary>The revision of the last committed change (0 for an empty store).</summary>
    ValueTask<long> GetRevisionAsync(CancellationToken ct = default);

    ValueTask<StoredObject?> GetAsync(ResourceKey key, CancellationToken ct = default);

    /// <summary>All objects of <paramref name="kind"/> (every kind when null), optionally one namespace.</summary>
    ValueTask<StoreList> ListAsync(string? kind = null, string? @namespace = null, CancellationToken ct = default);

    /// <summary>Applies every write or none, in one transaction; durable when it returns success.</summary>
    ValueTask<CommitResult> CommitAsync(IReadOnlyList<StoreWrite> writes, CancellationToken ct = default);

    /// <summary>Every change with revision greater than <paramref name="afterRevision"/>, in order, then live changes
    /// until cancelled.</summary>
    IAsyncEnumerable<WatchEvent> WatchAsync(long afterRevision, CancellationToken ct = default);

    /// <summary>Grants a lease; keys put with it are deleted when it expires without a keep-alive.</summary>
    ValueTask<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default);

    /// <summary>Renews the lease for its TTL. Returns false when the lease no longer exists.</summary>
    ValueTask<bool> KeepAliveAsync(long leaseId, CancellationToken ct = default);

    /// <summary>Revokes the lease and deletes its keys at once.</summary>
    ValueTask RevokeLeaseAsync(long leaseId, CancellationToken ct = default);
}
