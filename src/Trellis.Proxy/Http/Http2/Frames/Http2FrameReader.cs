using System.Buffers;
using System.Buffers.Binary;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>
/// Cuts frames out of a connection's inbound bytes and checks every framing rule of RFC 9113 sections 4 and 6 that
/// needs no stream state. One instance per connection (a mutable struct: keep it in a field and call it there, never
/// on a copy). It remembers two things between calls: the rest of a frame it rejected with a stream error (dropped as
/// it arrives, so the connection can go on), and the stream whose field block awaits CONTINUATION (section 6.10:
/// any other frame before END_HEADERS is a connection error).
/// <para>
/// Left to the caller: stream states (section 5.1: e.g. DATA on an idle stream), SETTINGS values
/// (<see cref="Http2SettingsReader"/>), flow control (<see cref="Http2FlowWindow"/>; count a DATA frame's whole
/// <see cref="Http2FrameHeader.Length"/>, also of a DATA frame rejected as too large), the size of a reassembled
/// field block, and PUSH_PROMISE: it is returned like any frame, but a server must treat receiving one as a
/// connection error of type PROTOCOL_ERROR (section 8.4), and so must a client that sent SETTINGS_ENABLE_PUSH 0.
/// Frames of unknown types are returned so the caller can ignore them (section 4.1).
/// </para>
/// </summary>
internal struct Http2FrameReader
{
    private long _discard;
    private int _fieldBlockStreamId;

    /// <summary>The stream whose HEADERS (or PUSH_PROMISE) came without END_HEADERS, else 0.</summary>
    public readonly int AwaitingContinuationOn => _fieldBlockStreamId;

    /// <summary>
    /// Reads the next frame from <paramref name="buffer"/>.
    /// <list type="bullet">
    /// <item><see cref="Http2ReadStatus.Frame"/>: <paramref name="frame"/> is valid and <paramref name="buffer"/> starts
    /// after it.</item>
    /// <item><see cref="Http2ReadStatus.NeedMoreData"/>: nothing more can be read; <paramref name="buffer"/> may have
    /// moved past bytes of a rejected frame. Call again with more bytes appended.</item>
    /// <item><see cref="Http2ReadStatus.Error"/>: see <paramref name="error"/>. For a stream error the offending frame is
    /// consumed (or will be dropped as it arrives) and <paramref name="frame"/> carries its header with an empty
    /// payload; reading may continue. For a connection error <paramref name="buffer"/> is not advanced past the
    /// offending frame, and the connection must end (GOAWAY with the error's code, then close).</item>
    /// </list>
    /// </summary>
    /// <param name="maxFrameSize">The SETTINGS_MAX_FRAME_SIZE this endpoint advertised (16384 unless changed).</param>
    public Http2ReadStatus TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrameSize, out Http2Frame frame, out Http2Error error)
    {
        frame = default;
        error = default;
        if (_discard > 0)
        {
            var drop = Math.Min(_discard, buffer.Length);
            buffer = buffer.Slice(drop);
            _discard -= drop;
            if (_discard > 0)
            {
                return Http2ReadStatus.NeedMoreData;
            }
        }

        if (!TryPeekHeader(buffer, out var header))
        {
            return Http2ReadStatus.NeedMoreData;
        }

        if (!CheckHeader(header, maxFrameSize, out error))
        {
            if (!error.IsConnectionError)
            {
                frame = new Http2Frame(header, default);
                var total = Http2FrameHeader.Size + (long)header.Length;
                var available = Math.Min(total, buffer.Length);
                buffer = buffer.Slice(available);
                _discard = total - available;
            }
            return Http2ReadStatus.Error;
        }

        var frameLength = Http2FrameHeader.Size + (long)header.Length;
        if (buffer.Length < frameLength)
        {
            return Http2ReadStatus.NeedMoreData;
        }

        var payload = buffer.Slice(Http2FrameHeader.Size, header.Length);
        if (!TryUnframePayload(header, ref payload, out error))
        {
            if (!error.IsConnectionError)
            {
                frame = new Http2Frame(header, default);
                buffer = buffer.Slice(frameLength);
            }
            return Http2ReadStatus.Error;
        }

        buffer = buffer.Slice(frameLength);
        frame = new Http2Frame(header, payload);
        TrackFieldBlock(header);
        return Http2ReadStatus.Frame;
    }

    private static bool TryPeekHeader(in ReadOnlySequence<byte> buffer, out Http2FrameHeader header)
    {
        if (buffer.Length < Http2FrameHeader.Size)
        {
            header = default;
            return false;
        }
        var first = buffer.FirstSpan;
        if (first.Length >= Http2FrameHeader.Size)
        {
            return Http2FrameHeader.TryRead(first, out header);
        }
        Span<byte> bytes = stackalloc byte[Http2FrameHeader.Size];
        buffer.Slice(0, Http2FrameHeader.Size).CopyTo(bytes);
        return Http2FrameHeader.TryRead(bytes, out header);
    }

    private void TrackFieldBlock(in Http2FrameHeader header)
    {
        switch (header.Type)
        {
            case Http2FrameType.Headers:
            case Http2FrameType.PushPromise:
                _fieldBlockStreamId = header.HasFlag(Http2Flags.EndHeaders) ? 0 : header.StreamId;
                break;
            case Http2FrameType.Continuation when header.HasFlag(Http2Flags.EndHeaders):
                _fieldBlockStreamId = 0;
                break;
        }
    }

    /// <summary>Every rule that the 9 header bytes alone decide.</summary>
    private readonly bool CheckHeader(in Http2FrameHeader h, int maxFrameSize, out Http2Error error)
    {
        error = default;
        var type = h.Type;
        var id = h.StreamId;

        // Section 6.2 and 6.10: a field block is a contiguous run of frames on one stream.
        if (_fieldBlockStreamId != 0 && (type != Http2FrameType.Continuation || id != _fieldBlockStreamId))
        {
            return ConnectionError(out error, Http2ErrorCode.ProtocolError,
                $"{Describe(h)} arrived while the field block of stream {_fieldBlockStreamId} awaits CONTINUATION");
        }
        if (type == Http2FrameType.Continuation && _fieldBlockStreamId == 0)
        {
            return ConnectionError(out error, Http2ErrorCode.ProtocolError,
                $"{Describe(h)} does not follow a HEADERS or PUSH_PROMISE frame without END_HEADERS");
        }

        // Which frames belong to a stream and which to the connection.
        switch (type)
        {
            case Http2FrameType.Data:
            case Http2FrameType.Headers:
            case Http2FrameType.Priority:
            case Http2FrameType.RstStream:
            case Http2FrameType.PushPromise:
            case Http2FrameType.Continuation:
                if (id == 0)
                {
                    return ConnectionError(out error, Http2ErrorCode.ProtocolError,
                        $"{Describe(h)} is not allowed: {Http2Names.Of(type)} frames belong to a stream");
                }
                break;
            case Http2FrameType.Settings:
            case Http2FrameType.Ping:
            case Http2FrameType.GoAway:
                if (id != 0)
                {
                    return ConnectionError(out error, Http2ErrorCode.ProtocolError,
                        $"{Describe(h)} is not allowed: {Http2Names.Of(type)} frames belong to the connection (stream 0)");
                }
                break;
        }

        // Section 4.2: too large. A stream error only where the frame cannot change connection state.
        if (h.Length > maxFrameSize)
        {
            var message = $"{Describe(h)} has length {h.Length}, larger than the maximum frame size {maxFrameSize}";
            return type is Http2FrameType.Data or Http2FrameType.Priority
                ? StreamError(out error, Http2ErrorCode.FrameSizeError, id, message)
                : ConnectionError(out error, Http2ErrorCode.FrameSizeError, message);
        }

        // Section 6: lengths each type prescribes.
        switch (type)
        {
            case Http2FrameType.Data:
                return CheckMinimum(h, h.HasFlag(Http2Flags.Padded) ? 1 : 0, "its pad length", out error);
            case Http2FrameType.Headers:
                {
                    var minimum = (h.HasFlag(Http2Flags.Padded) ? 1 : 0) + (h.HasFlag(Http2Flags.Priority) ? 5 : 0);
                    return CheckMinimum(h, minimum, "its pad length and priority fields", out error);
                }
            case Http2FrameType.PushPromise:
                return CheckMinimum(h, (h.HasFlag(Http2Flags.Padded) ? 1 : 0) + 4, "its pad length and promised stream id", out error);
            case Http2FrameType.Priority when h.Length != 5:
                return StreamError(out error, Http2ErrorCode.FrameSizeError, id, $"{Describe(h)} has length {h.Length}; a PRIORITY payload is 5 bytes");
            case Http2FrameType.RstStream when h.Length != 4:
                return ConnectionError(out error, Http2ErrorCode.FrameSizeError, $"{Describe(h)} has length {h.Length}; an RST_STREAM payload is 4 bytes");
            case Http2FrameType.Settings when h.HasFlag(Http2Flags.Ack) && h.Length != 0:
                return ConnectionError(out error, Http2ErrorCode.FrameSizeError, $"SETTINGS ACK on stream 0 has a {h.Length}-byte payload; an ACK must be empty");
            case Http2FrameType.Settings when h.Length % 6 != 0:
                return ConnectionError(out error, Http2ErrorCode.FrameSizeError, $"{Describe(h)} has length {h.Length}, not a multiple of 6");
            case Http2FrameType.Ping when h.Length != 8:
                return ConnectionError(out error, Http2ErrorCode.FrameSizeError, $"{Describe(h)} has length {h.Length}; a PING payload is 8 bytes");
            case Http2FrameType.GoAway when h.Length < 8:
                return ConnectionError(out error, Http2ErrorCode.FrameSizeError, $"{Describe(h)} has length {h.Length}; a GOAWAY payload is at least 8 bytes");
            case Http2FrameType.WindowUpdate when h.Length != 4:
                return ConnectionError(out error, Http2ErrorCode.FrameSizeError, $"{Describe(h)} has length {h.Length}; a WINDOW_UPDATE payload is 4 bytes");
            default:
                return true;
        }
    }

    private static bool CheckMinimum(in Http2FrameHeader h, int minimum, string what, out Http2Error error)
    {
        if (h.Length < minimum)
        {
            return ConnectionError(out error, Http2ErrorCode.FrameSizeError,
                $"{Describe(h)} has length {h.Length}, too short for {what} ({minimum} bytes)");
        }
        error = default;
        return true;
    }

    /// <summary>Rules that need the payload: padding and the WINDOW_UPDATE increment. Strips padding and priority.</summary>
    private static bool TryUnframePayload(in Http2FrameHeader h, ref ReadOnlySequence<byte> payload, out Http2Error error)
    {
        error = default;
        switch (h.Type)
        {
            case Http2FrameType.Data:
            case Http2FrameType.Headers:
            case Http2FrameType.PushPromise:
                {
                    var skip = 0;
                    var padding = 0;
                    if (h.HasFlag(Http2Flags.Padded))
                    {
                        padding = FirstByte(payload);
                        skip = 1;
                    }
                    if (h.Type == Http2FrameType.Headers && h.HasFlag(Http2Flags.Priority))
                    {
                        skip += 5;
                    }
                    if (padding > h.Length - skip - (h.Type == Http2FrameType.PushPromise ? 4 : 0))
                    {
                        return ConnectionError(out error, Http2ErrorCode.ProtocolError,
                            $"{Describe(h)} has padding length {padding} but only {h.Length - skip} bytes follow the pad length{(skip > 1 ? " and priority fields" : "")}");
                    }
                    if (skip != 0 || padding != 0)
                    {
                        payload = payload.Slice(skip, h.Length - skip - padding);
                    }
                    return true;
                }
            case Http2FrameType.WindowUpdate:
                if (Http2Payloads.ReadUInt31(payload) == 0)
                {
                    var message = $"{Describe(h)} has a zero increment";
                    return h.StreamId == 0
                        ? ConnectionError(out error, Http2ErrorCode.ProtocolError, message)
                        : StreamError(out error, Http2ErrorCode.ProtocolError, h.StreamId, message);
                }
                return true;
            default:
                return true;
        }
    }

    private static byte FirstByte(in ReadOnlySequence<byte> payload)
    {
        var first = payload.FirstSpan;
        if (!first.IsEmpty)
        {
            return first[0];
        }
        Span<byte> one = stackalloc byte[1];
        payload.Slice(0, 1).CopyTo(one);
        return one[0];
    }

    private static string Describe(in Http2FrameHeader h) => $"{Http2Names.Of(h.Type)} on stream {h.StreamId}";

    private static bool ConnectionError(out Http2Error error, Http2ErrorCode code, string message)
    {
        error = Http2Error.Connection(code, message);
        return false;
    }

    private static bool StreamError(out Http2Error error, Http2ErrorCode code, int streamId, string message)
    {
        error = Http2Error.Stream(code, streamId, message);
        return false;
    }
}
