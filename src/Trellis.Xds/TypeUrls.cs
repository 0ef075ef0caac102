namespace Trellis.Xds;

/// <summary>Type URLs of the Envoy v3 messages Trellis sends, as they appear in <c>Any</c> and in xDS requests.</summary>
public static class TypeUrls
{
    private const string Prefix = "type.googleapis.com/";

    public const string Listener = Prefix + "envoy.config.listener.v3.Listener";
    public const string RouteConfiguration = Prefix + "envoy.config.route.v3.RouteConfiguration";
    public const string Cluster = Prefix + "envoy.config.cluster.v3.Cluster";
    public const string ClusterLoadAssignment = Prefix + "envoy.config.endpoint.v3.ClusterLoadAssignment";
    public const string Secret = Prefix + "envoy.extensions.transport_sockets.tls.v3.Secret";

    public const string HttpConnectionManager =
        Prefix + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    public const string Router = Prefix + "envoy.extensions.filters.http.router.v3.Router";
    public const string HttpFault = Prefix + "envoy.extensions.filters.http.fault.v3.HTTPFault";
    public const string Rbac = Prefix + "envoy.extensions.filters.http.rbac.v3.RBAC";
    public const string LocalRateLimit = Prefix + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

    /// <summary>Per-route filter config wrapper (is_optional, disabled) inside typed_per_filter_config.</summary>
    public const string FilterConfig = Prefix + "envoy.config.route.v3.FilterConfig";

    /// <summary>Upstream HTTP options in Cluster.typed_extension_protocol_options.</summary>
    public const string UpstreamHttpProtocolOptions = Prefix + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    public const string TcpProxy = Prefix + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
    public const string UpstreamTlsContext = Prefix + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
    public const string DownstreamTlsContext = Prefix + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

    /// <summary>The five xDS resource types, in the order a client usually asks for them.</summary>
    public static IReadOnlyList<string> ResourceTypes { get; } =
        [Listener, RouteConfiguration, Cluster, ClusterLoadAssignment, Secret];

    /// <summary>
    /// Short protocol name of a resource type URL ("LDS", "RDS", "CDS", "EDS", "SDS"). Any other URL comes back
    /// as the message name after its last '/', so logging an odd request never throws.
    /// </summary>
    public static string ShortName(string typeUrl) => typeUrl switch
    {
        Listener => "LDS",
        RouteConfiguration => "RDS",
        Cluster => "CDS",
        ClusterLoadAssignment => "EDS",
        Secret => "SDS",
        null => string.Empty,
        _ => typeUrl[(typeUrl.LastIndexOf('/') + 1)..],
    };
}
