using Google.Protobuf.Reflection;

namespace Trellis.Xds.Tests.Conformance;

/// <summary>Descriptor sets of our proto/ tree and of the matching upstream Envoy files, compiled once per run.</summary>
internal static class ReferenceProtos
{
    private static readonly Lazy<FileDescriptorSet> OursSet = new(CompileOurs);
    private static readonly Lazy<FileDescriptorSet> UpstreamSet = new(CompileUpstream);

    public static FileDescriptorSet Ours => OursSet.Value;

    public static FileDescriptorSet Upstream => UpstreamSet.Value;

    private static FileDescriptorSet CompileOurs()
    {
        RepoLayout.RequireUpstream();
        // google/rpc/status.proto comes from the googleapis copy next to the Envoy protos.
        return Protoc.Compile(
            [RepoLayout.OurProtoDir, Path.Combine(RepoLayout.UpstreamDepsDir, "googleapis")],
            RepoLayout.OurProtoFiles());
    }

    private static FileDescriptorSet CompileUpstream()
    {
        RepoLayout.RequireUpstream();
        var deps = RepoLayout.UpstreamDepsDir;
        var overlay = WriteValidateOverlay(Path.Combine(deps, "protoc-gen-validate", "validate", "validate.proto"));
        try
        {
            return Protoc.Compile(
                [
                    overlay,
                    Path.Combine(deps, "envoy-api"),
                    Path.Combine(deps, "xds"),
                    Path.Combine(deps, "googleapis"),
                    Path.Combine(deps, "protoc-gen-validate"),
                ],
                RepoLayout.OurProtoFiles());
        }
        finally
        {
            Directory.Delete(overlay, recursive: true);
        }
    }

    /// <summary>
    /// The package's validate.proto predates its Envoy files: they use StringRules.ignore_empty, which it lacks,
    /// and protoc refuses the unknown option. A patched copy placed first on the include path fixes that; the
    /// validation options themselves play no part in the comparison.
    /// </summary>
    private static string WriteValidateOverlay(string original)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"trellis-validate-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(dir, "validate"));
        var text = File.ReadAllText(original);
        const string marker = "message StringRules {";
        var start = text.IndexOf(marker, StringComparison.Ordinal);
        var end = start < 0 ? -1 : text.IndexOf("\nmessage ", start, StringComparison.Ordinal);
        var body = start < 0 ? string.Empty : text[start..(end < 0 ? text.Length : end)];
        if (start >= 0 && !body.Contains("ignore_empty", StringComparison.Ordinal))
        {
            text = text.Insert(start + marker.Length, "\n    optional bool ignore_empty = 26;");
        }

        File.WriteAllText(Path.Combine(dir, "validate", "validate.proto"), text);
        return dir;
    }
}
