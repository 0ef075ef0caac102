using System.Text.Json.Nodes;
using Trellis.ControlPlane.Store;
using Trellis.Testing;
using Xunit;

namespace Trellis.ControlPlane.Tests.Admin;

/// <summary>Bad applies through the REST API: each error has its exact place, and the store revision does not move.</summary>
public sealed class ApplyValidationTests : IAsyncLifetime
{
    private const string Base = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec: {selector: {app: greeter}, ports: [{name: grpc, port: 50051, protocol: grpc}]}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: existing}
        spec:
          parentRefs: [{kind: Service, name: greeter, port: 50051}]
          rules:
          - matches: [{path: {type: PathPrefix, value: /a}}]
            backendRefs: [{kind: Service, name: greeter, port: 50051}]
        """;

    private TestControlPlane _cp = null!;

    public async Task InitializeAsync()
    {
        _cp = await TestControlPlane.StartAsync();
        await _cp.ApplyAsync(Base);
    }

    public async Task DisposeAsync() => await _cp.DisposeAsync();

    public static TheoryData<string, string, int, int, string, string> Cases => new()
    {
        {
            "unknown kind",
            "apiVersion: trellis.dev/v1alpha1\nkind: Servise\nmetadata: {name: x}\n",
            2, 7, "kind", "Servise"
        },
        {
            "unknown field",
            "apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: x}\nspec:\n  portz: []\n",
            5, 3, "spec.portz", "ports"
        },
        {
            "wrong type",
            "apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{name: http, port: eighty}]\n",
            5, 30, "spec.ports[0].port", "integer"
        },
        {
            "missing reference",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{kind: Service, name: greeter}]\n  rules:\n  - backendRefs: [{kind: Service, name: nowhere, port: 80}]\n",
            7, 41, "spec.rules[0].backendRefs[0].name", "nowhere"
        },
        {
            "weight sum 0",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{kind: Service, name: greeter}]\n  rules:\n  - backendRefs: [{kind: Service, name: greeter, port: 50051, weight: 0}]\n",
            7, 5, "spec.rules[0].backendRefs", "weight sum is 0"
        },
        {
            "conflicting route",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: clash}\nspec:\n  parentRefs: [{kind: Service, name: greeter, port: 50051}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /a}}]\n    backendRefs: [{kind: Service, name: greeter, port: 50051}]\n",
            7, 5, "spec.rules[0].matches", "existing"
        },
        {
            "catastrophic regex",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{kind: Service, name: greeter}]\n  rules:\n  - matches: [{path: {type: RegularExpression, value: \"/(a+)+$\"}}]\n    backendRefs: [{kind: Service, name: greeter, port: 50051}]\n",
            7, 55, "spec.rules[0].matches[0].path.value", "nested"
        },
        {
            "missing extensionRef",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{kind: Service, name: greeter}]\n  rules:\n  - matches: [{path: {value: /f}}]\n    filters: [{type: ExtensionRef, extensionRef: {group: trellis.dev, kind: FaultInjection, name: chaos}}]\n",
            8, 99, "spec.rules[0].filters[0].extensionRef.name", "FaultInjection \"chaos\" not found"
        },
        {
            "fault percent",
            "apiVersion: trellis.dev/v1alpha1\nkind: FaultInjection\nmetadata: {name: f}\nspec:\n  abort: {percent: 150, httpStatus: 503}\n",
            5, 20, "spec.abort.percent", "0-100"
        },
        {
            "rate limit fill",
            "apiVersion: trellis.dev/v1alpha1\nkind: RateLimit\nmetadata: {name: l}\nspec:\n  tokenBucket: {maxTokens: 10, fillInterval: 1ms}\n",
            5, 46, "spec.tokenBucket.fillInterval", "50ms or more"
        },
        {
            "hostname address",
            "apiVersion: trellis.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: vm1.example, labels: {app: greeter}}\n",
            4, 17, "spec.address", "IP"
        },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Apply_BadInput_ReportsExactPlace_AndRevisionDoesNotMove(string name, string yaml, int line, int column, string path, string mentions)
    {
        var store = _cp.Get<IConfigStore>();
        var before = await store.GetRevisionAsync();
        var body = await _cp.ApplyAsync(yaml, "bad.yaml", expectOk: false);

        Assert.False(body["ok"]!.GetValue<bool>(), name);
        var errors = body["errors"]!.AsArray();
        var error = errors.FirstOrDefault(e => e!["path"]!.GetValue<string>() == path);
        Assert.True(error is not null, $"{name}: no error at {path}; got {body["errors"]!.ToJsonString()}");
        Assert.Equal("bad.yaml", error["file"]!.GetValue<string>());
        Assert.Equal((line, column), (error["line"]!.GetValue<int>(), error["column"]!.GetValue<int>()));
        Assert.Contains(mentions, error["message"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await store.GetRevisionAsync());
    }

    [Fact]
    public async Task Apply_GoodAndBadDocumentsTogether_AppliesNothing()
    {
        var store = _cp.Get<IConfigStore>();
        var before = await store.GetRevisionAsync();
        var body = await _cp.ApplyAsync("""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: good}
            spec: {ports: [{name: http, port: 80}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: Bad_Name}
            spec: {ports: [{name: http, port: 80}]}
            """, "mixed.yaml", expectOk: false);
        Assert.False(body["ok"]!.GetValue<bool>());
        Assert.Equal(before, await store.GetRevisionAsync());
        Assert.Null(await store.GetAsync(new ResourceKey("Service", "default", "good")));
    }

    [Fact]
    public async Task Apply_FaultInjectionAndRateLimit_ListedAndReadBackWithStatus()
    {
        await _cp.ApplyAsync("""
            apiVersion: trellis.dev/v1alpha1
            kind: FaultInjection
            metadata: {name: chaos}
            spec: {abort: {percent: 5, httpStatus: 503}}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: RateLimit
            metadata: {name: calm}
            spec:
              targetRef: {kind: Service, name: greeter}
              tokenBucket: {maxTokens: 10, fillInterval: 1s}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: faulty}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 50051}]
              rules:
              - matches: [{path: {value: /f}}]
                filters: [{type: ExtensionRef, extensionRef: {group: trellis.dev, kind: FaultInjection, name: chaos}}]
                backendRefs: [{kind: Service, name: greeter, port: 50051}]
            """, "filters.yaml");

        var faults = (await _cp.GetJsonAsync("api/v1/resources/faultinjections"))["items"]!.AsArray();
        var chaos = Assert.Single(faults)!;
        Assert.Equal(503, chaos["spec"]!["abort"]!["httpStatus"]!.GetValue<int>());
        Assert.True(chaos["status"]!["accepted"]!.GetValue<bool>());
        var calm = await _cp.GetJsonAsync("api/v1/resources/ratelimit/calm");
        Assert.Equal("1s", calm["spec"]!["tokenBucket"]!["fillInterval"]!.GetValue<string>());
        Assert.True(calm["status"]!["accepted"]!.GetValue<bool>(), calm.ToJsonString());
        using var missing = await _cp.Http.GetAsync("api/v1/resources/rl/nope");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("trellis get ratelimits -A", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Put_WithStaleResourceVersion_IsRefusedWithConflict()
    {
        var current = await _cp.GetJsonAsync("api/v1/resources/services/greeter");
        var stale = current["metadata"]!["resourceVersion"]!.GetValue<long>();
        await _cp.ApplyAsync(Base.Replace("port: 50051, protocol: grpc}]}", "port: 50051, protocol: grpc}, {name: http, port: 8080}]}", StringComparison.Ordinal));

        var body = (JsonObject)current.DeepClone();
        body.Remove("status");
        body["spec"]!["ports"]![0]!["port"] = 50052;
        using var put = await _cp.Http.PutAsync("api/v1/resources/services/greeter", new StringContent(body.ToJsonString()));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, put.StatusCode);
        Assert.Contains("changed meanwhile", await put.Content.ReadAsStringAsync());
        Assert.NotEqual(stale, (await _cp.GetJsonAsync("api/v1/resources/services/greeter"))["metadata"]!["resourceVersion"]!.GetValue<long>());
    }
}
