using Envoy.Config.Core.V3;
using Envoy.Config.Listener.V3;
using Envoy.Service.Discovery.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Xunit;

namespace Trellis.Xds.Tests;

public sealed class RoundTripTests
{
    [Fact]
    public void DiscoveryResponse_ListenerWithUnknownFields_SurvivesByteForByte()
    {
        var listener = new Listener
        {
            Name = "greeter",
            Address = new Address { SocketAddress = new SocketAddress { Address = "10.0.0.1", PortValue = 8080 } },
        };
        // Fields a newer Envoy might send that our subset does not declare: a varint and a nested message.
        var listenerBytes = Concat(listener.ToByteArray(), UnknownVarint(7777, 42), UnknownBytes(7778, [1, 2, 3]));

        var response = new DiscoveryResponse
        {
            VersionInfo = "v1",
            TypeUrl = TypeUrls.Listener,
            Nonce = "n1",
            Resources = { new Any { TypeUrl = TypeUrls.Listener, Value = ByteString.CopyFrom(listenerBytes) } },
        };
        var wire = Concat(response.ToByteArray(), UnknownVarint(9999, 5));

        var parsed = DiscoveryResponse.Parser.ParseFrom(wire);
        Assert.Equal(wire, parsed.ToByteArray());

        var inner = parsed.Resources[0].Unpack<Listener>();
        Assert.Equal("greeter", inner.Name);
        Assert.Equal(listenerBytes, inner.ToByteArray());
    }

    private static byte[] UnknownVarint(int field, ulong value)
    {
        using var ms = new MemoryStream();
        var cos = new CodedOutputStream(ms);
        cos.WriteTag(field, WireFormat.WireType.Varint);
        cos.WriteUInt64(value);
        cos.Flush();
        return ms.ToArray();
    }

    private static byte[] UnknownBytes(int field, byte[] value)
    {
        using var ms = new MemoryStream();
        var cos = new CodedOutputStream(ms);
        cos.WriteTag(field, WireFormat.WireType.LengthDelimited);
        cos.WriteBytes(ByteString.CopyFrom(value));
        cos.Flush();
        return ms.ToArray();
    }

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
