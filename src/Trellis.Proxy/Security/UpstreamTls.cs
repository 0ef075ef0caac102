using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Trellis.Proxy.Model;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Security;

/// <summary>How an upstream TLS handshake ended (the metric's outcome tag).</summary>
internal enum UpstreamTlsOutcome { Ok, Untrusted, NameMismatch, NoCertificate, AlpnMismatch, Failed, Timeout }

/// <summary>The TLS stream over the connected socket, or why there is none (<see cref="Failure"/> is the full detail).</summary>
internal readonly record struct UpstreamTlsResult(SslStream? Stream, UpstreamTlsOutcome Outcome, string? Failure);

/// <summary>
/// TLS origination to an upstream endpoint (the client side of Envoy's UpstreamTlsContext), shared by the HTTP/1.1,
/// HTTP/2 and TCP paths: SNI, ALPN, trust (custom roots, system, or none) and the name check, with a failure told as
/// one line ("TLS handshake with 127.0.0.1:8443 failed: certificate not trusted (UntrustedRoot)").
/// </summary>
internal static class UpstreamTls
{
    /// <summary>What the HTTP/1.1 path offers.</summary>
    public static readonly IReadOnlyList<SslApplicationProtocol> Http11 = [SslApplicationProtocol.Http11];

    /// <summary>What the HTTP/2 path offers, and requires the server to pick.</summary>
    public static readonly IReadOnlyList<SslApplicationProtocol> H2 = [SslApplicationProtocol.Http2];

    /// <summary>The ALPN list a cluster configured (the TCP relay offers it as is; null when empty).</summary>
    public static List<SslApplicationProtocol>? Configured(UpstreamTlsModel tls)
    {
        if (tls.Alpn.Count == 0)
        {
            return null;
        }
        var list = new List<SslApplicationProtocol>(tls.Alpn.Count);
        foreach (var p in tls.Alpn)
        {
            list.Add(new SslApplicationProtocol(p));
        }
        return list;
    }

    /// <summary>
    /// Handshakes over <paramref name="socket"/> (connected to <paramref name="endpoint"/>). The stream owns the socket
    /// (on failure it is closed). With <paramref name="requireAlpn"/> the server must
    /// select the first protocol offered. The token bounds the handshake (the caller's connect timeout).
    /// </summary>
    public static async ValueTask<UpstreamTlsResult> HandshakeAsync(Socket socket, IPEndPoint endpoint, UpstreamTlsModel tls,
        IReadOnlyList<SslApplicationProtocol>? alpn, bool requireAlpn, string cluster, TimeProvider time, CancellationToken ct)
    {
        var started = time.GetTimestamp();
        var expected = tls.Sni ?? endpoint.Address.ToString();
        var verifier = new Verifier(tls, expected);
        var options = new SslClientAuthenticationOptions
        {
            // An IP literal as target host sends no SNI (RFC 6066) and is checked against the certificate's IP SANs.
            TargetHost = expected,
            AllowRenegotiation = tls.AllowRenegotiation,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = verifier.Check,
        };
        if (alpn is { Count: > 0 })
        {
            options.ApplicationProtocols = alpn as List<SslApplicationProtocol> ?? [.. alpn];
        }
        if (tls.Trust == UpstreamTrustKind.CustomCa && tls.TrustedCa is { } roots)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(roots);
            options.CertificateChainPolicy = policy;
        }
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        UpstreamTlsOutcome outcome;
        string reason;
        try
        {
            await ssl.AuthenticateAsClientAsync(options, ct).ConfigureAwait(false);
            if (requireAlpn && alpn is { Count: > 0 } && ssl.NegotiatedApplicationProtocol != alpn[0])
            {
                outcome = UpstreamTlsOutcome.AlpnMismatch;
                var got = ssl.NegotiatedApplicationProtocol.Protocol.Length == 0 ? "none" : $"'{ssl.NegotiatedApplicationProtocol}'";
                reason = $"the server did not select ALPN '{alpn[0]}' (selected: {got})";
            }
            else
            {
                Record(cluster, UpstreamTlsOutcome.Ok, time, started);
                return new UpstreamTlsResult(ssl, UpstreamTlsOutcome.Ok, null);
            }
        }
        catch (OperationCanceledException)
        {
            outcome = UpstreamTlsOutcome.Timeout;
            reason = "no handshake within the connect timeout";
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or SocketException or ObjectDisposedException)
        {
            (outcome, reason) = verifier.Failure is { } f ? (verifier.Outcome, f) : (UpstreamTlsOutcome.Failed, Innermost(ex));
            if (outcome == UpstreamTlsOutcome.Failed && alpn is { Count: > 0 } && reason.Contains("no application protocol", StringComparison.Ordinal))
            {
                // The server's no_application_protocol alert (RFC 7301): it speaks none of what was offered.
                outcome = UpstreamTlsOutcome.AlpnMismatch;
                reason = $"the server accepts none of the ALPN protocols offered ({string.Join(", ", alpn)}): {reason}";
            }
        }
        await ssl.DisposeAsync().ConfigureAwait(false);
        Record(cluster, outcome, time, started);
        return new UpstreamTlsResult(null, outcome, $"TLS handshake with {endpoint} failed: {reason}");
    }

    private static void Record(string cluster, UpstreamTlsOutcome outcome, TimeProvider time, long started) =>
        ProxyMetrics.RecordUpstreamTlsHandshake(cluster, OutcomeTag(outcome), time.GetElapsedTime(started));

    public static string OutcomeTag(UpstreamTlsOutcome outcome) => outcome switch
    {
        UpstreamTlsOutcome.Ok => "ok",
        UpstreamTlsOutcome.Untrusted => "untrusted",
        UpstreamTlsOutcome.NameMismatch => "name_mismatch",
        UpstreamTlsOutcome.NoCertificate => "no_certificate",
        UpstreamTlsOutcome.AlpnMismatch => "alpn_mismatch",
        UpstreamTlsOutcome.Timeout => "timeout",
        _ => "error",
    };

    /// <summary>The most specific message of an exception chain ("Received an unexpected EOF or 0 bytes from the transport stream.").</summary>
    private static string Innermost(Exception ex)
    {
        var message = ex.Message;
        for (var e = ex.InnerException; e is not null; e = e.InnerException)
        {
            if (e.Message.Length > 0)
            {
                message = e.Message;
            }
        }
        return message.TrimEnd('.');
    }

    /// <summary>The certificate check of one handshake; remembers why it refused.</summary>
    private sealed class Verifier(UpstreamTlsModel tls, string expectedName)
    {
        public string? Failure { get; private set; }

        public UpstreamTlsOutcome Outcome { get; private set; }

        public bool Check(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (tls.Trust == UpstreamTrustKind.AcceptUntrusted)
            {
                return true;
            }
            if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
            {
                (Outcome, Failure) = (UpstreamTlsOutcome.NoCertificate, "the server sent no certificate");
                return false;
            }
            if ((errors & SslPolicyErrors.RemoteCertificateChainErrors) != 0)
            {
                (Outcome, Failure) = (UpstreamTlsOutcome.Untrusted, $"certificate not trusted ({ChainStatus(chain)}; trust: {tls.TrustSource})");
                return false;
            }
            if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
            {
                (Outcome, Failure) = (UpstreamTlsOutcome.NameMismatch, $"certificate name mismatch: '{expectedName}' is not a name of the certificate for {certificate.Subject}");
                return false;
            }
            return errors == SslPolicyErrors.None;
        }

        private static string ChainStatus(X509Chain? chain)
        {
            if (chain is null || chain.ChainStatus.Length == 0)
            {
                return "chain errors";
            }
            var text = new StringBuilder();
            foreach (var status in chain.ChainStatus)
            {
                var name = status.Status.ToString();
                if (text.ToString().Contains(name, StringComparison.Ordinal))
                {
                    continue;
                }
                if (text.Length > 0)
                {
                    text.Append(", ");
                }
                text.Append(name);
            }
            return text.ToString();
        }
    }
}

/// <summary>A failed upstream TLS handshake, thrown where a stream must be returned (the HTTP/2 handler's connect callback).</summary>
internal sealed class UpstreamTlsException : IOException
{
    public UpstreamTlsException()
    {
    }

    public UpstreamTlsException(string message) : base(message)
    {
    }

    public UpstreamTlsException(string message, Exception inner) : base(message, inner)
    {
    }
}
