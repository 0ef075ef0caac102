using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Trellis.IntegrationTests;

/// <summary>
/// A Node.js script from tests/xds-client run as a child process: lines to its stdin, lines from its stdout.
/// Closing stdin asks the scripts to exit; disposing kills the process tree whatever state it is in.
/// </summary>
public sealed class NodeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _stderr = new();

    private NodeProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _lines.Writer.TryComplete();
            }
            else
            {
                _lines.Writer.TryWrite(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What the script wrote to stderr so far (for failure messages).</summary>
    public string Stderr
    {
        get { lock (_stderr) { return _stderr.ToString(); } }
    }

    /// <summary>Starts <c>node SCRIPT ARGS...</c> in <paramref name="directory"/> with extra environment variables.</summary>
    public static NodeProcess Start(string directory, string script, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(XdsClientPeer.NodeExecutable)
        {
            WorkingDirectory = directory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Path.Combine(directory, script));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        return new NodeProcess(Process.Start(psi) ?? throw new InvalidOperationException($"could not start node {script}"));
    }

    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteLineAsync(line);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>The next stdout line; fails with the script's stderr when it exits or stays silent too long.</summary>
    public async Task<string> ReadLineAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            if (await _lines.Reader.WaitToReadAsync(cts.Token) && _lines.Reader.TryRead(out var line))
            {
                return line;
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"node process {Id} wrote nothing in {timeout.TotalSeconds:0} s; stderr:\n{Stderr}");
        }
        throw new InvalidOperationException($"node process {Id} exited; stderr:\n{Stderr}");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(cts.Token);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException)
        {
            // Already gone, or it did not die in time: nothing more can be done here.
        }
        _process.Dispose();
    }
}
