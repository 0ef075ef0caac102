using Envoy.Config.Cluster.V3;
using Envoy.Extensions.TransportSockets.Tls.V3;
using Trellis.ControlPlane.Translation;
using Trellis.ControlPlane.XdsServer;
using Trellis.Testing;
using Trellis.Xds;
using Xunit;
using static Trellis.ControlPlane.Tests.Translation.MeshTranslatorTests;

namespace Trellis.ControlPlane.Tests.Translation;

/// <summary>TrafficPolicy tls SIMPLE -> the sidecars' clusters carry an UpstreamTlsContext; proxyless clients never see it.</summary>
public sealed class UpstreamTlsTranslationTests
{
    private static readonly string CaPem = CreateCaPem();

    private static string CreateCaPem()
    {
        using var ca = TestCertificates.CreateCa("Translation Test CA");
        return TestCertificates.ToPem(ca);
    }

    /// <summary>greeter (grpc 50051, http 8080, tcp 9000) with a TrafficPolicy whose tls block is <paramref name="tls"/>.</summary>
    private static XdsSnapshot Translate(string tls) => MeshTranslator.Translate(Inputs($$"""
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec: {selector: {app: greeter}, ports: [{name: grpc, port: 50051, protocol: grpc}, {name: web, port: 8080, protocol: http}, {name: raw, port: 9000, protocol: tcp}]}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: TrafficPolicy
        metadata: {name: greeter}
        spec:
          targetRef: {kind: Service, name: greeter}
          tls:
        {{tls}}
        """), 1).Snapshot;

    private static XdsSnapshot Sidecar(XdsSnapshot s) => s.ForClient(new ClientView(new ClientLocality("", "", "primary"), ClientRole.Sidecar, "web", "default"));

    private static UpstreamTlsContext? Tls(XdsSnapshot view, string cluster)
    {
        var c = One<Cluster>(view, TypeUrls.Cluster, cluster);
        if (c.TransportSocket is null)
        {
            return null;
        }
        Assert.Equal(ExtensionNames.TlsTransportSocket, c.TransportSocket.Name);
        Assert.Equal(TypeUrls.UpstreamTlsContext, c.TransportSocket.TypedConfig.TypeUrl);
        return c.TransportSocket.TypedConfig.Unpack<UpstreamTlsContext>();
    }

    [Fact]
    public void Translate_SimpleWithCa_SidecarClustersCarryTlsWithAlpnByProtocol()
    {
        var pem = string.Concat(CaPem.Split('\n').Select(l => "      " + l + "\n"));
        var view = Sidecar(Translate("    mode: SIMPLE\n    sni: greeter.example.com\n    caCertificates: |\n" + pem));

        var grpc = Tls(view, "greeter.default:50051")!;
        var http = Tls(view, "greeter.default:8080")!;
        var tcp = Tls(view, "greeter.default:9000")!;

        Assert.Equal(["h2"], grpc.CommonTlsContext.AlpnProtocols);
        Assert.Equal(["http/1.1"], http.CommonTlsContext.AlpnProtocols);
        Assert.Empty(tcp.CommonTlsContext.AlpnProtocols);
        Assert.Equal("greeter.example.com", grpc.Sni);
        Assert.Equal(CaPem.Trim(), grpc.CommonTlsContext.ValidationContext.TrustedCa.InlineString.Trim());
        Assert.Equal(CertificateValidationContext.Types.TrustChainVerification.VerifyTrustChain, grpc.CommonTlsContext.ValidationContext.TrustChainVerification);
    }

    [Fact]
    public void Translate_SimpleWithoutSniOrCa_NoSniSystemTrust()
    {
        var tls = Tls(Sidecar(Translate("    mode: SIMPLE\n")), "greeter.default:8080")!;

        Assert.Equal("", tls.Sni);
        Assert.Null(tls.CommonTlsContext.ValidationContext);
    }

    [Fact]
    public void Translate_InsecureSkipVerify_AcceptUntrusted()
    {
        var tls = Tls(Sidecar(Translate("    mode: SIMPLE\n    insecureSkipVerify: true\n")), "greeter.default:8080")!;

        Assert.Equal(CertificateValidationContext.Types.TrustChainVerification.AcceptUntrusted, tls.CommonTlsContext.ValidationContext.TrustChainVerification);
    }

    [Fact]
    public void Translate_ModeDisable_NoTransportSocket()
    {
        Assert.Null(Tls(Sidecar(Translate("    mode: DISABLE\n")), "greeter.default:50051"));
    }

    [Fact]
    public void Translate_Simple_ProxylessClientsGetPlainClusters()
    {
        var snapshot = Translate("    mode: SIMPLE\n");
        var proxyless = snapshot.ForClient(new ClientView(new ClientLocality("", "", "primary"), ClientRole.Proxyless, "", ""));

        Assert.Null(Tls(snapshot, "greeter.default:50051"));
        Assert.Null(Tls(proxyless, "greeter.default:50051"));
    }

    [Fact]
    public void Translate_OnlyTlsChanges_SnapshotVersionChanges()
    {
        // Proxyless clients see the same resources either way: the snapshot must still change, or it is never published.
        var plain = Translate("    mode: DISABLE\n");
        var secured = Translate("    mode: SIMPLE\n");

        Assert.Equal(plain.Get(TypeUrls.Cluster).Version, secured.Get(TypeUrls.Cluster).Version);
        Assert.NotEqual(plain.Version, secured.Version);
    }
}
