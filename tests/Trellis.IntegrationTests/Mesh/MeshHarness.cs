using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Testing;

namespace Trellis.IntegrationTests.Mesh;

/// <summary>
/// A mesh of real processes on loopback: the `trellis control-plane` process on a SQLite file, and `trellis proxy`
/// sidecars it configures. Test applications run in the test process (Trellis.Testing.Apps).
/// </summary>
public sealed class MeshHarness : IAsyncDisposable
{
    private readonly List<Sidecar> _sidecars = [];
    private TrellisProcess? _controlPlane;

    private MeshHarness(string dataDir, string grpc, string http)
    {
        DataDirectory = dataDir;
        GrpcAddress = grpc;
        HttpAddress = http;
        Rest = new HttpClient { BaseAddress = new Uri($"http://{http}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public string DataDirectory { get; }
    public string GrpcAddress { get; }
    public string HttpAddress { get; }
    public HttpClient Rest { get; }

    public static async Task<MeshHarness> StartAsync()
    {
        var dir = Directory.CreateTempSubdirectory("trellis-mesh-").FullName;
        var mesh = new MeshHarness(dir, $"127.0.0.1:{TestControlPlane.FreePort()}", $"127.0.0.1:{TestControlPlane.FreePort()}");
        await mesh.StartControlPlaneAsync();
        return mesh;
    }

    /// <summary>Starts (or restarts, on the same store and ports) the control plane process.</summary>
    public async Task StartControlPlaneAsync() =>
        _controlPlane = await TrellisProcess.StartControlPlaneAsync(DataDirectory, GrpcAddress, HttpAddress, "--debounce-ms", "20");

    /// <summary>kill -9 of the control plane.</summary>
    public async Task KillControlPlaneAsync()
    {
        if (_controlPlane is not null)
        {
            await _controlPlane.DisposeAsync();
            _controlPlane = null;
        }
    }

    public async Task ApplyAsync(string yaml)
    {
        using var response = await Rest.PostAsJsonAsync("api/v1/apply", new { files = new[] { new { name = "test.yaml", content = yaml } } });
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"apply failed ({(int)response.StatusCode}): {await response.Content.ReadAsStringAsync()}\n{yaml}");
        }
    }

    public async Task DeleteAsync(string plural, string name, string ns = "default")
    {
        using var response = await Rest.DeleteAsync($"api/v1/resources/{plural}/{name}?namespace={ns}");
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"delete {plural}/{name} failed ({(int)response.StatusCode}): {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>
    /// Starts `trellis proxy --service NAME` with an explicit listener per upstream ("svc:port"), optionally the
    /// inbound listener to a local app port, and waits until it prints "ready".
    /// </summary>
    public async Task<Sidecar> StartSidecarAsync(string service, IEnumerable<string>? upstreams = null, int? appPort = null, IEnumerable<string>? extraArgs = null)
    {
        var admin = TestControlPlane.FreePort();
        var inbound = TestControlPlane.FreePort();
        var args = new List<string> { "proxy", "--service", service, "--control-plane", GrpcAddress, "--admin", $"127.0.0.1:{admin}",
            "--inbound", $"127.0.0.1:{inbound}", "--wait-ready" };
        var locals = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var up in upstreams ?? [])
        {
            var port = TestControlPlane.FreePort();
            locals[up] = port;
            args.AddRange(["--upstream", $"{up}=127.0.0.1:{port}"]);
        }
        if (appPort is int app)
        {
            args.AddRange(["--app-port", app.ToString(CultureInfo.InvariantCulture)]);
        }
        args.AddRange(extraArgs ?? []);
        // 'trellis proxy' adds the sidecar's runtime settings itself.
        var sidecar = new Sidecar(Process.Start(TrellisProcess.StartInfo(args))!, service, admin, inbound, locals);
        _sidecars.Add(sidecar);
        await sidecar.WaitReadyAsync();
        return sidecar;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _sidecars)
        {
            await s.DisposeAsync();
        }
        await KillControlPlaneAsync();
        Rest.Dispose();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One `trellis proxy` process: its admin, inbound and explicit upstream ports, and its output.</summary>
public sealed class Sidecar : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    internal Sidecar(Process process, string service, int adminPort, int inboundPort, IReadOnlyDictionary<string, int> upstreams)
    {
        _process = process;
        Service = service;
        AdminPort = adminPort;
        InboundPort = inboundPort;
        Upstreams = upstreams;
        Admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"), Timeout = TimeSpan.FromSeconds(10) };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (_stderr)
            {
                _stderr.AppendLine(e.Data);
            }
        };
        process.BeginErrorReadLine();
    }

    public string Service { get; }
    public int AdminPort { get; }
    public int InboundPort { get; }
    public IReadOnlyDictionary<string, int> Upstreams { get; }
    public HttpClient Admin { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public string Log
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>
    /// The environment of the trellis-proxy process that 'trellis proxy' started (its child), from /proc: what an
    /// operator sees with `cat /proc/PID/environ`.
    /// </summary>
    public IReadOnlyDictionary<string, string> ProxyEnvironment()
    {
        var children = Directory.GetDirectories($"/proc/{_process.Id}/task")
            .SelectMany(t => File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(pid => File.ReadAllText($"/proc/{pid}/comm").Trim() == "trellis-proxy")
            .ToList();
        if (children.Count != 1)
        {
            throw new InvalidOperationException($"sidecar {Service}: expected one trellis-proxy child of 'trellis proxy', found {children.Count}");
        }
        return File.ReadAllText($"/proc/{children[0]}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(kv => kv.Split('=', 2))
            .Where(kv => kv.Length == 2)
            .GroupBy(kv => kv[0], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Last()[1], StringComparer.Ordinal);
    }

    /// <summary>The local port of the explicit listener for "svc:port".</summary>
    public int Port(string upstream) => Upstreams[upstream];

    internal async Task WaitReadyAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var line = await _process.StandardOutput.ReadLineAsync(cts.Token);
        if (line != "ready")
        {
            throw new InvalidOperationException($"sidecar {Service} printed '{line}' instead of 'ready':\n{Log}");
        }
    }

    /// <summary>The proxy's own /config_dump.</summary>
    public async Task<JsonNode> ConfigDumpAsync() => JsonNode.Parse(await Admin.GetStringAsync("config_dump"))!;

    /// <summary>Waits until the proxy's /config_dump satisfies <paramref name="condition"/> (bounded).</summary>
    public Task WaitForConfigAsync(Func<string, bool> condition, string what) =>
        Eventually.WaitAsync(async () => condition(await Admin.GetStringAsync("config_dump")), $"sidecar {Service}: {what}", TimeSpan.FromSeconds(30));

    /// <summary>Sends SIGTERM and waits for the exit.</summary>
    public async Task TerminateAsync()
    {
        Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])!.WaitForExit();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        Admin.Dispose();
    }
}
