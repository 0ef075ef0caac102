using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Hpack;
using Trellis.Proxy.Tcp;
using Trellis.Proxy.Threading;

namespace Trellis.Proxy.Http.Http2.Server;

/// <summary>
/// Our HTTP/2 server side of one accepted connection (RFC 9113): h2c with prior knowledge over a socket, or h2 over a
/// stream (TLS the listener terminated). Protocol detection has already read the first bytes; they are passed in as
/// the prefix and read again here.
/// <para>
/// Threads: one read loop (<see cref="RunAsync"/>) reads frames and dispatches them under <see cref="Sync"/>, which
/// guards all connection and stream state, the HPACK encoder and the output buffers. Each valid request goes to the
/// handler on the thread pool; the read loop never waits for a handler. Output: frames are appended under the lock
/// to <see cref="_pending"/> (stream frames, in order: HEADERS, DATA, RST_STREAM) or <see cref="_control"/>
/// (SETTINGS and PING ACKs, WINDOW_UPDATE, GOAWAY, sent ahead of stream frames). One caller at a time is the
/// flusher (<see cref="BeginFlushLocked"/>, <see cref="FlushLoopAsync"/>): it sends everything queued, in one send
/// per turn, until nothing is left; writers that queued meanwhile wait until their bytes are sent. So frames of many
/// streams go out together, and no lock is held while the transport is busy.
/// </para>
/// <para>
/// Ending: a connection error queues GOAWAY with its code; a drain (the token of <see cref="RunAsync"/>) sends
/// GOAWAY(NO_ERROR) naming the last stream taken, lets streams in flight finish (at most
/// <see cref="Http2ServerOptions.DrainTimeout"/>, then a second GOAWAY and close); no open stream for
/// <see cref="Http2ServerOptions.IdleTimeout"/> sends GOAWAY(NO_ERROR). After our GOAWAY the send side is shut down
/// and the client has <see cref="Http2ServerOptions.CloseTimeout"/> to close its side (its bytes are read and dropped
/// meanwhile, so the GOAWAY is not lost to a TCP reset).
/// </para>
/// </summary>
internal sealed partial class Http2ServerConnection : IAsyncDisposable
{
    private readonly Socket? _socket;
    private readonly Stream? _stream;
    private readonly PipeReader _reader;
    private readonly Http2ServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Dictionary<int, Http2ServerStream> _streams = [];
    private readonly List<Http2ServerStream> _flushWaiters = [];
    private readonly HpackEncoder _encoder = new();
    private readonly HpackDecoder _decoder;
    private readonly ArrayBufferWriter<byte> _headerBlock = new(512);
    private readonly int[] _closedIds = new int[ClosedMemory];
    private readonly bool[] _closedByReset = new bool[ClosedMemory];
    private readonly TaskCompletionSource _handlersDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ArrayBufferWriter<byte> _pending = new(4096);
    private ArrayBufferWriter<byte> _sending = new(4096);
    private ArrayBufferWriter<byte> _control = new(256);
    private IHttp2ServerHandler? _handler;
    private Http2FrameReader _frameReader;
    private Http2PeerSettings _peer = Http2PeerSettings.Default;
    private Http2FlowWindow _sendWindow = new(Http2Limits.DefaultInitialWindowSize);
    private Http2ReceiveWindow _receiveWindow;
    private bool _prefaceReceived;
    private bool _settingsReceived;
    private int _lastStreamId;
    private int _closedNext;
    private int _runningHandlers;
    private bool _draining;
    private int _goAwayLastStreamId = int.MaxValue;
    private bool _peerGoingAway;
    private Http2StreamException? _failure;
    private bool _flushing;
    private bool _sendClosed;
    private long _queuedTotal;
    private long _takenTotal;
    private long _flushedTotal;
    private int _queuedByPeer;
    private TaskCompletionSource? _flushIdle;
    private int _closing;
    private volatile bool _transportClosed;
    private int _started;
    private long _resetWindowStart;
    private int _resetCount;
    private ITimer? _idleTimer;
    private bool _idleArmed;
    private long _quietSince;
    private ITimer? _drainTimer;
    private ITimer? _closeTimer;
    private ITimer? _keepAliveTimer;
    private long _lastReceived;
    private long _pingSentAt;
    private bool _pingOutstanding;
    private bool _heardSincePing;
    private byte[] _fieldBytes = new byte[256];
    private Http2FieldBlock _fieldBlock;
    private byte[]? _lastAuthorityBytes;
    private string _lastAuthority = "";

    private const int ClosedMemory = 64;

    /// <summary>Body writers wait while this much output is queued behind a flush under way (bounds memory per
    /// connection when many streams write at once).</summary>
    private const int MaxQueuedOutput = 256 * 1024;

    /// <summary>An output buffer grown larger than this by a burst is dropped after its send.</summary>
    private const int MaxRetainedBuffer = 256 * 1024;

    /// <summary>The payload of our keepalive PINGs ("TRELLIS" and a 1).</summary>
    private const ulong KeepAlivePingData = 0x5452_454C_4C49_5301;

    private Http2ServerConnection(Socket? socket, Stream? stream, PipeReader reader, Http2ServerOptions options, TimeProvider time, ILogger? log)
    {
        _socket = socket;
        _stream = stream;
        _reader = reader;
        _options = options;
        _time = time;
        _log = log ?? NullLogger.Instance;
        _decoder = new HpackDecoder(HpackDecoder.DefaultTableSize, options.MaxHeaderListSize);
        _receiveWindow = new Http2ReceiveWindow(options.ConnectionWindowSize);
        _resetWindowStart = time.GetTimestamp();
    }

    /// <summary>Guards the state of the connection, of all its streams, the encoder and the output buffers.</summary>
    internal Lock Sync { get; } = new();

    /// <summary>Streams open now (request or response not finished).</summary>
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

    /// <summary>No stream open and no handler running (what the idle timeout counts).</summary>
    public bool IsQuiet
    {
        get
        {
            lock (Sync)
            {
                return _streams.Count == 0 && _runningHandlers <= 1;
            }
        }
    }

    /// <summary>A plaintext (h2c) connection on a connected socket: the fast path, reading and writing the socket
    /// directly. <paramref name="prefix"/> holds the bytes protocol detection read (the client preface, maybe more);
    /// it is copied.</summary>
    public static Http2ServerConnection Create(Socket socket, ReadOnlyMemory<byte> prefix, Http2ServerOptions options, TimeProvider time, ILogger? log = null)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        options.Validate();
        socket.NoDelay = true;
        return new Http2ServerConnection(socket, null, new SocketReader(socket, prefix.Span), options, time, log);
    }

    /// <summary>A connection over a stream (e.g. an <see cref="SslStream"/> after an ALPN h2 handshake);
    /// <paramref name="prefix"/> (often empty) is read before the stream. The connection disposes the stream.</summary>
    public static Http2ServerConnection Create(Stream stream, ReadOnlyMemory<byte> prefix, Http2ServerOptions options, TimeProvider time, ILogger? log = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        options.Validate();
        Stream source = prefix.IsEmpty ? stream : new ReplayStream(stream, prefix.Span);
        var reader = PipeReader.Create(source, new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: true));
        return new Http2ServerConnection(null, stream, reader, options, time, log);
    }

    /// <summary>
    /// Serves the connection: sends our SETTINGS, reads the client's frames and hands each request to
    /// <paramref name="handler"/>, until the client closes, a connection error, the idle timeout, or a drain
    /// (<paramref name="drain"/> cancelled) has finished. Returns when the transport is closed and every handler has
    /// ended (handlers of streams cut off see their waits fail). Never throws for what the peer does.
    /// </summary>
    public async Task RunAsync(IHttp2ServerHandler handler, CancellationToken drain)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("RunAsync was already called on this connection");
        }
        _handler = handler;
        bool flusher;
        lock (Sync)
        {
            _runningHandlers = 1; // the read loop itself, so "no handlers" cannot complete early
            WriteServerPrefaceLocked();
            if (_options.IdleTimeout != Timeout.InfiniteTimeSpan)
            {
                _quietSince = _time.GetTimestamp();
                _idleArmed = true;
                _idleTimer = _time.CreateTimer(static s => ((Http2ServerConnection)s!).OnIdleTimer(), this, _options.IdleTimeout, Timeout.InfiniteTimeSpan);
            }
            _lastReceived = _time.GetTimestamp();
            if (_options.KeepAlivePingDelay != Timeout.InfiniteTimeSpan)
            {
                var period = _options.KeepAlivePingTimeout < _options.KeepAlivePingDelay ? _options.KeepAlivePingTimeout : _options.KeepAlivePingDelay;
                _keepAliveTimer = _time.CreateTimer(static s => ((Http2ServerConnection)s!).OnKeepAliveTimer(), this, period, period);
            }
            flusher = BeginFlushLocked();
        }
        if (flusher)
        {
            await FlushLoopAsync().ConfigureAwait(false);
        }
        var registration = drain.UnsafeRegister(static s => ((Http2ServerConnection)s!).Drain(), this);
        var reason = "the client closed the connection";
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A transport error (or a bug): every stream ends, none waits forever.
            reason = $"reading failed: {ex.Message}";
        }
        finally
        {
            await registration.DisposeAsync().ConfigureAwait(false);
        }
        lock (Sync)
        {
            FailLocked(Http2ErrorCode.NoError, reason, sendGoAway: false);
            _runningHandlers--;
            if (_runningHandlers == 0)
            {
                _handlersDone.TrySetResult();
            }
        }
        AbortTransport();
        _idleTimer?.Dispose();
        _drainTimer?.Dispose();
        _closeTimer?.Dispose();
        _keepAliveTimer?.Dispose();
        await _handlersDone.Task.ConfigureAwait(false);
        lock (Sync)
        {
            _decoder.Dispose();
            _fieldBlock.Release();
        }
        await _reader.CompleteAsync().ConfigureAwait(false);
        _finished.TrySetResult();
    }

    /// <summary>Closes the transport at once (no GOAWAY; use the drain token of <see cref="RunAsync"/> for a graceful
    /// close) and waits for <see cref="RunAsync"/> to end.</summary>
    public async ValueTask DisposeAsync()
    {
        AbortTransport();
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            _decoder.Dispose();
            await _reader.CompleteAsync().ConfigureAwait(false);
            return;
        }
        await _finished.Task.ConfigureAwait(false);
    }

    private void WriteServerPrefaceLocked()
    {
        Span<Http2Setting> settings =
        [
            new(Http2SettingId.EnablePush, 0),
            new(Http2SettingId.MaxConcurrentStreams, (uint)_options.MaxConcurrentStreams),
            new(Http2SettingId.InitialWindowSize, (uint)_options.InitialStreamWindowSize),
            new(Http2SettingId.MaxFrameSize, (uint)_options.MaxFrameSize),
            new(Http2SettingId.MaxHeaderListSize, (uint)_options.MaxHeaderListSize),
            new(Http2SettingId.EnableConnectProtocol, 1),
        ];
        Http2FrameWriter.Settings(_control, _options.EnableConnectProtocol ? settings : settings[..^1]);
        var raise = _options.ConnectionWindowSize - Http2Limits.DefaultInitialWindowSize;
        if (raise > 0)
        {
            Http2FrameWriter.WindowUpdate(_control, 0, raise);
        }
    }

    // ---- Output ---------------------------------------------------------------------------------------------------

    internal long FlushedTotalLocked => _flushedTotal;

    internal Http2StreamException? FailureLocked => _failure;

    /// <summary>A flush is under way (it will send everything queued, unless the transport fails).</summary>
    internal bool IsFlushingLocked => _flushing && !_sendClosed;

    internal int SendWindowAvailableLocked => _sendWindow.Available;

    internal void ConsumeSendWindowLocked(int bytes) => _sendWindow.TryConsume(bytes);

    /// <summary>Makes the caller the flusher when something is queued and nobody flushes: it must then await
    /// <see cref="FlushLoopAsync"/>.</summary>
    internal bool BeginFlushLocked()
    {
        if (_flushing || _sendClosed || (_control.WrittenCount == 0 && _pending.WrittenCount == 0))
        {
            return false;
        }
        _flushing = true;
        return true;
    }

    /// <summary>Starts a flush on the thread pool when nobody flushes (for callers that cannot wait).</summary>
    internal void ScheduleFlushLocked()
    {
        if (BeginFlushLocked())
        {
            ThreadPool.UnsafeQueueUserWorkItem(static c => _ = c.FlushInBackgroundAsync(), this, preferLocal: false);
        }
    }

    private async Task FlushInBackgroundAsync() => await FlushLoopAsync().ConfigureAwait(false);

    /// <summary>The flusher's loop: sends what is queued (control frames first) until nothing is; never throws (a
    /// failed send fails the connection).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    internal async ValueTask FlushLoopAsync()
    {
        while (true)
        {
            ReadOnlyMemory<byte> output;
            lock (Sync)
            {
                if (_sendClosed || (_control.WrittenCount == 0 && _pending.WrittenCount == 0))
                {
                    _flushing = false;
                    WakeFlushWaitersLocked();
                    _flushIdle?.TrySetResult();
                    _flushIdle = null;
                    return;
                }
                if (_control.WrittenCount == 0)
                {
                    (_pending, _sending) = (_sending, _pending);
                }
                else
                {
                    _sending.ResetWrittenCount();
                    _sending.Write(_control.WrittenSpan);
                    _sending.Write(_pending.WrittenSpan);
                    _control.ResetWrittenCount();
                }
                _pending.ResetWrittenCount();
                _takenTotal = _queuedTotal;
                _queuedByPeer = 0;
                output = _sending.WrittenMemory;
            }
            try
            {
                await SendAsync(output).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException or AuthenticationException or InvalidOperationException)
            {
                lock (Sync)
                {
                    _sendClosed = true;
                    FailLocked(Http2ErrorCode.InternalError, $"sending failed: {ex.Message}", sendGoAway: false);
                    _flushing = false;
                    WakeFlushWaitersLocked();
                    _flushIdle?.TrySetResult();
                    _flushIdle = null;
                }
                AbortTransport();
                return;
            }
            lock (Sync)
            {
                _flushedTotal = _takenTotal;
                if (_sending.Capacity > MaxRetainedBuffer)
                {
                    _sending = new ArrayBufferWriter<byte>(4096);
                }
                WakeFlushWaitersLocked();
            }
        }
    }

    private async ValueTask SendAsync(ReadOnlyMemory<byte> output)
    {
        if (_socket is not null)
        {
            // A stream socket's send completes once every byte is handed to the kernel.
            await _socket.SendAsync(output, SocketFlags.None).ConfigureAwait(false);
            return;
        }
        await _stream!.WriteAsync(output).ConfigureAwait(false);
        await _stream.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Too much output is queued behind a flush under way: a body writer should wait until
    /// <paramref name="target"/> (everything queued now) is sent before queueing more.</summary>
    internal bool OutputBackloggedLocked(out long target)
    {
        target = _queuedTotal;
        return _pending.WrittenCount >= MaxQueuedOutput && IsFlushingLocked;
    }

    internal void AddFlushWaiterLocked(Http2ServerStream stream)
    {
        if (!stream.WaitingForFlush)
        {
            stream.WaitingForFlush = true;
            _flushWaiters.Add(stream);
        }
    }

    /// <summary>Wakes writers whose bytes were sent, or all of them when nothing more will be.</summary>
    private void WakeFlushWaitersLocked()
    {
        var all = _sendClosed || !_flushing;
        for (var i = _flushWaiters.Count - 1; i >= 0; i--)
        {
            var stream = _flushWaiters[i];
            if (all || stream.FlushTarget <= _flushedTotal)
            {
                _flushWaiters.RemoveAt(i);
                stream.WaitingForFlush = false;
                stream.WakeWriterLocked();
            }
        }
    }

    /// <summary>Encodes a response head (<paramref name="status"/> &gt; 0) or trailers (0) and queues the HEADERS
    /// (+ CONTINUATION) frames; returns the output position they end at.</summary>
    internal long QueueHeadersLocked(int streamId, int status, IReadOnlyList<Http2HeaderField>? fields, bool endStream)
    {
        _headerBlock.ResetWrittenCount();
        _encoder.BeginBlock(_headerBlock);
        if (status > 0)
        {
            _encoder.WriteStatus(_headerBlock, status);
        }
        if (fields is not null)
        {
            for (var i = 0; i < fields.Count; i++)
            {
                var (name, value) = fields[i];
                var nameLength = Http2HeaderFields.ToLatin1(ref _fieldBytes, name, 0);
                var valueLength = Http2HeaderFields.ToLatin1(ref _fieldBytes, value, nameLength);
                var nameBytes = _fieldBytes.AsSpan(0, nameLength);
                Debug.Assert(Http2HeaderValidation.IsValidName(nameBytes) && !Http2HeaderValidation.IsPseudo(nameBytes),
                    $"response field name '{name}' must be a lower-case token (no pseudo-headers)");
                var indexing = name is "set-cookie" or "authorization" ? HpackIndexing.NeverIndexed : HpackIndexing.Incremental;
                _encoder.WriteHeader(_headerBlock, nameBytes, _fieldBytes.AsSpan(nameLength, valueLength), indexing);
            }
        }
        return AppendFramesLocked(streamId, endStream, isData: false, _headerBlock.WrittenSpan);
    }

    /// <summary>Queues DATA frames (already counted against both send windows); the output position they end at.</summary>
    internal long QueueDataLocked(int streamId, ReadOnlySpan<byte> data, bool endStream) =>
        AppendFramesLocked(streamId, endStream, isData: true, data);

    private long AppendFramesLocked(int streamId, bool endStream, bool isData, ReadOnlySpan<byte> payload)
    {
        if (_failure is not null)
        {
            // The connection is going away: nothing more for streams.
            return _queuedTotal;
        }
        var before = _pending.WrittenCount;
        if (isData)
        {
            Http2FrameWriter.Data(_pending, streamId, payload, endStream, _peer.MaxFrameSize);
        }
        else
        {
            Http2FrameWriter.Headers(_pending, streamId, payload, endStream, _peer.MaxFrameSize);
        }
        _queuedTotal += _pending.WrittenCount - before;
        return _queuedTotal;
    }

    private void QueueRstStreamLocked(int streamId, Http2ErrorCode code)
    {
        var before = _pending.WrittenCount;
        Http2FrameWriter.RstStream(_pending, streamId, code);
        _queuedTotal += _pending.WrittenCount - before;
    }

    /// <summary>Counts bytes the handler took (or that were dropped) against the connection's receive window and
    /// queues a WINDOW_UPDATE once half the window is used; true when one was queued.</summary>
    internal bool CreditConnectionLocked(int bytes) =>
        _failure is null && QueueWindowUpdateLocked(0, _receiveWindow.Credit(bytes, _options.ConnectionWindowSize / 2));

    internal bool CreditStreamLocked(Http2ServerStream stream, int bytes) =>
        !stream.RemoteEnded && stream.Failure is null
        && QueueWindowUpdateLocked(stream.Id, stream.ReceiveWindow.Credit(bytes, _options.InitialStreamWindowSize / 2));

    private bool QueueWindowUpdateLocked(int streamId, int increment)
    {
        if (increment > 0)
        {
            Http2FrameWriter.WindowUpdate(_control, streamId, increment);
        }
        return increment > 0;
    }

    // ---- Stream lifecycle -----------------------------------------------------------------------------------------

    internal void OnLocalEndLocked(Http2ServerStream stream)
    {
        stream.LocalEnded = true;
        if (stream.RemoteEnded)
        {
            CloseStreamLocked(stream, reset: false);
        }
    }

    private void OnRemoteEndLocked(Http2ServerStream stream)
    {
        stream.RemoteEnded = true;
        if (stream.LocalEnded)
        {
            CloseStreamLocked(stream, reset: false);
        }
        stream.WakeReaderLocked();
    }

    private void CloseStreamLocked(Http2ServerStream stream, bool reset)
    {
        if (!stream.Open)
        {
            return;
        }
        stream.Open = false;
        _streams.Remove(stream.Id);
        RememberClosedLocked(stream.Id, reset);
        CheckQuietLocked();
    }

    /// <summary>We end a stream with RST_STREAM: queued in order with its other frames; its waits fail.</summary>
    internal void ResetStreamLocked(Http2ServerStream stream, Http2ErrorCode code, string message, bool countsAsAbuse)
    {
        QueueRstStreamLocked(stream.Id, code);
        stream.LocalEnded = true;
        FailStreamLocked(stream, new Http2StreamException(code, false, message));
        if (countsAsAbuse)
        {
            CountResetLocked();
        }
    }

    private void FailStreamLocked(Http2ServerStream stream, Http2StreamException failure)
    {
        CloseStreamLocked(stream, reset: true);
        CreditConnectionLocked(stream.DropBodyLocked());
        stream.AbortLocked(failure);
    }

    /// <summary>A stream error on a stream id (open or not): RST_STREAM, and the stream fails if it is open.</summary>
    private void ResetStreamIdLocked(int streamId, Http2ErrorCode code, string message)
    {
        if (_streams.TryGetValue(streamId, out var stream))
        {
            ResetStreamLocked(stream, code, $"HTTP/2 stream {streamId}: {message}", countsAsAbuse: true);
            return;
        }
        QueueRstStreamLocked(streamId, code);
        RememberClosedLocked(streamId, reset: true);
        CountResetLocked();
    }

    private void RememberClosedLocked(int streamId, bool reset)
    {
        _closedIds[_closedNext] = streamId;
        _closedByReset[_closedNext] = reset;
        _closedNext = (_closedNext + 1) % ClosedMemory;
    }

    /// <summary>0: not among the recently closed streams; 1: closed normally; 2: reset (frames may still arrive).</summary>
    private int RecallClosedLocked(int streamId)
    {
        for (var i = 0; i < ClosedMemory; i++)
        {
            if (_closedIds[i] == streamId)
            {
                return _closedByReset[i] ? 2 : 1;
            }
        }
        return 0;
    }

    /// <summary>Rapid-reset guard (CVE-2023-44487): false (and a connection error) past the allowed rate.</summary>
    private void CountResetLocked()
    {
        var now = _time.GetTimestamp();
        if (_options.ResetWindow != Timeout.InfiniteTimeSpan && _time.GetElapsedTime(_resetWindowStart, now) > _options.ResetWindow)
        {
            _resetWindowStart = now;
            _resetCount = 0;
        }
        if (++_resetCount > _options.MaxResetsPerWindow)
        {
            FailLocked(Http2ErrorCode.EnhanceYourCalm,
                $"more than {_options.MaxResetsPerWindow} streams reset within {_options.ResetWindow.TotalSeconds:0.#} s (rapid reset)", sendGoAway: true);
        }
    }

    /// <summary>No open stream and no handler running: arm the idle timer, or finish a drain or a client's GOAWAY.</summary>
    private void CheckQuietLocked()
    {
        if (_streams.Count != 0 || _runningHandlers != 1 || _failure is not null)
        {
            return;
        }
        if (_draining)
        {
            FailLocked(Http2ErrorCode.NoError, "drained: every stream finished", sendGoAway: false);
            return;
        }
        if (_peerGoingAway)
        {
            FailLocked(Http2ErrorCode.NoError, "the client sent GOAWAY and every stream finished", sendGoAway: false);
            return;
        }
        // The timer stays armed across busy periods; when it fires it checks how long the connection has been quiet.
        _quietSince = _time.GetTimestamp();
        if (_idleTimer is not null && !_idleArmed)
        {
            _idleArmed = true;
            _idleTimer.Change(_options.IdleTimeout, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// Makes the connection unusable: every open stream fails, stream output not yet sent is dropped, (with
    /// <paramref name="sendGoAway"/>) a GOAWAY is queued, and the close begins: flush, shut down our sending, wait
    /// (bounded) for the client to close. Call under <see cref="Sync"/>.
    /// </summary>
    private void FailLocked(Http2ErrorCode code, string message, bool sendGoAway)
    {
        if (_failure is not null)
        {
            return;
        }
        _failure = new Http2StreamException(code, false, $"HTTP/2 connection: {message}");
        if (code != Http2ErrorCode.NoError)
        {
            LogConnectionError(_log, Http2Names.Of(code), message);
        }
        if (sendGoAway)
        {
            Http2FrameWriter.GoAway(_control, Math.Min(_lastStreamId, _goAwayLastStreamId), code, message);
        }
        if (code != Http2ErrorCode.NoError)
        {
            // An error: responses not sent yet are moot. A graceful close (drain, idle) still sends what is queued.
            _pending.ResetWrittenCount();
        }
        if (_streams.Count > 0)
        {
            foreach (var stream in _streams.Values.ToArray())
            {
                stream.Open = false;
                _streams.Remove(stream.Id);
                CreditConnectionLocked(stream.DropBodyLocked());
                stream.AbortLocked(new Http2StreamException(code, false, $"HTTP/2 stream {stream.Id} failed with its connection: {message}"));
            }
        }
        _idleTimer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        WakeFlushWaitersLocked();
        ThreadPool.UnsafeQueueUserWorkItem(static c => _ = c.CloseSendingAsync(), this, preferLocal: false);
    }

    /// <summary>Sends what is queued (the GOAWAY), shuts our sending down and gives the client
    /// <see cref="Http2ServerOptions.CloseTimeout"/> to close; the read loop drops what it still sends.</summary>
    private async Task CloseSendingAsync()
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0 || _transportClosed)
        {
            return;
        }
        if (_options.CloseTimeout != Timeout.InfiniteTimeSpan)
        {
            _closeTimer = _time.CreateTimer(static s => ((Http2ServerConnection)s!).AbortTransport(), this, _options.CloseTimeout, Timeout.InfiniteTimeSpan);
        }
        // Send what is queued (waiting for a flush under way), then close sending in the same locked step, so no
        // writer can start a send the shutdown would cut.
        while (true)
        {
            Task? idle = null;
            var flusher = false;
            lock (Sync)
            {
                if (_flushing)
                {
                    idle = (_flushIdle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                }
                else if (!BeginFlushLocked())
                {
                    _sendClosed = true;
                    WakeFlushWaitersLocked();
                    break;
                }
                else
                {
                    flusher = true;
                }
            }
            if (flusher)
            {
                await FlushLoopAsync().ConfigureAwait(false);
            }
            else
            {
                await idle!.ConfigureAwait(false);
            }
        }
        try
        {
            if (_socket is not null)
            {
                _socket.Shutdown(SocketShutdown.Send);
            }
            else if (_stream is SslStream ssl)
            {
                await ssl.ShutdownAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or InvalidOperationException or AuthenticationException)
        {
            // Already closed.
        }
    }

    /// <summary>Closes the transport now; a read or send under way fails.</summary>
    private void AbortTransport()
    {
        _transportClosed = true;
        try
        {
            if (_socket is not null)
            {
                _socket.Dispose();
            }
            else
            {
                _stream!.Dispose();
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }

    // ---- Idle, drain ----------------------------------------------------------------------------------------------

    private void OnIdleTimer()
    {
        lock (Sync)
        {
            _idleArmed = false;
            if (_streams.Count != 0 || _runningHandlers != 1 || _failure is not null)
            {
                // Busy: the quiet period that follows arms the timer again.
                return;
            }
            var quiet = _time.GetElapsedTime(_quietSince);
            if (quiet < _options.IdleTimeout)
            {
                _idleArmed = true;
                _idleTimer!.Change(_options.IdleTimeout - quiet, Timeout.InfiniteTimeSpan);
                return;
            }
            FailLocked(Http2ErrorCode.NoError, $"idle: no stream for {_options.IdleTimeout.TotalSeconds:0.###} s", sendGoAway: true);
        }
    }

    /// <summary>Keepalive: a PING after <see cref="Http2ServerOptions.KeepAlivePingDelay"/> of silence; the connection
    /// closes when the client then stays silent for <see cref="Http2ServerOptions.KeepAlivePingTimeout"/>.</summary>
    private void OnKeepAliveTimer()
    {
        var gone = false;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return;
            }
            var now = _time.GetTimestamp();
            if (_pingOutstanding && _heardSincePing)
            {
                _pingOutstanding = false;
            }
            if (_pingOutstanding)
            {
                if (_time.GetElapsedTime(_pingSentAt, now) >= _options.KeepAlivePingTimeout)
                {
                    FailLocked(Http2ErrorCode.NoError, $"keepalive: nothing from the client within {_options.KeepAlivePingTimeout.TotalSeconds:0.###} s of a PING", sendGoAway: true);
                    gone = true;
                }
            }
            else if (_time.GetElapsedTime(_lastReceived, now) >= _options.KeepAlivePingDelay)
            {
                Http2FrameWriter.Ping(_control, ack: false, KeepAlivePingData);
                _pingSentAt = now;
                _pingOutstanding = true;
                _heardSincePing = false;
                ScheduleFlushLocked();
            }
        }
        if (gone)
        {
            // The client does not answer: no point waiting for it to close.
            AbortTransport();
        }
    }

    private void Drain()
    {
        lock (Sync)
        {
            if (_draining || _failure is not null)
            {
                return;
            }
            _draining = true;
            _goAwayLastStreamId = _lastStreamId;
            Http2FrameWriter.GoAway(_control, _lastStreamId, Http2ErrorCode.NoError, "draining");
            if (_options.DrainTimeout != Timeout.InfiniteTimeSpan)
            {
                _drainTimer = _time.CreateTimer(static s => ((Http2ServerConnection)s!).OnDrainTimeout(), this, _options.DrainTimeout, Timeout.InfiniteTimeSpan);
            }
            CheckQuietLocked();
            ScheduleFlushLocked();
        }
    }

    private void OnDrainTimeout()
    {
        lock (Sync)
        {
            FailLocked(Http2ErrorCode.NoError, $"drain timed out after {_options.DrainTimeout.TotalSeconds:0.###} s with {_streams.Count} streams open", sendGoAway: true);
        }
    }

    // ---- Handlers -------------------------------------------------------------------------------------------------

    /// <summary>Runs the handler for a stream, then ends whatever it left unfinished.</summary>
    internal async Task RunHandlerAsync(Http2ServerStream stream)
    {
        Exception? error = null;
        try
        {
            await _handler!.HandleAsync(stream).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            error = ex;
        }
        bool flusher;
        lock (Sync)
        {
            if (stream.Failure is null && !stream.LocalEnded)
            {
                if (error is not null)
                {
                    LogHandlerFailed(_log, stream.Id, error);
                }
                if (!stream.HeadSent)
                {
                    stream.HeadSent = true;
                    QueueHeadersLocked(stream.Id, error is null ? 200 : 500, null, endStream: true);
                    OnLocalEndLocked(stream);
                }
                else if (error is null)
                {
                    QueueDataLocked(stream.Id, default, endStream: true);
                    OnLocalEndLocked(stream);
                }
                else
                {
                    ResetStreamLocked(stream, Http2ErrorCode.InternalError, $"HTTP/2 stream {stream.Id}: the handler failed", countsAsAbuse: false);
                }
            }
            if (stream.Open && stream.Failure is null)
            {
                // The response is complete; the client need not send the rest of the body (RFC 9113 section 8.1).
                ResetStreamLocked(stream, Http2ErrorCode.NoError, $"HTTP/2 stream {stream.Id}: the response ended before the request", countsAsAbuse: false);
            }
            _runningHandlers--;
            if (_runningHandlers == 0)
            {
                _handlersDone.TrySetResult();
            }
            CheckQuietLocked();
            flusher = BeginFlushLocked();
        }
        stream.Dispose();
        if (flusher)
        {
            await FlushLoopAsync().ConfigureAwait(false);
        }
    }

    // ---- Reading --------------------------------------------------------------------------------------------------

    private async Task ReadLoopAsync()
    {
        while (true)
        {
            var result = await _reader.ReadAsync().ConfigureAwait(false);
            var buffer = result.Buffer;
            lock (Sync)
            {
                _lastReceived = _time.GetTimestamp();
                _heardSincePing = true;
                if (_failure is null)
                {
                    ReadFramesLocked(ref buffer, result.IsCompleted);
                }
                else
                {
                    // Closing: what the client still sends is read and dropped, so our GOAWAY is not lost to a reset.
                    buffer = buffer.Slice(buffer.End);
                }
                // Answers go out from the thread pool: the read loop never waits for the socket, so it keeps reading
                // (and counting what a peer that does not read makes us queue).
                ScheduleFlushLocked();
            }
            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return;
            }
        }
    }

    private void ReadFramesLocked(ref ReadOnlySequence<byte> buffer, bool completed)
    {
        var queuedBefore = _control.WrittenCount + _pending.WrittenCount;
        if (!_prefaceReceived)
        {
            var preface = Http2Preface.TryConsume(ref buffer);
            if (preface == Http2PrefaceStatus.Mismatch)
            {
                FailLocked(Http2ErrorCode.ProtocolError, "the connection does not start with the HTTP/2 client preface (PRI * HTTP/2.0...)", sendGoAway: true);
                return;
            }
            if (preface == Http2PrefaceStatus.NeedMoreData)
            {
                if (completed)
                {
                    FailLocked(Http2ErrorCode.ProtocolError, "the connection closed within the HTTP/2 client preface", sendGoAway: false);
                }
                return;
            }
            _prefaceReceived = true;
        }
        while (_failure is null)
        {
            var status = _frameReader.TryReadFrame(ref buffer, _options.MaxFrameSize, out var frame, out var error);
            if (status == Http2ReadStatus.NeedMoreData)
            {
                break;
            }
            if (status == Http2ReadStatus.Error)
            {
                if (error.IsConnectionError)
                {
                    FailLocked(error.Code, error.Message, sendGoAway: true);
                    break;
                }
                if (frame.Type == Http2FrameType.Data)
                {
                    // A DATA frame rejected for its size still counts against the connection window.
                    if (!ConsumeConnectionWindowLocked(frame, out var windowError))
                    {
                        FailLocked(windowError.Code, windowError.Message, sendGoAway: true);
                        break;
                    }
                    CreditConnectionLocked(frame.Header.Length);
                }
                ResetStreamIdLocked(error.StreamId, error.Code, error.Message);
                continue;
            }
            if (!DispatchLocked(frame, out error))
            {
                FailLocked(error.Code, error.Message, sendGoAway: true);
                break;
            }
        }
        if (_failure is null)
        {
            _queuedByPeer += _control.WrittenCount + _pending.WrittenCount - queuedBefore;
            if (_flushing && _queuedByPeer > _options.MaxQueuedControlBytes)
            {
                FailLocked(Http2ErrorCode.EnhanceYourCalm,
                    $"{_queuedByPeer} bytes of answers to the client's frames are queued while it does not read (limit {_options.MaxQueuedControlBytes})", sendGoAway: true);
            }
        }
    }

    private static bool ConnectionError(out Http2Error error, Http2ErrorCode code, string message)
    {
        error = Http2Error.Connection(code, message);
        return false;
    }

    /// <summary>A stream the client may not have used yet: even (ours) or above the highest it opened.</summary>
    private bool IsIdle(int streamId) => (streamId & 1) == 0 || streamId > _lastStreamId;

    private bool DispatchLocked(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        if (!_settingsReceived && (frame.Type != Http2FrameType.Settings || frame.IsAck))
        {
            return ConnectionError(out error, Http2ErrorCode.ProtocolError,
                $"the client's first frame after the preface is {Http2Names.Of(frame.Type)}{(frame.IsAck ? " ACK" : "")}, not SETTINGS (RFC 9113 section 3.4)");
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
                return ConnectionError(out error, Http2ErrorCode.ProtocolError, $"PUSH_PROMISE on stream {frame.StreamId} from a client (RFC 9113 section 8.4: only servers push)");
            case Http2FrameType.Ping:
                if (!frame.IsAck)
                {
                    Http2FrameWriter.Ping(_control, ack: true, Http2Payloads.ReadPingData(frame));
                }
                return true;
            case Http2FrameType.GoAway:
                _peerGoingAway = true;
                CheckQuietLocked();
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
        if (delta != 0)
        {
            foreach (var stream in _streams.Values)
            {
                if (!stream.SendWindow.TryAdjust(delta))
                {
                    return ConnectionError(out error, Http2ErrorCode.FlowControlError,
                        $"SETTINGS_INITIAL_WINDOW_SIZE change of {delta} takes stream {stream.Id}'s send window above 2^31-1");
                }
                if (delta > 0)
                {
                    stream.WakeWriterLocked();
                }
            }
        }
        if (_peer.HeaderTableSize != tableSize)
        {
            _encoder.SetPeerMaxTableSize((int)Math.Min(_peer.HeaderTableSize, int.MaxValue));
        }
        Http2FrameWriter.SettingsAck(_control);
        _settingsReceived = true;
        return true;
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
                ResetStreamLocked(target, Http2ErrorCode.FlowControlError,
                    $"HTTP/2 stream {target.Id}: WINDOW_UPDATE of {increment} takes the stream's send window above 2^31-1", countsAsAbuse: true);
            }
            else
            {
                target.WakeWriterLocked();
            }
            return true;
        }
        return !IsIdle(frame.StreamId)
            || ConnectionError(out error, Http2ErrorCode.ProtocolError, $"WINDOW_UPDATE on stream {frame.StreamId}, which the client has not opened (idle)");
    }

    private bool OnRstStream(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        var code = Http2Payloads.ReadRstStreamCode(frame);
        if (!_streams.TryGetValue(frame.StreamId, out var stream))
        {
            return !IsIdle(frame.StreamId)
                || ConnectionError(out error, Http2ErrorCode.ProtocolError, $"RST_STREAM on stream {frame.StreamId}, which the client has not opened (idle)");
        }
        stream.LocalEnded = true;
        FailStreamLocked(stream, new Http2StreamException(code, false, $"HTTP/2 stream {stream.Id}: the client reset it with {Http2Names.Of(code)}"));
        CountResetLocked();
        return true;
    }

    private bool ConsumeConnectionWindowLocked(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        var length = frame.Header.Length;
        if (!_receiveWindow.TryConsume(length))
        {
            return ConnectionError(out error, Http2ErrorCode.FlowControlError,
                $"DATA of {length} bytes on stream {frame.StreamId} overruns the connection receive window ({_receiveWindow.Available} left)");
        }
        return true;
    }

    private bool OnData(in Http2Frame frame, out Http2Error error)
    {
        if (!ConsumeConnectionWindowLocked(frame, out error))
        {
            return false;
        }
        var length = frame.Header.Length;
        if (!_streams.TryGetValue(frame.StreamId, out var stream))
        {
            CreditConnectionLocked(length);
            if (IsIdle(frame.StreamId))
            {
                return ConnectionError(out error, Http2ErrorCode.ProtocolError, $"DATA on stream {frame.StreamId}, which the client has not opened (idle)");
            }
            if (RecallClosedLocked(frame.StreamId) != 2)
            {
                // Closed normally (both sides ended), or long ago: section 5.1 STREAM_CLOSED.
                ResetStreamIdLocked(frame.StreamId, Http2ErrorCode.StreamClosed, "DATA on a closed stream");
            }
            return true;
        }
        if (stream.RemoteEnded)
        {
            CreditConnectionLocked(length);
            ResetStreamLocked(stream, Http2ErrorCode.StreamClosed, $"HTTP/2 stream {stream.Id}: DATA after the request's END_STREAM", countsAsAbuse: true);
            return true;
        }
        if (!stream.ReceiveWindow.TryConsume(length))
        {
            CreditConnectionLocked(length);
            ResetStreamLocked(stream, Http2ErrorCode.FlowControlError,
                $"HTTP/2 stream {stream.Id}: DATA of {length} bytes overruns the stream receive window ({stream.ReceiveWindow.Available} left)", countsAsAbuse: true);
            return true;
        }
        var payloadLength = (int)frame.Payload.Length;
        stream.BodyReceived += payloadLength;
        if (stream.ContentLength >= 0 && (stream.BodyReceived > stream.ContentLength || (frame.EndStream && stream.BodyReceived != stream.ContentLength)))
        {
            CreditConnectionLocked(length);
            ResetStreamLocked(stream, Http2ErrorCode.ProtocolError,
                $"HTTP/2 stream {stream.Id}: malformed request: {stream.BodyReceived}{(frame.EndStream ? "" : "+")} body bytes but content-length {stream.ContentLength}", countsAsAbuse: true);
            return true;
        }
        stream.AppendBodyLocked(frame.Payload);
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
        else
        {
            stream.WakeReaderLocked();
        }
        return true;
    }

    private bool OnHeaders(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        if (frame.EndHeaders && frame.Payload.IsSingleSegment)
        {
            return OnFieldBlock(frame.StreamId, frame.Payload.FirstSpan, frame.EndStream, out error);
        }
        _fieldBlock.Start(frame.StreamId, frame.EndStream);
        return AppendFieldBlock(frame, out error)
            && (!frame.EndHeaders || OnFieldBlock(frame.StreamId, _fieldBlock.Bytes, _fieldBlock.EndStream, out error));
    }

    private bool OnContinuation(in Http2Frame frame, out Http2Error error) =>
        AppendFieldBlock(frame, out error)
        && (!frame.EndHeaders || OnFieldBlock(_fieldBlock.StreamId, _fieldBlock.Bytes, _fieldBlock.EndStream, out error));

    /// <summary>The most bytes of one encoded field block (HEADERS + CONTINUATION): it must be decoded whole to keep
    /// HPACK in step, so a larger one (a CONTINUATION flood) ends the connection.</summary>
    private int FieldBlockLimit => (2 * _options.MaxHeaderListSize) + _options.MaxFrameSize;

    private bool AppendFieldBlock(in Http2Frame frame, out Http2Error error)
    {
        error = default;
        return _fieldBlock.TryAppend(frame.Payload, FieldBlockLimit)
            || ConnectionError(out error, Http2ErrorCode.CompressionError,
                $"the field block on stream {frame.StreamId} is over {FieldBlockLimit} bytes (twice SETTINGS_MAX_HEADER_LIST_SIZE {_options.MaxHeaderListSize} + a frame); it is not decoded, so HPACK state is lost");
    }

    /// <summary>A complete field block: a new request, request trailers, or one to decode and drop.</summary>
    private bool OnFieldBlock(int streamId, ReadOnlySpan<byte> block, bool endStream, out Http2Error error)
    {
        error = default;
        if ((streamId & 1) == 0)
        {
            DecodeAndDrop(block, streamId, out error);
            return error.Message is null && ConnectionError(out error, Http2ErrorCode.ProtocolError, $"HEADERS on stream {streamId}: a client opens odd-numbered streams only");
        }
        if (_streams.TryGetValue(streamId, out var open))
        {
            return OnTrailers(open, block, endStream, out error);
        }
        if (streamId <= _lastStreamId)
        {
            if (!DecodeAndDrop(block, streamId, out error))
            {
                return false;
            }
            return RecallClosedLocked(streamId) switch
            {
                2 => true, // a stream we reset: its frames may still be on the way
                1 => ConnectionError(out error, Http2ErrorCode.StreamClosed, $"HEADERS on stream {streamId}, which is closed"),
                _ => ConnectionError(out error, Http2ErrorCode.ProtocolError,
                    $"HEADERS on stream {streamId}, not above the highest stream opened so far ({_lastStreamId}): stream ids must increase"),
            };
        }
        _lastStreamId = streamId;
        if (_streams.Count >= _options.MaxConcurrentStreams || _draining || streamId > _goAwayLastStreamId)
        {
            if (!DecodeAndDrop(block, streamId, out error))
            {
                return false;
            }
            QueueRstStreamLocked(streamId, Http2ErrorCode.RefusedStream);
            RememberClosedLocked(streamId, reset: true);
            return true;
        }
        var stream = new Http2ServerStream(this, streamId, _peer.InitialWindowSize, _options.InitialStreamWindowSize);
        var sink = new RequestSink(this, stream);
        var status = _decoder.Decode(block, ref sink);
        if (status == HpackStatus.CompressionError)
        {
            stream.ReleaseLocked();
            return ConnectionError(out error, Http2ErrorCode.CompressionError, $"HEADERS on stream {streamId}: {_decoder.LastError}");
        }
        if (status == HpackStatus.HeaderListTooLarge || sink.Count > _options.MaxHeaderCount)
        {
            stream.ReleaseLocked();
            RefuseWith431Locked(streamId, endStream);
            return true;
        }
        var problem = sink.Problem ?? CheckRequestHead(ref sink);
        if (problem is not null)
        {
            stream.ReleaseLocked();
            ResetStreamIdLocked(streamId, Http2ErrorCode.ProtocolError, $"malformed request: {problem}");
            return true;
        }
        stream.Method = sink.Method!;
        stream.Scheme = sink.Scheme ?? "";
        stream.Authority = sink.Authority ?? sink.Host ?? "";
        stream.Path = sink.Path ?? "";
        stream.Protocol = sink.Protocol;
        stream.ContentLength = sink.ContentLength;
        stream.RequestHeadEndsStream = endStream;
        if (endStream && sink.ContentLength > 0)
        {
            stream.ReleaseLocked();
            ResetStreamIdLocked(streamId, Http2ErrorCode.ProtocolError, $"malformed request: content-length {sink.ContentLength} but no body (END_STREAM on HEADERS)");
            return true;
        }
        stream.Open = true;
        stream.RemoteEnded = endStream;
        _streams.Add(streamId, stream);
        _runningHandlers++;
        ThreadPool.UnsafeQueueUserWorkItem(stream, preferLocal: false);
        return true;
    }

    /// <summary>Answers a request whose head is over the limits with 431, keeping the connection.</summary>
    private void RefuseWith431Locked(int streamId, bool endStream)
    {
        QueueHeadersLocked(streamId, 431, null, endStream: true);
        if (!endStream)
        {
            QueueRstStreamLocked(streamId, Http2ErrorCode.NoError);
        }
        RememberClosedLocked(streamId, reset: !endStream);
    }

    private bool OnTrailers(Http2ServerStream stream, ReadOnlySpan<byte> block, bool endStream, out Http2Error error)
    {
        var sink = new TrailerSink(_options.MaxHeaderCount);
        var status = _decoder.Decode(block, ref sink);
        if (status == HpackStatus.CompressionError)
        {
            return ConnectionError(out error, Http2ErrorCode.CompressionError, $"HEADERS on stream {stream.Id}: {_decoder.LastError}");
        }
        error = default;
        var problem = stream.RemoteEnded ? null
            : !endStream ? "a second HEADERS without END_STREAM (trailers must end the request)"
            : status == HpackStatus.HeaderListTooLarge ? $"the trailers exceed SETTINGS_MAX_HEADER_LIST_SIZE {_options.MaxHeaderListSize}"
            : sink.Problem;
        if (stream.RemoteEnded)
        {
            ResetStreamLocked(stream, Http2ErrorCode.StreamClosed, $"HTTP/2 stream {stream.Id}: HEADERS after the request's END_STREAM", countsAsAbuse: true);
            return true;
        }
        if (problem is null && stream.ContentLength >= 0 && stream.BodyReceived != stream.ContentLength)
        {
            problem = $"{stream.BodyReceived} body bytes but content-length {stream.ContentLength}";
        }
        if (problem is not null)
        {
            ResetStreamLocked(stream, Http2ErrorCode.ProtocolError, $"HTTP/2 stream {stream.Id}: malformed request trailers: {problem}", countsAsAbuse: true);
            return true;
        }
        stream.RequestTrailers = (IReadOnlyList<Http2HeaderField>?)sink.Fields ?? [];
        OnRemoteEndLocked(stream);
        return true;
    }

    private bool DecodeAndDrop(ReadOnlySpan<byte> block, int streamId, out Http2Error error)
    {
        error = default;
        var discard = default(HpackDiscardSink);
        return _decoder.Decode(block, ref discard) != HpackStatus.CompressionError
            || ConnectionError(out error, Http2ErrorCode.CompressionError, $"HEADERS on stream {streamId}: {_decoder.LastError}");
    }

    /// <summary>The pseudo-header rules of RFC 9113 section 8.3.1 (and RFC 8441 for :protocol); a problem or null.</summary>
    private string? CheckRequestHead(ref RequestSink sink)
    {
        if (sink.Method is null)
        {
            return "no :method";
        }
        if (sink.Protocol is not null)
        {
            if (!_options.EnableConnectProtocol)
            {
                return ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL";
            }
            if (!string.Equals(sink.Method, "CONNECT", StringComparison.Ordinal))
            {
                return $":protocol with :method {sink.Method} (only CONNECT)";
            }
            return sink.Scheme is null || sink.Path is null || sink.Authority is null
                ? "an extended CONNECT needs :scheme, :path and :authority"
                : null;
        }
        if (string.Equals(sink.Method, "CONNECT", StringComparison.Ordinal))
        {
            return sink.Authority is null || sink.Scheme is not null || sink.Path is not null
                ? "a CONNECT request has :authority and no :scheme or :path"
                : null;
        }
        return sink.Scheme is null || sink.Path is null ? "a request needs :method, :scheme and :path" : null;
    }

    /// <summary>The :authority as a string, reusing the previous request's when the bytes are the same.</summary>
    private string AuthorityString(ReadOnlySpan<byte> value)
    {
        if (_lastAuthorityBytes is not null && value.SequenceEqual(_lastAuthorityBytes))
        {
            return _lastAuthority;
        }
        _lastAuthorityBytes = value.ToArray();
        _lastAuthority = Encoding.Latin1.GetString(value);
        return _lastAuthority;
    }

    private static string MethodString(ReadOnlySpan<byte> value) => value switch
    {
        _ when value.SequenceEqual("GET"u8) => "GET",
        _ when value.SequenceEqual("POST"u8) => "POST",
        _ when value.SequenceEqual("PUT"u8) => "PUT",
        _ when value.SequenceEqual("DELETE"u8) => "DELETE",
        _ when value.SequenceEqual("HEAD"u8) => "HEAD",
        _ when value.SequenceEqual("OPTIONS"u8) => "OPTIONS",
        _ when value.SequenceEqual("PATCH"u8) => "PATCH",
        _ when value.SequenceEqual("CONNECT"u8) => "CONNECT",
        _ => Encoding.Latin1.GetString(value),
    };

    /// <summary>Collects and checks a request head: pseudo-headers into strings, regular fields into the stream.</summary>
    private struct RequestSink : IHpackSink
    {
        private readonly Http2ServerConnection _connection;
        private readonly Http2ServerStream _stream;
        private bool _regularSeen;
        private int _seen;

        public RequestSink(Http2ServerConnection connection, Http2ServerStream stream)
        {
            _connection = connection;
            _stream = stream;
        }

        public int Count { get; private set; }

        public string? Problem { get; private set; }

        public string? Method { get; private set; }

        public string? Scheme { get; private set; }

        public string? Authority { get; private set; }

        public string? Path { get; private set; }

        public string? Protocol { get; private set; }

        public string? Host { get; private set; }

        public long ContentLength { get; private set; } = -1;

        public void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
            if (++Count > _connection._options.MaxHeaderCount || Problem is not null)
            {
                return;
            }
            if (Http2HeaderValidation.IsPseudo(name))
            {
                OnPseudo(name, value);
                return;
            }
            _regularSeen = true;
            var check = Http2HeaderValidation.Check(name, value);
            if (check != Http2FieldProblem.None)
            {
                Problem = check switch
                {
                    Http2FieldProblem.InvalidName => $"field name '{Encoding.Latin1.GetString(name)}' is not a lower-case token",
                    Http2FieldProblem.ConnectionSpecific => $"connection-specific field '{Encoding.Latin1.GetString(name)}' (RFC 9113 section 8.2.2)",
                    _ => $"field '{Encoding.Latin1.GetString(name)}' has a value with NUL, CR, LF or surrounding whitespace",
                };
                return;
            }
            if (staticNameIndex == HpackStaticTable.ContentLength && !OnContentLength(value))
            {
                return;
            }
            if (name.SequenceEqual("host"u8) && Host is null)
            {
                Host = _connection.AuthorityString(value);
            }
            _stream.AddFieldLocked(name, value);
        }

        private bool OnContentLength(ReadOnlySpan<byte> value)
        {
            long parsed = 0;
            if (value.IsEmpty || value.Length > 18)
            {
                Problem = $"content-length '{Encoding.Latin1.GetString(value)}' is not a number";
                return false;
            }
            foreach (var b in value)
            {
                if (b is < (byte)'0' or > (byte)'9')
                {
                    Problem = $"content-length '{Encoding.Latin1.GetString(value)}' is not a number";
                    return false;
                }
                parsed = (parsed * 10) + (b - '0');
            }
            if (ContentLength >= 0 && ContentLength != parsed)
            {
                Problem = $"two different content-length values ({ContentLength} and {parsed})";
                return false;
            }
            ContentLength = parsed;
            return true;
        }

        private void OnPseudo(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
            var pseudo = Http2HeaderValidation.GetPseudo(name);
            if (_regularSeen)
            {
                Problem = $"pseudo-header {Encoding.Latin1.GetString(name)} follows a regular field";
                return;
            }
            if (pseudo is Http2PseudoHeader.None or Http2PseudoHeader.Status)
            {
                Problem = $"{Encoding.Latin1.GetString(name)} is not a request pseudo-header";
                return;
            }
            var bit = 1 << (int)pseudo;
            if ((_seen & bit) != 0)
            {
                Problem = $"{Encoding.Latin1.GetString(name)} appears twice";
                return;
            }
            _seen |= bit;
            if (!Http2HeaderValidation.IsValidValue(value) || (value.IsEmpty && pseudo != Http2PseudoHeader.Authority))
            {
                Problem = $"{Encoding.Latin1.GetString(name)} has an empty or invalid value";
                return;
            }
            switch (pseudo)
            {
                case Http2PseudoHeader.Method:
                    Method = MethodString(value);
                    break;
                case Http2PseudoHeader.Scheme:
                    Scheme = value.SequenceEqual("http"u8) ? "http" : value.SequenceEqual("https"u8) ? "https" : Encoding.Latin1.GetString(value);
                    break;
                case Http2PseudoHeader.Authority:
                    Authority = _connection.AuthorityString(value);
                    break;
                case Http2PseudoHeader.Path:
                    Path = value is [(byte)'/'] ? "/" : Encoding.Latin1.GetString(value);
                    break;
                default:
                    Protocol = Encoding.Latin1.GetString(value);
                    break;
            }
        }
    }

    /// <summary>Collects request trailers (no pseudo-headers; regular field rules).</summary>
    private struct TrailerSink : IHpackSink
    {
        private readonly int _maxCount;

        public TrailerSink(int maxCount)
        {
            _maxCount = maxCount;
        }

        public List<Http2HeaderField>? Fields { get; private set; }

        public string? Problem { get; private set; }

        public void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
        {
            if (Problem is not null)
            {
                return;
            }
            if (Http2HeaderValidation.IsPseudo(name))
            {
                Problem = $"trailers carry the pseudo-header {Encoding.Latin1.GetString(name)}";
                return;
            }
            if (Http2HeaderValidation.Check(name, value) != Http2FieldProblem.None)
            {
                Problem = $"trailer field '{Encoding.Latin1.GetString(name)}' is not valid in HTTP/2";
                return;
            }
            Fields ??= [];
            if (Fields.Count >= _maxCount)
            {
                Problem = $"more than {_maxCount} trailer fields";
                return;
            }
            Fields.Add(new Http2HeaderField(Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
        }
    }

    [LoggerMessage(1, LogLevel.Debug, "HTTP/2 server connection error {Code}: {Message}")]
    private static partial void LogConnectionError(ILogger logger, string code, string message);

    [LoggerMessage(2, LogLevel.Warning, "HTTP/2 server stream {StreamId}: the handler failed")]
    private static partial void LogHandlerFailed(ILogger logger, int streamId, Exception exception);
}
