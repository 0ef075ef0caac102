using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>
/// Writes frames (RFC 9113 section 6) into an <see cref="IBufferWriter{T}"/> such as a connection's PipeWriter,
/// without allocating. Frames are never padded and never carry priority. The writer does no flow control: pass DATA
/// only as much as the stream's and the connection's send windows allow. Arguments outside the protocol's ranges are
/// programming errors and throw.
/// </summary>
internal static class Http2FrameWriter
{
    /// <summary>GOAWAY debug data is cut to fit the smallest maximum frame size any peer accepts.</summary>
    public const int MaxGoAwayDebugBytes = Http2Limits.DefaultMaxFrameSize - 8;

    /// <summary>Writes only a frame header; the caller writes its <see cref="Http2FrameHeader.Length"/> payload bytes.</summary>
    public static void FrameHeader(IBufferWriter<byte> output, in Http2FrameHeader header)
    {
        header.Write(output.GetSpan(Http2FrameHeader.Size));
        output.Advance(Http2FrameHeader.Size);
    }

    /// <summary>A SETTINGS frame with the given pairs, in order.</summary>
    public static void Settings(IBufferWriter<byte> output, ReadOnlySpan<Http2Setting> settings)
    {
        var length = settings.Length * 6;
        if (length > Http2Limits.DefaultMaxFrameSize)
        {
            ThrowOutOfRange(nameof(settings), settings.Length, "too many settings for one frame");
        }
        var span = output.GetSpan(Http2FrameHeader.Size + length);
        new Http2FrameHeader(length, Http2FrameType.Settings, Http2Flags.None, 0).Write(span);
        var at = Http2FrameHeader.Size;
        foreach (var setting in settings)
        {
            BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)setting.Id);
            BinaryPrimitives.WriteUInt32BigEndian(span[(at + 2)..], setting.Value);
            at += 6;
        }
        output.Advance(at);
    }

    /// <summary>An empty SETTINGS frame with ACK, acknowledging the peer's SETTINGS.</summary>
    public static void SettingsAck(IBufferWriter<byte> output) =>
        FrameHeader(output, new Http2FrameHeader(0, Http2FrameType.Settings, Http2Flags.Ack, 0));

    /// <summary>A PING (or with <paramref name="ack"/> its answer) carrying 8 opaque bytes as a big-endian number.</summary>
    public static void Ping(IBufferWriter<byte> output, bool ack, ulong data)
    {
        var span = output.GetSpan(Http2FrameHeader.Size + 8);
        new Http2FrameHeader(8, Http2FrameType.Ping, ack ? Http2Flags.Ack : Http2Flags.None, 0).Write(span);
        BinaryPrimitives.WriteUInt64BigEndian(span[Http2FrameHeader.Size..], data);
        output.Advance(Http2FrameHeader.Size + 8);
    }

    /// <summary>A PING (or with <paramref name="ack"/> its answer) carrying exactly 8 opaque bytes.</summary>
    public static void Ping(IBufferWriter<byte> output, bool ack, ReadOnlySpan<byte> data)
    {
        if (data.Length != 8)
        {
            ThrowOutOfRange(nameof(data), data.Length, "a PING payload is exactly 8 bytes");
        }
        Ping(output, ack, BinaryPrimitives.ReadUInt64BigEndian(data));
    }

    /// <summary>A WINDOW_UPDATE for a stream, or for the connection with stream 0; increment 1..2^31-1.</summary>
    public static void WindowUpdate(IBufferWriter<byte> output, int streamId, int increment)
    {
        if (increment <= 0)
        {
            ThrowOutOfRange(nameof(increment), increment, "a window increment is 1..2^31-1");
        }
        WriteUInt32Frame(output, Http2FrameType.WindowUpdate, CheckStreamId(streamId, allowZero: true), (uint)increment);
    }

    /// <summary>An RST_STREAM ending one stream with an error code.</summary>
    public static void RstStream(IBufferWriter<byte> output, int streamId, Http2ErrorCode code) =>
        WriteUInt32Frame(output, Http2FrameType.RstStream, CheckStreamId(streamId, allowZero: false), (uint)code);

    /// <summary>
    /// A GOAWAY naming the last stream this side processed (or may still process), the error code, and optional
    /// debug text written as UTF-8 and cut to <see cref="MaxGoAwayDebugBytes"/>.
    /// </summary>
    public static void GoAway(IBufferWriter<byte> output, int lastStreamId, Http2ErrorCode code, ReadOnlySpan<char> debugText = default)
    {
        CheckStreamId(lastStreamId, allowZero: true);
        var debugLength = Encoding.UTF8.GetByteCount(debugText);
        if (debugLength > MaxGoAwayDebugBytes)
        {
            debugText = debugText[..(MaxGoAwayDebugBytes / 3)];
            debugLength = Encoding.UTF8.GetByteCount(debugText);
        }
        var span = output.GetSpan(Http2FrameHeader.Size + 8);
        new Http2FrameHeader(8 + debugLength, Http2FrameType.GoAway, Http2Flags.None, 0).Write(span);
        BinaryPrimitives.WriteUInt32BigEndian(span[Http2FrameHeader.Size..], (uint)lastStreamId);
        BinaryPrimitives.WriteUInt32BigEndian(span[(Http2FrameHeader.Size + 4)..], (uint)code);
        output.Advance(Http2FrameHeader.Size + 8);
        if (debugLength > 0)
        {
            Encoding.UTF8.GetBytes(debugText, output);
        }
    }

    /// <summary>
    /// A field block as one HEADERS frame, or when it is larger than <paramref name="peerMaxFrameSize"/> as HEADERS
    /// followed by CONTINUATION frames, each at most that size, END_HEADERS on the last. END_STREAM, when asked for,
    /// is on the HEADERS frame (CONTINUATION has no such flag). Nothing may be written on the connection between
    /// these frames, so call this under the connection's write lock.
    /// </summary>
    public static void Headers(IBufferWriter<byte> output, int streamId, ReadOnlySpan<byte> fieldBlock, bool endStream, int peerMaxFrameSize)
    {
        CheckStreamId(streamId, allowZero: false);
        CheckFrameSize(peerMaxFrameSize);
        var type = Http2FrameType.Headers;
        var flags = endStream ? Http2Flags.EndStream : Http2Flags.None;
        do
        {
            var n = Math.Min(fieldBlock.Length, peerMaxFrameSize);
            if (n == fieldBlock.Length)
            {
                flags |= Http2Flags.EndHeaders;
            }
            FrameHeader(output, new Http2FrameHeader(n, type, flags, streamId));
            output.Write(fieldBlock[..n]);
            fieldBlock = fieldBlock[n..];
            type = Http2FrameType.Continuation;
            flags = Http2Flags.None;
        }
        while (!fieldBlock.IsEmpty);
    }

    /// <summary>
    /// Body bytes as DATA frames of at most <paramref name="peerMaxFrameSize"/> each, END_STREAM (when asked for) on the
    /// last only. Empty data writes one empty DATA frame (with <paramref name="endStream"/>, the usual way to end a
    /// stream).
    /// </summary>
    public static void Data(IBufferWriter<byte> output, int streamId, ReadOnlySpan<byte> data, bool endStream, int peerMaxFrameSize)
    {
        CheckStreamId(streamId, allowZero: false);
        CheckFrameSize(peerMaxFrameSize);
        do
        {
            var n = Math.Min(data.Length, peerMaxFrameSize);
            var last = n == data.Length;
            FrameHeader(output, new Http2FrameHeader(n, Http2FrameType.Data, last && endStream ? Http2Flags.EndStream : Http2Flags.None, streamId));
            output.Write(data[..n]);
            data = data[n..];
        }
        while (!data.IsEmpty);
    }

    /// <summary>As <see cref="Data(IBufferWriter{byte}, int, ReadOnlySpan{byte}, bool, int)"/>, for bytes in any number of segments.</summary>
    public static void Data(IBufferWriter<byte> output, int streamId, in ReadOnlySequence<byte> data, bool endStream, int peerMaxFrameSize)
    {
        if (data.IsSingleSegment)
        {
            Data(output, streamId, data.FirstSpan, endStream, peerMaxFrameSize);
            return;
        }
        CheckStreamId(streamId, allowZero: false);
        CheckFrameSize(peerMaxFrameSize);
        var rest = data;
        do
        {
            var n = (int)Math.Min(rest.Length, peerMaxFrameSize);
            var last = n == rest.Length;
            FrameHeader(output, new Http2FrameHeader(n, Http2FrameType.Data, last && endStream ? Http2Flags.EndStream : Http2Flags.None, streamId));
            var chunk = rest.Slice(0, n);
            foreach (var segment in chunk)
            {
                output.Write(segment.Span);
            }
            rest = rest.Slice(chunk.End);
        }
        while (!rest.IsEmpty);
    }

    private static void WriteUInt32Frame(IBufferWriter<byte> output, Http2FrameType type, int streamId, uint value)
    {
        var span = output.GetSpan(Http2FrameHeader.Size + 4);
        new Http2FrameHeader(4, type, Http2Flags.None, streamId).Write(span);
        BinaryPrimitives.WriteUInt32BigEndian(span[Http2FrameHeader.Size..], value);
        output.Advance(Http2FrameHeader.Size + 4);
    }

    private static int CheckStreamId(int streamId, bool allowZero)
    {
        if (streamId < 0 || (streamId == 0 && !allowZero))
        {
            ThrowOutOfRange(nameof(streamId), streamId, allowZero ? "a stream id is 0..2^31-1" : "this frame needs a stream id 1..2^31-1");
        }
        return streamId;
    }

    private static void CheckFrameSize(int maxFrameSize)
    {
        if (maxFrameSize <= 0 || maxFrameSize > Http2Limits.MaxFrameSizeLimit)
        {
            ThrowOutOfRange("peerMaxFrameSize", maxFrameSize, "a maximum frame size is 1..16777215");
        }
    }

    [DoesNotReturn]
    private static void ThrowOutOfRange(string name, int value, string rule) =>
        throw new ArgumentOutOfRangeException(name, value, rule);
}
