using System.Diagnostics;

namespace Trellis.Testing;

/// <summary>
/// Bounded waits for state that another process or thread changes and that offers no event to await (a child
/// process's HTTP answers, a client's connection state). Checks often, gives up after the limit with a message
/// naming what never happened. Prefer awaiting a real event where the code under test offers one.
/// </summary>
public static class Eventually
{
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromSeconds(10);

    public static Task WaitAsync(Func<bool> condition, string what, TimeSpan? limit = null) =>
        WaitAsync(() => Task.FromResult(condition()), what, limit);

    public static async Task WaitAsync(Func<Task<bool>> condition, string what, TimeSpan? limit = null)
    {
        var max = limit ?? DefaultLimit;
        var clock = Stopwatch.StartNew();
        var pause = TimeSpan.FromMilliseconds(5);
        while (!await condition().ConfigureAwait(false))
        {
            if (clock.Elapsed > max)
            {
                throw new TimeoutException($"timed out after {max.TotalSeconds:0.#} s waiting for {what}");
            }
            await Task.Delay(pause).ConfigureAwait(false);
            pause = TimeSpan.FromMilliseconds(Math.Min(100, pause.TotalMilliseconds * 2));
        }
    }
}
