using Trellis.Proxy.Listeners;
using Trellis.Proxy.Security;
using Trellis.Testing;
using Xunit;

namespace Trellis.Proxy.Tests.Listeners;

/// <summary>Reading the inbound listener's certificate and key: every fault names the file and what is wrong.</summary>
public sealed class DownstreamTlsLoadTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("trellis-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Load_ChainAndKey_KeepsTheLeafAndItsKey()
    {
        var ca = TestCertificates.CreateCa();
        var intermediate = TestCertificates.CreateCa("Intermediate");
        var server = TestCertificates.IssueServer(ca, "web.default", "127.0.0.1");
        var (cert, key) = TestCertificates.WritePem(server, _dir, "web", intermediate);

        var tls = DownstreamTls.Load(cert, key);

        Assert.Equal(server.Thumbprint, tls.Certificate.Thumbprint);
        Assert.True(tls.Certificate.HasPrivateKey);
        Assert.Equal(["h2", "http/1.1"], tls.ServerOptions.ApplicationProtocols!.Select(p => p.ToString()));
    }

    [Fact]
    public void Load_MissingFile_NamesTheFile()
    {
        var e = Assert.Throws<DownstreamTlsException>(() => DownstreamTls.Load(Path.Combine(_dir, "none.crt"), Path.Combine(_dir, "none.key")));

        Assert.Contains("none.crt: cannot read the certificate file", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NoCertificateInTheFile_SaysWhatWasExpected()
    {
        var cert = Path.Combine(_dir, "empty.crt");
        File.WriteAllText(cert, "not a certificate\n");
        var key = Path.Combine(_dir, "empty.key");
        File.WriteAllText(key, "");

        var e = Assert.Throws<DownstreamTlsException>(() => DownstreamTls.Load(cert, key));

        Assert.Contains("empty.crt: no '-----BEGIN CERTIFICATE-----' block found", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_KeyOfAnotherCertificate_NamesTheKeyFile()
    {
        var ca = TestCertificates.CreateCa();
        var (cert, _) = TestCertificates.WritePem(TestCertificates.IssueServer(ca, "a"), _dir, "a");
        var (_, otherKey) = TestCertificates.WritePem(TestCertificates.IssueServer(ca, "b"), _dir, "b");

        var e = Assert.Throws<DownstreamTlsException>(() => DownstreamTls.Load(cert, otherKey));

        Assert.Contains("b.key: not the private key of the first certificate in", e.Message, StringComparison.Ordinal);
    }
}
