using Trellis.Proxy.Http.Http2.Frames;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Frames;

public sealed class Http2FrameHeaderTests
{
    [Fact]
    public void Write_Fields_NineBigEndianBytes()
    {
        var bytes = new byte[9];
        new Http2FrameHeader(0x01_02_03, Http2FrameType.Headers, Http2Flags.EndHeaders | Http2Flags.EndStream, 0x7FFF_FFFF).Write(bytes);

        Assert.Equal(new byte[] { 1, 2, 3, 1, 5, 0x7F, 0xFF, 0xFF, 0xFF }, bytes);
    }

    [Fact]
    public void TryRead_ReservedBitSet_IgnoredAndZeroWhenWrittenAgain()
    {
        byte[] bytes = [0xFF, 0xFF, 0xFF, 0x0b, 0xAA, 0x80, 0, 0, 3];

        Assert.True(Http2FrameHeader.TryRead(bytes, out var header));
        Assert.Equal((16_777_215, (Http2FrameType)0x0b, (byte)0xAA, 3), (header.Length, header.Type, header.Flags, header.StreamId));
        Assert.False(header.IsKnownType);

        var again = new byte[9];
        header.Write(again);
        Assert.Equal(0, again[5]);
    }

    [Fact]
    public void TryRead_FewerThanNineBytes_False()
    {
        Assert.False(Http2FrameHeader.TryRead(new byte[8], out _));
    }

    [Theory]
    [InlineData(-1, 0)]
    [InlineData(16_777_216, 0)]
    [InlineData(0, -1)]
    public void Constructor_OutOfRange_Throws(int length, int streamId)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Http2FrameHeader(length, Http2FrameType.Data, 0, streamId));
    }

    [Fact]
    public void Write_DestinationTooSmall_Throws()
    {
        Assert.Throws<ArgumentException>(() => new Http2FrameHeader(0, Http2FrameType.Ping, 0, 0).Write(new byte[8]));
    }
}
