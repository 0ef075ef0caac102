using System.Threading.Channels;
using Microsoft.Extensions.Time.Testing;

namespace Trellis.Testing;

/// <summary>
/// A fake clock that also tells when code under test starts waiting on it (creates a timer, as Task.Delay with
/// this provider does), so a test can advance time exactly when the wait has begun instead of sleeping.
/// </summary>
public sealed class TimerWatchingTimeProvider(DateTimeOffset start) : FakeTimeProvider(start)
{
    private readonly Channel<TimeSpan> _timers = Channel.CreateUnbounded<TimeSpan>();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        _timers.Writer.TryWrite(dueTime);
        return timer;
    }

    /// <summary>The due time of the next timer created (waits for it, up to 10 s).</summary>
    public async Task<TimeSpan> NextTimerAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            return await _timers.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("no timer was created on the fake clock within 10 s");
        }
    }
}
