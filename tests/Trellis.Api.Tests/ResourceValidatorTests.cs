using Trellis.Api.Resources;
using Xunit;
using static Trellis.Api.Tests.TestSupport;

namespace Trellis.Api.Tests;

public class ResourceValidatorTests
{
    private const string V1 = "apiVersion: trellis.dev/v1alpha1\n";
    private const string Gw = "apiVersion: gateway.networking.k8s.io/v1\n";

    private static string Route(string name, string rules, string parents = "  parentRefs:\n  - name: greeter\n    port: 50051\n") =>
        Gw + $"kind: HTTPRoute\nmetadata:\n  name: {name}\nspec:\n" + parents + "  rules:\n" + rules;

    private const string SimpleRule = "  - backendRefs:\n    - name: greeter-v1\n      port: 50051\n";

    private static string RegexRule(string match) =>
        $"  - matches:\n    - {match}\n    backendRefs:\n    - name: greeter-v1\n";

    // ---- examples ----

    [Fact]
    public void Validate_InterfacesExamples_AreClean()
    {
        var batch = ReadOk(Examples.AllModelled, "examples.yaml");
        var existing = ReadOk(TestSupport.BaseServices, "base.yaml").Skip(1).Select(p => p.Resource).ToList();

        var errors = ResourceValidator.Validate(batch, existing);

        Assert.Empty(errors);
    }

    [Fact]
    public void Validate_ExamplesWithoutTheirBackends_ReportsMissingServices()
    {
        var batch = ReadOk(Examples.AllModelled, "examples.yaml");

        var errors = ResourceValidator.Validate(batch, []);

        Assert.Equal(3, errors.Count);
        Assert.All(errors, e => Assert.Equal(3, e.Document));
        var first = errors[0];
        Assert.Equal("spec.rules[0].backendRefs[0].name", first.Path);
        Assert.Equal("Service \"greeter-v2\" not found; expected one of: greeter", first.Message);
        Assert.Equal("examples.yaml:29:41: document 3 (HTTPRoute default/greeter-canary): spec.rules[0].backendRefs[0].name: Service \"greeter-v2\" not found; expected one of: greeter", first.ToString());
    }

    // ---- metadata ----

    [Fact]
    public void Validate_DuplicateNameInBatch_NamesBothDocuments()
    {
        var yaml = Route("r", SimpleRule) + "---\n" + Route("r", SimpleRule.Replace("greeter-v1", "greeter-v2", StringComparison.Ordinal));

        var errors = Validate(yaml);

        var error = AssertError(errors, "v.yaml", 2, 17, 9, "metadata.name", "HTTPRoute default/r is defined twice in this apply: here and in document 1 of v.yaml");
        Assert.DoesNotContain(errors, e => e.Document == 1);
        Assert.Equal("HTTPRoute default/r", error.Subject);
    }

    [Fact]
    public void Validate_ProgrammaticBadName_ReportsWithoutPosition()
    {
        var service = new Service { Metadata = new ObjectMeta { Name = "Bad" }, Spec = new ServiceSpec { Ports = [new ServicePort { Name = "http", Port = 80 }] } };

        var errors = ResourceValidator.Validate([new ParsedResource(service, "api", 0)], []);

        AssertOnlyError(errors, "api", 0, 0, 0, "metadata.name", "\"Bad\" is not a valid name");
    }

    // ---- Service ----

    [Fact]
    public void Validate_ServiceWithoutPorts_ReportsPorts()
    {
        var yaml = V1 + "kind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: s}\n  ports: []\n";

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 6, 3, "spec.ports", "a Service needs at least one port");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65536)]
    public void Validate_ServicePortOutOfRange_ReportsPort(int port)
    {
        var yaml = V1 + $"kind: Service\nmetadata: {{name: s}}\nspec:\n  ports:\n  - name: http\n    port: {port}\n";

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 7, 11, "spec.ports[0].port", $"port {port} is out of range; expected 1-65535");
    }

    [Fact]
    public void Validate_ServiceDuplicatePortNameAndNumber_ReportsBoth()
    {
        var yaml = V1 + "kind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - {name: http, port: 80}\n  - {name: http, port: 81}\n  - {name: web, port: 80}\n";

        var errors = Validate(yaml);

        Assert.Equal(2, errors.Count);
        AssertErrorAt(errors, yaml, "http, port: 81", "spec.ports[1].name", "port name \"http\" is already used by spec.ports[0]");
        AssertErrorAt(errors, yaml, "80}", "spec.ports[2].port", "port 80 is already declared by spec.ports[0]", occurrence: 2);
    }

    [Fact]
    public void Validate_ServicePortNameNotDnsLabel_ReportsName()
    {
        var yaml = V1 + "kind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - {name: Http_Port, port: 80}\n";

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 6, 12, "spec.ports[0].name", "\"Http_Port\" is not a valid port name");
    }

    // ---- WorkloadEntry ----

    [Fact]
    public void Validate_WorkloadEntryHostname_AsksForIp()
    {
        var yaml = V1 + "kind: WorkloadEntry\nmetadata: {name: w}\nspec:\n  address: vm1.example.com\n";

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 5, 12, "spec.address", "hostnames are not allowed; write an IP address");
    }

    [Theory]
    [InlineData("10.0.0")]
    [InlineData("10.0.0.256")]
    [InlineData("1")]
    public void Validate_WorkloadEntryBadIp_ReportsAddress(string address)
    {
        var yaml = V1 + $"kind: WorkloadEntry\nmetadata: {{name: w}}\nspec:\n  address: \"{address}\"\n";

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 5, 12, "spec.address", "is not an IP address");
    }

    [Fact]
    public void Validate_WorkloadEntryIpv6_IsAccepted()
    {
        var yaml = V1 + "kind: WorkloadEntry\nmetadata: {name: w}\nspec:\n  address: \"fd00::12\"\n  ports: {grpc: 50051}\n";

        Assert.Empty(Validate(yaml));
    }

    [Fact]
    public void Validate_WorkloadEntryPortAndWeight_ReportsRanges()
    {
        var yaml = V1 + "kind: WorkloadEntry\nmetadata: {name: w}\nspec:\n  address: 10.0.0.1\n  ports:\n    grpc: 70000\n  weight: 0\n";

        var errors = Validate(yaml);

        Assert.Equal(2, errors.Count);
        AssertError(errors, "v.yaml", 1, 7, 11, "spec.ports.grpc", "port 70000 is out of range; expected 1-65535");
        AssertError(errors, "v.yaml", 1, 8, 11, "spec.weight", "weight 0 is too small; expected 1 or more");
    }

    [Fact]
    public void Validate_WorkloadEntryUndefinedHealth_ListsValues()
    {
        var entry = new WorkloadEntry { Metadata = new ObjectMeta { Name = "w" }, Spec = new WorkloadEntrySpec { Address = "10.0.0.1", Health = (EndpointHealth)9 } };

        var errors = ResourceValidator.Validate([new ParsedResource(entry, "api", 0)], []);

        AssertOnlyError(errors, "api", 0, 0, 0, "spec.health", "expected one of: healthy, unhealthy, draining");
    }

    // ---- routes: references ----

    [Fact]
    public void Validate_RouteWithoutParentRefs_ReportsParentRefs()
    {
        var yaml = Route("r", SimpleRule, parents: "  parentRefs: []\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 6, 3, "spec.parentRefs", "at least one parentRef is required");
    }

    [Fact]
    public void Validate_ParentRefUnknownService_ListsServices()
    {
        var yaml = Route("r", SimpleRule, parents: "  parentRefs:\n  - name: greter\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 7, 11, "spec.parentRefs[0].name", "Service \"greter\" not found; expected one of: greeter, greeter-v1, greeter-v2");
    }

    [Fact]
    public void Validate_ParentRefUndeclaredPort_ListsDeclaredPorts()
    {
        var yaml = Route("r", SimpleRule, parents: "  parentRefs:\n  - name: greeter\n    port: 9090\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 8, 11, "spec.parentRefs[0].port", "Service \"greeter\" has no port 9090; declared ports: 50051 (grpc), 8080 (http)");
    }

    [Fact]
    public void Validate_ParentRefOtherKind_ExpectsService()
    {
        var yaml = Route("r", SimpleRule, parents: "  parentRefs:\n  - kind: Gateway\n    name: gw\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 7, 11, "spec.parentRefs[0].kind", "kind \"Gateway\" is not supported here; expected Service");
    }

    [Fact]
    public void Validate_BackendRefUnknownService_ReportsLikeTheExample()
    {
        var yaml = Route("greeter", "  - backendRefs:\n    - name: greeter-v1\n    - name: greeter-v3\n");

        var error = AssertOnlyError(Validate(yaml), "v.yaml", 1, 12, 13, "spec.rules[0].backendRefs[1].name", "Service \"greeter-v3\" not found; expected one of: greeter, greeter-v1, greeter-v2");
        Assert.Equal("v.yaml:12:13: document 1 (HTTPRoute default/greeter): spec.rules[0].backendRefs[1].name: Service \"greeter-v3\" not found; expected one of: greeter, greeter-v1, greeter-v2", error.ToString());
    }

    [Fact]
    public void Validate_BackendRefOtherNamespace_LooksThere()
    {
        var yaml = Route("r", "  - backendRefs:\n    - name: greeter-v1\n      namespace: prod\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 11, 13, "spec.rules[0].backendRefs[0].name", "Service \"greeter-v1\" not found in namespace \"prod\"; no Services exist in namespace \"prod\"");
    }

    [Fact]
    public void Validate_BackendRefUndeclaredPort_ListsDeclaredPorts()
    {
        var yaml = Route("r", "  - backendRefs:\n    - name: greeter-v1\n      port: 8080\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 12, 13, "spec.rules[0].backendRefs[0].port", "Service \"greeter-v1\" has no port 8080; declared ports: 50051 (grpc)");
    }

    [Fact]
    public void Validate_BackendRefNegativeWeight_ReportsWeight()
    {
        var yaml = Route("r", "  - backendRefs:\n    - name: greeter-v1\n      weight: -1\n    - name: greeter-v2\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 12, 15, "spec.rules[0].backendRefs[0].weight", "weight -1 is negative; expected 0 or more");
    }

    [Fact]
    public void Validate_AllWeightsZero_ReportsWeightSum()
    {
        var yaml = Route("r", "  - backendRefs:\n    - name: greeter-v1\n      weight: 0\n    - name: greeter-v2\n      weight: 0\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 10, 5, "spec.rules[0].backendRefs", "weight sum is 0");
    }

    [Fact]
    public void Validate_BatchReplacesStoredService_UsesBatchVersion()
    {
        var stored = ReadOk(V1 + "kind: Service\nmetadata: {name: api}\nspec: {ports: [{name: http, port: 80}]}\n", "old.yaml")[0].Resource;
        var yaml = V1 + "kind: Service\nmetadata: {name: api}\nspec: {ports: [{name: http, port: 8081}]}\n---\n"
                   + Route("r", SimpleRule, parents: "  parentRefs:\n  - name: api\n    port: 80\n");

        var errors = Validate(yaml, stored);

        AssertOnlyError(errors, "v.yaml", 2, 13, 11, "spec.parentRefs[0].port", "Service \"api\" has no port 80; declared ports: 8081 (http)");
    }

    // ---- routes: conflicts ----

    [Fact]
    public void Validate_IdenticalRulesInOneRoute_ReportsBothRuleIndexes()
    {
        var yaml = Route("r", "  - matches:\n    - path: {type: PathPrefix, value: /api}\n    backendRefs: [{name: greeter-v1}]\n"
                            + "  - matches:\n    - path: {value: /api}\n    backendRefs: [{name: greeter-v2}]\n");

        var error = AssertOnlyError(Validate(yaml), "v.yaml", 1, 13, 5, "spec.rules[1].matches", "rule 1 conflicts with rule 0 of this route");
        Assert.Contains("Service default/greeter port 50051", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_IdenticalRulesAcrossBatchRoutes_ReportsSecond()
    {
        var yaml = Route("a", SimpleRule) + "---\n" + Route("b", SimpleRule.Replace("greeter-v1", "greeter-v2", StringComparison.Ordinal));

        var error = AssertOnlyError(Validate(yaml), "v.yaml", 2, 23, 5, "spec.rules[0].matches", "rule 0 conflicts with HTTPRoute default/a rule 0 (document 1 of v.yaml)");
        Assert.Contains("path PathPrefix /", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_RuleConflictsWithStoredRoute_NamesStoredRoute()
    {
        var stored = ReadOk(Route("old", SimpleRule), "old.yaml")[0].Resource;
        var yaml = Route("new", SimpleRule, parents: "  parentRefs:\n  - name: greeter\n");

        AssertOnlyError(Validate(yaml, stored), "v.yaml", 1, 9, 5, "spec.rules[0].matches", "conflicts with HTTPRoute default/old rule 0 (stored)");
    }

    [Fact]
    public void Validate_StoredOlderVersionOfSameRoute_IsReplacedNotConflicting()
    {
        var stored = ReadOk(Route("r", SimpleRule), "old.yaml")[0].Resource;

        Assert.Empty(Validate(Route("r", SimpleRule), stored));
    }

    [Fact]
    public void Validate_DifferentMatchesOrPorts_DoNotConflict()
    {
        var yaml = Route("a", SimpleRule) + "---\n"
                   + Route("b", SimpleRule, parents: "  parentRefs:\n  - name: greeter\n    port: 8080\n") + "---\n"
                   + Route("c", "  - matches: [{path: {value: /v2}}]\n    backendRefs: [{name: greeter-v2}]\n");

        Assert.Empty(Validate(yaml));
    }

    // ---- routes: matches ----

    [Theory]
    [InlineData("PathPrefix")]
    [InlineData("Exact")]
    public void Validate_PathWithoutSlash_ReportsValue(string type)
    {
        var yaml = Route("r", RegexRule($"path: {{type: {type}, value: api}}"));

        AssertErrorAt(Validate(yaml), yaml, "api}", "spec.rules[0].matches[0].path.value", $"{type} value \"api\" must start with \"/\"");
    }

    [Theory]
    [InlineData("(a+)+$", "repeats a group that already repeats")]
    [InlineData("(a*)*b", "repeats a group that already repeats")]
    [InlineData("/x/(\\w+\\s?)*$", "repeats a group that already repeats")]
    [InlineData("(a|aa)+", "alternatives can match the same text (\"a\" and \"aa\"")]
    [InlineData("(?:ab|ab)*c", "alternatives can match the same text")]
    [InlineData("(?=/api)/.*", "linear-time (RE2) engine cannot run")]
    [InlineData("(?<!x)/y", "linear-time (RE2) engine cannot run")]
    [InlineData("/(a)\\1", "linear-time (RE2) engine cannot run")]
    [InlineData("/([a-z]+", "does not compile")]
    public void Validate_UnsafePathRegex_ReportsWhy(string pattern, string message)
    {
        var yaml = Route("r", RegexRule($"path: {{type: RegularExpression, value: '{pattern}'}}"));

        AssertErrorAt(Validate(yaml), yaml, "'" + pattern, "spec.rules[0].matches[0].path.value", message);
    }

    [Theory]
    [InlineData("/api/v[0-9]+/.*")]
    [InlineData("/(users|groups)/[^/]+")]
    [InlineData("/a{2,5}b+")]
    [InlineData("(ab)+c")]
    [InlineData("(a|b)*")]
    public void Validate_SafeRegex_IsAccepted(string pattern)
    {
        var yaml = Route("r", RegexRule($"path: {{type: RegularExpression, value: '{pattern}'}}"));

        Assert.Empty(Validate(yaml));
    }

    [Fact]
    public void Validate_UnsafeHeaderAndQueryRegex_ReportsEach()
    {
        var yaml = Route("r", RegexRule("headers: [{name: x-user, type: RegularExpression, value: '(x+)+'}]\n      queryParams: [{name: q, type: RegularExpression, value: '(?=a)'}]"));

        var errors = Validate(yaml);

        Assert.Equal(2, errors.Count);
        AssertErrorAt(errors, yaml, "'(x+)+'", "spec.rules[0].matches[0].headers[0].value", "nested repetition");
        AssertErrorAt(errors, yaml, "'(?=a)'", "spec.rules[0].matches[0].queryParams[0].value", "RE2");
    }

    [Fact]
    public void Validate_BadHeaderName_ReportsName()
    {
        var yaml = Route("r", RegexRule("headers: [{name: 'x user', value: a}]"));

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 11, 24, "spec.rules[0].matches[0].headers[0].name", "\"x user\" is not a valid header name");
    }

    [Fact]
    public void Validate_BadMethod_ListsMethods()
    {
        var yaml = Route("r", RegexRule("method: get"));

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 11, 15, "spec.rules[0].matches[0].method", "\"get\" is not an HTTP method; expected one of: GET, HEAD");
    }

    [Fact]
    public void Validate_GrpcMethodRegexUnsafe_ReportsMethodField()
    {
        var yaml = Gw + "kind: GRPCRoute\nmetadata: {name: g}\nspec:\n  parentRefs: [{name: greeter, port: 50051}]\n  rules:\n"
                   + "  - matches:\n    - method: {type: RegularExpression, service: 'helloworld\\..*', method: '(Say|Sa)+'}\n    backendRefs: [{name: greeter-v1, port: 50051}]\n";

        AssertErrorAt(Validate(yaml), yaml, "'(Say|Sa)+'", "spec.rules[0].matches[0].method.method", "alternatives can match the same text (\"Sa\" and \"Say\"");
    }

    [Fact]
    public void Validate_GrpcRulesWithSameMethod_Conflict()
    {
        var yaml = Gw + "kind: GRPCRoute\nmetadata: {name: g}\nspec:\n  parentRefs: [{name: greeter, port: 50051}]\n  rules:\n"
                   + "  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]\n    backendRefs: [{name: greeter-v1}]\n"
                   + "  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]\n    backendRefs: [{name: greeter-v2}]\n";

        AssertErrorAt(Validate(yaml), yaml, "matches", "spec.rules[1].matches", "rule 1 conflicts with rule 0 of this route", occurrence: 2);
    }

    [Fact]
    public void Validate_TcpRoutesOnSamePort_Conflict()
    {
        const string tcp = "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: NAME}\nspec:\n  parentRefs: [{name: greeter, port: 8080}]\n  rules:\n  - backendRefs: [{name: greeter-v1, port: 50051}]\n";
        var yaml = tcp.Replace("NAME", "t1", StringComparison.Ordinal) + "---\n" + tcp.Replace("NAME", "t2", StringComparison.Ordinal);

        AssertOnlyError(Validate(yaml), "v.yaml", 2, 15, 5, "spec.rules[0]", "conflicts with TCPRoute default/t1 rule 0");
    }

    [Fact]
    public void Validate_BackendTimeoutLongerThanRequest_ReportsBackendRequest()
    {
        var yaml = Route("r", SimpleRule + "    timeouts:\n      request: 5s\n      backendRequest: 10s\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 15, 23, "spec.rules[0].timeouts.backendRequest", "backendRequest (10s) is longer than request (5s)");
    }

    [Fact]
    public void Validate_ExtensionRefUnsupportedKind_ListsSupportedKinds()
    {
        var yaml = Route("r", SimpleRule + "    filters:\n    - type: ExtensionRef\n      extensionRef: {group: trellis.dev, kind: Lua, name: script}\n");

        AssertErrorAt(Validate(yaml), yaml, "Lua", "spec.rules[0].filters[0].extensionRef.kind", "kind \"Lua\" is not supported as an extensionRef; expected one of: FaultInjection, RateLimit");
    }


    [Fact]
    public void Validate_FilterWithoutItsField_ReportsFilter()
    {
        var yaml = Route("r", SimpleRule + "    filters:\n    - type: RequestHeaderModifier\n");

        AssertErrorAt(Validate(yaml), yaml, "type: RequestHeaderModifier", "spec.rules[0].filters[0]", "a RequestHeaderModifier filter needs its requestHeaderModifier field");
    }

    // ---- TrafficPolicy ----

    private static string Policy(string name, string body, string target = "greeter") =>
        V1 + $"kind: TrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  targetRef: {{kind: Service, name: {target}}}\n" + body;

    [Fact]
    public void Validate_PolicyTargetMissing_ListsServices()
    {
        var yaml = Policy("p", "", target: "gretter");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 5, 36, "spec.targetRef.name", "Service \"gretter\" not found; expected one of: greeter, greeter-v1, greeter-v2");
    }

    [Fact]
    public void Validate_PolicyRetries_ReportsRangesAndUnknownRetryOn()
    {
        var yaml = Policy("p", "  retries:\n    attempts: 11\n    retryOn: [reset, 503]\n    budgetPercent: 101\n");

        var errors = Validate(yaml);

        Assert.Equal(3, errors.Count);
        AssertError(errors, "v.yaml", 1, 7, 15, "spec.retries.attempts", "attempts 11 is out of range; expected 0-10");
        AssertError(errors, "v.yaml", 1, 8, 22, "spec.retries.retryOn[1]", "unknown retryOn value \"503\"; expected one of: connect-failure, refused-stream, reset, 5xx, gateway-error, retriable-4xx, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable");
        AssertError(errors, "v.yaml", 1, 9, 20, "spec.retries.budgetPercent", "101 is out of range; expected a percentage 0-100");
    }

    [Fact]
    public void Validate_PolicyMaxEjectionPercent_ReportsRange()
    {
        var yaml = Policy("p", "  outlierDetection:\n    maxEjectionPercent: 150\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 7, 25, "spec.outlierDetection.maxEjectionPercent", "150 is out of range; expected a percentage 0-100");
    }

    [Fact]
    public void Validate_PolicyFailoverOrder_ReportsUnknownAndDuplicate()
    {
        var yaml = Policy("p", "  failover:\n    order: [zone, rack, zone]\n");

        var errors = Validate(yaml);

        Assert.Equal(2, errors.Count);
        AssertError(errors, "v.yaml", 1, 7, 19, "spec.failover.order[1]", "unknown locality level \"rack\"; expected one of: zone, region, cluster");
        AssertError(errors, "v.yaml", 1, 7, 25, "spec.failover.order[2]", "\"zone\" is listed twice");
    }

    [Fact]
    public void Validate_PolicyPoolIdleTimeoutAndPerConnection_ReportsRanges()
    {
        var yaml = Policy("p", "  connectionPool:\n    maxRequestsPerConnection: 0\n    idleTimeout: 0s\n");

        var errors = Validate(yaml);

        Assert.Equal(2, errors.Count);
        AssertError(errors, "v.yaml", 1, 7, 31, "spec.connectionPool.maxRequestsPerConnection", "0 is too small; expected 1 or more");
        AssertError(errors, "v.yaml", 1, 8, 18, "spec.connectionPool.idleTimeout", "0s must be positive");
    }

    [Fact]
    public void Validate_RingHashWithoutHashOn_AsksForHashOn()
    {
        var yaml = Policy("p", "  loadBalancer:\n    algorithm: RingHash\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 6, 3, "spec.loadBalancer.hashOn", "RingHash needs hashOn");
    }

    [Fact]
    public void Validate_TwoPoliciesForOneService_Conflict()
    {
        var yaml = Policy("a", "  timeout: 5s\n") + "---\n" + Policy("b", "  timeout: 6s\n");

        AssertOnlyError(Validate(yaml), "v.yaml", 2, 12, 3, "spec.targetRef", "conflicts with TrafficPolicy default/a (document 1 of v.yaml), which also targets Service default/greeter");
    }

    [Fact]
    public void Validate_PolicyConflictsWithStored_NamesStoredPolicy()
    {
        var stored = ReadOk(Policy("old", ""), "old.yaml")[0].Resource;

        AssertOnlyError(Validate(Policy("new", ""), stored), "v.yaml", 1, 5, 3, "spec.targetRef", "conflicts with TrafficPolicy default/old (stored)");
    }

    [Fact]
    public void Validate_PolicyUpdatingStoredVersion_DoesNotConflict()
    {
        var stored = ReadOk(Policy("p", ""), "old.yaml")[0].Resource;

        Assert.Empty(Validate(Policy("p", "  timeout: 1s\n"), stored));
    }

    // ---- MeshConfig ----

    [Fact]
    public void Validate_TwoMeshConfigs_ReportsSecond()
    {
        var yaml = V1 + "kind: MeshConfig\nmetadata: {name: mesh}\n---\n" + V1 + "kind: MeshConfig\nmetadata: {name: other}\n";

        AssertOnlyError(Validate(yaml), "v.yaml", 2, 7, 18, "metadata.name", "a mesh has one MeshConfig and MeshConfig \"mesh\" (document 1 of v.yaml) already exists");
    }

    [Fact]
    public void Validate_MeshConfigBesideStoredOne_ReportsStored()
    {
        var stored = ReadOk(V1 + "kind: MeshConfig\nmetadata: {name: mesh}\n", "old.yaml")[0].Resource;
        var yaml = V1 + "kind: MeshConfig\nmetadata: {name: other}\n";

        AssertOnlyError(Validate(yaml, stored), "v.yaml", 1, 3, 18, "metadata.name", "MeshConfig \"mesh\" (stored) already exists");
    }

    [Fact]
    public void Validate_BadTrustDomain_ReportsTrustDomain()
    {
        var yaml = V1 + "kind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  trustDomain: Cluster_Local\n";

        AssertOnlyError(Validate(yaml), "v.yaml", 1, 5, 16, "spec.trustDomain", "\"Cluster_Local\" is not a valid trust domain");
    }
}
