using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary><see cref="Http2ServerConnection"/> against hand-written frames, for what real clients do not send.</summary>
public sealed class Http2ServerProtocolTests
{
    [Fact]
    public async Task Preface_NotHttp2_GoAwayProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port, handshake: false);

        await client.SendAsync(w => w.Write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8));

        var goAway = await client.ExpectGoAwayAsync(Http2ErrorCode.ProtocolError);
        Assert.Contains("preface", goAway.GoAwayDebug, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Preface_FollowedByPingInsteadOfSettings_GoAwayProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port, handshake: false);

        await client.SendAsync(w =>
        {
            w.Write(Http2Preface.ClientPreface);
            Http2FrameWriter.Ping(w, ack: false, 1UL);
        });

        var goAway = await client.ExpectGoAwayAsync(Http2ErrorCode.ProtocolError);
        Assert.Contains("not SETTINGS", goAway.GoAwayDebug, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Settings_FromClient_AcknowledgedAndServerAnnouncesItsLimits()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync, new Http2ServerOptions { MaxConcurrentStreams = 7 });
        await using var client = await RawH2Client.ConnectAsync(server.Port, handshake: false);

        await client.SendAsync(w =>
        {
            w.Write(Http2Preface.ClientPreface);
            Http2FrameWriter.Settings(w, [new(Http2SettingId.InitialWindowSize, 1000)]);
        });
        var settings = await client.ReadUntilAsync(f => f.Type == Http2FrameType.Settings && f.Flags == 0);
        var ack = await client.ReadUntilAsync(f => f.Type == Http2FrameType.Settings && f.Flags == Http2Flags.Ack);

        Assert.NotNull(settings);
        Assert.NotNull(ack);
        var announced = Http2PeerSettings.Default;
        Assert.True(Http2SettingsReader.TryApply(new(settings.Payload), ref announced, out _, out _));
        Assert.Equal(7u, announced.MaxConcurrentStreams);
        Assert.False(announced.EnablePush);
        Assert.Equal(60u * 1024, announced.MaxHeaderListSize);
    }

    [Fact]
    public async Task Ping_FromClient_EchoedWithAckAndSameData()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendAsync(w => Http2FrameWriter.Ping(w, ack: false, 0x0102030405060708UL));
        var ping = await client.ReadUntilAsync(Http2FrameType.Ping);

        Assert.NotNull(ping);
        Assert.Equal(Http2Flags.Ack, ping.Flags);
        Assert.Equal(0x0102030405060708UL, BinaryPrimitives.ReadUInt64BigEndian(ping.Payload));
    }

    [Fact]
    public async Task Headers_StreamIdGoesDown_GoAwayProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);
        await client.AssertGetWorksAsync(5, "/five");

        await client.SendHeadersAsync(3, endStream: true, RawH2Client.Get("/three"));

        var goAway = await client.ExpectGoAwayAsync(Http2ErrorCode.ProtocolError);
        Assert.Equal(5, goAway.GoAwayLastStreamId);
        Assert.Contains("stream ids must increase", goAway.GoAwayDebug, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Headers_EvenStreamId_GoAwayProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(2, endStream: true, RawH2Client.Get("/"));

        await client.ExpectGoAwayAsync(Http2ErrorCode.ProtocolError);
    }

    [Fact]
    public async Task Data_OnClosedStream_RstStreamStreamClosedAndConnectionUsable()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);
        await client.AssertGetWorksAsync(1, "/first");

        await client.SendAsync(w => Http2FrameWriter.Data(w, 1, "late"u8, endStream: false, Http2Limits.DefaultMaxFrameSize));

        await client.ExpectResetAsync(1, Http2ErrorCode.StreamClosed);
        await client.AssertGetWorksAsync(3, "/second");
    }

    [Fact]
    public async Task Data_OnIdleStream_GoAwayProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendAsync(w => Http2FrameWriter.Data(w, 9, "x"u8, endStream: false, Http2Limits.DefaultMaxFrameSize));

        await client.ExpectGoAwayAsync(Http2ErrorCode.ProtocolError);
    }

    [Fact]
    public async Task Headers_MoreThanMaxConcurrentStreams_RefusedStreamAndOthersServed()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = 0;
        await using var server = new TestH2Server(async stream =>
        {
            Interlocked.Increment(ref started);
            await gate.Task;
            await H2Handlers.HelloAsync(stream);
        }, new Http2ServerOptions { MaxConcurrentStreams = 2 });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/1"));
        await client.SendHeadersAsync(3, endStream: true, RawH2Client.Get("/3"));
        await client.SendHeadersAsync(5, endStream: true, RawH2Client.Get("/5"));

        await client.ExpectResetAsync(5, Http2ErrorCode.RefusedStream);
        await Eventually.WaitAsync(() => Volatile.Read(ref started) == 2, "two handlers to start");
        gate.SetResult();
        var bodies = new Dictionary<int, string> { [1] = "", [3] = "" };
        var ended = 0;
        while (ended < 2 && await client.ReadFrameAsync() is { } frame)
        {
            if (frame.Type == Http2FrameType.Data)
            {
                bodies[frame.StreamId] += Encoding.ASCII.GetString(frame.Payload);
                ended += frame.Flags & Http2Flags.EndStream;
            }
        }
        Assert.Equal("hello /1", bodies[1]);
        Assert.Equal("hello /3", bodies[3]);
        Assert.Equal(2, started);
    }

    [Fact]
    public async Task Headers_OversizedHeaderList_431AndConnectionStillUsable()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        // 70 KiB of fields (limit 60 KiB), as HEADERS + CONTINUATION; x-small goes into both HPACK tables.
        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/big", ("x-small", "kept"), ("x-big", new string('b', 70 * 1024))));
        var head = await client.ReadResponseHeadAsync(1);
        Assert.Contains((":status", "431"), head);

        // The next request refers to x-small by its dynamic-table index: the server's decoder must be in step.
        await client.AssertGetWorksAsync(3, "/after");
        await client.SendHeadersAsync(5, endStream: true, RawH2Client.Get("/indexed", ("x-small", "kept")));
        Assert.Contains((":status", "200"), await client.ReadResponseHeadAsync(5));
    }

    [Fact]
    public async Task Headers_MoreFieldsThanMaxHeaderCount_431()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync, new Http2ServerOptions { MaxHeaderCount = 20 });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/many", [.. Enumerable.Range(0, 30).Select(i => ($"x-f{i}", "v"))]));

        Assert.Contains((":status", "431"), await client.ReadResponseHeadAsync(1));
        await client.AssertGetWorksAsync(3, "/after");
    }

    [Fact]
    public async Task Headers_UpperCaseFieldName_RstStreamProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/", ("X-Upper", "1")));

        await client.ExpectResetAsync(1, Http2ErrorCode.ProtocolError);
        await client.AssertGetWorksAsync(3, "/after");
    }

    [Fact]
    public async Task Headers_MissingPath_RstStreamProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, (":method", "GET"), (":scheme", "http"), (":authority", "x"));

        await client.ExpectResetAsync(1, Http2ErrorCode.ProtocolError);
    }

    [Fact]
    public async Task Data_MoreThanContentLength_RstStreamProtocolError()
    {
        var handlerSaw = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestH2Server(async stream =>
        {
            try
            {
                while (await stream.ReadDataAsync(new byte[100]) > 0)
                {
                }
                handlerSaw.TrySetResult(null);
            }
            catch (Exception ex)
            {
                handlerSaw.TrySetResult(ex);
            }
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: false, RawH2Client.Post("/cl", ("content-length", "4")));
        await client.SendAsync(w => Http2FrameWriter.Data(w, 1, "too long"u8, endStream: true, Http2Limits.DefaultMaxFrameSize));

        await client.ExpectResetAsync(1, Http2ErrorCode.ProtocolError);
        Assert.IsType<Trellis.Proxy.Http.Http2.Client.Http2StreamException>(await handlerSaw.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Continuation_WithoutHeaders_GoAwayProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        var block = client.Block(RawH2Client.Get("/"));
        await client.SendAsync(w =>
        {
            Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(block.Length, Http2FrameType.Continuation, Http2Flags.EndHeaders, 1));
            w.Write(block);
        });

        await client.ExpectGoAwayAsync(Http2ErrorCode.ProtocolError);
    }

    [Fact]
    public async Task Continuation_Flood_GoAwayWithoutDecoding()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        var block = client.Block(RawH2Client.Get("/"));
        var filler = new byte[16 * 1024];
        await client.SendAsync(w =>
        {
            Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(block.Length, Http2FrameType.Headers, Http2Flags.EndStream, 1));
            w.Write(block);
            for (var i = 0; i < 20; i++)
            {
                Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(filler.Length, Http2FrameType.Continuation, Http2Flags.None, 1));
                w.Write(filler);
            }
        });

        var goAway = await client.ExpectGoAwayAsync(Http2ErrorCode.CompressionError);
        Assert.Contains("field block on stream 1 is over", goAway.GoAwayDebug, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PushPromise_FromClient_GoAwayProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendAsync(w =>
        {
            Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(4, Http2FrameType.PushPromise, Http2Flags.EndHeaders, 1));
            w.Write(new byte[] { 0, 0, 0, 2 });
        });

        await client.ExpectGoAwayAsync(Http2ErrorCode.ProtocolError);
    }

    [Fact]
    public async Task RstStream_RapidResetFlood_GoAwayEnhanceYourCalm()
    {
        await using var server = new TestH2Server(async stream =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, stream.Aborted);
            }
            catch (OperationCanceledException)
            {
                // Reset by the client: done.
            }
        }, new Http2ServerOptions { MaxResetsPerWindow = 10 });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        for (var id = 1; id <= 41; id += 2)
        {
            var block = client.Block(RawH2Client.Get("/"));
            await client.SendAsync(w =>
            {
                Http2FrameWriter.Headers(w, id, block, endStream: true, Http2Limits.DefaultMaxFrameSize);
                Http2FrameWriter.RstStream(w, id, Http2ErrorCode.Cancel);
            });
        }

        var goAway = await client.ExpectGoAwayAsync(Http2ErrorCode.EnhanceYourCalm);
        Assert.Contains("rapid reset", goAway.GoAwayDebug, StringComparison.Ordinal);
        await client.DisposeAsync();
        await server.AllRunsEnded().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task WindowUpdate_ConnectionWindowOverflow_GoAwayFlowControlError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendAsync(w => Http2FrameWriter.WindowUpdate(w, 0, int.MaxValue));

        await client.ExpectGoAwayAsync(Http2ErrorCode.FlowControlError);
    }

    [Fact]
    public async Task WindowUpdate_ZeroStreamWindow_ResponseWaitsForUpdate()
    {
        await using var server = new TestH2Server(async stream =>
        {
            await stream.WriteResponseHeadAsync(200, null, endStream: false);
            await stream.WriteDataAsync(new byte[100], endStream: true);
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port, handshake: true, new Http2Setting(Http2SettingId.InitialWindowSize, 40));

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/"));
        await client.ReadResponseHeadAsync(1);
        var first = await client.ReadUntilAsync(Http2FrameType.Data);
        await client.SendAsync(w => Http2FrameWriter.WindowUpdate(w, 1, 60));
        var second = await client.ReadUntilAsync(Http2FrameType.Data);

        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.Equal(40, first.Payload.Length);
        Assert.Equal(0, first.Flags & Http2Flags.EndStream);
        Assert.Equal(60, second.Payload.Length);
        Assert.Equal(Http2Flags.EndStream, second.Flags & Http2Flags.EndStream);
    }

    [Fact]
    public async Task Drain_StreamInFlight_GoAwayWithLastStreamIdThenStreamCompletesThenClose()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestH2Server(async stream =>
        {
            started.TrySetResult();
            await gate.Task;
            await H2Handlers.HelloAsync(stream);
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port);
        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/in-flight"));
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));

        await server.DrainAsync();
        var goAway = await client.ReadUntilAsync(Http2FrameType.GoAway);
        Assert.NotNull(goAway);
        Assert.Equal(Http2ErrorCode.NoError, goAway.ErrorCode);
        Assert.Equal(1, goAway.GoAwayLastStreamId);
        await client.SendHeadersAsync(3, endStream: true, RawH2Client.Get("/too-late"));
        await client.ExpectResetAsync(3, Http2ErrorCode.RefusedStream);
        gate.SetResult();

        Assert.Equal("hello /in-flight", await client.ReadBodyAsync(1));
        Assert.Null(await client.ReadUntilAsync(_ => false));
        await client.DisposeAsync();
        await server.AllRunsEnded().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task IdleTimeout_NoStreams_GoAwayNoErrorAndClose()
    {
        var time = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var server = new TestH2Server(H2Handlers.HelloAsync, new Http2ServerOptions { IdleTimeout = TimeSpan.FromSeconds(30) }, time);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        var due = await time.NextTimerAsync();
        Assert.Equal(TimeSpan.FromSeconds(30), due);
        time.Advance(TimeSpan.FromSeconds(29));
        await client.SendAsync(w => Http2FrameWriter.Ping(w, ack: false, 7UL));
        Assert.NotNull(await client.ReadUntilAsync(Http2FrameType.Ping));
        time.Advance(TimeSpan.FromSeconds(1));

        var goAway = await client.ExpectGoAwayAsync(Http2ErrorCode.NoError);
        Assert.Contains("idle", goAway.GoAwayDebug, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IdleTimeout_AfterAStream_CountsFromItsEnd()
    {
        var time = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var server = new TestH2Server(H2Handlers.HelloAsync, new Http2ServerOptions { IdleTimeout = TimeSpan.FromSeconds(30) }, time);
        await using var client = await RawH2Client.ConnectAsync(server.Port);
        await time.NextTimerAsync();

        time.Advance(TimeSpan.FromSeconds(20));
        await client.AssertGetWorksAsync(1, "/busy");
        await Eventually.WaitAsync(() => server.Connections.Single().IsQuiet, "the connection to be quiet after its stream");
        time.Advance(TimeSpan.FromSeconds(29));
        await client.SendAsync(w => Http2FrameWriter.Ping(w, ack: false, 1UL));
        var alive = await client.ReadUntilAsync(f => f.Type is Http2FrameType.Ping or Http2FrameType.GoAway);
        Assert.Equal(Http2FrameType.Ping, alive?.Type);
        time.Advance(TimeSpan.FromSeconds(1));

        var goAway = await client.ExpectGoAwayAsync(Http2ErrorCode.NoError);
        Assert.Contains("idle", goAway.GoAwayDebug, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExtendedConnect_Enabled_AnnouncedAndProtocolReachesHandler()
    {
        await using var server = new TestH2Server(stream => stream.WriteResponseHeadAsync(200, [new("x-protocol", stream.Protocol ?? "none")], endStream: true),
            new Http2ServerOptions { EnableConnectProtocol = true });
        await using var client = await RawH2Client.ConnectAsync(server.Port, handshake: false);
        await client.SendAsync(w =>
        {
            w.Write(Http2Preface.ClientPreface);
            Http2FrameWriter.Settings(w, []);
        });
        var settings = await client.ReadUntilAsync(f => f.Type == Http2FrameType.Settings && f.Flags == 0);
        var announced = Http2PeerSettings.Default;
        Assert.True(Http2SettingsReader.TryApply(new(settings!.Payload), ref announced, out _, out _));
        Assert.True(announced.EnableConnectProtocol);

        await client.SendHeadersAsync(1, endStream: false, (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":authority", "x"), (":path", "/chat"));

        Assert.Contains(("x-protocol", "websocket"), await client.ReadResponseHeadAsync(1));
    }

    [Fact]
    public async Task ExtendedConnect_NotEnabled_RstStreamProtocolError()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: false, (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":authority", "x"), (":path", "/chat"));

        await client.ExpectResetAsync(1, Http2ErrorCode.ProtocolError);
    }
}
