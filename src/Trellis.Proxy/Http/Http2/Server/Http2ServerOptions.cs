using Trellis.Proxy.Http.Http2.Frames;

namespace Trellis.Proxy.Http.Http2.Server;

/// <summary>Settings and limits of one <see cref="Http2ServerConnection"/>.</summary>
internal sealed class Http2ServerOptions
{
    /// <summary>SETTINGS_MAX_CONCURRENT_STREAMS: request streams a client may have open at once; one more is
    /// refused with RST_STREAM(REFUSED_STREAM), which clients retry.</summary>
    public int MaxConcurrentStreams { get; init; } = 256;

    /// <summary>Our SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a client may send on one stream before the
    /// handler takes them (also the most a stream buffers). At least 65535, the window a client may use before it
    /// has our SETTINGS.</summary>
    public int InitialStreamWindowSize { get; init; } = Http2Limits.DefaultInitialWindowSize;

    /// <summary>Our connection receive window, raised from the protocol's 65535 by a WINDOW_UPDATE at the start.</summary>
    public int ConnectionWindowSize { get; init; } = 1024 * 1024;

    /// <summary>SETTINGS_MAX_HEADER_LIST_SIZE: the largest decoded request field section (name + value + 32 per
    /// field); a larger one is answered with 431 on its stream.</summary>
    public int MaxHeaderListSize { get; init; } = 60 * 1024;

    /// <summary>The most fields (pseudo-headers included) in a request head; more is answered with 431.</summary>
    public int MaxHeaderCount { get; init; } = 100;

    /// <summary>Our SETTINGS_MAX_FRAME_SIZE: the largest frame payload a client may send (16384..16777215).</summary>
    public int MaxFrameSize { get; init; } = Http2Limits.DefaultMaxFrameSize;

    /// <summary>A connection with no open stream and no running handler for this long is closed with
    /// GOAWAY(NO_ERROR). <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>After a drain starts (GOAWAY sent), how long streams in flight may take before the connection is
    /// closed anyway.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>After our GOAWAY (and the end of our sending), how long the client may take to close its side
    /// before the connection is dropped.</summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Keepalive: when nothing has arrived from the client for this long, a PING is sent.
    /// <see cref="Timeout.InfiniteTimeSpan"/> (the default) sends none.</summary>
    public TimeSpan KeepAlivePingDelay { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>Keepalive: a client that sends nothing (not even the PING's ACK) this long after a keepalive PING is
    /// taken for gone, and the connection is closed.</summary>
    public TimeSpan KeepAlivePingTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Rapid-reset guard: streams a client may reset (RST_STREAM before the response ended) within
    /// <see cref="ResetWindow"/>; one more is a connection error ENHANCE_YOUR_CALM.</summary>
    public int MaxResetsPerWindow { get; init; } = 1000;

    /// <summary>The window <see cref="MaxResetsPerWindow"/> counts in.</summary>
    public TimeSpan ResetWindow { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The most bytes of frames the client's own frames make us queue (PING and SETTINGS ACKs, RST_STREAM,
    /// error responses) while our sending is blocked; more is a connection error ENHANCE_YOUR_CALM (a peer that
    /// sends but does not read).</summary>
    public int MaxQueuedControlBytes { get; init; } = 64 * 1024;

    /// <summary>Announce SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441) and accept extended CONNECT (:protocol).</summary>
    public bool EnableConnectProtocol { get; init; }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConcurrentStreams, 1);
        if (InitialStreamWindowSize is < Http2Limits.DefaultInitialWindowSize or > Http2Limits.MaxWindowSize)
        {
            throw new ArgumentOutOfRangeException(nameof(InitialStreamWindowSize), InitialStreamWindowSize, "a stream window is 65535..2^31-1 bytes");
        }
        if (ConnectionWindowSize is < Http2Limits.DefaultInitialWindowSize or > Http2Limits.MaxWindowSize)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectionWindowSize), ConnectionWindowSize, "the connection window is 65535..2^31-1 bytes");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxHeaderListSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxHeaderCount, 4);
        if (MaxFrameSize is < Http2Limits.DefaultMaxFrameSize or > Http2Limits.MaxFrameSizeLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxFrameSize), MaxFrameSize, "SETTINGS_MAX_FRAME_SIZE is 16384..16777215");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxResetsPerWindow, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxQueuedControlBytes, 1024);
        CheckTime(IdleTimeout, nameof(IdleTimeout));
        CheckTime(DrainTimeout, nameof(DrainTimeout));
        CheckTime(CloseTimeout, nameof(CloseTimeout));
        CheckTime(ResetWindow, nameof(ResetWindow));
        CheckTime(KeepAlivePingDelay, nameof(KeepAlivePingDelay));
        CheckTime(KeepAlivePingTimeout, nameof(KeepAlivePingTimeout));
    }

    private static void CheckTime(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero && value != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(name, value, "a positive time, or Timeout.InfiniteTimeSpan");
        }
    }
}

/// <summary>
/// Serves the request streams of an <see cref="Http2ServerConnection"/>: called once per request whose head was
/// valid, on a thread-pool thread (never on the connection's read loop), when the head has arrived. The handler
/// owns the stream until the returned task ends; then an unfinished response is ended (200 with no body if nothing
/// was written, else END_STREAM after what was written; 500 or RST_STREAM(INTERNAL_ERROR) if the handler threw).
/// </summary>
internal interface IHttp2ServerHandler
{
    ValueTask HandleAsync(Http2ServerStream stream);
}
