using System.Buffers;
using System.Buffers.Binary;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>
/// The settings a peer announced (RFC 9113 section 6.5.2), starting from the protocol's defaults and changed by each
/// SETTINGS frame it sends. "Unlimited" is <see cref="uint.MaxValue"/>.
/// </summary>
internal struct Http2PeerSettings
{
    /// <summary>The values in force before the peer's first SETTINGS frame.</summary>
    public static Http2PeerSettings Default => new()
    {
        HeaderTableSize = Http2Limits.DefaultHeaderTableSize,
        EnablePush = true,
        MaxConcurrentStreams = uint.MaxValue,
        InitialWindowSize = Http2Limits.DefaultInitialWindowSize,
        MaxFrameSize = Http2Limits.DefaultMaxFrameSize,
        MaxHeaderListSize = uint.MaxValue,
        EnableConnectProtocol = false,
    };

    /// <summary>SETTINGS_HEADER_TABLE_SIZE: the most the peer's HPACK decoder holds (our encoder's limit).</summary>
    public uint HeaderTableSize { get; set; }

    /// <summary>SETTINGS_ENABLE_PUSH. A client receiving true from a server must treat it as a connection error
    /// (PROTOCOL_ERROR, section 6.5.2); that check belongs to the client side.</summary>
    public bool EnablePush { get; set; }

    /// <summary>SETTINGS_MAX_CONCURRENT_STREAMS: how many streams we may open towards the peer.</summary>
    public uint MaxConcurrentStreams { get; set; }

    /// <summary>SETTINGS_INITIAL_WINDOW_SIZE: the send window of each new stream towards the peer.</summary>
    public int InitialWindowSize { get; set; }

    /// <summary>SETTINGS_MAX_FRAME_SIZE: the largest frame payload we may send to the peer.</summary>
    public int MaxFrameSize { get; set; }

    /// <summary>SETTINGS_MAX_HEADER_LIST_SIZE: advisory limit on the field section we send.</summary>
    public uint MaxHeaderListSize { get; set; }

    /// <summary>SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): the peer accepts extended CONNECT.</summary>
    public bool EnableConnectProtocol { get; set; }
}

/// <summary>Applies SETTINGS payloads to <see cref="Http2PeerSettings"/>, validating each value.</summary>
internal static class Http2SettingsReader
{
    /// <summary>
    /// Applies the settings of a SETTINGS frame (not an ACK) in order, so a repeated identifier's last value wins.
    /// Unknown identifiers are ignored (section 6.5.2). On success <paramref name="settings"/> holds the new values and
    /// <paramref name="initialWindowDelta"/> is the change of SETTINGS_INITIAL_WINDOW_SIZE, by which the caller must
    /// adjust the send window of every open stream (section 6.9.2; <see cref="Http2FlowWindow.TryAdjust"/>). On a bad
    /// value <paramref name="settings"/> is unchanged and <paramref name="error"/> is a connection error:
    /// ENABLE_PUSH or ENABLE_CONNECT_PROTOCOL not 0/1 and MAX_FRAME_SIZE outside 16384..16777215 are PROTOCOL_ERROR,
    /// INITIAL_WINDOW_SIZE above 2^31-1 is FLOW_CONTROL_ERROR.
    /// </summary>
    /// <param name="payload">A SETTINGS payload whose length is a multiple of 6 (as the frame reader ensures).</param>
    public static bool TryApply(in ReadOnlySequence<byte> payload, ref Http2PeerSettings settings, out int initialWindowDelta, out Http2Error error)
    {
        initialWindowDelta = 0;
        error = default;
        var updated = settings;
        var reader = new SequenceReader<byte>(payload);
        Span<byte> entry = stackalloc byte[6];
        while (reader.Remaining >= 6)
        {
            reader.TryCopyTo(entry);
            reader.Advance(6);
            var id = (Http2SettingId)BinaryPrimitives.ReadUInt16BigEndian(entry);
            var value = BinaryPrimitives.ReadUInt32BigEndian(entry[2..]);
            switch (id)
            {
                case Http2SettingId.HeaderTableSize:
                    updated.HeaderTableSize = value;
                    break;
                case Http2SettingId.EnablePush:
                    if (value > 1)
                    {
                        return Fail(out error, Http2ErrorCode.ProtocolError, $"SETTINGS_ENABLE_PUSH is {value}; it must be 0 or 1");
                    }
                    updated.EnablePush = value == 1;
                    break;
                case Http2SettingId.MaxConcurrentStreams:
                    updated.MaxConcurrentStreams = value;
                    break;
                case Http2SettingId.InitialWindowSize:
                    if (value > Http2Limits.MaxWindowSize)
                    {
                        return Fail(out error, Http2ErrorCode.FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE is {value}, above the maximum window 2147483647");
                    }
                    updated.InitialWindowSize = (int)value;
                    break;
                case Http2SettingId.MaxFrameSize:
                    if (value < Http2Limits.DefaultMaxFrameSize || value > Http2Limits.MaxFrameSizeLimit)
                    {
                        return Fail(out error, Http2ErrorCode.ProtocolError, $"SETTINGS_MAX_FRAME_SIZE is {value}; it must be 16384..16777215");
                    }
                    updated.MaxFrameSize = (int)value;
                    break;
                case Http2SettingId.MaxHeaderListSize:
                    updated.MaxHeaderListSize = value;
                    break;
                case Http2SettingId.EnableConnectProtocol:
                    if (value > 1)
                    {
                        return Fail(out error, Http2ErrorCode.ProtocolError, $"SETTINGS_ENABLE_CONNECT_PROTOCOL is {value}; it must be 0 or 1");
                    }
                    updated.EnableConnectProtocol = value == 1;
                    break;
            }
        }
        initialWindowDelta = updated.InitialWindowSize - settings.InitialWindowSize;
        settings = updated;
        return true;
    }

    private static bool Fail(out Http2Error error, Http2ErrorCode code, string message)
    {
        error = Http2Error.Connection(code, $"SETTINGS on stream 0: {message}");
        return false;
    }
}
