using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;

namespace Trellis.Proxy.Tcp;

/// <summary>
/// Copies bytes both ways between two connected sockets until both sides have finished, passing half-closes on.
/// Bytes already read from the downstream (protocol detection) go upstream first. The relay ends when neither
/// direction moved a byte for the idle timeout (measured on the injected clock).
/// </summary>
internal static class TcpRelay
{
    private const int BufferSize = 16 * 1024;

    public static async Task RunAsync(Socket downstream, ReadOnlyMemory<byte> prefix, Socket upstream, TimeSpan idleTimeout, TimeProvider time, CancellationToken ct)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var activity = new IdleWatch(idle, idleTimeout, time);
        try
        {
            while (!prefix.IsEmpty)
            {
                var sent = await upstream.SendAsync(prefix, SocketFlags.None, idle.Token).ConfigureAwait(false);
                prefix = prefix[sent..];
            }
            var a = PumpAsync(downstream, upstream, activity, idle.Token);
            var b = PumpAsync(upstream, downstream, activity, idle.Token);
            await Task.WhenAll(a, b).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // One side reset or went idle: close both.
        }
    }

    /// <summary>
    /// The same relay to an upstream reached over TLS: plaintext from the downstream socket goes into
    /// <paramref name="upstream"/> (which owns the upstream socket); a half-close upstream is close_notify then FIN.
    /// </summary>
    public static async Task RunAsync(Socket downstream, ReadOnlyMemory<byte> prefix, SslStream upstream, Socket upstreamSocket, TimeSpan idleTimeout,
        TimeProvider time, CancellationToken ct)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var activity = new IdleWatch(idle, idleTimeout, time);
        await using var down = new NetworkStream(downstream, ownsSocket: false);
        try
        {
            if (!prefix.IsEmpty)
            {
                await upstream.WriteAsync(prefix, idle.Token).ConfigureAwait(false);
            }
            var a = PumpAsync(down, upstream, new SendSide(upstreamSocket, upstream), activity, idle.Token);
            var b = PumpAsync(upstream, down, new SendSide(downstream), activity, idle.Token);
            await Task.WhenAll(a, b).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // One side reset or went idle: close both.
        }
    }

    private static async Task PumpAsync(Stream from, Stream to, SendSide sink, IdleWatch activity, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer.AsMemory(0, BufferSize), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    await sink.ShutdownAsync().ConfigureAwait(false);
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

    private static async Task PumpAsync(Socket from, Socket to, IdleWatch activity, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer.AsMemory(0, BufferSize), SocketFlags.None, ct).ConfigureAwait(false);
                if (n == 0)
                {
                    // The sender finished: tell the other side, keep the reverse direction open.
                    try
                    {
                        to.Shutdown(SocketShutdown.Send);
                    }
                    catch (SocketException)
                    {
                    }
                    return;
                }
                activity.Touch();
                var sent = 0;
                while (sent < n)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None, ct).ConfigureAwait(false);
                }
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
