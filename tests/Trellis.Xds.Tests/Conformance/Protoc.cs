using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Google.Protobuf.Reflection;

namespace Trellis.Xds.Tests.Conformance;

/// <summary>Runs the protoc binary shipped in the Grpc.Tools NuGet package and reads its descriptor sets.</summary>
internal static partial class Protoc
{
    private static readonly Lazy<(string Exe, string WellKnown)> Tool = new(Locate);

    public static string WellKnownIncludeDir => Tool.Value.WellKnown;

    /// <summary>Compiles <paramref name="files"/> (with all imports) and returns the parsed descriptor set.</summary>
    public static FileDescriptorSet Compile(IEnumerable<string> includeDirs, IEnumerable<string> files)
    {
        var outFile = Path.Combine(Path.GetTempPath(), $"trellis-protoc-{Guid.NewGuid():N}.pb");
        try
        {
            var psi = new ProcessStartInfo(Tool.Value.Exe)
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            foreach (var dir in includeDirs)
            {
                psi.ArgumentList.Add("-I" + dir);
            }

            psi.ArgumentList.Add("-I" + Tool.Value.WellKnown);
            psi.ArgumentList.Add("--include_imports");
            psi.ArgumentList.Add("--descriptor_set_out=" + outFile);
            foreach (var f in files)
            {
                psi.ArgumentList.Add(f);
            }

            using var proc = Process.Start(psi) ?? throw new InvalidOperationException("protoc did not start");
            var stderr = proc.StandardError.ReadToEndAsync();
            var stdout = proc.StandardOutput.ReadToEnd();
            proc.WaitForExit();
            if (proc.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"protoc failed (exit {proc.ExitCode}):\n{stderr.Result}{stdout}");
            }

            return FileDescriptorSet.Parser.ParseFrom(File.ReadAllBytes(outFile));
        }
        finally
        {
            File.Delete(outFile);
        }
    }

    private static (string Exe, string WellKnown) Locate()
    {
        var nugetRoot = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(nugetRoot))
        {
            nugetRoot = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        }

        var toolsRoot = Path.Combine(nugetRoot, "grpc.tools");
        if (!Directory.Exists(toolsRoot))
        {
            throw new InvalidOperationException($"Grpc.Tools is not in the NuGet cache ({toolsRoot}); run dotnet restore.");
        }

        // Prefer the version the repository pins; otherwise take the newest one present.
        var pinned = PinnedGrpcToolsVersion();
        var versionDir = pinned != null && Directory.Exists(Path.Combine(toolsRoot, pinned))
            ? Path.Combine(toolsRoot, pinned)
            : Directory.GetDirectories(toolsRoot).OrderByDescending(d => Version.TryParse(Path.GetFileName(d), out var v) ? v : new Version(0, 0)).First();

        var os = OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "macosx" : "linux";
        var arch = RuntimeInformation.OSArchitecture switch
        {
            Architecture.Arm64 => "arm64",
            Architecture.X86 => "x86",
            _ => "x64",
        };
        var exe = Path.Combine(versionDir, "tools", $"{os}_{arch}", OperatingSystem.IsWindows() ? "protoc.exe" : "protoc");
        if (!File.Exists(exe))
        {
            throw new InvalidOperationException($"protoc not found at {exe}");
        }

        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(exe);
            const UnixFileMode exec = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            if ((mode & UnixFileMode.UserExecute) == 0)
            {
                File.SetUnixFileMode(exe, mode | exec);
            }
        }

        return (exe, Path.Combine(versionDir, "build", "native", "include"));
    }

    private static string? PinnedGrpcToolsVersion()
    {
        var props = Path.Combine(RepoLayout.RepoRoot, "Directory.Packages.props");
        if (!File.Exists(props))
        {
            return null;
        }

        var m = GrpcToolsVersion().Match(File.ReadAllText(props));
        return m.Success ? m.Groups[1].Value : null;
    }

    [GeneratedRegex("Include=\"Grpc.Tools\"\\s+Version=\"([^\"]+)\"")]
    private static partial Regex GrpcToolsVersion();
}
