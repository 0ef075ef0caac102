namespace Trellis.Xds.Tests.Conformance;

/// <summary>Where the repository, our protos and the upstream reference protos live on disk.</summary>
internal static class RepoLayout
{
    public const string MissingUpstreamHint =
        "run scripts/test.sh or npm ci in tests/xds-client";

    private static readonly Lazy<string> Root = new(FindRoot);

    public static string RepoRoot => Root.Value;

    public static string OurProtoDir => Path.Combine(RepoRoot, "proto");

    /// <summary>deps/ folder of the @grpc/grpc-js-xds npm package, which ships Envoy's API protos.</summary>
    public static string UpstreamDepsDir => Path.Combine(
        RepoRoot, "tests", "xds-client", "node_modules", "@grpc", "grpc-js-xds", "deps");

    public static string UpstreamEnvoyApiDir => Path.Combine(UpstreamDepsDir, "envoy-api");

    /// <summary>Every .proto under proto/, as import paths ("envoy/config/...").</summary>
    public static IReadOnlyList<string> OurProtoFiles() =>
        Directory.EnumerateFiles(OurProtoDir, "*.proto", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(OurProtoDir, p).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>Fails with a hint when the npm package holding the upstream protos is not installed.</summary>
    public static void RequireUpstream()
    {
        var envoy = Path.Combine(UpstreamEnvoyApiDir, "envoy");
        if (!Directory.Exists(envoy))
        {
            throw new InvalidOperationException(
                $"Upstream Envoy protos are missing ({envoy} does not exist): {MissingUpstreamHint}.");
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Trellis.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Trellis.slnx above {AppContext.BaseDirectory}.");
    }
}
