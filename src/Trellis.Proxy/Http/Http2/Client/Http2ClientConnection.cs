using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Hpack;
using Trellis.Proxy.Security;
using Trellis.Proxy.Tcp;
using Trellis.Proxy.Threading;

namespace Trellis.Proxy.Http.Http2.Client;

/// <summary>
/// Our HTTP/2 client connection to one upstream endpoint (h2c with prior knowledge, RFC 9113 section 3.3): many
/// concurrent request streams over one socket.
/// <para>
/// Threads: one reader loop reads frames and dispatches them under <see cref="Sync"/>, which guards all connection and
/// stream state. Bytes reach the socket only under <see cref="_writeLock"/> (one writer at a time, flushed per
/// logical operation: one HEADERS block, one run of DATA frames). Frames the reader loop (or a stream's consumer)
/// must send — SETTINGS ACK, PING ACK, WINDOW_UPDATE, RST_STREAM, GOAWAY — are queued in <see cref="_control"/> and
/// go out with the next write, or with a flush of their own; so no lock is ever held while waiting for the socket.
/// </para>
/// <para>
/// Stream limit: when the peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached, <see cref="OpenStreamAsync"/> fails fast
/// with a retry-safe <see cref="Http2StreamException"/> (<see cref="Http2StreamException.NotProcessed"/>); a pool is
/// expected to check <see cref="CanOpenStream"/> and use (or open) another connection instead of queueing here.
/// </para>
/// </summary>
internal sealed class Http2ClientConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly SslStream? _tls;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly Http2ClientOptions _options;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Dictionary<int, Http2ClientStream> _streams = [];
    private readonly ArrayBufferWriter<byte> _control = new(256);
    private readonly ArrayBufferWriter<byte> _headerBlock = new(1024);
    private readonly HpackEncoder _encoder = new();
    private readonly HpackDecoder _decoder;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _firstSettings = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Http2FrameReader _frameReader;
    private Http2PeerSettings _peer;
    private Http2FlowWindow _sendWindow = new(Http2Limits.DefaultInitialWindowSize);
    private Http2ReceiveWindow _receiveWindow;
    private int _nextStreamId = 1;
    private int _lastStreamId;
    private bool _settingsReceived;
    private bool _goingAway;
    private int _goAwayLastStreamId = int.MaxValue;
    private Http2StreamException? _failure;
    private int _pendingTableSize = -1;
    private bool _controlFlushScheduled;
    private byte[] _fieldBytes = new byte[256];
    private Http2FieldBlock _fieldBlock;
    private Task _readLoop = Task.CompletedTask;

    private Http2ClientConnection(Socket socket, SslStream? tls, IPEndPoint endpoint, Http2ClientOptions options, TimeProvider time)
    {
        _socket = socket;
        _tls = tls;
        Endpoint = endpoint;
        // Plaintext reads and writes the socket directly; TLS goes through the stream (16 KiB records).
        _reader = tls is null ? new SocketReader(socket) : TlsPipes.Reader(tls);
        _writer = tls is null ? new SocketWriter(socket) : TlsPipes.Writer(tls);
        _options = options;
        _time = time;
        _decoder = new HpackDecoder(HpackDecoder.DefaultTableSize, options.MaxHeaderListSize);
        var peer = Http2PeerSettings.Default;
        peer.EnablePush = false;
        _peer = peer;
        _receiveWindow = new Http2ReceiveWindow(options.ConnectionWindowSize);
    }

    /// <summary>Guards the state of the connection and of all its streams.</summary>
    internal Lock Sync { get; } = new();

    internal Http2ClientOptions Options => _options;

    public IPEndPoint Endpoint { get; }

    /// <summary>
    /// Called (under the connection's lock: only signal, never block or take other locks) each time a stream leaves
    /// the table, which frees a slot under the server's SETTINGS_MAX_CONCURRENT_STREAMS.
    /// </summary>
    internal Action<Http2ClientConnection>? StreamClosed { get; set; }

    /// <summary>Streams open on this connection (request or response not yet finished).</summary>
    public int ActiveStreams
    {
        get
        {
            lock (Sync)
            {
                return _streams.Count;
            }
        }
    }

    /// <summary>Not closed, no GOAWAY received, and below the server's SETTINGS_MAX_CONCURRENT_STREAMS.</summary>
    public bool CanOpenStream
    {
        get
        {
            lock (Sync)
            {
                return CanOpenStreamLocked() is null;
            }
        }
    }

    /// <summary>Completes when the connection is closed (by either side, or after an error); never faults.</summary>
    public Task Closed => _closed.Task;

    /// <summary>Connects, sends the preface, our SETTINGS and the connection WINDOW_UPDATE, starts the reader loop and
    /// waits for the server's SETTINGS (within <see cref="Http2ClientOptions.ConnectTimeout"/>).</summary>
    public static async Task<Http2ClientConnection> ConnectAsync(IPEndPoint endpoint, Http2ClientOptions options, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        options.Validate();
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using (var timeout = new CancellationTokenSource(options.ConnectTimeout, timeProvider))
        using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token))
        {
            try
            {
                await socket.ConnectAsync(endpoint, linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                throw new TimeoutException($"HTTP/2 connection to {endpoint}: no connection within {options.ConnectTimeout.TotalMilliseconds} ms");
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        // The SETTINGS exchange gets its own ConnectTimeout, as for a connection the caller made.
        return await StartAsync(socket, null, endpoint, options, timeProvider, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts HTTP/2 on a connection the caller has already made: a connected socket, and the TLS stream over it when
    /// the caller has completed a handshake that chose h2 (the connection then owns both). Sends the preface and
    /// waits for the server's SETTINGS as <see cref="ConnectAsync"/> does.
    /// </summary>
    public static async Task<Http2ClientConnection> StartAsync(Socket socket, SslStream? tls, IPEndPoint endpoint, Http2ClientOptions options,
        TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        options.Validate();
        using var timeout = new CancellationTokenSource(options.ConnectTimeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var connection = new Http2ClientConnection(socket, tls, endpoint, options, timeProvider);
        try
        {
            await connection.StartAsync(linked.Token).ConfigureAwait(false);
            return connection;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            await CleanUpAsync(connection, socket).ConfigureAwait(false);
            throw new TimeoutException($"HTTP/2 connection to {endpoint}: no server SETTINGS within {options.ConnectTimeout.TotalMilliseconds} ms");
        }
        catch
        {
            await CleanUpAsync(connection, socket).ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask CleanUpAsync(Http2ClientConnection? connection, Socket socket)
    {
        if (connection is not null)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        socket.Dispose();
    }

    private async Task StartAsync(CancellationToken cancellationToken)
    {
        _writer.Write(Http2Preface.ClientPreface);
        Span<Http2Setting> settings =
        [
            new(Http2SettingId.HeaderTableSize, HpackDecoder.DefaultTableSize),
            new(Http2SettingId.EnablePush, 0),
            new(Http2SettingId.MaxConcurrentStreams, (uint)_options.MaxConcurrentStreams),
            new(Http2SettingId.InitialWindowSize, (uint)_options.StreamWindowSize),
            new(Http2SettingId.MaxHeaderListSize, (uint)_options.MaxHeaderListSize),
        ];
        Http2FrameWriter.Settings(_writer, settings);
        var raise = _options.ConnectionWindowSize - Http2Limits.DefaultInitialWindowSize;
        if (raise > 0)
        {
            Http2FrameWriter.WindowUpdate(_writer, 0, raise);
        }
        await FlushWriterAsync(cancellationToken).ConfigureAwait(false);
        _readLoop = ReadLoopAsync();
        await _firstSettings.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Opens a stream and sends its request head: <paramref name="fields"/> holds the pseudo-headers (:method,
    /// :scheme, :authority, :path) first, then lower-case fields. With <paramref name="endStream"/> the request has no
    /// body. Bad fields throw <see cref="ArgumentException"/> naming the field; a connection that cannot take a new
    /// stream throws a retry-safe <see cref="Http2StreamException"/>.
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public async ValueTask<Http2ClientStream> OpenStreamAsync(IReadOnlyList<Http2HeaderField> fields, bool endStream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fields);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ValidateRequestFields(fields);
            Http2ClientStream stream;
            int maxFrameSize;
            int tableSize;
            lock (Sync)
            {
                if (CanOpenStreamLocked() is { } reason)
                {
                    throw _failure is not null && !_goingAway
                        ? new Http2StreamException(_failure.ErrorCode, true, $"HTTP/2 connection to {Endpoint}: {reason}")
                        : new Http2StreamException(Http2ErrorCode.RefusedStream, true, $"HTTP/2 connection to {Endpoint}: {reason}");
                }
                var id = _nextStreamId;
                _nextStreamId += 2;
                _lastStreamId = id;
                stream = new Http2ClientStream(this, id, _peer.InitialWindowSize, _options.StreamWindowSize, endStream);
                _streams.Add(id, stream);
                maxFrameSize = _peer.MaxFrameSize;
                tableSize = _pendingTableSize;
                _pendingTableSize = -1;
                DrainControlLocked();
            }
            if (tableSize >= 0)
            {
                _encoder.SetPeerMaxTableSize(tableSize);
            }
            _headerBlock.ResetWrittenCount();
            _encoder.BeginBlock(_headerBlock);
            for (var i = 0; i < fields.Count; i++)
            {
                var field = fields[i];
                var nameLength = Http2HeaderFields.ToLatin1(ref _fieldBytes, field.Name, 0);
                var valueLength = Http2HeaderFields.ToLatin1(ref _fieldBytes, field.Value, nameLength);
                var indexing = field.Name is "authorization" or "proxy-authorization" ? HpackIndexing.NeverIndexed : HpackIndexing.Incremental;
                _encoder.WriteHeader(_headerBlock, _fieldBytes.AsSpan(0, nameLength), _fieldBytes.AsSpan(nameLength, valueLength), indexing);
            }
            Http2FrameWriter.Headers(_writer, stream.Id, _headerBlock.WrittenSpan, endStream, maxFrameSize);
            await FlushOrFailAsync().ConfigureAwait(false);
            return stream;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void ValidateRequestFields(IReadOnlyList<Http2HeaderField> fields)
    {
        var regularSeen = false;
        var seen = 0;
        var isConnect = false;
        for (var i = 0; i < fields.Count; i++)
        {
            var (name, value) = fields[i];
            if (name is null || value is null)
            {
                throw new ArgumentException($"request field {i} has a null name or value", nameof(fields));
            }
            if (name.AsSpan().ContainsAnyExceptInRange('\0', '\u00FF') || value.AsSpan().ContainsAnyExceptInRange('\0', '\u00FF'))
            {
                throw new ArgumentException($"request field '{name}' has a character outside Latin-1", nameof(fields));
            }
            var nameLength = Http2HeaderFields.ToLatin1(ref _fieldBytes, name, 0);
            var valueLength = Http2HeaderFields.ToLatin1(ref _fieldBytes, value, nameLength);
            var nameBytes = _fieldBytes.AsSpan(0, nameLength);
            var valueBytes = _fieldBytes.AsSpan(nameLength, valueLength);
            if (Http2HeaderValidation.IsPseudo(nameBytes))
            {
                var pseudo = Http2HeaderValidation.GetPseudo(nameBytes);
                if (pseudo is Http2PseudoHeader.None or Http2PseudoHeader.Status)
                {
                    throw new ArgumentException($"request field '{name}' is not a request pseudo-header (:method, :scheme, :authority, :path, :protocol)", nameof(fields));
                }
                if (regularSeen)
                {
                    throw new ArgumentException($"pseudo-header '{name}' follows a regular field; pseudo-headers come first (RFC 9113 section 8.3)", nameof(fields));
                }
                var bit = 1 << (int)pseudo;
                if ((seen & bit) != 0)
                {
                    throw new ArgumentException($"pseudo-header '{name}' appears twice", nameof(fields));
                }
                seen |= bit;
                if (pseudo == Http2PseudoHeader.Method)
                {
                    isConnect = value == "CONNECT";
                }
                if (value.Length == 0 || !Http2HeaderValidation.IsValidValue(valueBytes))
                {
                    throw new ArgumentException($"pseudo-header '{name}' has an empty or invalid value", nameof(fields));
                }
                continue;
            }
            regularSeen = true;
            switch (Http2HeaderValidation.Check(nameBytes, valueBytes))
            {
                case Http2FieldProblem.InvalidName:
                    throw new ArgumentException($"request field name '{name}' is not a valid HTTP/2 name (lower-case token characters)", nameof(fields));
                case Http2FieldProblem.ConnectionSpecific:
                    throw new ArgumentException($"request field '{name}' is connection-specific and not allowed in HTTP/2 (RFC 9113 section 8.2.2)", nameof(fields));
                case Http2FieldProblem.InvalidValue:
                    throw new ArgumentException($"request field '{name}' has a value with NUL, CR, LF or surrounding whitespace", nameof(fields));
            }
        }
        var required = isConnect ? 1 << (int)Http2PseudoHeader.Authority : (1 << (int)Http2PseudoHeader.Scheme) | (1 << (int)Http2PseudoHeader.Path);
        required |= 1 << (int)Http2PseudoHeader.Method;
        if ((seen & required) != required)
        {
            throw new ArgumentException(isConnect
                ? "a CONNECT request needs :method and :authority"
                : "a request needs the pseudo-headers :method, :scheme and :path", nameof(fields));
        }
    }

    private string? CanOpenStreamLocked()
    {
        if (_failure is not null)
        {
            return $"the connection is closed ({_failure.Message})";
        }
        if (_goingAway)
        {
            return $"the server sent GOAWAY (last stream id {_goAwayLastStreamId}); no new streams";
        }
        if ((uint)_streams.Count >= _peer.MaxConcurrentStreams)
        {
            return $"{_streams.Count} streams open, at the server's SETTINGS_MAX_CONCURRENT_STREAMS {_peer.MaxConcurrentStreams}";
        }
        if (_nextStreamId > Http2Limits.MaxStreamId - 1)
        {
            return "stream identifiers are exhausted";
        }
        return null;
    }

    // ---- Writing --------------------------------------------------------------------------------------------------

    /// <summary>Sends <paramref name="data"/> (already counted against both send windows) as DATA frames.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    internal async ValueTask WriteDataFramesAsync(Http2ClientStream stream, ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellationToken)
    {
        try
        {
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            GiveBackSendWindow(data.Length);
            throw;
        }
        try
        {
            int maxFrameSize;
            lock (Sync)
            {
                if (stream.Failure is { } failure)
                {
                    // Reset while waiting: the bytes counted against the connection window were never sent.
                    _sendWindow.TryGrow(data.Length);
                    throw failure;
                }
                DrainControlLocked();
                maxFrameSize = _peer.MaxFrameSize;
            }
            Http2FrameWriter.Data(_writer, stream.Id, data.Span, endStream, maxFrameSize);
            await FlushOrFailAsync().ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
        if (endStream)
        {
            lock (Sync)
            {
                stream.LocalEnded = true;
                if (stream.RemoteEnded)
                {
                    RemoveStreamLocked(stream);
                }
            }
        }
    }

    private void GiveBackSendWindow(int bytes)
    {
        if (bytes > 0)
        {
            lock (Sync)
            {
                _sendWindow.TryGrow(bytes);
            }
        }
    }

    /// <summary>The connection's send window now (call under <see cref="Sync"/>).</summary>
    internal int SendWindowAvailableLocked => _sendWindow.Available;

    internal int PeerMaxFrameSizeLocked => _peer.MaxFrameSize;

    internal void ConsumeSendWindowLocked(int bytes) => _sendWindow.TryConsume(bytes);

    /// <summary>Moves queued control frames into the socket writer: under <see cref="_writeLock"/> and <see cref="Sync"/>.</summary>
    private void DrainControlLocked()
    {
        if (_control.WrittenCount > 0)
        {
            _writer.Write(_control.WrittenSpan);
            _control.ResetWrittenCount();
        }
        _controlFlushScheduled = false;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask FlushWriterAsync(CancellationToken cancellationToken)
    {
        var result = await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (result.IsCanceled)
        {
            throw new IOException($"HTTP/2 connection to {Endpoint}: writing was stopped");
        }
    }

    /// <summary>Flushes under the write lock; a socket failure fails the whole connection.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask FlushOrFailAsync()
    {
        try
        {
            await FlushWriterAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            Http2StreamException failure;
            lock (Sync)
            {
                FailLocked(Http2ErrorCode.InternalError, $"sending to {Endpoint} failed: {ex.Message}", sendGoAway: false);
                failure = _failure!;
            }
            ShutdownSocket();
            throw new Http2StreamException(failure.ErrorCode, false, failure.Message);
        }
    }

    /// <summary>Sends the queued control frames now.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private async ValueTask FlushControlAsync(CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (Sync)
            {
                DrainControlLocked();
            }
            await FlushWriterAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Sends the queued control frames soon, without waiting (from a stream's consumer or a cancellation).</summary>
    internal void ScheduleControlFlush()
    {
        lock (Sync)
        {
            if (_controlFlushScheduled || _control.WrittenCount == 0 || _failure is not null)
            {
                return;
            }
            _controlFlushScheduled = true;
        }
        _ = FlushControlInBackgroundAsync();
    }

    private async Task FlushControlInBackgroundAsync()
    {
        try
        {
            await FlushControlAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            lock (Sync)
            {
                FailLocked(Http2ErrorCode.InternalError, $"sending to {Endpoint} failed: {ex.Message}", sendGoAway: false);
            }
            ShutdownSocket();
        }
    }

    internal void QueueRstStreamLocked(int streamId, Http2ErrorCode code) => Http2FrameWriter.RstStream(_control, streamId, code);

    /// <summary>Counts bytes the consumer took (or that were dropped) against the connection's receive window, and
    /// queues a WINDOW_UPDATE once half the window is used; true when one was queued.</summary>
    internal bool CreditConnectionLocked(int bytes) =>
        _failure is null && QueueWindowUpdate(0, _receiveWindow.Credit(bytes, _options.ConnectionWindowSize / 2));

    internal bool CreditStreamLocked(Http2ClientStream stream, int bytes) =>
        !stream.RemoteEnded && stream.Failure is null && QueueWindowUpdate(stream.Id, stream.ReceiveWindow.Credit(bytes, _options.StreamWindowSize / 2));

    private bool QueueWindowUpdate(int streamId, int increment)
    {
        if (increment > 0)
        {
            Http2FrameWriter.WindowUpdate(_control, streamId, increment);
        }
        return increment > 0;
    }

    /// <summary>Ends a stream with an error: it leaves the table, its buffered bytes go back to the connection window,
    /// and its waiters wake to throw <paramref name="failure"/>.</summary>
    internal void FailStreamLocked(Http2ClientStream stream, Http2StreamException failure)
    {
        stream.Failure ??= failure;
        CreditConnectionLocked(stream.DropBufferedLocked());
        RemoveStreamLocked(stream);
        stream.WakeLocked();
    }

    /// <summary>Takes a finished stream out of the table; a pool waiting for a free stream slot hears of it.</summary>
    internal void RemoveStreamLocked(Http2ClientStream stream)
    {
        if (_streams.Remove(stream.Id))
        {
            StreamClosed?.Invoke(this);
        }
    }

    // ---- Reading --------------------------------------------------------------------------------------------------

    private async Task ReadLoopAsync()
    {
        string reason = $"the server {Endpoint} closed the connection";
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                Http2Error error = default;
                bool flush;
                lock (Sync)
                {
                    while (_failure is null)
                    {
                        var status = _frameReader.TryReadFrame(ref buffer, Http2Limits.DefaultMaxFrameSize, out var frame, out error);
                        if (status == Http2ReadStatus.NeedMoreData)
                        {
                            break;
                        }
                        if (status == Http2ReadStatus.Error)
                        {
                            if (error.IsConnectionError)
                            {
                                break;
                            }
                            ResetStreamLocked(error.StreamId, error.Code, error.Message);
                            continue;
                        }
                        error = default;
                        if (!DispatchLocked(frame, out error))
                        {
                            break;
                        }
                    }
                    if (error.IsConnectionError && error.Message is not null)
                    {
                        FailLocked(error.Code, error.Message, sendGoAway: true);
                    }
                    flush = _control.WrittenCount > 0;
                }
                if (_failure is not null)
                {
                    break;
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (flush)
                {
                    await FlushControlAsync(CancellationToken.None).ConfigureAwait(false);
                }
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            // Anything (a socket error, or a bug) ends the connection, so no stream waits forever.
            reason = $"the connection to {Endpoint} failed: {ex.Message}";
        }
        await CloseAsync(reason).ConfigureAwait(false);
    }

    /// <summary>After the reader loop: fail what is left, send any GOAWAY (bounded), close the socket.</summary>
    private async Task CloseAsync(string reason)
    {
        lock (Sync)
        {
            FailLocked(Http2ErrorCode.InternalError, reason, sendGoAway: false);
        }
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1), _time);
            await FlushControlAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // Best effort: the peer may be gone.
        }
        ShutdownSocket();
        _tls?.Dispose();
        _socket.Dispose();
        _decoder.Dispose();
        lock (Sync)
        {
            _fieldBlock.Release();
        }
        _closed.TrySetResult();
    }

    private void ShutdownSocket()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }

    /// <summary>
    /// Makes the connection unusable: every open stream fails with <paramref name="code"/>, and (with
    /// <paramref name="sendGoAway"/>) a GOAWAY is queued. Call under <see cref="Sync"/>.
    /// </summary>
    private void FailLocked(Http2ErrorCode code, string message, bool sendGoAway)
    {
        if (_failure is not null)
        {
            return;
        }
        _failure = new Http2StreamException(code, false, $"HTTP/2 connection to {Endpoint}: {message}");
        if (sendGoAway)
        {
            Http2FrameWriter.GoAway(_control, 0, code, message);
        }
        if (_streams.Count > 0)
        {
            foreach (var stream in _streams.Values.ToArray())
            {
                if (stream.RemoteEnded)
                {
                    // The response is complete: its reader keeps it; the rest of the request body is moot.
                    stream.LocalEnded = true;
                    stream.SendStopped = true;
                    RemoveStreamLocked(stream);
                    stream.WakeLocked();
                    continue;
                }
                FailStreamLocked(stream, new Http2StreamException(code, false, $"HTTP/2 stream {stream.Id} to {Endpoint} failed with the connection: {message}"));
            }
        }
        _firstSettings.TrySetException(_failure);
    }

    private bool ConnectionError(out Http2Error error, Http2ErrorCode code, string message)
    {
        error = Http2Error.Connection(code, message);
        return false;
    }

    /// <summary>A stream error found by the reader: RST_STREAM with the code, and the stream fails.</summary>
    private void ResetStreamLocked(int streamId, Http2ErrorCode code, string message)
    {
        if (_streams.TryGetValue(streamId, out var stream))
        {
            QueueRstStreamLocked(streamId, code);
            FailStreamLocked(stream, new Http2StreamException(code, false, $"HTTP/2 stream {streamId} from {Endpoint}: {message}"));
        }
        else if (IsOurs(streamId))
        {
            QueueRstStreamLocked(streamId, code);
        }
    }

    /// <summary>A stream we opened (it may be closed by now).</summary>
    private bool IsOurs(int streamId) => (streamId & 1) == 1 && streamId <= _lastStreamId;

    private bool DispatchLocked(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        if (!_settingsReceived && frame.Type != Http2FrameType.Settings)
        {
            return ConnectionError(out error, Http2ErrorCode.ProtocolError, $"the server's first frame is {Http2Names.Of(frame.Type)}, not SETTINGS (RFC 9113 section 3.4)");
        }
        switch (frame.Type)
        {
            case Http2FrameType.Data:
                return OnData(frame, out error);
            case Http2FrameType.Headers:
                return OnHeaders(frame, out error);
            case Http2FrameType.Continuation:
                return OnContinuation(frame, out error);
            case Http2FrameType.RstStream:
                return OnRstStream(frame, out error);
            case Http2FrameType.Settings:
                return frame.IsAck || OnSettings(frame, out error);
            case Http2FrameType.PushPromise:
                return ConnectionError(out error, Http2ErrorCode.ProtocolError, $"PUSH_PROMISE on stream {frame.StreamId}, but the client sent SETTINGS_ENABLE_PUSH 0");
            case Http2FrameType.Ping:
                if (!frame.IsAck)
                {
                    Http2FrameWriter.Ping(_control, ack: true, Http2Payloads.ReadPingData(frame));
                }
                return true;
            case Http2FrameType.GoAway:
                OnGoAway(frame);
                return true;
            case Http2FrameType.WindowUpdate:
                return OnWindowUpdate(frame, out error);
            default:
                // PRIORITY and extension frames are ignored.
                return true;
        }
    }

    private bool OnSettings(in Http2Frame frame, out Http2Error error)
    {
        var tableSize = _peer.HeaderTableSize;
        if (!Http2SettingsReader.TryApply(frame.Payload, ref _peer, out var delta, out error))
        {
            return false;
        }
        if (_peer.EnablePush)
        {
            return ConnectionError(out error, Http2ErrorCode.ProtocolError, "the server sent SETTINGS_ENABLE_PUSH 1 (RFC 9113 section 6.5.2: only 0 is allowed from a server)");
        }
        if (delta != 0)
        {
            foreach (var stream in _streams.Values)
            {
                if (!stream.SendWindow.TryAdjust(delta))
                {
                    return ConnectionError(out error, Http2ErrorCode.FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE change of {delta} takes stream {stream.Id}'s send window above 2^31-1");
                }
                if (delta > 0)
                {
                    stream.WakeWriterLocked();
                }
            }
        }
        if (_peer.HeaderTableSize != tableSize)
        {
            _pendingTableSize = (int)Math.Min(_peer.HeaderTableSize, int.MaxValue);
        }
        Http2FrameWriter.SettingsAck(_control);
        _settingsReceived = true;
        _firstSettings.TrySetResult();
        return true;
    }

    private void OnGoAway(in Http2Frame frame)
    {
        var goAway = Http2Payloads.ReadGoAway(frame);
        _goingAway = true;
        _goAwayLastStreamId = Math.Min(_goAwayLastStreamId, goAway.LastStreamId);
        List<Http2ClientStream>? refused = null;
        foreach (var stream in _streams.Values)
        {
            if (stream.Id > _goAwayLastStreamId)
            {
                (refused ??= []).Add(stream);
            }
        }
        if (refused is null)
        {
            return;
        }
        foreach (var stream in refused)
        {
            FailStreamLocked(stream, new Http2StreamException(Http2ErrorCode.RefusedStream, true,
                $"HTTP/2 stream {stream.Id} to {Endpoint} was not processed: GOAWAY ({Http2Names.Of(goAway.Code)}) with last stream id {goAway.LastStreamId}; safe to retry"));
        }
    }

    private bool OnWindowUpdate(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        var increment = Http2Payloads.ReadWindowUpdateIncrement(frame);
        if (frame.StreamId == 0)
        {
            if (!_sendWindow.TryGrow(increment))
            {
                return ConnectionError(out error, Http2ErrorCode.FlowControlError, $"WINDOW_UPDATE of {increment} takes the connection send window above 2^31-1");
            }
            foreach (var stream in _streams.Values)
            {
                stream.WakeWriterLocked();
            }
            return true;
        }
        if (_streams.TryGetValue(frame.StreamId, out var target))
        {
            if (!target.SendWindow.TryGrow(increment))
            {
                ResetStreamLocked(target.Id, Http2ErrorCode.FlowControlError, $"WINDOW_UPDATE of {increment} takes the stream's send window above 2^31-1");
            }
            else
            {
                target.WakeWriterLocked();
            }
            return true;
        }
        return IsOurs(frame.StreamId)
            || ConnectionError(out error, Http2ErrorCode.ProtocolError, $"WINDOW_UPDATE on stream {frame.StreamId}, which the client never opened");
    }

    private bool OnRstStream(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        var code = Http2Payloads.ReadRstStreamCode(frame);
        if (!_streams.TryGetValue(frame.StreamId, out var stream))
        {
            return IsOurs(frame.StreamId)
                || ConnectionError(out error, Http2ErrorCode.ProtocolError, $"RST_STREAM on stream {frame.StreamId}, which the client never opened");
        }
        if (code == Http2ErrorCode.NoError && stream.RemoteEnded)
        {
            // The response is complete and the server wants no more of the request body (RFC 9113 section 8.1).
            stream.LocalEnded = true;
            stream.SendStopped = true;
            RemoveStreamLocked(stream);
            stream.WakeLocked();
            return true;
        }
        FailStreamLocked(stream, new Http2StreamException(code, code == Http2ErrorCode.RefusedStream,
            $"HTTP/2 stream {stream.Id}: the server {Endpoint} reset it with {Http2Names.Of(code)}"));
        return true;
    }

    private bool OnData(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        var length = frame.Header.Length;
        if (!_receiveWindow.TryConsume(length))
        {
            return ConnectionError(out error, Http2ErrorCode.FlowControlError, $"DATA of {length} bytes on stream {frame.StreamId} overruns the connection receive window ({_receiveWindow.Available} left)");
        }
        if (!_streams.TryGetValue(frame.StreamId, out var stream))
        {
            CreditConnectionLocked(length);
            return IsOurs(frame.StreamId)
                || ConnectionError(out error, Http2ErrorCode.ProtocolError, $"DATA on stream {frame.StreamId}, which the client never opened");
        }
        if (stream.Head is null || stream.RemoteEnded)
        {
            CreditConnectionLocked(length);
            ResetStreamLocked(stream.Id, stream.Head is null ? Http2ErrorCode.ProtocolError : Http2ErrorCode.StreamClosed,
                stream.Head is null ? "DATA before the response HEADERS" : "DATA after END_STREAM");
            return true;
        }
        if (!stream.ReceiveWindow.TryConsume(length))
        {
            CreditConnectionLocked(length);
            ResetStreamLocked(stream.Id, Http2ErrorCode.FlowControlError, $"DATA of {length} bytes overruns the stream receive window ({stream.ReceiveWindow.Available} left)");
            return true;
        }
        var payloadLength = (int)frame.Payload.Length;
        stream.AppendLocked(frame.Payload);
        var padding = length - payloadLength;
        if (padding > 0)
        {
            CreditConnectionLocked(padding);
            CreditStreamLocked(stream, padding);
        }
        if (frame.EndStream)
        {
            OnRemoteEndLocked(stream);
        }
        stream.WakeReaderLocked();
        return true;
    }

    private void OnRemoteEndLocked(Http2ClientStream stream)
    {
        stream.RemoteEnded = true;
        if (stream.LocalEnded)
        {
            RemoveStreamLocked(stream);
        }
        stream.WakeLocked();
    }

    private bool OnHeaders(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        if (frame.EndHeaders && frame.Payload.IsSingleSegment)
        {
            return OnFieldBlock(frame.StreamId, frame.Payload.FirstSpan, frame.EndStream, out error);
        }
        _fieldBlock.Start(frame.StreamId, frame.EndStream);
        if (!AppendFieldBlock(frame, out error))
        {
            return false;
        }
        return !frame.EndHeaders || OnFieldBlock(frame.StreamId, _fieldBlock.Bytes, _fieldBlock.EndStream, out error);
    }

    private bool OnContinuation(in Http2Frame frame, out Http2Error error) =>
        AppendFieldBlock(frame, out error)
        && (!frame.EndHeaders || OnFieldBlock(frame.StreamId, _fieldBlock.Bytes, _fieldBlock.EndStream, out error));

    private bool AppendFieldBlock(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        // The decoded list is limited by MaxHeaderListSize; its encoding cannot be much larger than that.
        var limit = (2 * _options.MaxHeaderListSize) + 1024;
        return _fieldBlock.TryAppend(frame.Payload, limit)
            || ConnectionError(out error, Http2ErrorCode.EnhanceYourCalm, $"the field block on stream {frame.StreamId} exceeds {limit} bytes, far above SETTINGS_MAX_HEADER_LIST_SIZE {_options.MaxHeaderListSize}");
    }

    /// <summary>A complete response head or trailer block for <paramref name="streamId"/>.</summary>
    private bool OnFieldBlock(int streamId, ReadOnlySpan<byte> block, bool endStream, out Http2Error error)
    {
        error = default;
        if (!_streams.TryGetValue(streamId, out var stream))
        {
            if (!IsOurs(streamId))
            {
                return ConnectionError(out error, Http2ErrorCode.ProtocolError, $"HEADERS on stream {streamId}, which the client never opened");
            }
            // A stream we reset or finished: decode anyway, to keep the HPACK table in step.
            var discard = default(HpackDiscardSink);
            return _decoder.Decode(block, ref discard) != HpackStatus.CompressionError
                || ConnectionError(out error, Http2ErrorCode.CompressionError, $"HEADERS on stream {streamId}: {_decoder.LastError}");
        }
        var sink = new ResponseFieldSink(trailers: stream.Head is not null);
        var status = _decoder.Decode(block, ref sink);
        if (status == HpackStatus.CompressionError)
        {
            return ConnectionError(out error, Http2ErrorCode.CompressionError, $"HEADERS on stream {streamId}: {_decoder.LastError}");
        }
        if (status == HpackStatus.HeaderListTooLarge)
        {
            ResetStreamLocked(streamId, Http2ErrorCode.InternalError, $"the response fields exceed the limit of {_options.MaxHeaderListSize} bytes");
            return true;
        }
        if (stream.RemoteEnded)
        {
            ResetStreamLocked(streamId, Http2ErrorCode.StreamClosed, "HEADERS after the response ended (END_STREAM)");
            return true;
        }
        if (sink.Problem is null)
        {
            sink.Problem = stream.OnFieldsLocked(sink.Status, sink.Fields, endStream);
        }
        if (sink.Problem is not null)
        {
            ResetStreamLocked(streamId, Http2ErrorCode.ProtocolError, $"malformed response: {sink.Problem}");
            return true;
        }
        if (endStream)
        {
            OnRemoteEndLocked(stream);
        }
        return true;
    }

    /// <summary>Closes the connection: open streams fail, a GOAWAY(NO_ERROR) is sent, the socket closes.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (Sync)
        {
            FailLocked(Http2ErrorCode.NoError, "closed by the client", sendGoAway: true);
        }
        if (_readLoop.IsCompleted && !_closed.Task.IsCompleted)
        {
            // Not started (connect failed before the reader loop).
            await CloseAsync("closed by the client").ConfigureAwait(false);
            return;
        }
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1), _time);
            await FlushControlAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // Best effort.
        }
        ShutdownSocket();
        await _readLoop.ConfigureAwait(false);
    }

    /// <summary>Collects a response head or trailers; the strings are this version's per-field allocation.</summary>
    private struct ResponseFieldSink : IHpackSink
    {
        private readonly bool _trailers;
        private bool _regularSeen;

        public ResponseFieldSink(bool trailers)
        {
            _trailers = trailers;
        }

        public int Status { get; private set; }

        public List<Http2HeaderField>? Fields { get; private set; }

        public string? Problem { get; set; }

        public void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
            if (Problem is not null)
            {
                return;
            }
            if (Http2HeaderValidation.IsPseudo(name))
            {
                if (_trailers)
                {
                    Problem = $"trailers carry the pseudo-header {Encoding.Latin1.GetString(name)}";
                }
                else if (_regularSeen)
                {
                    Problem = $"pseudo-header {Encoding.Latin1.GetString(name)} follows a regular field";
                }
                else if (staticNameIndex != HpackStaticTable.Status || Http2HeaderValidation.GetPseudo(name) != Http2PseudoHeader.Status)
                {
                    Problem = $"a response carries the pseudo-header {Encoding.Latin1.GetString(name)}";
                }
                else if (Status != 0)
                {
                    Problem = ":status appears twice";
                }
                else if (value.Length != 3 || !char.IsAsciiDigit((char)value[0]) || !char.IsAsciiDigit((char)value[1]) || !char.IsAsciiDigit((char)value[2]) || value[0] == (byte)'0')
                {
                    Problem = $":status '{Encoding.Latin1.GetString(value)}' is not a three-digit code";
                }
                else
                {
                    Status = ((value[0] - '0') * 100) + ((value[1] - '0') * 10) + (value[2] - '0');
                }
                return;
            }
            _regularSeen = true;
            var check = Http2HeaderValidation.Check(name, value);
            if (check != Http2FieldProblem.None)
            {
                Problem = $"field '{Encoding.Latin1.GetString(name)}': {check}";
                return;
            }
            (Fields ??= []).Add(new Http2HeaderField(Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
        }
    }
}
