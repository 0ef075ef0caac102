using Grpc.Core;
using Grpc.Net.Client;
using Trellis.Testing.Grpc;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary>Grpc.Net.Client against a handler that speaks gRPC framing by hand over <see cref="Trellis.Proxy.Http.Http2.Server.Http2ServerConnection"/>.</summary>
public sealed class Http2ServerGrpcTests : IAsyncLifetime
{
    private TestH2Server _server = null!;
    private GrpcChannel _channel = null!;
    private Echo.EchoClient _client = null!;

    public Task InitializeAsync()
    {
        _server = new TestH2Server(H2Handlers.GrpcEchoAsync);
        _channel = GrpcChannel.ForAddress(_server.Url(""), new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler() });
        _client = new Echo.EchoClient(_channel);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _server.DisposeAsync();
    }

    private static CallOptions Deadline() => new(deadline: DateTime.UtcNow.AddSeconds(20));

    [Fact]
    public async Task Unary_Call_ReplyAndTrailersArrive()
    {
        using var call = _client.UnaryAsync(new EchoRequest { Text = "hi" }, Deadline());

        var reply = await call;

        Assert.Equal("hi", reply.Text);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal("unary", call.GetTrailers().GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task Unary_TrailersOnlyResponse_StatusAndTrailersReachClient()
    {
        using var call = _client.UnaryAsync(new EchoRequest { Text = "hi", FailWith = (int)StatusCode.PermissionDenied }, Deadline());

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);

        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.Equal("app says no", error.Status.Detail);
        Assert.Equal("failed", error.Trailers.GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task ServerStream_1000Messages_AllArriveInOrder()
    {
        using var call = _client.ServerStream(new EchoRequest { Text = "m", Count = 1000 }, Deadline());

        var texts = new List<string>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync())
        {
            texts.Add(reply.Text);
        }

        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"m-{i}"), texts);
        Assert.Equal("server-stream", call.GetTrailers().GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task ClientStream_ManyMessages_JoinedReply()
    {
        using var call = _client.ClientStream(Deadline());
        for (var i = 0; i < 100; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"c{i}" });
        }
        await call.RequestStream.CompleteAsync();

        var reply = await call;

        Assert.Equal(string.Join(",", Enumerable.Range(0, 100).Select(i => $"c{i}")), reply.Text);
        Assert.Equal("client-stream", call.GetTrailers().GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task Bidi_EachRequestEchoedBeforeTheNextIsSent()
    {
        using var call = _client.Bidi(Deadline());
        for (var i = 0; i < 20; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"b{i}" });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal($"echo:b{i}", call.ResponseStream.Current.Text);
        }
        await call.RequestStream.CompleteAsync();

        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal("bidi", call.GetTrailers().GetValue("x-app-trailer"));
    }
}
