using Envoy.Config.Listener.V3;
using Envoy.Service.Discovery.V3;
using Google.Protobuf.Reflection;
using Xunit;
using static Google.Protobuf.Reflection.FieldDescriptorProto.Types;

namespace Trellis.Xds.Tests.Conformance;

/// <summary>
/// The comparer must be able to fail. These build descriptors in memory (from the compiled C# types), break
/// a copy on purpose and expect the break to be reported. No protoc or npm package is needed.
/// </summary>
public sealed class DescriptorComparerTests
{
    [Fact]
    public void Compare_IdenticalListenerFile_ReportsNothing()
    {
        var reference = ListenerFileSet();
        Assert.Empty(DescriptorComparer.Compare(ListenerFileSet(), reference));
    }

    [Fact]
    public void Compare_ListenerWithChangedFieldNumber_ReportsThatField()
    {
        var broken = ListenerFileSet();
        Field(broken, "Listener", "name").Number = 99;

        var problems = DescriptorComparer.Compare(broken, ListenerFileSet());

        var problem = Assert.Single(problems);
        Assert.Contains("envoy/config/listener/v3/listener.proto", problem, StringComparison.Ordinal);
        Assert.Contains("envoy.config.listener.v3.Listener.name", problem, StringComparison.Ordinal);
        Assert.Contains("number ours=99 upstream=1", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Compare_SeveralBreaks_ReportsEveryOne()
    {
        var broken = ListenerFileSet();
        Field(broken, "Listener", "stat_prefix").Type = FieldDescriptorProto.Types.Type.Bytes;
        Field(broken, "Listener", "filter_chains").Label = Label.Optional;
        Message(broken, "Listener").Field.Add(new FieldDescriptorProto
        {
            Name = "invented_field", Number = 500, Type = FieldDescriptorProto.Types.Type.Bool, Label = Label.Optional,
        });
        Message(broken, "Listener").NestedType.Add(new DescriptorProto { Name = "InventedNested" });
        Message(broken, "Listener").EnumType.Single(e => e.Name == "DrainType").Value[1].Number = 7;

        var problems = DescriptorComparer.Compare(broken, ListenerFileSet());

        Assert.Equal(5, problems.Count);
        Assert.Contains(problems, p => p.Contains("Listener.stat_prefix: type ours=Bytes upstream=String", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("Listener.filter_chains: label ours=Optional upstream=Repeated", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("Listener.invented_field: no such field upstream", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("Listener.InventedNested does not exist upstream", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("DrainType.MODIFY_ONLY: number ours=7 upstream=1", StringComparison.Ordinal));
    }

    [Fact]
    public void Compare_FieldMovedOutOfItsOneof_ReportsOneofMismatch()
    {
        var reference = FileSet(DiscoveryReflection.Descriptor, ListenerReflection.Descriptor, AddressFile());
        var broken = FileSet(DiscoveryReflection.Descriptor, ListenerReflection.Descriptor, AddressFile());
        var address = broken.File.Single(f => f.Name.EndsWith("address.proto", StringComparison.Ordinal))
            .MessageType.Single(m => m.Name == "SocketAddress");
        address.Field.Single(f => f.Name == "port_value").ClearOneofIndex();

        var problems = DescriptorComparer.Compare(broken, reference);

        var problem = Assert.Single(problems);
        Assert.Contains("SocketAddress.port_value: oneof ours=(none) upstream=port_specifier", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Compare_MissingUpstreamFileOrWrongPackage_ReportsFileLevelProblems()
    {
        var broken = ListenerFileSet();
        broken.File[0].Package = "envoy.config.listener.v4";
        var emptyUpstream = new FileDescriptorSet();

        Assert.Contains(
            DescriptorComparer.Compare(ListenerFileSet(), emptyUpstream),
            p => p.Contains("no upstream file with this path", StringComparison.Ordinal));
        Assert.Contains(
            DescriptorComparer.Compare(broken, ListenerFileSet()),
            p => p.Contains("package ours=envoy.config.listener.v4 upstream=envoy.config.listener.v3", StringComparison.Ordinal));
    }

    [Fact]
    public void Compare_ServiceWithWrongStreaming_ReportsRpc()
    {
        var broken = FileSet(AdsReflection.Descriptor);
        broken.File.Single(f => f.Name.EndsWith("ads.proto", StringComparison.Ordinal))
            .Service[0].Method[0].ClientStreaming = false;

        var problem = Assert.Single(DescriptorComparer.Compare(broken, FileSet(AdsReflection.Descriptor)));
        Assert.Contains("StreamAggregatedResources: client_streaming ours=False upstream=True", problem, StringComparison.Ordinal);
    }

    private static FileDescriptor AddressFile() => Envoy.Config.Core.V3.AddressReflection.Descriptor;

    private static FileDescriptorSet ListenerFileSet() => FileSet(ListenerReflection.Descriptor);

    private static FileDescriptorSet FileSet(params FileDescriptor[] files)
    {
        var set = new FileDescriptorSet();
        foreach (var f in files.DistinctBy(f => f.Name))
        {
            set.File.Add(f.ToProto()); // ToProto returns a fresh copy we may edit
        }

        return set;
    }

    private static DescriptorProto Message(FileDescriptorSet set, string name) =>
        set.File.Single(f => f.Name == "envoy/config/listener/v3/listener.proto").MessageType.Single(m => m.Name == name);

    private static FieldDescriptorProto Field(FileDescriptorSet set, string message, string field) =>
        Message(set, message).Field.Single(f => f.Name == field);
}
