using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Testing;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Trellis.IntegrationTests;

/// <summary>
/// Acceptance test 1 of the control plane: gRPC's own proxyless xDS client (grpc-js-xds) dials xds:///greeter and
/// calls real gRPC backends, while every change is made through the `trellis` CLI and the registration REST API
/// against a real `trellis control-plane` process. The phases build on each other, so they run in one test.
/// </summary>
public sealed class XdsConformanceTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Target = "xds:///greeter";
    private const string NodeId = "conformance-client";
    private const string Cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    private const string Lds = "type.googleapis.com/envoy.config.listener.v3.Listener";
    private const string Rds = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

    private static readonly string[] Backends = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "v1", "v2"];
    private static readonly TimeSpan ConvergeLimit = TimeSpan.FromSeconds(30);

    private readonly string _dir = TestPaths.NewTempDir();
    private readonly string _grpcAddress = $"127.0.0.1:{TestControlPlane.FreePort()}";
    private readonly string _httpAddress = $"127.0.0.1:{TestControlPlane.FreePort()}";
    private readonly Dictionary<string, int> _ports = Backends.ToDictionary(b => b, _ => TestControlPlane.FreePort());
    private HttpClient? _http;
    private TrellisProcess? _controlPlane;
    private NodeProcess? _servers;
    private XdsClientProcess? _client;

    private string DataDir => Path.Combine(_dir, "data");
    private string Server => $"http://{_httpAddress}";
    private HttpClient Http => _http!;
    private XdsClientProcess Client => _client!;

    public async Task InitializeAsync()
    {
        // Fails first, and clearly, when node or node_modules is missing.
        _ = XdsClientPeer.Directory();
        try
        {
            _http = new HttpClient { BaseAddress = new Uri(Server + "/"), Timeout = TimeSpan.FromSeconds(10) };
            _controlPlane = await TrellisProcess.StartControlPlaneAsync(DataDir, _grpcAddress, _httpAddress);
            _servers = await XdsClientPeer.StartServersAsync(_ports);
            _client = await XdsClientProcess.StartAsync(_grpcAddress, NodeId, _dir);
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }
        if (_servers is not null)
        {
            await _servers.DisposeAsync();
        }
        if (_controlPlane is not null)
        {
            await _controlPlane.DisposeAsync();
        }
        _http?.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task ProxylessGrpcClient_ConfiguredThroughCli_FollowsEveryChange()
    {
        await PhaseAsync("1 round robin across two endpoints", async () =>
        {
            await ApplyAsync("service-greeter.yaml", Service("greeter"));
            await ApplyAsync("endpoints-ab.yaml", Entry("greeter-a", "greeter", "a") + Entry("greeter-b", "greeter", "b"));
            await PollAsync("a and b both answer", r => r.OnlyAndAll("a", "b"));
            var r = await Client.CallAsync(Target, 200);
            Assert.True(r.Failed == 0, $"calls failed: {r}");
            Assert.True(r.Share("a") is >= 0.45 and <= 0.55 && r.Share("b") is >= 0.45 and <= 0.55, $"round robin should give each backend 50% +- 5 points: {r}");
        });

        await PhaseAsync("2 endpoints replaced", async () =>
        {
            await TrellisAsync("delete", "-f", FilePath("endpoints-ab.yaml"));
            await ApplyAsync("endpoints-cd.yaml", Entry("greeter-c", "greeter", "c") + Entry("greeter-d", "greeter", "d"));
            await PollAsync("only c and d answer", r => r.OnlyAndAll("c", "d"));
            var r = await Client.CallAsync(Target, 200);
            Assert.True(r.OnlyAndAll("c", "d"), $"after the swap only c and d may answer: {r}");
        });

        await PhaseAsync("3 two localities weighted 1:3", async () =>
        {
            await TrellisAsync("delete", "-f", FilePath("endpoints-cd.yaml"));
            await ApplyAsync("endpoints-ef.yaml",
                Entry("greeter-e", "greeter", "e", zone: "zone-a", weight: 1) + Entry("greeter-f", "greeter", "f", zone: "zone-b", weight: 3));
            await PollAsync("only e and f answer", r => r.OnlyAndAll("e", "f"));
            var r = await Client.CallAsync(Target, 400);
            Assert.True(r.OnlyAndAll("e", "f"), $"only e and f may answer: {r}");
            Assert.True(r.Share("e") is >= 0.15 and <= 0.35, $"zone-a (weight 1 of 4) should take 25% +- 10 points: {r}");
        });

        await PhaseAsync("4 unhealthy, draining and expired endpoints excluded", async () =>
        {
            await TrellisAsync("delete", "-f", FilePath("endpoints-ef.yaml"));
            await ApplyAsync("endpoints-ghi.yaml",
                Entry("greeter-g", "greeter", "g") + Entry("greeter-h", "greeter", "h", health: "unhealthy") + Entry("greeter-i", "greeter", "i", health: "draining"));
            using var register = await Http.PostAsJsonAsync("api/v1/registrations", new { service = "greeter", address = "127.0.0.1", port = _ports["j"], ttl = "2s" });
            var registered = await register.Content.ReadAsStringAsync();
            Assert.True((int)register.StatusCode == 201, $"registration failed: {(int)register.StatusCode} {registered}");
            var id = JsonNode.Parse(registered)!["id"]!.GetValue<string>();

            // Heartbeats keep j healthy until the client is seen using it; then they stop.
            using (var heartbeats = new CancellationTokenSource())
            {
                var beating = HeartbeatAsync(id, heartbeats.Token);
                await PollAsync("g and the registered j answer, never h or i", r => r.OnlyAndAll("g", "j"));
                var r = await Client.CallAsync(Target, 100);
                Assert.True(r.OnlyAndAll("g", "j"), $"unhealthy h and draining i must get no traffic: {r}");
                await heartbeats.CancelAsync();
                await beating;
            }
            // On a loaded machine a heartbeat can come late enough that j lapses and is renewed while they still run;
            // so the registration is first seen unhealthy after the last heartbeat, then j must carry no traffic.
            var stopped = Stopwatch.StartNew();
            await Eventually.WaitAsync(async () =>
            {
                var registrations = JsonNode.Parse(await Http.GetStringAsync("api/v1/registrations"))!["items"]!.AsArray();
                var health = registrations.FirstOrDefault(x => x!["registration"]!["id"]!.GetValue<string>() == id)?["health"]?.GetValue<string>();
                return health == "unhealthy";
            }, $"registration {id} unhealthy once its 2s TTL passed without heartbeats", TimeSpan.FromSeconds(20));
            await PollAsync("j gets no traffic once it is unhealthy", r => r.OnlyAndAll("g"));
            output.WriteLine($"  traffic left j {stopped.Elapsed.TotalSeconds:0.0} s after its last heartbeat");
            var after = await Client.CallAsync(Target, 100);
            Assert.True(after.OnlyAndAll("g"), $"only g may answer: {after}");
            // Removed now rather than by the grace period, so later phases see a stable configuration.
            using var deregister = await Http.DeleteAsync($"api/v1/registrations/{Uri.EscapeDataString(id)}");
            Assert.True(deregister.IsSuccessStatusCode, $"deregistration failed: {(int)deregister.StatusCode}");
        });

        await PhaseAsync("5 HTTPRoute splits 50/50 across two services", async () =>
        {
            await ApplyAsync("versions.yaml",
                Service("greeter-v1") + Entry("greeter-v1-a", "greeter-v1", "v1") + Service("greeter-v2") + Entry("greeter-v2-a", "greeter-v2", "v2"));
            await ApplyAsync("route.yaml", Route(50, 50));
            await PollAsync("v1 and v2 answer", r => r.OnlyAndAll("v1", "v2"));
            var r = await Client.CallAsync(Target, 400);
            Assert.True(r.OnlyAndAll("v1", "v2"), $"only v1 and v2 may answer: {r}");
            Assert.True(r.Share("v1") is >= 0.40 and <= 0.60, $"a 50/50 split should give v1 50% +- 10 points: {r}");
        });

        await PhaseAsync("6 inline route configuration follows a route change", async () =>
        {
            var before = AckedVersion(await ProxyAsync(), Lds);
            await ApplyAsync("service-greeter.yaml", Service("greeter", inlineRoutes: true));
            await WaitProxyAsync("the listener with the inline route config is ACKed",
                p => p["state"]!.GetValue<string>() == "SYNCED" && AckedVersion(p, Lds) is { } v && v != before);
            var split = await Client.CallAsync(Target, 100);
            Assert.True(split.OnlyAndAll("v1", "v2"), $"the inline route should still split: {split}");
            await ApplyAsync("route.yaml", Route(100, 0));
            await PollAsync("only v1 answers after the weights became 100/0", r => r.OnlyAndAll("v1"), batch: 40);
            var r = await Client.CallAsync(Target, 200);
            Assert.True(r.OnlyAndAll("v1"), $"only v1 may answer: {r}");
        });

        await PhaseAsync("7 a config the client rejects is NACKED and traffic stays", async () =>
        {
            foreach (var (algorithm, lbPolicy) in new[] { ("Random", "RANDOM"), ("LeastRequest", "LEAST_REQUEST") })
            {
                await ApplyAsync("policies.yaml", Policy("greeter", algorithm) + Policy("greeter-v1", algorithm));
                await WaitProxyAsync($"the client NACKs lb_policy {lbPolicy}",
                    p => p["state"]!.GetValue<string>() == "NACKED" && TypeView(p, Cds)?["nackError"]?.ToString().Contains(lbPolicy, StringComparison.Ordinal) == true);

                var table = await TrellisAsync("proxy-status");
                Assert.True(Regex(table, $@"{NodeId}\s+NACKED\s+SYNCED\s+\S+\s+NACKED") && table.Contains($"unsupported lb_policy: {lbPolicy}", StringComparison.Ordinal),
                    $"proxy-status should show CDS NACKED with the client's error:\n{table}");
                var json = JsonNode.Parse(await TrellisAsync("proxy-status", "-o", "json"))!;
                var node = json["items"]!.AsArray().Single(p => p!["nodeId"]!.GetValue<string>() == NodeId)!;
                Assert.Equal("NACKED", node["state"]!.GetValue<string>());
                Assert.True(TypeView(node, Cds)!["lastResponseNacked"]!.GetValue<bool>(), $"CDS should be the NACKED type: {node}");
                var yaml = await TrellisAsync("get", "service", "greeter", "-o", "yaml");
                Assert.True(yaml.Contains("state: NACKED", StringComparison.Ordinal) && yaml.Contains(lbPolicy, StringComparison.Ordinal),
                    $"status.proxies of Service greeter should carry the NACK:\n{yaml}");

                var r = await Client.CallAsync(Target, 200);
                Assert.True(r.OnlyAndAll("v1"), $"traffic should stay on the last good config (all v1): {r}");

                await TrellisAsync("delete", "-f", FilePath("policies.yaml"));
                await WaitProxyAsync("the client is SYNCED again once the policies are gone", p => p["state"]!.GetValue<string>() == "SYNCED");
            }
        });

        await PhaseAsync("8 control plane killed and restarted on the same store", async () =>
        {
            var before = await ProxyAsync();
            var versions = new[] { Lds, Cds, "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment" }
                .ToDictionary(t => t, t => AckedVersion(before, t) ?? throw new XunitException($"no ACKed version of {t} before the restart: {before}"));
            await _controlPlane!.KillAsync();

            var down = await Client.CallAsync(Target, 50);
            Assert.True(down.OnlyAndAll("v1"), $"with the control plane down the client keeps its config: {down}");

            await _controlPlane.DisposeAsync();
            _controlPlane = null;
            _controlPlane = await TrellisProcess.StartControlPlaneAsync(DataDir, _grpcAddress, _httpAddress);
            var restarted = Stopwatch.StartNew();
            await WaitProxyAsync("the client reconnects and ACKs the same versions", p =>
                p["state"]!.GetValue<string>() == "SYNCED" && versions.All(v => AckedVersion(p, v.Key) == v.Value), TimeSpan.FromSeconds(45));
            output.WriteLine($"  client SYNCED {restarted.Elapsed.TotalSeconds:0.0} s after the restart");

            var table = await TrellisAsync("proxy-status");
            Assert.True(Regex(table, $@"{NodeId}\s+SYNCED"), $"proxy-status should show the node SYNCED:\n{table}");
            var r = await Client.CallAsync(Target, 100);
            Assert.True(r.OnlyAndAll("v1"), $"calls after the restart: {r}");
        });

        await PhaseAsync("9 a FaultInjection named by the route aborts every call with UNAVAILABLE, and removing it restores them", async () =>
        {
            await ApplyAsync("fault.yaml", Fault("greeter-outage", "abort: {percent: 100, httpStatus: 503}"));
            await ApplyAsync("route.yaml", Route(100, 0, filter: ("FaultInjection", "greeter-outage")));
            await PollAsync("every call fails with UNAVAILABLE", r => r.Ok == 0 && r.Failed > 0 && r.Errors.Keys.All(e => e.StartsWith("14 UNAVAILABLE", StringComparison.Ordinal)));
            var r = await Client.CallAsync(Target, 50);
            Assert.True(r.Ok == 0 && r.Errors.Keys.All(e => e.StartsWith("14 UNAVAILABLE: Fault injected", StringComparison.Ordinal)),
                $"the client's own fault filter should abort every call (HTTP 503 is UNAVAILABLE for gRPC): {r}");
            await WaitProxyAsync("the client is SYNCED with the fault config (no NACK)", p => p["state"]!.GetValue<string>() == "SYNCED");
            var fault = JsonNode.Parse(await TrellisAsync("get", "faultinjection", "greeter-outage", "-o", "json"))!;
            Assert.True(ProxyState(fault, NodeId) == "ACKED", $"the FaultInjection's status should show the client ACKED it: {fault}");

            await ApplyAsync("route.yaml", Route(100, 0));
            await TrellisAsync("delete", "-f", FilePath("fault.yaml"));
            await PollAsync("only v1 answers again", r => r.OnlyAndAll("v1"));
            var after = await Client.CallAsync(Target, 100);
            Assert.True(after.OnlyAndAll("v1"), $"without the fault every call succeeds: {after}");
        });

        await PhaseAsync("10 a RateLimit, EWMA and per-connection limits are ACKed by the client, which keeps calling", async () =>
        {
            var before = await ProxyAsync();
            var (lds, cds) = (AckedVersion(before, Lds), AckedVersion(before, Cds));
            await ApplyAsync("limits.yaml", Limit("greeter-v1-limit", "greeter-v1") + Policy("greeter-v1", "Ewma", "connectionPool: {maxRequestsPerConnection: 100, idleTimeout: 30s}"));
            await WaitProxyAsync("the client ACKs the new listener (optional rate-limit filter) and cluster (EWMA, protocol options)", p =>
                p["state"]!.GetValue<string>() == "SYNCED" && AckedVersion(p, Lds) is { } l && l != lds && AckedVersion(p, Cds) is { } c && c != cds);

            var limit = JsonNode.Parse(await TrellisAsync("get", "ratelimit", "greeter-v1-limit", "-o", "json"))!;
            Assert.True(ProxyState(limit, NodeId) == "ACKED", $"the RateLimit's status should show the client ACKED it: {limit}");
            var table = await TrellisAsync("proxy-status");
            Assert.True(Regex(table, $@"{NodeId}\s+SYNCED"), $"proxy-status should show the node SYNCED:\n{table}");
            var config = await TrellisAsync("proxy-config", NodeId);
            Assert.True(config.Contains("ratelimit: 1000 tokens, +1000 every 1s", StringComparison.Ordinal)
                        && config.Contains("EWMA (others: ROUND_ROBIN)", StringComparison.Ordinal)
                        && config.Contains("envoy.filters.http.local_ratelimit (optional)", StringComparison.Ordinal),
                $"proxy-config should show the rate limit, the optional filter and the EWMA marker:\n{config}");

            var r = await Client.CallAsync(Target, 100);
            Assert.True(r.OnlyAndAll("v1"), $"a proxyless client ignores the optional rate limit and uses round robin: {r}");
        });
    }

    // ---- configuration through the CLI ----

    private string FilePath(string name) => Path.Combine(_dir, name);

    private async Task ApplyAsync(string fileName, string yaml)
    {
        await File.WriteAllTextAsync(FilePath(fileName), yaml);
        await TrellisAsync("apply", "-f", FilePath(fileName));
    }

    private async Task<string> TrellisAsync(params string[] args)
    {
        var r = await TrellisProcess.RunAsync(Server, args);
        if (r.ExitCode != 0)
        {
            throw new XunitException($"trellis {string.Join(' ', args)} failed: {r}");
        }
        return r.Stdout;
    }

    private static string Service(string name, bool inlineRoutes = false) => $$"""
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata:
          name: {{name}}
          namespace: default
        {{(inlineRoutes ? "  annotations: {trellis.dev/route-config: inline}" : "")}}
        spec:
          selector: {app: {{name}}}
          ports:
          - {name: grpc, port: 50051, protocol: grpc}
        ---

        """;

    private string Entry(string name, string app, string backend, string? zone = null, int weight = 1, string health = "healthy") => $$"""
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: {{name}}, namespace: default}
        spec:
          address: 127.0.0.1
          ports: {grpc: {{_ports[backend]}}}
          labels: {app: {{app}}}
          locality: {region: local, zone: {{zone ?? "zone-a"}}}
          weight: {{weight}}
          health: {{health}}
        ---

        """;

    private static string Route(int v1, int v2, (string Kind, string Name)? filter = null)
    {
        var filters = filter is { } f ? $"    filters: [{{type: ExtensionRef, extensionRef: {{group: trellis.dev, kind: {f.Kind}, name: {f.Name}}}}}]" : "";
        return $$"""
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: greeter-split, namespace: default}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 50051}]
              rules:
              - backendRefs:
                - {kind: Service, name: greeter-v1, port: 50051, weight: {{v1}}}
                - {kind: Service, name: greeter-v2, port: 50051, weight: {{v2}}}
            {{filters}}

            """;
    }

    private static string Policy(string service, string algorithm, string extra = "") => $$"""
        apiVersion: trellis.dev/v1alpha1
        kind: TrafficPolicy
        metadata: {name: {{service}}, namespace: default}
        spec:
          targetRef: {kind: Service, name: {{service}}}
          loadBalancer: {algorithm: {{algorithm}}}
          {{extra}}
        ---

        """;

    private static string Fault(string name, string spec) => $$"""
        apiVersion: trellis.dev/v1alpha1
        kind: FaultInjection
        metadata: {name: {{name}}, namespace: default}
        spec: {{{spec}}}
        ---

        """;

    private static string Limit(string name, string service) => $$"""
        apiVersion: trellis.dev/v1alpha1
        kind: RateLimit
        metadata: {name: {{name}}, namespace: default}
        spec:
          targetRef: {kind: Service, name: {{service}}}
          tokenBucket: {maxTokens: 1000, tokensPerFill: 1000, fillInterval: 1s}
        ---

        """;

    /// <summary>status.proxies[node].state of a resource as `trellis get KIND NAME -o json` prints it.</summary>
    private static string? ProxyState(JsonNode resource, string node) =>
        resource["status"]?["proxies"]?.AsArray().FirstOrDefault(p => p!["node"]!.GetValue<string>() == node)?["state"]?.GetValue<string>();

    // ---- bounded polls ----

    /// <summary>Calls in batches until <paramref name="done"/> holds for a whole batch; fails after 30 s.</summary>
    private async Task PollAsync(string what, Func<CallResult, bool> done, int batch = 20)
    {
        var clock = Stopwatch.StartNew();
        CallResult? last = null;
        for (var i = 0; i < 1000 && clock.Elapsed < ConvergeLimit; i++)
        {
            last = await Client.CallAsync(Target, batch, deadlineMs: 1000);
            if (done(last))
            {
                output.WriteLine($"  {what}: after {clock.Elapsed.TotalSeconds:0.0} s");
                return;
            }
            await Task.Delay(100);
        }
        throw new XunitException($"{what}: not reached in {ConvergeLimit.TotalSeconds:0} s; last batch: {last}");
    }

    /// <summary>Polls GET /api/v1/proxies (what `trellis proxy-status -o json` prints) until the client's entry matches.</summary>
    private async Task WaitProxyAsync(string what, Func<JsonNode, bool> done, TimeSpan? limit = null)
    {
        var max = limit ?? ConvergeLimit;
        var clock = Stopwatch.StartNew();
        JsonNode? last = null;
        for (var i = 0; i < 1000 && clock.Elapsed < max; i++)
        {
            try
            {
                last = await ProxyAsync();
                if (last is not null && done(last))
                {
                    output.WriteLine($"  {what}: after {clock.Elapsed.TotalSeconds:0.0} s");
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100);
        }
        throw new XunitException($"{what}: not reached in {max.TotalSeconds:0} s; last proxy status: {last?.ToJsonString() ?? "(client not connected)"}");
    }

    private async Task HeartbeatAsync(string id, CancellationToken ct)
    {
        // An instance's heartbeat loop, as `trellis register` runs it: every 400 ms (TTL 2 s), bounded in count.
        using var every = new PeriodicTimer(TimeSpan.FromMilliseconds(400));
        for (var i = 0; i < 400 && !ct.IsCancellationRequested; i++)
        {
            try
            {
                using var r = await Http.PutAsync($"api/v1/registrations/{Uri.EscapeDataString(id)}/heartbeat", null, ct);
                r.EnsureSuccessStatusCode();
                await every.WaitForNextTickAsync(ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<JsonNode?> ProxyAsync()
    {
        var body = JsonNode.Parse(await Http.GetStringAsync("api/v1/proxies"))!;
        return body["items"]!.AsArray().LastOrDefault(p => p!["nodeId"]!.GetValue<string>() == NodeId);
    }

    private static JsonNode? TypeView(JsonNode? proxy, string typeUrl) =>
        proxy?["types"]?.AsArray().FirstOrDefault(t => t!["typeUrl"]!.GetValue<string>() == typeUrl);

    private static string? AckedVersion(JsonNode? proxy, string typeUrl) => TypeView(proxy, typeUrl)?["ackedVersion"]?.GetValue<string>();

    private static bool Regex(string text, string pattern) => System.Text.RegularExpressions.Regex.IsMatch(text, pattern);

    // ---- phases ----

    private async Task PhaseAsync(string name, Func<Task> body)
    {
        var clock = Stopwatch.StartNew();
        output.WriteLine($"phase {name}");
        try
        {
            await body();
        }
        catch (Exception ex)
        {
            throw new XunitException($"phase {name} failed after {clock.Elapsed.TotalSeconds:0.0} s: {ex.Message}\n{await DiagnosticsAsync()}");
        }
        output.WriteLine($"phase {name}: passed in {clock.Elapsed.TotalSeconds:0.0} s");
    }

    private async Task<string> DiagnosticsAsync()
    {
        var text = new StringBuilder();
        try
        {
            text.Append("--- proxy-status ---\n").Append(await Http.GetStringAsync("api/v1/proxies")).Append('\n');
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            text.Append("--- proxy-status unavailable: ").Append(ex.Message).Append('\n');
        }
        var cp = _controlPlane?.Output.Split('\n') ?? [];
        text.Append("--- control plane output (last 40 lines) ---\n").AppendJoin('\n', cp.TakeLast(40)).Append('\n');
        text.Append("--- client stderr ---\n").Append(_client?.Stderr).Append('\n');
        text.Append("--- servers stderr ---\n").Append(_servers?.Stderr);
        return text.ToString();
    }
}
