using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Trellis.Proxy.Threading;
using Xunit;

namespace Trellis.Proxy.Tests.Threading;

// These tests drive every completion by hand on the test thread, so each ValueTask is complete when its result is
// read, and reading it synchronously is what recycles the pooled box under test.
#pragma warning disable CA2012, xUnit1031

public sealed class PooledValueTaskBuilderTests
{
    [Fact]
    public void Await_CompletesSynchronously_ReturnsResult()
    {
        var task = AddAsync(null, 3);
        Assert.True(task.IsCompletedSuccessfully);
        Assert.Equal(3, task.Result);
    }

    [Fact]
    public void Await_CompletesLater_ResumesWithTheResult()
    {
        var gate = new Gate();
        var task = ThreeLevelsAsync(gate);
        Assert.False(task.IsCompleted);
        gate.Open(40);
        Assert.True(task.IsCompletedSuccessfully);
        Assert.Equal(44, task.Result);
    }

    [Fact]
    public async Task Exception_ThrownBeforeOrAfterSuspending_ReachesTheCaller()
    {
        await Assert.ThrowsAsync<InvalidDataException>(() => ThrowAsync(null).AsTask());
        var gate = new Gate();
        var pending = ThrowAsync(gate);
        gate.Open(1);
        await Assert.ThrowsAsync<InvalidDataException>(() => pending.AsTask());
        var failing = ThreeLevelsAsync(gate);
        gate.Fail(new TimeoutException("upstream"));
        Assert.Equal("upstream", (await Assert.ThrowsAsync<TimeoutException>(() => failing.AsTask())).Message);
        var plain = VoidAsync(gate, fail: true);
        gate.Open(0);
        await Assert.ThrowsAsync<InvalidDataException>(() => plain.AsTask());
    }

    [Fact]
    public void ResultRead_Twice_Throws()
    {
        var gate = new Gate();
        var task = ThreeLevelsAsync(gate);
        gate.Open(1);
        Assert.Equal(5, task.GetAwaiter().GetResult());
        Assert.Throws<InvalidOperationException>(() => task.GetAwaiter().GetResult());
    }

    /// <summary>
    /// The case the runtime's pooling builder misses: many calls suspended at once, then completed in one batch (as
    /// the socket event loop does). After a warm-up round every box comes from the pool.
    /// </summary>
    [Fact]
    public void ManyCalls_SuspendedAndCompletedInABatch_AllocateNothingAfterWarmUp()
    {
        const int InFlight = 64;
        var gates = new Gate[InFlight];
        for (var i = 0; i < InFlight; i++)
        {
            gates[i] = new Gate();
        }
        var tasks = new ValueTask<int>[InFlight];
        var voids = new ValueTask[InFlight];
        // Bytes allocated by one round of 64 calls; with preOpened every await completes synchronously (no box at all),
        // which also measures what the calls cost without suspending (a Debug build's state machines are classes).
        long Round(bool preOpened)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var sum = 0L;
            for (var i = 0; i < InFlight; i++)
            {
                if (preOpened)
                {
                    gates[i].Open(i);
                }
                tasks[i] = ThreeLevelsAsync(gates[i]);
            }
            for (var i = 0; i < InFlight; i++)
            {
                if (!preOpened)
                {
                    gates[i].Open(i);
                }
            }
            for (var i = 0; i < InFlight; i++)
            {
                sum += tasks[i].GetAwaiter().GetResult();
                if (preOpened)
                {
                    gates[i].Open(i);
                }
                voids[i] = VoidAsync(gates[i], fail: false);
            }
            for (var i = 0; i < InFlight; i++)
            {
                if (!preOpened)
                {
                    gates[i].Open(i);
                }
                voids[i].GetAwaiter().GetResult();
            }
            Assert.Equal(InFlight * (InFlight - 1) / 2 + 4 * InFlight, sum);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.True(Round(preOpened: false) > Round(preOpened: true), "the first round fills the pools");
        var withoutSuspending = Round(preOpened: true);
        Assert.Equal(withoutSuspending, Round(preOpened: false));
        Assert.Equal(withoutSuspending, Round(preOpened: false));
    }

    [Fact]
    public async Task AsyncLocal_SetByTheCaller_IsSeenAfterTheAwaitAndChangesStayInside()
    {
        var gate = new Gate();
        Flow.Value = "caller";
        var task = ReadFlowAfterAwaitAsync(gate);
        Flow.Value = "changed after the call";
        // The gate is opened from a thread pool thread that carries no context of ours.
        using (ExecutionContext.SuppressFlow())
        {
            _ = Task.Run(() => gate.Open(0));
        }
        Assert.Equal("caller|inside", await task);
        Assert.Equal("changed after the call", Flow.Value);
    }

    private static readonly AsyncLocal<string?> Flow = new();

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<string> ReadFlowAfterAwaitAsync(Gate gate)
    {
        await gate.WaitAsync().ConfigureAwait(false);
        var seen = Flow.Value;
        Flow.Value = "inside";
        await Task.Yield();
        return $"{seen}|{Flow.Value}";
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> AddAsync(Gate? gate, int value) => (gate is null ? 0 : await gate.WaitAsync().ConfigureAwait(false)) + value;

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> ThreeLevelsAsync(Gate gate) => await MiddleAsync(gate).ConfigureAwait(false) + 1;

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> MiddleAsync(Gate gate) => await AddAsync(gate, 2).ConfigureAwait(false) + 1;

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<int> ThrowAsync(Gate? gate)
    {
        if (gate is not null)
        {
            await gate.WaitAsync().ConfigureAwait(false);
        }
        throw new InvalidDataException("bad");
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder))]
    private static async ValueTask VoidAsync(Gate gate, bool fail)
    {
        await gate.WaitAsync().ConfigureAwait(false);
        if (fail)
        {
            throw new InvalidDataException("bad");
        }
    }

    /// <summary>An operation the test completes by hand; continuations run inline on the completing thread.</summary>
    private sealed class Gate : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core;

        public ValueTask<int> WaitAsync() => new(this, _core.Version);

        public void Open(int value) => _core.SetResult(value);

        public void Fail(Exception exception) => _core.SetException(exception);

        public int GetResult(short token)
        {
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
