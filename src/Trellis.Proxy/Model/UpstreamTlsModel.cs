using System.Security.Cryptography.X509Certificates;

namespace Trellis.Proxy.Model;

/// <summary>How an upstream's certificate is checked.</summary>
public enum UpstreamTrustKind
{
    /// <summary>The machine's trust store, and the name check.</summary>
    System,

    /// <summary>Only the configured CA certificates as roots (the system store is not consulted), and the name check.</summary>
    CustomCa,

    /// <summary>No verification at all (trust_chain_verification: ACCEPT_UNTRUSTED).</summary>
    AcceptUntrusted,
}

/// <summary>
/// TLS origination to a cluster's endpoints (Envoy's UpstreamTlsContext), compiled once per update: certificates are
/// parsed here, never per connection. Null on a <see cref="ClusterModel"/> means plaintext.
/// </summary>
public sealed record UpstreamTlsModel
{
    /// <summary>Server name sent in the ClientHello and checked against the certificate; null: no SNI, the name
    /// checked is the endpoint's IP address.</summary>
    public string? Sni { get; init; }

    /// <summary>ALPN protocols the cluster lists (common_tls_context.alpn_protocols). The HTTP paths offer what they
    /// speak (http/1.1, or h2); the TCP relay offers this list (empty: no ALPN extension).</summary>
    public IReadOnlyList<string> Alpn { get; init; } = [];

    public UpstreamTrustKind Trust { get; init; } = UpstreamTrustKind.System;

    /// <summary>The roots for <see cref="UpstreamTrustKind.CustomCa"/> (public certificates only).</summary>
    public X509Certificate2Collection? TrustedCa { get; init; }

    /// <summary>Where the trust came from, for humans: "system", "inline (2 certificates)", "file /etc/ca.pem (1 certificate)", "none (ACCEPT_UNTRUSTED)".</summary>
    public string TrustSource { get; init; } = "system";

    /// <summary>
    /// Identity of these settings (SNI, ALPN, trust and the roots' thumbprints): the same on every recompile of an
    /// unchanged cluster, so pooled connections survive unrelated updates and are dropped when the settings change.
    /// </summary>
    public string Key { get; init; } = "";

    /// <summary>Whether the server may renegotiate (allow_renegotiation).</summary>
    public bool AllowRenegotiation { get; init; }
}
