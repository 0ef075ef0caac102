using System.Net;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary><see cref="Trellis.Proxy.Http.Http2.Server.Http2ServerConnection"/> over an SslStream (the stream overload), ALPN h2.</summary>
public sealed class Http2ServerTlsTests
{
    [Fact]
    public async Task HttpClient_HttpsWithAlpnH2_GetAndPostServedOverTls()
    {
        using var ca = TestCertificates.CreateCa();
        using var certificate = TestCertificates.IssueServer(ca, "127.0.0.1");
        await using var server = new TestH2Server(H2Handlers.HelloAsync, certificate: certificate);
        using var client = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = TestCertificates.TrustOnly(ca) },
        })
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(20),
        };

        using var get = await client.GetAsync(server.Url("/secure"));
        using var post = await client.PostAsync(server.Url("/upload"), new ByteArrayContent(new byte[200_000]));

        Assert.Equal(HttpVersion.Version20, get.Version);
        Assert.Equal("hello /secure", await get.Content.ReadAsStringAsync());
        Assert.Equal("received 200000", await post.Content.ReadAsStringAsync());
        Assert.Equal(1, server.Accepted);
    }
}
