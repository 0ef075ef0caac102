using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.Testing;
using Xunit;

namespace Trellis.IntegrationTests;

/// <summary>`trellis proxy-config`: a real `trellis proxy` sidecar's config, from the control plane and from the proxy itself.</summary>
public sealed class ProxyConfigCliTests
{
    private const string Node = "web.default~config-test~1";

    [Fact]
    public async Task ProxyConfig_ConnectedSidecar_ShowsItsListenersRoutesClustersAndEndpointsFromBothSources()
    {
        var greeterPort = TestControlPlane.FreePort();
        await using var cp = await TestControlPlane.StartAsync();
        var server = $"http://{cp.Options.HttpAddress}";
        await cp.ApplyAsync($$$"""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: greeter}
            spec: {selector: {app: greeter}, ports: [{name: http, port: 8080}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: web}
            spec: {selector: {app: web}, ports: [{name: http, port: 8080}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: greeter-a}
            spec: {address: 127.0.0.1, ports: {http: {{{greeterPort}}}}, labels: {app: greeter}, locality: {region: local, zone: zone-a}}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: FaultInjection
            metadata: {name: greeter-chaos}
            spec:
              targetRef: {kind: Service, name: greeter}
              abort: {percent: 50, httpStatus: 503}
            """);

        var admin = $"127.0.0.1:{TestControlPlane.FreePort()}";
        var psi = TrellisProcess.StartInfo(["proxy", "--service", "web", "--node", Node, "--control-plane", cp.Options.GrpcAddress,
            "--upstream", $"greeter:8080=127.0.0.1:{TestControlPlane.FreePort()}", "--inbound", $"127.0.0.1:{TestControlPlane.FreePort()}",
            "--app-port", TestControlPlane.FreePort().ToString(CultureInfo.InvariantCulture), "--admin", admin, "--wait-ready"]);
        using var proxy = Process.Start(psi)!;
        var stderr = proxy.StandardError.ReadToEndAsync();
        try
        {
            using (var ready = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                var line = await proxy.StandardOutput.ReadLineAsync(ready.Token);
                Assert.True(line == "ready", $"expected 'ready', got '{line}'");
            }
            // The table shows what the proxy ACKed: wait until every type it asked for is ACKed.
            await Eventually.WaitAsync(async () =>
            {
                var config = await cp.GetJsonAsync($"api/v1/proxies/{Uri.EscapeDataString(Node)}/config");
                return config["types"]!.AsArray().All(t => t!["state"]!.GetValue<string>() == "ACKED");
            }, "the sidecar to ACK every type", TimeSpan.FromSeconds(30));

            var table = await CliAsync(server, "proxy-config", Node);
            Assert.Contains($"node {Node} (", table, StringComparison.Ordinal);
            Assert.Matches(@"LDS\s+ACKED\s+\*", table);
            AssertSection(table, "LISTENERS", "trellis.outbound", "0.0.0.0:15001", "trellis.inbound|web.default");
            AssertSection(table, "ROUTES", "trellis.outbound.http", "greeter.default:8080", "cluster greeter.default:8080", "fault: abort 50% http 503");
            AssertSection(table, "CLUSTERS", "greeter.default:8080", "EDS", "ROUND_ROBIN", "inbound|8080|web.default");
            AssertSection(table, "ENDPOINTS", "greeter.default:8080", $"127.0.0.1:{greeterPort}", "healthy", "local/zone-a");

            var endpoints = JsonNode.Parse(await CliAsync(server, "proxy-config", Node, "--section", "endpoints", "-o", "json"))!.AsArray();
            Assert.Contains(endpoints, e => e!["address"]!.GetValue<string>() == $"127.0.0.1:{greeterPort}" && e["cluster"]!.GetValue<string>() == "greeter.default:8080");

            var onlyRoutes = await CliAsync(server, "proxy-config", Node, "--section", "routes");
            Assert.StartsWith("TABLE", onlyRoutes, StringComparison.Ordinal);
            Assert.DoesNotContain("ENDPOINTS", onlyRoutes, StringComparison.Ordinal);

            // The proxy's own view, from its admin port: the same names, and the fault it compiled.
            var local = await CliAsync(server, "proxy-config", "--admin", admin);
            Assert.Contains($"node local proxy at {admin}: READY, connected to {cp.Options.GrpcAddress}", local, StringComparison.Ordinal);
            AssertSection(local, "LISTENERS", "trellis.outbound", "trellis.inbound|web.default");
            AssertSection(local, "ROUTES", "greeter.default:8080", "cluster greeter.default:8080", "fault: abort 50% http 503");
            AssertSection(local, "CLUSTERS", "greeter.default:8080", "ROUND_ROBIN");
            AssertSection(local, "ENDPOINTS", $"127.0.0.1:{greeterPort}", "local/zone-a");

            var unknown = await TrellisProcess.RunAsync(server, "proxy-config", "nobody");
            Assert.Equal(1, unknown.ExitCode);
            Assert.Contains("no proxy with node id \"nobody\" is connected", unknown.Stderr, StringComparison.Ordinal);
            Assert.Contains(Node, unknown.Stderr, StringComparison.Ordinal);
            Assert.Contains("trellis proxy-status", unknown.Stderr, StringComparison.Ordinal);

            var neither = await TrellisProcess.RunAsync(server, "proxy-config");
            Assert.Equal(2, neither.ExitCode);
            Assert.Contains("trellis proxy-status", neither.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            if (!proxy.HasExited)
            {
                proxy.Kill(entireProcessTree: true);
                await proxy.WaitForExitAsync();
            }
            _ = await stderr;
        }
    }

    private static async Task<string> CliAsync(string server, params string[] args)
    {
        var r = await TrellisProcess.RunAsync(server, args);
        Assert.True(r.ExitCode == 0, $"trellis {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }

    /// <summary>The section titled <paramref name="title"/> (up to the next blank line) names everything in <paramref name="expected"/>.</summary>
    private static void AssertSection(string output, string title, params string[] expected)
    {
        var start = output.IndexOf("\n" + title + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no {title} section in:\n{output}");
        var end = output.IndexOf("\n\n", start + title.Length + 2, StringComparison.Ordinal);
        var section = end < 0 ? output[start..] : output[start..end];
        foreach (var text in expected)
        {
            Assert.True(section.Contains(text, StringComparison.Ordinal), $"{title} should name \"{text}\":\n{section}");
        }
    }
}
