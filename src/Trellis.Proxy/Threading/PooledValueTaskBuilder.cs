using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace Trellis.Proxy.Threading;

/// <summary>
/// Async method builder for <see cref="ValueTask{TResult}"/> methods of the data path
/// (<c>[AsyncMethodBuilder(typeof(PooledValueTaskBuilder&lt;&gt;))]</c>). A method that completes synchronously costs
/// nothing; one that suspends runs on a box taken from a per-thread pool of up to <see cref="PooledBoxes.PerThread"/>
/// boxes per method and returned when its result is read.
/// </summary>
/// <remarks>
/// The runtime's <see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/> keeps one box per thread and one per core.
/// The socket event loop completes dozens of connections per wake-up (every request returning its boxes, then every
/// response taking them), so that cache was almost always empty or full: the state machine boxes were 98% of the bytes
/// the proxy allocated per HTTP/1.1 request. The rules are the runtime's: a <see cref="ValueTask{TResult}"/> from
/// this builder may be awaited (or have its result read) once.
/// </remarks>
internal struct PooledValueTaskBuilder<TResult>
{
    private PooledBox<TResult>? _box;
    private TResult _result;
    private Exception? _exception;

    public static PooledValueTaskBuilder<TResult> Create() => default;

    public readonly ValueTask<TResult> Task =>
        _box is { } box ? new ValueTask<TResult>(box, box.Version)
        : _exception is { } exception ? ValueTask.FromException<TResult>(exception)
        : new ValueTask<TResult>(_result);

    public readonly void Start<TStateMachine>(ref TStateMachine stateMachine) where TStateMachine : IAsyncStateMachine =>
        default(AsyncValueTaskMethodBuilder<TResult>).Start(ref stateMachine);

    /// <summary>Never needed: boxes are made by this builder, not by the runtime.</summary>
    public readonly void SetStateMachine(IAsyncStateMachine stateMachine)
    {
    }

    public void SetResult(TResult result)
    {
        if (_box is null)
        {
            _result = result;
        }
        else
        {
            _box.SetResult(result);
        }
    }

    public void SetException(Exception exception)
    {
        if (_box is null)
        {
            _exception = exception;
        }
        else
        {
            _box.SetException(exception);
        }
    }

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion where TStateMachine : IAsyncStateMachine =>
        PooledBoxes.AwaitOnCompleted(ref _box, ref awaiter, ref stateMachine);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion where TStateMachine : IAsyncStateMachine =>
        PooledBoxes.AwaitUnsafeOnCompleted(ref _box, ref awaiter, ref stateMachine);
}

/// <summary>The <see cref="ValueTask"/> counterpart of <see cref="PooledValueTaskBuilder{TResult}"/>.</summary>
internal struct PooledValueTaskBuilder
{
    private PooledBox<PooledBoxes.Unit>? _box;
    private Exception? _exception;

    public static PooledValueTaskBuilder Create() => default;

    public readonly ValueTask Task =>
        _box is { } box ? new ValueTask(box, box.Version)
        : _exception is { } exception ? ValueTask.FromException(exception)
        : default;

    public readonly void Start<TStateMachine>(ref TStateMachine stateMachine) where TStateMachine : IAsyncStateMachine =>
        default(AsyncValueTaskMethodBuilder).Start(ref stateMachine);

    /// <summary>Never needed: boxes are made by this builder, not by the runtime.</summary>
    public readonly void SetStateMachine(IAsyncStateMachine stateMachine)
    {
    }

    public readonly void SetResult() => _box?.SetResult(default);

    public void SetException(Exception exception)
    {
        if (_box is null)
        {
            _exception = exception;
        }
        else
        {
            _box.SetException(exception);
        }
    }

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion where TStateMachine : IAsyncStateMachine =>
        PooledBoxes.AwaitOnCompleted(ref _box, ref awaiter, ref stateMachine);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion where TStateMachine : IAsyncStateMachine =>
        PooledBoxes.AwaitUnsafeOnCompleted(ref _box, ref awaiter, ref stateMachine);
}

internal static class PooledBoxes
{
    /// <summary>Most idle boxes kept per method and thread (about 200 bytes each).</summary>
    public const int PerThread = 256;

    /// <summary>The result type of methods returning a plain <see cref="ValueTask"/>.</summary>
    public readonly struct Unit;

    /// <summary>
    /// The context of code that set no async-local value. Continuations come from the socket event loop and the
    /// thread pool, which run in it, so a method that captured it resumes without switching contexts.
    /// </summary>
    private static readonly ExecutionContext? DefaultContext = CaptureDefault();

    private static ExecutionContext? CaptureDefault()
    {
        ExecutionContext? captured = null;
        var thread = new Thread(() => captured = ExecutionContext.Capture());
        using (ExecutionContext.SuppressFlow())
        {
            thread.Start();
        }
        thread.Join();
        return captured;
    }

    public static void AwaitOnCompleted<TResult, TAwaiter, TStateMachine>(ref PooledBox<TResult>? slot, ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion where TStateMachine : IAsyncStateMachine
    {
        var box = For(ref slot, ref stateMachine);
        box.Context = null; // the awaiter flows the execution context itself
        awaiter.OnCompleted(box.MoveNextAction);
    }

    public static void AwaitUnsafeOnCompleted<TResult, TAwaiter, TStateMachine>(ref PooledBox<TResult>? slot, ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion where TStateMachine : IAsyncStateMachine
    {
        var box = For(ref slot, ref stateMachine);
        var context = ExecutionContext.Capture();
        box.Context = ReferenceEquals(context, DefaultContext) ? null : context;
        awaiter.UnsafeOnCompleted(box.MoveNextAction);
    }

    /// <summary>
    /// The box of a method at its first suspension: taken from the pool, recorded in the builder (which lives inside
    /// the state machine, so this must happen before the copy), then the state machine is copied into it and runs
    /// there from now on. Later suspensions of the same call find it in the builder.
    /// </summary>
    private static PooledBox<TResult> For<TResult, TStateMachine>(ref PooledBox<TResult>? slot, ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine
    {
        if (slot is { } existing)
        {
            return existing;
        }
        var box = PooledBox<TStateMachine, TResult>.Rent();
        slot = box;
        box.StateMachine = stateMachine;
        return box;
    }
}

/// <summary>A suspended async method's state and completion, reusable once its result has been read.</summary>
internal abstract class PooledBox<TResult> : IValueTaskSource<TResult>, IValueTaskSource
{
    private ManualResetValueTaskSourceCore<TResult> _core;

    protected PooledBox()
    {
        MoveNextAction = MoveNext;
    }

    /// <summary>Resumes the state machine (the continuation given to awaiters, made once per box).</summary>
    public Action MoveNextAction { get; }

    /// <summary>The execution context captured at the current await, or null when the awaiter flows it.</summary>
    public ExecutionContext? Context { get; set; }

    public short Version => _core.Version;

    public void SetResult(TResult result) => _core.SetResult(result);

    public void SetException(Exception exception) => _core.SetException(exception);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    public TResult GetResult(short token)
    {
        if (token != _core.Version)
        {
            throw new InvalidOperationException("a pooled ValueTask was awaited twice or after its result was read");
        }
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            Context = null;
            Recycle();
        }
    }

    void IValueTaskSource.GetResult(short token) => GetResult(token);

    protected abstract void MoveNext();

    /// <summary>Clears the state machine and puts the box back in the pool.</summary>
    protected abstract void Recycle();
}

internal sealed class PooledBox<TStateMachine, TResult> : PooledBox<TResult> where TStateMachine : IAsyncStateMachine
{
    [ThreadStatic]
    private static Pool? t_pool;

    private static readonly ContextCallback RunInContext = static box => ((PooledBox<TStateMachine, TResult>)box!).StateMachine.MoveNext();

    public TStateMachine StateMachine = default!;

    public static PooledBox<TStateMachine, TResult> Rent() => t_pool is { Count: > 0 } pool ? pool.Pop() : new();

    protected override void MoveNext()
    {
        if (Context is { } context)
        {
            ExecutionContext.Run(context, RunInContext, this);
        }
        else
        {
            StateMachine.MoveNext();
        }
    }

    protected override void Recycle()
    {
        StateMachine = default!;
        (t_pool ??= new Pool()).Push(this);
    }

    private sealed class Pool
    {
        private readonly PooledBox<TStateMachine, TResult>?[] _items = new PooledBox<TStateMachine, TResult>?[PooledBoxes.PerThread];

        public int Count { get; private set; }

        public PooledBox<TStateMachine, TResult> Pop()
        {
            var box = _items[--Count]!;
            _items[Count] = null;
            return box;
        }

        public void Push(PooledBox<TStateMachine, TResult> box)
        {
            if (Count < _items.Length)
            {
                _items[Count++] = box;
            }
        }
    }
}
