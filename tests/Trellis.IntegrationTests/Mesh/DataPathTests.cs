using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Trellis.Testing;
using Trellis.Testing.Apps;
using Trellis.Testing.Grpc;
using Xunit;

namespace Trellis.IntegrationTests.Mesh;

/// <summary>
/// Every protocol through two sidecars: the app "web" calls through its sidecar's explicit listeners, the call
/// crosses to the server's sidecar inbound listener and reaches the server application.
/// </summary>
public sealed class DataPathTests
{
    /// <summary>A YAML fragment on its own lines, so fragments concatenate into one multi-document text.</summary>
    private static string Yaml(string text) => "\n" + text + "\n";

    [Fact]
    public async Task TrellisProxy_StartsTheSidecar_WithTheRuntimeSettingsItsDataPathNeeds()
    {
        await using var mesh = await MeshHarness.StartAsync();
        await mesh.ApplyAsync(Yaml("""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: greeter}
            spec: {selector: {app: greeter}, ports: [{name: http, port: 8080, protocol: http}]}
            """));
        var web = await mesh.StartSidecarAsync("web", ["greeter:8080"]);

        var environment = web.ProxyEnvironment();

        Assert.Equal("1", environment.GetValueOrDefault("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"));
        Assert.Equal("1024", environment.GetValueOrDefault("DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION"));
    }

    [Fact]
    public async Task Mesh_Http1GrpcH2cAndTcp_CrossTwoSidecarsToTheApps()
    {
        await using var greeter = await TestHttpApp.StartAsync("greeter-1");
        await using var echo = await TestHttpApp.StartAsync("echo-1", http2: true);
        await using var tcp = new TcpEchoServer();
        await using var mesh = await MeshHarness.StartAsync();
        await mesh.ApplyAsync(Yaml("""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: greeter}
            spec: {selector: {app: greeter}, ports: [{name: http, port: 8080, protocol: http}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: echo}
            spec: {selector: {app: echo}, ports: [{name: grpc, port: 9090, protocol: grpc}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: tcp-echo}
            spec: {selector: {app: tcp-echo}, ports: [{name: tcp, port: 7000, protocol: tcp}]}
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: web}
            spec: {selector: {app: web}, ports: [{name: http, port: 8080, protocol: http}]}
            """));
        var greeterSidecar = await mesh.StartSidecarAsync("greeter", appPort: greeter.Port);
        var echoSidecar = await mesh.StartSidecarAsync("echo", appPort: echo.Port);
        await mesh.ApplyAsync(Yaml($$"""
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: greeter-1}
            spec: {address: 127.0.0.1, ports: {http: {{greeterSidecar.InboundPort}} }, labels: {app: greeter} }
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: echo-1}
            spec: {address: 127.0.0.1, ports: {grpc: {{echoSidecar.InboundPort}} }, labels: {app: echo} }
            ---
            apiVersion: trellis.dev/v1alpha1
            kind: WorkloadEntry
            metadata: {name: tcp-echo-1}
            spec: {address: 127.0.0.1, ports: {tcp: {{tcp.Port}} }, labels: {app: tcp-echo} }
            """));
        var web = await mesh.StartSidecarAsync("web", ["greeter:8080", "echo:9090", "tcp-echo:7000"]);

        // HTTP/1.1: keep-alive, a chunked upload, the app's answer.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var greeterUrl = $"http://127.0.0.1:{web.Port("greeter:8080")}";
        for (var i = 0; i < 3; i++)
        {
            using var get = await http.GetAsync($"{greeterUrl}/hello?i={i}");
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal("greeter-1", await get.Content.ReadAsStringAsync());
        }
        var body = new string('x', 100_000);
        using (var upload = new StreamContent(new MemoryStream(Encoding.ASCII.GetBytes(body))))
        {
            using var post = await http.PostAsync($"{greeterUrl}/upload", upload); // no length: chunked
            Assert.Equal(HttpStatusCode.OK, post.StatusCode);
            Assert.Equal("100000", post.Headers.GetValues("x-body-bytes").Single());
        }
        Assert.Contains(greeter.Seen, r => r.PathAndQuery == "/hello?i=2" && r.Method == "GET");

        // gRPC: unary, server streaming, client streaming, bidi; trailers and app errors pass through.
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{web.Port("echo:9090")}");
        var client = new Echo.EchoClient(channel);
        using (var unary = client.UnaryAsync(new EchoRequest { Text = "hi" }))
        {
            var reply = await unary.ResponseAsync;
            Assert.Equal(("hi", "echo-1"), (reply.Text, reply.Instance));
            Assert.Equal("echo-1", unary.GetTrailers().GetValue("x-instance"));
        }
        var replies = new List<string>();
        using (var server = client.ServerStream(new EchoRequest { Text = "s", Count = 50 }))
        {
            await foreach (var r in server.ResponseStream.ReadAllAsync())
            {
                replies.Add(r.Text);
            }
            Assert.Equal("50", server.GetTrailers().GetValue("x-count"));
        }
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"s-{i}"), replies);
        using (var up = client.ClientStream())
        {
            foreach (var t in new[] { "a", "b", "c" })
            {
                await up.RequestStream.WriteAsync(new EchoRequest { Text = t });
            }
            await up.RequestStream.CompleteAsync();
            Assert.Equal("a,b,c", (await up.ResponseAsync).Text);
        }
        using (var bidi = client.Bidi())
        {
            foreach (var t in new[] { "x", "y", "z" })
            {
                await bidi.RequestStream.WriteAsync(new EchoRequest { Text = t });
                Assert.True(await bidi.ResponseStream.MoveNext(CancellationToken.None));
                Assert.Equal(t.ToUpperInvariant(), bidi.ResponseStream.Current.Text); // each reply before the next request
            }
            await bidi.RequestStream.CompleteAsync();
            Assert.False(await bidi.ResponseStream.MoveNext(CancellationToken.None));
        }
        var appError = await Assert.ThrowsAsync<RpcException>(async () => await client.UnaryAsync(new EchoRequest { Text = "x", FailWith = (int)StatusCode.NotFound }));
        Assert.Equal(StatusCode.NotFound, appError.StatusCode);
        Assert.Null(appError.Trailers.GetValue("x-trellis-error")); // the app's error, not the proxy's

        // Plain h2c requests through the same listener.
        using (var h2 = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{web.Port("echo:9090")}/plain") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact })
        {
            using var response = await http.SendAsync(h2);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(new Version(2, 0), response.Version);
            Assert.Equal("echo-1", await response.Content.ReadAsStringAsync());
        }

        // TCP: bytes echo back unchanged, both ways.
        using (var socket = new TcpClient())
        {
            await socket.ConnectAsync(IPAddress.Loopback, web.Port("tcp-echo:7000"));
            var stream = socket.GetStream();
            var payload = Encoding.ASCII.GetBytes("ping over tcp\n");
            await stream.WriteAsync(payload);
            var back = new byte[payload.Length];
            await stream.ReadExactlyAsync(back).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(payload, back);
        }
        Assert.True(tcp.Connections >= 1);
    }

    [Fact]
    public async Task InboundTls_OpensslAndHttpsClients_NegotiateH2OrHttp11AndReachTheApp()
    {
        var ca = TestCertificates.CreateCa();
        var dir = TestPaths.NewTempDir();
        var caFile = Path.Combine(dir, "ca.crt");
        await File.WriteAllTextAsync(caFile, TestCertificates.ToPem(ca) + "\n");
        var (certFile, keyFile) = TestCertificates.WritePem(TestCertificates.IssueServer(ca, "127.0.0.1", "greeter.default"), dir, "greeter");
        await using var greeter = await TestHttpApp.StartAsync("greeter-tls", http2: true);
        await using var greeter1 = await TestHttpApp.StartAsync("greeter-tls-1");
        await using var mesh = await MeshHarness.StartAsync();
        await mesh.ApplyAsync(Yaml("""
            apiVersion: trellis.dev/v1alpha1
            kind: Service
            metadata: {name: greeter}
            spec: {selector: {app: greeter}, ports: [{name: grpc, port: 9090, protocol: grpc}]}
            """));
        var h2Sidecar = await mesh.StartSidecarAsync("greeter", appPort: greeter.Port, extraArgs: ["--inbound-tls-cert", certFile, "--inbound-tls-key", keyFile]);
        var h1Sidecar = await mesh.StartSidecarAsync("greeter", appPort: greeter1.Port, extraArgs: ["--inbound-tls-cert", certFile, "--inbound-tls-key", keyFile]);

        // openssl: the certificate verifies against the CA, and ALPN picks h2 when offered first.
        var (code, output) = await Openssl.RunAsync(
            $"s_client -connect 127.0.0.1:{h2Sidecar.InboundPort} -servername greeter.default -CAfile {caFile} -verify_return_error -alpn h2,http/1.1", "");
        Assert.True(code == 0, output);
        Assert.Contains("ALPN protocol: h2", output, StringComparison.Ordinal);
        Assert.Contains("Verify return code: 0 (ok)", output, StringComparison.Ordinal);

        // gRPC over TLS (ALPN h2) through the sidecar to the h2c app.
        using var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{h2Sidecar.InboundPort}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                SslOptions = new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = TestCertificates.TrustOnly(ca) },
            },
        });
        var reply = await new Echo.EchoClient(channel).UnaryAsync(new EchoRequest { Text = "tls" }, deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(("tls", "greeter-tls"), (reply.Text, reply.Instance));
        Assert.Contains(greeter.Seen, r => r.Protocol == "HTTP/2");

        // HTTPS/1.1 through the other sidecar to the HTTP/1.1 app.
        using var https = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = TestCertificates.TrustOnly(ca) },
        })
        { Timeout = TimeSpan.FromSeconds(10) };
        using var get = await https.GetAsync($"https://127.0.0.1:{h1Sidecar.InboundPort}/over-tls");
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("greeter-tls-1", await get.Content.ReadAsStringAsync());

        // The handshakes are counted on the admin port.
        var stats = await h2Sidecar.Admin.GetStringAsync("stats/prometheus");
        Assert.Contains(stats.Split('\n'), l => l.StartsWith("trellis_proxy_downstream_tls_handshakes_total{", StringComparison.Ordinal) && l.Contains("result=\"h2\"", StringComparison.Ordinal));
    }
}
