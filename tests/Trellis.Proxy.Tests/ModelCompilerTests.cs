using Envoy.Config.Core.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Common.Fault.V3;
using Envoy.Extensions.Filters.Http.Fault.V3;
using Envoy.Extensions.Filters.Http.LocalRatelimit.V3;
using Envoy.Extensions.Filters.Http.Router.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Extensions.Filters.Network.TcpProxy.V3;
using Envoy.Service.Discovery.V3;
using Envoy.Type.Matcher.V3;
using Envoy.Type.V3;
using Google.Protobuf.WellKnownTypes;
using Trellis.Proxy.Model;
using Trellis.Proxy.XdsClient;
using Trellis.Xds;
using Xunit;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;
using UpstreamHttpProtocolOptions = Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions;

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

    internal static XdsResources Set(Listener? l = null, RouteConfiguration? rc = null, EnvoyCluster? c = null, ClusterLoadAssignment? cla = null)
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

    // ---- per-route filters, hashing, direct responses, cluster extras ----

    private static FractionalPercent Percent(uint numerator, FractionalPercent.Types.DenominatorType denominator = FractionalPercent.Types.DenominatorType.Hundred) =>
        new() { Numerator = numerator, Denominator = denominator };

    private static LocalRateLimit Bucket(uint max, uint perFill, TimeSpan fill, uint enabled = 100, uint enforced = 100) => new()
    {
        StatPrefix = "rl",
        TokenBucket = new TokenBucket { MaxTokens = max, TokensPerFill = perFill, FillInterval = Duration.FromTimeSpan(fill) },
        FilterEnabled = new RuntimeFractionalPercent { DefaultValue = Percent(enabled) },
        FilterEnforced = new RuntimeFractionalPercent { DefaultValue = Percent(enforced) },
    };

    /// <summary>Compiles one route configuration "rt" (route r0 to cluster web) after <paramref name="edit"/> changes its route.</summary>
    private static CompileResult CompileRoute(Action<Route> edit, Listener? listener = null)
    {
        var rc = Routes("rt", "web");
        edit(rc.VirtualHosts[0].Routes[0]);
        return ModelCompiler.Compile(Set(listener ?? HttpListener("l", "rt"), rc, EdsCluster("web"), Cla("web", "127.0.0.1", 1)));
    }

    private static RouteModel OnlyRoute(CompileResult result)
    {
        Assert.True(result.Errors.Count == 0, string.Join("\n", result.Errors));
        return result.Model.Routes["rt"].VirtualHosts[0].Routes[0];
    }

    private static Listener WithHttpFilter(Listener l, HttpFilter filter)
    {
        var hcm = l.DefaultFilterChain.Filters[0].TypedConfig.Unpack<HttpConnectionManager>();
        hcm.HttpFilters.Insert(0, filter);
        l.DefaultFilterChain.Filters[0].TypedConfig = Any.Pack(hcm);
        return l;
    }

    [Fact]
    public void Compile_FaultPerRouteConfig_FillsDelayAndGrpcAbort()
    {
        var fault = new HTTPFault
        {
            Delay = new FaultDelay { FixedDelay = Duration.FromTimeSpan(TimeSpan.FromSeconds(2)), Percentage = Percent(10) },
            Abort = new FaultAbort { GrpcStatus = 14, Percentage = Percent(5000, FractionalPercent.Types.DenominatorType.TenThousand) },
        };

        var route = OnlyRoute(CompileRoute(r => r.TypedPerFilterConfig[ExtensionNames.FaultFilter] = Any.Pack(fault)));

        Assert.Equal(new FaultModel(10, TimeSpan.FromSeconds(2), 50, 503, 14), route.Fault);
        Assert.Null(route.RateLimit);
    }

    [Fact]
    public void Compile_FaultHttpAbortOnly_HasNoGrpcStatusAndNoDelay()
    {
        var fault = new HTTPFault { Abort = new FaultAbort { HttpStatus = 503, Percentage = Percent(100) } };

        var route = OnlyRoute(CompileRoute(r => r.TypedPerFilterConfig[ExtensionNames.FaultFilter] = Any.Pack(fault)));

        Assert.Equal(new FaultModel(0, TimeSpan.Zero, 100, 503, null), route.Fault);
    }

    [Theory]
    [InlineData("header_abort", "abort: http_status or grpc_status is required (got HeaderAbort)")]
    [InlineData("no_percentage", "abort.percentage is missing")]
    [InlineData("status_700", "abort.http_status 700 is not an HTTP status 200-599")]
    [InlineData("headers", "HTTPFault upstream_cluster, headers and downstream_nodes are not supported")]
    public void Compile_FaultWeCannotHonour_IsRejectedNamingTheField(string shape, string message)
    {
        var fault = shape switch
        {
            "header_abort" => new HTTPFault { Abort = new FaultAbort { HeaderAbort = new FaultAbort.Types.HeaderAbort(), Percentage = Percent(1) } },
            "no_percentage" => new HTTPFault { Abort = new FaultAbort { HttpStatus = 503 } },
            "status_700" => new HTTPFault { Abort = new FaultAbort { HttpStatus = 700, Percentage = Percent(1) } },
            _ => new HTTPFault { Abort = new FaultAbort { HttpStatus = 503, Percentage = Percent(1) }, Headers = { new HeaderMatcher { Name = "x" } } },
        };

        var result = CompileRoute(r => r.TypedPerFilterConfig[ExtensionNames.FaultFilter] = Any.Pack(fault));

        var error = Assert.Single(result.Errors);
        Assert.StartsWith("route configuration rt: virtual_host 'web': routes[0] 'r0': typed_per_filter_config['envoy.filters.http.fault']: ", error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_OptionalLocalRateLimit_FillsRouteBucketAndTheListenerFilterIsAccepted()
    {
        var listener = WithHttpFilter(HttpListener("l", "rt"),
            new HttpFilter { Name = ExtensionNames.LocalRateLimitFilter, IsOptional = true, TypedConfig = Any.Pack(new LocalRateLimit { StatPrefix = "rl" }) });
        var wrapped = new FilterConfig { Config = Any.Pack(Bucket(100, 20, TimeSpan.FromSeconds(1))), IsOptional = true };

        var route = OnlyRoute(CompileRoute(r => r.TypedPerFilterConfig[ExtensionNames.LocalRateLimitFilter] = Any.Pack(wrapped), listener));

        Assert.Equal(new RateLimitModel(100, 20, TimeSpan.FromSeconds(1)), route.RateLimit);
    }

    [Theory]
    [InlineData(0u, 100u)]
    [InlineData(100u, 0u)]
    public void Compile_RateLimitNotEnabledOrNotEnforced_LimitsNothing(uint enabled, uint enforced)
    {
        var route = OnlyRoute(CompileRoute(r => r.TypedPerFilterConfig[ExtensionNames.LocalRateLimitFilter] = Any.Pack(Bucket(1, 1, TimeSpan.FromSeconds(1), enabled, enforced))));

        Assert.Null(route.RateLimit);
    }

    [Fact]
    public void Compile_RateLimitFillIntervalTooShort_IsRejected()
    {
        var result = CompileRoute(r => r.TypedPerFilterConfig[ExtensionNames.LocalRateLimitFilter] = Any.Pack(Bucket(1, 1, TimeSpan.FromMilliseconds(10))));

        Assert.Contains(result.Errors, e => e.EndsWith("typed_per_filter_config['envoy.filters.http.local_ratelimit']: token_bucket.fill_interval must be at least 50ms (got 10ms)", StringComparison.Ordinal));
    }

    [Fact]
    public void Compile_UnknownPerRouteConfig_RejectedUnlessMarkedOptional()
    {
        var rejected = CompileRoute(r => r.TypedPerFilterConfig["lua"] = Any.Pack(new Empty()));
        var wrappedOptional = CompileRoute(r => r.TypedPerFilterConfig["lua"] = Any.Pack(new FilterConfig { Config = Any.Pack(new Empty()), IsOptional = true }));
        var optionalListenerFilter = CompileRoute(r => r.TypedPerFilterConfig["lua"] = Any.Pack(new Empty()),
            WithHttpFilter(HttpListener("l", "rt"), new HttpFilter { Name = "lua", IsOptional = true, TypedConfig = Any.Pack(new Empty()) }));
        var disabled = CompileRoute(r => r.TypedPerFilterConfig["lua"] = Any.Pack(new FilterConfig { Config = Any.Pack(new Empty()), Disabled = true }));

        Assert.Equal(["route configuration rt: virtual_host 'web': routes[0] 'r0': typed_per_filter_config['lua']: unsupported filter config type 'type.googleapis.com/google.protobuf.Empty' (neither it nor the filter is marked is_optional)"], rejected.Errors);
        Assert.Empty(wrappedOptional.Errors);
        Assert.Empty(optionalListenerFilter.Errors);
        Assert.Empty(disabled.Errors);
    }

    [Fact]
    public void Compile_ListenerWideFault_IsRejectedButTheEmptyPlaceholderIsAccepted()
    {
        var placeholder = CompileRoute(_ => { }, WithHttpFilter(HttpListener("l", "rt"),
            new HttpFilter { Name = ExtensionNames.FaultFilter, TypedConfig = Any.Pack(new HTTPFault()) }));
        var wide = CompileRoute(_ => { }, WithHttpFilter(HttpListener("l", "rt"),
            new HttpFilter { Name = ExtensionNames.FaultFilter, TypedConfig = Any.Pack(new HTTPFault { Abort = new FaultAbort { HttpStatus = 503, Percentage = Percent(1) } }) }));

        Assert.Empty(placeholder.Errors);
        Assert.Equal(["listener l: default_filter_chain 'http': http_connection_manager.http_filters[0] 'envoy.filters.http.fault': a listener-wide delay or abort is not supported; put it in the routes' typed_per_filter_config"], wide.Errors);
    }

    [Fact]
    public void Compile_HashPolicies_FillHeaderCookieAndSourceIp()
    {
        var route = OnlyRoute(CompileRoute(r =>
        {
            r.Route_.HashPolicy.Add(new RouteAction.Types.HashPolicy { Cookie = new RouteAction.Types.HashPolicy.Types.Cookie { Name = "session" } });
            r.Route_.HashPolicy.Add(new RouteAction.Types.HashPolicy { ConnectionProperties = new RouteAction.Types.HashPolicy.Types.ConnectionProperties { SourceIp = true } });
        }));

        Assert.Null(route.HashHeader);
        Assert.Equal("session", route.HashCookie);
        Assert.True(route.HashSourceIp);
    }

    [Fact]
    public void Compile_DirectResponseWithInlineBody_KeepsStatusAndBody()
    {
        var route = OnlyRoute(CompileRoute(r => r.DirectResponse = new DirectResponseAction { Status = 418, Body = new DataSource { InlineString = "short and stout" } }));

        Assert.Equal(418, route.DirectResponseStatus);
        Assert.Equal("short and stout", route.DirectResponseBody);
        Assert.Empty(route.Clusters);
    }

    [Fact]
    public void Compile_DirectResponseBodyFromFile_IsRejected()
    {
        var result = CompileRoute(r => r.DirectResponse = new DirectResponseAction { Status = 200, Body = new DataSource { Filename = "/etc/passwd" } });

        Assert.Contains(result.Errors, e => e.EndsWith("direct_response.body: only inline_string and inline_bytes are supported (got Filename)", StringComparison.Ordinal));
    }

    [Fact]
    public void Compile_MethodPseudoHeaderMatch_RoutesByRequestMethod()
    {
        var table = OnlyRouteTable(CompileRoute(r => r.Match.Headers.Add(new HeaderMatcher { Name = ":method", StringMatch = new StringMatcher { Exact = "POST" } })));

        Assert.NotNull(Trellis.Proxy.Http.Router.Match(table, new Trellis.Proxy.Http.RouteRequest("POST", "web", "/x", NoHeaders.Instance)));
        Assert.Null(Trellis.Proxy.Http.Router.Match(table, new Trellis.Proxy.Http.RouteRequest("GET", "web", "/x", NoHeaders.Instance)));
    }

    private static RouteTable OnlyRouteTable(CompileResult result)
    {
        Assert.Empty(result.Errors);
        return result.Model.Routes["rt"];
    }

    private sealed class NoHeaders : Trellis.Proxy.Http.IRequestHeaders
    {
        public static readonly NoHeaders Instance = new();

        public string? Get(string name) => null;
    }

    [Fact]
    public void Compile_ClusterWithEwmaMarkerAndProtocolOptions_FillsTheModel()
    {
        var cluster = EdsCluster("web");
        var trellis = new Struct();
        trellis.Fields[ExtensionNames.LbPolicyKey] = Value.ForString(ExtensionNames.EwmaLbPolicy);
        cluster.Metadata = new Metadata { FilterMetadata = { [ExtensionNames.TrellisMetadata] = trellis } };
        cluster.TypedExtensionProtocolOptions[ExtensionNames.UpstreamHttpProtocolOptions] = Any.Pack(new UpstreamHttpProtocolOptions
        {
            CommonHttpProtocolOptions = new HttpProtocolOptions { MaxRequestsPerConnection = 100, IdleTimeout = Duration.FromTimeSpan(TimeSpan.FromSeconds(30)) },
            UseDownstreamProtocolConfig = new UpstreamHttpProtocolOptions.Types.UseDownstreamHttpConfig(),
        });

        var result = ModelCompiler.Compile(Set(c: cluster, cla: Cla("web", "127.0.0.1", 1)));

        Assert.Empty(result.Errors);
        var model = result.Model.Clusters["web"];
        Assert.Equal(LoadBalancerKind.Ewma, model.LoadBalancer);
        Assert.Equal(100, model.MaxRequestsPerConnection);
        Assert.Equal(TimeSpan.FromSeconds(30), model.IdleTimeout);
    }

    [Fact]
    public void Compile_ClusterWithoutExtras_KeepsLbPolicyAndDefaults()
    {
        var cluster = EdsCluster("web");
        cluster.LbPolicy = EnvoyCluster.Types.LbPolicy.LeastRequest;
        var other = new Struct();
        other.Fields[ExtensionNames.LbPolicyKey] = Value.ForString("SOMETHING_NEWER");
        cluster.Metadata = new Metadata { FilterMetadata = { [ExtensionNames.TrellisMetadata] = other } };

        var model = ModelCompiler.Compile(Set(c: cluster, cla: Cla("web", "127.0.0.1", 1))).Model.Clusters["web"];

        Assert.Equal(LoadBalancerKind.LeastRequest, model.LoadBalancer);
        Assert.Null(model.MaxRequestsPerConnection);
        Assert.Equal(TimeSpan.FromMinutes(1), model.IdleTimeout);
    }
}
