using System.Buffers;
using System.Text;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Frames.FrameTestSupport;

namespace Trellis.Proxy.Tests.Http2.Frames;

public sealed class Http2PrefaceTests
{
    [Fact]
    public void ClientPreface_IsTheRfcString()
    {
        Assert.Equal("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Encoding.ASCII.GetString(Http2Preface.ClientPreface));
        Assert.Equal(Http2Preface.Length, Http2Preface.ClientPreface.Length);
    }

    [Fact]
    public void Check_EveryProperPrefix_NeedMoreData()
    {
        for (var n = 0; n < Http2Preface.Length; n++)
        {
            Assert.Equal(Http2PrefaceStatus.NeedMoreData, Http2Preface.Check(Http2Preface.ClientPreface[..n]));
        }
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\n")]
    [InlineData("PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n")]
    [InlineData("X")]
    public void Check_OtherBytes_Mismatch(string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        Assert.Equal(Http2PrefaceStatus.Mismatch, Http2Preface.Check(bytes));
        Assert.Equal(Http2PrefaceStatus.Mismatch, Http2Preface.Check(Segmented(bytes, 1)));
    }

    [Fact]
    public void TryConsume_PrefaceAcrossSegmentsThenFrame_AdvancesPastPrefaceOnly()
    {
        var data = Concat(Http2Preface.ClientPreface.ToArray(), Raw(Http2FrameType.Settings, 0, 0));
        var buffer = Segmented(data, 5);

        Assert.Equal(Http2PrefaceStatus.Matched, Http2Preface.TryConsume(ref buffer));

        Assert.Equal(9, buffer.Length);
        var frame = Assert.Single(ReadAll(buffer));
        Assert.Equal(Http2FrameType.Settings, frame.Header.Type);
    }

    [Fact]
    public void TryConsume_Incomplete_BufferUnchanged()
    {
        var buffer = new ReadOnlySequence<byte>(Http2Preface.ClientPreface[..10].ToArray());
        Assert.Equal(Http2PrefaceStatus.NeedMoreData, Http2Preface.TryConsume(ref buffer));
        Assert.Equal(10, buffer.Length);
    }
}
