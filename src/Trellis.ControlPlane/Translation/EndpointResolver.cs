using Trellis.Api.Resources;
using Trellis.ControlPlane.Discovery;

namespace Trellis.ControlPlane.Translation;

/// <summary>Finds the instances of each service port: WorkloadEntries selected by labels, and registrations naming it.</summary>
internal static class EndpointResolver
{
    public static IReadOnlyList<ServiceEndpoint> Resolve(Service service, ServicePort port, MeshInputs inputs)
    {
        var ns = service.Metadata.Namespace;
        var result = new List<ServiceEndpoint>();
        var selector = service.Spec.Selector;
        if (selector is { Count: > 0 })
        {
            foreach (var we in inputs.WorkloadEntries)
            {
                if (we.Metadata.Namespace != ns || !Matches(selector, we.Spec.Labels))
                {
                    continue;
                }
                var instancePort = PortFor(we.Spec.Ports, port);
                result.Add(new ServiceEndpoint(
                    we.Spec.Address, instancePort,
                    string.IsNullOrEmpty(we.Spec.Cluster) ? inputs.LocalCluster : we.Spec.Cluster,
                    we.Spec.Locality?.Region ?? "", we.Spec.Locality?.Zone ?? "", we.Spec.Locality?.SubZone ?? "",
                    we.Spec.ServiceAccount, we.Spec.Health, Math.Max(1, we.Spec.Weight), XdsNames.Key(we)));
            }
        }
        foreach (var reg in inputs.Registrations)
        {
            if (reg.Namespace != ns || reg.Service != service.Metadata.Name)
            {
                continue;
            }
            int instancePort;
            if (reg.Ports.Count == 0)
            {
                instancePort = port.TargetPort ?? port.Port;
            }
            else if (reg.Ports.TryGetValue(port.Name, out var p) || reg.Ports.TryGetValue(port.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), out p))
            {
                instancePort = p;
            }
            else
            {
                continue; // the instance does not serve this port
            }
            result.Add(new ServiceEndpoint(
                reg.Address, instancePort, string.IsNullOrEmpty(reg.Cluster) ? inputs.LocalCluster : reg.Cluster,
                reg.Region ?? "", reg.Zone ?? "", "", reg.ServiceAccount, reg.HealthAt(inputs.Now), Math.Max(1, reg.Weight),
                "Registration/" + reg.Id));
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Source, b.Source) is var c and not 0 ? c : a.Port.CompareTo(b.Port));

        // One instance described twice (a WorkloadEntry and a registration, say) is one endpoint: clients reject
        // an endpoint set that lists the same address and port twice. Registrations sort first and win, since
        // their health is live.
        var seen = new HashSet<(string, int)>();
        result.RemoveAll(e => !seen.Add((e.Address, e.Port)));
        return result;
    }

    private static int PortFor(IReadOnlyDictionary<string, int>? ports, ServicePort port) =>
        ports is not null && ports.TryGetValue(port.Name, out var p) ? p : port.TargetPort ?? port.Port;

    public static bool Matches(IReadOnlyDictionary<string, string> selector, IReadOnlyDictionary<string, string>? labels)
    {
        if (labels is null)
        {
            return false;
        }
        foreach (var (k, v) in selector)
        {
            if (!labels.TryGetValue(k, out var actual) || actual != v)
            {
                return false;
            }
        }
        return true;
    }
}
