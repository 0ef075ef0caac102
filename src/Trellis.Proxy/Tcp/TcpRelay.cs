using System.Buffers;
using System.Net.Sockets;

namespace Trellis.Proxy.Tcp;

/// <summary>
/// Copies bytes both ways between two connections until both sides have finished, passing half-closes on.
/// Bytes already read from the downstream (protocol detection) go upstream first. The relay ends when neither
/// direction moved a byte for the idle timeout (measured on the injected clock). A side is a stream (a socket's, or
/// the decrypted stream of a TLS connection the listener terminated) and how to end its sending direction.
/// </summary>
internal static class TcpRelay
{
    private const int BufferSize = 16 * 1024;

    public static async Task RunAsync(Socket downstream, ReadOnlyMemory<byte> prefix, Socket upstream, TimeSpan idleTimeout, TimeProvider time, CancellationToken ct)
    {
        var down = new NetworkStream(downstream, ownsSocket: false);
        var up = new NetworkStream(upstream, ownsSocket: false);
        await using (down.ConfigureAwait(false))
        await using (up.ConfigureAwait(false))
        {
            await RunAsync(down, new SendSide(downstream), prefix, up, new SendSide(upstream), idleTimeout, time, ct).ConfigureAwait(false);
        }
    }

    public static async Task RunAsync(Stream downstream, SendSide downstreamSend, ReadOnlyMemory<byte> prefix, Stream upstream, SendSide upstreamSend,
        TimeSpan idleTimeout, TimeProvider time, CancellationToken ct)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var activity = new IdleWatch(idle, idleTimeout, time);
        try
        {
            if (!prefix.IsEmpty)
            {
                await upstream.WriteAsync(prefix, idle.Token).ConfigureAwait(false);
            }
            var a = PumpAsync(downstream, upstream, upstreamSend, activity, idle.Token);
            var b = PumpAsync(upstream, downstream, downstreamSend, activity, idle.Token);
            await Task.WhenAll(a, b).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // One side reset or went idle: close both.
        }
    }

    private static async Task PumpAsync(Stream from, Stream to, SendSide toSend, IdleWatch activity, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer.AsMemory(0, BufferSize), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    // The sender finished: tell the other side, keep the reverse direction open.
                    await toSend.EndAsync().ConfigureAwait(false);
                    return;
                }
                activity.Touch();
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>
/// Cancels a source when no activity was reported for the timeout: one timer on the injected clock, re-armed for
/// the time left whenever it fires early; <see cref="Touch"/> only stores a timestamp.
/// </summary>
internal sealed class IdleWatch : IDisposable
{
    private readonly CancellationTokenSource _cts;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly ITimer? _timer;
    private long _last;

    public IdleWatch(CancellationTokenSource cts, TimeSpan timeout, TimeProvider time)
    {
        _cts = cts;
        _timeout = timeout;
        _time = time;
        _last = time.GetTimestamp();
        if (timeout > TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            _timer = time.CreateTimer(static s => ((IdleWatch)s!).Check(), this, timeout, Timeout.InfiniteTimeSpan);
        }
    }

    public void Touch() => Volatile.Write(ref _last, _time.GetTimestamp());

    private void Check()
    {
        var idleFor = _time.GetElapsedTime(Volatile.Read(ref _last));
        try
        {
            if (idleFor >= _timeout)
            {
                _cts.Cancel();
            }
            else
            {
                _timer?.Change(_timeout - idleFor, Timeout.InfiniteTimeSpan);
            }
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose() => _timer?.Dispose();
}
