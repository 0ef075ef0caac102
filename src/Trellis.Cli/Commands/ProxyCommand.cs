using System.CommandLine;
using System.Diagnostics;

namespace Trellis.Cli.Commands;

/// <summary>
/// `trellis proxy ...`: runs the sidecar. The data plane is its own NativeAOT executable, `trellis-proxy`, so the
/// sidecar never carries control-plane code; this verb finds it and runs it with the same arguments.
/// </summary>
internal static class ProxyCommand
{
    /// <summary>
    /// The runtime settings the sidecar's data path is written and measured for (DESIGN.md section 5):
    /// socket completions run on the I/O thread, and the shared buffer pool keeps enough buffers per size for
    /// hundreds of concurrent HTTP/2 streams (with the default 32 per core, a proxy on one core allocated about
    /// 49 kB per h2c request instead of 5 kB, and served 15% fewer).
    /// </summary>
    private static readonly (string Name, string Value)[] RuntimeSettings =
    [
        ("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1"),
        ("DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION", "1024"),
    ];

    /// <summary>Adds the sidecar's runtime settings to a trellis-proxy start; a value the user set explicitly wins.</summary>
    public static void ApplyRuntimeSettings(ProcessStartInfo psi)
    {
        foreach (var (name, value) in RuntimeSettings)
        {
            if (Environment.GetEnvironmentVariable(name) is null)
            {
                psi.Environment[name] = value;
            }
        }
    }

    public static Command Create()
    {
        var rest = new Argument<string[]>("ARGS") { Description = "Flags of trellis-proxy (run 'trellis proxy --help')", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("proxy", "Run the sidecar proxy (the trellis-proxy executable) with these flags") { TreatUnmatchedTokensAsErrors = false };
        cmd.Arguments.Add(rest);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            var exe = Find() ?? throw new CliException(
                "trellis-proxy was not found next to trellis or on PATH; build it with 'dotnet publish src/Trellis.Proxy.Host -c Release -o DIR' into the folder that holds trellis");
            var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
            ApplyRuntimeSettings(psi);
            foreach (var a in parse.GetValue(rest) ?? [])
            {
                psi.ArgumentList.Add(a);
            }
            foreach (var a in parse.UnmatchedTokens)
            {
                psi.ArgumentList.Add(a);
            }
            using var child = Process.Start(psi) ?? throw new CliException($"could not start {exe}");
            using var forward = ct.Register(() =>
            {
                // Ctrl-C or SIGTERM to trellis: ask the sidecar to drain and exit in its own way.
                try
                {
                    Process.Start("kill", ["-TERM", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.Dispose();
                }
                catch (System.ComponentModel.Win32Exception)
                {
                    child.Kill();
                }
            });
            await child.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            return child.ExitCode;
        }));
        return cmd;
    }

    internal static string? Find()
    {
        var here = Path.Combine(AppContext.BaseDirectory, "trellis-proxy");
        if (File.Exists(here))
        {
            return here;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "trellis-proxy");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }
}
