using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Security.Cryptography;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace Trellis.ControlPlane.XdsServer;

/// <summary>One xDS resource ready to send: its name, its Any payload and a content-derived version.</summary>
/// <remarks>The version is a hash of the serialized bytes, so the same configuration has the same versions
/// after a control-plane restart and a reconnecting delta client that already holds it receives nothing.</remarks>
internal sealed class XdsResource
{
    public XdsResource(string name, IMessage message)
    {
        Name = name;
        Any = Any.Pack(message);
        Version = ContentVersion.Of(Any.Value.Span);
    }

    public string Name { get; }
    public Any Any { get; }
    public string Version { get; }
}

/// <summary>
/// The resources a state-of-the-world subscription holds, ordered by name, with the version of exactly that set.
/// Shared by every stream with the same subscription to the same snapshot.
/// </summary>
internal sealed class XdsSelection(IReadOnlyList<XdsResource> resources, string version)
{
    private FrozenDictionary<string, XdsResource>? _byName;
    // Keyed weakly: a selection no stream holds any more can go, instead of every selection keeping its predecessor.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<XdsSelection, IReadOnlyList<XdsResource>> _changedSince = new();

    public IReadOnlyList<XdsResource> Resources { get; } = resources;
    public IReadOnlyList<string> Names { get; } = resources.Select(r => r.Name).ToArray();
    public string Version { get; } = version;

    /// <summary>
    /// The resources that are new or different compared with <paramref name="previous"/>. Worked out once per pair
    /// of selections: every stream that held the same selection asks the same question.
    /// </summary>
    public IReadOnlyList<XdsResource> ChangedSince(XdsSelection previous) =>
        _changedSince.GetValue(previous, p =>
        {
            var before = p._byName ??= p.Resources.ToFrozenDictionary(r => r.Name, StringComparer.Ordinal);
            return Resources.Where(r => !before.TryGetValue(r.Name, out var old) || old.Version != r.Version).ToArray();
        });
}

/// <summary>All resources of one type URL in a snapshot.</summary>
internal sealed class XdsResourceSet
{
    public static readonly XdsResourceSet Empty = new([]);

    // Selections by subscription key (see SubscriptionKey). A snapshot is immutable, so each distinct subscription
    // is resolved once per snapshot however many streams hold it; the cache goes away with the snapshot.
    private readonly ConcurrentDictionary<string, XdsSelection> _selections = new(StringComparer.Ordinal);

    public XdsResourceSet(IEnumerable<XdsResource> resources)
    {
        Items = resources.ToFrozenDictionary(r => r.Name, StringComparer.Ordinal);
        var sorted = Items.Values.OrderBy(r => r.Name, StringComparer.Ordinal).ToArray();
        Version = ContentVersion.Of(sorted.Select(r => r.Name + "=" + r.Version));
        All = new XdsSelection(sorted, Version);
    }

    public FrozenDictionary<string, XdsResource> Items { get; }

    /// <summary>Hash over every name and version of the set.</summary>
    public string Version { get; }

    /// <summary>The whole set, which is what a wildcard subscription holds (named extras are in it or absent).</summary>
    public XdsSelection All { get; }

    /// <summary>A canonical key for a named subscription: the distinct names, sorted, one per line.</summary>
    public static string SubscriptionKey(IEnumerable<string> names) =>
        string.Join('\n', names.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));

    /// <summary>What a subscription holds; <paramref name="key"/> must be <see cref="SubscriptionKey"/> of <paramref name="names"/>.</summary>
    public XdsSelection Select(bool wildcard, string key, IEnumerable<string> names)
    {
        if (wildcard)
        {
            return All;
        }
        if (_selections.TryGetValue(key, out var cached))
        {
            return cached;
        }
        var list = names.Distinct(StringComparer.Ordinal).Where(Items.ContainsKey).Order(StringComparer.Ordinal).Select(n => Items[n]).ToArray();
        var selection = new XdsSelection(list, ContentVersion.Of(list.Select(r => r.Name + "=" + r.Version)));
        return _selections.GetOrAdd(key, selection);
    }
}

/// <summary>
/// An immutable, consistent set of xDS resources for one proxy group: every RDS name a listener names and
/// every EDS name a cluster names is present. Built by translation, published by one atomic swap.
/// </summary>
internal sealed class XdsSnapshot
{
    private readonly Func<XdsSnapshot, ClientView, XdsSnapshot>? _viewBuilder;
    private readonly ConcurrentDictionary<ClientView, XdsSnapshot> _views = new();

    /// <param name="viewBuilder">Builds what one kind of client sees (its locality's endpoint priorities, a sidecar's
    /// own listeners); returns the snapshot itself when nothing differs. Used by <see cref="ForClient"/>.</param>
    /// <param name="viewsVersion">A digest of what the views add beyond the published resources (e.g. sidecar-only
    /// cluster settings): part of <see cref="Version"/>, so a change that only a view shows is still published.</param>
    public XdsSnapshot(
        long sequence, IReadOnlyDictionary<string, XdsResourceSet> byType, IReadOnlyDictionary<string, IReadOnlyList<string>>? provenance = null,
        Func<XdsSnapshot, ClientView, XdsSnapshot>? viewBuilder = null, string? viewsVersion = null)
    {
        Sequence = sequence;
        ByType = byType.ToFrozenDictionary(StringComparer.Ordinal);
        Provenance = (provenance ?? new Dictionary<string, IReadOnlyList<string>>()).ToFrozenDictionary(StringComparer.Ordinal);
        _viewBuilder = viewBuilder;
        Version = ContentVersion.Of(ByType.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value.Version)
            .Append("views=" + viewsVersion));
    }

    /// <summary>Increases with every publish; orders snapshots in logs and status.</summary>
    public long Sequence { get; }

    /// <summary>Hash over every type's version.</summary>
    public string Version { get; }

    public FrozenDictionary<string, XdsResourceSet> ByType { get; }

    /// <summary>For each "typeUrl|name", the mesh resources ("Kind/ns/name") it was built from.</summary>
    public FrozenDictionary<string, IReadOnlyList<string>> Provenance { get; }

    public XdsResourceSet Get(string typeUrl) => ByType.TryGetValue(typeUrl, out var set) ? set : XdsResourceSet.Empty;

    /// <summary>
    /// The snapshot as one client sees it: endpoint priorities relative to its locality, and for a sidecar its
    /// socket listeners instead of the proxyless api listeners. Built once per distinct view per snapshot.
    /// </summary>
    public XdsSnapshot ForClient(ClientView view) =>
        _viewBuilder is null ? this : _views.GetOrAdd(view, v => _viewBuilder(this, v));

    /// <summary>A copy with some types replaced (same sequence and provenance, no further views).</summary>
    public XdsSnapshot With(IReadOnlyDictionary<string, XdsResourceSet> replaced)
    {
        var byType = new Dictionary<string, XdsResourceSet>(ByType, StringComparer.Ordinal);
        foreach (var (type, set) in replaced)
        {
            byType[type] = set;
        }
        return new XdsSnapshot(Sequence, byType, Provenance);
    }

    public static XdsSnapshot Empty { get; } = new(0, new Dictionary<string, XdsResourceSet>());
}

/// <summary>Short, stable content hashes used as xDS versions.</summary>
internal static class ContentVersion
{
    public static string Of(ReadOnlySpan<byte> bytes)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(bytes, hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    public static string Of(IEnumerable<string> parts)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in parts)
        {
            h.AppendData(System.Text.Encoding.UTF8.GetBytes(p));
            h.AppendData("\n"u8);
        }
        Span<byte> hash = stackalloc byte[32];
        h.GetHashAndReset(hash);
        return Convert.ToHexStringLower(hash[..8]);
    }
}
