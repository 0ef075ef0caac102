using Envoy.Config.Core.V3;
using Envoy.Extensions.TransportSockets.Tls.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Trellis.Proxy.Model;
using Trellis.Proxy.XdsClient;
using Trellis.Testing;
using Trellis.Xds;
using Xunit;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;
using static Trellis.Proxy.Tests.ModelCompilerTests;

namespace Trellis.Proxy.Tests;

/// <summary>Cluster.transport_socket (UpstreamTlsContext) compiled into <see cref="UpstreamTlsModel"/>, and what is refused.</summary>
public sealed class UpstreamTlsCompilerTests : IDisposable
{
    private static readonly string CaPem = CreateCaPem();
    private readonly List<string> _files = [];

    private static string CreateCaPem()
    {
        using var ca = TestCertificates.CreateCa("Compiler Test CA");
        return TestCertificates.ToPem(ca);
    }

    private static EnvoyCluster TlsCluster(UpstreamTlsContext context, string name = "web", string socketName = ModelCompiler.TlsTransportSocket)
    {
        var c = EdsCluster(name);
        c.TransportSocket = new TransportSocket { Name = socketName, TypedConfig = Any.Pack(context) };
        return c;
    }

    private static UpstreamTlsContext Context(CertificateValidationContext? validation = null, string sni = "", params string[] alpn)
    {
        var common = new CommonTlsContext();
        common.AlpnProtocols.AddRange(alpn);
        if (validation is not null)
        {
            common.ValidationContext = validation;
        }
        return new UpstreamTlsContext { Sni = sni, CommonTlsContext = common };
    }

    private static CompileResult Compile(EnvoyCluster cluster) =>
        ModelCompiler.Compile(Set(HttpListener("l", "rt"), Routes("rt", cluster.Name), cluster, Cla(cluster.Name, "127.0.0.1", 8443)));

    [Fact]
    public void Compile_InlinePem_TlsModelWithSniAlpnAndCustomRoots()
    {
        var context = Context(new CertificateValidationContext { TrustedCa = new DataSource { InlineString = CaPem + "\n" + CaPem } }, "web.example", "h2", "http/1.1");

        var result = Compile(TlsCluster(context));

        Assert.Empty(result.Errors);
        var tls = result.Model.Clusters["web"].Tls;
        Assert.NotNull(tls);
        Assert.Equal("web.example", tls.Sni);
        Assert.Equal(["h2", "http/1.1"], tls.Alpn);
        Assert.Equal(UpstreamTrustKind.CustomCa, tls.Trust);
        Assert.Equal(2, tls.TrustedCa!.Count);
        Assert.Equal("CN=Compiler Test CA", tls.TrustedCa[0].Subject);
        Assert.Equal("inline (2 certificates)", tls.TrustSource);
    }

    [Fact]
    public void Compile_InlineBytes_ParsesLikeInlineString()
    {
        var context = Context(new CertificateValidationContext { TrustedCa = new DataSource { InlineBytes = ByteString.CopyFromUtf8(CaPem) } });

        var tls = Compile(TlsCluster(context)).Model.Clusters["web"].Tls;

        Assert.Equal(UpstreamTrustKind.CustomCa, tls!.Trust);
        Assert.Single(tls.TrustedCa!);
        Assert.Null(tls.Sni);
    }

    [Fact]
    public void Compile_CaFromFile_LoadsAtCompileTime()
    {
        var path = Path.Combine(Path.GetTempPath(), $"trellis-ca-{Guid.NewGuid():N}.pem");
        File.WriteAllText(path, CaPem);
        _files.Add(path);
        var context = Context(new CertificateValidationContext { TrustedCa = new DataSource { Filename = path } });

        var tls = Compile(TlsCluster(context)).Model.Clusters["web"].Tls;
        File.Delete(path); // loaded already: the model does not read it again

        Assert.Equal(UpstreamTrustKind.CustomCa, tls!.Trust);
        Assert.Single(tls.TrustedCa!);
        Assert.Equal($"file {path} (1 certificate)", tls.TrustSource);
    }

    [Fact]
    public void Compile_UnreadableFile_NackNamesClusterAndField()
    {
        var context = Context(new CertificateValidationContext { TrustedCa = new DataSource { Filename = "/nonexistent/ca.pem" } });

        var result = Compile(TlsCluster(context));

        var error = Assert.Single(result.Errors);
        Assert.StartsWith("cluster web: transport_socket 'envoy.transport_sockets.tls'.typed_config.common_tls_context.validation_context.trusted_ca.filename: cannot read '/nonexistent/ca.pem'", error, StringComparison.Ordinal);
        Assert.False(result.Model.Clusters.ContainsKey("web"));
    }

    [Fact]
    public void Compile_BadPem_NackNamesClusterAndField()
    {
        var context = Context(new CertificateValidationContext { TrustedCa = new DataSource { InlineString = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n" } });

        var result = Compile(TlsCluster(context));

        var error = Assert.Single(result.Errors);
        Assert.StartsWith("cluster web: transport_socket 'envoy.transport_sockets.tls'.typed_config.common_tls_context.validation_context.trusted_ca (inline): not valid PEM: CERTIFICATE block 1 is not an X.509 certificate", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_TextWithoutCertificate_NackSaysNoPemCertificate()
    {
        var context = Context(new CertificateValidationContext { TrustedCa = new DataSource { InlineString = "hello" } });

        var error = Assert.Single(Compile(TlsCluster(context)).Errors);

        Assert.Contains("trusted_ca (inline): no PEM certificate found", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_SdsValidationContext_NackNamesField()
    {
        var context = Context();
        context.CommonTlsContext.ValidationContextSdsSecretConfig = new SdsSecretConfig { Name = "ROOTCA" };

        var error = Assert.Single(Compile(TlsCluster(context)).Errors);

        Assert.Equal("cluster web: transport_socket 'envoy.transport_sockets.tls'.typed_config.common_tls_context.validation_context_sds_secret_config: SDS secrets are not supported yet (give trusted_ca inline or as a file)", error);
    }

    [Fact]
    public void Compile_SdsClientCertificate_Nack()
    {
        var context = Context();
        context.CommonTlsContext.TlsCertificateSdsSecretConfigs.Add(new SdsSecretConfig { Name = "default" });

        var error = Assert.Single(Compile(TlsCluster(context)).Errors);

        Assert.Contains("common_tls_context.tls_certificate_sds_secret_configs: SDS secrets are not supported yet", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_CertificateProviderInstance_Nack()
    {
        var context = Context(new CertificateValidationContext { CaCertificateProviderInstance = new CertificateProviderPluginInstance { InstanceName = "google_cloud_private_spiffe" } });

        var error = Assert.Single(Compile(TlsCluster(context)).Errors);

        Assert.Contains("validation_context.ca_certificate_provider_instance: certificate provider instances are not supported", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_AcceptUntrusted_NoVerificationAndAWarning()
    {
        var context = Context(new CertificateValidationContext { TrustChainVerification = CertificateValidationContext.Types.TrustChainVerification.AcceptUntrusted });

        var result = Compile(TlsCluster(context));

        Assert.Empty(result.Errors);
        var tls = result.Model.Clusters["web"].Tls!;
        Assert.Equal(UpstreamTrustKind.AcceptUntrusted, tls.Trust);
        var warning = Assert.Single(result.Warnings);
        Assert.Contains("cluster web", warning, StringComparison.Ordinal);
        Assert.Contains("ACCEPT_UNTRUSTED", warning, StringComparison.Ordinal);
        Assert.Contains("NOT verified", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_NoValidationContext_SystemTrust()
    {
        var tls = Compile(TlsCluster(Context(sni: "api.example.com"))).Model.Clusters["web"].Tls!;

        Assert.Equal(UpstreamTrustKind.System, tls.Trust);
        Assert.Null(tls.TrustedCa);
        Assert.Equal("system", tls.TrustSource);
    }

    [Fact]
    public void Compile_UnknownTransportSocketName_Nack()
    {
        var error = Assert.Single(Compile(TlsCluster(Context(), socketName: "envoy.transport_sockets.alts")).Errors);

        Assert.Equal("cluster web: transport_socket 'envoy.transport_sockets.alts': unknown transport socket name (supported: envoy.transport_sockets.tls, envoy.transport_sockets.raw_buffer)", error);
    }

    [Fact]
    public void Compile_WrongTypedConfig_Nack()
    {
        var c = EdsCluster("web");
        c.TransportSocket = new TransportSocket { Name = ModelCompiler.TlsTransportSocket, TypedConfig = Any.Pack(new DownstreamTlsContext()) };

        var error = Assert.Single(Compile(c).Errors);

        Assert.Equal($"cluster web: transport_socket 'envoy.transport_sockets.tls': typed_config: expected {TypeUrls.UpstreamTlsContext}, got '{TypeUrls.DownstreamTlsContext}'", error);
    }

    [Fact]
    public void Compile_NoTransportSocket_Plaintext()
    {
        Assert.Null(Compile(EdsCluster("web")).Model.Clusters["web"].Tls);
    }

    [Fact]
    public void Compile_SameSettingsTwice_SameKey_ChangedSniNewKey()
    {
        var context = Context(new CertificateValidationContext { TrustedCa = new DataSource { InlineString = CaPem } }, "a.example", "h2");
        var first = Compile(TlsCluster(context)).Model.Clusters["web"].Tls!;
        var second = Compile(TlsCluster(context)).Model.Clusters["web"].Tls!;
        context.Sni = "b.example";
        var changed = Compile(TlsCluster(context)).Model.Clusters["web"].Tls!;

        Assert.Equal(first.Key, second.Key);
        Assert.NotEqual(first.Key, changed.Key);
    }

    public void Dispose()
    {
        foreach (var f in _files)
        {
            File.Delete(f);
        }
    }
}
