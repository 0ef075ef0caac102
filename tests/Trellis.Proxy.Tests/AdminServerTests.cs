using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json.Nodes;
using Trellis.Proxy.Admin;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests;

public sealed class AdminServerTests
{
    private static async Task<(AdminServer Admin, HttpClient Http)> StartAdminAsync(ProxyHarness proxy)
    {
        var admin = await AdminServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), proxy.Client);
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{admin.Address.Port}/") };
        return (admin, http);
    }

    [Fact]
    public async Task Ready_BeforeConfigThenAfter_503Then200()
    {
        var deadPort = TestControlPlane.FreePort();
        await using var proxy = ProxyHarness.Start([$"127.0.0.1:{deadPort}"]);
        var (admin, http) = await StartAdminAsync(proxy);
        await using var _ = admin;
        using var __ = http;

        using var notReady = await http.GetAsync("ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.StartsWith("not ready", await notReady.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var healthz = await http.GetAsync("healthz");
        Assert.Equal(HttpStatusCode.OK, healthz.StatusCode);
    }

    [Fact]
    public async Task AdminEndpoints_WithConfig_ReadyDumpClustersDrain()
    {
        await using var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(ProxyHarness.MeshYaml);
        await using var proxy = ProxyHarness.Start([ProxyHarness.Address(cp)]);
        var (admin, http) = await StartAdminAsync(proxy);
        await using var _ = admin;
        using var __ = http;
        await proxy.WaitAsync(s => s.IsReady, "ready");

        using var ready = await http.GetAsync("ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("ready\n", await ready.Content.ReadAsStringAsync());

        var dump = JsonNode.Parse(await http.GetStringAsync("config_dump"))!;
        Assert.Equal(proxy.State.Current.Version, dump["version"]!.GetValue<string>());
        var names = dump["listeners"]!.AsArray().Select(l => l!["name"]!.GetValue<string>()).ToList();
        Assert.Contains("trellis.outbound", names);
        Assert.Contains("trellis.inbound|web.default", names);
        Assert.Contains(dump["route_tables"]!.AsArray(), r => r!["name"]!.GetValue<string>() == "trellis.outbound.http");

        var clusters = JsonNode.Parse(await http.GetStringAsync("clusters"))!;
        Assert.Contains(clusters["clusters"]!.AsArray(), c => c!["endpoints"]!.AsArray().Any(e => e!["address"]!.GetValue<string>() == "127.0.0.1:18080" && e["health"]!.GetValue<string>() is "healthy" or "unknown"));

        using var drain = await http.PostAsync("drain", null);
        Assert.Equal(HttpStatusCode.OK, drain.StatusCode);
        using var draining = await http.GetAsync("ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, draining.StatusCode);
        Assert.Equal("draining\n", await draining.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Ready_ControlPlaneGoneWithConfig_200ServingLastGood()
    {
        var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(ProxyHarness.MeshYaml);
        await using var proxy = ProxyHarness.Start([ProxyHarness.Address(cp)]);
        var (admin, http) = await StartAdminAsync(proxy);
        await using var _ = admin;
        using var __ = http;
        await proxy.WaitAsync(s => s.IsReady, "ready");

        await cp.DisposeAsync();
        await Eventually.WaitAsync(() => !proxy.Client.Status.Connected, "the client to notice the control plane is gone", TimeSpan.FromSeconds(20));

        using var ready = await http.GetAsync("ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains($"serving last good config version {proxy.State.Current.Version}", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task QuitQuitQuit_Post_RespondsThenSignalsQuit()
    {
        await using var proxy = ProxyHarness.Start([$"127.0.0.1:{TestControlPlane.FreePort()}"]);
        var (admin, http) = await StartAdminAsync(proxy);
        await using var _ = admin;
        using var __ = http;

        using var response = await http.PostAsync("quitquitquit", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await admin.QuitRequested.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task StatsPrometheus_Scrape_ShowsProxyInstrumentsAndPassesPromtool()
    {
        await using var proxy = ProxyHarness.Start([$"127.0.0.1:{TestControlPlane.FreePort()}"]);
        var (admin, http) = await StartAdminAsync(proxy);
        await using var _ = admin;
        using var __ = http;
        using var meter = new Meter("Trellis.Proxy");
        var counter = meter.CreateCounter<long>("trellis_proxy_test_requests_total", description: "Requests seen by this test.");
        var histogram = meter.CreateHistogram<double>("trellis_proxy_test_duration_seconds", description: "Durations seen by this test.");
        counter.Add(3, new KeyValuePair<string, object?>("listener", "upstream a.default:80"), new KeyValuePair<string, object?>("code", "200"));
        histogram.Record(0.003, new KeyValuePair<string, object?>("listener", "upstream a.default:80"));

        using var response = await http.GetAsync("stats/prometheus");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Matches(@"(?m)^trellis_proxy_test_requests_total\{[^}]*code=""200"",listener=""upstream a\.default:80""\} 3$", text);
        Assert.Matches(@"(?m)^trellis_proxy_test_duration_seconds_bucket\{[^}]*listener=""upstream a\.default:80"",le=""0\.0025""\} 0$", text);
        Assert.Matches(@"(?m)^trellis_proxy_test_duration_seconds_bucket\{[^}]*listener=""upstream a\.default:80"",le=""0\.005""\} 1$", text);
        Assert.Contains("service_name=\"trellis-proxy\"", text, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^process_resident_memory_bytes(\{[^}]*\})? [1-9]", text);
        var check = await Promtool.CheckMetricsAsync(text);
        Assert.True(check.ExitCode == 0, $"promtool check metrics failed:\n{check.Output}\n--- scraped text ---\n{text}");
    }
}
