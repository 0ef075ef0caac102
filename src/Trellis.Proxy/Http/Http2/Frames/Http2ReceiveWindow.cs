namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>
/// A receive window (a stream's or the connection's) with the bytes taken since the last WINDOW_UPDATE: DATA
/// consumes it as it arrives; bytes the application took (or that were dropped) are credited back, and once they
/// reach a threshold (half the window, so updates are few but the peer never stalls) the caller announces them.
/// A mutable struct: keep it in a field and call it there.
/// </summary>
internal struct Http2ReceiveWindow
{
    private Http2FlowWindow _window;
    private int _unacked;

    public Http2ReceiveWindow(int size)
    {
        _window = new Http2FlowWindow(size);
    }

    /// <summary>Bytes the peer may still send.</summary>
    public readonly int Available => _window.Available;

    /// <summary>Takes a DATA frame's whole length; false (nothing taken) when the peer overran the window.</summary>
    public bool TryConsume(int bytes) => _window.TryConsume(bytes);

    /// <summary>
    /// Credits <paramref name="bytes"/> taken by the application; returns the increment to announce in a
    /// WINDOW_UPDATE now (the window is reopened by it), or 0 while fewer than <paramref name="threshold"/> bytes wait.
    /// </summary>
    public int Credit(int bytes, int threshold)
    {
        _unacked += bytes;
        if (_unacked < threshold || _unacked == 0)
        {
            return 0;
        }
        var increment = _unacked;
        _window.TryGrow(increment);
        _unacked = 0;
        return increment;
    }

    public override readonly string ToString() => _window.ToString();
}
