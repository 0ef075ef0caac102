using System.Diagnostics;

namespace Trellis.Testing;

/// <summary>Runs Prometheus's own linter (`promtool check metrics`, Debian package prometheus) on scraped text.</summary>
public static class Promtool
{
    public static async Task<(int ExitCode, string Output)> CheckMetricsAsync(string exposition)
    {
        var path = new[] { "/usr/bin/promtool", "/usr/local/bin/promtool" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("promtool is not installed: run scripts/test.sh (it installs the Debian package prometheus) or apt-get install prometheus");
        var psi = new ProcessStartInfo(path, "check metrics")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(exposition);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, (await stdout) + (await stderr));
    }
}
