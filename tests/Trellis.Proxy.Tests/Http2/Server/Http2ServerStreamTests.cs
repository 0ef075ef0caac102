using System.Buffers;
using System.Text;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Server;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary>What a handler sees of <see cref="Http2ServerStream"/>, and what the client sees of what a handler does.</summary>
public sealed class Http2ServerStreamTests
{
    [Fact]
    public async Task ReadDataAsync_BodyThenTrailers_HandlerSeesBothAndContentLength()
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestH2Server(async stream =>
        {
            var body = new MemoryStream();
            var buffer = new byte[3];
            int n;
            while ((n = await stream.ReadDataAsync(buffer)) > 0)
            {
                body.Write(buffer, 0, n);
            }
            var trailers = string.Join(",", stream.RequestTrailers!.Select(t => $"{t.Name}={t.Value}"));
            seen.SetResult($"{Encoding.ASCII.GetString(body.ToArray())}|{stream.ContentLength}|{trailers}");
            await stream.WriteResponseHeadAsync(204, null, endStream: true);
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: false, RawH2Client.Post("/t", ("content-length", "11")));
        await client.SendAsync(w => Http2FrameWriter.Data(w, 1, "hello "u8, endStream: false, Http2Limits.DefaultMaxFrameSize));
        await client.SendAsync(w => Http2FrameWriter.Data(w, 1, "world"u8, endStream: false, Http2Limits.DefaultMaxFrameSize));
        var trailerBlock = client.Block(("x-checksum", "abc"), ("x-count", "2"));
        await client.SendAsync(w => Http2FrameWriter.Headers(w, 1, trailerBlock, endStream: true, Http2Limits.DefaultMaxFrameSize));

        Assert.Equal("hello world|11|x-checksum=abc,x-count=2", await seen.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains((":status", "204"), client.Decode((await client.ReadHeadersFrameAsync(1)).Payload));
    }

    [Fact]
    public async Task Aborted_ClientResetsStream_TokenCancelledAndReadThrowsWithCode()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var outcome = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestH2Server(async stream =>
        {
            var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var registration = stream.Aborted.Register(() => aborted.TrySetResult());
            started.SetResult();
            try
            {
                await stream.ReadDataAsync(new byte[10]);
                outcome.SetResult("read returned");
            }
            catch (Http2StreamException ex)
            {
                await aborted.Task;
                outcome.SetResult($"{ex.ErrorCode} aborted={stream.Aborted.IsCancellationRequested}");
            }
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: false, RawH2Client.Post("/slow"));
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await client.SendAsync(w => Http2FrameWriter.RstStream(w, 1, Http2ErrorCode.Cancel));

        Assert.Equal("Cancel aborted=True", await outcome.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task HandleAsync_ThrowsBeforeWriting_500()
    {
        await using var server = new TestH2Server(_ => throw new InvalidOperationException("handler bug"));
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/boom"));

        var headers = await client.ReadHeadersFrameAsync(1);
        Assert.Contains((":status", "500"), client.Decode(headers.Payload));
        Assert.Equal(Http2Flags.EndStream, headers.Flags & Http2Flags.EndStream);
    }

    [Fact]
    public async Task HandleAsync_ThrowsAfterHead_RstStreamInternalError()
    {
        await using var server = new TestH2Server(async stream =>
        {
            await stream.WriteResponseHeadAsync(200, null, endStream: false);
            throw new InvalidOperationException("handler bug");
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/boom"));
        await client.ReadHeadersFrameAsync(1);

        await client.ExpectResetAsync(1, Http2ErrorCode.InternalError);
    }

    [Fact]
    public async Task HandleAsync_ReturnsWithoutWriting_200WithEndStream()
    {
        await using var server = new TestH2Server(_ => ValueTask.CompletedTask);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/nothing"));

        var headers = await client.ReadHeadersFrameAsync(1);
        Assert.Contains((":status", "200"), client.Decode(headers.Payload));
        Assert.Equal(Http2Flags.EndStream, headers.Flags & Http2Flags.EndStream);
    }

    [Fact]
    public async Task HandleAsync_ResponseEndsBeforeRequestBody_RstStreamNoError()
    {
        await using var server = new TestH2Server(stream => stream.WriteResponseHeadAsync(413, null, endStream: true));
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: false, RawH2Client.Post("/upload"));
        await client.SendAsync(w => Http2FrameWriter.Data(w, 1, new byte[100], endStream: false, Http2Limits.DefaultMaxFrameSize));

        Assert.Contains((":status", "413"), client.Decode((await client.ReadHeadersFrameAsync(1)).Payload));
        await client.ExpectResetAsync(1, Http2ErrorCode.NoError);
    }

    [Fact]
    public async Task Reset_ByHandler_ClientGetsRstStreamWithCode()
    {
        await using var server = new TestH2Server(stream =>
        {
            stream.Reset(Http2ErrorCode.RefusedStream);
            return ValueTask.CompletedTask;
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/refuse"));

        await client.ExpectResetAsync(1, Http2ErrorCode.RefusedStream);
    }

    [Fact]
    public async Task WriteResponseHead_FieldsThroughHpack_ClientDecodesThem()
    {
        await using var server = new TestH2Server(stream => stream.WriteResponseHeadAsync(201,
            [new("location", "/items/7"), new("x-long", new string('z', 20_000))], endStream: true));
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/create"));
        // 20 kB of fields go out as HEADERS + CONTINUATION; join them as a client would.
        var block = new ArrayBufferWriter<byte>();
        var frame = await client.ReadHeadersFrameAsync(1);
        block.Write(frame.Payload);
        while ((frame.Flags & Http2Flags.EndHeaders) == 0)
        {
            frame = (await client.ReadFrameAsync())!;
            Assert.Equal(Http2FrameType.Continuation, frame.Type);
            block.Write(frame.Payload);
        }

        var fields = client.Decode(block.WrittenSpan.ToArray());
        Assert.Equal([(":status", "201"), ("location", "/items/7"), ("x-long", new string('z', 20_000))], fields);
    }

    [Fact]
    public async Task GoAway_FromClient_InFlightStreamCompletesThenServerCloses()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestH2Server(async stream =>
        {
            started.SetResult();
            await gate.Task;
            await H2Handlers.HelloAsync(stream);
        });
        await using var client = await RawH2Client.ConnectAsync(server.Port);
        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/last"));
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));

        await client.SendAsync(w => Http2FrameWriter.GoAway(w, 0, Http2ErrorCode.NoError));
        gate.SetResult();

        var frames = await client.ReadToEndAsync();
        Assert.Contains(frames, f => f.Type == Http2FrameType.Data && f.StreamId == 1 && Encoding.ASCII.GetString(f.Payload) == "hello /last");
        await client.DisposeAsync();
        await server.AllRunsEnded().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Priority_OnIdleAndOpenStreams_Ignored()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        await using var client = await RawH2Client.ConnectAsync(server.Port);

        await client.SendAsync(w =>
        {
            Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(5, Http2FrameType.Priority, Http2Flags.None, 11));
            w.Write(new byte[] { 0, 0, 0, 0, 16 });
        });
        await client.SendHeadersAsync(1, endStream: true, RawH2Client.Get("/after-priority"));

        Assert.Contains((":status", "200"), client.Decode((await client.ReadHeadersFrameAsync(1)).Payload));
    }
}
