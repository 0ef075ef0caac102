using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Trellis.Proxy.Tcp;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Tcp;

public sealed class SocketPipesTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    private static string Text(in ReadOnlySequence<byte> bytes) => Encoding.ASCII.GetString(bytes.ToArray());

    [Fact]
    public async Task Read_DetectedPrefix_ComesFirstThenTheSocketsBytes()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var reader = new SocketReader(server, "GE"u8);
            var first = await reader.ReadAsync();
            Assert.Equal("GE", Text(first.Buffer));
            reader.AdvanceTo(first.Buffer.Start, first.Buffer.End);

            await client.SendAsync("T / HTTP/1.1\r\n"u8.ToArray());
            using var cts = new CancellationTokenSource(Limit);
            var second = await reader.ReadAtLeastAsync(16, cts.Token);
            Assert.Equal("GET / HTTP/1.1\r\n", Text(second.Buffer));
        }
    }

    [Fact]
    public async Task AdvanceTo_AllExamined_NextReadWaitsForNewBytes()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var reader = new SocketReader(server);
            await client.SendAsync("abc"u8.ToArray());
            using var cts = new CancellationTokenSource(Limit);
            var read = await reader.ReadAsync(cts.Token);
            Assert.Equal("abc", Text(read.Buffer));
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);

            var next = reader.ReadAsync(cts.Token);
            Assert.False(next.IsCompleted, "nothing new arrived, so the read must wait");
            await client.SendAsync("d"u8.ToArray());
            Assert.Equal("abcd", Text((await next).Buffer));
        }
    }

    [Fact]
    public async Task AdvanceTo_PartConsumed_TheRestIsReturnedWithoutWaiting()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var reader = new SocketReader(server);
            using var cts = new CancellationTokenSource(Limit);
            await client.SendAsync("onetwo"u8.ToArray());
            var read = await reader.ReadAtLeastAsync(6, cts.Token);
            reader.AdvanceTo(read.Buffer.GetPosition(3));

            Assert.True(reader.TryRead(out var rest), "unexamined bytes are there without a receive");
            Assert.Equal("two", Text(rest.Buffer));
            Assert.Equal(3, reader.Buffered);
        }
    }

    [Fact]
    public async Task ReadAtLeast_MoreThanTheInitialBuffer_GrowsAndKeepsEveryByte()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var sent = new byte[50_000];
            new Random(7).NextBytes(sent);
            var reader = new SocketReader(server);
            using var cts = new CancellationTokenSource(Limit);
            var sending = client.SendAsync(sent);
            var read = await reader.ReadAtLeastAsync(sent.Length, cts.Token);
            await sending;
            Assert.True(read.Buffer.IsSingleSegment);
            Assert.Equal(sent, read.Buffer.ToArray());
        }
    }

    [Fact]
    public async Task Read_PeerClosed_IsCompletedWithWhatWasLeft()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (server)
        {
            var reader = new SocketReader(server);
            await client.SendAsync("last"u8.ToArray());
            client.Shutdown(SocketShutdown.Send);
            client.Dispose();
            using var cts = new CancellationTokenSource(Limit);
            var read = await reader.ReadAsync(cts.Token);
            while (!read.IsCompleted)
            {
                reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                read = await reader.ReadAsync(cts.Token);
            }
            Assert.Equal("last", Text(read.Buffer));
        }
    }

    [Fact]
    public async Task CancelPendingRead_WhileWaiting_ReturnsACanceledRead()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var reader = new SocketReader(server);
            using var cts = new CancellationTokenSource(Limit);
            var pending = reader.ReadAsync(cts.Token);
            Assert.False(pending.IsCompleted);
            reader.CancelPendingRead();
            var read = await pending;
            Assert.True(read.IsCanceled);
        }
    }

    [Fact]
    public async Task Read_TokenCanceledWhileWaiting_ThrowsOperationCanceled()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var reader = new SocketReader(server);
            using var cts = new CancellationTokenSource();
            var pending = reader.ReadAsync(cts.Token);
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await pending);
        }
    }

    [Fact]
    public async Task Flush_WritesInManySizes_PeerReceivesEveryByteInOrder()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var writer = new SocketWriter(server);
            var expected = new MemoryStream();
            var random = new Random(11);
            foreach (var size in new[] { 1, 100, 4096, 5000, 30_000, 3 })
            {
                var chunk = new byte[size];
                random.NextBytes(chunk);
                chunk.CopyTo(writer.GetSpan(size));
                writer.Advance(size);
                expected.Write(chunk);
            }
            Assert.Equal(expected.Length, writer.UnflushedBytes);
            var flushed = await writer.FlushAsync();
            Assert.False(flushed.IsCanceled);
            Assert.Equal(0, writer.UnflushedBytes);

            var received = new byte[expected.Length];
            var total = 0;
            using var cts = new CancellationTokenSource(Limit);
            while (total < received.Length)
            {
                total += await client.ReceiveAsync(received.AsMemory(total), SocketFlags.None, cts.Token);
            }
            Assert.Equal(expected.ToArray(), received);
        }
    }

    [Fact]
    public async Task CancelPendingFlush_BeforeTheFlush_ReportsCanceledAndSendsNothingMore()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var writer = new SocketWriter(server);
            writer.Write("x"u8);
            writer.CancelPendingFlush();
            Assert.True((await writer.FlushAsync()).IsCanceled);

            // The send side is shut down: the peer sees the end of the stream.
            using var cts = new CancellationTokenSource(Limit);
            Assert.Equal(0, await client.ReceiveAsync(new byte[8], SocketFlags.None, cts.Token));
        }
    }
}
