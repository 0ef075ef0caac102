using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;

namespace Trellis.Bench.XdsScale;

/// <summary>The control plane under test: a child process started here, or one already running.</summary>
internal sealed class ControlPlane : IAsyncDisposable
{
    private readonly Process? _process;
    private readonly string? _dataDir;
    private readonly Queue<string> _lastLines = new();

    private ControlPlane(Process? process, string? dataDir, string xdsAddress, string httpUrl, string? pid)
    {
        _process = process;
        _dataDir = dataDir;
        XdsAddress = xdsAddress;
        Http = new HttpClient { BaseAddress = new Uri(httpUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(120) };
        Pid = pid;
    }

    /// <summary>host:port of the gRPC (ADS) listener.</summary>
    public string XdsAddress { get; }

    public HttpClient Http { get; }

    /// <summary>Process id for /proc figures; null when attached to a control plane without --cp-pid.</summary>
    public string? Pid { get; }

    public ProcSample? Sample() => Pid is null ? null : ProcSample.Read(Pid);

    public static async Task<ControlPlane> StartAsync(string trellisDll, string? cpus, int debounceMs)
    {
        var grpcPort = FreePort();
        var httpPort = FreePort();
        var dataDir = Directory.CreateTempSubdirectory("xds-scale-").FullName;
        var psi = new ProcessStartInfo(cpus is null ? "dotnet" : "taskset")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (cpus is not null)
        {
            // taskset execs dotnet, so the child's pid is the control plane's.
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(cpus);
            psi.ArgumentList.Add("dotnet");
        }
        foreach (var a in new[]
                 {
                     trellisDll, "control-plane", "--data", dataDir, "--grpc-address", $"127.0.0.1:{grpcPort}",
                     "--http-address", $"127.0.0.1:{httpPort}", "--debounce-ms", debounceMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
                 })
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start dotnet");
        var cp = new ControlPlane(process, dataDir, $"127.0.0.1:{grpcPort}", $"http://127.0.0.1:{httpPort}", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        process.OutputDataReceived += (_, e) => cp.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => cp.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the control plane exited with {process.ExitCode}:\n{cp.LastLines}");
            }
            try
            {
                var text = await cp.Http.GetStringAsync("healthz").ConfigureAwait(false);
                if (text.StartsWith("ok", StringComparison.Ordinal))
                {
                    return cp;
                }
            }
            catch (HttpRequestException)
            {
            }
            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"the control plane did not become healthy in 60 s:\n{cp.LastLines}");
            }
            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    public static ControlPlane Attach(string httpUrl, string xdsAddress, string? pid) => new(null, null, xdsAddress, httpUrl, pid);

    public string LastLines
    {
        get { lock (_lastLines) { return string.Join('\n', _lastLines); } }
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_lastLines)
        {
            _lastLines.Enqueue(line);
            if (_lastLines.Count > 40)
            {
                _lastLines.Dequeue();
            }
        }
    }

    /// <summary>POST /api/v1/apply with one YAML file; returns the store revision it produced.</summary>
    public async Task<long> ApplyAsync(string yaml)
    {
        using var response = await Http.PostAsJsonAsync("api/v1/apply", new { files = new[] { new { name = "bench.yaml", content = yaml } } }).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"apply failed: {(int)response.StatusCode} {body}");
        }
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("revision").GetInt64();
    }

    /// <summary>Waits until the published snapshot reflects <paramref name="revision"/>.</summary>
    public async Task WaitAppliedAsync(long revision)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            var health = await HealthAsync().ConfigureAwait(false);
            if (health.GetProperty("appliedRevision").GetInt64() >= revision)
            {
                return;
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
        throw new TimeoutException($"the snapshot did not reach revision {revision} in 60 s");
    }

    public async Task<JsonElement> HealthAsync()
    {
        var text = await Http.GetStringAsync("api/v1/health").ConfigureAwait(false);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (_process is not null)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().ConfigureAwait(false);
            }
            _process.Dispose();
        }
        if (_dataDir is not null)
        {
            try
            {
                Directory.Delete(_dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
