namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>Frame types of RFC 9113 section 6. Any other value is an extension frame the receiver ignores.</summary>
internal enum Http2FrameType : byte
{
    Data = 0x0,
    Headers = 0x1,
    Priority = 0x2,
    RstStream = 0x3,
    Settings = 0x4,
    PushPromise = 0x5,
    Ping = 0x6,
    GoAway = 0x7,
    WindowUpdate = 0x8,
    Continuation = 0x9,
}

/// <summary>Frame flags (RFC 9113 section 6). A flag's meaning depends on the frame type: 0x1 is END_STREAM on DATA
/// and HEADERS but ACK on SETTINGS and PING.</summary>
internal static class Http2Flags
{
    public const byte None = 0x0;

    /// <summary>DATA, HEADERS: the sender's last frame on the stream.</summary>
    public const byte EndStream = 0x1;

    /// <summary>SETTINGS, PING: an acknowledgement.</summary>
    public const byte Ack = 0x1;

    /// <summary>HEADERS, PUSH_PROMISE, CONTINUATION: the field block is complete.</summary>
    public const byte EndHeaders = 0x4;

    /// <summary>DATA, HEADERS, PUSH_PROMISE: a pad length byte leads the payload and padding trails it.</summary>
    public const byte Padded = 0x8;

    /// <summary>HEADERS: 5 bytes of (deprecated) priority information follow the pad length.</summary>
    public const byte Priority = 0x20;
}

/// <summary>Error codes of RFC 9113 section 7, carried by RST_STREAM and GOAWAY. Unknown codes may arrive and must
/// not be treated specially; they are kept as their numeric value.</summary>
internal enum Http2ErrorCode : uint
{
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    SettingsTimeout = 0x4,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    ConnectError = 0xa,
    EnhanceYourCalm = 0xb,
    InadequateSecurity = 0xc,
    Http11Required = 0xd,
}

/// <summary>Setting identifiers of RFC 9113 section 6.5.2 (and RFC 8441's ENABLE_CONNECT_PROTOCOL).</summary>
internal enum Http2SettingId : ushort
{
    HeaderTableSize = 0x1,
    EnablePush = 0x2,
    MaxConcurrentStreams = 0x3,
    InitialWindowSize = 0x4,
    MaxFrameSize = 0x5,
    MaxHeaderListSize = 0x6,
    EnableConnectProtocol = 0x8,
}

/// <summary>One identifier/value pair of a SETTINGS frame.</summary>
internal readonly record struct Http2Setting(Http2SettingId Id, uint Value);

/// <summary>Numeric limits of RFC 9113 used by the frame layer.</summary>
internal static class Http2Limits
{
    /// <summary>The initial value of SETTINGS_MAX_FRAME_SIZE and the smallest value allowed for it.</summary>
    public const int DefaultMaxFrameSize = 16_384;

    /// <summary>The largest frame payload the 24-bit length can describe and the largest SETTINGS_MAX_FRAME_SIZE.</summary>
    public const int MaxFrameSizeLimit = 16_777_215;

    /// <summary>The initial value of SETTINGS_INITIAL_WINDOW_SIZE and of the connection's flow-control windows.</summary>
    public const int DefaultInitialWindowSize = 65_535;

    /// <summary>2^31-1: the largest flow-control window and the largest WINDOW_UPDATE increment.</summary>
    public const int MaxWindowSize = int.MaxValue;

    /// <summary>The initial value of SETTINGS_HEADER_TABLE_SIZE.</summary>
    public const int DefaultHeaderTableSize = 4_096;

    /// <summary>Stream identifiers are 31 bits; the high bit of the field is reserved.</summary>
    public const int MaxStreamId = int.MaxValue;
}

/// <summary>Display names of frame types and error codes, as RFC 9113 spells them, for error messages and logs.</summary>
internal static class Http2Names
{
    public static string Of(Http2FrameType type) => type switch
    {
        Http2FrameType.Data => "DATA",
        Http2FrameType.Headers => "HEADERS",
        Http2FrameType.Priority => "PRIORITY",
        Http2FrameType.RstStream => "RST_STREAM",
        Http2FrameType.Settings => "SETTINGS",
        Http2FrameType.PushPromise => "PUSH_PROMISE",
        Http2FrameType.Ping => "PING",
        Http2FrameType.GoAway => "GOAWAY",
        Http2FrameType.WindowUpdate => "WINDOW_UPDATE",
        Http2FrameType.Continuation => "CONTINUATION",
        _ => $"frame type 0x{(byte)type:x2}",
    };

    public static string Of(Http2ErrorCode code) => code switch
    {
        Http2ErrorCode.NoError => "NO_ERROR",
        Http2ErrorCode.ProtocolError => "PROTOCOL_ERROR",
        Http2ErrorCode.InternalError => "INTERNAL_ERROR",
        Http2ErrorCode.FlowControlError => "FLOW_CONTROL_ERROR",
        Http2ErrorCode.SettingsTimeout => "SETTINGS_TIMEOUT",
        Http2ErrorCode.StreamClosed => "STREAM_CLOSED",
        Http2ErrorCode.FrameSizeError => "FRAME_SIZE_ERROR",
        Http2ErrorCode.RefusedStream => "REFUSED_STREAM",
        Http2ErrorCode.Cancel => "CANCEL",
        Http2ErrorCode.CompressionError => "COMPRESSION_ERROR",
        Http2ErrorCode.ConnectError => "CONNECT_ERROR",
        Http2ErrorCode.EnhanceYourCalm => "ENHANCE_YOUR_CALM",
        Http2ErrorCode.InadequateSecurity => "INADEQUATE_SECURITY",
        Http2ErrorCode.Http11Required => "HTTP_1_1_REQUIRED",
        _ => $"error code 0x{(uint)code:x}",
    };
}
