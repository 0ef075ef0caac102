using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Testing;

/// <summary>
/// Certificates made in the test: a CA and leaves it signs, with private keys (ECDSA P-256), valid from an hour ago
/// for a day. Names that parse as IP addresses become IP SANs, the others DNS SANs.
/// </summary>
public static class TestCertificates
{
    /// <summary>A self-signed CA that may sign leaves.</summary>
    public static X509Certificate2 CreateCa(string name = "Trellis Test CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddHours(-1), now.AddDays(1));
    }

    /// <summary>A server certificate (serverAuth) for <paramref name="names"/>, signed by <paramref name="ca"/>, with its private key.</summary>
    public static X509Certificate2 IssueServer(X509Certificate2 ca, params string[] names) =>
        Issue(ca, names, new Oid("1.3.6.1.5.5.7.3.1", "serverAuth"));

    /// <summary>A client certificate (clientAuth) for <paramref name="names"/> (DNS, IP, or URIs such as SPIFFE IDs), signed by <paramref name="ca"/>.</summary>
    public static X509Certificate2 IssueClient(X509Certificate2 ca, params string[] names) =>
        Issue(ca, names, new Oid("1.3.6.1.5.5.7.3.2", "clientAuth"));

    private static X509Certificate2 Issue(X509Certificate2 ca, string[] names, Oid usage)
    {
        if (names.Length == 0)
        {
            throw new ArgumentException("give at least one name", nameof(names));
        }
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            if (IPAddress.TryParse(name, out var ip))
            {
                san.AddIpAddress(ip);
            }
            else if (Uri.TryCreate(name, UriKind.Absolute, out var uri) && uri.Scheme.Length > 1)
            {
                san.AddUri(uri);
            }
            else
            {
                san.AddDnsName(name);
            }
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var now = DateTimeOffset.UtcNow;
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var signed = request.Create(ca, now.AddHours(-1), now.AddHours(23), serial);
        var withKey = signed.CopyWithPrivateKey(key);
        // Round-trip through PKCS#12 so the key is usable by SslStream on every platform (an ephemeral key is not, on some).
        var pfx = withKey.Export(X509ContentType.Pkcs12);
        withKey.Dispose();
        return X509CertificateLoader.LoadPkcs12(pfx, null);
    }

    /// <summary>The certificate as PEM (public part only).</summary>
    public static string ToPem(X509Certificate2 certificate) => certificate.ExportCertificatePem();

    /// <summary>The private key as PKCS#8 PEM.</summary>
    public static string KeyToPem(X509Certificate2 certificate) =>
        (certificate.GetECDsaPrivateKey() as AsymmetricAlgorithm ?? certificate.GetRSAPrivateKey()
            ?? throw new InvalidOperationException("the certificate has no private key")).ExportPkcs8PrivateKeyPem();

    /// <summary>Writes the certificate (chain: the certificate, then <paramref name="intermediates"/>) and its key to PEM files in <paramref name="directory"/>.</summary>
    public static (string CertificateFile, string KeyFile) WritePem(X509Certificate2 certificate, string directory, string name, params X509Certificate2[] intermediates)
    {
        Directory.CreateDirectory(directory);
        var certFile = Path.Combine(directory, name + ".crt");
        var keyFile = Path.Combine(directory, name + ".key");
        File.WriteAllText(certFile, string.Join('\n', intermediates.Select(ToPem).Prepend(ToPem(certificate))) + "\n");
        File.WriteAllText(keyFile, KeyToPem(certificate) + "\n");
        return (certFile, keyFile);
    }

    /// <summary>A server-certificate check that trusts only <paramref name="ca"/> (and requires the name to match).</summary>
    public static System.Net.Security.RemoteCertificateValidationCallback TrustOnly(X509Certificate2 ca) => (_, certificate, _, errors) =>
    {
        if (certificate is null || (errors & System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    };
}
