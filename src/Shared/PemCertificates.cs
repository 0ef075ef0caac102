using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Security;

/// <summary>
/// Parses a PEM bundle of certificates (a CA list), saying exactly what is wrong when it is not one. Compiled into
/// both the API (validation at apply time) and the proxy (xDS trusted_ca), so both judge a bundle alike.
/// </summary>
internal static class PemCertificates
{
    /// <summary>Every CERTIFICATE block of <paramref name="pem"/>; <paramref name="problem"/> says what is wrong, or is null.</summary>
    /// <param name="allowOtherBlocks">Skip blocks of other labels (a file may hold more); otherwise they are a problem (a key pasted by mistake).</param>
    public static X509Certificate2Collection Parse(string pem, bool allowOtherBlocks, out string? problem)
    {
        var certificates = new X509Certificate2Collection();
        var rest = pem.AsSpan();
        var block = 0;
        while (PemEncoding.TryFind(rest, out var fields))
        {
            var label = rest[fields.Label];
            var base64 = rest[fields.Base64Data];
            rest = rest[fields.Location.End..];
            if (!label.SequenceEqual("CERTIFICATE"))
            {
                if (allowOtherBlocks)
                {
                    continue;
                }
                problem = $"block {block + 1} is a PEM {label}, not a CERTIFICATE (give only public CA certificates, never a key)";
                return certificates;
            }
            block++;
            var der = new byte[fields.DecodedDataLength];
            if (!Convert.TryFromBase64Chars(base64, der, out var written))
            {
                problem = $"not valid PEM: CERTIFICATE block {block} is not base64";
                return certificates;
            }
            try
            {
                certificates.Add(X509CertificateLoader.LoadCertificate(der.AsSpan(0, written)));
            }
            catch (CryptographicException e)
            {
                problem = $"not valid PEM: CERTIFICATE block {block} is not an X.509 certificate ({e.Message.TrimEnd('.')})";
                return certificates;
            }
        }
        problem = block == 0 ? "no PEM certificate found (expected one or more '-----BEGIN CERTIFICATE-----' blocks)" : null;
        return certificates;
    }
}
