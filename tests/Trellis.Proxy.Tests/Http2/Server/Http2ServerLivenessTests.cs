using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary>Keepalive PINGs, and a client that sends but does not read.</summary>
public sealed class Http2ServerLivenessTests
{
    private static Http2ServerOptions KeepAlive => new()
    {
        IdleTimeout = Timeout.InfiniteTimeSpan,
        KeepAlivePingDelay = TimeSpan.FromSeconds(10),
        KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
    };

    [Fact]
    public async Task KeepAlive_SilentClient_PingThenConnectionClosed()
    {
        var time = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var server = new TestH2Server(H2Handlers.HelloAsync, KeepAlive, time);
        await using var client = await RawH2Client.ConnectAsync(server.Port);
        Assert.Equal(TimeSpan.FromSeconds(5), await time.NextTimerAsync());

        time.Advance(TimeSpan.FromSeconds(10));
        var ping = await client.ReadUntilAsync(Http2FrameType.Ping);
        Assert.NotNull(ping);
        Assert.Equal(0, ping.Flags & Http2Flags.Ack);
        time.Advance(TimeSpan.FromSeconds(5));

        await client.ReadToEndAsync();
        await server.AllRunsEnded().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task KeepAlive_ClientAnswers_ConnectionStaysUsable()
    {
        var time = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var server = new TestH2Server(H2Handlers.HelloAsync, KeepAlive, time);
        await using var client = await RawH2Client.ConnectAsync(server.Port);
        await time.NextTimerAsync();

        time.Advance(TimeSpan.FromSeconds(10));
        var ping = await client.ReadUntilAsync(Http2FrameType.Ping);
        Assert.NotNull(ping);
        await client.SendAsync(w => Http2FrameWriter.Ping(w, ack: true, BinaryPrimitives.ReadUInt64BigEndian(ping.Payload)));
        // A request answered proves the server has read the ACK (frames are read in order).
        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/alive"));
        Assert.NotNull(await client.ReadUntilAsync(f => f.Type == Http2FrameType.Data && f.StreamId == 1));
        time.Advance(TimeSpan.FromSeconds(5));

        await client.SendHeadersAsync(3, endStream: true, RawH2Client.Get("/still"));
        var data = await client.ReadUntilAsync(f => f.Type is Http2FrameType.Data or Http2FrameType.GoAway);
        Assert.NotNull(data);
        Assert.Equal(Http2FrameType.Data, data.Type);
        Assert.Equal(3, data.StreamId);
    }

    [Fact]
    public async Task Ping_FloodFromClientThatDoesNotRead_ConnectionClosed()
    {
        await using var server = new TestH2Server(async stream =>
        {
            // Far more than the socket buffers hold: the send blocks while the client does not read.
            var chunk = new byte[64 * 1024];
            for (var i = 0; i < 1024; i++)
            {
                await stream.WriteDataAsync(chunk, endStream: false);
            }
        }, new Http2ServerOptions { CloseTimeout = TimeSpan.FromMilliseconds(500) });
        await using var client = await RawH2Client.ConnectAsync(server.Port, handshake: true, new Http2Setting(Http2SettingId.InitialWindowSize, int.MaxValue));
        await client.SendAsync(w => Http2FrameWriter.WindowUpdate(w, 0, int.MaxValue - Http2Limits.DefaultInitialWindowSize));
        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/huge"));

        var pings = new ArrayBufferWriter<byte>();
        for (var i = 0; i < 1000; i++)
        {
            Http2FrameWriter.Ping(pings, ack: false, (ulong)i);
        }
        var ended = server.AllRunsEnded();
        for (var batch = 0; batch < 300 && !ended.IsCompleted; batch++)
        {
            try
            {
                await client.SendRawAsync(pings.WrittenMemory).WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                break;
            }
        }

        // Without the limit on answers queued for a client that does not read, the connection would stay open.
        await ended.WaitAsync(TimeSpan.FromSeconds(20));
    }
}
