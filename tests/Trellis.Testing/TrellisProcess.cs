using System.Diagnostics;
using System.Text;

namespace Trellis.Testing;

/// <summary>Result of one `trellis` CLI run.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

/// <summary>
/// Runs the real `trellis` executable (trellis.dll next to the test assembly) as a child process: the CLI
/// verbs, or a long-running control plane that tests can stop gracefully or kill -9.
/// </summary>
public sealed class TrellisProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private TrellisProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_output) { _output.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_output) { _output.AppendLine(e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public static string TrellisDll => Path.Combine(AppContext.BaseDirectory, "trellis.dll");

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;

    public string Output
    {
        get { lock (_output) { return _output.ToString(); } }
    }

    public static ProcessStartInfo StartInfo(IEnumerable<string> args, string? server = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.ArgumentList.Add(TrellisDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        if (server is not null)
        {
            psi.Environment["TRELLIS_SERVER"] = server;
        }
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return psi;
    }

    /// <summary>Runs a CLI verb to completion (stdin optional) and returns its exit code and output.</summary>
    public static async Task<CliResult> RunWithStdinAsync(string? server, string? stdin, params string[] args)
    {
        using var p = Process.Start(StartInfo(args, server))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
        }
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(cts.Token);
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    public static Task<CliResult> RunAsync(string? server, params string[] args) => RunWithStdinAsync(server, null, args);

    /// <summary>Starts `trellis control-plane` on the given addresses and waits until it serves.</summary>
    public static async Task<TrellisProcess> StartControlPlaneAsync(string dataDir, string grpcAddress, string httpAddress, params string[] extra)
    {
        var args = new List<string> { "control-plane", "--data", dataDir, "--grpc-address", grpcAddress, "--http-address", httpAddress };
        args.AddRange(extra);
        var p = new TrellisProcess(Process.Start(StartInfo(args))!);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{httpAddress}/"), Timeout = TimeSpan.FromSeconds(2) };
        async Task<bool> ServingAsync()
        {
            if (p.HasExited)
            {
                throw new InvalidOperationException($"control plane exited early:\n{p.Output}");
            }
            try
            {
                return (await http.GetStringAsync("healthz")).StartsWith("ok", StringComparison.Ordinal);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                return false; // not listening yet
            }
        }
        try
        {
            await Eventually.WaitAsync(ServingAsync, "the control plane to serve", TimeSpan.FromSeconds(30));
            return p;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            await p.DisposeAsync();
            throw new TimeoutException($"control plane did not become healthy: {ex.Message}\n{p.Output}");
        }
    }

    /// <summary>kill -9: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
