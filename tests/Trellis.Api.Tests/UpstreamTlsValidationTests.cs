using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Trellis.Api.Resources;
using Xunit;
using static Trellis.Api.Tests.TestSupport;

namespace Trellis.Api.Tests;

/// <summary>TrafficPolicy spec.tls: reading Istio's words, and every error an apply reports.</summary>
public sealed class UpstreamTlsValidationTests
{
    private static readonly string CaPem = CreateCaPem();

    private static string CreateCaPem()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Validation Test CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        return ca.ExportCertificatePem();
    }

    /// <summary>A TrafficPolicy for greeter whose spec.tls is <paramref name="tls"/> (YAML lines indented under tls:).</summary>
    private static string Policy(string tls) =>
        "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: greeter-tls}\nspec:\n  targetRef: {kind: Service, name: greeter}\n  tls:\n" + tls;

    /// <summary>PEM as a YAML block scalar under caCertificates.</summary>
    private static string CaBlock(string pem) => "    caCertificates: |\n" + string.Concat(pem.Split('\n').Select(l => "      " + l + "\n"));

    [Fact]
    public void Read_SimpleWithCa_BindsIstioFields()
    {
        var yaml = Policy("    mode: SIMPLE\n    sni: greeter.example.com\n" + CaBlock(CaPem));

        var policy = (TrafficPolicy)ReadOk(yaml)[0].Resource;

        Assert.Empty(Validate(yaml));
        Assert.Equal(UpstreamTlsMode.Simple, policy.Spec.Tls!.Mode);
        Assert.Equal("greeter.example.com", policy.Spec.Tls.Sni);
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", policy.Spec.Tls.CaCertificates, StringComparison.Ordinal);
        Assert.False(policy.Spec.Tls.InsecureSkipVerify);
    }

    [Fact]
    public void Validate_CaCertificatesNotPem_NamesPolicyAndField()
    {
        var yaml = Policy("    mode: SIMPLE\n    caCertificates: not a certificate\n");

        var error = AssertErrorAt(Validate(yaml), yaml, "not a certificate", "spec.tls.caCertificates", "no PEM certificate found");

        Assert.Equal("TrafficPolicy default/greeter-tls", error.Subject);
    }

    [Fact]
    public void Validate_CaCertificatesBlockNotACertificate_SaysWhichBlock()
    {
        var bad = CaPem + "\n-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        var yaml = Policy("    mode: SIMPLE\n" + CaBlock(bad));

        var errors = Validate(yaml);

        var error = Assert.Single(errors);
        Assert.Equal("spec.tls.caCertificates", error.Path);
        Assert.Contains("CERTIFICATE block 2 is not an X.509 certificate", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_PrivateKeyPasted_SaysNeverAKey()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var yaml = Policy("    mode: SIMPLE\n" + CaBlock(key.ExportPkcs8PrivateKeyPem()));

        var error = Assert.Single(Validate(yaml));

        Assert.Contains("block 1 is a PEM PRIVATE KEY, not a CERTIFICATE", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_SniNotDnsName_Error()
    {
        var yaml = Policy("    mode: SIMPLE\n    sni: \"bad name!\"\n");

        AssertErrorAt(Validate(yaml), yaml, "\"bad name!\"", "spec.tls.sni", "\"bad name!\" is not a DNS name");
    }

    [Fact]
    public void Validate_InsecureSkipVerifyWithCa_Conflict()
    {
        var yaml = Policy("    mode: SIMPLE\n    insecureSkipVerify: true\n" + CaBlock(CaPem));

        var error = Assert.Single(Validate(yaml));

        Assert.Equal("spec.tls.insecureSkipVerify", error.Path);
        Assert.Contains("conflicts with caCertificates", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_UnknownMode_ListsModes()
    {
        var result = ResourceReader.Read(Policy("    mode: MUTUAL\n"), "v.yaml");

        Assert.False(result.Ok);
        Assert.Contains(result.Errors, e => e.ToString().Contains("expected one of: DISABLE, SIMPLE", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_SettingsWithModeDisable_SaysTheyDoNothing()
    {
        var yaml = Policy("    sni: greeter.example.com\n");

        var error = Assert.Single(Validate(yaml));

        Assert.Equal("spec.tls.mode", error.Path);
        Assert.Contains("mode DISABLE (the default) sends plaintext", error.Message, StringComparison.Ordinal);
    }
}
