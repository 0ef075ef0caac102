using System.Buffers;
using System.Runtime.CompilerServices;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Threading;

namespace Trellis.Proxy.Http.Http2.Client;

/// <summary>
/// One request/response exchange on an <see cref="Http2ClientConnection"/>. One caller writes the request body
/// (<see cref="WriteDataAsync"/>) and one reads the response (<see cref="ReadResponseHeadAsync"/>, then
/// <see cref="ReadDataAsync"/> until 0, then <see cref="Trailers"/>); the two may run concurrently. A cancelled
/// read or write resets the stream (RST_STREAM CANCEL). Failures throw <see cref="Http2StreamException"/>.
/// Dispose when done: an unfinished stream is reset, and the receive buffer goes back to the pool.
/// </summary>
internal sealed class Http2ClientStream : IDisposable
{
    private readonly Http2ClientConnection _connection;
    private readonly Http2Signal _readSignal = new();
    private readonly Http2Signal _writeSignal = new();
    private byte[]? _buffer;
    private int _bufferStart;
    private int _bufferEnd;

    internal Http2ClientStream(Http2ClientConnection connection, int id, int sendWindow, int receiveWindow, bool localEnded)
    {
        _connection = connection;
        Id = id;
        SendWindow = new Http2FlowWindow(sendWindow);
        ReceiveWindow = new Http2ReceiveWindow(receiveWindow);
        LocalEnded = localEnded;
    }

    public int Id { get; }

    /// <summary>The response head, once received.</summary>
    public Http2ResponseHead? Head { get; private set; }

    /// <summary>The trailers, once received (null when the response ended without them, e.g. with END_STREAM on
    /// DATA, or when <see cref="Http2ResponseHead.EndStream"/> put everything in the head).</summary>
    public IReadOnlyList<Http2HeaderField>? Trailers { get; private set; }

    // State below is guarded by the connection's Sync lock.
    internal Http2FlowWindow SendWindow;
    internal Http2ReceiveWindow ReceiveWindow;

    /// <summary>We sent END_STREAM (or the server stopped the request body).</summary>
    internal bool LocalEnded { get; set; }

    /// <summary>The server's RST_STREAM(NO_ERROR) after a complete response: the rest of the request body is dropped.</summary>
    internal bool SendStopped { get; set; }

    /// <summary>The server sent END_STREAM.</summary>
    internal bool RemoteEnded { get; set; }

    internal Http2StreamException? Failure { get; set; }

    /// <summary>
    /// Sends request body bytes within the stream's and the connection's send windows (waiting for WINDOW_UPDATE when
    /// they are used up), as DATA frames no larger than the server's SETTINGS_MAX_FRAME_SIZE; with
    /// <paramref name="endStream"/> the last frame ends the request (empty data sends an empty DATA with END_STREAM).
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    public async ValueTask WriteDataAsync(ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ThrowIfCancelled(cancellationToken);
            int n;
            ValueTask wait = default;
            var waiting = false;
            lock (_connection.Sync)
            {
                if (Failure is { } failure)
                {
                    throw failure;
                }
                if (SendStopped)
                {
                    return;
                }
                if (LocalEnded)
                {
                    throw new InvalidOperationException($"HTTP/2 stream {Id}: the request already ended (END_STREAM sent)");
                }
                if (data.IsEmpty)
                {
                    if (!endStream)
                    {
                        return;
                    }
                    n = 0;
                }
                else
                {
                    var available = Math.Min(SendWindow.Available, _connection.SendWindowAvailableLocked);
                    if (available <= 0)
                    {
                        wait = _writeSignal.Arm();
                        waiting = true;
                        n = 0;
                    }
                    else
                    {
                        // A few frames per turn, so streams sharing the connection take turns.
                        n = Math.Min(Math.Min(available, data.Length), 4 * _connection.PeerMaxFrameSizeLocked);
                        SendWindow.TryConsume(n);
                        _connection.ConsumeSendWindowLocked(n);
                    }
                }
            }
            if (waiting)
            {
                await Http2Signal.WaitAsync(wait, _writeSignal, _connection.Sync, cancellationToken).ConfigureAwait(false);
                continue;
            }
            var last = endStream && n == data.Length;
            try
            {
                await _connection.WriteDataFramesAsync(this, data[..n], last, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                Reset(Http2ErrorCode.Cancel);
                throw;
            }
            data = data[n..];
            if (data.IsEmpty)
            {
                return;
            }
        }
    }

    /// <summary>Waits for the response head (1xx interim responses are skipped).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public async ValueTask<Http2ResponseHead> ReadResponseHeadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ThrowIfCancelled(cancellationToken);
            ValueTask wait;
            lock (_connection.Sync)
            {
                if (Head is { } head)
                {
                    return head;
                }
                if (Failure is { } failure)
                {
                    throw failure;
                }
                wait = _readSignal.Arm();
            }
            await Http2Signal.WaitAsync(wait, _readSignal, _connection.Sync, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Copies response body bytes into <paramref name="destination"/>; 0 at the end of the response.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public async ValueTask<int> ReadDataAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (destination.IsEmpty)
        {
            throw new ArgumentException("the destination is empty; 0 would read as the end of the response", nameof(destination));
        }
        while (true)
        {
            ThrowIfCancelled(cancellationToken);
            ValueTask wait;
            var flush = false;
            var n = 0;
            lock (_connection.Sync)
            {
                if (Failure is { } failure)
                {
                    throw failure;
                }
                if (_bufferEnd > _bufferStart)
                {
                    n = Math.Min(destination.Length, _bufferEnd - _bufferStart);
                    _buffer.AsSpan(_bufferStart, n).CopyTo(destination.Span);
                    _bufferStart += n;
                    flush = _connection.CreditConnectionLocked(n) | _connection.CreditStreamLocked(this, n);
                    wait = default;
                }
                else if (RemoteEnded)
                {
                    ReturnBufferLocked();
                    return 0;
                }
                else
                {
                    wait = _readSignal.Arm();
                }
            }
            if (n > 0)
            {
                if (flush)
                {
                    _connection.ScheduleControlFlush();
                }
                return n;
            }
            await Http2Signal.WaitAsync(wait, _readSignal, _connection.Sync, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The response ended and every byte of its body was read: the next read returns 0.</summary>
    public bool BodyDrained
    {
        get
        {
            lock (_connection.Sync)
            {
                return RemoteEnded && _bufferEnd == _bufferStart && Failure is null;
            }
        }
    }

    /// <summary>Ends the stream with RST_STREAM(<paramref name="code"/>); a no-op on a finished stream.</summary>
    public void Reset(Http2ErrorCode code)
    {
        lock (_connection.Sync)
        {
            if (Failure is not null || (LocalEnded && RemoteEnded))
            {
                return;
            }
            _connection.QueueRstStreamLocked(Id, code);
            _connection.FailStreamLocked(this, new Http2StreamException(code, false, $"HTTP/2 stream {Id} was reset by the client with {Http2Names.Of(code)}"));
        }
        _connection.ScheduleControlFlush();
    }

    /// <summary>Resets an unfinished stream (CANCEL) and returns the receive buffer.</summary>
    public void Dispose()
    {
        Reset(Http2ErrorCode.Cancel);
        lock (_connection.Sync)
        {
            _connection.CreditConnectionLocked(DropBufferedLocked());
        }
        _connection.ScheduleControlFlush();
    }

    private void ThrowIfCancelled(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            Reset(Http2ErrorCode.Cancel);
            throw new OperationCanceledException(cancellationToken);
        }
    }

    // ---- Called by the connection under its Sync lock -----------------------------------------------------------

    internal void WakeReaderLocked() => _readSignal.Set();

    internal void WakeWriterLocked() => _writeSignal.Set();

    internal void WakeLocked()
    {
        _readSignal.Set();
        _writeSignal.Set();
    }

    /// <summary>A decoded HEADERS block; returns a problem (malformed response) or null.</summary>
    internal string? OnFieldsLocked(int status, List<Http2HeaderField>? fields, bool endStream)
    {
        if (Head is null)
        {
            if (status == 0)
            {
                return "the response HEADERS has no :status";
            }
            if (status < 200)
            {
                return endStream ? $"an interim {status} response ends the stream" : null;
            }
            Head = new Http2ResponseHead(status, (IReadOnlyList<Http2HeaderField>?)fields ?? [], endStream);
            _readSignal.Set();
            return null;
        }
        if (!endStream)
        {
            return "a second HEADERS without END_STREAM (trailers must end the stream)";
        }
        Trailers = (IReadOnlyList<Http2HeaderField>?)fields ?? [];
        return null;
    }

    internal void AppendLocked(in ReadOnlySequence<byte> payload)
    {
        var length = (int)payload.Length;
        if (length == 0)
        {
            return;
        }
        if (_buffer is null || _buffer.Length - _bufferEnd < length)
        {
            // Move what is unread to the front, growing the buffer when that does not make room.
            var buffered = _bufferEnd - _bufferStart;
            _buffer?.AsSpan(_bufferStart, buffered).CopyTo(_buffer);
            PooledArrays.Grow(ref _buffer, buffered, buffered + length, Math.Min(2 * (buffered + length), 16 * 1024));
            _bufferStart = 0;
            _bufferEnd = buffered;
        }
        payload.CopyTo(_buffer.AsSpan(_bufferEnd));
        _bufferEnd += length;
    }

    /// <summary>Drops unread bytes and returns the buffer; the count, to credit to the connection window.</summary>
    internal int DropBufferedLocked()
    {
        var dropped = _bufferEnd - _bufferStart;
        ReturnBufferLocked();
        return dropped;
    }

    private void ReturnBufferLocked()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
        _bufferStart = _bufferEnd = 0;
    }
}
