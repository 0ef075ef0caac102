using Xunit;

namespace Trellis.Xds.Tests.Conformance;

/// <summary>Our proto/ subset against the Envoy protos shipped inside @grpc/grpc-js-xds.</summary>
public sealed class ProtoConformanceTests
{
    [Fact]
    public void UpstreamReference_Installed_EnvoyApiFolderExists()
    {
        var envoy = Path.Combine(RepoLayout.UpstreamEnvoyApiDir, "envoy");
        Assert.True(
            Directory.Exists(envoy),
            $"Upstream Envoy protos not found at {envoy}: {RepoLayout.MissingUpstreamHint}.");
    }

    [Fact]
    public void OurProtos_ComparedWithUpstream_MatchExactly()
    {
        var ours = ReferenceProtos.Ours;
        var problems = DescriptorComparer.Compare(ours, ReferenceProtos.Upstream);

        Assert.True(
            problems.Count == 0,
            $"{problems.Count} mismatch(es) between proto/ and upstream Envoy:\n  " + string.Join("\n  ", problems));
    }

    [Fact]
    public void OurProtos_Compiled_CoverEveryFileAndAreProto3WithoutForeignOptions()
    {
        var files = RepoLayout.OurProtoFiles();
        Assert.NotEmpty(files);
        Assert.All(files, f => Assert.StartsWith("envoy/", f, StringComparison.Ordinal));

        var compiled = ReferenceProtos.Ours.File.Where(f => f.Name.StartsWith("envoy/", StringComparison.Ordinal)).ToList();
        Assert.Equal(files, compiled.Select(f => f.Name).Order(StringComparer.Ordinal));
        Assert.All(compiled, f =>
        {
            Assert.Equal("proto3", f.Syntax);
            Assert.DoesNotContain(f.Dependency, d => d.StartsWith("validate/", StringComparison.Ordinal)
                || d.StartsWith("udpa/", StringComparison.Ordinal) || d.StartsWith("xds/", StringComparison.Ordinal));
            Assert.False(f.Options?.HasCsharpNamespace ?? false, $"{f.Name} sets csharp_namespace");
        });
    }

    [Fact]
    public void Comparer_UpstreamAgainstItself_ReportsNothing()
    {
        var upstream = ReferenceProtos.Upstream;
        Assert.Empty(DescriptorComparer.Compare(upstream, upstream));
    }
}
