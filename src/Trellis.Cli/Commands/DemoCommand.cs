using System.CommandLine;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Trellis.Cli.Demo;
using Trellis.ControlPlane;
using Trellis.ControlPlane.Hosting;

namespace Trellis.Cli.Commands;

/// <summary>
/// `trellis demo`: a control plane on its SQLite store, two versions of a sample service each behind its own
/// sidecar and registered through the registration API, and a caller whose sidecar applies the mesh's routing
/// (a 90/10 canary split, and a header match).
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var defaults = new ControlPlaneOptions();
        var data = new Option<string>("--data") { Description = "Folder for the demo's store", DefaultValueFactory = _ => Path.Combine(defaults.DataDirectory, "demo") };
        var grpc = new Option<string>("--grpc-address") { Description = "xDS (gRPC) listen address", DefaultValueFactory = _ => defaults.GrpcAddress };
        var http = new Option<string>("--http-address") { Description = "REST API listen address", DefaultValueFactory = _ => defaults.HttpAddress };
        var duration = new Option<string?>("--duration") { Description = "Send traffic for this long once the mesh is up (e.g. 20s), then stop; runs until Ctrl-C when not given" };
        var rate = new Option<int>("--rate") { Description = "Requests per second the sample caller sends", DefaultValueFactory = _ => 20 };
        var cmd = new Command("demo", "Run a control plane with sample services and a caller, all talking through their sidecars");
        foreach (var o in new Option[] { data, grpc, http, duration, rate })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            TimeSpan? limit = null;
            if (parse.GetValue(duration) is { } d)
            {
                if (!Api.Durations.TryParse(d, out var parsed))
                {
                    throw new CliException($"--duration {d}: expected a duration such as 20s or 5m", ExitCodes.Usage);
                }
                limit = parsed;
            }
            return await RunDemoAsync(parse.GetValue(data)!, parse.GetValue(grpc)!, parse.GetValue(http)!, Math.Clamp(parse.GetValue(rate), 1, 1000), limit, ct).ConfigureAwait(false);
        }));
        return cmd;
    }

    /// <param name="limit">How long traffic runs once everything is up (a slow start-up does not eat into it); null: until Ctrl-C.</param>
    private static async Task<int> RunDemoAsync(string dataDir, string grpcAddress, string httpAddress, int rate, TimeSpan? limit, CancellationToken ct)
    {
        var options = new ControlPlaneOptions { DataDirectory = dataDir, GrpcAddress = grpcAddress, HttpAddress = httpAddress };
        Step($"starting the control plane (store sqlite:{Path.Combine(dataDir, "trellis.db")}, xDS {grpcAddress}, REST http://{httpAddress})");
        await using var cp = await ControlPlaneHost.BuildAsync(options, logging: l => l.SetMinimumLevel(LogLevel.Warning), ct: ct).ConfigureAwait(false);
        try
        {
            await cp.StartAsync(ct).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            throw new CliException($"cannot listen: {ex.Message}; stop the other control plane or pass --grpc-address and --http-address");
        }

        Step("starting sample services greeter-v1 and greeter-v2");
        await using var v1 = await StartBackendAsync("greeter-v1", ct).ConfigureAwait(false);
        await using var v2 = await StartBackendAsync("greeter-v2", ct).ConfigureAwait(false);

        var server = $"http://{httpAddress}";
        using var api = new ApiClient(server);
        Step("applying the demo mesh: Services greeter, greeter-v1, greeter-v2 and HTTPRoute greeter-canary (90/10, x-canary: 1 -> v2)");
        var applied = await api.CallAsync(HttpMethod.Post, "api/v1/apply", new { files = new[] { new { name = "demo.yaml", content = DemoMesh.Yaml } } }, ct).ConfigureAwait(false);
        if (applied?["ok"]?.GetValue<bool>() != true)
        {
            throw new CliException($"the demo mesh was refused: {applied?.ToJsonString()}");
        }

        var logs = Path.Combine(dataDir, "logs");
        Step($"starting a sidecar (trellis-proxy) beside each sample instance; sidecar logs in {logs}");
        await using var sidecarV1 = await DemoSidecar.StartAsync("greeter-v1", "demo", grpcAddress, logs, v1.Port, null, ct).ConfigureAwait(false);
        await using var sidecarV2 = await DemoSidecar.StartAsync("greeter-v2", "demo", grpcAddress, logs, v2.Port, null, ct).ConfigureAwait(false);

        Step("registering the instances at their sidecars' inbound ports (registration API, TTL 10s, heartbeats every 3s)");
        var ids = new List<string>();
        foreach (var (name, port) in new[] { ("greeter-v1", sidecarV1.InboundPort), ("greeter-v2", sidecarV2.InboundPort) })
        {
            var reg = await api.CallAsync(HttpMethod.Post, "api/v1/registrations", new { service = name, @namespace = "demo", address = "127.0.0.1", port, ttl = "10s", zone = "zone-a" }, ct).ConfigureAwait(false);
            ids.Add(reg!["id"]!.GetValue<string>());
        }
        using var heartbeats = new PeriodicTimer(TimeSpan.FromSeconds(3));
        using var running = CancellationTokenSource.CreateLinkedTokenSource(ct); // heartbeats stop with the traffic
        var heartbeatLoop = Task.Run(async () =>
        {
            while (await heartbeats.WaitForNextTickAsync(running.Token).ConfigureAwait(false))
            {
                foreach (var id in ids)
                {
                    await api.SendAsync(HttpMethod.Put, $"api/v1/registrations/{id}/heartbeat?namespace=demo", null, running.Token).ConfigureAwait(false);
                }
            }
        }, running.Token);

        Step("starting the caller \"web\" and its sidecar: web calls greeter.demo:8080 through 127.0.0.1 on its sidecar's port");
        await using var callerSidecar = await DemoSidecar.StartAsync("web", "demo", grpcAddress, logs, null, "greeter.demo:8080", ct).ConfigureAwait(false);
        var target = $"http://127.0.0.1:{callerSidecar.UpstreamPort}/hello";

        Console.WriteLine();
        Console.WriteLine($"The mesh is running. In another terminal try:");
        Console.WriteLine($"  trellis get services -n demo");
        Console.WriteLine($"  trellis get httproutes -n demo -o yaml");
        Console.WriteLine($"  trellis proxy-status");
        Console.WriteLine($"  curl -s {target}                      # through web's sidecar (90/10 split)");
        Console.WriteLine($"  curl -s -H 'x-canary: 1' {target}     # always greeter-v2");
        Console.WriteLine($"  curl -s http://127.0.0.1:{callerSidecar.AdminPort}/stats/prometheus   # the caller sidecar's metrics");
        Console.WriteLine($"Press Ctrl-C to stop.");
        Console.WriteLine();

        using (var traffic = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            if (limit is { } l)
            {
                traffic.CancelAfter(l);
            }
            await SendTrafficAsync(target, rate, traffic.Token).ConfigureAwait(false);
        }
        await running.CancelAsync().ConfigureAwait(false);

        Step("stopping: sidecars drain and exit, instances deregister");
        using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        foreach (var id in ids)
        {
            await api.SendAsync(HttpMethod.Delete, $"api/v1/registrations/{id}?namespace=demo", null, cleanup.Token).ConfigureAwait(false);
        }
        await heartbeatLoop.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
        await cp.StopAsync(cleanup.Token).ConfigureAwait(false);
        return ExitCodes.Ok;
    }

    /// <summary>The sample caller: GET /hello at a fixed rate through its sidecar; every tenth with x-canary: 1.</summary>
    private static async Task SendTrafficAsync(string target, int rate, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var canary = new Dictionary<string, int>(StringComparer.Ordinal);
        var failures = 0;
        var sent = 0;
        var started = DateTime.UtcNow;
        var lastReport = started;
        string? lastError = null;
        using var tick = new PeriodicTimer(TimeSpan.FromSeconds(1.0 / rate));
        try
        {
            while (await tick.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                sent++;
                var isCanary = sent % 10 == 0;
                using var request = new HttpRequestMessage(HttpMethod.Get, target);
                if (isCanary)
                {
                    request.Headers.Add("x-canary", "1");
                }
                try
                {
                    using var response = await http.SendAsync(request, ct).ConfigureAwait(false);
                    var body = (await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false)).Trim();
                    if (!response.IsSuccessStatusCode)
                    {
                        var proxyError = response.Headers.TryGetValues("x-trellis-error", out var e) ? $" (x-trellis-error: {e.First()})" : "";
                        throw new HttpRequestException($"{(int)response.StatusCode}{proxyError} {body}");
                    }
                    var bucket = isCanary ? canary : counts;
                    bucket[body] = bucket.GetValueOrDefault(body) + 1;
                }
                catch (HttpRequestException ex)
                {
                    failures++;
                    lastError = ex.Message;
                }
                if (DateTime.UtcNow - lastReport >= TimeSpan.FromSeconds(2))
                {
                    lastReport = DateTime.UtcNow;
                    Report();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        Report();

        void Report()
        {
            var total = counts.Values.Sum();
            var split = string.Join(", ", counts.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value} ({100.0 * p.Value / Math.Max(1, total):0}%)"));
            var can = string.Join(", ", canary.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"));
            if (lastError is not null)
            {
                Console.WriteLine($"      last failure: {lastError}");
                lastError = null;
            }
            Console.WriteLine($"[{(int)(DateTime.UtcNow - started).TotalSeconds,3}s] {sent} requests; split: {split}; with x-canary: {can}; failed: {failures}");
        }
    }

    private static void Step(string text) => Console.WriteLine($"==> {text}");

    private sealed class Backend(WebApplication app, int port) : IAsyncDisposable
    {
        public int Port { get; } = port;

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync().ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task<Backend> StartBackendAsync(string name, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapGet("/{**path}", () => Results.Text($"{name}\n"));
        await app.StartAsync(ct).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Backend(app, new Uri(address).Port);
    }
}
