using System.Text.RegularExpressions;
using Envoy.Config.Core.V3;

namespace Trellis.ControlPlane.XdsServer;

/// <summary>Where a client runs, for locality-aware endpoint priorities.</summary>
internal readonly record struct ClientLocality(string Region, string Zone, string Cluster);

/// <summary>What kind of xDS client a stream serves.</summary>
internal enum ClientRole
{
    /// <summary>A proxyless gRPC client (or any client that dials xds:///NAME): gets api listeners.</summary>
    Proxyless,

    /// <summary>A Trellis sidecar (or Envoy) beside a workload: gets socket listeners, outbound and its own inbound.</summary>
    Sidecar,
}

/// <summary>Everything about a client that changes what it is sent.</summary>
/// <param name="Service">For a sidecar, the service of the workload it sits beside ("" when unknown).</param>
internal readonly partial record struct ClientView(ClientLocality Locality, ClientRole Role, string Service, string Namespace)
{
    /// <summary>Node metadata key that marks a sidecar (value "sidecar"); the node id NAME.NS~HOST~PID does too.</summary>
    public const string ProxyMetadataKey = "trellis.proxy";

    /// <summary>
    /// Reads the node: locality from node.locality, the cluster from metadata "cluster" (else the control plane's
    /// own), the role from metadata "trellis.proxy" or a sidecar-style id, the service from the id or from
    /// metadata "trellis.service" and "trellis.namespace".
    /// </summary>
    public static ClientView Of(Node node, string defaultCluster)
    {
        var cluster = Meta(node, "cluster") ?? defaultCluster;
        var locality = new ClientLocality(node.Locality?.Region ?? "", node.Locality?.Zone ?? "", cluster);
        var id = SidecarId().Match(node.Id);
        var isSidecar = Meta(node, ProxyMetadataKey) == "sidecar" || id.Success;
        if (!isSidecar)
        {
            return new ClientView(locality, ClientRole.Proxyless, "", "");
        }
        var service = Meta(node, "trellis.service") ?? (id.Success ? id.Groups["svc"].Value : "");
        var ns = Meta(node, "trellis.namespace") ?? (id.Success ? id.Groups["ns"].Value : "default");
        return new ClientView(locality, ClientRole.Sidecar, service, ns);
    }

    private static string? Meta(Node node, string key) =>
        node.Metadata?.Fields.TryGetValue(key, out var v) == true && v.StringValue is { Length: > 0 } s ? s : null;

    [GeneratedRegex(@"^(?<svc>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)~[^~]+~[0-9]+$")]
    private static partial Regex SidecarId();
}
