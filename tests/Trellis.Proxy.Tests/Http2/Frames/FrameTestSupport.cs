using System.Buffers;
using System.Buffers.Binary;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Frames;

/// <summary>One segment of a hand-built multi-segment sequence.</summary>
internal sealed class TestSegment : ReadOnlySequenceSegment<byte>
{
    public TestSegment(ReadOnlyMemory<byte> memory) => Memory = memory;

    public TestSegment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new TestSegment(memory) { RunningIndex = RunningIndex + Memory.Length };
        Next = next;
        return next;
    }
}

/// <summary>A frame as the reader returned it, with its payload copied out of the buffer.</summary>
internal sealed record ReadFrame(Http2FrameHeader Header, byte[] Payload, bool EndStream, bool EndHeaders, bool IsAck);

internal static class FrameTestSupport
{
    /// <summary>The bytes cut into segments of the given sizes (cycled), each its own array, so no span crosses them.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] data, params int[] sizes)
    {
        if (data.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }
        TestSegment? first = null;
        TestSegment? last = null;
        var at = 0;
        for (var i = 0; at < data.Length; i++)
        {
            var n = Math.Min(sizes[i % sizes.Length], data.Length - at);
            var copy = data.AsMemory(at, n).ToArray();
            last = last is null ? first = new TestSegment(copy) : last.Append(copy);
            at += n;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    /// <summary>A raw frame: header fields as given (reserved bit included in <paramref name="rawStreamId"/>) and payload.</summary>
    public static byte[] Raw(Http2FrameType type, byte flags, uint rawStreamId, params byte[] payload) =>
        RawWithLength(payload.Length, type, flags, rawStreamId, payload);

    /// <summary>A raw frame whose length field may differ from the payload given (for truncated or oversized frames).</summary>
    public static byte[] RawWithLength(int length, Http2FrameType type, byte flags, uint rawStreamId, byte[] payload)
    {
        var bytes = new byte[9 + payload.Length];
        bytes[0] = (byte)(length >> 16);
        bytes[1] = (byte)(length >> 8);
        bytes[2] = (byte)length;
        bytes[3] = (byte)type;
        bytes[4] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(5), rawStreamId);
        payload.CopyTo(bytes, 9);
        return bytes;
    }

    public static byte[] UInt32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    public static byte[] Filled(int length, byte value = 0xAB) => Enumerable.Repeat(value, length).ToArray();

    public static byte[] Pattern(int length) => Enumerable.Range(0, length).Select(i => (byte)(i * 7 + 3)).ToArray();

    public static ReadFrame Copy(in Http2Frame frame) =>
        new(frame.Header, frame.Payload.ToArray(), frame.EndStream, frame.EndHeaders, frame.IsAck);

    /// <summary>Reads every frame in <paramref name="buffer"/>; fails on an error or on leftover bytes.</summary>
    public static List<ReadFrame> ReadAll(ReadOnlySequence<byte> buffer, int maxFrameSize = Http2Limits.DefaultMaxFrameSize)
    {
        var reader = new Http2FrameReader();
        var frames = new List<ReadFrame>();
        while (true)
        {
            var status = reader.TryReadFrame(ref buffer, maxFrameSize, out var frame, out var error);
            if (status == Http2ReadStatus.Error)
            {
                Assert.Fail($"unexpected error: {error}");
            }
            if (status == Http2ReadStatus.NeedMoreData)
            {
                Assert.True(buffer.IsEmpty, $"{buffer.Length} bytes left that are not a whole frame");
                return frames;
            }
            frames.Add(Copy(frame));
        }
    }

    public static List<ReadFrame> ReadAll(byte[] data, int maxFrameSize = Http2Limits.DefaultMaxFrameSize) =>
        ReadAll(new ReadOnlySequence<byte>(data), maxFrameSize);

    /// <summary>Reads frames from <paramref name="data"/> until the error that must come; returns it and whether the
    /// erroneous call left the buffer as it was.</summary>
    public static (Http2Error Error, bool BufferUntouched) ReadError(byte[] data, int maxFrameSize = Http2Limits.DefaultMaxFrameSize)
    {
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(data);
        Http2ReadStatus status;
        Http2Error error;
        long before;
        do
        {
            before = buffer.Length;
            status = reader.TryReadFrame(ref buffer, maxFrameSize, out _, out error);
        }
        while (status == Http2ReadStatus.Frame);
        Assert.Equal(Http2ReadStatus.Error, status);
        return (error, buffer.Length == before);
    }

    /// <summary>
    /// Feeds <paramref name="data"/> to one reader the way a socket might: <paramref name="chunk"/> bytes at a time, each
    /// read appended as a new segment after what the reader left unconsumed. Returns frames and errors in order.
    /// </summary>
    public static List<object> Trickle(byte[] data, int chunk, int maxFrameSize = Http2Limits.DefaultMaxFrameSize)
    {
        var reader = new Http2FrameReader();
        var results = new List<object>();
        var pending = Array.Empty<byte>();
        for (var at = 0; at < data.Length; at += chunk)
        {
            var next = data.AsSpan(at, Math.Min(chunk, data.Length - at)).ToArray();
            var buffer = pending.Length == 0 ? Segmented(next, next.Length) : Segmented([.. pending, .. next], pending.Length, next.Length);
            while (true)
            {
                var status = reader.TryReadFrame(ref buffer, maxFrameSize, out var frame, out var error);
                if (status == Http2ReadStatus.NeedMoreData)
                {
                    break;
                }
                results.Add(status == Http2ReadStatus.Frame ? Copy(frame) : error);
                if (status == Http2ReadStatus.Error && error.IsConnectionError)
                {
                    return results;
                }
            }
            pending = buffer.ToArray();
        }
        Assert.Empty(pending);
        return results;
    }
}
