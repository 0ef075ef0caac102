using System.Buffers;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>What the bytes seen so far say about the client connection preface.</summary>
internal enum Http2PrefaceStatus
{
    /// <summary>Every byte so far matches, but the preface is not complete yet.</summary>
    NeedMoreData,

    /// <summary>The whole 24-byte preface is present.</summary>
    Matched,

    /// <summary>A byte differs: this is not an HTTP/2 prior-knowledge connection.</summary>
    Mismatch,
}

/// <summary>
/// The client connection preface (RFC 9113 section 3.4): the 24 bytes <c>PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n</c>, which a
/// client sends before its first SETTINGS frame. A server that sees anything else must treat it as a connection error
/// of type PROTOCOL_ERROR (or, for protocol detection, as not HTTP/2).
/// </summary>
internal static class Http2Preface
{
    /// <summary>The preface's length in bytes.</summary>
    public const int Length = 24;

    /// <summary>The preface bytes.</summary>
    public static ReadOnlySpan<byte> ClientPreface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>Compares the start of <paramref name="data"/> with the preface.</summary>
    public static Http2PrefaceStatus Check(ReadOnlySpan<byte> data)
    {
        var preface = ClientPreface;
        var n = Math.Min(data.Length, Length);
        if (!data[..n].SequenceEqual(preface[..n]))
        {
            return Http2PrefaceStatus.Mismatch;
        }
        return n == Length ? Http2PrefaceStatus.Matched : Http2PrefaceStatus.NeedMoreData;
    }

    /// <summary>Compares the start of <paramref name="data"/> (any number of segments) with the preface.</summary>
    public static Http2PrefaceStatus Check(in ReadOnlySequence<byte> data)
    {
        if (data.IsSingleSegment || data.FirstSpan.Length >= Length)
        {
            return Check(data.FirstSpan);
        }
        Span<byte> head = stackalloc byte[Length];
        var n = (int)Math.Min(data.Length, Length);
        data.Slice(0, n).CopyTo(head);
        return Check(head[..n]);
    }

    /// <summary>
    /// Checks the preface and, when it is complete, advances <paramref name="buffer"/> past it; otherwise leaves the
    /// buffer as it is.
    /// </summary>
    public static Http2PrefaceStatus TryConsume(ref ReadOnlySequence<byte> buffer)
    {
        var status = Check(buffer);
        if (status == Http2PrefaceStatus.Matched)
        {
            buffer = buffer.Slice(Length);
        }
        return status;
    }
}
