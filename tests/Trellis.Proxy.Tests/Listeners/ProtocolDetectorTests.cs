using System.Net;
using System.Net.Sockets;
using System.Text;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Telemetry;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Listeners;

public sealed class ProtocolDetectorTests
{
    [Theory]
    [InlineData("GET / HTTP/1.1\r\n", DetectedProtocol.Http1)]
    [InlineData("POST /x HTTP/1.0\r\n", DetectedProtocol.Http1)]
    [InlineData("OPTIONS * HTTP/1.1\r\n", DetectedProtocol.Http1)]
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", DetectedProtocol.Http2)]
    [InlineData("SSH-2.0-OpenSSH\r\n", DetectedProtocol.Tcp)]
    [InlineData("GETX / HTTP/1.1\r\n", DetectedProtocol.Tcp)]
    [InlineData("get / HTTP/1.1\r\n", DetectedProtocol.Tcp)]
    [InlineData("PRI * HTTP/1.1\r\n", DetectedProtocol.Tcp)]
    public void Classify_FirstBytes_NameTheProtocol(string first, DetectedProtocol expected)
    {
        Assert.Equal(expected, ProtocolDetector.Classify(Encoding.ASCII.GetBytes(first)));
    }

    [Fact]
    public void Classify_TlsRecordHeader_IsTls()
    {
        Assert.Equal(DetectedProtocol.Tls, ProtocolDetector.Classify([0x16, 0x03, 0x01, 0x02, 0x00]));
        Assert.Equal(DetectedProtocol.Tcp, ProtocolDetector.Classify([0x16, 0x02]));
        Assert.Null(ProtocolDetector.Classify([0x16]));
    }

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("GET")]
    [InlineData("DELE")]
    [InlineData("PRI * HTTP/2.0\r\n")]
    public void Classify_TooFewBytes_IsUndecided(string first)
    {
        Assert.Null(ProtocolDetector.Classify(Encoding.ASCII.GetBytes(first)));
    }

    [Fact]
    public async Task DetectAsync_BytesAlreadyThereWhenTheDeadlinePasses_AreClassifiedNotRelayedAsTcp()
    {
        // A busy machine can run the detection's timer before the read of bytes that arrived in time; here the
        // deadline has passed before the first read even starts.
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            await client.SendAsync("GET /a HTTP/1.1\r\n"u8.ToArray());
            var buffer = new byte[ProtocolDetector.BufferSize];
            var result = await ProtocolDetector.DetectAsync(server, buffer, TimeSpan.Zero, TimeProvider.System, "t", CancellationToken.None);

            Assert.Equal(DetectedProtocol.Http1, result.Protocol);
            Assert.False(result.TimedOut);
            Assert.Equal("GET /a HTTP/1.1\r\n", Encoding.ASCII.GetString(buffer, 0, result.Length));
        }
    }

    [Fact]
    public async Task DetectAsync_RequestLineInTwoPieces_IsHttp1AndKeepsEveryByte()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            var buffer = new byte[ProtocolDetector.BufferSize];
            await client.SendAsync("GE"u8.ToArray());
            var detect = ProtocolDetector.DetectAsync(server, buffer, TimeSpan.FromSeconds(30), TimeProvider.System, "t", CancellationToken.None);
            await client.SendAsync("T /a HTTP/1.1\r\n"u8.ToArray());
            var result = await detect;

            Assert.Equal(DetectedProtocol.Http1, result.Protocol);
            Assert.False(result.TimedOut);
            // What was read so far is exactly a beginning of what the client sent, and enough to decide.
            var read = Encoding.ASCII.GetString(buffer, 0, result.Length);
            Assert.StartsWith("GET ", read, StringComparison.Ordinal);
            Assert.StartsWith(read, "GET /a HTTP/1.1\r\n", StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task DetectAsync_Http2Preface_IsHttp2()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            await client.SendAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
            var result = await ProtocolDetector.DetectAsync(server, new byte[ProtocolDetector.BufferSize], TimeSpan.FromSeconds(30), TimeProvider.System, "t", CancellationToken.None);

            Assert.Equal(DetectedProtocol.Http2, result.Protocol);
            Assert.Equal(24, result.Length);
        }
    }

    [Fact]
    public async Task DetectAsync_ClientHello_IsTls()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        {
            await client.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5 });
            var result = await ProtocolDetector.DetectAsync(server, new byte[ProtocolDetector.BufferSize], TimeSpan.FromSeconds(30), TimeProvider.System, "t", CancellationToken.None);

            Assert.Equal(DetectedProtocol.Tls, result.Protocol);
        }
    }

    [Fact]
    public async Task DetectAsync_SilentClient_IsTcpAfterTheTimeoutOnTheClock()
    {
        var clock = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        var (client, server) = await LoopbackSockets.PairAsync();
        using (client)
        using (server)
        using (var detections = new MetricRecorder("trellis_proxy_protocol_detections_total", "silent-test", "protocol"))
        {
            var detect = ProtocolDetector.DetectAsync(server, new byte[ProtocolDetector.BufferSize], TimeSpan.FromMilliseconds(100), clock, "silent-test", CancellationToken.None).AsTask();
            Assert.Equal(TimeSpan.FromMilliseconds(100), await clock.NextTimerAsync());
            Assert.False(detect.IsCompleted);
            clock.Advance(TimeSpan.FromMilliseconds(100));
            var result = await detect.WaitAsync(TimeSpan.FromSeconds(10));

            Assert.Equal(DetectedProtocol.Tcp, result.Protocol);
            Assert.True(result.TimedOut);
            Assert.Equal(0, result.Length);
            Assert.Equal(["tcp"], detections.Values);

            // The socket is still usable after the cancelled read: later bytes arrive intact.
            await client.SendAsync("late"u8.ToArray());
            var buffer = new byte[4];
            var n = await server.ReceiveAsync(buffer);
            Assert.Equal("late", Encoding.ASCII.GetString(buffer, 0, n));
        }
    }

    [Fact]
    public async Task DetectAsync_ClientClosesWithoutSending_IsTcp()
    {
        var (client, server) = await LoopbackSockets.PairAsync();
        using (server)
        {
            client.Shutdown(SocketShutdown.Send);
            var result = await ProtocolDetector.DetectAsync(server, new byte[ProtocolDetector.BufferSize], TimeSpan.FromSeconds(30), TimeProvider.System, "t", CancellationToken.None);
            client.Dispose();

            Assert.Equal(DetectedProtocol.Tcp, result.Protocol);
            Assert.False(result.TimedOut);
        }
    }
}
