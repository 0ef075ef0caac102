using System.Buffers;
using System.Net.Sockets;

namespace Trellis.Proxy.Tcp;

/// <summary>Copies bytes both ways between two connected sockets until both sides have finished, passing half-closes on.</summary>
internal static class TcpRelay
{
    private const int BufferSize = 16 * 1024;

    public static async Task RunAsync(Socket downstream, Socket upstream, TimeSpan idleTimeout, CancellationToken ct)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var activity = new Activity(idle, idleTimeout);
        var a = PumpAsync(downstream, upstream, activity, idle.Token);
        var b = PumpAsync(upstream, downstream, activity, idle.Token);
        try
        {
            await Task.WhenAll(a, b).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // One side reset or went idle: close both.
        }
        finally
        {
            activity.Dispose();
        }
    }

    private static async Task PumpAsync(Socket from, Socket to, Activity activity, CancellationToken ct)
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

    /// <summary>Cancels the relay when neither direction moved a byte for the idle timeout.</summary>
    private sealed class Activity : IDisposable
    {
        private readonly CancellationTokenSource _cts;
        private readonly TimeSpan _timeout;
        private readonly Timer? _timer;
        private long _lastTicks = Environment.TickCount64;

        public Activity(CancellationTokenSource cts, TimeSpan timeout)
        {
            _cts = cts;
            _timeout = timeout;
            if (timeout > TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
            {
                var period = TimeSpan.FromMilliseconds(Math.Max(100, timeout.TotalMilliseconds / 4));
                _timer = new Timer(_ => Check(), null, period, period);
            }
        }

        public void Touch() => Volatile.Write(ref _lastTicks, Environment.TickCount64);

        private void Check()
        {
            if (Environment.TickCount64 - Volatile.Read(ref _lastTicks) > _timeout.TotalMilliseconds)
            {
                try
                {
                    _cts.Cancel();
                }
                catch (ObjectDisposedException)
                {
                }
            }
        }

        public void Dispose() => _timer?.Dispose();
    }
}
