using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Trellis.Testing;
using Trellis.Testing.Apps;
using Xunit;

namespace Trellis.IntegrationTests.Mesh;

/// <summary>
/// Each traffic policy end to end: the control plane process, a sidecar for the calling app, and test apps as the
/// endpoints of "greeter". Every test first shows the behaviour the policy changes, or asserts what only the
/// policy can produce, so it fails without it.
/// </summary>
public sealed class PolicyTests
{
    /// <summary>A YAML fragment on its own lines, so fragments concatenate into one multi-document text.</summary>
    private static string Yaml(string text) => "\n" + text + "\n";

    private const string GreeterService = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec: {selector: {app: greeter}, ports: [{name: http, port: 8080, protocol: http}]}
        """;

    private static string Entry(string name, TestHttpApp app, string labels = "app: greeter", string extra = "") => Yaml($$"""
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: {{name}}}
        spec: {address: 127.0.0.1, ports: {http: {{app.Port}}}, labels: {{{labels}}}{{extra}}}
        """);

    /// <summary>A TrafficPolicy for greeter: its targetRef plus the given spec fields, one flow-style field each.</summary>
    private static string GreeterPolicy(params string[] fields) => Yaml("""
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: TrafficPolicy
        metadata: {name: greeter}
        spec:
          targetRef: {kind: Service, name: greeter}
        """ + string.Concat(fields.Select(f => "\n  " + f)));

    /// <summary>A TrafficPolicy for greeter with the given load balancer.</summary>
    private static string LoadBalancer(string balancer) => GreeterPolicy($"loadBalancer: {{{balancer}}}");

    /// <summary>A mesh with greeter's endpoints and the caller's sidecar; returns the caller's local greeter URL.</summary>
    private static Task<(MeshHarness Mesh, Sidecar Web, string Url)> StartAsync(string extraYaml, params TestHttpApp[] apps) =>
        StartAsync(GreeterService + string.Concat(apps.Select(a => Entry(a.Name, a))) + extraYaml, sidecarArgs: []);

    /// <summary>A mesh from the given YAML and the caller's sidecar (started with extra flags); returns its local greeter URL.</summary>
    private static async Task<(MeshHarness Mesh, Sidecar Web, string Url)> StartAsync(string yaml, string[] sidecarArgs)
    {
        var mesh = await MeshHarness.StartAsync();
        await mesh.ApplyAsync(yaml);
        var web = await mesh.StartSidecarAsync("web", ["greeter:8080"], extraArgs: sidecarArgs);
        return (mesh, web, $"http://127.0.0.1:{web.Port("greeter:8080")}/");
    }

    /// <summary>The bodies of <paramref name="count"/> requests sent one after another, in order.</summary>
    private static async Task<List<string>> SequenceAsync(HttpClient http, string url, int count)
    {
        var bodies = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            using var response = await http.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            bodies.Add(await response.Content.ReadAsStringAsync());
        }
        return bodies;
    }

    private static async Task<List<(int Status, string Body, string? Error)>> SendAsync(HttpClient http, string url, int count, int parallel = 1, Action<HttpRequestMessage>? prepare = null)
    {
        var results = new ConcurrentBag<(int, string, string?)>();
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (i, ct) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            prepare?.Invoke(request);
            using var response = await http.SendAsync(request, ct);
            var error = response.Headers.TryGetValues("x-trellis-error", out var v) ? v.First() : null;
            results.Add(((int)response.StatusCode, await response.Content.ReadAsStringAsync(ct), error));
        });
        return [.. results];
    }

    [Fact]
    public async Task HttpRoute_WeightedSplit_RatioWithinTolerance()
    {
        await using var v1 = await TestHttpApp.StartAsync("greeter-v1");
        await using var v2 = await TestHttpApp.StartAsync("greeter-v2");
        var (mesh, web, url) = await StartAsync(Yaml("""
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: greeter-v1}
            spec: {selector: {app: greeter, version: v1}, ports: [{name: http, port: 8080, protocol: http}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: greeter-v2}
            spec: {selector: {app: greeter, version: v2}, ports: [{name: http, port: 8080, protocol: http}]}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: greeter-split}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 8080}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /beta}}]
                backendRefs: [{kind: Service, name: greeter-v2, port: 8080}]
              - backendRefs:
                - {kind: Service, name: greeter-v1, port: 8080, weight: 80}
                - {kind: Service, name: greeter-v2, port: 8080, weight: 20}
            """) + Entry("v1", v1, "app: greeter, version: v1") + Entry("v2", v2, "app: greeter, version: v2"));
        await using var _ = mesh;
        using var http = new HttpClient();

        var results = await SendAsync(http, url, 400, parallel: 4);
        var beta = await SendAsync(http, url + "beta/x", 20);

        Assert.All(results, r => Assert.Equal(200, r.Status));
        var v1Share = results.Count(r => r.Body == "greeter-v1") / (double)results.Count;
        Assert.InRange(v1Share, 0.72, 0.88);
        Assert.All(beta, r => Assert.Equal("greeter-v2", r.Body));
    }

    [Fact]
    public async Task HttpRoute_Filters_RewriteHeadersAndRedirect()
    {
        await using var app = await TestHttpApp.StartAsync("greeter-1");
        var (mesh, web, url) = await StartAsync(Yaml("""
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: greeter}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 8080}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /old}}]
                filters:
                - type: RequestRedirect
                  requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 301}
              - matches: [{path: {type: PathPrefix, value: /api}}]
                filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier: {set: [{name: x-env, value: mesh}], remove: [x-secret]}
                - type: ResponseHeaderModifier
                  responseHeaderModifier: {add: [{name: x-served-by, value: trellis}]}
                - type: URLRewrite
                  urlRewrite: {hostname: greeter.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
                backendRefs: [{kind: Service, name: greeter, port: 8080}]
            """), app);
        await using var _ = mesh;
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });

        using var request = new HttpRequestMessage(HttpMethod.Get, url + "api/items?q=1");
        request.Headers.Add("x-secret", "s3cret");
        request.Headers.Add("x-env", "laptop");
        using var response = await http.SendAsync(request);
        using var redirect = await http.GetAsync(url + "old/page");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("trellis", response.Headers.GetValues("x-served-by").Single());
        var seen = app.Seen.Last();
        Assert.Equal(("/v2/items?q=1", "greeter.internal"), (seen.PathAndQuery, seen.Host));
        Assert.Equal("mesh", seen.Headers["x-env"]);
        Assert.False(seen.Headers.ContainsKey("x-secret"));
        Assert.Equal(HttpStatusCode.MovedPermanently, redirect.StatusCode);
        Assert.Equal("/new", redirect.Headers.Location!.IsAbsoluteUri ? redirect.Headers.Location.AbsolutePath : redirect.Headers.Location.OriginalString);
        Assert.Equal(1, app.Requests); // the redirect was answered by the proxy
    }

    [Fact]
    public async Task Retries_FlakyEndpoint_RecoversEveryRequest()
    {
        await using var good = await TestHttpApp.StartAsync("good");
        await using var flaky = await TestHttpApp.StartAsync("flaky");
        flaky.Handler = async ctx =>
        {
            ctx.Response.StatusCode = 503;
            await ctx.Response.WriteAsync("flaky says no");
            return true;
        };
        var (mesh, web, url) = await StartAsync("", good, flaky);
        await using var _ = mesh;
        using var http = new HttpClient();

        var without = await SendAsync(http, url, 40);
        Assert.Contains(without, r => r.Status == 503 && r.Error is null); // the app's own 503 reaches the caller

        await mesh.ApplyAsync(GreeterService + GreeterPolicy("retries: {attempts: 3, retryOn: [5xx], backoffBaseInterval: 5ms}"));
        await Eventually.WaitAsync(async () => (await SendAsync(http, url, 10)).All(r => r.Status == 200), "retries to take effect", TimeSpan.FromSeconds(30));

        // Two callers at once: within the default three concurrent retries of the cluster (connectionPool.maxRetries).
        var with = await SendAsync(http, url, 200, parallel: 2);
        Assert.All(with, r => Assert.Equal((200, "good"), (r.Status, r.Body)));
        Assert.True(flaky.Requests > 40, "the flaky endpoint kept being tried (retries went elsewhere)");
    }

    [Fact]
    public async Task RetryBudget_EveryEndpointFailing_RetriesCappedAtBudget()
    {
        const int callers = 50;
        await using var bad = await TestHttpApp.StartAsync("bad");
        // The app holds the 50 first tries until all have arrived, then fails them at once; it then holds the retries
        // that follow until every call is either retrying at the app or finished (answered by the proxy), so the
        // retries the proxy let through are all in flight together when counted.
        var firstTries = 0;
        var allFirstTriesIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var heldRetries = 0;
        var finished = 0;
        var maxConcurrentRetries = 0;
        var retriesSettled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void CheckSettled()
        {
            if (Volatile.Read(ref heldRetries) + Volatile.Read(ref finished) >= callers)
            {
                retriesSettled.TrySetResult();
            }
        }
        bad.Handler = async ctx =>
        {
            var retry = ctx.Request.Headers.TryGetValue("x-trellis-attempt-count", out var a) && a.ToString() != "1";
            if (!retry)
            {
                if (Interlocked.Increment(ref firstTries) == callers)
                {
                    allFirstTriesIn.TrySetResult();
                }
                await allFirstTriesIn.Task.WaitAsync(ctx.RequestAborted);
            }
            else if (!retriesSettled.Task.IsCompleted)
            {
                InterlockedMax(ref maxConcurrentRetries, Interlocked.Increment(ref heldRetries));
                CheckSettled();
                await retriesSettled.Task.WaitAsync(ctx.RequestAborted);
            }
            ctx.Response.StatusCode = 503;
            return true;
        };
        var (mesh, web, url) = await StartAsync(GreeterPolicy("retries: {attempts: 4, retryOn: [5xx], budgetPercent: 20, backoffBaseInterval: 1ms, backoffMaxInterval: 2ms}", "connectionPool: {maxRetries: 1000}"), bad);
        await using var _ = mesh;
        using var http = new HttpClient();

        var results = await Task.WhenAll(Enumerable.Range(0, callers).Select(async _ =>
        {
            using var response = await http.GetAsync(url);
            Interlocked.Increment(ref finished);
            CheckSettled();
            return (int)response.StatusCode;
        })).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.All(results, status => Assert.Equal(503, status));
        // 50 requests in flight: the budget allows max(20% of 50, 3) = 10 retries at once; without it all 50.
        Assert.InRange(maxConcurrentRetries, 1, 10);
        Assert.True(bad.Requests < callers * 5, $"{bad.Requests} upstream attempts");
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }

    [Fact]
    public async Task OutlierDetection_Failing5xxEndpoint_EjectedThenReturns()
    {
        await using var good = await TestHttpApp.StartAsync("good");
        await using var sick = await TestHttpApp.StartAsync("sick");
        var failing = true;
        sick.Handler = async ctx =>
        {
            if (!Volatile.Read(ref failing))
            {
                return false;
            }
            ctx.Response.StatusCode = 500;
            await ctx.Response.WriteAsync("sick");
            return true;
        };
        var (mesh, web, url) = await StartAsync(GreeterPolicy("outlierDetection: {consecutive5xx: 3, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 50}"), good, sick);
        await using var _ = mesh;
        using var http = new HttpClient();

        var first = await SendAsync(http, url, 20);
        Assert.Equal(3, first.Count(r => r.Status == 500)); // ejected after its third consecutive 5xx
        var clusters = JsonNode.Parse(await web.Admin.GetStringAsync("clusters"))!.ToJsonString();
        Assert.Contains("\"ejected\":true", clusters.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
        var during = await SendAsync(http, url, 20);
        Assert.All(during, r => Assert.Equal("good", r.Body));

        Volatile.Write(ref failing, false);
        await Eventually.WaitAsync(async () => (await SendAsync(http, url, 4)).Any(r => r.Body == "sick"), "the ejected endpoint to return after its ejection time", TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task CircuitBreaker_MaxRequestsReached_503WithReason()
    {
        await using var slow = await TestHttpApp.StartAsync("slow");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = 0;
        var twoArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        slow.Handler = async ctx =>
        {
            if (Interlocked.Increment(ref arrived) == 2)
            {
                twoArrived.TrySetResult();
            }
            await release.Task.WaitAsync(ctx.RequestAborted);
            return false;
        };
        var (mesh, web, url) = await StartAsync(GreeterPolicy("connectionPool: {maxRequests: 2, maxPendingRequests: 1, maxConnections: 2}"), slow);
        await using var _ = mesh;
        using var http = new HttpClient();

        var held = new[] { http.GetAsync(url), http.GetAsync(url) };
        await twoArrived.Task.WaitAsync(TimeSpan.FromSeconds(20));
        using var tripped = await http.GetAsync(url);
        release.SetResult();
        var heldResults = await Task.WhenAll(held);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, tripped.StatusCode);
        Assert.Equal("circuit_open", tripped.Headers.GetValues("x-trellis-error").Single());
        Assert.All(heldResults, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(2, slow.Requests); // the third never reached the app
    }

    [Fact]
    public async Task FaultInjection_AbortPercentAndDelay_HitTheirShare()
    {
        await using var app = await TestHttpApp.StartAsync("greeter-1");
        var (mesh, web, url) = await StartAsync(Yaml("""
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: FaultInjection
            metadata: {name: flaky}
            spec: {abort: {percent: 30, httpStatus: 503}}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: FaultInjection
            metadata: {name: slow}
            spec: {delay: {percent: 100, fixedDelay: 300ms}}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: greeter}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 8080}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /slow}}]
                filters: [{type: ExtensionRef, extensionRef: {group: trellis.dev, kind: FaultInjection, name: slow}}]
                backendRefs: [{kind: Service, name: greeter, port: 8080}]
              - filters: [{type: ExtensionRef, extensionRef: {group: trellis.dev, kind: FaultInjection, name: flaky}}]
                backendRefs: [{kind: Service, name: greeter, port: 8080}]
            """), app);
        await using var _ = mesh;
        using var http = new HttpClient();

        var results = await SendAsync(http, url, 400, parallel: 8);
        var aborted = results.Count(r => r.Status == 503 && r.Error == "fault_injected") / (double)results.Count;
        Assert.InRange(aborted, 0.22, 0.38);
        Assert.All(results.Where(r => r.Status != 503), r => Assert.Equal("greeter-1", r.Body));

        var watch = Stopwatch.StartNew();
        using var slow = await http.GetAsync(url + "slow");
        Assert.Equal(HttpStatusCode.OK, slow.StatusCode);
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(290), $"answered in {watch.Elapsed.TotalMilliseconds} ms");
    }

    [Fact]
    public async Task RateLimit_BucketSpent_429UntilRefill()
    {
        await using var app = await TestHttpApp.StartAsync("greeter-1");
        var (mesh, web, url) = await StartAsync(Yaml("""
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: RateLimit
            metadata: {name: five}
            spec: {tokenBucket: {maxTokens: 5, tokensPerFill: 5, fillInterval: 60s}}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: greeter}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 8080}]
              rules:
              - filters: [{type: ExtensionRef, extensionRef: {group: trellis.dev, kind: RateLimit, name: five}}]
                backendRefs: [{kind: Service, name: greeter, port: 8080}]
            """), app);
        await using var _ = mesh;
        using var http = new HttpClient();

        var results = await SendAsync(http, url, 12);

        Assert.Equal(5, results.Count(r => r.Status == 200));
        Assert.Equal(7, results.Count(r => r.Status == 429 && r.Error == "rate_limited"));
        Assert.Equal(5, app.Requests);
    }

    [Fact]
    public async Task Timeout_HangingUpstream_504AfterRouteTimeout()
    {
        await using var app = await TestHttpApp.StartAsync("hangs");
        app.Handler = async ctx =>
        {
            await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
            return true;
        };
        var (mesh, web, url) = await StartAsync(Yaml("""
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: greeter}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 8080}]
              rules:
              - backendRefs: [{kind: Service, name: greeter, port: 8080}]
                timeouts: {request: 400ms}
            """), app);
        await using var _ = mesh;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };

        var watch = Stopwatch.StartNew();
        using var response = await http.GetAsync(url);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("upstream_timeout", response.Headers.GetValues("x-trellis-error").Single());
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(380), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task RingHash_SameHeader_SameEndpoint()
    {
        await using var a = await TestHttpApp.StartAsync("a");
        await using var b = await TestHttpApp.StartAsync("b");
        await using var c = await TestHttpApp.StartAsync("c");
        var (mesh, web, url) = await StartAsync(LoadBalancer("algorithm: RingHash, hashOn: {header: x-user}"), a, b, c);
        await using var _ = mesh;
        using var http = new HttpClient();

        var perUser = new Dictionary<string, HashSet<string>>();
        for (var u = 0; u < 30; u++)
        {
            var user = $"user-{u}";
            var answers = await SendAsync(http, url, 5, prepare: r => r.Headers.Add("x-user", user));
            perUser[user] = [.. answers.Select(x => x.Body)];
        }

        Assert.All(perUser.Values, set => Assert.Single(set));
        Assert.True(perUser.Values.Select(s => s.Single()).Distinct().Count() >= 2, "30 users all hashed to one endpoint");
    }

    [Fact]
    public async Task LeastRequest_OneEndpointHoldsRequests_LaterRequestsAvoidIt()
    {
        await using var slow = await TestHttpApp.StartAsync("slow");
        await using var fast = await TestHttpApp.StartAsync("fast");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrivedAtSlow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        slow.Handler = async ctx =>
        {
            Volatile.Read(ref arrivedAtSlow).TrySetResult();
            await release.Task.WaitAsync(ctx.RequestAborted);
            return false;
        };
        var (mesh, web, url) = await StartAsync(LoadBalancer("algorithm: LeastRequest"), slow, fast);
        await using var _ = mesh;
        using var http = new HttpClient();

        // One request at a time: each either completes at "fast" or is held by "slow" before the next is sent.
        // Round robin would hold 10 of 20 at "slow"; least request sends nothing more to an endpoint with a request
        // in flight while the other has none.
        var held = new List<Task<HttpResponseMessage>>();
        for (var i = 0; i < 20; i++)
        {
            var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref arrivedAtSlow, arrived);
            var call = http.GetAsync(url);
            await Task.WhenAny(call, arrived.Task).WaitAsync(TimeSpan.FromSeconds(20));
            if (arrived.Task.IsCompleted)
            {
                held.Add(call);
            }
            else
            {
                using var done = await call;
                Assert.Equal("fast", await done.Content.ReadAsStringAsync());
            }
        }
        release.SetResult();
        foreach (var h in held)
        {
            using var r = await h;
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        Assert.True(held.Count <= 1, $"{held.Count} of 20 requests were sent to the endpoint already holding one");
        Assert.True(fast.Requests >= 19);
    }

    [Fact]
    public async Task Random_TwoEndpoints_EvenShareButNoFixedOrder()
    {
        await using var a = await TestHttpApp.StartAsync("a");
        await using var b = await TestHttpApp.StartAsync("b");
        var (mesh, web, url) = await StartAsync(LoadBalancer("algorithm: Random"), a, b);
        await using var _ = mesh;
        using var http = new HttpClient();

        var bodies = await SequenceAsync(http, url, 200);

        // Round robin alternates (no request goes where the previous one went); random repeats about half the time.
        var repeats = bodies.Zip(bodies.Skip(1)).Count(p => p.First == p.Second);
        Assert.InRange(bodies.Count(x => x == "a"), 70, 130);
        Assert.True(repeats >= 60, $"only {repeats} of 199 requests went to the endpoint of the request before");
    }

    [Fact]
    public async Task Ewma_OneEndpointSlower_MostRequestsGoToTheFastOne()
    {
        await using var slow = await TestHttpApp.StartAsync("slow");
        await using var fast = await TestHttpApp.StartAsync("fast");
        slow.ResponseDelay = TimeSpan.FromMilliseconds(40);
        using var http = new HttpClient();
        // Each app's first answer (code compiled on first use) can take longer than the slow one's delay on a busy
        // machine: peak EWMA would then hold that peak against the fast app. Warm both up directly first.
        foreach (var app in new[] { slow, fast })
        {
            using var warm = await http.GetAsync($"http://127.0.0.1:{app.Port}/");
        }
        slow.Seen.Clear();
        fast.Seen.Clear();
        var (mesh, web, url) = await StartAsync(LoadBalancer("algorithm: Ewma"), slow, fast);
        await using var _ = mesh;

        var bodies = await SequenceAsync(http, url, 60);

        // Round robin would send 30 to each; peak EWMA learns the latencies from the first answers.
        Assert.True(bodies.Count(x => x == "fast") >= 48, $"{bodies.Count(x => x == "fast")} of 60 went to the fast endpoint");
    }

    [Fact]
    public async Task LocalityFailover_SameZoneFirst_OtherZoneWhenItsEndpointIsEjected()
    {
        await using var near = await TestHttpApp.StartAsync("near");
        await using var far = await TestHttpApp.StartAsync("far");
        var yaml = GreeterService
            + Entry("near", near, extra: ", locality: {region: r1, zone: zone-a}")
            + Entry("far", far, extra: ", locality: {region: r1, zone: zone-b}")
            + GreeterPolicy("failover: {order: [zone, region]}", "outlierDetection: {consecutive5xx: 3, baseEjectionTime: 60s, maxEjectionPercent: 100}");
        var (mesh, web, url) = await StartAsync(yaml, ["--region", "r1", "--zone", "zone-a"]);
        await using var _ = mesh;
        using var http = new HttpClient();

        // The caller runs in zone-a: every request stays in its zone (round robin over both would split them).
        Assert.All(await SequenceAsync(http, url, 20), body => Assert.Equal("near", body));

        // Its zone's endpoint fails: after the third 500 it is ejected and the next priority (zone-b) takes over.
        near.Handler = async ctx =>
        {
            ctx.Response.StatusCode = 500;
            await ctx.Response.WriteAsync("near is down");
            return true;
        };
        for (var i = 0; i < 3; i++)
        {
            using var failed = await http.GetAsync(url);
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        }
        Assert.All(await SequenceAsync(http, url, 20), body => Assert.Equal("far", body));
        Assert.Equal(23, near.Requests);
    }

    [Fact]
    public async Task TrafficPolicyTls_Simple_SidecarReachesHttpsAppThatPlaintextCannot()
    {
        using var ca = TestCertificates.CreateCa("Mesh Test CA");
        using var certificate = TestCertificates.IssueServer(ca, "greeter.example");
        await using var app = await TestHttpApp.StartAsync("greeter-tls", certificate: certificate);
        var (mesh, web, url) = await StartAsync("", app);
        await using var _ = mesh;
        using var http = new HttpClient();

        // Without the policy the sidecar speaks plaintext to a TLS port: the app never sees a request.
        using (var plain = await http.GetAsync(url))
        {
            Assert.NotEqual(HttpStatusCode.OK, plain.StatusCode);
            Assert.True(plain.Headers.Contains("x-trellis-error"));
        }
        Assert.Equal(0, app.Requests);

        var pem = TestCertificates.ToPem(ca).ReplaceLineEndings("\\n");
        await mesh.ApplyAsync(GreeterPolicy($"tls: {{mode: SIMPLE, sni: greeter.example, caCertificates: \"{pem}\"}}"));
        await web.WaitForConfigAsync(dump => dump.Contains("custom_ca", StringComparison.Ordinal), "greeter's cluster with upstream TLS");

        using var response = await http.GetAsync(url);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("greeter-tls", await response.Content.ReadAsStringAsync());
        var seen = app.Seen.Last();
        Assert.Equal("HTTP/1.1", seen.Protocol);
        Assert.StartsWith("Tls", seen.TlsProtocol, StringComparison.Ordinal);
        var cluster = (await web.ConfigDumpAsync())["clusters"]!.AsArray().Single(c => (string?)c!["name"] == "greeter.default:8080")!;
        Assert.Equal("greeter.example", (string?)cluster["tls"]!["sni"]);
        Assert.Equal("http/1.1", (string?)cluster["tls"]!["alpn"]![0]);
    }
}
