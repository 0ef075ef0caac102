using Envoy.Config.Core.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Http.Router.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Extensions.Filters.Network.TcpProxy.V3;
using Envoy.Service.Discovery.V3;
using Envoy.Type.Matcher.V3;
using Google.Protobuf.WellKnownTypes;
using Trellis.Proxy.Model;
using Trellis.Proxy.XdsClient;
using Trellis.Xds;
using Xunit;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;

namespace Trellis.Proxy.Tests;

public sealed class ModelCompilerTests
{
    internal static Listener HttpListener(string name, string rds, string ip = "0.0.0.0")
    {
        var hcm = new HttpConnectionManager { StatPrefix = "x", Rds = new Rds { RouteConfigName = rds, ConfigSource = new ConfigSource { Ads = new AggregatedConfigSource() } } };
        hcm.HttpFilters.Add(new HttpFilter { Name = "envoy.filters.http.router", TypedConfig = Any.Pack(new Router()) });
        return new Listener
        {
            Name = name,
            Address = new Address { SocketAddress = new Envoy.Config.Core.V3.SocketAddress { Address = ip, PortValue = 15001 } },
            TrafficDirection = TrafficDirection.Outbound,
            DefaultFilterChain = new FilterChain { Name = "http", Filters = { new Filter { Name = "hcm", TypedConfig = Any.Pack(hcm) } } },
        };
    }

    internal static FilterChain TcpChain(string cluster, uint port) => new()
    {
        Name = cluster,
        FilterChainMatch = new FilterChainMatch { DestinationPort = port },
        Filters = { new Filter { Name = "tcp", TypedConfig = Any.Pack(new TcpProxy { StatPrefix = cluster, Cluster = cluster }) } },
    };

    internal static RouteConfiguration Routes(string name, string cluster, string? regex = null)
    {
        var match = regex is null ? new RouteMatch { Prefix = "/" } : new RouteMatch { SafeRegex = new RegexMatcher { Regex = regex } };
        var vh = new VirtualHost { Name = "web", Domains = { "web", "web:8080" } };
        vh.Routes.Add(new Route { Name = "r0", Match = match, Route_ = new RouteAction { Cluster = cluster, Timeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(3)) } });
        return new RouteConfiguration { Name = name, VirtualHosts = { vh } };
    }

    internal static EnvoyCluster EdsCluster(string name) => new()
    {
        Name = name,
        Type = EnvoyCluster.Types.DiscoveryType.Eds,
        EdsClusterConfig = new EnvoyCluster.Types.EdsClusterConfig { EdsConfig = new ConfigSource { Ads = new AggregatedConfigSource() } },
        ConnectTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(2)),
    };

    internal static ClusterLoadAssignment Cla(string name, string ip, uint port, HealthStatus health = HealthStatus.Healthy) => new()
    {
        ClusterName = name,
        Endpoints =
        {
            new LocalityLbEndpoints
            {
                Locality = new Locality { Region = "local", Zone = "a" },
                LoadBalancingWeight = 1,
                LbEndpoints = { new LbEndpoint { HealthStatus = health, Endpoint = new Envoy.Config.Endpoint.V3.Endpoint { Address = new Address { SocketAddress = new Envoy.Config.Core.V3.SocketAddress { Address = ip, PortValue = port } } } } },
            },
        },
    };

    private static XdsResources Set(Listener? l = null, RouteConfiguration? rc = null, EnvoyCluster? c = null, ClusterLoadAssignment? cla = null)
    {
        var r = XdsResources.Empty;
        if (l is not null) { r = r with { Listeners = new Dictionary<string, XdsEntry<Listener>> { [l.Name] = new("1", l) } }; }
        if (rc is not null) { r = r with { Routes = new Dictionary<string, XdsEntry<RouteConfiguration>> { [rc.Name] = new("1", rc) } }; }
        if (c is not null) { r = r with { Clusters = new Dictionary<string, XdsEntry<EnvoyCluster>> { [c.Name] = new("1", c) }, ClustersReceived = true }; }
        if (cla is not null) { r = r with { Endpoints = new Dictionary<string, XdsEntry<ClusterLoadAssignment>> { [cla.ClusterName] = new("1", cla) } }; }
        return r;
    }

    [Fact]
    public void Compile_ConsistentSet_IsCompleteWithEverything()
    {
        var l = HttpListener("trellis.outbound", "trellis.outbound.http");
        l.FilterChains.Add(TcpChain("db", 5432));
        var r = Set(l, Routes("trellis.outbound.http", "web"), EdsCluster("web"), Cla("web", "127.0.0.1", 8080))
            with { Clusters = new Dictionary<string, XdsEntry<EnvoyCluster>> { ["web"] = new("1", EdsCluster("web")), ["db"] = new("1", EdsCluster("db")) } };
        r = r with { Endpoints = new Dictionary<string, XdsEntry<ClusterLoadAssignment>> { ["web"] = new("1", Cla("web", "127.0.0.1", 8080)), ["db"] = new("1", Cla("db", "127.0.0.1", 5432)) } };

        var result = ModelCompiler.Compile(r);

        Assert.Empty(result.Errors);
        Assert.True(result.Complete);
        var listener = result.Model.Listeners["trellis.outbound"];
        Assert.Equal(15001, listener.Address.Port);
        Assert.Equal("trellis.outbound.http", listener.DefaultChain!.RouteTableName);
        Assert.Equal(5432, listener.Chains[0].DestinationPort);
        Assert.Equal("db", listener.Chains[0].TcpCluster);
        var route = result.Model.Routes["trellis.outbound.http"].VirtualHosts[0].Routes[0];
        Assert.Equal("web", route.Clusters[0].Cluster);
        Assert.Equal(TimeSpan.FromSeconds(3), route.Timeout);
        var ep = Assert.Single(result.Model.Clusters["web"].Endpoints);
        Assert.Equal(8080, ep.Address.Port);
        Assert.Equal(EndpointHealthKind.Healthy, ep.Health);
        Assert.Equal(["trellis.outbound.http"], result.RouteNames);
        Assert.Equal(["db", "web"], result.EdsNames);
        Assert.NotEmpty(result.Model.Version);
    }

    [Fact]
    public void Compile_RouteTableNotArrived_IsIncompleteNotInvalid()
    {
        var result = ModelCompiler.Compile(Set(HttpListener("l", "rt"), c: EdsCluster("web"), cla: Cla("web", "127.0.0.1", 1)));

        Assert.Empty(result.Errors);
        Assert.False(result.Complete);
        Assert.Contains("route configuration rt", result.Missing);
    }

    [Fact]
    public void Compile_RegexNotCompilable_ErrorNamesResourceAndField()
    {
        var result = ModelCompiler.Compile(Set(HttpListener("l", "rt"), Routes("rt", "web", regex: "(unclosed"), EdsCluster("web"), Cla("web", "127.0.0.1", 1)));

        var error = Assert.Single(result.Errors);
        Assert.Contains("route configuration rt: virtual_host 'web': routes[0] 'r0': match.safe_regex.regex: '(unclosed'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_BacktrackingOnlyRegex_IsRejected()
    {
        var result = ModelCompiler.Compile(Set(HttpListener("l", "rt"), Routes("rt", "web", regex: @"(a)\1"), EdsCluster("web"), Cla("web", "127.0.0.1", 1)));

        Assert.Contains(result.Errors, e => e.Contains("NonBacktracking", StringComparison.Ordinal));
    }

    [Fact]
    public void Compile_ListenerAddressNotIp_ErrorNamesField()
    {
        var result = ModelCompiler.Compile(Set(HttpListener("l", "rt", ip: "localhost")));

        Assert.Contains("listener l: address.socket_address.address: 'localhost' is not an IP literal", result.Errors);
    }

    [Fact]
    public void Compile_EndpointAddressNotIp_Rejected()
    {
        var result = ModelCompiler.Compile(Set(c: EdsCluster("web"), cla: Cla("web", "db.example", 1)));

        Assert.Contains(result.Errors, e => e.StartsWith("cluster load assignment web: endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address", StringComparison.Ordinal));
    }

    [Fact]
    public void Compile_TcpChainUnknownCluster_Rejected()
    {
        var l = HttpListener("l", "rt");
        l.FilterChains.Add(TcpChain("missing", 5432));

        var result = ModelCompiler.Compile(Set(l, Routes("rt", "web"), EdsCluster("web"), Cla("web", "127.0.0.1", 1)));

        Assert.Contains("listener l: filter chain 'missing': tcp_proxy.cluster 'missing' is not a known cluster", result.Errors);
    }

    [Fact]
    public void Compile_UnsupportedHttpFilter_Rejected()
    {
        var l = HttpListener("l", "rt");
        var hcm = l.DefaultFilterChain.Filters[0].TypedConfig.Unpack<HttpConnectionManager>();
        hcm.HttpFilters.Insert(0, new HttpFilter { Name = "lua", TypedConfig = Any.Pack(new Empty()) });
        l.DefaultFilterChain.Filters[0].TypedConfig = Any.Pack(hcm);

        var result = ModelCompiler.Compile(Set(l, Routes("rt", "web"), EdsCluster("web"), Cla("web", "127.0.0.1", 1)));

        Assert.Contains(result.Errors, e => e.Contains("http_filters[0] 'lua': unsupported filter type 'type.googleapis.com/google.protobuf.Empty'", StringComparison.Ordinal));
    }

    [Fact]
    public void Compile_OptionalUnknownHttpFilter_Accepted()
    {
        var l = HttpListener("l", "rt");
        var hcm = l.DefaultFilterChain.Filters[0].TypedConfig.Unpack<HttpConnectionManager>();
        hcm.HttpFilters.Insert(0, new HttpFilter { Name = "lua", IsOptional = true, TypedConfig = Any.Pack(new Empty()) });
        l.DefaultFilterChain.Filters[0].TypedConfig = Any.Pack(hcm);

        var result = ModelCompiler.Compile(Set(l, Routes("rt", "web"), EdsCluster("web"), Cla("web", "127.0.0.1", 1)));

        Assert.Empty(result.Errors);
    }

    [Fact]
    public void ApplyDelta_ResourceOfWrongType_IsAnError()
    {
        var response = new DeltaDiscoveryResponse { TypeUrl = TypeUrls.Listener, Nonce = "1" };
        response.Resources.Add(new Resource { Name = "x", Version = "1", Resource_ = Any.Pack(EdsCluster("x")) });

        var (_, error) = AdsClient.ApplyDelta(XdsResources.Empty, response);

        Assert.Contains("resource x: type type.googleapis.com/envoy.config.cluster.v3.Cluster in a", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ApplyDelta_AddThenRemove_TracksResources()
    {
        var add = new DeltaDiscoveryResponse { TypeUrl = TypeUrls.Cluster, Nonce = "1" };
        add.Resources.Add(new Resource { Name = "a", Version = "v1", Resource_ = Any.Pack(EdsCluster("a")) });
        add.Resources.Add(new Resource { Name = "b", Version = "v1", Resource_ = Any.Pack(EdsCluster("b")) });
        var (after, _) = AdsClient.ApplyDelta(XdsResources.Empty, add);
        var remove = new DeltaDiscoveryResponse { TypeUrl = TypeUrls.Cluster, Nonce = "2", RemovedResources = { "a" } };

        var (final, error) = AdsClient.ApplyDelta(after, remove);

        Assert.Null(error);
        Assert.Equal(["b"], final.Clusters.Keys);
        Assert.True(final.ClustersReceived);
    }

    [Fact]
    public void Backoff_GrowsExponentiallyWithJitterAndCaps()
    {
        var random = new Random(7);
        var initial = TimeSpan.FromMilliseconds(100);
        var max = TimeSpan.FromSeconds(2);

        for (var attempt = 0; attempt < 12; attempt++)
        {
            var d = AdsClient.Backoff(attempt, initial, max, random);
            var ceiling = Math.Min(100 * Math.Pow(2, attempt), 2000);
            Assert.InRange(d.TotalMilliseconds, ceiling / 2, ceiling);
        }
    }
}
