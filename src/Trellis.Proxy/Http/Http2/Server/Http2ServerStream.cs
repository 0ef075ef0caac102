using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Threading;

namespace Trellis.Proxy.Http.Http2.Server;

/// <summary>
/// One request stream of an <see cref="Http2ServerConnection"/>, handed to <see cref="IHttp2ServerHandler"/>. The
/// request head is complete when the handler gets it; the body is read with <see cref="ReadDataAsync"/> (0 at its
/// end, then <see cref="RequestTrailers"/>). The response is <see cref="WriteResponseHeadAsync"/>, then any number of
/// <see cref="WriteDataAsync"/>, then optionally <see cref="WriteTrailersAsync"/>; reading and writing may run
/// concurrently (one reader, one writer). When the client resets the stream or the connection goes away, waits
/// throw <see cref="Http2StreamException"/> and <see cref="Aborted"/> is cancelled.
/// <para>
/// Regular request fields are kept as bytes (no string per field): <see cref="FieldCount"/>,
/// <see cref="FieldName"/>, <see cref="FieldValue"/>, <see cref="TryGetField"/>; <see cref="GetFields"/> makes
/// strings. Their spans are valid until the handler's task ends.
/// </para>
/// <para>
/// The connection disposes the stream when the handler's task ends (ending an unfinished response first); a
/// handler need not.
/// </para>
/// </summary>
internal sealed class Http2ServerStream : IThreadPoolWorkItem, IDisposable
{
    /// <summary>At most this many body bytes go out per turn, so streams sharing the connection take turns.</summary>
    private const int MaxWriteChunk = 64 * 1024;

    private readonly Http2ServerConnection _connection;
    // Made on the first wait: a request served without waiting never needs them.
    private Http2Signal? _readSignal;
    private Http2Signal? _writeSignal;
    private byte[]? _body;
    private int _bodyStart;
    private int _bodyEnd;
    private byte[]? _fieldBytes;
    private int _fieldBytesUsed;
    private int[]? _fieldOffsets;
    private int _fieldCount;
    private CancellationTokenSource? _aborted;

    internal Http2ServerStream(Http2ServerConnection connection, int id, int sendWindow, int receiveWindow)
    {
        _connection = connection;
        Id = id;
        SendWindow = new Http2FlowWindow(sendWindow);
        ReceiveWindow = new Http2ReceiveWindow(receiveWindow);
    }

    public int Id { get; }

    /// <summary>:method (GET, POST ... as shared strings for the common methods).</summary>
    public string Method { get; internal set; } = "";

    /// <summary>:scheme; empty for CONNECT.</summary>
    public string Scheme { get; internal set; } = "";

    /// <summary>:authority, or the host field when :authority is absent; may be empty.</summary>
    public string Authority { get; internal set; } = "";

    /// <summary>:path; empty for CONNECT.</summary>
    public string Path { get; internal set; } = "";

    /// <summary>:protocol of an extended CONNECT (RFC 8441), else null.</summary>
    public string? Protocol { get; internal set; }

    /// <summary>The request's content-length, or -1 when it has none.</summary>
    public long ContentLength { get; internal set; } = -1;

    /// <summary>The request head carried END_STREAM: there is no body.</summary>
    public bool RequestHeadEndsStream { get; internal set; }

    /// <summary>The request trailers, once received (read the body to its end first); null when there were none.</summary>
    public IReadOnlyList<Http2HeaderField>? RequestTrailers { get; internal set; }

    /// <summary>Regular request fields (pseudo-headers excluded).</summary>
    public int FieldCount => _fieldCount;

    /// <summary>Cancelled when the client resets the stream, the connection fails or closes, or the handler resets it.</summary>
    public CancellationToken Aborted
    {
        get
        {
            lock (_connection.Sync)
            {
                if (_aborted is null)
                {
                    _aborted = new CancellationTokenSource();
                    if (Failure is not null)
                    {
                        _aborted.Cancel();
                    }
                }
                return _aborted.Token;
            }
        }
    }

    /// <summary>The response head was written.</summary>
    public bool ResponseStarted
    {
        get
        {
            lock (_connection.Sync)
            {
                return HeadSent;
            }
        }
    }

    // State below is guarded by the connection's Sync lock.
    internal Http2FlowWindow SendWindow;
    internal Http2ReceiveWindow ReceiveWindow;

    internal long BodyReceived { get; set; }

    /// <summary>The client sent END_STREAM.</summary>
    internal bool RemoteEnded { get; set; }

    /// <summary>We sent END_STREAM (or the stream was reset).</summary>
    internal bool LocalEnded { get; set; }

    internal bool HeadSent { get; set; }

    internal bool TrailersSent { get; set; }

    /// <summary>In the connection's table of open streams.</summary>
    internal bool Open { get; set; }

    /// <summary>The stream was reset (by either side) or its connection failed.</summary>
    internal Http2StreamException? Failure { get; set; }

    /// <summary>The connection's output position this stream's last write must reach before the write completes.</summary>
    internal long FlushTarget { get; set; }

    /// <summary>In the connection's list of writers waiting for a flush.</summary>
    internal bool WaitingForFlush { get; set; }

    /// <summary>The name of regular field <paramref name="index"/> (lower case).</summary>
    public ReadOnlySpan<byte> FieldName(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_fieldCount, nameof(index));
        return _fieldBytes.AsSpan(_fieldOffsets![4 * index], _fieldOffsets[(4 * index) + 1]);
    }

    /// <summary>The value of regular field <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> FieldValue(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_fieldCount, nameof(index));
        return _fieldBytes.AsSpan(_fieldOffsets![(4 * index) + 2], _fieldOffsets[(4 * index) + 3]);
    }

    /// <summary>The first value of the field named <paramref name="name"/> (lower case).</summary>
    public bool TryGetField(ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        for (var i = 0; i < _fieldCount; i++)
        {
            if (FieldName(i).SequenceEqual(name))
            {
                value = FieldValue(i);
                return true;
            }
        }
        value = default;
        return false;
    }

    /// <summary>The regular fields as strings (allocates).</summary>
    public List<Http2HeaderField> GetFields()
    {
        var fields = new List<Http2HeaderField>(_fieldCount);
        for (var i = 0; i < _fieldCount; i++)
        {
            fields.Add(new Http2HeaderField(Encoding.Latin1.GetString(FieldName(i)), Encoding.Latin1.GetString(FieldValue(i))));
        }
        return fields;
    }

    /// <summary>Copies request body bytes into <paramref name="destination"/>; 0 at the end of the body. The windows
    /// are reopened (WINDOW_UPDATE) as bytes are taken, so a slow reader slows the client down.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public async ValueTask<int> ReadDataAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (destination.IsEmpty)
        {
            throw new ArgumentException("the destination is empty; 0 would read as the end of the body", nameof(destination));
        }
        while (true)
        {
            ThrowIfCancelled(cancellationToken);
            ValueTask wait = default;
            var n = 0;
            var flush = false;
            lock (_connection.Sync)
            {
                if (_bodyEnd > _bodyStart)
                {
                    n = Math.Min(destination.Length, _bodyEnd - _bodyStart);
                    _body.AsSpan(_bodyStart, n).CopyTo(destination.Span);
                    _bodyStart += n;
                    var credit = _connection.CreditConnectionLocked(n) | _connection.CreditStreamLocked(this, n);
                    flush = credit && _connection.BeginFlushLocked();
                }
                else if (Failure is { } failure)
                {
                    throw failure;
                }
                else if (RemoteEnded)
                {
                    return 0;
                }
                else
                {
                    wait = (_readSignal ??= new()).Arm();
                }
            }
            if (n > 0)
            {
                if (flush)
                {
                    await _connection.FlushLoopAsync().ConfigureAwait(false);
                }
                return n;
            }
            await Http2Signal.WaitAsync(wait, _readSignal!, _connection.Sync, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends the response head: <paramref name="status"/> (100..999) and <paramref name="fields"/> (lower-case names,
    /// no pseudo-headers or connection-specific fields). With <paramref name="endStream"/> the response has no body
    /// (for gRPC, a trailers-only response: put grpc-status among the fields). Completes when the frames are handed
    /// to the transport.
    /// </summary>
    public ValueTask WriteResponseHeadAsync(int status, IReadOnlyList<Http2HeaderField>? fields, bool endStream)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(status, 100);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(status, 999);
        long target;
        lock (_connection.Sync)
        {
            ThrowIfCannotWriteLocked();
            if (HeadSent)
            {
                throw new InvalidOperationException($"HTTP/2 stream {Id}: the response head was already written");
            }
            HeadSent = true;
            target = _connection.QueueHeadersLocked(Id, status, fields, endStream);
            if (endStream)
            {
                _connection.OnLocalEndLocked(this);
            }
        }
        return CommitAsync(target);
    }

    /// <summary>
    /// Sends response body bytes within the stream's and the connection's send windows (waiting for WINDOW_UPDATE
    /// when they are used up), as DATA frames no larger than the client's SETTINGS_MAX_FRAME_SIZE. With
    /// <paramref name="endStream"/> the last frame ends the response (empty data sends an empty DATA with END_STREAM).
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    public async ValueTask WriteDataAsync(ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ThrowIfCancelled(cancellationToken);
            ValueTask wait = default;
            long target = 0;
            var done = false;
            var mustWait = false;
            lock (_connection.Sync)
            {
                ThrowIfCannotWriteLocked();
                if (!HeadSent)
                {
                    throw new InvalidOperationException($"HTTP/2 stream {Id}: write the response head before the body");
                }
                if (TrailersSent)
                {
                    throw new InvalidOperationException($"HTTP/2 stream {Id}: the trailers were already written");
                }
                var n = 0;
                if (data.IsEmpty && !endStream)
                {
                    return;
                }
                if (!data.IsEmpty && _connection.OutputBackloggedLocked(out var backlog))
                {
                    // Let the flush under way catch up before queueing more.
                    FlushTarget = backlog;
                    _connection.AddFlushWaiterLocked(this);
                    mustWait = true;
                }
                if (!data.IsEmpty && !mustWait)
                {
                    var available = Math.Min(SendWindow.Available, _connection.SendWindowAvailableLocked);
                    if (available <= 0)
                    {
                        // Both windows must be open: wait for WINDOW_UPDATE (or SETTINGS).
                        mustWait = true;
                    }
                    else
                    {
                        n = Math.Min(Math.Min(available, data.Length), MaxWriteChunk);
                        SendWindow.TryConsume(n);
                        _connection.ConsumeSendWindowLocked(n);
                    }
                }
                if (mustWait)
                {
                    wait = (_writeSignal ??= new()).Arm();
                }
                else
                {
                    var last = endStream && n == data.Length;
                    target = _connection.QueueDataLocked(Id, data.Span[..n], last);
                    if (last)
                    {
                        _connection.OnLocalEndLocked(this);
                    }
                    data = data[n..];
                    done = data.IsEmpty;
                }
            }
            if (mustWait)
            {
                await Http2Signal.WaitAsync(wait, _writeSignal!, _connection.Sync, cancellationToken).ConfigureAwait(false);
                continue;
            }
            await CommitAsync(target).ConfigureAwait(false);
            if (done)
            {
                return;
            }
        }
    }

    /// <summary>Ends the response with trailers (gRPC's grpc-status): a HEADERS frame with END_STREAM.</summary>
    public ValueTask WriteTrailersAsync(IReadOnlyList<Http2HeaderField> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        long target;
        lock (_connection.Sync)
        {
            ThrowIfCannotWriteLocked();
            if (!HeadSent)
            {
                throw new InvalidOperationException($"HTTP/2 stream {Id}: write the response head before the trailers (or send a trailers-only head with endStream)");
            }
            TrailersSent = true;
            target = _connection.QueueHeadersLocked(Id, 0, fields, endStream: true);
            _connection.OnLocalEndLocked(this);
        }
        return CommitAsync(target);
    }

    /// <summary>Ends the stream with RST_STREAM(<paramref name="code"/>); a no-op on a finished stream.</summary>
    public void Reset(Http2ErrorCode code)
    {
        lock (_connection.Sync)
        {
            if (Failure is not null || !Open)
            {
                return;
            }
            _connection.ResetStreamLocked(this, code, $"HTTP/2 stream {Id} was reset by the server with {Http2Names.Of(code)}", countsAsAbuse: false);
            _connection.ScheduleFlushLocked();
        }
    }

    void IThreadPoolWorkItem.Execute() => _ = _connection.RunHandlerAsync(this);

    /// <summary>Resets an unfinished stream (CANCEL) and returns its pooled buffers; the connection calls it when
    /// the handler's task ends.</summary>
    public void Dispose()
    {
        Reset(Http2ErrorCode.Cancel);
        lock (_connection.Sync)
        {
            _connection.CreditConnectionLocked(ReleaseLocked());
            _aborted?.Dispose();
        }
    }

    private void ThrowIfCannotWriteLocked()
    {
        if (Failure is { } failure)
        {
            throw failure;
        }
        if (LocalEnded)
        {
            throw new InvalidOperationException($"HTTP/2 stream {Id}: the response already ended (END_STREAM sent)");
        }
    }

    /// <summary>
    /// Waits until the connection's output has passed <paramref name="target"/> (where this stream's frames end):
    /// as the flusher when nobody flushes, else for the flush under way. Throws when the bytes can no longer be sent.
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask CommitAsync(long target)
    {
        while (true)
        {
            ValueTask wait = default;
            var flusher = false;
            lock (_connection.Sync)
            {
                if (_connection.FlushedTotalLocked >= target)
                {
                    return;
                }
                if (_connection.BeginFlushLocked())
                {
                    flusher = true;
                }
                else if (_connection.IsFlushingLocked)
                {
                    FlushTarget = target;
                    wait = (_writeSignal ??= new()).Arm();
                    _connection.AddFlushWaiterLocked(this);
                }
                else
                {
                    throw Failure ?? _connection.FailureLocked ?? new Http2StreamException(Http2ErrorCode.InternalError, false, $"HTTP/2 stream {Id}: the response could not be sent");
                }
            }
            if (flusher)
            {
                await _connection.FlushLoopAsync().ConfigureAwait(false);
            }
            else
            {
                await wait.ConfigureAwait(false);
            }
        }
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

    internal void WakeReaderLocked() => _readSignal?.Set();

    internal void WakeWriterLocked() => _writeSignal?.Set();

    /// <summary>Fails the stream's waits and cancels <see cref="Aborted"/> (off the lock, on the thread pool).</summary>
    internal void AbortLocked(Http2StreamException failure)
    {
        Failure ??= failure;
        _readSignal?.Set();
        _writeSignal?.Set();
        if (_aborted is { } aborted)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static cts =>
            {
                try
                {
                    cts.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The handler had already ended.
                }
            }, aborted, preferLocal: false);
        }
    }

    /// <summary>Keeps a regular request field (bytes copied into a pooled buffer).</summary>
    internal void AddFieldLocked(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        PooledArrays.Grow(ref _fieldBytes, _fieldBytesUsed, _fieldBytesUsed + name.Length + value.Length, 512);
        PooledArrays.Grow(ref _fieldOffsets, 4 * _fieldCount, 4 * (_fieldCount + 1), 64);
        var at = 4 * _fieldCount;
        _fieldOffsets[at] = _fieldBytesUsed;
        _fieldOffsets[at + 1] = name.Length;
        name.CopyTo(_fieldBytes.AsSpan(_fieldBytesUsed));
        _fieldBytesUsed += name.Length;
        _fieldOffsets[at + 2] = _fieldBytesUsed;
        _fieldOffsets[at + 3] = value.Length;
        value.CopyTo(_fieldBytes.AsSpan(_fieldBytesUsed));
        _fieldBytesUsed += value.Length;
        _fieldCount++;
    }

    /// <summary>Buffers request body bytes until the handler reads them (the stream window bounds how many).</summary>
    internal void AppendBodyLocked(in ReadOnlySequence<byte> payload)
    {
        var length = (int)payload.Length;
        if (length == 0)
        {
            return;
        }
        if (_body is null || _body.Length - _bodyEnd < length)
        {
            // Move what is unread to the front, growing the buffer when that does not make room.
            var buffered = _bodyEnd - _bodyStart;
            _body?.AsSpan(_bodyStart, buffered).CopyTo(_body);
            PooledArrays.Grow(ref _body, buffered, buffered + length, 4096);
            _bodyStart = 0;
            _bodyEnd = buffered;
        }
        payload.CopyTo(_body.AsSpan(_bodyEnd));
        _bodyEnd += length;
    }

    /// <summary>Drops unread body bytes and returns the buffer; the count, to credit to the connection window.</summary>
    internal int DropBodyLocked()
    {
        var dropped = _bodyEnd - _bodyStart;
        if (_body is not null)
        {
            ArrayPool<byte>.Shared.Return(_body);
            _body = null;
        }
        _bodyStart = _bodyEnd = 0;
        return dropped;
    }

    /// <summary>After the handler: every pooled buffer goes back.</summary>
    internal int ReleaseLocked()
    {
        if (_fieldBytes is not null)
        {
            ArrayPool<byte>.Shared.Return(_fieldBytes);
            _fieldBytes = null;
        }
        if (_fieldOffsets is not null)
        {
            ArrayPool<int>.Shared.Return(_fieldOffsets);
            _fieldOffsets = null;
        }
        _fieldCount = 0;
        _fieldBytesUsed = 0;
        return DropBodyLocked();
    }
}
