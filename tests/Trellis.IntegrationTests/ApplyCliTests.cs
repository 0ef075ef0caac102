using System.Text.Json.Nodes;
using Trellis.Testing;
using Xunit;

namespace Trellis.IntegrationTests;

/// <summary>The `trellis` CLI against a real control plane process: apply, get, delete, exit codes and error locations.</summary>
public sealed class ApplyCliTests : IAsyncLifetime
{
    private TrellisProcess _cp = null!;
    private string _server = "";
    private string _dir = "";

    public async Task InitializeAsync()
    {
        _dir = TestPaths.NewTempDir();
        var http = $"127.0.0.1:{TestControlPlane.FreePort()}";
        _cp = await TrellisProcess.StartControlPlaneAsync(Path.Combine(_dir, "data"), $"127.0.0.1:{TestControlPlane.FreePort()}", http);
        _server = $"http://{http}";
    }

    public async Task DisposeAsync() => await _cp.DisposeAsync();

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    private async Task<long> RevisionAsync()
    {
        using var http = new HttpClient();
        return JsonNode.Parse(await http.GetStringAsync($"{_server}/api/v1/health"))!["revision"]!.GetValue<long>();
    }

    private const string Service = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec:
          selector: {app: greeter}
          ports: [{name: grpc, port: 50051, protocol: grpc}]
        """;

    [Fact]
    public async Task Apply_ValidFile_CreatesThenReportsUnchanged()
    {
        var file = Write("svc.yaml", Service);
        var first = await TrellisProcess.RunAsync(_server, "apply", "-f", file);
        Assert.Equal(0, first.ExitCode);
        Assert.Contains("service/default/greeter created", first.Stdout);

        var again = await TrellisProcess.RunAsync(_server, "apply", "-f", file);
        Assert.Contains("service/default/greeter unchanged", again.Stdout);

        var get = await TrellisProcess.RunAsync(_server, "get", "svc", "greeter", "-o", "json");
        Assert.Equal(0, get.ExitCode);
        Assert.Equal(50051, JsonNode.Parse(get.Stdout)!["spec"]!["ports"]![0]!["port"]!.GetValue<int>());
    }

    [Fact]
    public async Task Apply_FromStdinAndFolder_Works()
    {
        var stdin = await TrellisProcess.RunWithStdinAsync(_server, Service, "apply", "-f", "-");
        Assert.Equal(0, stdin.ExitCode);
        Directory.CreateDirectory(Path.Combine(_dir, "folder"));
        Write("folder/a.yaml", Service.Replace("greeter", "alpha", StringComparison.Ordinal));
        Write("folder/b.json", """{"apiVersion":"trellis.dev/v1alpha1","kind":"Service","metadata":{"name":"beta"},"spec":{"ports":[{"name":"http","port":80}]}}""");
        var folder = await TrellisProcess.RunAsync(_server, "apply", "-f", Path.Combine(_dir, "folder"));
        Assert.Equal(0, folder.ExitCode);
        Assert.Contains("service/default/alpha created", folder.Stdout);
        Assert.Contains("service/default/beta created", folder.Stdout);
        var list = await TrellisProcess.RunAsync(_server, "get", "services");
        Assert.Contains("alpha", list.Stdout);
        Assert.Contains("NAMESPACE", list.Stdout);
    }

    [Fact]
    public async Task Apply_BatchWithErrors_ReportsEveryErrorWithLocation_AndChangesNothing()
    {
        await TrellisProcess.RunAsync(_server, "apply", "-f", Write("svc.yaml", Service));
        var before = await RevisionAsync();
        var bad = Write("bad.yaml", """
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: fine}
            spec: {ports: [{name: http, port: 80}]}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: split}
            spec:
              parentRefs: [{kind: Service, name: greeter, port: 50051}]
              rules:
              - backendRefs:
                - {kind: Service, name: greeter-v3, port: 50051}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Servise
            metadata: {name: typo}
            """);
        var result = await TrellisProcess.RunAsync(_server, "apply", "-f", bad);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{bad}:13:", result.Stderr);         // the backendRef naming a missing Service
        Assert.Contains("greeter-v3", result.Stderr);
        Assert.Contains($"{bad}:16:", result.Stderr);         // the unknown kind
        Assert.Contains("Servise", result.Stderr);
        Assert.Contains("nothing was applied", result.Stderr);
        Assert.Equal(before, await RevisionAsync());
        var fine = await TrellisProcess.RunAsync(_server, "get", "service", "fine");
        Assert.Equal(1, fine.ExitCode);
        Assert.Contains("not found", fine.Stderr);
    }

    [Fact]
    public async Task Delete_ByNameAndByFile_RemovesResources()
    {
        var file = Write("svc.yaml", Service);
        await TrellisProcess.RunAsync(_server, "apply", "-f", file);
        var byFile = await TrellisProcess.RunAsync(_server, "delete", "-f", file);
        Assert.Equal(0, byFile.ExitCode);
        Assert.Contains("service/default/greeter deleted", byFile.Stdout);

        await TrellisProcess.RunAsync(_server, "apply", "-f", file);
        var byName = await TrellisProcess.RunAsync(_server, "delete", "service", "greeter");
        Assert.Equal(0, byName.ExitCode);
        var missing = await TrellisProcess.RunAsync(_server, "delete", "service", "greeter");
        Assert.Equal(1, missing.ExitCode);
    }

    [Fact]
    public async Task Cli_UsageErrorsAndUnreachableServer_HaveExitCodesAndAdvice()
    {
        var usage = await TrellisProcess.RunAsync(_server, "apply");
        Assert.Equal(2, usage.ExitCode);
        var unknownKind = await TrellisProcess.RunAsync(_server, "get", "gadgets");
        Assert.Equal(1, unknownKind.ExitCode);
        Assert.Contains("known kinds", unknownKind.Stderr);
        var down = await TrellisProcess.RunAsync($"http://127.0.0.1:{TestControlPlane.FreePort()}", "get", "services");
        Assert.Equal(1, down.ExitCode);
        Assert.Contains("trellis control-plane", down.Stderr);
        var help = await TrellisProcess.RunAsync(_server, "register", "--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("--ttl", help.Stdout);
    }

    [Fact]
    public async Task Register_Once_ThenDeregister_ShowsAndRemovesTheEndpoint()
    {
        await TrellisProcess.RunAsync(_server, "apply", "-f", Write("svc.yaml", Service));
        var reg = await TrellisProcess.RunAsync(_server, "register", "--service", "greeter", "--address", "127.0.0.7", "--port", "50071", "--zone", "zone-a", "--ttl", "30s", "--once");
        Assert.Equal(0, reg.ExitCode);
        var id = reg.Stdout.Trim().Split(' ')[^1];
        using var http = new HttpClient();
        var services = await http.GetStringAsync($"{_server}/api/v1/services");
        Assert.Contains("127.0.0.7", services);
        var dereg = await TrellisProcess.RunAsync(_server, "deregister", id);
        Assert.Equal(0, dereg.ExitCode);
        Assert.DoesNotContain("127.0.0.7", await http.GetStringAsync($"{_server}/api/v1/services"));
    }
}

/// <summary>`trellis demo` end to end: the README's first command.</summary>
public sealed class DemoTests
{
    [Fact]
    public async Task Demo_ShortRun_RoutesTrafficThroughTheCanarySplitWithoutFailures()
    {
        var data = TestPaths.NewTempDir();
        var result = await TrellisProcess.RunAsync(null, "demo", "--duration", "12s", "--data", data,
            "--grpc-address", $"127.0.0.1:{TestControlPlane.FreePort()}", "--http-address", $"127.0.0.1:{TestControlPlane.FreePort()}");
        Assert.True(result.ExitCode == 0, result.ToString());
        var report = result.Stdout.Split('\n').Last(l => l.Contains("split:", StringComparison.Ordinal));
        Assert.Contains("greeter-v1", report);
        Assert.Contains("with x-canary: greeter-v2", report);
        Assert.DoesNotContain("x-canary: greeter-v1", report);
        Assert.EndsWith("failed: 0", report.Trim());
    }
}
