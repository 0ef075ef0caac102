using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>The fields of a GOAWAY frame (RFC 9113 section 6.8).</summary>
internal readonly struct Http2GoAway
{
    public Http2GoAway(int lastStreamId, Http2ErrorCode code, ReadOnlySequence<byte> debugData)
    {
        LastStreamId = lastStreamId;
        Code = code;
        DebugData = debugData;
    }

    /// <summary>The highest stream the sender may have processed; streams above it may be retried elsewhere.</summary>
    public int LastStreamId { get; }

    public Http2ErrorCode Code { get; }

    /// <summary>Opaque diagnostic bytes (often UTF-8 text); a slice of the frame's payload.</summary>
    public ReadOnlySequence<byte> DebugData { get; }
}

/// <summary>
/// Readers for the fixed payloads of frames that <see cref="Http2FrameReader"/> returned (and so already checked for
/// length): they assume the frame type matches and read any number of segments without allocating.
/// </summary>
internal static class Http2Payloads
{
    /// <summary>The flow-control window increment of a WINDOW_UPDATE frame (1..2^31-1; reserved bit ignored).</summary>
    public static int ReadWindowUpdateIncrement(in Http2Frame frame)
    {
        Debug.Assert(frame.Type == Http2FrameType.WindowUpdate);
        return ReadUInt31(frame.Payload);
    }

    /// <summary>The error code of an RST_STREAM frame (any value; unknown codes are kept as numbers).</summary>
    public static Http2ErrorCode ReadRstStreamCode(in Http2Frame frame)
    {
        Debug.Assert(frame.Type == Http2FrameType.RstStream);
        return (Http2ErrorCode)ReadUInt32(frame.Payload);
    }

    /// <summary>The last stream id, error code and debug data of a GOAWAY frame.</summary>
    public static Http2GoAway ReadGoAway(in Http2Frame frame)
    {
        Debug.Assert(frame.Type == Http2FrameType.GoAway);
        var payload = frame.Payload;
        var lastStreamId = ReadUInt31(payload);
        var code = (Http2ErrorCode)ReadUInt32(payload.Slice(4));
        return new Http2GoAway(lastStreamId, code, payload.Slice(8));
    }

    /// <summary>The 8 opaque bytes of a PING frame as one big-endian number, to echo with
    /// <see cref="Http2FrameWriter.Ping(IBufferWriter{byte}, bool, ulong)"/>.</summary>
    public static ulong ReadPingData(in Http2Frame frame)
    {
        Debug.Assert(frame.Type == Http2FrameType.Ping);
        Span<byte> bytes = stackalloc byte[8];
        Copy(frame.Payload, bytes);
        return BinaryPrimitives.ReadUInt64BigEndian(bytes);
    }

    /// <summary>A 31-bit big-endian value with the reserved high bit cleared (stream ids, window increments).</summary>
    internal static int ReadUInt31(in ReadOnlySequence<byte> data) => (int)(ReadUInt32(data) & 0x7FFF_FFFF);

    internal static uint ReadUInt32(in ReadOnlySequence<byte> data)
    {
        Span<byte> bytes = stackalloc byte[4];
        Copy(data, bytes);
        return BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    private static void Copy(in ReadOnlySequence<byte> data, Span<byte> destination)
    {
        var first = data.FirstSpan;
        if (first.Length >= destination.Length)
        {
            first[..destination.Length].CopyTo(destination);
        }
        else
        {
            data.Slice(0, destination.Length).CopyTo(destination);
        }
    }
}
