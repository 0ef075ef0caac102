using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Trellis.Api.Resources;
using Trellis.ControlPlane.Store;
using Trellis.ControlPlane.Translation;

namespace Trellis.ControlPlane.Discovery;

/// <summary>A registration request from a VM or bare-metal instance (POST /api/v1/registrations).</summary>
public sealed record RegistrationRequest
{
    public string Service { get; init; } = "";
    public string Namespace { get; init; } = "default";
    public string Address { get; init; } = "";

    /// <summary>Instance port of the service's only port (shorthand for Ports).</summary>
    public int? Port { get; init; }

    /// <summary>Service port name (or number) to instance port.</summary>
    public Dictionary<string, int>? Ports { get; init; }
    public Dictionary<string, string>? Labels { get; init; }
    public string? ServiceAccount { get; init; }
    public string? Region { get; init; }
    public string? Zone { get; init; }
    public string? Cluster { get; init; }
    public int? Weight { get; init; }

    /// <summary>Heartbeat deadline such as "30s"; the instance turns unhealthy when it passes without a heartbeat.</summary>
    public string? Ttl { get; init; }
}

/// <summary>The outcome of a registration call: the registration, or an error for the caller.</summary>
internal sealed record RegistrationOutcome(Registration? Registration, int StatusCode, string? Error);

/// <summary>
/// Registrations with TTL heartbeats. Each one is stored under a lease of TTL + grace: a missed heartbeat
/// turns the instance unhealthy when the TTL passes, and the lease's expiry removes it after the grace period.
/// </summary>
internal sealed class RegistrationService(IConfigStore store, TimeProvider time, ControlPlaneOptions options)
{
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromSeconds(30);

    public async Task<RegistrationOutcome> RegisterAsync(RegistrationRequest req, CancellationToken ct)
    {
        var ns = string.IsNullOrEmpty(req.Namespace) ? "default" : req.Namespace;
        if (string.IsNullOrEmpty(req.Service))
        {
            return new(null, 400, "service: required; name the Service this instance belongs to");
        }
        if (!IPAddress.TryParse(req.Address, out _))
        {
            return new(null, 400, $"address: \"{req.Address}\" is not an IP address; write the instance's IP (hostnames are not allowed)");
        }
        var ttl = DefaultTtl;
        if (req.Ttl is { Length: > 0 } ttlText && (!Api.Durations.TryParse(ttlText, out ttl) || ttl < TimeSpan.FromSeconds(1)))
        {
            return new(null, 400, $"ttl: \"{req.Ttl}\" is not a duration of at least 1s; write e.g. 30s");
        }
        var stored = await store.GetAsync(new ResourceKey("Service", ns, req.Service), ct).ConfigureAwait(false);
        if (stored is null)
        {
            return new(null, 404, $"service: Service \"{ns}/{req.Service}\" does not exist; apply it first (trellis apply -f service.yaml)");
        }
        var service = (Api.Resources.Service)Api.ResourceJson.Deserialize(stored.Json);
        var ports = req.Ports ?? [];
        if (req.Port is int single)
        {
            if (service.Spec.Ports.Count != 1 && ports.Count == 0)
            {
                return new(null, 400, $"port: Service \"{req.Service}\" has {service.Spec.Ports.Count} ports ({string.Join(", ", service.Spec.Ports.Select(p => p.Name))}); give ports as NAME=PORT");
            }
            ports = new Dictionary<string, int>(ports) { [service.Spec.Ports[0].Name] = single };
        }
        foreach (var (name, value) in ports)
        {
            if (!service.Spec.Ports.Any(p => p.Name == name || p.Port.ToString(System.Globalization.CultureInfo.InvariantCulture) == name))
            {
                return new(null, 400, $"ports: Service \"{req.Service}\" has no port \"{name}\"; it has {string.Join(", ", service.Spec.Ports.Select(p => $"{p.Name} ({p.Port})"))}");
            }
            if (value is < 1 or > 65535)
            {
                return new(null, 400, $"ports.{name}: {value} is not a port number (1-65535)");
            }
        }
        var id = IdFor(ns, req.Service, req.Address, ports);
        var now = time.GetUtcNow();
        var registration = new Registration
        {
            Id = id,
            Service = req.Service,
            Namespace = ns,
            Address = req.Address,
            Ports = ports,
            Labels = req.Labels ?? [],
            ServiceAccount = req.ServiceAccount,
            Region = req.Region,
            Zone = req.Zone,
            Cluster = req.Cluster,
            Weight = req.Weight ?? 1,
            Ttl = ttl,
            RegisteredAt = now,
            LastHeartbeat = now,
        };
        var key = Key(ns, id);
        var old = await store.GetAsync(key, ct).ConfigureAwait(false);
        if (old is not null && old.LeaseId != 0)
        {
            await store.RevokeLeaseAsync(old.LeaseId, ct).ConfigureAwait(false);
        }
        var lease = await store.GrantLeaseAsync(ttl + options.RegistrationGrace, ct).ConfigureAwait(false);
        var result = await store.CommitAsync([new StorePut(key, JsonSerializer.Serialize(registration, RegistrationJson.Options), null, lease)], ct).ConfigureAwait(false);
        return result.Succeeded ? new(registration, 201, null) : new(null, 409, "registration changed meanwhile; retry");
    }

    public async Task<RegistrationOutcome> HeartbeatAsync(string ns, string id, bool? draining, CancellationToken ct)
    {
        var key = Key(ns, id);
        var stored = await store.GetAsync(key, ct).ConfigureAwait(false);
        if (stored is null || !await store.KeepAliveAsync(stored.LeaseId, ct).ConfigureAwait(false))
        {
            return new(null, 404, $"registration \"{id}\" does not exist (it expired or was removed); register the instance again");
        }
        var reg = JsonSerializer.Deserialize<Registration>(stored.Json, RegistrationJson.Options)! with { LastHeartbeat = time.GetUtcNow() };
        if (draining is bool d)
        {
            reg = reg with { Draining = d };
        }
        var result = await store.CommitAsync([new StorePut(key, JsonSerializer.Serialize(reg, RegistrationJson.Options), stored.ModRevision, stored.LeaseId)], ct).ConfigureAwait(false);
        return result.Succeeded ? new(reg, 200, null) : new(null, 409, "registration changed meanwhile; retry the heartbeat");
    }

    public async Task<RegistrationOutcome> DeregisterAsync(string ns, string id, CancellationToken ct)
    {
        var stored = await store.GetAsync(Key(ns, id), ct).ConfigureAwait(false);
        if (stored is null)
        {
            return new(null, 404, $"registration \"{id}\" does not exist in namespace {ns}");
        }
        if (stored.LeaseId != 0)
        {
            await store.RevokeLeaseAsync(stored.LeaseId, ct).ConfigureAwait(false);
        }
        else
        {
            await store.CommitAsync([new StoreDelete(stored.Key)], ct).ConfigureAwait(false);
        }
        return new(JsonSerializer.Deserialize<Registration>(stored.Json, RegistrationJson.Options), 200, null);
    }

    private static ResourceKey Key(string ns, string id) => new(ConfigController.RegistrationKind, ns, id);

    /// <summary>Same instance, same id: registering again replaces the earlier registration.</summary>
    private static string IdFor(string ns, string service, string address, Dictionary<string, int> ports)
    {
        var text = $"{ns}/{service}/{address}/{string.Join(',', ports.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"))}";
        return $"{service}-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text))[..5])}";
    }
}
