using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Trellis.Testing;
using Xunit;

namespace Trellis.IntegrationTests;

/// <summary>`trellis proxy` as a sidecar: configured by the control plane, carrying the app's calls out and the mesh's calls in.</summary>
public sealed class SidecarTests
{
    private static async Task<(WebApplication App, int Port)> BackendAsync(string name)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapGet("/{**path}", () => Results.Text(name));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, new Uri(address).Port);
    }

    private static async Task<string> GetAsync(HttpClient http, int port)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/hello");
        request.Headers.ConnectionClose = true; // a new connection each time, so each picks an endpoint
        using var response = await http.SendAsync(request);
        return await response.Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task Proxy_ExplicitUpstreamAndInbound_CarriesTrafficFollowsChangesAndOutlivesTheControlPlane()
    {
        var (a, portA) = await BackendAsync("greeter-a");
        var (b, portB) = await BackendAsync("greeter-b");
        var (web, webPort) = await BackendAsync("web-app");
        var cp = await TestControlPlane.StartAsync();
        Process? proxy = null;
        try
        {
            await cp.ApplyAsync($"""
                apiVersion: trellis.dev/v1alpha1
                kind: Service
                metadata: {"{"}name: greeter{"}"}
                spec: {"{"}selector: {"{"}app: greeter{"}"}, ports: [{"{"}name: http, port: 8080{"}"}]{"}"}
                ---
                apiVersion: trellis.dev/v1alpha1
                kind: Service
                metadata: {"{"}name: web{"}"}
                spec: {"{"}selector: {"{"}app: web{"}"}, ports: [{"{"}name: http, port: 8080{"}"}]{"}"}
                ---
                apiVersion: trellis.dev/v1alpha1
                kind: WorkloadEntry
                metadata: {"{"}name: greeter-a{"}"}
                spec: {"{"}address: 127.0.0.1, ports: {"{"}http: {portA}{"}"}, labels: {"{"}app: greeter{"}"}{"}"}
                ---
                apiVersion: trellis.dev/v1alpha1
                kind: WorkloadEntry
                metadata: {"{"}name: greeter-b{"}"}
                spec: {"{"}address: 127.0.0.1, ports: {"{"}http: {portB}{"}"}, labels: {"{"}app: greeter{"}"}{"}"}
                """);

            var upstream = TestControlPlane.FreePort();
            var inbound = TestControlPlane.FreePort();
            var admin = TestControlPlane.FreePort();
            var psi = TrellisProcess.StartInfo(["proxy", "--service", "web", "--control-plane", cp.Options.GrpcAddress,
                "--upstream", $"greeter:8080=127.0.0.1:{upstream}", "--app-port", webPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--inbound", $"127.0.0.1:{inbound}", "--admin", $"127.0.0.1:{admin}", "--wait-ready"]);
            proxy = Process.Start(psi)!;
            var stderr = proxy.StandardError.ReadToEndAsync();
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                var line = await proxy.StandardOutput.ReadLineAsync(cts.Token);
                Assert.True(line == "ready", $"expected 'ready', got '{line}'; stderr so far may follow");
            }
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{admin}/ready")).StatusCode);

            // Outbound: the app calls greeter through its local port; both instances answer.
            var seen = new List<string>();
            for (var i = 0; i < 6; i++)
            {
                seen.Add(await GetAsync(http, upstream));
            }
            Assert.Equal(3, seen.Count(s => s == "greeter-a"));
            Assert.Equal(3, seen.Count(s => s == "greeter-b"));

            // Inbound: mesh traffic for web reaches the local application.
            Assert.Equal("web-app", await GetAsync(http, inbound));

            // An endpoint removed through the control plane stops receiving traffic.
            using (var del = await cp.Http.DeleteAsync("api/v1/resources/workloadentries/greeter-a"))
            {
                Assert.True(del.IsSuccessStatusCode);
            }
            var deadline = DateTime.UtcNow.AddSeconds(10);
            var onlyB = false;
            while (!onlyB && DateTime.UtcNow < deadline)
            {
                var batch = new List<string>();
                for (var i = 0; i < 4; i++)
                {
                    batch.Add(await GetAsync(http, upstream));
                }
                onlyB = batch.All(s => s == "greeter-b");
            }
            Assert.True(onlyB, "traffic still reached the removed endpoint after 10 s");

            // With the control plane gone the sidecar keeps serving its last good config, and says so.
            await cp.DisposeAsync();
            cp = null;
            Assert.Equal("greeter-b", await GetAsync(http, upstream));
            string readyText = "";
            await Eventually.WaitAsync(async () =>
            {
                using var ready = await http.GetAsync($"http://127.0.0.1:{admin}/ready");
                readyText = await ready.Content.ReadAsStringAsync();
                Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);
                return readyText.Contains("last good", StringComparison.OrdinalIgnoreCase);
            }, "/ready to report serving the last good config", TimeSpan.FromSeconds(30));
            Assert.Contains("last good", readyText, StringComparison.OrdinalIgnoreCase);

            // SIGTERM: the sidecar drains and exits cleanly.
            Process.Start("kill", ["-TERM", proxy.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
            using (var exit = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            {
                await proxy.WaitForExitAsync(exit.Token);
            }
            Assert.True(proxy.ExitCode == 0, $"exit {proxy.ExitCode}: {await stderr}");
        }
        finally
        {
            if (proxy is { HasExited: false })
            {
                proxy.Kill(entireProcessTree: true);
            }
            proxy?.Dispose();
            if (cp is not null)
            {
                await cp.DisposeAsync();
            }
            foreach (var app in new[] { a, b, web })
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }
    }
}
