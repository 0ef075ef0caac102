using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Client.H2Client;

namespace Trellis.Proxy.Tests.Http2.Client;

/// <summary><see cref="Http2ClientConnection"/> against a raw fake server, for frames a real server rarely sends.</summary>
public sealed class Http2ClientProtocolTests
{
    [Fact]
    public async Task Ping_FromServer_AnsweredWithAckAndSameData()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct);
        var (server, connection) = (session.Server, session.Connection);

        await server.SendAsync(w => Http2FrameWriter.Ping(w, ack: false, 0x0102030405060708UL), ct);
        var ping = await server.ReadUntilAsync(Http2FrameType.Ping, ct);

        Assert.NotNull(ping);
        Assert.Equal(Http2Flags.Ack, ping.Flags);
        Assert.Equal(0x0102030405060708UL, BinaryPrimitives.ReadUInt64BigEndian(ping.Payload));
    }

    [Fact]
    public async Task Settings_FromServer_AcknowledgedAndMaxConcurrentStreamsLimitsOpening()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct, new Http2Setting(Http2SettingId.MaxConcurrentStreams, 1));
        var (server, connection) = (session.Server, session.Connection);
        var ack = await server.ReadUntilAsync(Http2FrameType.Settings, ct);
        while (ack is not null && ack.Flags != Http2Flags.Ack)
        {
            ack = await server.ReadUntilAsync(Http2FrameType.Settings, ct);
        }

        using var first = await connection.OpenStreamAsync(Request("GET", server.Port, "/"), endStream: true, ct);
        var full = await Assert.ThrowsAsync<Http2StreamException>(() => connection.OpenStreamAsync(Request("GET", server.Port, "/"), endStream: true, ct).AsTask());

        Assert.NotNull(ack);
        Assert.False(connection.CanOpenStream);
        Assert.True(full.NotProcessed);
        Assert.Contains("SETTINGS_MAX_CONCURRENT_STREAMS 1", full.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RstStream_RefusedStream_FailsStreamAsRetrySafe()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct);
        var (server, connection) = (session.Server, session.Connection);

        using var stream = (await session.OpenAsync("GET", "/", endStream: true, ct)).Stream;
        await server.SendAsync(w => Http2FrameWriter.RstStream(w, 1, Http2ErrorCode.RefusedStream), ct);
        var refused = await Assert.ThrowsAsync<Http2StreamException>(() => stream.ReadResponseHeadAsync(ct).AsTask());

        Assert.Equal(Http2ErrorCode.RefusedStream, refused.ErrorCode);
        Assert.True(refused.NotProcessed);
        Assert.Equal(0, connection.ActiveStreams);
        Assert.True(connection.CanOpenStream);
    }

    [Fact]
    public async Task Headers_WithContinuation_JoinedIntoOneHead()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct);
        var (server, connection) = (session.Server, session.Connection);

        using var stream = (await session.OpenAsync("GET", "/", endStream: true, ct)).Stream;
        var block = FakeH2Server.Block(200, ("x-first", "1"), ("x-second", new string('v', 100)));
        await server.SendAsync(w =>
        {
            Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(10, Http2FrameType.Headers, Http2Flags.None, 1));
            w.Write(block.AsSpan(0, 10));
            Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(block.Length - 10, Http2FrameType.Continuation, Http2Flags.EndHeaders, 1));
            w.Write(block.AsSpan(10));
            Http2FrameWriter.Data(w, 1, "body"u8, endStream: true, Http2Limits.DefaultMaxFrameSize);
        }, ct);
        var head = await stream.ReadResponseHeadAsync(ct);

        Assert.Equal(200, head.Status);
        Assert.Equal("1", head.Get("x-first"));
        Assert.Equal(new string('v', 100), head.Get("x-second"));
        Assert.Equal("body", Encoding.ASCII.GetString(await ReadBodyAsync(stream, ct)));
    }

    [Fact]
    public async Task WriteData_WindowFromSettingsThenWindowUpdate_SendsInStepsAndCancelResets()
    {
        var ct = Bounded();
        // The server allows 10 bytes per stream: the body goes out as its SETTINGS and WINDOW_UPDATE allow.
        await using var session = await FakeH2Session.StartAsync(ct, new Http2Setting(Http2SettingId.InitialWindowSize, 10));
        var (server, connection) = (session.Server, session.Connection);

        using var stream = (await session.OpenAsync("POST", "/", endStream: false, ct)).Stream;
        var write = stream.WriteDataAsync(new byte[100], endStream: true, ct).AsTask();
        var first = await server.ReadUntilAsync(Http2FrameType.Data, ct);
        await server.SendAsync(w => Http2FrameWriter.Settings(w, [new Http2Setting(Http2SettingId.InitialWindowSize, 50)]), ct);
        var second = await server.ReadUntilAsync(Http2FrameType.Data, ct);
        await server.SendAsync(w => Http2FrameWriter.WindowUpdate(w, 1, 50), ct);
        var third = await server.ReadUntilAsync(Http2FrameType.Data, ct);
        await write.WaitAsync(ct);

        Assert.Equal(10, first!.Payload.Length);
        Assert.Equal(40, second!.Payload.Length);
        Assert.Equal(50, third!.Payload.Length);
        Assert.Equal(Http2Flags.EndStream, third.Flags);

        // A second stream finds the window used up; cancelling its write resets it.
        using var blocked = (await session.OpenAsync("POST", "/", endStream: false, ct)).Stream;
        using var cancel = new CancellationTokenSource();
        var pending = blocked.WriteDataAsync(new byte[100], endStream: true, cancel.Token).AsTask();
        var partial = await server.ReadUntilAsync(Http2FrameType.Data, ct);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        var reset = await server.ReadUntilAsync(Http2FrameType.RstStream, ct);

        Assert.Equal(50, partial!.Payload.Length);
        Assert.Equal(3, reset!.StreamId);
        Assert.Equal((uint)Http2ErrorCode.Cancel, BinaryPrimitives.ReadUInt32BigEndian(reset.Payload));
    }

    [Fact]
    public async Task Headers_InterimThenFinalThenTrailers_InterimSkippedTrailersKept()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct);

        using var stream = (await session.OpenAsync("GET", "/", endStream: true, ct)).Stream;
        await session.SendHeadersAsync(1, FakeH2Server.Block(103, ("link", "</a.css>")), endStream: false, ct);
        await session.SendHeadersAsync(1, FakeH2Server.Block(200, ("x-final", "yes")), endStream: false, ct);
        await session.Server.SendAsync(w => Http2FrameWriter.Data(w, 1, "abc"u8, endStream: false, Http2Limits.DefaultMaxFrameSize), ct);
        await session.SendHeadersAsync(1, FakeH2Server.TrailerBlock(("x-trailer", "done")), endStream: true, ct);
        var head = await stream.ReadResponseHeadAsync(ct);
        var body = await ReadBodyAsync(stream, ct);

        Assert.Equal(200, head.Status);
        Assert.Equal("yes", head.Get("x-final"));
        Assert.Null(head.Get("link"));
        Assert.Equal("abc", Encoding.ASCII.GetString(body));
        Assert.Equal("done", Http2HeaderFields.Get(stream.Trailers, "x-trailer"));
        Assert.Equal(0, session.Connection.ActiveStreams);
    }

    [Fact]
    public async Task Data_BeyondStreamReceiveWindow_StreamResetWithFlowControlError()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(new Http2ClientOptions { StreamWindowSize = 100 }, ct);

        using var stream = (await session.OpenAsync("GET", "/", endStream: true, ct)).Stream;
        await session.SendHeadersAsync(1, FakeH2Server.Block(200), endStream: false, ct);
        await session.Server.SendAsync(w => Http2FrameWriter.Data(w, 1, new byte[101], endStream: true, Http2Limits.DefaultMaxFrameSize), ct);
        var reset = await session.Server.ReadUntilAsync(Http2FrameType.RstStream, ct);
        var failure = await Assert.ThrowsAsync<Http2StreamException>(async () => await ReadBodyAsync(stream, ct));

        Assert.Equal((uint)Http2ErrorCode.FlowControlError, BinaryPrimitives.ReadUInt32BigEndian(reset!.Payload));
        Assert.Equal(Http2ErrorCode.FlowControlError, failure.ErrorCode);
        Assert.True(session.Connection.CanOpenStream);
    }

    [Fact]
    public async Task ServerCloses_WithoutGoAway_OpenStreamsFailAndClosedCompletes()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct);

        using var stream = (await session.OpenAsync("GET", "/", endStream: true, ct)).Stream;
        session.Server.Abort();
        var failure = await Assert.ThrowsAsync<Http2StreamException>(() => stream.ReadResponseHeadAsync(ct).AsTask());
        await session.Connection.Closed.WaitAsync(ct);

        Assert.False(failure.NotProcessed);
        Assert.Contains("closed the connection", failure.Message, StringComparison.Ordinal);
        Assert.False(session.Connection.CanOpenStream);
    }
}
