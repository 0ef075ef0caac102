using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Proxy.Security;

/// <summary>
/// TLS termination for a listener: its server certificate (with the chain it sends) and the application protocols
/// it offers by ALPN, h2 before http/1.1, so that HTTP/2 clients get HTTP/2 and everyone else HTTP/1.1. Built once
/// from PEM files (<see cref="Load"/>); every handshake reuses the same certificate context.
/// </summary>
internal sealed class DownstreamTls
{
    public static readonly SslApplicationProtocol Http11 = SslApplicationProtocol.Http11;
    public static readonly SslApplicationProtocol Http2 = SslApplicationProtocol.Http2;

    private readonly SslServerAuthenticationOptions _options;

    public DownstreamTls(X509Certificate2 certificate, X509Certificate2Collection chain)
    {
        Certificate = certificate;
        // offline: the chain is the one in the file; the handshake must not fetch intermediates over the network.
        var context = SslStreamCertificateContext.Create(certificate, chain, offline: true);
        _options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = context,
            ApplicationProtocols = [Http2, Http11],
            ClientCertificateRequired = false,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };
    }

    /// <summary>The server certificate (leaf).</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>Options for one handshake (shared: SslStream does not change them).</summary>
    public SslServerAuthenticationOptions ServerOptions => _options;

    /// <summary>
    /// Reads a PEM certificate chain (leaf first, then intermediates) and its PEM private key (RSA or EC, PKCS#1,
    /// PKCS#8 or SEC1). Throws <see cref="DownstreamTlsException"/> naming the file and what is wrong.
    /// </summary>
    public static DownstreamTls Load(string certificateFile, string keyFile)
    {
        var certificatePem = ReadFile(certificateFile, "certificate");
        var keyPem = ReadFile(keyFile, "private key");
        var chain = new X509Certificate2Collection();
        try
        {
            chain.ImportFromPem(certificatePem);
        }
        catch (CryptographicException e)
        {
            throw new DownstreamTlsException($"{certificateFile}: not a PEM certificate chain ({e.Message})");
        }
        if (chain.Count == 0)
        {
            throw new DownstreamTlsException($"{certificateFile}: no '-----BEGIN CERTIFICATE-----' block found; expected the server certificate in PEM, leaf first");
        }
        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPem(certificatePem, keyPem);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            // A key of another certificate, a key that is not PEM, or an encrypted one.
            throw new DownstreamTlsException(
                $"{keyFile}: not the private key of the first certificate in {certificateFile} ({e.Message}); expected that certificate's unencrypted RSA or EC key in PEM");
        }
        // The key lives in memory only; an ephemeral key works for SslStream on Linux, where no key store is used.
        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < chain.Count; i++)
        {
            intermediates.Add(chain[i]);
        }
        return new DownstreamTls(leaf, intermediates);
    }

    private static string ReadFile(string path, string what)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DownstreamTlsException($"{path}: cannot read the {what} file ({e.Message})");
        }
    }
}

/// <summary>A listener's certificate or key cannot be used; the message names the file and the fault.</summary>
internal sealed class DownstreamTlsException(string message) : Exception(message);
