using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Http.Http2;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Proxy.Security;
using Trellis.Proxy.Tests.Http2;
using Trellis.Testing;
using Trellis.Testing.Apps;
using Trellis.Testing.Grpc;
using Xunit;

namespace Trellis.Proxy.Tests.Listeners;

/// <summary>
/// An inbound listener that terminates TLS: ALPN picks HTTP/2 or HTTP/1.1 for the connection, and the decrypted
/// requests reach the application in plaintext (h2c or HTTP/1.1) like those of a plaintext connection.
/// </summary>
public sealed class DownstreamTlsTests : IAsyncLifetime
{
    private static readonly X509Certificate2 Ca = TestCertificates.CreateCa();
    private static readonly X509Certificate2 Server = TestCertificates.IssueServer(Ca, "127.0.0.1", "localhost");

    private readonly ModelState _state = new();
    private ClusterRuntimes _runtimes = null!;
    private Http2Frontend _http2 = null!;
    private ListenerServices _services = null!;

    public Task InitializeAsync()
    {
        _state.Swap(ProxyModel.Empty, complete: true);
        _runtimes = new ClusterRuntimes(TimeProvider.System);
        var policies = new RoutePolicies(TimeProvider.System, Random.Shared.NextDouble);
        _services = new ListenerServices(_runtimes, policies, TimeProvider.System, new Random(1)) { DetectionTimeout = TimeSpan.FromSeconds(10) };
        _http2 = new Http2Frontend(_state, _runtimes, policies, TimeProvider.System, NullLoggerFactory.Instance);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _http2.DisposeAsync();
        _services.Pools.Dispose();
        _runtimes.Dispose();
    }

    private ExplicitListener Inbound(string name, int appPort, DownstreamTls? tls = null)
    {
        var target = new ListenerTarget(name, new IPEndPoint(IPAddress.Loopback, 0), null, new IPEndPoint(IPAddress.Loopback, appPort))
        {
            Tls = tls ?? new DownstreamTls(Server, []),
        };
        var listener = new ExplicitListener(target, _state, NullLogger.Instance, _services, _http2);
        listener.Start();
        return listener;
    }

    /// <summary>An HTTPS client trusting the test CA (it offers h2 by ALPN for HTTP/2, and no ALPN for HTTP/1.1).</summary>
    private static HttpClient Client(Version version) => new(new SocketsHttpHandler
    {
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = TestCertificates.TrustOnly(Ca) },
    })
    {
        DefaultRequestVersion = version,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(10),
    };

    [Fact]
    public async Task Https_AlpnH2_ReachesTheAppOverHttp2()
    {
        await using var app = await TestHttpApp.StartAsync("app", http2: true);
        await using var listener = Inbound("tls-h2", app.Port);
        using var recorder = new MetricRecorder("trellis_proxy_downstream_tls_handshakes_total", "tls-h2", "result");
        using var client = Client(HttpVersion.Version20);

        using var response = await client.GetAsync($"https://127.0.0.1:{listener.LocalEndPoint.Port}/hello?x=1");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.True(app.Seen.TryDequeue(out var seen));
        Assert.Equal("/hello?x=1", seen.PathAndQuery);
        Assert.Equal("HTTP/2", seen.Protocol);
        Assert.Equal(["h2"], recorder.Values);
    }

    [Fact]
    public async Task Grpc_OverTlsWithAlpnH2_UnaryAndServerStreamingWork()
    {
        await using var app = await TestHttpApp.StartAsync("grpc-app", http2: true);
        await using var listener = Inbound("tls-grpc", app.Port);
        using var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{listener.LocalEndPoint.Port}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = TestCertificates.TrustOnly(Ca) },
            },
        });
        var grpc = new Echo.EchoClient(channel);

        var reply = await grpc.UnaryAsync(new EchoRequest { Text = "over tls" }, deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal("grpc-app", reply.Instance);

        using var stream = grpc.ServerStream(new EchoRequest { Text = "s", Count = 3 }, deadline: DateTime.UtcNow.AddSeconds(10));
        var count = 0;
        while (await stream.ResponseStream.MoveNext(CancellationToken.None))
        {
            count++;
        }
        Assert.Equal(3, count);
    }

    [Fact]
    public async Task Https_Http11ClientWithoutAlpn_ReachesTheAppOverHttp11()
    {
        await using var app = await TestHttpApp.StartAsync("app1");
        await using var listener = Inbound("tls-h1", app.Port);
        using var recorder = new MetricRecorder("trellis_proxy_downstream_tls_handshakes_total", "tls-h1", "result");
        using var client = Client(HttpVersion.Version11);

        using var post = await client.PostAsync($"https://127.0.0.1:{listener.LocalEndPoint.Port}/submit", new StringContent("payload"));
        using var get = await client.GetAsync($"https://127.0.0.1:{listener.LocalEndPoint.Port}/again");

        Assert.Equal(HttpStatusCode.OK, post.StatusCode);
        Assert.Equal(HttpVersion.Version11, post.Version);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(["/submit", "/again"], app.Seen.Select(s => s.PathAndQuery));
        Assert.All(app.Seen, s => Assert.Equal("HTTP/1.1", s.Protocol));
        // Both requests on one kept-alive TLS connection; .NET's client offers no ALPN for HTTP/1.1.
        Assert.Equal(["none"], recorder.Values);
    }

    [Fact]
    public async Task Tls_AlpnHttp11_IsServedAsHttp11WithKeepAlive()
    {
        await using var app = await TestHttpApp.StartAsync("alpn11");
        await using var listener = Inbound("tls-alpn11", app.Port);
        using var recorder = new MetricRecorder("trellis_proxy_downstream_tls_handshakes_total", "tls-alpn11", "result");
        await using var tls = await ConnectAsync(listener.LocalEndPoint, SslApplicationProtocol.Http11);
        Assert.Equal(SslApplicationProtocol.Http11, tls.NegotiatedApplicationProtocol);
        var reader = new StreamReader(tls, Encoding.ASCII);

        await tls.WriteAsync("GET /first HTTP/1.1\r\nHost: alpn11\r\n\r\n"u8.ToArray());
        Assert.StartsWith("HTTP/1.1 200", await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)), StringComparison.Ordinal);
        await tls.WriteAsync("GET /second HTTP/1.1\r\nHost: alpn11\r\nConnection: close\r\n\r\n"u8.ToArray());
        var rest = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Contains("HTTP/1.1 200", rest, StringComparison.Ordinal);
        Assert.Equal(["/first", "/second"], app.Seen.Select(s => s.PathAndQuery));
        Assert.Equal(["http/1.1"], recorder.Values);
    }

    private static Task<SslStream> ConnectWithoutAlpnAsync(IPEndPoint proxy) => ConnectAsync(proxy, null);

    private static async Task<SslStream> ConnectAsync(IPEndPoint proxy, SslApplicationProtocol? alpn)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(proxy);
        var tls = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false, TestCertificates.TrustOnly(Ca));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ApplicationProtocols = alpn is { } p ? [p] : null,
        });
        return tls;
    }

    [Fact]
    public async Task Tls_NoAlpn_HttpRequestIsRecognisedFromItsFirstBytes()
    {
        await using var app = await TestHttpApp.StartAsync("plain");
        await using var listener = Inbound("tls-noalpn", app.Port);
        await using var tls = await ConnectWithoutAlpnAsync(listener.LocalEndPoint);
        Assert.Equal(default, tls.NegotiatedApplicationProtocol);

        await tls.WriteAsync("GET /no-alpn HTTP/1.1\r\nHost: plain\r\nConnection: close\r\n\r\n"u8.ToArray());
        var response = await new StreamReader(tls, Encoding.ASCII).ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.StartsWith("HTTP/1.1 200", response, StringComparison.Ordinal);
        Assert.True(app.Seen.TryDequeue(out var seen));
        Assert.Equal("/no-alpn", seen.PathAndQuery);
    }

    [Fact]
    public async Task Tls_NoAlpnOpaqueBytes_AreRelayedDecryptedBothWays()
    {
        await using var echo = new TcpEchoServer();
        await using var listener = Inbound("tls-tcp", echo.Port);
        await using var tls = await ConnectWithoutAlpnAsync(listener.LocalEndPoint);

        await tls.WriteAsync("\u0001binary hello"u8.ToArray());
        var back = new byte[13];
        await tls.ReadExactlyAsync(back).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("\u0001binary hello", Encoding.ASCII.GetString(back));

        // The client's close_notify and FIN reach the echo server, whose close comes back as the end of the stream.
        await tls.ShutdownAsync();
        Assert.Equal(0, await tls.ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Tls_ClientThatDoesNotTrustTheCertificate_SendsNothingToTheApp()
    {
        await using var app = await TestHttpApp.StartAsync("untrusted");
        var otherCa = TestCertificates.CreateCa("Other CA");
        await using var listener = Inbound("tls-bad", app.Port);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(listener.LocalEndPoint);
        await using var tls = new SslStream(tcp.GetStream(), false, TestCertificates.TrustOnly(otherCa));

        await Assert.ThrowsAsync<System.Security.Authentication.AuthenticationException>(
            () => tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }));

        tcp.Close();
        Assert.Equal(0, app.Requests);
        await Eventually.WaitAsync(() => listener.ActiveConnections == 0, "the connection to be closed");
    }

    [Fact]
    public async Task Tls_BrokenClientHello_ClosesTheConnectionAndCountsAFailure()
    {
        await using var app = await TestHttpApp.StartAsync("garbage");
        await using var listener = Inbound("tls-garbage", app.Port);
        using var recorder = new MetricRecorder("trellis_proxy_downstream_tls_handshakes_total", "tls-garbage", "result");
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(listener.LocalEndPoint);
        var s = tcp.GetStream();

        // A handshake record header announcing 5 bytes, then 5 bytes that are no ClientHello.
        await s.WriteAsync(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00 });

        await Eventually.WaitAsync(() => recorder.Values.Count == 1, "the failed handshake to be counted");
        Assert.Equal(["failed"], recorder.Values);
        await Eventually.WaitAsync(() => listener.ActiveConnections == 0, "the connection to be closed");
    }
}
