using System.Buffers;
using System.Text;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Frames.FrameTestSupport;

namespace Trellis.Proxy.Tests.Http2.Frames;

/// <summary>What the writer produces, read back through the reader and the payload readers.</summary>
public sealed class Http2FrameWriterTests
{
    private static (ArrayBufferWriter<byte> Output, Func<List<ReadFrame>> Read) Output(int maxFrameSize = Http2Limits.DefaultMaxFrameSize)
    {
        var output = new ArrayBufferWriter<byte>();
        return (output, () => ReadAll(output.WrittenMemory.ToArray(), maxFrameSize));
    }

    /// <summary>Reads the single frame written and hands it to <paramref name="check"/> while its payload is valid.</summary>
    private static void ReadBack(ArrayBufferWriter<byte> output, Action<Http2Frame> check)
    {
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(output.WrittenMemory);
        Assert.Equal(Http2ReadStatus.Frame, reader.TryReadFrame(ref buffer, Http2Limits.DefaultMaxFrameSize, out var frame, out var error));
        check(frame);
        Assert.True(buffer.IsEmpty, "exactly one frame was written");
    }

    [Fact]
    public void Settings_Pairs_RoundTripInOrderOnStreamZero()
    {
        var (output, _) = Output();
        Http2FrameWriter.Settings(output, [new(Http2SettingId.MaxConcurrentStreams, 100), new(Http2SettingId.InitialWindowSize, 1 << 20), new(Http2SettingId.MaxFrameSize, 32768), new((Http2SettingId)0x99, 7)]);

        ReadBack(output, frame =>
        {
            Assert.Equal(new Http2FrameHeader(24, Http2FrameType.Settings, 0, 0), frame.Header);
            Assert.False(frame.IsAck);
            var settings = Http2PeerSettings.Default;
            Assert.True(Http2SettingsReader.TryApply(frame.Payload, ref settings, out var delta, out _));
            Assert.Equal(100u, settings.MaxConcurrentStreams);
            Assert.Equal(1 << 20, settings.InitialWindowSize);
            Assert.Equal(32768, settings.MaxFrameSize);
            Assert.Equal((1 << 20) - 65535, delta);
        });
    }

    [Fact]
    public void SettingsAck_Written_EmptySettingsWithAck()
    {
        var (output, read) = Output();
        Http2FrameWriter.SettingsAck(output);

        var frame = Assert.Single(read());
        Assert.Equal(new Http2FrameHeader(0, Http2FrameType.Settings, Http2Flags.Ack, 0), frame.Header);
        Assert.True(frame.IsAck);
        Assert.Equal(9, output.WrittenCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Ping_Data_RoundTripsWithAckFlag(bool ack)
    {
        var (output, _) = Output();
        Http2FrameWriter.Ping(output, ack, 0x0102_0304_0506_0708UL);
        Http2FrameWriter.Ping(output, ack, [9, 8, 7, 6, 5, 4, 3, 2]);

        var reader = new Http2FrameReader();
        var buffer = Segmented(output.WrittenMemory.ToArray(), 3);
        Assert.Equal(Http2ReadStatus.Frame, reader.TryReadFrame(ref buffer, 16384, out var first, out _));
        Assert.Equal(ack, first.IsAck);
        Assert.Equal(0x0102_0304_0506_0708UL, Http2Payloads.ReadPingData(first));
        Assert.Equal(Http2ReadStatus.Frame, reader.TryReadFrame(ref buffer, 16384, out var second, out _));
        Assert.Equal(0x0908_0706_0504_0302UL, Http2Payloads.ReadPingData(second));
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(5, 65535)]
    [InlineData(0x7FFF_FFFF, 0x7FFF_FFFF)]
    public void WindowUpdate_StreamAndIncrement_RoundTrip(int streamId, int increment)
    {
        var (output, _) = Output();
        Http2FrameWriter.WindowUpdate(output, streamId, increment);

        ReadBack(output, frame =>
        {
            Assert.Equal(new Http2FrameHeader(4, Http2FrameType.WindowUpdate, 0, streamId), frame.Header);
            Assert.Equal(increment, Http2Payloads.ReadWindowUpdateIncrement(frame));
        });
    }

    [Fact]
    public void WindowUpdate_ZeroIncrement_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Http2FrameWriter.WindowUpdate(new ArrayBufferWriter<byte>(), 1, 0));
    }

    [Theory]
    [InlineData((uint)Http2ErrorCode.Cancel)]
    [InlineData((uint)Http2ErrorCode.Http11Required)]
    [InlineData(0xdeadu)]
    public void RstStream_Code_RoundTrips(uint value)
    {
        var code = (Http2ErrorCode)value;
        var (output, _) = Output();
        Http2FrameWriter.RstStream(output, 9, code);

        ReadBack(output, frame =>
        {
            Assert.Equal(new Http2FrameHeader(4, Http2FrameType.RstStream, 0, 9), frame.Header);
            Assert.Equal(code, Http2Payloads.ReadRstStreamCode(frame));
        });
    }

    [Fact]
    public void RstStream_StreamZero_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Http2FrameWriter.RstStream(new ArrayBufferWriter<byte>(), 0, Http2ErrorCode.Cancel));
    }

    [Fact]
    public void GoAway_DebugText_RoundTripsAsUtf8()
    {
        var (output, _) = Output();
        Http2FrameWriter.GoAway(output, 41, Http2ErrorCode.EnhanceYourCalm, "draining: ünïcode ✓");

        ReadBack(output, frame =>
        {
            Assert.Equal(Http2FrameType.GoAway, frame.Type);
            Assert.Equal(0, frame.StreamId);
            var goAway = Http2Payloads.ReadGoAway(frame);
            Assert.Equal(41, goAway.LastStreamId);
            Assert.Equal(Http2ErrorCode.EnhanceYourCalm, goAway.Code);
            Assert.Equal("draining: ünïcode ✓", Encoding.UTF8.GetString(goAway.DebugData.ToArray()));
        });
    }

    [Fact]
    public void GoAway_NoDebugText_EightBytePayload()
    {
        var (output, _) = Output();
        Http2FrameWriter.GoAway(output, 0, Http2ErrorCode.NoError);

        ReadBack(output, frame =>
        {
            Assert.Equal(8, frame.Header.Length);
            var goAway = Http2Payloads.ReadGoAway(frame);
            Assert.Equal((0, Http2ErrorCode.NoError, 0L), (goAway.LastStreamId, goAway.Code, goAway.DebugData.Length));
        });
    }

    [Fact]
    public void GoAway_HugeDebugText_CutToFitSmallestMaxFrameSize()
    {
        var (output, read) = Output();
        Http2FrameWriter.GoAway(output, 1, Http2ErrorCode.InternalError, new string('x', 100_000));

        var frame = Assert.Single(read());
        Assert.InRange(frame.Header.Length, 8 + 1000, Http2Limits.DefaultMaxFrameSize);
        Assert.All(frame.Payload.Skip(8), b => Assert.Equal((byte)'x', b));
    }

    [Fact]
    public void Headers_BlockWithinMaxFrameSize_OneHeadersFrameWithEndHeaders()
    {
        var (output, read) = Output();
        Http2FrameWriter.Headers(output, 3, Pattern(100), endStream: true, peerMaxFrameSize: 16384);

        var frame = Assert.Single(read());
        Assert.Equal(new Http2FrameHeader(100, Http2FrameType.Headers, Http2Flags.EndHeaders | Http2Flags.EndStream, 3), frame.Header);
        Assert.Equal(Pattern(100), frame.Payload);
    }

    [Theory]
    [InlineData(1, 10, false)]
    [InlineData(7, 100, true)]
    [InlineData(50, 100, false)]
    [InlineData(33, 99, true)]
    [InlineData(16384, 40000, true)]
    public void Headers_BlockLargerThanMaxFrameSize_ContinuationsReassembleToSameBlock(int maxFrameSize, int blockSize, bool endStream)
    {
        var (output, read) = Output(maxFrameSize);
        var block = Pattern(blockSize);
        Http2FrameWriter.Headers(output, 5, block, endStream, maxFrameSize);

        var frames = read();

        Assert.Equal((blockSize + maxFrameSize - 1) / maxFrameSize, frames.Count);
        Assert.Equal(Http2FrameType.Headers, frames[0].Header.Type);
        Assert.All(frames.Skip(1), f => Assert.Equal(Http2FrameType.Continuation, f.Header.Type));
        Assert.All(frames, f => Assert.InRange(f.Header.Length, 1, maxFrameSize));
        Assert.All(frames, f => Assert.Equal(5, f.Header.StreamId));
        Assert.Equal(frames.Select((_, i) => i == frames.Count - 1), frames.Select(f => f.EndHeaders));
        Assert.Equal(endStream, frames[0].EndStream);
        Assert.All(frames.Skip(1), f => Assert.Equal(0, f.Header.Flags & ~Http2Flags.EndHeaders));
        Assert.Equal(block, frames.SelectMany(f => f.Payload));
    }

    [Fact]
    public void Headers_EmptyBlock_OneEmptyHeadersFrame()
    {
        var (output, read) = Output();
        Http2FrameWriter.Headers(output, 1, [], endStream: false, peerMaxFrameSize: 16384);

        var frame = Assert.Single(read());
        Assert.Equal(new Http2FrameHeader(0, Http2FrameType.Headers, Http2Flags.EndHeaders, 1), frame.Header);
    }

    [Theory]
    [InlineData(40000, 16384, 3)]
    [InlineData(16384, 16384, 1)]
    [InlineData(16385, 16384, 2)]
    [InlineData(10, 3, 4)]
    public void Data_Span_SplitIntoMaxSizeFramesEndStreamOnLast(int size, int maxFrameSize, int expectedFrames)
    {
        var (output, read) = Output(maxFrameSize);
        var body = Pattern(size);
        Http2FrameWriter.Data(output, 7, body, endStream: true, maxFrameSize);

        var frames = read();

        Assert.Equal(expectedFrames, frames.Count);
        Assert.All(frames, f => Assert.Equal(Http2FrameType.Data, f.Header.Type));
        Assert.All(frames.SkipLast(1), f => Assert.Equal(maxFrameSize, f.Header.Length));
        Assert.Equal(frames.Select((_, i) => i == frames.Count - 1), frames.Select(f => f.EndStream));
        Assert.Equal(body, frames.SelectMany(f => f.Payload));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    public void Data_MultiSegmentSequence_SameFramesAsFromSpan(int segmentSize)
    {
        var body = Pattern(40_000);
        var (fromSpan, _) = Output();
        Http2FrameWriter.Data(fromSpan, 11, body, endStream: false, 16384);
        var (fromSequence, read) = Output();

        Http2FrameWriter.Data(fromSequence, 11, Segmented(body, segmentSize, segmentSize * 3), endStream: false, 16384);

        Assert.Equal(fromSpan.WrittenMemory.ToArray(), fromSequence.WrittenMemory.ToArray());
        Assert.All(read(), f => Assert.False(f.EndStream));
    }

    [Fact]
    public void Data_EmptyWithEndStream_OneEmptyFrameEndingTheStream()
    {
        var (output, read) = Output();
        Http2FrameWriter.Data(output, 1, ReadOnlySequence<byte>.Empty, endStream: true, 16384);

        var frame = Assert.Single(read());
        Assert.Equal(new Http2FrameHeader(0, Http2FrameType.Data, Http2Flags.EndStream, 1), frame.Header);
    }

    [Fact]
    public void FrameHeader_ThenPayloadByCaller_ReadsAsOneFrame()
    {
        var (output, read) = Output();
        Http2FrameWriter.FrameHeader(output, new Http2FrameHeader(3, Http2FrameType.Data, Http2Flags.EndStream, 1));
        output.Write<byte>([1, 2, 3]);

        var frame = Assert.Single(read());
        Assert.Equal(new byte[] { 1, 2, 3 }, frame.Payload);
        Assert.True(frame.EndStream);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(16_777_216)]
    public void Data_MaxFrameSizeOutOfRange_Throws(int maxFrameSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Http2FrameWriter.Data(new ArrayBufferWriter<byte>(), 1, [1], true, maxFrameSize));
    }
}
