using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Telemetry;
using Trellis.Testing.Grpc;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Http2;

/// <summary>gRPC through the HTTP/2 frontend: a grpc-dotnet client, the proxy, a grpc-dotnet backend.</summary>
public sealed class Http2FrontendGrpcTests(H2Backends backends) : IClassFixture<H2Backends>
{
    private const string GrpcTarget = "echo.default:50051";

    /// <summary>A proxy whose --upstream listener for echo sends calls straight to the echo cluster (no HTTP routes).</summary>
    private static Proxied Start(ClusterModel echo, TimeProvider? time = null, Http2Metrics? metrics = null) =>
        new(H2Models.Model("v1", [], echo), H2Models.Target(echo.Name), time, metrics);

    private static CancellationToken Bounded() => new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token;

    [Fact]
    public async Task Unary_ThroughProxy_DeliversReplyAndCustomTrailer()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, backends.A.EndPoint));
        var client = proxied.Grpc;

        using var call = client.UnaryAsync(new EchoRequest { Text = "hi" }, cancellationToken: Bounded());
        var reply = await call.ResponseAsync;

        Assert.Equal("hi", reply.Text);
        Assert.Equal("a", reply.Instance);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal("unary", call.GetTrailers().GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task ServerStream_ThroughProxy_DeliversEveryMessageThenTrailers()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, backends.A.EndPoint));
        var client = proxied.Grpc;

        using var call = client.ServerStream(new EchoRequest { Text = "m", Count = 50 }, cancellationToken: Bounded());
        var texts = new List<string>();
        await foreach (var reply in call.ResponseStream.ReadAllAsync())
        {
            texts.Add(reply.Text);
        }

        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"m-{i}"), texts);
        Assert.Equal("server-stream", call.GetTrailers().GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task ClientStream_ThroughProxy_DeliversEveryMessageThenReplyAndTrailers()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, backends.A.EndPoint));
        var client = proxied.Grpc;

        using var call = client.ClientStream(cancellationToken: Bounded());
        for (var i = 0; i < 20; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = i.ToString() });
        }
        await call.RequestStream.CompleteAsync();
        var reply = await call.ResponseAsync;

        Assert.Equal(string.Join(",", Enumerable.Range(0, 20)), reply.Text);
        Assert.Equal("client-stream", call.GetTrailers().GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task Bidi_ThroughProxy_EachMessageIsAnsweredBeforeTheNextIsSent()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, backends.A.EndPoint));
        var client = proxied.Grpc;

        using var call = client.Bidi(cancellationToken: Bounded());
        // Lock-step: a reply can only arrive if the proxy forwarded this message at once, both ways.
        for (var i = 0; i < 10; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"n{i}" });
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal($"echo:n{i}", call.ResponseStream.Current.Text);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal("bidi", call.GetTrailers().GetValue("x-app-trailer"));
    }

    [Fact]
    public async Task Unary_AppReturnsErrorStatus_PassesThroughUnchangedWithoutTrellisError()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, backends.A.EndPoint));
        var client = proxied.Grpc;

        var ex = await Assert.ThrowsAsync<RpcException>(() => client.UnaryAsync(new EchoRequest { FailWith = (int)StatusCode.NotFound }, cancellationToken: Bounded()).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        Assert.Equal("app says no", ex.Status.Detail);
        Assert.Equal("failed", ex.Trailers.GetValue("x-app-trailer"));
        Assert.Null(ex.Trailers.GetValue("x-trellis-error"));
    }

    [Fact]
    public async Task Unary_EndpointRefusesConnections_UnavailableWithConnectFailure()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, H2Models.ClosedPort()));
        var client = proxied.Grpc;

        var ex = await Assert.ThrowsAsync<RpcException>(() => client.UnaryAsync(new EchoRequest { Text = "x" }, cancellationToken: Bounded()).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.Equal("upstream_connect_failure", ex.Trailers.GetValue("x-trellis-error"));
        Assert.Equal("could not connect to any endpoint of the service", ex.Status.Detail);
    }

    [Fact]
    public async Task Unary_ClusterWithoutEndpoints_UnavailableWithNoHealthyUpstream()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget));
        var client = proxied.Grpc;

        var ex = await Assert.ThrowsAsync<RpcException>(() => client.UnaryAsync(new EchoRequest { Text = "x" }, cancellationToken: Bounded()).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.Equal("no_healthy_upstream", ex.Trailers.GetValue("x-trellis-error"));
    }

    [Fact]
    public async Task Unary_UpstreamHangsPastGrpcTimeout_DeadlineExceededWithUpstreamTimeoutAndReducedTimeoutUpstream()
    {
        var seenTimeout = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var resetSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var hanging = await H2Backend.StartAsync("hang", async ctx =>
        {
            seenTimeout.TrySetResult(ctx.Request.Headers["grpc-timeout"].ToString());
            try
            {
                await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                resetSeen.TrySetResult();
            }
        });
        var time = new TimerWatchingTimeProvider(DateTimeOffset.UnixEpoch);
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, hanging.EndPoint), time);

        // A raw gRPC call (an empty message in one frame) whose grpc-timeout the proxy must enforce on its own clock.
        using var request = new HttpRequestMessage(HttpMethod.Post, proxied.Url("/trellis.test.Echo/Unary"))
        {
            Content = new ByteArrayContent(new byte[5]),
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        request.Headers.TryAddWithoutValidation("grpc-timeout", "300m");
        var sending = proxied.Http.SendAsync(request, Bounded());

        // Other timers (the upstream pool's sweep, the connect timeout) come and go; the call's deadline is 300 ms.
        while (await time.NextTimerAsync() != TimeSpan.FromMilliseconds(300))
        {
        }
        var forwarded = await seenTimeout.Task.WaitAsync(TimeSpan.FromSeconds(10));
        time.Advance(TimeSpan.FromMilliseconds(300));
        using var response = await sending;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("4", Header(response, "grpc-status"));
        Assert.Equal("upstream_timeout", Header(response, "x-trellis-error"));
        Assert.Equal("300000u", forwarded);
        await resetSeen.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Unary_Completed_CountedByClusterAndGrpcStatus()
    {
        using var metrics = new Http2Metrics();
        var counted = new List<(long Value, string? Cluster, string? Status)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == metrics.Meter && instrument.Name == "trellis_proxy_grpc_requests_total")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? cluster = null, status = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "cluster") { cluster = tag.Value as string; }
                if (tag.Key == "grpc_status") { status = tag.Value as string; }
            }
            lock (counted)
            {
                counted.Add((value, cluster, status));
            }
        });
        listener.Start();
        await using (var proxied = Start(H2Models.Cluster(GrpcTarget, backends.A.EndPoint), metrics: metrics))
        {
            var client = proxied.Grpc;
            await client.UnaryAsync(new EchoRequest { Text = "1" }, cancellationToken: Bounded());
            await Assert.ThrowsAsync<RpcException>(() => client.UnaryAsync(new EchoRequest { FailWith = 7 }, cancellationToken: Bounded()).ResponseAsync);
        }
        // The harness is disposed: every request finished and was counted.
        lock (counted)
        {
            Assert.Contains((1L, GrpcTarget, "0"), counted);
            Assert.Contains((1L, GrpcTarget, "7"), counted);
        }
    }

    [Fact]
    public async Task ServerStream_UpstreamResetsMidStream_ClientGetsTheMessagesThenUnavailableWithUpstreamReset()
    {
        var abortNow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var breaking = await H2Backend.StartAsync("breaking", async ctx =>
        {
            ctx.Response.ContentType = "application/grpc";
            var message = new EchoReply { Text = "first" }.ToByteArray();
            var frame = new byte[5 + message.Length];
            BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(1), message.Length);
            message.CopyTo(frame, 5);
            await ctx.Response.Body.WriteAsync(frame, ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            await abortNow.Task.WaitAsync(ctx.RequestAborted);
            ctx.Abort();
        });
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, breaking.EndPoint));
        var client = proxied.Grpc;

        using var call = client.ServerStream(new EchoRequest { Count = 2 }, cancellationToken: Bounded());
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal("first", call.ResponseStream.Current.Text);
        abortNow.TrySetResult();
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.Equal("upstream_reset", ex.Trailers.GetValue("x-trellis-error"));
    }

    [Fact]
    public async Task Unary_InboundFixedTarget_ForwardedToTheLocalApplication()
    {
        await using var proxied = new Proxied(ProxyModel.Empty, new ListenerTarget("inbound", new IPEndPoint(IPAddress.Loopback, 0), null, backends.B.EndPoint));

        var reply = await proxied.Grpc.UnaryAsync(new EchoRequest { Text = "in" }, cancellationToken: Bounded());

        Assert.Equal("b", reply.Instance);
    }

    [Fact]
    public async Task ServeAsync_CancelledDuringACall_CallFinishesAndTheNextCallUsesANewConnection()
    {
        await using var proxied = Start(H2Models.Cluster(GrpcTarget, backends.A.EndPoint));
        var client = proxied.Grpc;
        using var call = client.Bidi(cancellationToken: Bounded());
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "before" });
        Assert.True(await call.ResponseStream.MoveNext());

        await proxied.Harness.CloseConnectionsAsync();
        // GOAWAY: the stream under way goes on to its end.
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "after" });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal("echo:after", call.ResponseStream.Current.Text);
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);

        var next = await client.UnaryAsync(new EchoRequest { Text = "next" }, cancellationToken: Bounded());
        Assert.Equal("next", next.Text);
        Assert.Equal(2, proxied.Harness.Accepted);
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var v) ? string.Join(",", v)
        : response.TrailingHeaders.TryGetValues(name, out var t) ? string.Join(",", t) : null;
}
