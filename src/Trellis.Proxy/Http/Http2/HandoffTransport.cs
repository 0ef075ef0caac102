using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Trellis.Proxy.Listeners;

namespace Trellis.Proxy.Http.Http2;

/// <summary>
/// The address Kestrel "listens" on for handed-over connections. It binds nothing: connections arrive through
/// <see cref="HandoffListener.TryHandOver"/>, so Kestrel's own socket transport never sees this endpoint.
/// </summary>
internal sealed class HandoffEndPoint : EndPoint
{
    public override string ToString() => "trellis-handoff";
}

/// <summary>
/// A Kestrel transport whose only connections are sockets the proxy's listeners accepted and detected as HTTP/2.
/// </summary>
internal sealed class HandoffListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private HandoffListener? _listener;

    /// <summary>The bound listener (null before Kestrel started).</summary>
    public HandoffListener? Listener => Volatile.Read(ref _listener);

    public bool CanBind(EndPoint endpoint) => endpoint is HandoffEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not HandoffEndPoint)
        {
            throw new NotSupportedException($"the HTTP/2 hand-off transport binds only its own endpoint, not {endpoint}");
        }
        var listener = new HandoffListener(endpoint);
        if (Interlocked.CompareExchange(ref _listener, listener, null) is not null)
        {
            throw new InvalidOperationException("the HTTP/2 hand-off transport is bound once per server");
        }
        return ValueTask.FromResult<IConnectionListener>(listener);
    }
}

/// <summary>Yields handed-over connections to Kestrel's accept loop.</summary>
internal sealed class HandoffListener(EndPoint endpoint) : IConnectionListener
{
    private readonly Channel<HandoffConnection> _pending = Channel.CreateUnbounded<HandoffConnection>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });

    public EndPoint EndPoint { get; } = endpoint;

    /// <summary>Queues a connection for Kestrel; false once the server stopped accepting.</summary>
    public bool TryHandOver(HandoffConnection connection) => _pending.Writer.TryWrite(connection);

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (await _pending.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_pending.Reader.TryRead(out var connection))
            {
                connection.Start();
                return connection;
            }
        }
        return null;
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _pending.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        // Connections queued but never accepted are closed here.
        while (_pending.Reader.TryRead(out var connection))
        {
            connection.Abort(new ConnectionAbortedException("the HTTP/2 server stopped"));
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>What a request can learn about the connection it came in on (a connection feature).</summary>
internal interface IDownstreamConnectionFeature
{
    DownstreamConnection Connection { get; }
}

/// <summary>
/// One handed-over socket as a Kestrel connection: a receive loop that first replays the bytes protocol detection
/// already read, then copies the socket (or, when the listener terminated TLS, the decrypted stream) into the input
/// pipe; a send loop that copies the output pipe to the socket (or the stream). <see cref="Completed"/> finishes when Kestrel disposed the connection and the socket is closed.
/// </summary>
internal sealed class HandoffConnection : ConnectionContext, IDownstreamConnectionFeature
{
    private const int MinReceiveBuffer = 4096;
    private static readonly PipeOptions InputOptions = new(
        readerScheduler: PipeScheduler.ThreadPool, writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024, useSynchronizationContext: false);
    private static readonly PipeOptions OutputOptions = new(
        readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.ThreadPool,
        pauseWriterThreshold: 64 * 1024, resumeWriterThreshold: 32 * 1024, useSynchronizationContext: false);
    private static long s_nextId;

    private readonly Socket _socket;
    private readonly Stream? _tls;
    private readonly Pipe _input = new(InputOptions);
    private readonly Pipe _output = new(OutputOptions);
    private readonly CancellationTokenSource _closed = new();
    private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _io = Task.CompletedTask;
    private volatile ConnectionAbortedException? _abortReason;
    private int _disposed;

    public HandoffConnection(DownstreamConnection connection)
    {
        Connection = connection;
        _socket = connection.Socket;
        _tls = connection.Tls;
        ConnectionId = "h2-" + Interlocked.Increment(ref s_nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Transport = new DuplexPipe(_input.Reader, _output.Writer);
        LocalEndPoint = SafeEndPoint(static s => s.LocalEndPoint, _socket);
        RemoteEndPoint = SafeEndPoint(static s => s.RemoteEndPoint, _socket);
        Features.Set<IDownstreamConnectionFeature>(this);
    }

    public DownstreamConnection Connection { get; }

    /// <summary>Completes when the connection is over (Kestrel disposed it; the socket is closed).</summary>
    public Task Completed => _completed.Task;

    public override string ConnectionId { get; set; }
    public override IFeatureCollection Features { get; } = new FeatureCollection();
    public override IDictionary<object, object?> Items { get; set; } = new ConnectionItems();
    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _closed.Token;
        set => throw new NotSupportedException("the hand-off connection owns its close token");
    }

    public override EndPoint? LocalEndPoint { get; set; }
    public override EndPoint? RemoteEndPoint { get; set; }

    internal void Start() => _io = RunAsync();

    /// <summary>Asks Kestrel to end the connection gracefully (HTTP/2 GOAWAY, streams in flight finish).</summary>
    public void RequestClose()
    {
        if (Features.Get<IConnectionLifetimeNotificationFeature>() is { } lifetime)
        {
            lifetime.RequestClose();
        }
        else
        {
            Abort(new ConnectionAbortedException("the proxy closed the connection"));
        }
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _abortReason ??= abortReason;
        _output.Reader.CancelPendingRead();
        CloseSocket();
    }

    private async Task RunAsync()
    {
        var receiving = ReceiveAsync();
        var sending = SendAsync();
        await receiving.ConfigureAwait(false);
        await sending.ConfigureAwait(false);
        // Like Kestrel's socket transport: the close token fires after both directions ended, off the I/O thread.
        ThreadPool.UnsafeQueueUserWorkItem(static c => c.FireClosed(), this, preferLocal: false);
    }

    private void FireClosed()
    {
        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task ReceiveAsync()
    {
        var writer = _input.Writer;
        Exception? error = null;
        try
        {
            if (!Connection.Prefix.IsEmpty)
            {
                var first = await writer.WriteAsync(Connection.Prefix).ConfigureAwait(false);
                if (first.IsCompleted)
                {
                    return;
                }
            }
            while (true)
            {
                var memory = writer.GetMemory(MinReceiveBuffer);
                var read = _tls is { } tls
                    ? await tls.ReadAsync(memory).ConfigureAwait(false)
                    : await _socket.ReceiveAsync(memory, SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                writer.Advance(read);
                var flushed = await writer.FlushAsync().ConfigureAwait(false);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            error = _abortReason is { } reason
                ? reason
                : new ConnectionResetException(ex.Message, ex);
        }
        finally
        {
            await writer.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    private async Task SendAsync()
    {
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (result.IsCanceled)
                {
                    break;
                }
                foreach (var segment in buffer)
                {
                    if (_tls is { } tls)
                    {
                        await tls.WriteAsync(segment).ConfigureAwait(false);
                    }
                    else
                    {
                        await _socket.SendAsync(segment, SocketFlags.None).ConfigureAwait(false);
                    }
                }
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            // The peer or an abort closed the socket; Kestrel learns it from the input side.
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
            // Output finished (or failed): the connection is over in both directions.
            CloseSocket();
        }
    }

    private void CloseSocket()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
        _socket.Dispose();
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await Transport.Input.CompleteAsync().ConfigureAwait(false);
        await Transport.Output.CompleteAsync().ConfigureAwait(false);
        try
        {
            await _io.ConfigureAwait(false);
        }
        finally
        {
            CloseSocket();
            FireClosed();
            _completed.TrySetResult();
        }
        await base.DisposeAsync().ConfigureAwait(false);
    }

    private static EndPoint? SafeEndPoint(Func<Socket, EndPoint?> get, Socket socket)
    {
        try
        {
            return get(socket);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return null;
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
