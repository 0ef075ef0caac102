using System.Diagnostics;

namespace Trellis.Testing;

/// <summary>Runs the openssl command line (Debian package openssl) the way a user checks a TLS endpoint.</summary>
public static class Openssl
{
    /// <summary>Runs `openssl ARGS` with <paramref name="stdin"/> as its input (then closed); returns the exit code and stdout + stderr.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string arguments, string stdin)
    {
        var path = new[] { "/usr/bin/openssl", "/usr/local/bin/openssl" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("openssl is not installed: run scripts/test.sh (it installs the Debian package openssl) or apt-get install openssl");
        return await ToolProcess.RunAsync(path, arguments, stdin);
    }
}

/// <summary>Runs a command-line tool with text on its input (then closed): the exit code and stdout + stderr, within 30 s.</summary>
public static class ToolProcess
{
    public static async Task<(int ExitCode, string Output)> RunAsync(string path, string arguments, string stdin)
    {
        var psi = new ProcessStartInfo(path, arguments)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new TimeoutException($"{Path.GetFileName(path)} {arguments} did not finish within 30 s");
        }
        return (process.ExitCode, (await stdout) + (await stderr));
    }
}
