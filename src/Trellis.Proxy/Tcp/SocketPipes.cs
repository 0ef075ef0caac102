using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Trellis.Proxy.Threading;

namespace Trellis.Proxy.Tcp;

/// <summary>
/// A <see cref="PipeReader"/> straight over a connected socket: one contiguous buffer (grown when a caller has
/// examined all of it without consuming it), each read that needs bytes one receive. It replaces
/// <c>PipeReader.Create(new NetworkStream(socket))</c> on the HTTP/1.1 path, which adds a stream, linked buffer
/// segments and a second cancellation registration to every read.
/// </summary>
/// <remarks>
/// <see cref="CancelPendingRead"/> ends reading for good: a read under way is woken by shutting down the socket's
/// receive side, and the next read reports cancellation. Every caller abandons the connection after cancelling.
/// Receive errors surface as <see cref="SocketException"/>; timeouts as <see cref="OperationCanceledException"/>
/// from the caller's token.
/// </remarks>
internal sealed class SocketReader : PipeReader
{
    public const int InitialSize = 8192;

    /// <summary>Space below this after compaction makes the buffer grow before a receive.</summary>
    private const int MinimumReceive = 2048;

    private readonly Socket _socket;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private bool _examinedAll;
    private bool _ended;
    private bool _completed;
    private volatile bool _cancelled;
    private ReadOnlySequence<byte> _lastRead;

    public SocketReader(Socket socket, ReadOnlySpan<byte> prefix = default)
    {
        _socket = socket;
        _buffer = new byte[Math.Max(InitialSize, prefix.Length + MinimumReceive)];
        prefix.CopyTo(_buffer);
        _end = prefix.Length;
    }

    /// <summary>Bytes received and not yet consumed.</summary>
    public int Buffered => _end - _start;

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (TryRead(out var result))
        {
            return new ValueTask<ReadResult>(result);
        }
        cancellationToken.ThrowIfCancellationRequested();
        return ReceiveAsync(cancellationToken);
    }

    /// <summary>True when a read would not wait: unexamined bytes, the end of the stream, or a cancellation.</summary>
    public override bool TryRead(out ReadResult result)
    {
        if (_cancelled)
        {
            _cancelled = false;
            result = Result(canceled: true);
            return true;
        }
        if (_ended || (_end > _start && !_examinedAll))
        {
            result = Result(canceled: false);
            return true;
        }
        result = default;
        return false;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<ReadResult> ReceiveAsync(CancellationToken cancellationToken)
    {
        MakeRoom();
        var received = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        if (_cancelled)
        {
            _cancelled = false;
            _end += received;
            return Result(canceled: true);
        }
        if (received == 0)
        {
            _ended = true;
        }
        _end += received;
        _examinedAll = false;
        return Result(canceled: false);
    }

    private ReadResult Result(bool canceled)
    {
        _lastRead = new ReadOnlySequence<byte>(_buffer, _start, _end - _start);
        return new ReadResult(_lastRead, canceled, _ended);
    }

    /// <summary>Moves unconsumed bytes to the front, and doubles the buffer when what is left is too small to receive into.</summary>
    private void MakeRoom()
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        if (_buffer.Length - _end >= MinimumReceive)
        {
            return;
        }
        var length = _end - _start;
        var target = length + MinimumReceive <= _buffer.Length ? _buffer : new byte[_buffer.Length * 2];
        Buffer.BlockCopy(_buffer, _start, target, 0, length);
        _buffer = target;
        _start = 0;
        _end = length;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        // For a sequence over one array, GetOffset is the index in that array (and checks the position is inside).
        var consumedOffset = (int)_lastRead.GetOffset(consumed) - _start;
        var examinedOffset = (int)_lastRead.GetOffset(examined) - _start;
        if (consumedOffset > examinedOffset)
        {
            throw new InvalidOperationException("the consumed position is after the examined position");
        }
        _examinedAll = examinedOffset == _lastRead.Length;
        _start += consumedOffset;
        _lastRead = default;
    }

    public override void CancelPendingRead()
    {
        _cancelled = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Receive);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed: nothing is waiting on it.
        }
    }

    public override void Complete(Exception? exception = null) => _completed = true;
}

/// <summary>
/// A <see cref="PipeWriter"/> straight over a connected socket: bytes gather in one buffer and each flush sends
/// them in one call. <see cref="CancelPendingFlush"/> ends writing for good (the socket's send side is shut
/// down, which also wakes a send waiting for room); the callers abandon the connection after it.
/// </summary>
internal sealed class SocketWriter : PipeWriter
{
    public const int InitialSize = 4096;

    private readonly Socket _socket;
    private byte[] _buffer = new byte[InitialSize];
    private int _written;
    private bool _completed;
    private volatile bool _cancelled;

    public SocketWriter(Socket socket)
    {
        _socket = socket;
    }

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => _written;

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsSpan(_written);
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsMemory(_written);
    }

    private void Reserve(int sizeHint)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        var needed = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= needed)
        {
            return;
        }
        var grown = new byte[Math.Max(_buffer.Length * 2, _written + needed)];
        Buffer.BlockCopy(_buffer, 0, grown, 0, _written);
        _buffer = grown;
    }

    public override void Advance(int bytes)
    {
        if ((uint)bytes > (uint)(_buffer.Length - _written))
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "more bytes than the span handed out");
        }
        _written += bytes;
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_cancelled)
        {
            _cancelled = false;
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: true, isCompleted: false));
        }
        if (_written == 0)
        {
            return default;
        }
        cancellationToken.ThrowIfCancellationRequested();
        return SendAsync(cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private async ValueTask<FlushResult> SendAsync(CancellationToken cancellationToken)
    {
        var length = _written;
        _written = 0;
        try
        {
            // A stream socket's send completes once every byte is handed to the kernel.
            await _socket.SendAsync(_buffer.AsMemory(0, length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException) when (_cancelled)
        {
            _cancelled = false;
            return new FlushResult(isCanceled: true, isCompleted: false);
        }
        return default;
    }

    public override void CancelPendingFlush()
    {
        _cancelled = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed: nothing is waiting on it.
        }
    }

    public override void Complete(Exception? exception = null) => _completed = true;
}
