using Envoy.Config.Core.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Http.Router.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Extensions.Filters.Network.TcpProxy.V3;
using Google.Protobuf.WellKnownTypes;
using Trellis.Api.Resources;
using Trellis.ControlPlane.XdsServer;
using ApiService = Trellis.Api.Resources.Service;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;
using EnvoyEndpoint = Envoy.Config.Endpoint.V3.Endpoint;
using EnvoyRoute = Envoy.Config.Route.V3.Route;

namespace Trellis.ControlPlane.Translation;

/// <summary>
/// Socket listeners for sidecars. Outbound: one listener on the capture port (15001) whose HTTP traffic is routed
/// by Host through one route configuration holding a virtual host per service port, and whose TCP service ports
/// get a filter chain each (matched on the original destination port). Inbound: per service, one listener on
/// 15006 with a filter chain per port, sending to a static cluster for the local application.
/// </summary>
internal sealed class SidecarResources
{
    public const string OutboundListenerName = "trellis.outbound";
    public const string OutboundRouteName = "trellis.outbound.http";
    public const uint OutboundPort = 15001;
    public const uint InboundPort = 15006;

    public static string InboundListenerName(string service, string ns) => $"trellis.inbound|{service}.{ns}";

    public static string InboundClusterName(string service, string ns, int port) => $"inbound|{port}|{service}.{ns}";

    private readonly List<VirtualHost> _virtualHosts = [];
    private readonly List<FilterChain> _tcpChains = [];
    private readonly Dictionary<uint, string> _tcpPorts = [];
    private readonly Dictionary<(string Ns, string Service), (List<FilterChain> Chains, List<XdsResource> Clusters)> _inbound = [];

    /// <summary>Adds one service port: its outbound virtual host or TCP chain, and its inbound chain and cluster.</summary>
    public void Add(ApiService svc, ServicePort port, bool firstPort, RouteConfiguration portRoutes, Action<string> note)
    {
        var ns = svc.Metadata.Namespace;
        var name = XdsNames.ServicePort(svc.Metadata.Name, ns, port.Port);
        var tcp = port.Protocol == ServiceProtocol.Tcp;
        if (tcp)
        {
            if (_tcpPorts.TryGetValue((uint)port.Port, out var owner))
            {
                note($"outbound TCP port {port.Port} is already taken by {owner}; sidecars reach this port only through an explicit upstream listener");
            }
            else
            {
                _tcpPorts[(uint)port.Port] = name;
                _tcpChains.Add(new FilterChain
                {
                    Name = name,
                    FilterChainMatch = new FilterChainMatch { DestinationPort = (uint)port.Port },
                    Filters = { TcpFilter(name, name) },
                });
            }
        }
        else
        {
            var vhost = portRoutes.VirtualHosts[0].Clone();
            vhost.Name = name;
            vhost.Domains.Clear();
            vhost.Domains.AddRange(HostNames(svc.Metadata.Name, ns, port.Port, firstPort));
            _virtualHosts.Add(vhost);
        }

        // Inbound: what arrives for this port goes to the application on 127.0.0.1.
        var appPort = port.TargetPort ?? port.Port;
        var inboundCluster = InboundClusterName(svc.Metadata.Name, ns, port.Port);
        var cluster = new EnvoyCluster
        {
            Name = inboundCluster,
            Type = EnvoyCluster.Types.DiscoveryType.Static,
            ConnectTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(5)),
            LoadAssignment = new ClusterLoadAssignment
            {
                ClusterName = inboundCluster,
                Endpoints =
                {
                    new LocalityLbEndpoints
                    {
                        LbEndpoints = { new LbEndpoint { Endpoint = new EnvoyEndpoint { Address = Socket("127.0.0.1", (uint)appPort) } } },
                    },
                },
            },
        };
        var chain = new FilterChain
        {
            Name = inboundCluster,
            FilterChainMatch = new FilterChainMatch { DestinationPort = (uint)appPort },
            Filters = { tcp ? TcpFilter(inboundCluster, inboundCluster) : HttpFilterTo(inboundCluster) },
        };
        if (!_inbound.TryGetValue((ns, svc.Metadata.Name), out var inbound))
        {
            _inbound[(ns, svc.Metadata.Name)] = inbound = ([], []);
        }
        inbound.Chains.Add(chain);
        inbound.Clusters.Add(new XdsResource(inboundCluster, cluster));
    }

    /// <summary>The shared outbound listener.</summary>
    public XdsResource OutboundListener()
    {
        var hcm = new HttpConnectionManager
        {
            StatPrefix = "outbound",
            Rds = new Rds { RouteConfigName = OutboundRouteName, ConfigSource = new ConfigSource { Ads = new AggregatedConfigSource(), ResourceApiVersion = Envoy.Config.Core.V3.ApiVersion.V3 } },
        };
        hcm.HttpFilters.AddRange(RouteFilters.ChainFor(_virtualHosts));
        var listener = new Listener
        {
            Name = OutboundListenerName,
            Address = Socket("0.0.0.0", OutboundPort),
            TrafficDirection = TrafficDirection.Outbound,
            DefaultFilterChain = new FilterChain { Name = "http", Filters = { new Filter { Name = "envoy.filters.network.http_connection_manager", TypedConfig = Any.Pack(hcm) } } },
        };
        listener.FilterChains.AddRange(_tcpChains);
        return new XdsResource(OutboundListenerName, listener);
    }

    /// <summary>The outbound route configuration: one virtual host per HTTP service port, selected by Host.</summary>
    public XdsResource OutboundRoutes()
    {
        var rc = new RouteConfiguration { Name = OutboundRouteName };
        rc.VirtualHosts.AddRange(_virtualHosts);
        return new XdsResource(OutboundRouteName, rc);
    }

    /// <summary>The inbound listener and local clusters of one service's sidecars, if the service exists.</summary>
    public (XdsResource Listener, IReadOnlyList<XdsResource> Clusters)? Inbound(string ns, string service)
    {
        if (!_inbound.TryGetValue((ns, service), out var inbound))
        {
            return null;
        }
        var name = InboundListenerName(service, ns);
        var listener = new Listener
        {
            Name = name,
            Address = Socket("0.0.0.0", InboundPort),
            TrafficDirection = TrafficDirection.Inbound,
            // A call that names no port we know (explicit mode dials 15006 itself) goes to the first port.
            DefaultFilterChain = inbound.Chains[0].Clone(),
        };
        listener.DefaultFilterChain.FilterChainMatch = null;
        listener.DefaultFilterChain.Name = "default";
        listener.FilterChains.AddRange(inbound.Chains);
        return (new XdsResource(name, listener), inbound.Clusters);
    }

    /// <summary>Host names callers use for a service port; the bare names go to the first port only.</summary>
    private static IEnumerable<string> HostNames(string service, string ns, int port, bool firstPort)
    {
        var names = new List<string> { $"{service}.{ns}:{port}", $"{service}.{ns}.svc.cluster.local:{port}", $"{service}.{ns}.svc:{port}" };
        if (ns == "default")
        {
            names.Add($"{service}:{port}");
        }
        if (firstPort)
        {
            names.AddRange([$"{service}.{ns}", $"{service}.{ns}.svc.cluster.local", $"{service}.{ns}.svc"]);
            if (ns == "default")
            {
                names.Add(service);
            }
        }
        return names;
    }

    private static Address Socket(string ip, uint port) => new() { SocketAddress = new SocketAddress { Address = ip, PortValue = port } };

    private static HttpFilter RouterFilter() => new() { Name = Trellis.Xds.ExtensionNames.RouterFilter, TypedConfig = Any.Pack(new Router()) };

    private static Filter TcpFilter(string statPrefix, string cluster) =>
        new() { Name = "envoy.filters.network.tcp_proxy", TypedConfig = Any.Pack(new TcpProxy { StatPrefix = statPrefix, Cluster = cluster }) };

    private static Filter HttpFilterTo(string cluster)
    {
        var vhost = new VirtualHost { Name = cluster, Domains = { "*" } };
        vhost.Routes.Add(new EnvoyRoute { Name = "local", Match = new RouteMatch { Prefix = "/" }, Route_ = new RouteAction { Cluster = cluster } });
        var hcm = new HttpConnectionManager { StatPrefix = cluster, RouteConfig = new RouteConfiguration { Name = cluster, VirtualHosts = { vhost } } };
        hcm.HttpFilters.Add(RouterFilter());
        return new Filter { Name = "envoy.filters.network.http_connection_manager", TypedConfig = Any.Pack(hcm) };
    }
}
