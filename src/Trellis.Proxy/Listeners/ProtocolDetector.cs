using System.Net.Sockets;
using System.Text;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Listeners;

/// <summary>What detection read: the protocol, how many bytes of the buffer it filled (they must be replayed), and
/// whether it gave up waiting (a server-first protocol, or a client that is slow to speak).</summary>
internal readonly record struct DetectionResult(DetectedProtocol Protocol, int Length, bool TimedOut);

/// <summary>
/// Per-connection protocol detection from the first bytes the client sends: a TLS ClientHello record (0x16 0x03),
/// the HTTP/2 prior-knowledge preface, an HTTP/1.x request line (a known method followed by a space), else opaque
/// TCP. A client that sends nothing within the detection timeout is taken for a server-first protocol (TCP).
/// Reads only as many bytes as the client has sent; never more than one buffer.
/// </summary>
internal static class ProtocolDetector
{
    /// <summary>Buffer size callers should offer: enough for any decision, and for the head of a small request.</summary>
    public const int BufferSize = 4096;

    private static readonly byte[] Http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    /// <summary>HTTP/1.x methods recognised, each with its trailing space.</summary>
    private static readonly byte[][] Methods =
        [.. new[] { "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH" }.Select(m => Encoding.ASCII.GetBytes(m + " "))];

    /// <summary>The protocol these first bytes show, or null when more bytes are needed to tell.</summary>
    public static DetectedProtocol? Classify(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return null;
        }
        if (data[0] == 0x16)
        {
            // A TLS handshake record: content type 22, then the record version's major byte 3 (SSL 3.0 .. TLS 1.3).
            return data.Length < 2 ? null : data[1] == 0x03 ? DetectedProtocol.Tls : DetectedProtocol.Tcp;
        }
        var undecided = false;
        if (IsPrefixOrWhole(data, Http2Preface, out var whole))
        {
            if (whole)
            {
                return DetectedProtocol.Http2;
            }
            undecided = true;
        }
        foreach (var method in Methods)
        {
            if (IsPrefixOrWhole(data, method, out whole))
            {
                if (whole)
                {
                    return DetectedProtocol.Http1;
                }
                undecided = true;
            }
        }
        return undecided ? null : DetectedProtocol.Tcp;
    }

    /// <summary>True when <paramref name="data"/> starts with <paramref name="token"/> (<paramref name="whole"/>) or is a beginning of it.</summary>
    private static bool IsPrefixOrWhole(ReadOnlySpan<byte> data, ReadOnlySpan<byte> token, out bool whole)
    {
        var n = Math.Min(data.Length, token.Length);
        whole = n == token.Length;
        return data[..n].SequenceEqual(token[..n]);
    }

    /// <summary>
    /// Reads from <paramref name="socket"/> into <paramref name="buffer"/> until the protocol is known, the buffer is
    /// full, the client half-closes, or <paramref name="timeout"/> passes on <paramref name="time"/> (then TCP).
    /// Records the outcome in the detection metrics under <paramref name="listener"/>.
    /// </summary>
    public static async ValueTask<DetectionResult> DetectAsync(Socket socket, Memory<byte> buffer, TimeSpan timeout, TimeProvider time, string listener, CancellationToken ct)
    {
        var started = time.GetTimestamp();
        var length = 0;
        var timedOut = false;
        DetectedProtocol? protocol = null;
        using (var cts = new CancellationTokenSource(timeout, time))
        using (ct.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), cts))
        {
            while (protocol is null)
            {
                int n;
                try
                {
                    n = await socket.ReceiveAsync(buffer[length..], SocketFlags.None, cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    timedOut = !ct.IsCancellationRequested;
                    break;
                }
                if (n == 0)
                {
                    break;
                }
                length += n;
                protocol = Classify(buffer.Span[..length]);
                if (protocol is null && length == buffer.Length)
                {
                    break;
                }
            }
        }
        if (timedOut && TryReadArrived(socket, buffer, ref length) && Classify(buffer.Span[..length]) is { } late)
        {
            // The bytes were in time; only their read was late (a busy machine): classify them, do not fall back.
            protocol = late;
            timedOut = false;
        }
        var result = new DetectionResult(protocol ?? DetectedProtocol.Tcp, length, timedOut);
        ProxyMetrics.RecordDetection(listener, result.Protocol, time.GetElapsedTime(started));
        return result;
    }

    /// <summary>Reads, without waiting, bytes that already arrived; false when there were none.</summary>
    private static bool TryReadArrived(Socket socket, Memory<byte> buffer, ref int length)
    {
        try
        {
            if (length == buffer.Length || socket.Available == 0)
            {
                return false;
            }
            var n = socket.Receive(buffer.Span[length..], SocketFlags.None);
            length += n;
            return n > 0;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }
}
