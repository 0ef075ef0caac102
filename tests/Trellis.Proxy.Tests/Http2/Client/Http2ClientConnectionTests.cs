using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Hpack;
using Trellis.Testing;
using Trellis.Testing.Apps;
using Trellis.Testing.Grpc;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Client.H2Client;

namespace Trellis.Proxy.Tests.Http2.Client;

/// <summary><see cref="Http2ClientConnection"/> against Kestrel (h2c) and, for corner cases, a raw fake server.</summary>
public sealed class Http2ClientConnectionTests
{
    [Fact]
    public async Task OpenStream_Get_ReturnsStatusBodyAndHeaders()
    {
        await using var app = await TestHttpApp.StartAsync("alpha", http2: true);
        await using var connection = await ConnectAsync(app.Port);
        var ct = Bounded();

        using var stream = await connection.OpenStreamAsync(Request("GET", app.Port, "/"), endStream: true, ct);
        var head = await stream.ReadResponseHeadAsync(ct);
        var body = await ReadBodyAsync(stream, ct);

        Assert.Equal(200, head.Status);
        Assert.Equal("alpha", head.Get("x-app"));
        Assert.Equal("alpha", Encoding.UTF8.GetString(body));
        Assert.Equal("HTTP/2", Assert.Single(app.Seen).Protocol);
    }

    [Fact]
    public async Task StartAsync_OverTlsWithAlpnH2_GetAndGrpcUnaryWork()
    {
        var ca = TestCertificates.CreateCa();
        await using var app = await TestHttpApp.StartAsync("secure", http2: true, certificate: TestCertificates.IssueServer(ca, "127.0.0.1"));
        var endpoint = new IPEndPoint(IPAddress.Loopback, app.Port);
        var ct = Bounded();
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint, ct);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false, TestCertificates.TrustOnly(ca));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "127.0.0.1",
            ApplicationProtocols = [SslApplicationProtocol.Http2],
        }, ct);
        await using var connection = await Http2ClientConnection.StartAsync(socket, tls, endpoint, new Http2ClientOptions(), TimeProvider.System, ct);

        using (var get = await connection.OpenStreamAsync([new(":method", "GET"), new(":scheme", "https"), new(":authority", "127.0.0.1"), new(":path", "/tls")],
            endStream: true, ct))
        {
            Assert.Equal(200, (await get.ReadResponseHeadAsync(ct)).Status);
            Assert.Equal("secure", Encoding.UTF8.GetString(await ReadBodyAsync(get, ct)));
        }
        var seen = Assert.Single(app.Seen);
        Assert.Equal("HTTP/2", seen.Protocol);
        Assert.NotNull(seen.TlsProtocol);
        Assert.NotEqual("None", seen.TlsProtocol);
    }

    [Fact]
    public async Task OpenStream_HundredConcurrentGets_AllSucceedOnOneConnection()
    {
        await using var app = await TestHttpApp.StartAsync("multi", http2: true);
        await using var connection = await ConnectAsync(app.Port);
        var ct = Bounded();

        async Task<string> GetAsync(int i)
        {
            using var stream = await connection.OpenStreamAsync(Request("GET", app.Port, $"/item/{i}"), endStream: true, ct);
            var head = await stream.ReadResponseHeadAsync(ct);
            Assert.Equal(200, head.Status);
            return Encoding.UTF8.GetString(await ReadBodyAsync(stream, ct));
        }

        var bodies = await Task.WhenAll(Enumerable.Range(0, 100).Select(GetAsync));

        Assert.All(bodies, b => Assert.Equal("multi", b));
        Assert.Equal(100, app.Requests);
        Assert.Equal(0, connection.ActiveStreams);
        Assert.True(connection.CanOpenStream);
    }

    [Fact]
    public async Task WriteData_OneMegabyteBody_ArrivesWhole()
    {
        await using var app = await TestHttpApp.StartAsync("upload", http2: true);
        await using var connection = await ConnectAsync(app.Port);
        var ct = Bounded();
        var body = new byte[1024 * 1024];
        new Random(7).NextBytes(body);

        using var stream = await connection.OpenStreamAsync(
            Request("POST", app.Port, "/upload", new Http2HeaderField("content-length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture))),
            endStream: false, ct);
        await stream.WriteDataAsync(body, endStream: true, ct);
        var head = await stream.ReadResponseHeadAsync(ct);
        await ReadBodyAsync(stream, ct);

        Assert.Equal(200, head.Status);
        Assert.Equal("1048576", head.Get("x-body-bytes"));
    }

    [Fact]
    public async Task GrpcUnary_Ok_DeliversReplyAndGrpcStatusTrailer()
    {
        await using var app = await TestHttpApp.StartAsync("grpc", http2: true);
        await using var connection = await ConnectAsync(app.Port);
        var ct = Bounded();

        using var stream = await connection.OpenStreamAsync(GrpcCall(app.Port, "Unary"), endStream: false, ct);
        await stream.WriteDataAsync(Frame(new EchoRequest { Text = "hello" }), endStream: true, ct);
        var head = await stream.ReadResponseHeadAsync(ct);
        var replies = Replies(await ReadBodyAsync(stream, ct));

        Assert.Equal(200, head.Status);
        Assert.Equal("application/grpc", head.Get("content-type"));
        Assert.Equal("hello", Assert.Single(replies).Text);
        Assert.Equal("0", Http2HeaderFields.Get(stream.Trailers, "grpc-status"));
        Assert.Equal("grpc", Http2HeaderFields.Get(stream.Trailers, "x-instance"));
        Assert.Equal(0, connection.ActiveStreams);
    }

    [Fact]
    public async Task GrpcUnary_FailWith5_TrailersOnlyResponseCarriesGrpcStatus()
    {
        await using var app = await TestHttpApp.StartAsync("grpc", http2: true);
        await using var connection = await ConnectAsync(app.Port);
        var ct = Bounded();

        using var stream = await connection.OpenStreamAsync(GrpcCall(app.Port, "Unary"), endStream: false, ct);
        await stream.WriteDataAsync(Frame(new EchoRequest { Text = "x", FailWith = (int)StatusCode.NotFound }), endStream: true, ct);
        var head = await stream.ReadResponseHeadAsync(ct);
        var body = await ReadBodyAsync(stream, ct);

        Assert.Equal(200, head.Status);
        Assert.True(head.EndStream, "a trailers-only response is one HEADERS with END_STREAM");
        Assert.Equal("5", head.Get("grpc-status"));
        Assert.Contains("failed as asked", head.Get("grpc-message"), StringComparison.Ordinal);
        Assert.Empty(body);
        Assert.Null(stream.Trailers);
    }

    [Fact]
    public async Task GrpcServerStream_MoreThanReceiveWindows_AllMessagesArrive()
    {
        await using var app = await TestHttpApp.StartAsync("stream", http2: true);
        // Small windows: ~200 kB of replies need many stream and connection WINDOW_UPDATEs from us.
        await using var connection = await ConnectAsync(app.Port, new Http2ClientOptions { StreamWindowSize = 16 * 1024, ConnectionWindowSize = 65_535 });
        var ct = Bounded();
        var text = new string('s', 200);

        using var stream = await connection.OpenStreamAsync(GrpcCall(app.Port, "ServerStream"), endStream: false, ct);
        await stream.WriteDataAsync(Frame(new EchoRequest { Text = text, Count = 1000 }), endStream: true, ct);
        var head = await stream.ReadResponseHeadAsync(ct);
        var replies = Replies(await ReadBodyAsync(stream, ct));

        Assert.Equal(200, head.Status);
        Assert.Equal(1000, replies.Count);
        Assert.Equal($"{text}-999", replies[999].Text);
        Assert.Equal("0", Http2HeaderFields.Get(stream.Trailers, "grpc-status"));
        Assert.Equal("1000", Http2HeaderFields.Get(stream.Trailers, "x-count"));
    }

    [Fact]
    public async Task GrpcBidi_ThreeMessages_ThreeUpperCasedReplies()
    {
        await using var app = await TestHttpApp.StartAsync("bidi", http2: true);
        await using var connection = await ConnectAsync(app.Port);
        var ct = Bounded();
        var pending = new List<byte>();

        using var stream = await connection.OpenStreamAsync(GrpcCall(app.Port, "Bidi"), endStream: false, ct);
        var replies = new List<string>();
        foreach (var word in new[] { "one", "two", "three" })
        {
            await stream.WriteDataAsync(Frame(new EchoRequest { Text = word }), endStream: false, ct);
            if (replies.Count == 0)
            {
                Assert.Equal(200, (await stream.ReadResponseHeadAsync(ct)).Status);
            }
            replies.Add((await ReadReplyAsync(stream, pending, ct)).Text);
        }
        await stream.WriteDataAsync(ReadOnlyMemory<byte>.Empty, endStream: true, ct);
        var rest = await ReadBodyAsync(stream, ct);

        Assert.Equal(["ONE", "TWO", "THREE"], replies);
        Assert.Empty(rest);
        Assert.Empty(pending);
        Assert.Equal("0", Http2HeaderFields.Get(stream.Trailers, "grpc-status"));
    }

    [Fact]
    public async Task ReadResponseHead_Cancelled_ResetsStreamAndConnectionStaysUsable()
    {
        await using var app = await TestHttpApp.StartAsync("slow", http2: true);
        var serverSawCancel = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var serverGotCall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        app.UnaryHandler = async (request, context) =>
        {
            serverGotCall.TrySetResult();
            try
            {
                await Task.Delay(request.DelayMs, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                serverSawCancel.TrySetResult();
                throw;
            }
            return new EchoReply { Text = request.Text };
        };
        await using var connection = await ConnectAsync(app.Port);
        var ct = Bounded();

        using var stream = await connection.OpenStreamAsync(GrpcCall(app.Port, "Unary"), endStream: false, ct);
        await stream.WriteDataAsync(Frame(new EchoRequest { Text = "wait", DelayMs = 60_000 }), endStream: true, ct);
        await serverGotCall.Task.WaitAsync(ct);
        using var cancel = new CancellationTokenSource();
        var read = stream.ReadResponseHeadAsync(cancel.Token).AsTask();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read);
        await serverSawCancel.Task.WaitAsync(ct);
        Assert.Equal(0, connection.ActiveStreams);
        using var next = await connection.OpenStreamAsync(Request("GET", app.Port, "/"), endStream: true, ct);
        Assert.Equal(200, (await next.ReadResponseHeadAsync(ct)).Status);
        Assert.Equal("slow", Encoding.UTF8.GetString(await ReadBodyAsync(next, ct)));
    }

    [Fact]
    public async Task GoAway_LastStreamOne_StreamThreeRefusedStreamOneAnsweredNoNewStreams()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct);
        var (server, connection) = (session.Server, session.Connection);

        var (first, firstId) = await session.OpenAsync("GET", "/one", endStream: true, ct);
        var (second, secondId) = await session.OpenAsync("GET", "/two", endStream: true, ct);
        using var _ = first;
        using var __ = second;
        Assert.Equal((1, 3), (firstId, secondId));
        var encoder = new HpackEncoder();
        await server.SendAsync(w =>
        {
            Http2FrameWriter.GoAway(w, 1, Http2ErrorCode.NoError, "draining");
            var block = new System.Buffers.ArrayBufferWriter<byte>();
            encoder.BeginBlock(block);
            encoder.WriteStatus(block, 200);
            Http2FrameWriter.Headers(w, 1, block.WrittenSpan, endStream: false, Http2Limits.DefaultMaxFrameSize);
            Http2FrameWriter.Data(w, 1, "one"u8, endStream: true, Http2Limits.DefaultMaxFrameSize);
        }, ct);

        var refused = await Assert.ThrowsAsync<Http2StreamException>(() => second.ReadResponseHeadAsync(ct).AsTask());
        var head = await first.ReadResponseHeadAsync(ct);
        var body = await ReadBodyAsync(first, ct);

        Assert.True(refused.NotProcessed);
        Assert.Equal(Http2ErrorCode.RefusedStream, refused.ErrorCode);
        Assert.Equal(200, head.Status);
        Assert.Equal("one", Encoding.ASCII.GetString(body));
        Assert.False(connection.CanOpenStream);
        var late = await Assert.ThrowsAsync<Http2StreamException>(() => connection.OpenStreamAsync(Request("GET", server.Port, "/three"), endStream: true, ct).AsTask());
        Assert.True(late.NotProcessed);
        Assert.Contains("GOAWAY", late.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PushPromise_FromServer_GoAwayProtocolErrorAndStreamsFail()
    {
        var ct = Bounded();
        await using var session = await FakeH2Session.StartAsync(ct);
        var (server, connection) = (session.Server, session.Connection);

        using var stream = (await session.OpenAsync("GET", "/", endStream: true, ct)).Stream;
        var encoder = new HpackEncoder();
        await server.SendAsync(w =>
        {
            var block = new System.Buffers.ArrayBufferWriter<byte>();
            encoder.BeginBlock(block);
            encoder.WriteHeader(block, ":method"u8, "GET"u8);
            encoder.WriteHeader(block, ":path"u8, "/pushed"u8);
            Http2FrameWriter.FrameHeader(w, new Http2FrameHeader(4 + block.WrittenCount, Http2FrameType.PushPromise, Http2Flags.EndHeaders, 1));
            Span<byte> promised = stackalloc byte[4];
            BinaryPrimitives.WriteInt32BigEndian(promised, 2);
            w.Write(promised);
            w.Write(block.WrittenSpan);
        }, ct);

        var goAway = await server.ReadUntilAsync(Http2FrameType.GoAway, ct);
        var failure = await Assert.ThrowsAsync<Http2StreamException>(() => stream.ReadResponseHeadAsync(ct).AsTask());
        await connection.Closed.WaitAsync(ct);

        Assert.NotNull(goAway);
        Assert.Equal((uint)Http2ErrorCode.ProtocolError, BinaryPrimitives.ReadUInt32BigEndian(goAway.Payload.AsSpan(4)));
        Assert.Contains("PUSH_PROMISE", Encoding.UTF8.GetString(goAway.Payload.AsSpan(8)), StringComparison.Ordinal);
        Assert.Equal(Http2ErrorCode.ProtocolError, failure.ErrorCode);
        Assert.False(failure.NotProcessed);
        Assert.False(connection.CanOpenStream);
        Assert.Equal(0, connection.ActiveStreams);
    }

    [Fact]
    public async Task OpenStream_ConnectionSpecificField_RefusedWithFieldName()
    {
        await using var app = await TestHttpApp.StartAsync("fields", http2: true);
        await using var connection = await ConnectAsync(app.Port);

        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            connection.OpenStreamAsync(Request("GET", app.Port, "/", new Http2HeaderField("connection", "close")), endStream: true).AsTask());

        Assert.Contains("'connection'", error.Message, StringComparison.Ordinal);
        Assert.Contains("connection-specific", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, connection.ActiveStreams);
        using var stream = await connection.OpenStreamAsync(Request("GET", app.Port, "/"), endStream: true, Bounded());
        Assert.Equal(200, (await stream.ReadResponseHeadAsync(Bounded())).Status);
    }
}
