using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Tests.Http.Http1;
using Trellis.Proxy.Tests.Http2;
using Trellis.Testing;
using Trellis.Testing.Grpc;
using Xunit;

namespace Trellis.Proxy.Tests.Security;

/// <summary>A test CA, a second CA nobody trusts, and server certificates from each.</summary>
public sealed class TlsFixture : IDisposable
{
    public X509Certificate2 Ca { get; } = TestCertificates.CreateCa("Upstream Test CA");
    public X509Certificate2 OtherCa { get; } = TestCertificates.CreateCa("Stranger CA");
    public X509Certificate2 Server { get; }
    public X509Certificate2 WrongName { get; }

    public TlsFixture()
    {
        Server = TestCertificates.IssueServer(Ca, "127.0.0.1", "localhost", "web.example");
        WrongName = TestCertificates.IssueServer(Ca, "other.example");
    }

    /// <summary>Settings that trust <paramref name="ca"/> only (as the compiler builds them from trusted_ca).</summary>
    internal static UpstreamTlsModel Trusting(X509Certificate2 ca, string? sni = null) => new()
    {
        Sni = sni,
        Trust = UpstreamTrustKind.CustomCa,
        TrustedCa = [X509CertificateLoader.LoadCertificate(ca.RawData)],
        TrustSource = "inline (1 certificate)",
        Key = $"{sni}|{ca.Thumbprint}",
    };

    public void Dispose()
    {
        Ca.Dispose();
        OtherCa.Dispose();
        Server.Dispose();
        WrongName.Dispose();
    }
}

/// <summary>
/// A Kestrel HTTPS upstream on loopback (HTTP/1.1 and HTTP/2 chosen by ALPN): the Echo gRPC service, a WebSocket echo
/// at /ws, and for anything else a text answer naming the protocol and TLS version it saw and the request body.
/// </summary>
internal sealed class HttpsBackend : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HttpsBackend(WebApplication app, IPEndPoint endPoint)
    {
        _app = app;
        EndPoint = endPoint;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Per request: "PROTOCOL TLS-VERSION" as the server saw it (e.g. "HTTP/2 Tls13").</summary>
    public ConcurrentQueue<string> Seen { get; } = new();

    public static async Task<HttpsBackend> StartAsync(X509Certificate2 certificate, HttpProtocols protocols = HttpProtocols.Http1AndHttp2)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l =>
        {
            l.Protocols = protocols;
            l.UseHttps(certificate);
        }));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(new BackendName("tls"));
        var app = builder.Build();
        HttpsBackend? self = null;
        app.Use(async (ctx, next) =>
        {
            var tls = ctx.Features.Get<ITlsHandshakeFeature>();
            self!.Seen.Enqueue($"{ctx.Request.Protocol} {tls?.Protocol.ToString() ?? "plaintext"}");
            await next(ctx);
        });
        app.UseWebSockets();
        app.MapGrpcService<EchoService>();
        app.Map("/ws", async ctx =>
        {
            using var ws = await ctx.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[1024];
            while (true)
            {
                var r = await ws.ReceiveAsync(buffer, ctx.RequestAborted);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", ctx.RequestAborted);
                    return;
                }
                await ws.SendAsync(Encoding.UTF8.GetBytes("echo:" + Encoding.UTF8.GetString(buffer, 0, r.Count)), WebSocketMessageType.Text, true, ctx.RequestAborted);
            }
        });
        app.MapFallback(async ctx =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            var body = await reader.ReadToEndAsync(ctx.RequestAborted);
            var tls = ctx.Features.Get<ITlsHandshakeFeature>();
            ctx.Response.ContentType = "text/plain";
            await ctx.Response.WriteAsync($"{ctx.Request.Method} {ctx.Request.Path} {ctx.Request.Protocol} tls={tls?.Protocol} body={body}");
        });
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        self = new HttpsBackend(app, new IPEndPoint(IPAddress.Loopback, port));
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Upstream TLS origination through the real data paths, against real TLS servers on loopback.</summary>
public sealed class UpstreamTlsTests(TlsFixture certs) : IClassFixture<TlsFixture>
{
    private static CancellationToken Bounded() => new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token;

    /// <summary>A cluster named after the test (tests run in parallel and metrics are tagged by cluster).</summary>
    private static ClusterModel Cluster(string name, UpstreamTlsModel? tls, IPEndPoint endpoint) =>
        TestModels.Cluster(name, endpoint) with { Tls = tls };

    private static TestProxy Http1Proxy(ClusterModel cluster) =>
        new(TestModels.State(TestModels.ModelOf([TestModels.Route("all", "/", cluster.Name)], cluster)));

    private static Task<ClientResponse> GetAsync(TestProxy proxy, string path) => RoundTripAsync(proxy, $"GET {path} HTTP/1.1\r\nhost: web\r\n\r\n");

    private static async Task<ClientResponse> RoundTripAsync(TestProxy proxy, string raw)
    {
        using var client = await proxy.ConnectAsync();
        return await client.RoundTripAsync(raw);
    }

    // ---- HTTP/1.1 ----------------------------------------------------------------------------------------------

    [Fact]
    public async Task Http1_GetAndPostToTlsCluster_UpstreamSawHttp11OverTls()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server);
        await using var proxy = Http1Proxy(Cluster("tls-h1-ok", TlsFixture.Trusting(certs.Ca), backend.EndPoint));
        using var metric = new MetricRecorder("trellis_proxy_upstream_tls_handshakes_total", "tls-h1-ok", "outcome", filterTag: "cluster");

        using var client = await proxy.ConnectAsync();
        var get = await client.RoundTripAsync("GET /hello HTTP/1.1\r\nhost: web\r\n\r\n");
        var post = await client.RoundTripAsync("POST /form HTTP/1.1\r\nhost: web\r\ncontent-length: 5\r\n\r\nabcde");

        Assert.Equal(200, get.Status);
        Assert.StartsWith("GET /hello HTTP/1.1 tls=Tls", get.Body, StringComparison.Ordinal);
        Assert.Equal(200, post.Status);
        Assert.StartsWith("POST /form HTTP/1.1 tls=Tls", post.Body, StringComparison.Ordinal);
        Assert.EndsWith("body=abcde", post.Body, StringComparison.Ordinal);
        Assert.All(backend.Seen, s => Assert.StartsWith("HTTP/1.1 Tls", s, StringComparison.Ordinal));
        // Both requests went over one pooled TLS connection: one handshake.
        Assert.Equal(["ok"], metric.Values);
    }

    [Fact]
    public async Task Http1_SniGiven_NameCheckedAgainstSni()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.WrongName);
        await using var proxy = Http1Proxy(Cluster("tls-h1-sni", TlsFixture.Trusting(certs.Ca, sni: "other.example"), backend.EndPoint));

        var response = await GetAsync(proxy, "/x");

        Assert.Equal(200, response.Status);
        Assert.Contains("tls=Tls", response.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http1_UntrustedCa_503ConnectFailureWithReason()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server);
        await using var proxy = Http1Proxy(Cluster("tls-h1-untrusted", TlsFixture.Trusting(certs.OtherCa), backend.EndPoint));
        using var metric = new MetricRecorder("trellis_proxy_upstream_tls_handshakes_total", "tls-h1-untrusted", "outcome", filterTag: "cluster");

        var response = await GetAsync(proxy, "/x");

        Assert.Equal(503, response.Status);
        Assert.Equal("upstream_connect_failure", response.Header("x-trellis-error"));
        Assert.Contains($"TLS handshake with {backend.EndPoint} failed: certificate not trusted (", response.Body, StringComparison.Ordinal);
        Assert.Contains("PartialChain", response.Body, StringComparison.Ordinal); // the leaf's issuer is in no trusted store
        Assert.Empty(backend.Seen);
        Assert.Equal(["untrusted"], metric.Values);
    }

    [Fact]
    public async Task Http1_CertificateForAnotherName_503WithNameMismatch()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.WrongName);
        await using var proxy = Http1Proxy(Cluster("tls-h1-name", TlsFixture.Trusting(certs.Ca), backend.EndPoint));

        var response = await GetAsync(proxy, "/x");

        Assert.Equal(503, response.Status);
        Assert.Equal("upstream_connect_failure", response.Header("x-trellis-error"));
        Assert.Contains("failed: certificate name mismatch: '127.0.0.1' is not a name of the certificate for CN=other.example", response.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http1_WrongSni_503WithNameMismatch()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server);
        await using var proxy = Http1Proxy(Cluster("tls-h1-wrongsni", TlsFixture.Trusting(certs.Ca, sni: "nope.example"), backend.EndPoint));

        var response = await GetAsync(proxy, "/x");

        Assert.Equal(503, response.Status);
        Assert.Contains("certificate name mismatch: 'nope.example'", response.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http1_UpstreamSpeaksNoTls_503WithHandshakeFailure()
    {
        await using var plain = new TestBackend();
        await using var proxy = Http1Proxy(Cluster("tls-h1-plain", TlsFixture.Trusting(certs.Ca), plain.EndPoint));

        var response = await GetAsync(proxy, "/x");

        Assert.Equal(503, response.Status);
        Assert.Equal("upstream_connect_failure", response.Header("x-trellis-error"));
        Assert.Contains($"TLS handshake with {plain.EndPoint} failed:", response.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http1_AcceptUntrusted_ReachesServerOfUnknownCa()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.WrongName);
        var tls = new UpstreamTlsModel { Trust = UpstreamTrustKind.AcceptUntrusted, TrustSource = "none (ACCEPT_UNTRUSTED)", Key = "accept" };
        await using var proxy = Http1Proxy(Cluster("tls-h1-accept", tls, backend.EndPoint));

        var response = await GetAsync(proxy, "/x");

        Assert.Equal(200, response.Status);
    }

    [Fact]
    public async Task Http1_ClusterTlsSettingsChange_PooledConnectionNotReused()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server);
        var state = TestModels.State(TestModels.ModelOf([TestModels.Route("all", "/", "switch")], Cluster("switch", TlsFixture.Trusting(certs.Ca), backend.EndPoint)));
        await using var proxy = new TestProxy(state);
        Assert.Equal(200, (await GetAsync(proxy, "/one")).Status);

        // Now the cluster trusts another CA only: the idle connection verified under the old trust must not serve it.
        state.Swap(TestModels.ModelOf([TestModels.Route("all", "/", "switch")], Cluster("switch", TlsFixture.Trusting(certs.OtherCa), backend.EndPoint)), complete: true);
        var response = await GetAsync(proxy, "/two");

        Assert.Equal(503, response.Status);
        Assert.Contains("certificate not trusted", response.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http1_WebSocketUpgradeOverTls_Relays()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server);
        var cluster = Cluster(TestModels.Service, TlsFixture.Trusting(certs.Ca), backend.EndPoint);
        var model = TestModels.ModelOf([new VirtualHostModel("any", ["*"], [TestModels.Route("all", "/", cluster.Name)])], cluster);
        await using var proxy = new TestProxy(TestModels.State(model));
        using var ws = new ClientWebSocket();

        await ws.ConnectAsync(new Uri($"ws://{proxy.EndPoint}/ws"), Bounded());
        await ws.SendAsync("hi"u8.ToArray(), WebSocketMessageType.Text, true, Bounded());
        var buffer = new byte[64];
        var got = await ws.ReceiveAsync(buffer, Bounded());
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", Bounded());

        Assert.Equal("echo:hi", Encoding.UTF8.GetString(buffer, 0, got.Count));
        Assert.Equal(WebSocketState.Closed, ws.State);
    }

    // ---- HTTP/2 and gRPC ---------------------------------------------------------------------------------------

    [Fact]
    public async Task Grpc_UnaryToTlsCluster_UpstreamSawHttp2OverTls()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server);
        var cluster = H2Models.Cluster("tls-h2-ok", backend.EndPoint) with { Tls = TlsFixture.Trusting(certs.Ca) };
        await using var proxied = new Proxied(H2Models.Model("v1", [], cluster), H2Models.Target(cluster.Name));

        var reply = await proxied.Grpc.UnaryAsync(new EchoRequest { Text = "over tls" }, cancellationToken: Bounded());

        Assert.Equal("over tls", reply.Text);
        Assert.True(backend.Seen.TryDequeue(out var seen));
        Assert.StartsWith("HTTP/2 Tls", seen, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Grpc_UntrustedCa_UnavailableWithReason()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server);
        var cluster = H2Models.Cluster("tls-h2-untrusted", backend.EndPoint) with { Tls = TlsFixture.Trusting(certs.OtherCa) };
        await using var proxied = new Proxied(H2Models.Model("v1", [], cluster), H2Models.Target(cluster.Name));

        var error = await Assert.ThrowsAsync<RpcException>(() => proxied.Grpc.UnaryAsync(new EchoRequest { Text = "x" }, cancellationToken: Bounded()).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("certificate not trusted (", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("upstream_connect_failure", error.Trailers.GetValue("x-trellis-error"));
        Assert.Empty(backend.Seen);
    }

    [Fact]
    public async Task Http2_UpstreamWithoutH2_503SaysAlpnRefused()
    {
        await using var backend = await HttpsBackend.StartAsync(certs.Server, HttpProtocols.Http1);
        var cluster = H2Models.Cluster("tls-h2-alpn", backend.EndPoint) with { Tls = TlsFixture.Trusting(certs.Ca) };
        await using var proxied = new Proxied(H2Models.Model("v1", [H2Models.Route("all", "/", cluster.Name)], cluster), H2Models.Target(cluster.Name));
        using var metric = new MetricRecorder("trellis_proxy_upstream_tls_handshakes_total", "tls-h2-alpn", "outcome", filterTag: "cluster");

        using var response = await proxied.Http.GetAsync(proxied.Url("/x"), Bounded());
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("upstream_connect_failure", response.Headers.GetValues("x-trellis-error").Single());
        Assert.Contains("failed: the server accepts none of the ALPN protocols offered (h2)", body, StringComparison.Ordinal);
        Assert.Equal(["alpn_mismatch"], metric.Values);
    }

    // ---- TCP -----------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Tcp_RelayToTlsCluster_PlaintextInTlsOut_HalfClosePassedOn()
    {
        await using var server = new TlsEchoServer(certs.Server);
        var cluster = Cluster("echo.default:7", TlsFixture.Trusting(certs.Ca), server.EndPoint);
        var state = TestModels.State(new ProxyModel("v1", ProxyModel.Empty.Listeners, ProxyModel.Empty.Routes,
            new Dictionary<string, ClusterModel> { [cluster.Name] = cluster }.ToFrozenDictionary()));
        await using var listener = new ExplicitListener(new ListenerTarget("tls-tcp", new IPEndPoint(IPAddress.Loopback, 0), cluster.Name, null), state, NullLogger.Instance);
        listener.Start();

        using var client = new TcpClient();
        await client.ConnectAsync(listener.LocalEndPoint, Bounded());
        var stream = client.GetStream();
        await stream.WriteAsync("hello"u8.ToArray(), Bounded());
        client.Client.Shutdown(SocketShutdown.Send);
        using var received = new MemoryStream();
        await stream.CopyToAsync(received, Bounded());

        Assert.Equal("tls:hello", Encoding.ASCII.GetString(received.ToArray()));
        Assert.Equal(["none"], server.Alpn);
    }

    /// <summary>A TLS server that answers "tls:" and echoes until the client's close_notify/FIN, then closes.</summary>
    private sealed class TlsEchoServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public TlsEchoServer(X509Certificate2 certificate)
        {
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    TcpClient c;
                    try
                    {
                        c = await _listener.AcceptTcpClientAsync(_stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                    _ = Task.Run(async () =>
                    {
                        using (c)
                        await using (var ssl = new SslStream(c.GetStream()))
                        {
                            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate });
                            lock (Alpn)
                            {
                                Alpn.Add(ssl.NegotiatedApplicationProtocol.Protocol.Length == 0 ? "none" : ssl.NegotiatedApplicationProtocol.ToString());
                            }
                            await ssl.WriteAsync("tls:"u8.ToArray());
                            await ssl.CopyToAsync(ssl);
                            await ssl.ShutdownAsync();
                        }
                    });
                }
            });
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        public List<string> Alpn { get; } = [];

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _loop;
            _stop.Dispose();
        }
    }
}
