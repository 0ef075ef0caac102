using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Trellis.Proxy.Tcp;
using Trellis.Proxy.Threading;

namespace Trellis.Proxy.Http.Http1;

/// <summary>How copying a body ended. Failures say which side failed, so the caller knows whom to blame.</summary>
internal enum CopyResult { Done, SourceEnded, SourceFailed, SinkFailed, Malformed, Canceled }

/// <summary>
/// Streams message bodies between pipes without buffering them whole: each read is written on and flushed, so a
/// large body moves through a bounded window, and a small one leaves in a single write with the head before it.
/// The last piece of a length or chunked body is written but not flushed: the caller flushes, after it has given
/// the source connection back (so a keep-alive connection is free before the client sees the end).
/// Cancellation of the token is the caller's timeout and propagates as OperationCanceledException.
/// </summary>
internal static class BodyCopy
{
    /// <summary>Copies exactly <paramref name="length"/> bytes.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public static async ValueTask<CopyResult> CopyLengthAsync(PipeReader from, PipeWriter to, long length, CancellationToken ct)
    {
        while (length > 0)
        {
            var (read, failure) = await ReadAsync(from, ct).ConfigureAwait(false);
            if (failure != CopyResult.Done)
            {
                return failure;
            }
            var buffer = read.Buffer;
            var take = Math.Min(buffer.Length, length);
            foreach (var segment in buffer.Slice(0, take))
            {
                to.Write(segment.Span);
            }
            from.AdvanceTo(buffer.GetPosition(take));
            length -= take;
            if (length == 0)
            {
                break;
            }
            if (read.IsCompleted)
            {
                return CopyResult.SourceEnded;
            }
            if (await FlushAsync(to, ct).ConfigureAwait(false) is var flushed && flushed != CopyResult.Done)
            {
                return flushed;
            }
        }
        return CopyResult.Done;
    }

    /// <summary>Copies a chunked body, validating its framing (see <see cref="ChunkedDecoder"/>).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public static async ValueTask<CopyResult> CopyChunkedAsync(PipeReader from, PipeWriter to, bool dechunk, CancellationToken ct)
    {
        var decoder = new ChunkedDecoder();
        while (true)
        {
            var (read, failure) = await ReadAsync(from, ct).ConfigureAwait(false);
            if (failure != CopyResult.Done)
            {
                return failure;
            }
            var buffer = read.Buffer;
            var status = decoder.Process(buffer, to, dechunk, out var consumed);
            from.AdvanceTo(consumed, status == ChunkedStatus.NeedMore ? buffer.End : consumed);
            if (status == ChunkedStatus.Malformed)
            {
                return CopyResult.Malformed;
            }
            if (status == ChunkedStatus.Done)
            {
                return CopyResult.Done;
            }
            if (read.IsCompleted)
            {
                return CopyResult.SourceEnded;
            }
            if (await FlushAsync(to, ct).ConfigureAwait(false) is var flushed && flushed != CopyResult.Done)
            {
                return flushed;
            }
        }
    }

    /// <summary>Copies until the source ends (a close-delimited response body).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public static async ValueTask<CopyResult> CopyToEndAsync(PipeReader from, PipeWriter to, CancellationToken ct)
    {
        while (true)
        {
            var (read, failure) = await ReadAsync(from, ct).ConfigureAwait(false);
            if (failure != CopyResult.Done)
            {
                return failure;
            }
            var buffer = read.Buffer;
            foreach (var segment in buffer)
            {
                to.Write(segment.Span);
            }
            from.AdvanceTo(buffer.End);
            if (await FlushAsync(to, ct).ConfigureAwait(false) is var flushed && flushed != CopyResult.Done)
            {
                return flushed;
            }
            if (read.IsCompleted)
            {
                return CopyResult.Done;
            }
        }
    }

    /// <summary>One read; a failure of the source or a cancelled read comes back as a result, a timeout as an exception.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    private static async ValueTask<(ReadResult Read, CopyResult Failure)> ReadAsync(PipeReader from, CancellationToken ct)
    {
        try
        {
            var read = await from.ReadAsync(ct).ConfigureAwait(false);
            return (read, read.IsCanceled ? CopyResult.Canceled : CopyResult.Done);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return (default, CopyResult.SourceFailed);
        }
    }

    /// <summary>Writes a buffered body (kept for a retry) to the sink, without flushing.</summary>
    public static void Write(PipeWriter to, in ReadOnlySequence<byte> body)
    {
        foreach (var segment in body)
        {
            to.Write(segment.Span);
        }
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskBuilder<>))]
    public static async ValueTask<CopyResult> FlushAsync(PipeWriter to, CancellationToken ct)
    {
        try
        {
            var result = await to.FlushAsync(ct).ConfigureAwait(false);
            return result.IsCanceled ? CopyResult.Canceled : CopyResult.Done;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return CopyResult.SinkFailed;
        }
    }

    /// <summary>
    /// An upgraded connection (after 101): bytes both ways until both sides have finished (half-closes passed on),
    /// one side fails (both stop), or no byte moved either way for the idle timeout.
    /// </summary>
    public static async Task RelayAsync(PipeReader downIn, PipeWriter downOut, SendSide downSend, PipeReader upIn, PipeWriter upOut, SendSide upSend,
        TimeSpan idleTimeout, TimeProvider time)
    {
        using var stop = new CancellationTokenSource();
        using var idle = new IdleWatch(stop, idleTimeout, time);
        var up = PumpOrStopAsync(downIn, upOut, upSend, idle, stop);
        var down = PumpOrStopAsync(upIn, downOut, downSend, idle, stop);
        await Task.WhenAll(up, down).ConfigureAwait(false);
    }

    private static async Task PumpOrStopAsync(PipeReader from, PipeWriter to, SendSide sink, IdleWatch idle, CancellationTokenSource stop)
    {
        try
        {
            await PumpAsync(from, to, sink, idle, stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            try
            {
                await stop.CancelAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>
    /// One direction of an upgraded connection (after 101): bytes as they come until the source ends, then a
    /// half-close of the sink (its socket, or its TLS stream). Activity is reported to the idle watch.
    /// </summary>
    private static async Task PumpAsync(PipeReader from, PipeWriter to, SendSide sink, IdleWatch idle, CancellationToken ct)
    {
        while (true)
        {
            var read = await from.ReadAsync(ct).ConfigureAwait(false);
            var buffer = read.Buffer;
            if (!buffer.IsEmpty)
            {
                idle.Touch();
                foreach (var segment in buffer)
                {
                    to.Write(segment.Span);
                }
            }
            from.AdvanceTo(buffer.End);
            await to.FlushAsync(ct).ConfigureAwait(false);
            if (read.IsCompleted || read.IsCanceled)
            {
                await sink.ShutdownAsync().ConfigureAwait(false);
                return;
            }
        }
    }
}
