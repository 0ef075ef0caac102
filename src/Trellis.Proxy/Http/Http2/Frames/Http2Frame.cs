using System.Buffers;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>What <see cref="Http2FrameReader.TryReadFrame"/> produced.</summary>
internal enum Http2ReadStatus
{
    /// <summary>No complete frame yet: read more bytes and call again with everything not consumed.</summary>
    NeedMoreData,

    /// <summary>A valid frame was read and consumed from the buffer.</summary>
    Frame,

    /// <summary>The peer broke a framing rule; see the <see cref="Http2Error"/>.</summary>
    Error,
}

/// <summary>
/// A protocol violation found in the peer's frames. <see cref="StreamId"/> 0 means a connection error (RFC 9113
/// section 5.4.1: send GOAWAY with <see cref="Code"/> and close); any other value is a stream error on that stream
/// (section 5.4.2: send RST_STREAM with <see cref="Code"/> and carry on). <see cref="Message"/> names the frame type,
/// the stream and the rule, for logs and GOAWAY debug data.
/// </summary>
internal readonly record struct Http2Error(Http2ErrorCode Code, int StreamId, string Message)
{
    /// <summary>Whether the whole connection must end (GOAWAY) rather than one stream (RST_STREAM).</summary>
    public bool IsConnectionError => StreamId == 0;

    public static Http2Error Connection(Http2ErrorCode code, string message) => new(code, 0, message);

    public static Http2Error Stream(Http2ErrorCode code, int streamId, string message) => new(code, streamId, message);

    public override string ToString() =>
        $"{Http2Names.Of(Code)} ({(IsConnectionError ? "connection" : $"stream {StreamId}")}): {Message}";
}

/// <summary>
/// One validated frame. <see cref="Payload"/> is a slice of the buffer passed to the reader, so it is valid only until
/// that buffer is released (the pipe advanced). It holds what the frame type carries with the framing removed: for
/// DATA, HEADERS and PUSH_PROMISE without the pad length byte and the padding, for HEADERS with PRIORITY also without
/// the 5 priority bytes. PUSH_PROMISE keeps its 4-byte promised stream id at the start. Flow control counts the whole
/// <see cref="Http2FrameHeader.Length"/> of a DATA frame (padding included), not <see cref="Payload"/>'s length.
/// </summary>
internal readonly struct Http2Frame
{
    public Http2Frame(Http2FrameHeader header, ReadOnlySequence<byte> payload)
    {
        Header = header;
        Payload = payload;
    }

    public Http2FrameHeader Header { get; }

    public ReadOnlySequence<byte> Payload { get; }

    public Http2FrameType Type => Header.Type;

    public byte Flags => Header.Flags;

    public int StreamId => Header.StreamId;

    /// <summary>DATA or HEADERS with END_STREAM: the peer's last frame on the stream.</summary>
    public bool EndStream =>
        (Header.Type == Http2FrameType.Data || Header.Type == Http2FrameType.Headers) && Header.HasFlag(Http2Flags.EndStream);

    /// <summary>HEADERS, PUSH_PROMISE or CONTINUATION with END_HEADERS: the field block is complete.</summary>
    public bool EndHeaders =>
        Header.Type is Http2FrameType.Headers or Http2FrameType.PushPromise or Http2FrameType.Continuation
        && Header.HasFlag(Http2Flags.EndHeaders);

    /// <summary>SETTINGS or PING with ACK.</summary>
    public bool IsAck =>
        (Header.Type == Http2FrameType.Settings || Header.Type == Http2FrameType.Ping) && Header.HasFlag(Http2Flags.Ack);

    public override string ToString() => Header.ToString();
}
