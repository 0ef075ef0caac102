using System.Threading.Tasks.Sources;
using Trellis.Proxy.Http.Http2.Frames;

namespace Trellis.Proxy.Http.Http2.Client;

/// <summary>Settings of one <see cref="Http2ClientConnection"/>.</summary>
internal sealed class Http2ClientOptions
{
    /// <summary>Our SETTINGS_INITIAL_WINDOW_SIZE: how many response body bytes the server may send on one stream
    /// before we take them (also the most a stream buffers).</summary>
    public int StreamWindowSize { get; init; } = Http2Limits.DefaultInitialWindowSize;

    /// <summary>Our connection receive window, raised from the protocol's 65535 by a WINDOW_UPDATE after the preface.</summary>
    public int ConnectionWindowSize { get; init; } = 1024 * 1024;

    /// <summary>Our SETTINGS_MAX_CONCURRENT_STREAMS (streams the server may open; it opens none without push).</summary>
    public int MaxConcurrentStreams { get; init; } = 100;

    /// <summary>The largest decoded response field section (name + value + 32 per field) accepted on a stream.</summary>
    public int MaxHeaderListSize { get; init; } = 64 * 1024;

    /// <summary>How long connecting, sending the preface and receiving the server's first SETTINGS may take.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    internal void Validate()
    {
        if (StreamWindowSize is < 1 or > Http2Limits.MaxWindowSize)
        {
            throw new ArgumentOutOfRangeException(nameof(StreamWindowSize), StreamWindowSize, "a window is 1..2^31-1 bytes");
        }
        if (ConnectionWindowSize is < Http2Limits.DefaultInitialWindowSize or > Http2Limits.MaxWindowSize)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectionWindowSize), ConnectionWindowSize, "the connection window is 65535..2^31-1 bytes");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(MaxConcurrentStreams);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxHeaderListSize, 1);
    }
}

/// <summary>One header field as text (names lower case). Allocated per field: the first version's cost.</summary>
internal readonly record struct Http2HeaderField(string Name, string Value);

/// <summary>A response head: the final (non-1xx) status and its fields, pseudo-headers removed.</summary>
internal sealed class Http2ResponseHead
{
    public Http2ResponseHead(int status, IReadOnlyList<Http2HeaderField> fields, bool endStream)
    {
        Status = status;
        Fields = fields;
        EndStream = endStream;
    }

    public int Status { get; }

    public IReadOnlyList<Http2HeaderField> Fields { get; }

    /// <summary>The head ended the response (no body, no separate trailers): for gRPC a trailers-only response,
    /// whose grpc-status is among <see cref="Fields"/>.</summary>
    public bool EndStream { get; }

    /// <summary>The first value of a field, or null.</summary>
    public string? Get(string name) => Http2HeaderFields.Get(Fields, name);
}

internal static class Http2HeaderFields
{
    /// <summary>Writes <paramref name="text"/> as Latin-1 into <paramref name="scratch"/> at <paramref name="at"/>
    /// (growing it); the byte count.</summary>
    public static int ToLatin1(ref byte[] scratch, string text, int at)
    {
        var needed = at + text.Length;
        if (scratch.Length < needed)
        {
            Array.Resize(ref scratch, Math.Max(needed, scratch.Length * 2));
        }
        return System.Text.Encoding.Latin1.GetBytes(text, scratch.AsSpan(at));
    }

    public static string? Get(IReadOnlyList<Http2HeaderField>? fields, string name)
    {
        if (fields is null)
        {
            return null;
        }
        for (var i = 0; i < fields.Count; i++)
        {
            if (string.Equals(fields[i].Name, name, StringComparison.Ordinal))
            {
                return fields[i].Value;
            }
        }
        return null;
    }
}

/// <summary>
/// A stream (or its whole connection) failed. <see cref="NotProcessed"/> says the server did not process the request
/// (REFUSED_STREAM, a stream above a GOAWAY's last stream id, or no stream slot/connection to open it on), so it is
/// safe to send it again, on another connection.
/// </summary>
internal sealed class Http2StreamException : Exception
{
    public Http2StreamException(Http2ErrorCode errorCode, bool notProcessed, string message)
        : base(message)
    {
        ErrorCode = errorCode;
        NotProcessed = notProcessed;
    }

    public Http2StreamException()
        : this(Http2ErrorCode.InternalError, false, "HTTP/2 stream failed")
    {
    }

    public Http2StreamException(string message)
        : this(Http2ErrorCode.InternalError, false, message)
    {
    }

    public Http2StreamException(string message, Exception innerException)
        : base(message, innerException)
    {
        ErrorCode = Http2ErrorCode.InternalError;
    }

    public Http2ErrorCode ErrorCode { get; }

    public bool NotProcessed { get; }
}

/// <summary>
/// A reusable wake-up for one waiter at a time (a stream's reader or writer): the waiter checks its condition under
/// the connection's lock, calls <see cref="Arm"/> there and awaits outside it; whoever changes the state calls
/// <see cref="Set"/> under the lock. No allocation per wait.
/// </summary>
internal sealed class Http2Signal : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private bool _armed;

    /// <summary>Call under the owner's lock.</summary>
    public ValueTask Arm()
    {
        _core.Reset();
        _armed = true;
        return new ValueTask(this, _core.Version);
    }

    /// <summary>Call under the owner's lock; wakes the waiter if there is one.</summary>
    public void Set()
    {
        if (_armed)
        {
            _armed = false;
            _core.SetResult(true);
        }
    }

    /// <summary>
    /// Awaits <paramref name="armed"/> (from <see cref="Arm"/> of <paramref name="signal"/>); a cancellation of
    /// <paramref name="cancellationToken"/> only wakes the waiter (under <paramref name="sync"/>), which then sees the
    /// token cancelled and acts on it.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(Trellis.Proxy.Threading.PooledValueTaskBuilder))]
    public static async ValueTask WaitAsync(ValueTask armed, Http2Signal signal, Lock sync, CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled)
        {
            await armed.ConfigureAwait(false);
            return;
        }
        var registration = cancellationToken.UnsafeRegister(static state =>
        {
            var (signal, sync) = ((Http2Signal, Lock))state!;
            lock (sync)
            {
                signal.Set();
            }
        }, (signal, sync));
        try
        {
            await armed.ConfigureAwait(false);
        }
        finally
        {
            await registration.DisposeAsync().ConfigureAwait(false);
        }
    }

    public void GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
