using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Trellis.Testing.Grpc;

namespace Trellis.Testing.Apps;

/// <summary>What a test app saw of one request.</summary>
public sealed record SeenRequest(string Method, string Host, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, string Protocol)
{
    /// <summary>The TLS version the request came over (e.g. "Tls13"), null over plaintext.</summary>
    public string? TlsProtocol { get; init; }
}

/// <summary>
/// An application instance behind a sidecar in tests: one Kestrel app on loopback speaking HTTP/1.1 or h2c
/// (prior knowledge) with the Echo gRPC service. By default it answers 200 with its name; tests swap
/// <see cref="Handler"/> to fail, hang or answer slowly, and read <see cref="Seen"/> to check what arrived.
/// </summary>
public sealed class TestHttpApp : IAsyncDisposable
{
    private WebApplication? _app;
    private int _requests;

    private TestHttpApp(string name) => Name = name;

    public string Name { get; }
    public int Port { get; private set; }

    /// <summary>Requests received so far (gRPC calls included).</summary>
    public int Requests => Volatile.Read(ref _requests);

    public ConcurrentQueue<SeenRequest> Seen { get; } = new();

    /// <summary>Replaces the default answer for plain HTTP requests; return false to fall through to the default.</summary>
    public Func<HttpContext, Task<bool>>? Handler { get; set; }

    /// <summary>
    /// How long the default HTTP answer takes: the app's own latency, for balancers that measure it (it is the
    /// behaviour under test, not a wait for something to happen).
    /// </summary>
    public TimeSpan ResponseDelay { get; set; }

    /// <summary>gRPC Unary: replaces the default answer when set.</summary>
    public Func<EchoRequest, ServerCallContext, Task<EchoReply>>? UnaryHandler { get; set; }

    /// <param name="certificate">Serve HTTPS with this certificate (HTTP/1.1 and HTTP/2 chosen by ALPN) instead of plaintext.</param>
    public static async Task<TestHttpApp> StartAsync(string name, bool http2 = false, X509Certificate2? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.Listen(IPAddress.Loopback, 0, o =>
            {
                if (certificate is not null)
                {
                    o.Protocols = HttpProtocols.Http1AndHttp2;
                    o.UseHttps(certificate);
                    return;
                }
                o.Protocols = http2 ? HttpProtocols.Http2 : HttpProtocols.Http1;
            });
        });
        var self = new TestHttpApp(name);
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(self);
        var app = builder.Build();
        self._app = app;
        app.Use(async (ctx, next) =>
        {
            Interlocked.Increment(ref self._requests);
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var h in ctx.Request.Headers)
            {
                headers[h.Key] = h.Value.ToString();
            }
            self.Seen.Enqueue(new SeenRequest(ctx.Request.Method, ctx.Request.Host.Value ?? "", ctx.Request.Path + ctx.Request.QueryString, headers, ctx.Request.Protocol)
            {
                TlsProtocol = ctx.Features.Get<ITlsHandshakeFeature>()?.Protocol.ToString(),
            });
            await next(ctx);
        });
        app.MapGrpcService<EchoService>();
        app.Map("/{**path}", async ctx =>
        {
            if (self.Handler is { } h && await h(ctx))
            {
                return;
            }
            ctx.Response.Headers["x-app"] = self.Name;
            if (self.ResponseDelay > TimeSpan.Zero)
            {
                await Task.Delay(self.ResponseDelay, ctx.RequestAborted);
            }
            if (ctx.Request.ContentLength is > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
            {
                using var ms = new MemoryStream();
                await ctx.Request.Body.CopyToAsync(ms);
                ctx.Response.Headers["x-body-bytes"] = ms.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            await ctx.Response.WriteAsync(self.Name);
        });
        await app.StartAsync();
        self.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        return self;
    }

    /// <summary>The Echo service answering as this instance.</summary>
    private sealed class EchoService(TestHttpApp owner) : Echo.EchoBase
    {
        public override async Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
        {
            if (owner.UnaryHandler is { } h)
            {
                return await h(request, context);
            }
            if (request.DelayMs > 0)
            {
                await Task.Delay(request.DelayMs, context.CancellationToken);
            }
            if (request.FailWith != 0)
            {
                throw new RpcException(new Status((StatusCode)request.FailWith, $"{owner.Name} failed as asked"));
            }
            context.ResponseTrailers.Add("x-instance", owner.Name);
            return new EchoReply { Text = request.Text, Instance = owner.Name };
        }

        public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            for (var i = 0; i < request.Count; i++)
            {
                await responseStream.WriteAsync(new EchoReply { Text = $"{request.Text}-{i}", Instance = owner.Name });
            }
            context.ResponseTrailers.Add("x-count", request.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        public override async Task<EchoReply> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context)
        {
            var parts = new List<string>();
            await foreach (var r in requestStream.ReadAllAsync(context.CancellationToken))
            {
                parts.Add(r.Text);
            }
            return new EchoReply { Text = string.Join(",", parts), Instance = owner.Name };
        }

        public override async Task Bidi(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            await foreach (var r in requestStream.ReadAllAsync(context.CancellationToken))
            {
                await responseStream.WriteAsync(new EchoReply { Text = r.Text.ToUpperInvariant(), Instance = owner.Name });
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
