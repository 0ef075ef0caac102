using Trellis.Api;
using Trellis.Api.Resources;
using Trellis.ControlPlane.Store;
using Trellis.ControlPlane.Translation;
using Trellis.ControlPlane.XdsServer;
using Trellis.Xds;

namespace Trellis.ControlPlane.Admin;

/// <summary>A file sent for apply or delete: its name (for error locations) and its text.</summary>
public sealed record SourceFile(string Name, string Content);

/// <summary>What happened to one resource of an apply.</summary>
public sealed record AppliedResource(string Kind, string Namespace, string Name, string Outcome, long? ResourceVersion);

/// <summary>The answer to an apply: either every change made, or every error and nothing changed.</summary>
public sealed record ApplyResult(bool Ok, long Revision, IReadOnlyList<AppliedResource> Resources, IReadOnlyList<ValidationError> Errors);

/// <summary>
/// Applies, reads and deletes mesh resources: parse every file, validate the whole batch against the store,
/// then write all of it in one transaction guarded by the revisions it was validated against, or nothing.
/// </summary>
internal sealed class ResourceService(IConfigStore store, ConfigController controller, SnapshotCache cache, ProxySyncRegistry proxies) : IDisposable
{
    // Applies are serialized in this process; the store's revision guards catch writers elsewhere.
    private readonly SemaphoreSlim _applyGate = new(1, 1);

    public void Dispose() => _applyGate.Dispose();

    public async Task<ApplyResult> ApplyAsync(IReadOnlyList<SourceFile> files, bool dryRun, CancellationToken ct)
    {
        var parsed = new List<ParsedResource>();
        var errors = new List<ValidationError>();
        foreach (var f in files)
        {
            var read = ResourceReader.Read(f.Content, f.Name);
            parsed.AddRange(read.Resources);
            errors.AddRange(read.Errors);
        }
        await _applyGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var existing = await LoadAsync(ct).ConfigureAwait(false);
            // Documents that failed to read are left out; the rest are still checked so one run reports everything.
            errors.AddRange(ResourceValidator.Validate(parsed, existing.Values.Select(e => e.Resource).ToList()));
            if (errors.Count > 0)
            {
                return new ApplyResult(false, await store.GetRevisionAsync(ct).ConfigureAwait(false), [], errors);
            }

            var writes = new List<StoreWrite>();
            var outcomes = new List<AppliedResource>();
            foreach (var p in parsed)
            {
                var r = Normalize(p.Resource);
                var key = KeyOf(r);
                var json = ResourceJson.Serialize(r);
                if (existing.TryGetValue(key, out var old))
                {
                    if (old.Json == json)
                    {
                        outcomes.Add(new AppliedResource(r.Kind, key.Namespace, key.Name, "unchanged", old.ModRevision));
                        continue;
                    }
                    writes.Add(new StorePut(key, json, old.ModRevision));
                    outcomes.Add(new AppliedResource(r.Kind, key.Namespace, key.Name, "configured", null));
                }
                else
                {
                    writes.Add(new StorePut(key, json, 0));
                    outcomes.Add(new AppliedResource(r.Kind, key.Namespace, key.Name, "created", null));
                }
            }
            return await CommitAsync(writes, outcomes, dryRun, ct).ConfigureAwait(false);
        }
        finally
        {
            _applyGate.Release();
        }
    }

    /// <summary>Creates or replaces one resource; <paramref name="expectedRevision"/> guards against lost updates.</summary>
    public async Task<ApplyResult> PutAsync(Resource resource, long? expectedRevision, CancellationToken ct)
    {
        var text = ResourceJson.Serialize(resource);
        var file = $"{resource.Kind}/{resource.Metadata.Name}";
        var read = ResourceReader.Read(text, file);
        if (!read.Ok)
        {
            return new ApplyResult(false, await store.GetRevisionAsync(ct).ConfigureAwait(false), [], read.Errors);
        }
        await _applyGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var existing = await LoadAsync(ct).ConfigureAwait(false);
            var errors = ResourceValidator.Validate(read.Resources, existing.Values.Select(e => e.Resource).ToList());
            if (errors.Count > 0)
            {
                return new ApplyResult(false, await store.GetRevisionAsync(ct).ConfigureAwait(false), [], errors);
            }
            var r = Normalize(read.Resources[0].Resource);
            var key = KeyOf(r);
            var found = existing.TryGetValue(key, out var old);
            var guard = expectedRevision ?? (found ? old.ModRevision : 0);
            var outcome = found ? "configured" : "created";
            return await CommitAsync([new StorePut(key, ResourceJson.Serialize(r), guard)],
                [new AppliedResource(r.Kind, key.Namespace, key.Name, outcome, null)], false, ct).ConfigureAwait(false);
        }
        finally
        {
            _applyGate.Release();
        }
    }

    /// <summary>Deletes the resources the files name (their specs are not checked); missing ones are reported, not errors.</summary>
    public async Task<ApplyResult> DeleteFilesAsync(IReadOnlyList<SourceFile> files, CancellationToken ct)
    {
        var keys = new List<ResourceKey>();
        var errors = new List<ValidationError>();
        foreach (var f in files)
        {
            var read = ResourceReader.Read(f.Content, f.Name);
            errors.AddRange(read.Errors);
            keys.AddRange(read.Resources.Select(p => KeyOf(Normalize(p.Resource))));
        }
        if (errors.Count > 0)
        {
            return new ApplyResult(false, await store.GetRevisionAsync(ct).ConfigureAwait(false), [], errors);
        }
        return await DeleteAsync(keys, null, ct).ConfigureAwait(false);
    }

    public async Task<ApplyResult> DeleteAsync(IReadOnlyList<ResourceKey> keys, long? expectedRevision, CancellationToken ct)
    {
        var writes = new List<StoreWrite>();
        var outcomes = new List<AppliedResource>();
        foreach (var key in keys.Distinct())
        {
            var old = await store.GetAsync(key, ct).ConfigureAwait(false);
            if (old is null)
            {
                outcomes.Add(new AppliedResource(key.Kind, key.Namespace, key.Name, "not found", null));
                continue;
            }
            writes.Add(new StoreDelete(key, expectedRevision ?? old.ModRevision));
            outcomes.Add(new AppliedResource(key.Kind, key.Namespace, key.Name, "deleted", old.ModRevision));
        }
        return await CommitAsync(writes, outcomes, false, ct).ConfigureAwait(false);
    }

    private async Task<ApplyResult> CommitAsync(List<StoreWrite> writes, List<AppliedResource> outcomes, bool dryRun, CancellationToken ct)
    {
        if (dryRun || writes.Count == 0)
        {
            return new ApplyResult(true, await store.GetRevisionAsync(ct).ConfigureAwait(false),
                dryRun ? outcomes.Select(o => o with { Outcome = o.Outcome + " (dry run)" }).ToList() : outcomes, []);
        }
        var result = await store.CommitAsync(writes, ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            var conflicts = result.Conflicts.Select(c => new ValidationError(c.Key.ToString(), 0, 0, 0, "metadata.resourceVersion",
                c.ActualModRevision == 0
                    ? "the resource was deleted by someone else meanwhile; read it again and retry"
                    : $"the resource changed meanwhile (now at revision {c.ActualModRevision}); read it again and retry")).ToList();
            return new ApplyResult(false, result.Revision, [], conflicts);
        }
        // Answer once translation has seen the change, so a `get` right after an apply shows its status.
        await controller.WaitForRevisionAsync(result.Revision, TimeSpan.FromSeconds(2), ct).ConfigureAwait(false);
        return new ApplyResult(true, result.Revision,
            outcomes.Select(o => o.ResourceVersion is null ? o with { ResourceVersion = result.Revision } : o).ToList(), []);
    }

    /// <summary>Resources of a kind (all namespaces when <paramref name="ns"/> is null), with status.</summary>
    public async Task<IReadOnlyList<Resource>> ListAsync(ResourceKindInfo kind, string? ns, CancellationToken ct)
    {
        var list = await store.ListAsync(kind.Kind, kind.Namespaced ? ns : null, ct).ConfigureAwait(false);
        return list.Objects.Select(o => WithStatus(Hydrate(o))).OrderBy(r => r.Metadata.Namespace, StringComparer.Ordinal)
            .ThenBy(r => r.Metadata.Name, StringComparer.Ordinal).ToList();
    }

    public async Task<Resource?> GetAsync(ResourceKindInfo kind, string ns, string name, CancellationToken ct)
    {
        var o = await store.GetAsync(new ResourceKey(kind.Kind, kind.Namespaced ? ns : "", name), ct).ConfigureAwait(false);
        return o is null ? null : WithStatus(Hydrate(o));
    }

    /// <summary>Adds what the control plane knows: accepted or not, and each proxy's ACK or NACK of the config carrying it.</summary>
    private Resource WithStatus(Resource r)
    {
        var key = XdsNames.Key(r);
        controller.Statuses.TryGetValue(key, out var st);
        var snapshot = cache.Current;
        var perProxy = new List<ProxyResourceStatus>();
        foreach (var conn in proxies.Connections)
        {
            string? state = null;
            string? error = null;
            foreach (var typeUrl in AdsService.PushOrder)
            {
                var (names, s, err) = conn.ResourceState(typeUrl);
                if (!names.Any(n => snapshot.Provenance.TryGetValue(typeUrl + "|" + n, out var from) && from.Contains(key)))
                {
                    continue;
                }
                if (s == "NACKED")
                {
                    state = "NACKED";
                    error = $"{TypeUrls.ShortName(typeUrl)}: {err}";
                }
                else if (s == "PENDING" && state != "NACKED")
                {
                    state = "PENDING";
                }
                else
                {
                    state ??= "ACKED";
                }
            }
            if (state is not null)
            {
                perProxy.Add(new ProxyResourceStatus { Node = conn.NodeId, State = state, Error = error });
            }
        }
        var reasons = st?.Reasons.ToList() ?? [];
        if (st is null)
        {
            reasons.Add("not yet processed by the control plane");
        }
        return r with
        {
            Status = new ResourceStatus
            {
                Accepted = st?.Accepted ?? false,
                Reasons = reasons.Count > 0 ? reasons : null,
                Proxies = perProxy.Count > 0 ? perProxy.OrderBy(p => p.Node, StringComparer.Ordinal).ToList() : null,
            },
        };
    }

    private static Resource Hydrate(StoredObject o)
    {
        var r = ResourceJson.Deserialize(o.Json);
        return r with { Metadata = r.Metadata with { ResourceVersion = o.ModRevision } };
    }

    private async Task<Dictionary<ResourceKey, (Resource Resource, string Json, long ModRevision)>> LoadAsync(CancellationToken ct)
    {
        var list = await store.ListAsync(ct: ct).ConfigureAwait(false);
        var result = new Dictionary<ResourceKey, (Resource, string, long)>();
        foreach (var o in list.Objects.Where(o => o.Key.Kind != ConfigController.RegistrationKind))
        {
            result[o.Key] = (ResourceJson.Deserialize(o.Json), o.Json, o.ModRevision);
        }
        return result;
    }

    /// <summary>Drops what the control plane owns (status, revisions) so stored JSON is the user's intent only.</summary>
    private static Resource Normalize(Resource r) =>
        r with { Status = null, Metadata = r.Metadata with { ResourceVersion = null, CreationTimestamp = null } };

    public static ResourceKey KeyOf(Resource r) => new(r.Kind, r.Metadata.Namespace, r.Metadata.Name);
}
