using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Trellis.Cli.Commands;

namespace Trellis.Cli.Demo;

/// <summary>One trellis-proxy process the demo runs beside a sample app; its log goes to a file.</summary>
internal sealed class DemoSidecar : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task _logCopy;

    private DemoSidecar(Process process, string logPath, int inboundPort, int adminPort, int? upstreamPort)
    {
        _process = process;
        LogPath = logPath;
        InboundPort = inboundPort;
        AdminPort = adminPort;
        UpstreamPort = upstreamPort;
        _logCopy = CopyLogAsync(process, logPath);
    }

    public string LogPath { get; }
    public int InboundPort { get; }
    public int AdminPort { get; }

    /// <summary>The local port the app calls its upstream through (caller sidecars only).</summary>
    public int? UpstreamPort { get; }

    /// <summary>Starts `trellis-proxy --service NAME -n NS ...` and waits until it has its first complete config.</summary>
    public static async Task<DemoSidecar> StartAsync(string service, string ns, string controlPlane, string logDir, int? appPort, string? upstream, CancellationToken ct)
    {
        var exe = ProxyCommand.Find() ?? throw new CliException(
            "trellis-proxy was not found next to trellis or on PATH; build the CLI (it carries trellis-proxy) with 'dotnet build src/Trellis.Cli'");
        var inbound = FreePort();
        var admin = FreePort();
        int? local = upstream is null ? null : FreePort();
        var psi = new ProcessStartInfo(exe)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        ProxyCommand.ApplyRuntimeSettings(psi);
        foreach (var a in new[] { "--service", service, "-n", ns, "--control-plane", controlPlane, "--inbound", $"127.0.0.1:{inbound}",
            "--admin", $"127.0.0.1:{admin}", "--wait-ready" })
        {
            psi.ArgumentList.Add(a);
        }
        if (appPort is int app)
        {
            psi.ArgumentList.Add("--app-port");
            psi.ArgumentList.Add(app.ToString(CultureInfo.InvariantCulture));
        }
        if (upstream is not null)
        {
            psi.ArgumentList.Add("--upstream");
            psi.ArgumentList.Add($"{upstream}=127.0.0.1:{local}");
        }
        Directory.CreateDirectory(logDir);
        var logPath = Path.Combine(logDir, $"sidecar-{service}.log");
        var process = Process.Start(psi) ?? throw new CliException($"could not start {exe}");
        var sidecar = new DemoSidecar(process, logPath, inbound, admin, local);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        wait.CancelAfter(TimeSpan.FromSeconds(30));
        string? line;
        try
        {
            line = await process.StandardOutput.ReadLineAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            line = null;
        }
        if (line != "ready")
        {
            await sidecar.DisposeAsync().ConfigureAwait(false);
            throw new CliException($"the sidecar of {service} did not become ready within 30 s; see {logPath} and `trellis proxy-status`");
        }
        return sidecar;
    }

    private static async Task CopyLogAsync(Process process, string path)
    {
        var log = new StreamWriter(path, append: false) { AutoFlush = true };
        await using (log.ConfigureAwait(false))
        {
            string? line;
            while ((line = await process.StandardError.ReadLineAsync().ConfigureAwait(false)) is not null)
            {
                await log.WriteLineAsync(line).ConfigureAwait(false);
            }
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>SIGTERM (the sidecar drains and exits), then kill if it lingers.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])?.Dispose();
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or System.ComponentModel.Win32Exception)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        await _logCopy.ConfigureAwait(false);
        _process.Dispose();
    }
}
