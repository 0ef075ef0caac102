namespace Trellis.Xds;

/// <summary>
/// Names that both ends of the xDS link must agree on besides type URLs: HTTP filter names (keys of
/// typed_per_filter_config), the protocol-options key of a cluster, and Trellis's own cluster metadata.
/// </summary>
public static class ExtensionNames
{
    public const string RouterFilter = "envoy.filters.http.router";
    public const string FaultFilter = "envoy.filters.http.fault";
    public const string LocalRateLimitFilter = "envoy.filters.http.local_ratelimit";

    /// <summary>Key of Cluster.typed_extension_protocol_options holding upstream HTTP options.</summary>
    public const string UpstreamHttpProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

    /// <summary>Name of the TLS transport socket (Cluster.transport_socket, FilterChain.transport_socket).</summary>
    public const string TlsTransportSocket = "envoy.transport_sockets.tls";

    /// <summary>Name of the plaintext transport socket (the default when none is given).</summary>
    public const string RawBufferTransportSocket = "envoy.transport_sockets.raw_buffer";

    /// <summary>Cluster.metadata.filter_metadata namespace for what only Trellis proxies read.</summary>
    public const string TrellisMetadata = "trellis.dev";

    /// <summary>Field of the <see cref="TrellisMetadata"/> struct naming a balancer the Envoy enum lacks; lb_policy
    /// then holds what standard clients should use instead (ROUND_ROBIN).</summary>
    public const string LbPolicyKey = "lb_policy";

    /// <summary>Value of <see cref="LbPolicyKey"/> for the peak-EWMA balancer.</summary>
    public const string EwmaLbPolicy = "EWMA";
}
