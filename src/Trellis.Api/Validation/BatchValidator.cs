using System.Net;
using System.Net.Sockets;
using Trellis.Api.Resources;
using Trellis.Api.Serialization;

namespace Trellis.Api.Validation;

/// <summary>One validation run over a batch and the stored resources it lands on.</summary>
internal sealed partial class BatchValidator
{
    internal static readonly string[] RetryOnValues =
    [
        "connect-failure", "refused-stream", "reset", "5xx", "gateway-error", "retriable-4xx",
        "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
    ];

    internal static readonly string[] FailoverLevels = ["zone", "region", "cluster"];

    internal static readonly string[] HttpMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

    internal static readonly string[] ExtensionKinds = ["FaultInjection", "RateLimit"];

    private readonly IReadOnlyList<ParsedResource> _batch;
    private readonly List<Resource> _stored;
    private readonly Dictionary<(string Namespace, string Name), Service> _services = [];
    private readonly HashSet<(string Kind, string Namespace, string Name)> _extensions = [];
    private readonly List<ValidationError> _errors = [];

    public BatchValidator(IReadOnlyList<ParsedResource> batch, IReadOnlyCollection<Resource> existing)
    {
        _batch = batch.Where(p => p?.Resource is not null).ToList();
        var replaced = _batch.Select(p => Key(p.Resource)).ToHashSet();
        _stored = existing.Where(r => r is not null && !replaced.Contains(Key(r))).ToList();
        foreach (var service in _stored.OfType<Service>().Concat(_batch.Select(p => p.Resource).OfType<Service>()))
        {
            _services[(service.Metadata.Namespace ?? "", service.Metadata.Name ?? "")] = service;
        }

        foreach (var r in _stored.Concat(_batch.Select(p => p.Resource)).Where(r => r is FaultInjection or RateLimit))
        {
            _extensions.Add(Key(r));
        }
    }

    public IReadOnlyList<ValidationError> Run()
    {
        CheckDuplicates();
        foreach (var item in _batch)
        {
            try
            {
                CheckMetadata(item);
                switch (item.Resource)
                {
                    case Service service:
                        CheckService(item, service.Spec);
                        break;
                    case WorkloadEntry entry:
                        CheckWorkloadEntry(item, entry.Spec);
                        break;
                    case HttpRoute route:
                        CheckHttpRoute(item, route);
                        break;
                    case GrpcRoute route:
                        CheckGrpcRoute(item, route);
                        break;
                    case TcpRoute route:
                        CheckTcpRoute(item, route);
                        break;
                    case TrafficPolicy policy:
                        CheckTrafficPolicy(item, policy);
                        break;
                    case FaultInjection fault:
                        CheckFaultInjection(item, fault);
                        break;
                    case RateLimit limit:
                        CheckRateLimit(item, limit);
                        break;
                    case MeshConfig mesh:
                        CheckMeshConfig(item, mesh.Spec);
                        break;
                }
            }
            catch (Exception ex) when (ex is NullReferenceException or ArgumentException or InvalidOperationException)
            {
                Report(item, "", $"could not be validated: {ex.Message}; a required field is probably missing");
            }
        }

        CheckRouteConflicts();
        CheckTargetConflicts<TrafficPolicy>(p => p.Spec.TargetRef);
        CheckTargetConflicts<FaultInjection>(p => p.Spec.TargetRef);
        CheckTargetConflicts<RateLimit>(p => p.Spec.TargetRef);
        CheckMeshConfigCount();
        return _errors;
    }

    private static (string Kind, string Namespace, string Name) Key(Resource r) =>
        (r.Kind, r.Metadata?.Namespace ?? "", r.Metadata?.Name ?? "");

    private void Report(ParsedResource item, string path, string message)
    {
        var (line, column) = item.Locate(path);
        _errors.Add(new ValidationError(item.File, item.Document, line, column, path, message) { Subject = item.Subject });
    }

    private static string Where(ParsedResource item) =>
        item.Document > 0 ? $"document {item.Document} of {item.File}" : $"{item.File}";

    // ---- metadata and duplicates ----

    private void CheckDuplicates()
    {
        var seen = new Dictionary<(string, string, string), ParsedResource>();
        foreach (var item in _batch)
        {
            var key = Key(item.Resource);
            if (seen.TryGetValue(key, out var first))
            {
                Report(item, "metadata.name",
                    $"{item.Subject} is defined twice in this apply: here and in {Where(first)}; keep one of them");
            }
            else
            {
                seen[key] = item;
            }
        }
    }

    private void CheckMetadata(ParsedResource item)
    {
        var meta = item.Resource.Metadata;
        if (string.IsNullOrEmpty(meta.Name))
        {
            Report(item, "metadata.name", "metadata.name is required");
        }
        else if (!Names.IsDnsLabel(meta.Name))
        {
            Report(item, "metadata.name", $"\"{meta.Name}\" is not a valid name: {Names.DnsLabelRule}");
        }

        var namespaced = ResourceKinds.ByKind(item.Resource.Kind)?.Namespaced ?? true;
        if (namespaced && !Names.IsDnsLabel(meta.Namespace))
        {
            Report(item, "metadata.namespace", $"\"{meta.Namespace}\" is not a valid namespace: {Names.DnsLabelRule}");
        }
        else if (!namespaced && !string.IsNullOrEmpty(meta.Namespace))
        {
            Report(item, "metadata.namespace", $"{item.Resource.Kind} is cluster-scoped; leave metadata.namespace out");
        }
    }

    // ---- Service ----

    private void CheckService(ParsedResource item, ServiceSpec spec)
    {
        var ports = spec.Ports ?? [];
        if (ports.Count == 0)
        {
            Report(item, "spec.ports", "a Service needs at least one port, e.g. {name: http, port: 8080, protocol: http}");
            return;
        }

        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        var numbers = new Dictionary<int, int>();
        for (var i = 0; i < ports.Count; i++)
        {
            var port = ports[i];
            var path = $"spec.ports[{i}]";
            if (string.IsNullOrEmpty(port.Name))
            {
                Report(item, path + ".name", "port name is required (WorkloadEntry ports and routes refer to it), e.g. http or grpc");
            }
            else if (!Names.IsDnsLabel(port.Name))
            {
                Report(item, path + ".name", $"\"{port.Name}\" is not a valid port name: {Names.DnsLabelRule}");
            }
            else if (names.TryGetValue(port.Name, out var other))
            {
                Report(item, path + ".name", $"port name \"{port.Name}\" is already used by spec.ports[{other}]; port names must be unique");
            }
            else
            {
                names[port.Name] = i;
            }

            if (!IsPort(port.Port))
            {
                Report(item, path + ".port", $"port {port.Port} is out of range; expected 1-65535");
            }
            else if (numbers.TryGetValue(port.Port, out var other))
            {
                Report(item, path + ".port", $"port {port.Port} is already declared by spec.ports[{other}]; port numbers must be unique");
            }
            else
            {
                numbers[port.Port] = i;
            }

            if (port.TargetPort is { } target && !IsPort(target))
            {
                Report(item, path + ".targetPort", $"targetPort {target} is out of range; expected 1-65535");
            }

            CheckEnum(item, path + ".protocol", port.Protocol);
        }

        CheckLabels(item, "spec.selector", spec.Selector);
    }

    // ---- WorkloadEntry ----

    private void CheckWorkloadEntry(ParsedResource item, WorkloadEntrySpec spec)
    {
        if (string.IsNullOrWhiteSpace(spec.Address))
        {
            Report(item, "spec.address", "address is required; write an IP address such as 10.0.0.12 or fd00::12");
        }
        else if (!IsIpLiteral(spec.Address))
        {
            var hostname = spec.Address.Any(char.IsAsciiLetter) && !spec.Address.Contains(':', StringComparison.Ordinal);
            Report(item, "spec.address", hostname
                ? $"\"{spec.Address}\" is not an IP address; hostnames are not allowed; write an IP address such as 10.0.0.12 or fd00::12"
                : $"\"{spec.Address}\" is not an IP address; write an IP address such as 10.0.0.12 or fd00::12");
        }

        foreach (var (name, port) in spec.Ports ?? new Dictionary<string, int>())
        {
            var path = FieldPath.Key("spec.ports", name);
            if (!Names.IsDnsLabel(name))
            {
                Report(item, path, $"\"{name}\" is not a valid port name (it names a Service port): {Names.DnsLabelRule}");
            }

            if (!IsPort(port))
            {
                Report(item, path, $"port {port} is out of range; expected 1-65535");
            }
        }

        if (spec.Weight < 1)
        {
            Report(item, "spec.weight", $"weight {spec.Weight} is too small; expected 1 or more");
        }

        CheckEnum(item, "spec.health", spec.Health);
        CheckLabels(item, "spec.labels", spec.Labels);
        if (spec.ServiceAccount is { Length: > 0 } account && !Names.IsDnsName(account))
        {
            Report(item, "spec.serviceAccount", $"\"{account}\" is not a valid service account name: lower-case letters, digits, '-' and '.'");
        }
    }

    private static bool IsIpLiteral(string s)
    {
        if (s.Contains(':', StringComparison.Ordinal))
        {
            return IPAddress.TryParse(s, out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6;
        }

        var parts = s.Split('.');
        return parts.Length == 4
               && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit) && int.Parse(p, System.Globalization.CultureInfo.InvariantCulture) <= 255);
    }

    // ---- shared helpers ----

    private static bool IsPort(int port) => port is >= 1 and <= 65535;

    private void CheckEnum<T>(ParsedResource item, string path, T value) where T : struct, Enum
    {
        if (!Enum.IsDefined(value))
        {
            Report(item, path, $"expected one of: {EnumNames.Expected(typeof(T))}");
        }
    }

    private void CheckLabels(ParsedResource item, string path, IReadOnlyDictionary<string, string>? labels)
    {
        foreach (var (key, value) in labels ?? new Dictionary<string, string>())
        {
            if (key.Length == 0 || key.Length > 253 || key.Any(char.IsWhiteSpace))
            {
                Report(item, FieldPath.Key(path, key), $"\"{key}\" is not a valid label key: 1-253 characters without spaces, e.g. app or app.kubernetes.io/name");
            }

            if (value is { Length: > 63 })
            {
                Report(item, FieldPath.Key(path, key), "label values are at most 63 characters");
            }
        }
    }

    /// <summary>Checks a reference to a Service (parentRef, backendRef, targetRef): kind, existence and port.</summary>
    private void CheckServiceRef(ParsedResource item, string path, string? group, string? kind, string? name, string? refNamespace, int? port)
    {
        if (group is { Length: > 0 } g && g is not ("core" or "trellis.dev"))
        {
            Report(item, path + ".group", $"group \"{g}\" is not supported; leave it out (or write core) for a Service");
        }

        if (kind != "Service")
        {
            Report(item, path + ".kind", $"kind \"{kind}\" is not supported here; expected Service");
            return;
        }

        if (string.IsNullOrEmpty(name))
        {
            Report(item, path + ".name", "name is required: the Service this refers to");
            return;
        }

        var ns = string.IsNullOrEmpty(refNamespace) ? item.Resource.Metadata.Namespace : refNamespace;
        if (!_services.TryGetValue((ns, name), out var service))
        {
            var candidates = _services.Keys.Where(k => k.Namespace == ns).Select(k => k.Name).Order(StringComparer.Ordinal).ToList();
            var inNamespace = ns == item.Resource.Metadata.Namespace ? "" : $" in namespace \"{ns}\"";
            var expected = candidates.Count == 0
                ? $"no Services exist in namespace \"{ns}\""
                : "expected one of: " + string.Join(", ", candidates.Take(20)) + (candidates.Count > 20 ? ", ..." : "");
            Report(item, path + ".name", $"Service \"{name}\" not found{inNamespace}; {expected}");
            return;
        }

        if (port is { } p && !(service.Spec.Ports ?? []).Any(sp => sp.Port == p))
        {
            var declared = string.Join(", ", (service.Spec.Ports ?? []).Select(sp => $"{sp.Port} ({sp.Name})"));
            Report(item, path + ".port", $"Service \"{name}\" has no port {p}; declared ports: {(declared.Length == 0 ? "none" : declared)}");
        }
    }
}
