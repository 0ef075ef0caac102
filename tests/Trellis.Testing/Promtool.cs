using System.Diagnostics;

namespace Trellis.Testing;

/// <summary>Runs Prometheus's own linter (`promtool check metrics`, Debian package prometheus) on scraped text.</summary>
public static class Promtool
{
    public static async Task<(int ExitCode, string Output)> CheckMetricsAsync(string exposition)
    {
        var path = new[] { "/usr/bin/promtool", "/usr/local/bin/promtool" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("promtool is not installed: run scripts/test.sh (it installs the Debian package prometheus) or apt-get install prometheus");
        return await ToolProcess.RunAsync(path, "check metrics", exposition);
    }
}
