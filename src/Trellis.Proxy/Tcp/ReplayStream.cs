namespace Trellis.Proxy.Tcp;

/// <summary>
/// A stream that first returns bytes already read from the stream it wraps (protocol detection's), then reads on
/// from it: a TLS handshake can start on a ClientHello the listener has partly consumed, and a decrypted request
/// classified without ALPN can still be parsed from its first byte. Writes go straight to the inner stream. The
/// prefix is copied, so the caller's buffer can go back to its pool. Disposing leaves the inner stream open.
/// </summary>
internal sealed class ReplayStream : Stream
{
    private readonly Stream _inner;
    private readonly byte[] _prefix;
    private int _prefixRead;

    public ReplayStream(Stream inner, ReadOnlySpan<byte> prefix)
    {
        _inner = inner;
        _prefix = prefix.ToArray();
    }

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        TryReplay(buffer.Span, out var n) ? new ValueTask<int>(n) : _inner.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer) => TryReplay(buffer, out var n) ? n : _inner.Read(buffer);

    /// <summary>
    /// Serves the read from the prefix while any is left. A zero-byte read (a wait for data, which SslStream issues
    /// before it rents a buffer) completes at once then: the data is there.
    /// </summary>
    private bool TryReplay(Span<byte> buffer, out int n)
    {
        n = Math.Min(buffer.Length, _prefix.Length - _prefixRead);
        if (_prefixRead == _prefix.Length)
        {
            return false;
        }
        _prefix.AsSpan(_prefixRead, n).CopyTo(buffer);
        _prefixRead += n;
        return true;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _inner.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _inner.WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => _inner.Write(buffer, offset, count);

    public override void Write(ReadOnlySpan<byte> buffer) => _inner.Write(buffer);

    public override void Flush() => _inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
