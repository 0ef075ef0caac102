using Envoy.Config.Cluster.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Http.Fault.V3;
using Envoy.Extensions.Filters.Http.LocalRatelimit.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Type.V3;
using Trellis.Api.Resources;
using Trellis.ControlPlane.Translation;
using Trellis.ControlPlane.XdsServer;
using Trellis.Xds;
using Xunit;
using static Trellis.ControlPlane.Tests.Translation.MeshTranslatorTests;
using UpstreamHttpProtocolOptions = Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions;

namespace Trellis.ControlPlane.Tests.Translation;

/// <summary>FaultInjection and RateLimit as per-route filter configs, and TrafficPolicy's protocol options and EWMA marker.</summary>
public sealed class RouteFiltersTests
{
    private const string Greeter = "greeter.default:50051";

    private static string Fault(string name, string spec) => $"""

        ---
        apiVersion: trellis.dev/v1alpha1
        kind: FaultInjection
        metadata: {"{"}name: {name}{"}"}
        spec:
        {spec}
        """;

    private static string Limit(string name, string spec) => $"""

        ---
        apiVersion: trellis.dev/v1alpha1
        kind: RateLimit
        metadata: {"{"}name: {name}{"}"}
        spec:
        {spec}
        """;

    /// <summary>Rule 0 (header x-canary: 1) goes to greeter-v2 with the given filters; rule 1 splits across v1 and v2.</summary>
    private static string Route(string filters) => $$"""

        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: canary}
        spec:
          parentRefs: [{kind: Service, name: greeter, port: 50051}]
          rules:
          - matches: [{headers: [{name: x-canary, value: "1"}]}]
            backendRefs: [{name: greeter-v2, port: 50051}]
            filters: {{filters}}
          - backendRefs: [{name: greeter-v1, port: 50051, weight: 90}, {name: greeter-v2, port: 50051, weight: 10}]
        """;

    private static string Ref(string kind, string name) => $"{{type: ExtensionRef, extensionRef: {{group: trellis.dev, kind: {kind}, name: {name}}}}}";

    private static IList<Envoy.Config.Route.V3.Route> Routes(XdsSnapshot s, string name) =>
        One<RouteConfiguration>(s, TypeUrls.RouteConfiguration, name).VirtualHosts.Single().Routes;

    private static HttpConnectionManager Hcm(XdsSnapshot s, string listener) =>
        One<Listener>(s, TypeUrls.Listener, listener).ApiListener.ApiListener_.Unpack<HttpConnectionManager>();

    private static HTTPFault? FaultOf(Envoy.Config.Route.V3.Route r) =>
        r.TypedPerFilterConfig.TryGetValue(ExtensionNames.FaultFilter, out var any) ? any.Unpack<HTTPFault>() : null;

    [Fact]
    public void Translate_FaultExtensionRef_SetsTheRuleRoutesFaultAndAddsTheFilterBeforeTheRouter()
    {
        var result = MeshTranslator.Translate(Inputs(Base
            + Fault("chaos", "  delay: {percent: 10, fixedDelay: 2s}\n  abort: {percent: 100, httpStatus: 503}")
            + Route($"[{Ref("FaultInjection", "chaos")}]")), 1);
        var s = result.Snapshot;

        var routes = Routes(s, Greeter);
        var fault = FaultOf(routes[0])!;
        Assert.Equal(503u, fault.Abort.HttpStatus);
        Assert.Equal((100u, FractionalPercent.Types.DenominatorType.Hundred), (fault.Abort.Percentage.Numerator, fault.Abort.Percentage.Denominator));
        Assert.Equal(TimeSpan.FromSeconds(2), fault.Delay.FixedDelay.ToTimeSpan());
        Assert.Equal(10u, fault.Delay.Percentage.Numerator);
        Assert.Null(FaultOf(routes[1]));
        Assert.Null(FaultOf(routes[^1]));
        Assert.Equal([ExtensionNames.FaultFilter, ExtensionNames.RouterFilter], Hcm(s, "greeter").HttpFilters.Select(f => f.Name));
        Assert.Equal(TypeUrls.HttpFault, Hcm(s, "greeter").HttpFilters[0].TypedConfig.TypeUrl);
        Assert.Equal([ExtensionNames.RouterFilter], Hcm(s, "greeter-v1").HttpFilters.Select(f => f.Name));
        Assert.Contains("FaultInjection/default/chaos", s.Provenance[TypeUrls.RouteConfiguration + "|" + Greeter]);
        Assert.Contains("FaultInjection/default/chaos", s.Provenance[TypeUrls.Listener + "|greeter"]);
        Assert.True(result.Statuses["FaultInjection/default/chaos"].Accepted);
        Assert.Empty(result.Statuses["FaultInjection/default/chaos"].Reasons);
        Assert.Empty(SnapshotConsistency.Check(s));
    }

    [Fact]
    public void Translate_FaultTargetRef_AppliesToRoutesWhoseEveryBackendIsTheTargetAndTheRulesOwnRefWins()
    {
        var s = MeshTranslator.Translate(Inputs(Base
            + Fault("v2-outage", "  targetRef: {kind: Service, name: greeter-v2}\n  abort: {percent: 50, grpcStatus: 14}")
            + Fault("rule-fault", "  abort: {percent: 100, httpStatus: 500}")
            + Route($"[{Ref("FaultInjection", "rule-fault")}]")
            + Route("[]").Replace("name: canary", "name: other", StringComparison.Ordinal)
                .Replace("x-canary", "x-other", StringComparison.Ordinal)
                .Replace("- backendRefs: [{name: greeter-v1, port: 50051, weight: 90}, {name: greeter-v2, port: 50051, weight: 10}]", "- matches: [{path: {value: /v2}}]\n    backendRefs: [{name: greeter-v2, port: 50051}]", StringComparison.Ordinal)), 1).Snapshot;

        var routes = Routes(s, Greeter);
        var byName = routes.ToDictionary(r => r.Name);
        Assert.Equal(500u, FaultOf(byName["canary/0/0"])!.Abort.HttpStatus);        // the rule's own ref wins
        Assert.Null(FaultOf(byName["canary/1/0"]));                                // split v1/v2: not all traffic goes to v2
        Assert.Equal(14u, FaultOf(byName["other/0/0"])!.Abort.GrpcStatus);        // only v2 behind it: the policy applies
        Assert.Equal(14u, FaultOf(byName["other/1/0"])!.Abort.GrpcStatus);
        Assert.Null(FaultOf(byName["default"]));                                   // greeter itself is not the target
        Assert.Equal(50u, FaultOf(Routes(s, "greeter-v2.default:50051")[^1])!.Abort.Percentage.Numerator);
        Assert.Null(FaultOf(Routes(s, "greeter-v1.default:50051")[^1]));
        Assert.Contains("FaultInjection/default/v2-outage", s.Provenance[TypeUrls.RouteConfiguration + "|greeter-v2.default:50051"]);
    }

    [Theory]
    [InlineData(ServiceProtocol.Grpc, 0u, 14u)]
    [InlineData(ServiceProtocol.Http, 503u, 0u)]
    [InlineData(ServiceProtocol.Http2, 503u, 0u)]
    public void Fault_BothStatuses_GrpcPortsUseTheGrpcStatusOthersTheHttpStatus(ServiceProtocol protocol, uint http, uint grpc)
    {
        var fault = RouteFilters.Fault(new FaultInjectionSpec { Abort = new FaultAbortSettings { Percent = 5, HttpStatus = 503, GrpcStatus = 14 } }, protocol);

        Assert.Equal((http, grpc), (fault.Abort.HttpStatus, fault.Abort.GrpcStatus));
        Assert.Null(fault.Delay);
    }

    [Fact]
    public void Translate_RateLimitExtensionRef_IsAnOptionalFilterConfigWithTheBucketAndAnOptionalListenerFilter()
    {
        var s = MeshTranslator.Translate(Inputs(Base
            + Limit("calm", "  tokenBucket: {maxTokens: 100, tokensPerFill: 20, fillInterval: 2s}")
            + Route($"[{Ref("RateLimit", "calm")}]")), 1).Snapshot;

        var any = Routes(s, Greeter)[0].TypedPerFilterConfig[ExtensionNames.LocalRateLimitFilter];
        Assert.Equal(TypeUrls.FilterConfig, any.TypeUrl);
        var wrapper = any.Unpack<FilterConfig>();
        Assert.True(wrapper.IsOptional);
        var limit = wrapper.Config.Unpack<LocalRateLimit>();
        Assert.Equal((100u, 20u, TimeSpan.FromSeconds(2)), (limit.TokenBucket.MaxTokens, limit.TokenBucket.TokensPerFill ?? 0, limit.TokenBucket.FillInterval.ToTimeSpan()));
        Assert.Equal(100u, limit.FilterEnabled.DefaultValue.Numerator);
        Assert.Equal(100u, limit.FilterEnforced.DefaultValue.Numerator);
        Assert.True(limit.RateLimitedAsResourceExhausted);
        Assert.NotEmpty(limit.StatPrefix);

        var filters = Hcm(s, "greeter").HttpFilters;
        Assert.Equal([ExtensionNames.LocalRateLimitFilter, ExtensionNames.RouterFilter], filters.Select(f => f.Name));
        Assert.True(filters[0].IsOptional);
        Assert.Equal(TypeUrls.LocalRateLimit, filters[0].TypedConfig.TypeUrl);
        Assert.Null(filters[0].TypedConfig.Unpack<LocalRateLimit>().TokenBucket);

        // Sidecars: the outbound listener's connection manager gets the filter too.
        var sidecar = s.ForClient(new ClientView(new ClientLocality("", "", "primary"), ClientRole.Sidecar, "greeter-v1", "default"));
        var outbound = One<Listener>(sidecar, TypeUrls.Listener, SidecarResources.OutboundListenerName).DefaultFilterChain.Filters[0].TypedConfig.Unpack<HttpConnectionManager>();
        Assert.Equal([ExtensionNames.LocalRateLimitFilter, ExtensionNames.RouterFilter], outbound.HttpFilters.Select(f => f.Name));
        Assert.Contains("RateLimit/default/calm", s.Provenance[TypeUrls.RouteConfiguration + "|" + SidecarResources.OutboundRouteName]);
    }

    [Fact]
    public void Translate_ExtensionRefToMissingResource_AbortsTheRuleWith500AndSaysSo()
    {
        var result = MeshTranslator.Translate(Inputs(Base + Route($"[{Ref("RateLimit", "gone")}]")), 1);

        var fault = FaultOf(Routes(result.Snapshot, Greeter)[0])!;
        Assert.Equal((500u, 100u), (fault.Abort.HttpStatus, fault.Abort.Percentage.Numerator));
        var status = result.Statuses["HTTPRoute/default/canary"];
        Assert.True(status.Accepted);
        Assert.Contains("extensionRef RateLimit \"gone\" does not exist; the rule's requests get HTTP 500 until it does", status.Reasons);
        Assert.Single(status.Reasons);
    }

    [Fact]
    public void Translate_FilterResourcesThatApplyNowhere_SayWhy()
    {
        var result = MeshTranslator.Translate(Inputs(Base
            + Fault("idle", "  abort: {percent: 1, httpStatus: 503}")
            + Limit("orphan", "  targetRef: {kind: Service, name: deleted}\n  tokenBucket: {maxTokens: 1, fillInterval: 1s}")
            + Limit("first", "  targetRef: {kind: Service, name: greeter}\n  tokenBucket: {maxTokens: 1, fillInterval: 1s}")
            + Limit("second", "  targetRef: {kind: Service, name: greeter}\n  tokenBucket: {maxTokens: 2, fillInterval: 1s}")), 1);

        var idle = result.Statuses["FaultInjection/default/idle"];
        Assert.True(idle.Accepted);
        Assert.Contains(idle.Reasons, r => r.StartsWith("applies to no route yet", StringComparison.Ordinal));
        var orphan = result.Statuses["RateLimit/default/orphan"];
        Assert.False(orphan.Accepted);
        Assert.Contains("targetRef Service \"deleted\" does not exist; the policy applies to nothing", orphan.Reasons);
        Assert.True(result.Statuses["RateLimit/default/first"].Accepted);
        Assert.False(result.Statuses["RateLimit/default/second"].Accepted);
        Assert.Contains("Service \"greeter\" already has RateLimit \"first\"; this one is ignored", result.Statuses["RateLimit/default/second"].Reasons);
        var limit = Routes(result.Snapshot, Greeter)[^1].TypedPerFilterConfig[ExtensionNames.LocalRateLimitFilter].Unpack<FilterConfig>().Config.Unpack<LocalRateLimit>();
        Assert.Equal(1u, limit.TokenBucket.MaxTokens);
    }

    [Fact]
    public void Translate_TrafficPolicyPoolAndEwma_SetUpstreamProtocolOptionsAndTrellisMetadata()
    {
        var s = MeshTranslator.Translate(Inputs(Base + """

            ---
            apiVersion: trellis.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: greeter}
            spec:
              targetRef: {kind: Service, name: greeter}
              loadBalancer: {algorithm: Ewma}
              connectionPool: {maxRequestsPerConnection: 100, idleTimeout: 30s}
            """), 1).Snapshot;

        var cluster = One<Cluster>(s, TypeUrls.Cluster, Greeter);
        Assert.Equal(Cluster.Types.LbPolicy.RoundRobin, cluster.LbPolicy);
        Assert.Equal(ExtensionNames.EwmaLbPolicy, cluster.Metadata.FilterMetadata[ExtensionNames.TrellisMetadata].Fields[ExtensionNames.LbPolicyKey].StringValue);
        var any = cluster.TypedExtensionProtocolOptions[ExtensionNames.UpstreamHttpProtocolOptions];
        Assert.Equal(TypeUrls.UpstreamHttpProtocolOptions, any.TypeUrl);
        var options = any.Unpack<UpstreamHttpProtocolOptions>();
        Assert.Equal(100u, options.CommonHttpProtocolOptions.MaxRequestsPerConnection);
        Assert.Equal(TimeSpan.FromSeconds(30), options.CommonHttpProtocolOptions.IdleTimeout.ToTimeSpan());
        Assert.Equal(UpstreamHttpProtocolOptions.UpstreamProtocolOptionsOneofCase.UseDownstreamProtocolConfig, options.UpstreamProtocolOptionsCase);

        var plain = One<Cluster>(s, TypeUrls.Cluster, "greeter-v1.default:50051");
        Assert.Null(plain.Metadata);
        Assert.Empty(plain.TypedExtensionProtocolOptions);
    }

    [Fact]
    public void Translate_HttpRouteMethodMatch_BecomesAnExactMethodPseudoHeader()
    {
        var s = MeshTranslator.Translate(Inputs(Base + """

            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: writes}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 50051}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
                backendRefs: [{name: greeter-v2, port: 50051}]
            """), 1).Snapshot;

        var header = Routes(s, Greeter)[0].Match.Headers.Single();
        Assert.Equal(":method", header.Name);
        Assert.Equal("POST", header.StringMatch.Exact);
    }
}
