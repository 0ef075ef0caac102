using System.Buffers;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Server;

namespace Trellis.Proxy.Http.Http2;

/// <summary>
/// The downstream request body, sent upstream as it arrives (client-streaming and bidirectional gRPC need every
/// message forwarded at once, never the whole body first). When the route may retry, the first
/// <see cref="ReplayLimit"/> bytes are kept so a failed try can be repeated: the body is replayable while no try
/// has read it yet, or once it was received whole within the limit.
/// </summary>
internal sealed class RequestBody : IAsyncDisposable
{
    public const int ReplayLimit = 64 * 1024;

    private const int ReadSize = 16 * 1024;

    private readonly Http2ServerStream _source;
    private readonly bool _keepCopy;
    private readonly CancellationTokenSource _stop = new();
    private byte[]? _copy;
    private int _copied;
    private bool _overflow;
    private int _state; // Fresh, Streaming, Complete
    private Task _pump = Task.CompletedTask;

    private const int Fresh = 0;
    private const int Streaming = 1;
    private const int Complete = 2;

    public RequestBody(Http2ServerStream source, bool keepCopy)
    {
        _source = source;
        _keepCopy = keepCopy;
    }

    /// <summary>A new try may send the body (again).</summary>
    public bool CanReplay
    {
        get
        {
            var state = Volatile.Read(ref _state);
            return state == Fresh || (state == Complete && _keepCopy && !_overflow);
        }
    }

    /// <summary>
    /// Sends the body of one try into <paramref name="destination"/>: the downstream body as it arrives (each read
    /// goes out at once), or the kept copy when an earlier try failed; the last DATA frame ends the request. The
    /// task is kept so that <see cref="DisposeAsync"/> can wait for it.
    /// </summary>
    public Task SendAsync(Http2ClientStream destination, CancellationToken cancellationToken)
    {
        var pump = Volatile.Read(ref _state) switch
        {
            Fresh => StreamAsync(destination, cancellationToken),
            Complete when _keepCopy && !_overflow => ReplayAsync(destination, cancellationToken),
            _ => Task.FromException(new InvalidOperationException("the request body was partly sent by an earlier try and cannot be sent again")),
        };
        _pump = pump;
        return pump;
    }

    private async Task ReplayAsync(Http2ClientStream destination, CancellationToken cancellationToken)
    {
        await destination.WriteDataAsync(_copy.AsMemory(0, _copied), endStream: true, cancellationToken).ConfigureAwait(false);
    }

    private async Task StreamAsync(Http2ClientStream destination, CancellationToken cancellationToken)
    {
        Volatile.Write(ref _state, Streaming);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
        var token = linked.Token;
        // A body of known small length gets a buffer its size.
        var length = _source.ContentLength;
        var buffer = ArrayPool<byte>.Shared.Rent(length is >= 0 and < ReadSize ? (int)Math.Max(length, 1) : ReadSize);
        try
        {
            while (true)
            {
                var read = await _source.ReadDataAsync(buffer, token).ConfigureAwait(false);
                if (read == 0)
                {
                    Volatile.Write(ref _state, Complete);
                    await destination.WriteDataAsync(ReadOnlyMemory<byte>.Empty, endStream: true, token).ConfigureAwait(false);
                    return;
                }
                Keep(buffer.AsSpan(0, read));
                // Each read goes out at once (a gRPC message is forwarded as it arrives, not when a buffer fills).
                await destination.WriteDataAsync(buffer.AsMemory(0, read), endStream: false, token).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Keep(ReadOnlySpan<byte> data)
    {
        if (!_keepCopy || _overflow || data.IsEmpty)
        {
            return;
        }
        if (_copied + data.Length > ReplayLimit)
        {
            _overflow = true;
            Release();
            return;
        }
        if (_copy is null || _copy.Length < _copied + data.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Min(ReplayLimit, Math.Max(4096, (_copied + data.Length) * 2)));
            _copy?.AsSpan(0, _copied).CopyTo(larger);
            Release();
            _copy = larger;
        }
        data.CopyTo(_copy.AsSpan(_copied));
        _copied += data.Length;
    }

    private void Release()
    {
        if (_copy is { } copy)
        {
            _copy = null;
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    /// <summary>Stops a try still reading the downstream body and waits for it (the request is over).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _pump.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException or ObjectDisposedException or Http2StreamException)
        {
        }
        _stop.Dispose();
        _copied = 0;
        Release();
    }
}
