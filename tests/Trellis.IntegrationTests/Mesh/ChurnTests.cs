using Trellis.Testing;
using Trellis.Testing.Apps;
using Xunit;

namespace Trellis.IntegrationTests.Mesh;

/// <summary>Steady traffic while the configuration changes every second and while the control plane dies: nothing fails.</summary>
public sealed class ChurnTests
{
    /// <summary>A YAML fragment on its own lines, so fragments concatenate into one multi-document text.</summary>
    private static string Yaml(string text) => "\n" + text + "\n";

    private static string Entry(string name, TestHttpApp app, string version) => Yaml($$"""
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: {{name}}}
        spec: {address: 127.0.0.1, ports: {http: {{app.Port}}}, labels: {app: greeter, version: {{version}}} }
        """);

    private static string Split(int v1Weight) => Yaml($$"""
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: greeter-split}
        spec:
          parentRefs: [{kind: Service, name: greeter, port: 8080}]
          rules:
          - backendRefs:
            - {kind: Service, name: greeter-v1, port: 8080, weight: {{v1Weight}}}
            - {kind: Service, name: greeter-v2, port: 8080, weight: {{100 - v1Weight}}}
        """);

    private const string Services = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec: {selector: {app: greeter}, ports: [{name: http, port: 8080, protocol: http}]}
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
        """;

    /// <summary>Bounded load: <paramref name="workers"/> keep-alive loops until stopped (or a hard cap), counting failures.</summary>
    private sealed class Load(string url, int workers)
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<string> _failures = [];
        private Task? _running;
        private int _ok;

        public int Ok => Volatile.Read(ref _ok);

        public IReadOnlyList<string> Failures
        {
            get
            {
                lock (_failures)
                {
                    return [.. _failures];
                }
            }
        }

        public void Start()
        {
            _running = Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(WorkAsync)));
        }

        private async Task WorkAsync()
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            for (var i = 0; i < 200_000 && !_stop.IsCancellationRequested; i++)
            {
                try
                {
                    using var response = await http.GetAsync(url);
                    var body = await response.Content.ReadAsStringAsync();
                    if ((int)response.StatusCode == 200 && body.StartsWith("greeter-", StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref _ok);
                        continue;
                    }
                    var error = response.Headers.TryGetValues("x-trellis-error", out var v) ? v.First() : "-";
                    Record($"{DateTime.UtcNow:HH:mm:ss.fff} {(int)response.StatusCode} {error} {body}");
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    Record($"{DateTime.UtcNow:HH:mm:ss.fff} {ex.GetType().Name}: {ex.Message}");
                }
            }
        }

        private void Record(string failure)
        {
            lock (_failures)
            {
                _failures.Add(failure);
            }
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _running!;
        }
    }

    [Fact]
    public async Task SteadyLoad_ThirtyRouteAndEndpointChangesThenControlPlaneKilled_ZeroFailedRequests()
    {
        await using var v1 = await TestHttpApp.StartAsync("greeter-v1");
        await using var v1b = await TestHttpApp.StartAsync("greeter-v1b");
        await using var v2 = await TestHttpApp.StartAsync("greeter-v2");
        await using var mesh = await MeshHarness.StartAsync();
        await mesh.ApplyAsync(Services + Entry("v1", v1, "v1") + Entry("v2", v2, "v2") + Split(50));
        var web = await mesh.StartSidecarAsync("web", ["greeter:8080"]);
        var load = new Load($"http://127.0.0.1:{web.Port("greeter:8080")}/", workers: 4);
        load.Start();

        // 30 changes, route weights and the endpoint set alternating. Each is applied once the previous one is live
        // in the sidecar (its config version moved) and at least 500 requests ran on it.
        for (var change = 0; change < 30; change++)
        {
            var version = (await web.ConfigDumpAsync())["version"]!.GetValue<string>();
            if (change % 2 == 0)
            {
                await mesh.ApplyAsync(Services + Split(10 + (change * 3 % 80)));
            }
            else if (change % 4 == 1)
            {
                await mesh.ApplyAsync(Entry("v1b", v1b, "v1"));
            }
            else
            {
                await mesh.DeleteAsync("workloadentries", "v1b");
            }
            await Eventually.WaitAsync(async () => (await web.ConfigDumpAsync())["version"]!.GetValue<string>() != version,
                $"change {change} to reach the sidecar", TimeSpan.FromSeconds(30));
            var okBefore = load.Ok;
            await Eventually.WaitAsync(() => load.Ok >= okBefore + 500, $"traffic on change {change}", TimeSpan.FromSeconds(30));
        }
        var afterChurn = load.Ok;
        Assert.True(v1b.Requests > 0, "the endpoint that came and went never got traffic");

        // The control plane dies mid-load and comes back on the same store.
        await mesh.KillControlPlaneAsync();
        await Eventually.WaitAsync(async () => !(await web.ConfigDumpAsync())["connection"]!["connected"]!.GetValue<bool>(),
            "the sidecar to notice the control plane is gone", TimeSpan.FromSeconds(30));
        var whileDown = load.Ok;
        await Eventually.WaitAsync(() => load.Ok > whileDown + 200, "traffic to keep flowing without a control plane", TimeSpan.FromSeconds(30));
        await mesh.StartControlPlaneAsync();
        await Eventually.WaitAsync(async () => (await web.ConfigDumpAsync())["connection"]!["connected"]!.GetValue<bool>(),
            "the sidecar to reconnect", TimeSpan.FromSeconds(60));
        await mesh.ApplyAsync(Services + Split(100));
        await Eventually.WaitAsync(async () =>
        {
            using var http = new HttpClient();
            var bodies = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => http.GetStringAsync($"http://127.0.0.1:{web.Port("greeter:8080")}/")));
            return bodies.All(b => b.StartsWith("greeter-v1", StringComparison.Ordinal));
        }, "a change made after the restart to reach the sidecar", TimeSpan.FromSeconds(30));
        await load.StopAsync();

        Assert.True(afterChurn > 1000, $"only {afterChurn} requests during 30 changes");
        Assert.True(load.Failures.Count == 0, $"{load.Failures.Count} failed requests of {load.Ok + load.Failures.Count}:\n{string.Join('\n', load.Failures.Take(20))}\n--- sidecar log ---\n{web.Log}");
    }
}
