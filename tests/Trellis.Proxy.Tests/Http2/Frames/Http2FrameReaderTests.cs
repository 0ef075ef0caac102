using System.Buffers;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Frames.FrameTestSupport;

namespace Trellis.Proxy.Tests.Http2.Frames;

/// <summary>The frame reader against RFC 9113 sections 4 and 6: each framing rule with its error code and scope.</summary>
public sealed class Http2FrameReaderTests
{
    private static readonly byte[] Ping = Raw(Http2FrameType.Ping, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8);

    private static void AssertConnectionError(byte[] data, Http2ErrorCode code, string message, int maxFrameSize = Http2Limits.DefaultMaxFrameSize)
    {
        var (error, untouched) = ReadError(data, maxFrameSize);
        Assert.Equal(code, error.Code);
        Assert.True(error.IsConnectionError, $"expected a connection error, got {error}");
        Assert.Equal(0, error.StreamId);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.True(untouched, "a connection error leaves the buffer as it was");
    }

    /// <summary>A stream error consumes the bad frame: the PING after it must still be read.</summary>
    private static void AssertStreamError(byte[] frame, Http2ErrorCode code, int streamId, string message, int maxFrameSize = Http2Limits.DefaultMaxFrameSize)
    {
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(Concat(frame, Ping));
        Assert.Equal(Http2ReadStatus.Error, reader.TryReadFrame(ref buffer, maxFrameSize, out var bad, out var error));
        Assert.Equal(code, error.Code);
        Assert.False(error.IsConnectionError, $"expected a stream error, got {error}");
        Assert.Equal(streamId, error.StreamId);
        Assert.Equal(streamId, bad.StreamId);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);

        Assert.Equal(Http2ReadStatus.Frame, reader.TryReadFrame(ref buffer, maxFrameSize, out var next, out _));
        Assert.Equal(Http2FrameType.Ping, next.Type);
        Assert.True(buffer.IsEmpty);
    }

    [Theory]
    [InlineData((byte)Http2FrameType.Data, "DATA on stream 0")]
    [InlineData((byte)Http2FrameType.Headers, "HEADERS on stream 0")]
    [InlineData((byte)Http2FrameType.Priority, "PRIORITY on stream 0")]
    [InlineData((byte)Http2FrameType.RstStream, "RST_STREAM on stream 0")]
    [InlineData((byte)Http2FrameType.PushPromise, "PUSH_PROMISE on stream 0")]
    public void TryReadFrame_StreamFrameOnStreamZero_ConnectionProtocolError(byte frameType, string message)
    {
        var type = (Http2FrameType)frameType;
        var payload = type switch { Http2FrameType.Priority => new byte[5], Http2FrameType.RstStream or Http2FrameType.PushPromise => new byte[4], _ => new byte[1] };
        AssertConnectionError(Raw(type, Http2Flags.EndHeaders, 0, payload), Http2ErrorCode.ProtocolError, message);
    }

    [Fact]
    public void TryReadFrame_ContinuationOnStreamZero_ConnectionProtocolError()
    {
        AssertConnectionError(Raw(Http2FrameType.Continuation, Http2Flags.EndHeaders, 0, 0x82), Http2ErrorCode.ProtocolError, "CONTINUATION on stream 0");
    }

    [Theory]
    [InlineData((byte)Http2FrameType.Settings, 0, "SETTINGS on stream 1 is not allowed")]
    [InlineData((byte)Http2FrameType.Ping, 8, "PING on stream 1 is not allowed")]
    [InlineData((byte)Http2FrameType.GoAway, 8, "GOAWAY on stream 1 is not allowed")]
    public void TryReadFrame_ConnectionFrameOnStream_ConnectionProtocolError(byte frameType, int length, string message)
    {
        AssertConnectionError(Raw((Http2FrameType)frameType, 0, 1, new byte[length]), Http2ErrorCode.ProtocolError, message);
    }

    [Fact]
    public void TryReadFrame_DataLongerThanMaxFrameSize_StreamFrameSizeErrorAndFrameSkipped()
    {
        AssertStreamError(Raw(Http2FrameType.Data, 0, 5, Filled(101)), Http2ErrorCode.FrameSizeError, 5,
            "DATA on stream 5 has length 101, larger than the maximum frame size 100", maxFrameSize: 100);
    }

    [Theory]
    [InlineData((byte)Http2FrameType.Headers, 1u, "HEADERS on stream 1 has length 101")]
    [InlineData((byte)Http2FrameType.PushPromise, 2u, "PUSH_PROMISE on stream 2 has length 101")]
    [InlineData((byte)Http2FrameType.Settings, 0u, "SETTINGS on stream 0 has length 101")]
    [InlineData((byte)Http2FrameType.GoAway, 0u, "GOAWAY on stream 0 has length 101")]
    [InlineData((byte)Http2FrameType.WindowUpdate, 1u, "WINDOW_UPDATE on stream 1 has length 101")]
    [InlineData((byte)0xfa, 1u, "frame type 0xfa on stream 1 has length 101")]
    public void TryReadFrame_ConnectionStateFrameLongerThanMaxFrameSize_ConnectionFrameSizeError(byte frameType, uint streamId, string message)
    {
        AssertConnectionError(Raw((Http2FrameType)frameType, Http2Flags.EndHeaders, streamId, Filled(101)), Http2ErrorCode.FrameSizeError, message, maxFrameSize: 100);
    }

    [Fact]
    public void TryReadFrame_ContinuationLongerThanMaxFrameSize_ConnectionFrameSizeError()
    {
        var data = Concat(Raw(Http2FrameType.Headers, 0, 1, 0x82), Raw(Http2FrameType.Continuation, Http2Flags.EndHeaders, 1, Filled(101)));
        AssertConnectionError(data, Http2ErrorCode.FrameSizeError, "CONTINUATION on stream 1 has length 101", maxFrameSize: 100);
    }

    [Fact]
    public void TryReadFrame_OversizedDataArrivingInPieces_ErrorAtOnceThenBytesDroppedAndNextFrameRead()
    {
        var big = Raw(Http2FrameType.Data, Http2Flags.EndStream, 3, Pattern(5000));
        var results = Trickle(Concat(big, Ping), chunk: 700, maxFrameSize: 4096);

        Assert.Equal(2, results.Count);
        var error = Assert.IsType<Http2Error>(results[0]);
        Assert.Equal(Http2ErrorCode.FrameSizeError, error.Code);
        Assert.Equal(3, error.StreamId);
        var ping = Assert.IsType<ReadFrame>(results[1]);
        Assert.Equal(Http2FrameType.Ping, ping.Header.Type);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, ping.Payload);
    }

    [Fact]
    public void TryReadFrame_OversizedDataHeaderOnly_ErrorReportedBeforePayloadArrives()
    {
        var reader = new Http2FrameReader();
        var header = RawWithLength(1_000_000, Http2FrameType.Data, 0, 1, []);
        var buffer = new ReadOnlySequence<byte>(header);

        Assert.Equal(Http2ReadStatus.Error, reader.TryReadFrame(ref buffer, 16384, out var frame, out var error));
        Assert.Equal(1, error.StreamId);
        Assert.Equal(1_000_000, frame.Header.Length);
        Assert.True(buffer.IsEmpty);

        var rest = new ReadOnlySequence<byte>(Filled(999_999));
        Assert.Equal(Http2ReadStatus.NeedMoreData, reader.TryReadFrame(ref rest, 16384, out _, out _));
        Assert.True(rest.IsEmpty);
        var tail = new ReadOnlySequence<byte>(Concat([0xAB], Ping));
        Assert.Equal(Http2ReadStatus.Frame, reader.TryReadFrame(ref tail, 16384, out var ping, out _));
        Assert.Equal(Http2FrameType.Ping, ping.Type);
    }

    [Fact]
    public void TryReadFrame_SettingsLengthNotMultipleOfSix_ConnectionFrameSizeError()
    {
        AssertConnectionError(Raw(Http2FrameType.Settings, 0, 0, new byte[7]), Http2ErrorCode.FrameSizeError, "SETTINGS on stream 0 has length 7, not a multiple of 6");
    }

    [Fact]
    public void TryReadFrame_SettingsAckWithPayload_ConnectionFrameSizeError()
    {
        AssertConnectionError(Raw(Http2FrameType.Settings, Http2Flags.Ack, 0, new byte[6]), Http2ErrorCode.FrameSizeError, "SETTINGS ACK on stream 0 has a 6-byte payload");
    }

    [Theory]
    [InlineData(7)]
    [InlineData(9)]
    public void TryReadFrame_PingNotEightBytes_ConnectionFrameSizeError(int length)
    {
        AssertConnectionError(Raw(Http2FrameType.Ping, 0, 0, new byte[length]), Http2ErrorCode.FrameSizeError, $"PING on stream 0 has length {length}");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    public void TryReadFrame_WindowUpdateNotFourBytes_ConnectionFrameSizeError(uint streamId)
    {
        AssertConnectionError(Raw(Http2FrameType.WindowUpdate, 0, streamId, 0, 0, 1), Http2ErrorCode.FrameSizeError, $"WINDOW_UPDATE on stream {streamId} has length 3");
    }

    [Fact]
    public void TryReadFrame_WindowUpdateZeroIncrementOnStream_StreamProtocolError()
    {
        var (error, _) = ReadError(Raw(Http2FrameType.WindowUpdate, 0, 3, UInt32(0)));
        Assert.Equal(Http2ErrorCode.ProtocolError, error.Code);
        Assert.Equal(3, error.StreamId);
        Assert.Equal("WINDOW_UPDATE on stream 3 has a zero increment", error.Message);
        AssertStreamError(Raw(Http2FrameType.WindowUpdate, 0, 3, UInt32(0)), Http2ErrorCode.ProtocolError, 3, "zero increment");
    }

    [Fact]
    public void TryReadFrame_WindowUpdateZeroIncrementWithReservedBitOnConnection_ConnectionProtocolError()
    {
        AssertConnectionError(Raw(Http2FrameType.WindowUpdate, 0, 0, UInt32(0x8000_0000)), Http2ErrorCode.ProtocolError, "WINDOW_UPDATE on stream 0 has a zero increment");
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void TryReadFrame_RstStreamNotFourBytes_ConnectionFrameSizeError(int length)
    {
        AssertConnectionError(Raw(Http2FrameType.RstStream, 0, 1, new byte[length]), Http2ErrorCode.FrameSizeError, $"RST_STREAM on stream 1 has length {length}");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void TryReadFrame_PriorityNotFiveBytes_StreamFrameSizeError(int length)
    {
        AssertStreamError(Raw(Http2FrameType.Priority, 0, 7, new byte[length]), Http2ErrorCode.FrameSizeError, 7, $"PRIORITY on stream 7 has length {length}");
    }

    [Fact]
    public void TryReadFrame_GoAwayShorterThanEight_ConnectionFrameSizeError()
    {
        AssertConnectionError(Raw(Http2FrameType.GoAway, 0, 0, new byte[7]), Http2ErrorCode.FrameSizeError, "GOAWAY on stream 0 has length 7");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(255)]
    public void TryReadFrame_DataPaddingAsLongAsPayload_ConnectionProtocolError(byte padLength)
    {
        // Payload of 4 bytes: pad length byte + 3 more. Padding of 4 or more does not fit.
        AssertConnectionError(Raw(Http2FrameType.Data, Http2Flags.Padded, 1, padLength, 1, 2, 3), Http2ErrorCode.ProtocolError, $"DATA on stream 1 has padding length {padLength}");
    }

    [Fact]
    public void TryReadFrame_PaddedDataWithoutPadLengthByte_ConnectionFrameSizeError()
    {
        AssertConnectionError(Raw(Http2FrameType.Data, Http2Flags.Padded, 1), Http2ErrorCode.FrameSizeError, "DATA on stream 1 has length 0, too short");
    }

    [Fact]
    public void TryReadFrame_HeadersPaddingLongerThanFragmentAfterPriority_ConnectionProtocolError()
    {
        // 1 pad length + 5 priority + 2 fragment bytes: padding of 3 does not fit.
        var frame = Raw(Http2FrameType.Headers, Http2Flags.Padded | Http2Flags.Priority | Http2Flags.EndHeaders, 1, 3, 0, 0, 0, 0, 15, 0x82, 0x84);
        AssertConnectionError(frame, Http2ErrorCode.ProtocolError, "HEADERS on stream 1 has padding length 3");
    }

    [Fact]
    public void TryReadFrame_HeadersWithPriorityFlagShorterThanFive_ConnectionFrameSizeError()
    {
        AssertConnectionError(Raw(Http2FrameType.Headers, Http2Flags.Priority | Http2Flags.EndHeaders, 1, 0, 0, 0), Http2ErrorCode.FrameSizeError, "HEADERS on stream 1 has length 3, too short");
    }

    [Fact]
    public void TryReadFrame_FrameBetweenHeadersAndContinuation_ConnectionProtocolError()
    {
        var data = Concat(Raw(Http2FrameType.Headers, 0, 1, 0x82), Ping);
        AssertConnectionError(data, Http2ErrorCode.ProtocolError, "PING on stream 0 arrived while the field block of stream 1 awaits CONTINUATION");
    }

    [Fact]
    public void TryReadFrame_ContinuationOnOtherStream_ConnectionProtocolError()
    {
        var data = Concat(Raw(Http2FrameType.Headers, 0, 1, 0x82), Raw(Http2FrameType.Continuation, Http2Flags.EndHeaders, 3, 0x84));
        AssertConnectionError(data, Http2ErrorCode.ProtocolError, "CONTINUATION on stream 3 arrived while the field block of stream 1 awaits CONTINUATION");
    }

    [Fact]
    public void TryReadFrame_ContinuationAfterCompleteHeaders_ConnectionProtocolError()
    {
        var data = Concat(Raw(Http2FrameType.Headers, Http2Flags.EndHeaders, 1, 0x82), Raw(Http2FrameType.Continuation, Http2Flags.EndHeaders, 1, 0x84));
        AssertConnectionError(data, Http2ErrorCode.ProtocolError, "CONTINUATION on stream 1 does not follow a HEADERS or PUSH_PROMISE frame without END_HEADERS");
    }

    [Fact]
    public void TryReadFrame_HeadersThenContinuations_FieldBlockInOrderThenOtherFramesAllowed()
    {
        var data = Concat(
            Raw(Http2FrameType.Headers, Http2Flags.EndStream, 1, 1, 2),
            Raw(Http2FrameType.Continuation, 0, 1, 3),
            Raw(Http2FrameType.Continuation, Http2Flags.EndHeaders, 1, 4, 5),
            Ping);

        var frames = ReadAll(data);

        Assert.Equal([Http2FrameType.Headers, Http2FrameType.Continuation, Http2FrameType.Continuation, Http2FrameType.Ping], frames.Select(f => f.Header.Type));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, frames.Take(3).SelectMany(f => f.Payload));
        Assert.True(frames[0].EndStream);
        Assert.Equal([false, false, true, false], frames.Select(f => f.EndHeaders));
    }

    [Fact]
    public void TryReadFrame_PaddedDataAndHeadersWithPriority_PayloadWithoutPaddingOrPriority()
    {
        var data = Concat(
            Raw(Http2FrameType.Data, Http2Flags.Padded | Http2Flags.EndStream, 1, 2, 10, 20, 30, 0, 0),
            Raw(Http2FrameType.Headers, Http2Flags.Padded | Http2Flags.Priority | Http2Flags.EndHeaders, 3, 1, 0x80, 0, 0, 1, 200, 0x82, 0x86, 0),
            Raw(Http2FrameType.Headers, Http2Flags.Priority | Http2Flags.EndHeaders, 5, 0, 0, 0, 3, 15, 0x87),
            Raw(Http2FrameType.Data, Http2Flags.Padded, 1, 3, 0, 0, 0));

        var frames = ReadAll(data);

        Assert.Equal(new byte[] { 10, 20, 30 }, frames[0].Payload);
        Assert.Equal(6, frames[0].Header.Length);
        Assert.True(frames[0].EndStream);
        Assert.Equal(new byte[] { 0x82, 0x86 }, frames[1].Payload);
        Assert.Equal(new byte[] { 0x87 }, frames[2].Payload);
        Assert.Empty(frames[3].Payload);
        Assert.False(frames[3].EndStream);
    }

    [Fact]
    public void TryReadFrame_UnknownFrameTypes_ReturnedForTheCallerToIgnore()
    {
        var data = Concat(Raw((Http2FrameType)0x0a, 0xff, 0, 1, 2, 3), Raw((Http2FrameType)0xee, 0, 9), Ping);

        var frames = ReadAll(data);

        Assert.Equal([(Http2FrameType)0x0a, (Http2FrameType)0xee, Http2FrameType.Ping], frames.Select(f => f.Header.Type));
        Assert.False(frames[0].Header.IsKnownType);
        Assert.Equal(new byte[] { 1, 2, 3 }, frames[0].Payload);
        Assert.Equal(9, frames[1].Header.StreamId);
    }

    [Fact]
    public void TryReadFrame_PushPromise_ReturnedWithPromisedStreamIdAndWithoutPadding()
    {
        var data = Raw(Http2FrameType.PushPromise, Http2Flags.Padded | Http2Flags.EndHeaders, 1, 2, 0, 0, 0, 2, 0x82, 0, 0);

        var frame = Assert.Single(ReadAll(data));

        Assert.Equal(Http2FrameType.PushPromise, frame.Header.Type);
        Assert.Equal(new byte[] { 0, 0, 0, 2, 0x82 }, frame.Payload);
        Assert.True(frame.EndHeaders);
    }

    [Fact]
    public void TryReadFrame_ReservedBitSet_IgnoredInStreamId()
    {
        var frame = Assert.Single(ReadAll(Raw(Http2FrameType.Data, 0, 0x8000_0007, 1)));
        Assert.Equal(7, frame.Header.StreamId);
    }

    [Fact]
    public void TryReadFrame_FlagsOfOtherTypes_NotReportedAsEndStreamOrAck()
    {
        var frames = ReadAll(Concat(
            Raw(Http2FrameType.Settings, Http2Flags.Ack, 0),
            Raw(Http2FrameType.Data, Http2Flags.EndStream, 1),
            Raw(Http2FrameType.RstStream, 0xff, 1, UInt32(8))));

        Assert.Equal([true, false, false], frames.Select(f => f.IsAck));
        Assert.Equal([false, true, false], frames.Select(f => f.EndStream));
        Assert.Equal([false, false, false], frames.Select(f => f.EndHeaders));
    }

    /// <summary>A mix of every frame type, used for the segmentation tests.</summary>
    private static byte[] Conversation() => Concat(
        Raw(Http2FrameType.Settings, 0, 0, 0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0),
        Raw(Http2FrameType.Settings, Http2Flags.Ack, 0),
        Raw(Http2FrameType.WindowUpdate, 0, 0, UInt32(1_000_000)),
        Raw(Http2FrameType.Headers, Http2Flags.Priority, 1, [0, 0, 0, 0, 15, .. Pattern(40)]),
        Raw(Http2FrameType.Continuation, Http2Flags.EndHeaders, 1, Pattern(30)),
        Raw(Http2FrameType.Data, Http2Flags.Padded, 1, [5, .. Pattern(100), 0, 0, 0, 0, 0]),
        Raw(Http2FrameType.Data, Http2Flags.EndStream, 1, Pattern(333)),
        Raw(Http2FrameType.Priority, 0, 3, 0, 0, 0, 1, 7),
        Raw(Http2FrameType.RstStream, 0, 3, UInt32(8)),
        Ping,
        Raw((Http2FrameType)0x0b, 0, 5, 9, 9),
        Raw(Http2FrameType.GoAway, 0, 0, [0, 0, 0, 1, 0, 0, 0, 0, .. "bye"u8.ToArray()]));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(10)]
    [InlineData(64)]
    public void TryReadFrame_FramesAcrossSegments_SameFramesAsContiguous(int segmentSize)
    {
        var data = Conversation();
        var expected = ReadAll(data);

        var actual = ReadAll(Segmented(data, segmentSize, segmentSize + 5, 1));

        Assert.Equal(12, expected.Count);
        AssertSameFrames(expected, actual);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(13)]
    public void TryReadFrame_BytesArrivingInSmallReads_NeedMoreDataUntilEachFrameCompletes(int chunk)
    {
        var data = Conversation();
        var expected = ReadAll(data);

        var actual = Trickle(data, chunk).Cast<ReadFrame>().ToList();

        AssertSameFrames(expected, actual);
    }

    [Fact]
    public void TryReadFrame_EveryProperPrefix_NeedMoreDataAndBufferUntouched()
    {
        var frame = Raw(Http2FrameType.Data, Http2Flags.Padded, 1, [5, .. Pattern(100), 0, 0, 0, 0, 0]);
        for (var n = 0; n < frame.Length; n++)
        {
            var reader = new Http2FrameReader();
            var buffer = Segmented(frame.AsSpan(0, n).ToArray(), 4);
            Assert.Equal(Http2ReadStatus.NeedMoreData, reader.TryReadFrame(ref buffer, 16384, out _, out _));
            Assert.Equal(n, buffer.Length);
        }
    }

    private static void AssertSameFrames(List<ReadFrame> expected, List<ReadFrame> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Header, actual[i].Header);
            Assert.Equal(expected[i].Payload, actual[i].Payload);
        }
    }
}
