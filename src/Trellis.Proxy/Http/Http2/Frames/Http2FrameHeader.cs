using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>
/// The 9-byte frame header of RFC 9113 section 4.1: a 24-bit payload length, the type, the flags, one reserved bit
/// and a 31-bit stream identifier. The reserved bit is ignored on read and written as zero.
/// </summary>
internal readonly struct Http2FrameHeader : IEquatable<Http2FrameHeader>
{
    /// <summary>The header's size on the wire.</summary>
    public const int Size = 9;

    private const uint StreamIdMask = 0x7FFF_FFFF;

    public Http2FrameHeader(int length, Http2FrameType type, byte flags, int streamId)
    {
        if ((uint)length > Http2Limits.MaxFrameSizeLimit)
        {
            ThrowOutOfRange(nameof(length), length, "a frame payload length is 0..16777215 (24 bits)");
        }
        if (streamId < 0)
        {
            ThrowOutOfRange(nameof(streamId), streamId, "a stream identifier is 0..2^31-1");
        }
        Length = length;
        Type = type;
        Flags = flags;
        StreamId = streamId;
    }

    /// <summary>The payload length (the frame's size less the 9 header bytes), padding included.</summary>
    public int Length { get; }

    /// <summary>The frame type; a value outside <see cref="Http2FrameType"/>'s names is an extension frame.</summary>
    public Http2FrameType Type { get; }

    /// <summary>The raw flags byte; see <see cref="Http2Flags"/>.</summary>
    public byte Flags { get; }

    /// <summary>The stream identifier, 0 for frames about the connection.</summary>
    public int StreamId { get; }

    /// <summary>Whether the type is one RFC 9113 defines (DATA..CONTINUATION).</summary>
    public bool IsKnownType => Type <= Http2FrameType.Continuation;

    public bool HasFlag(byte flag) => (Flags & flag) == flag;

    /// <summary>Reads a header from the first 9 bytes of <paramref name="source"/>; false when there are fewer.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out Http2FrameHeader header)
    {
        if (source.Length < Size)
        {
            header = default;
            return false;
        }
        var length = (source[0] << 16) | (source[1] << 8) | source[2];
        var streamId = (int)(BinaryPrimitives.ReadUInt32BigEndian(source[5..]) & StreamIdMask);
        header = new Http2FrameHeader(length, (Http2FrameType)source[3], source[4], streamId);
        return true;
    }

    /// <summary>Writes the 9 header bytes to the start of <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            ThrowTooSmall(destination.Length, nameof(destination));
        }
        destination[0] = (byte)(Length >> 16);
        destination[1] = (byte)(Length >> 8);
        destination[2] = (byte)Length;
        destination[3] = (byte)Type;
        destination[4] = Flags;
        BinaryPrimitives.WriteUInt32BigEndian(destination[5..], (uint)StreamId & StreamIdMask);
    }

    public bool Equals(Http2FrameHeader other) =>
        Length == other.Length && Type == other.Type && Flags == other.Flags && StreamId == other.StreamId;

    public override bool Equals(object? obj) => obj is Http2FrameHeader other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Length, Type, Flags, StreamId);

    public static bool operator ==(Http2FrameHeader left, Http2FrameHeader right) => left.Equals(right);

    public static bool operator !=(Http2FrameHeader left, Http2FrameHeader right) => !left.Equals(right);

    public override string ToString() =>
        $"{Http2Names.Of(Type)} length={Length} flags=0x{Flags:x2} stream={StreamId}";

    [DoesNotReturn]
    private static void ThrowOutOfRange(string name, int value, string rule) =>
        throw new ArgumentOutOfRangeException(name, value, rule);

    [DoesNotReturn]
    private static void ThrowTooSmall(int length, string paramName) =>
        throw new ArgumentException($"a frame header needs {Size} bytes; the destination has {length}", paramName);
}
