namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>
/// One flow-control window (RFC 9113 section 5.2 and 6.9): the send or receive window of a stream or of the
/// connection. It starts at the initial window size, shrinks as DATA is sent or received, grows by WINDOW_UPDATE
/// increments, and moves by the difference when SETTINGS_INITIAL_WINDOW_SIZE changes (which may leave it negative:
/// then nothing may be sent until updates bring it above zero). It can never exceed 2^31-1.
/// A mutable struct: keep it in a field and call it there.
/// </summary>
internal struct Http2FlowWindow
{
    private int _available;

    public Http2FlowWindow(int initialSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(initialSize);
        _available = initialSize;
    }

    /// <summary>The bytes that may still be sent (or received) now; negative after a shrinking settings change.</summary>
    public readonly int Available => _available;

    /// <summary>
    /// Takes <paramref name="bytes"/> from the window, or returns false and takes nothing when fewer are available.
    /// For a receive window false means the peer overran it: FLOW_CONTROL_ERROR (on the stream, or the connection for
    /// the connection's window). For a send window, send at most <see cref="Available"/> bytes first.
    /// </summary>
    public bool TryConsume(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes > _available)
        {
            return false;
        }
        _available -= bytes;
        return true;
    }

    /// <summary>
    /// Adds a WINDOW_UPDATE increment (1..2^31-1, as the frame reader guarantees). False, and no change, when the
    /// window would exceed 2^31-1: a FLOW_CONTROL_ERROR (a stream error for a stream's window, a connection error for
    /// the connection's).
    /// </summary>
    public bool TryGrow(int increment)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(increment);
        var grown = (long)_available + increment;
        if (grown > Http2Limits.MaxWindowSize)
        {
            return false;
        }
        _available = (int)grown;
        return true;
    }

    /// <summary>
    /// Moves the window by the change of SETTINGS_INITIAL_WINDOW_SIZE (new value less old; see
    /// <see cref="Http2SettingsReader.TryApply"/>). The result may be negative. False, and no change, when it would
    /// exceed 2^31-1: the peer's SETTINGS is then a connection error of type FLOW_CONTROL_ERROR (section 6.9.2).
    /// </summary>
    public bool TryAdjust(int delta)
    {
        var adjusted = (long)_available + delta;
        if (adjusted > Http2Limits.MaxWindowSize || adjusted < int.MinValue)
        {
            return false;
        }
        _available = (int)adjusted;
        return true;
    }

    public override readonly string ToString() => _available.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
