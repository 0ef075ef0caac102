using Trellis.Api.Resources;
using Xunit;
using static Trellis.Api.Tests.TestSupport;

namespace Trellis.Api.Tests;

/// <summary>FaultInjection and RateLimit: reading, validation, and the ExtensionRef filters that name them.</summary>
public class FilterResourceTests
{
    private const string V1 = "apiVersion: trellis.dev/v1alpha1\n";

    private static string Fault(string name, string spec) => V1 + $"kind: FaultInjection\nmetadata: {{name: {name}}}\nspec:\n" + spec;

    private static string Limit(string name, string spec) => V1 + $"kind: RateLimit\nmetadata: {{name: {name}}}\nspec:\n" + spec;

    private static string RouteWithFilters(string filters) =>
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: greeter, port: 50051}]\n"
        + "  rules:\n  - backendRefs: [{name: greeter-v1, port: 50051}]\n    filters:\n" + filters;

    private static string ExtensionRef(string kind, string name, string group = "trellis.dev") =>
        $"    - type: ExtensionRef\n      extensionRef: {{group: {group}, kind: {kind}, name: {name}}}\n";

    private const string SlowFault = "  delay: {percent: 10, fixedDelay: 2s}\n";
    private const string Bucket = "  tokenBucket: {maxTokens: 100, tokensPerFill: 50, fillInterval: 1s}\n";

    // ---- reading ----

    [Fact]
    public void Read_FaultInjectionAndRateLimit_BindEveryField()
    {
        var yaml = Fault("chaos", "  targetRef: {kind: Service, name: greeter, port: 50051}\n  delay: {percent: 10, fixedDelay: 2s}\n  abort: {percent: 5, httpStatus: 503, grpcStatus: 14}\n")
                   + "---\n" + Limit("calm", "  targetRef: {kind: Service, name: greeter}\n" + Bucket);

        var read = ReadOk(yaml);

        var fault = Assert.IsType<FaultInjection>(read[0].Resource);
        Assert.Equal(("greeter", 50051), (fault.Spec.TargetRef!.Name, fault.Spec.TargetRef.Port));
        Assert.Equal((10, TimeSpan.FromSeconds(2)), (fault.Spec.Delay!.Percent, fault.Spec.Delay.FixedDelay));
        Assert.Equal((5, 503, 14), (fault.Spec.Abort!.Percent, fault.Spec.Abort.HttpStatus, fault.Spec.Abort.GrpcStatus));
        var limit = Assert.IsType<RateLimit>(read[1].Resource);
        Assert.Equal((100, 50, TimeSpan.FromSeconds(1)), (limit.Spec.TokenBucket!.MaxTokens, limit.Spec.TokenBucket.TokensPerFill, limit.Spec.TokenBucket.FillInterval));
        Assert.Empty(ResourceValidator.Validate(read, Base()));
    }

    [Fact]
    public void Read_JsonFaultInjectionWithBadValues_ReportsEachWithLineAndColumn()
    {
        var json = """
            {
              "apiVersion": "trellis.dev/v1alpha1",
              "kind": "FaultInjection",
              "metadata": {"name": "f"},
              "spec": {
                "abort": {"percent": "five", "httpStatus": 503},
                "delay": {"percent": 10, "fixedDelay": "soon"}
              }
            }
            """;

        var errors = ResourceReader.Read(json, "f.json").Errors;

        Assert.Equal(2, errors.Count);
        var (line, column) = At(json, "\"five\"");
        AssertError(errors, "f.json", 1, line, column, "spec.abort.percent", "expected an integer, got \"five\"");
        (line, column) = At(json, "\"soon\"");
        AssertError(errors, "f.json", 1, line, column, "spec.delay.fixedDelay", "expected a duration such as 100ms, 5s");
        Assert.All(errors, e => Assert.Equal("FaultInjection default/f", e.Subject));
    }

    [Fact]
    public void Read_UnknownFieldInTokenBucket_SuggestsTheRightOne()
    {
        var yaml = Limit("l", "  tokenBucket: {maxToken: 5, fillInterval: 1s}\n");

        AssertOnlyError(ResourceReader.Read(yaml, "v.yaml").Errors, "v.yaml", 1, 5, 17, "spec.tokenBucket.maxToken", "unknown field \"maxToken\"; did you mean \"maxTokens\"?");
    }

    [Fact]
    public void Serialize_FaultInjectionAndRateLimit_RoundTripThroughJsonAndYaml()
    {
        var resources = ReadOk(Fault("f", "  abort: {percent: 100, grpcStatus: 14}\n") + "---\n" + Limit("l", Bucket)).Select(p => p.Resource).ToList();

        var json = resources.Select(ResourceJson.Serialize).ToList();
        var again = ReadOk(ResourceYaml.Serialize(resources), "out.yaml").Select(p => ResourceJson.Serialize(p.Resource));

        Assert.Equal("{\"apiVersion\":\"trellis.dev/v1alpha1\",\"kind\":\"FaultInjection\",\"metadata\":{\"name\":\"f\",\"namespace\":\"default\"},\"spec\":{\"abort\":{\"percent\":100,\"grpcStatus\":14}}}", json[0]);
        Assert.Contains("\"tokenBucket\":{\"maxTokens\":100,\"tokensPerFill\":50,\"fillInterval\":\"1s\"}", json[1], StringComparison.Ordinal);
        Assert.Equal(json, again);
        Assert.Equal(json[1], ResourceJson.Serialize(ResourceJson.Deserialize(json[1])));
    }

    // ---- FaultInjection ----

    [Fact]
    public void Validate_FaultWithNeitherDelayNorAbort_AsksForOne()
    {
        var yaml = Fault("f", "  targetRef: {kind: Service, name: greeter}\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 4, 1, "spec", "a FaultInjection needs delay, abort or both");
    }

    [Fact]
    public void Validate_FaultOutOfRangeValues_ReportsEachField()
    {
        var yaml = Fault("f", "  delay:\n    percent: 101\n    fixedDelay: 0s\n  abort:\n    percent: -1\n    httpStatus: 600\n    grpcStatus: 17\n");

        var errors = Validate(yaml);

        Assert.Equal(5, errors.Count);
        AssertError(errors, "v.yaml", 1, 6, 14, "spec.delay.percent", "101 is out of range; expected a percentage 0-100");
        AssertError(errors, "v.yaml", 1, 7, 17, "spec.delay.fixedDelay", "0s must be positive");
        AssertError(errors, "v.yaml", 1, 9, 14, "spec.abort.percent", "-1 is out of range; expected a percentage 0-100");
        AssertError(errors, "v.yaml", 1, 10, 17, "spec.abort.httpStatus", "httpStatus 600 is out of range; expected an HTTP status 200-599");
        AssertError(errors, "v.yaml", 1, 11, 17, "spec.abort.grpcStatus", "grpcStatus 17 is out of range; expected a gRPC status code 0-16");
    }

    [Fact]
    public void Validate_FaultMissingPercentStatusAndDelay_NamesWhatIsMissing()
    {
        var yaml = Fault("f", "  delay: {fixedDelay: 1s}\n  abort: {percent: 5}\n---\n") + Fault("g", "  delay: {percent: 5}\n");

        var errors = Validate(yaml);

        Assert.Equal(3, errors.Count);
        var first = errors.Where(e => e.Document == 1).ToList();
        AssertError(first, "v.yaml", 1, 5, 3, "spec.delay", "percent is required: the share of requests to delay, 0-100");
        AssertError(first, "v.yaml", 1, 6, 3, "spec.abort", "httpStatus or grpcStatus is required");
        AssertError(errors.Where(e => e.Document == 2).ToList(), "v.yaml", 2, 12, 3, "spec.delay", "fixedDelay is required: how long each delayed request waits");
    }

    [Fact]
    public void Validate_FaultTargetMissing_ListsServices()
    {
        var yaml = Fault("f", "  targetRef: {kind: Service, name: greter}\n" + SlowFault);

        AssertErrorAt(Validate(yaml), yaml, "greter", "spec.targetRef.name", "Service \"greter\" not found; expected one of: greeter, greeter-v1, greeter-v2");
    }

    [Fact]
    public void Validate_TwoFaultsTargetingOneService_Conflict()
    {
        var yaml = Fault("a", "  targetRef: {kind: Service, name: greeter}\n" + SlowFault) + "---\n" + Fault("b", "  targetRef: {kind: Service, name: greeter}\n" + SlowFault);

        var error = AssertOnlyError(Validate(yaml), "v.yaml", 2, 12, 3, "spec.targetRef", "conflicts with FaultInjection default/a (document 1 of v.yaml), which also targets Service default/greeter");
        Assert.EndsWith("one Service takes one FaultInjection, so merge them", error.Message, StringComparison.Ordinal);
    }

    // ---- RateLimit ----

    [Fact]
    public void Validate_RateLimitBucketOutOfRange_ReportsEachField()
    {
        var yaml = Limit("l", "  tokenBucket:\n    maxTokens: 0\n    tokensPerFill: 0\n    fillInterval: 10ms\n");

        var errors = Validate(yaml);

        Assert.Equal(3, errors.Count);
        AssertError(errors, "v.yaml", 1, 6, 16, "spec.tokenBucket.maxTokens", "0 is too small; expected 1 or more");
        AssertError(errors, "v.yaml", 1, 7, 20, "spec.tokenBucket.tokensPerFill", "0 is too small; expected 1 or more");
        AssertError(errors, "v.yaml", 1, 8, 19, "spec.tokenBucket.fillInterval", "fillInterval 10ms is too short; expected 50ms or more");
    }

    [Fact]
    public void Validate_TokensPerFillAboveMaxTokens_SaysTheLimit()
    {
        var yaml = Limit("l", "  tokenBucket: {maxTokens: 10, tokensPerFill: 20, fillInterval: 1s}\n");

        AssertErrorAt(Validate(yaml), yaml, "20,", "spec.tokenBucket.tokensPerFill", "tokensPerFill 20 is more than maxTokens 10; a fill cannot add more than the bucket holds, so make it at most 10");
    }

    [Fact]
    public void Validate_RateLimitWithoutBucketOrItsFields_NamesWhatIsMissing()
    {
        var yaml = Limit("l", "  targetRef: {kind: Service, name: greeter}\n") + "---\n" + Limit("m", "  tokenBucket: {tokensPerFill: 1}\n");

        var errors = Validate(yaml);

        Assert.True(errors.Count == 3, string.Join("\n", errors));
        Assert.Contains(errors, e => e is { Document: 1, Path: "spec.tokenBucket", Line: 4, Column: 1 } && e.Message.StartsWith("tokenBucket is required", StringComparison.Ordinal));
        Assert.Contains(errors, e => e is { Document: 2, Path: "spec.tokenBucket", Line: 11, Column: 3 } && e.Message.StartsWith("maxTokens is required", StringComparison.Ordinal));
        Assert.Contains(errors, e => e is { Document: 2, Path: "spec.tokenBucket", Line: 11, Column: 3 } && e.Message.StartsWith("fillInterval is required", StringComparison.Ordinal));
    }

    // ---- ExtensionRef filters ----

    [Fact]
    public void Validate_ExtensionRefsToFaultAndLimitInTheBatch_AreAccepted()
    {
        var yaml = Fault("slow", SlowFault) + "---\n" + Limit("calm", Bucket) + "---\n"
                   + RouteWithFilters(ExtensionRef("FaultInjection", "slow") + ExtensionRef("RateLimit", "calm"));

        Assert.Empty(Validate(yaml));
    }

    [Fact]
    public void Validate_ExtensionRefToStoredFault_IsAccepted()
    {
        var stored = ReadOk(Fault("slow", SlowFault), "old.yaml")[0].Resource;

        Assert.Empty(Validate(RouteWithFilters(ExtensionRef("FaultInjection", "slow")), stored));
    }

    [Fact]
    public void Validate_ExtensionRefToMissingFault_ListsTheOnesThatExist()
    {
        var yaml = Fault("slow", SlowFault) + "---\n" + RouteWithFilters(ExtensionRef("FaultInjection", "slo"));

        var error = AssertErrorAt(Validate(yaml), yaml, "slo}", "spec.rules[0].filters[0].extensionRef.name", "FaultInjection \"slo\" not found; expected one of: slow", document: 2);
        Assert.Equal("HTTPRoute default/r", error.Subject);
    }

    [Fact]
    public void Validate_ExtensionRefWhenNoneExist_SaysSoAndHowToFix()
    {
        var yaml = RouteWithFilters(ExtensionRef("RateLimit", "calm"));

        AssertErrorAt(Validate(yaml), yaml, "calm}", "spec.rules[0].filters[0].extensionRef.name",
            "RateLimit \"calm\" not found; no RateLimits exist in namespace \"default\"; apply it in the same file or first");
    }

    [Fact]
    public void Validate_ExtensionRefWithoutOrWithWrongGroup_AsksForTrellisDev()
    {
        var yaml = Fault("slow", SlowFault) + "---\n" + RouteWithFilters(
            "    - type: ExtensionRef\n      extensionRef: {kind: FaultInjection, name: slow}\n"
            + "  - backendRefs: [{name: greeter-v2}]\n    matches: [{path: {value: /v2}}]\n    filters:\n" + ExtensionRef("FaultInjection", "slow", group: "example.com"));

        var errors = Validate(yaml);

        Assert.Equal(2, errors.Count);
        AssertErrorAt(errors, yaml, "extensionRef: {kind", "spec.rules[0].filters[0].extensionRef.group", "group is required for an extensionRef; write group: trellis.dev", document: 2);
        AssertErrorAt(errors, yaml, "example.com", "spec.rules[1].filters[0].extensionRef.group", "group \"example.com\" is not supported; write group: trellis.dev", document: 2);
    }

    [Fact]
    public void Validate_TwoFaultsInOneRule_ReportsTheSecond()
    {
        var yaml = Fault("a", SlowFault) + "---\n" + Fault("b", SlowFault) + "---\n"
                   + RouteWithFilters(ExtensionRef("FaultInjection", "a") + ExtensionRef("FaultInjection", "b"));

        AssertErrorAt(Validate(yaml), yaml, "FaultInjection, name: b", "spec.rules[0].filters[1].extensionRef.kind",
            "this rule already names a FaultInjection in filters[0]; a rule takes at most one FaultInjection", document: 3);
    }

    [Fact]
    public void Validate_GrpcRouteExtensionRefToMissingLimit_IsReported()
    {
        var yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec:\n  parentRefs: [{name: greeter, port: 50051}]\n"
                   + "  rules:\n  - backendRefs: [{name: greeter-v1, port: 50051}]\n    filters:\n" + ExtensionRef("RateLimit", "nope");

        AssertErrorAt(Validate(yaml), yaml, "nope", "spec.rules[0].filters[0].extensionRef.name", "RateLimit \"nope\" not found");
    }
}
