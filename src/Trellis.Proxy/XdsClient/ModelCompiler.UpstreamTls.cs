using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Extensions.TransportSockets.Tls.V3;
using Trellis.Proxy.Model;
using Trellis.Security;
using Trellis.Xds;

namespace Trellis.Proxy.XdsClient;

/// <summary>Cluster.transport_socket -> <see cref="UpstreamTlsModel"/>: certificates are read and parsed here, once per update.</summary>
internal static partial class ModelCompiler
{
    public const string TlsTransportSocket = ExtensionNames.TlsTransportSocket;

    public const string RawBufferTransportSocket = ExtensionNames.RawBufferTransportSocket;

    /// <summary>
    /// The cluster's TLS origination, or null for plaintext. Anything this proxy cannot honour exactly (SDS, certificate
    /// providers, client certificates, pinning, CRLs, cipher lists) is an error: a security setting is never ignored.
    /// <paramref name="ok"/> is false when an error was recorded.
    /// </summary>
    private static UpstreamTlsModel? CompileUpstreamTls(string where, TransportSocket? socket, List<string> errors, List<string> warnings, out bool ok)
    {
        ok = true;
        if (socket is null)
        {
            return null;
        }
        var before = errors.Count;
        where = $"{where}: transport_socket '{socket.Name}'";
        if (socket.Name == RawBufferTransportSocket)
        {
            return null;
        }
        if (socket.Name != TlsTransportSocket)
        {
            errors.Add($"{where}: unknown transport socket name (supported: {TlsTransportSocket}, {RawBufferTransportSocket})");
            ok = false;
            return null;
        }
        if (socket.TypedConfig is not { } any || any.TypeUrl != TypeUrls.UpstreamTlsContext)
        {
            errors.Add($"{where}: typed_config: expected {TypeUrls.UpstreamTlsContext}, got '{socket.TypedConfig?.TypeUrl ?? "(none)"}'");
            ok = false;
            return null;
        }
        UpstreamTlsContext context;
        try
        {
            context = any.Unpack<UpstreamTlsContext>();
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            errors.Add($"{where}: typed_config does not decode as UpstreamTlsContext: {e.Message}");
            ok = false;
            return null;
        }
        where += ".typed_config";
        var sni = context.Sni.Length > 0 ? context.Sni : null;
        var common = context.CommonTlsContext ?? new CommonTlsContext();
        var cwhere = $"{where}.common_tls_context";
        if (common.TlsCertificates.Count > 0)
        {
            errors.Add($"{cwhere}.tls_certificates: client certificates are not supported yet");
        }
        if (common.TlsCertificateSdsSecretConfigs.Count > 0)
        {
            errors.Add($"{cwhere}.tls_certificate_sds_secret_configs: SDS secrets are not supported yet (give the certificate inline)");
        }
        if (common.TlsCertificateProviderInstance is not null)
        {
            errors.Add($"{cwhere}.tls_certificate_provider_instance: certificate provider instances are not supported");
        }
        CheckTlsParams($"{cwhere}.tls_params", common.TlsParams, errors);
        CertificateValidationContext? validation = null;
        var vwhere = $"{cwhere}.validation_context";
        switch (common.ValidationContextTypeCase)
        {
            case CommonTlsContext.ValidationContextTypeOneofCase.ValidationContext:
                validation = common.ValidationContext;
                break;
            case CommonTlsContext.ValidationContextTypeOneofCase.ValidationContextSdsSecretConfig:
                errors.Add($"{cwhere}.validation_context_sds_secret_config: SDS secrets are not supported yet (give trusted_ca inline or as a file)");
                break;
            case CommonTlsContext.ValidationContextTypeOneofCase.CombinedValidationContext:
                vwhere = $"{cwhere}.combined_validation_context.default_validation_context";
                if (common.CombinedValidationContext.ValidationContextSdsSecretConfig is not null)
                {
                    errors.Add($"{cwhere}.combined_validation_context.validation_context_sds_secret_config: SDS secrets are not supported yet (give trusted_ca inline or as a file)");
                }
                validation = common.CombinedValidationContext.DefaultValidationContext;
                break;
        }

        var trust = UpstreamTrustKind.System;
        var source = "system";
        X509Certificate2Collection? roots = null;
        if (validation is not null)
        {
            CheckUnsupportedValidation(vwhere, validation, errors);
            if (validation.TrustChainVerification == CertificateValidationContext.Types.TrustChainVerification.AcceptUntrusted)
            {
                trust = UpstreamTrustKind.AcceptUntrusted;
                source = "none (ACCEPT_UNTRUSTED)";
                warnings.Add($"{where}: trust_chain_verification ACCEPT_UNTRUSTED: the upstream's certificate is NOT verified (encrypted, not authenticated)");
            }
            else if (validation.TrustedCa is { } ca)
            {
                roots = LoadCertificates($"{vwhere}.trusted_ca", ca, errors, out source);
                trust = UpstreamTrustKind.CustomCa;
            }
        }

        if (errors.Count > before)
        {
            ok = false;
            return null;
        }
        var key = new StringBuilder().Append(sni).Append('|').AppendJoin(',', common.AlpnProtocols).Append('|').Append(trust)
            .Append('|').Append(context.AllowRenegotiation);
        foreach (var root in roots ?? [])
        {
            key.Append('|').Append(root.Thumbprint);
        }
        return new UpstreamTlsModel
        {
            Key = key.ToString(),
            Sni = sni,
            Alpn = [.. common.AlpnProtocols],
            Trust = trust,
            TrustedCa = roots,
            TrustSource = source,
            AllowRenegotiation = context.AllowRenegotiation,
        };
    }

    private static void CheckUnsupportedValidation(string where, CertificateValidationContext v, List<string> errors)
    {
        if (v.CaCertificateProviderInstance is not null)
        {
            errors.Add($"{where}.ca_certificate_provider_instance: certificate provider instances are not supported (give trusted_ca inline or as a file)");
        }
        if (v.VerifyCertificateSpki.Count > 0)
        {
            errors.Add($"{where}.verify_certificate_spki: certificate pinning is not supported");
        }
        if (v.VerifyCertificateHash.Count > 0)
        {
            errors.Add($"{where}.verify_certificate_hash: certificate pinning is not supported");
        }
        if (v.MatchTypedSubjectAltNames.Count > 0)
        {
            errors.Add($"{where}.match_typed_subject_alt_names: subject alt name matchers are not supported yet (the certificate is checked against sni, or the endpoint's IP)");
        }
        if (v.Crl is not null)
        {
            errors.Add($"{where}.crl: certificate revocation lists are not supported");
        }
        if (v.AllowExpiredCertificate)
        {
            errors.Add($"{where}.allow_expired_certificate: accepting expired certificates is not supported");
        }
    }

    /// <summary>
    /// TLS parameters: the platform's defaults (TLS 1.2 and 1.3, its cipher list) are all this proxy offers, so only
    /// settings that ask for exactly that pass; anything else is an error rather than a silently different handshake.
    /// </summary>
    private static void CheckTlsParams(string where, TlsParameters? p, List<string> errors)
    {
        if (p is null)
        {
            return;
        }
        if (p.CipherSuites.Count > 0 || p.EcdhCurves.Count > 0 || p.SignatureAlgorithms.Count > 0)
        {
            errors.Add($"{where}: cipher_suites, ecdh_curves and signature_algorithms are not supported (the platform's defaults apply)");
        }
        if (p.TlsMinimumProtocolVersion is not (TlsParameters.Types.TlsProtocol.TlsAuto or TlsParameters.Types.TlsProtocol.Tlsv12))
        {
            errors.Add($"{where}.tls_minimum_protocol_version: {p.TlsMinimumProtocolVersion} is not supported (TLS_AUTO or TLSv1_2: TLS 1.2 and 1.3 are offered)");
        }
        if (p.TlsMaximumProtocolVersion is not (TlsParameters.Types.TlsProtocol.TlsAuto or TlsParameters.Types.TlsProtocol.Tlsv13))
        {
            errors.Add($"{where}.tls_maximum_protocol_version: {p.TlsMaximumProtocolVersion} is not supported (TLS_AUTO or TLSv1_3: TLS 1.2 and 1.3 are offered)");
        }
    }

    /// <summary>One or more PEM certificates from a DataSource (inline string, inline bytes or a file).</summary>
    private static X509Certificate2Collection? LoadCertificates(string where, DataSource source, List<string> errors, out string description)
    {
        string pem;
        switch (source.SpecifierCase)
        {
            case DataSource.SpecifierOneofCase.InlineString:
                pem = source.InlineString;
                description = "inline";
                break;
            case DataSource.SpecifierOneofCase.InlineBytes:
                pem = Encoding.UTF8.GetString(source.InlineBytes.Span);
                description = "inline";
                break;
            case DataSource.SpecifierOneofCase.Filename:
                description = $"file {source.Filename}";
                try
                {
                    pem = File.ReadAllText(source.Filename);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
                {
                    errors.Add($"{where}.filename: cannot read '{source.Filename}': {e.Message}");
                    return null;
                }
                break;
            case DataSource.SpecifierOneofCase.EnvironmentVariable:
                description = "";
                errors.Add($"{where}.environment_variable: not supported (give the PEM inline or as a file)");
                return null;
            default:
                description = "";
                errors.Add($"{where}: the data source is empty (set inline_string, inline_bytes or filename)");
                return null;
        }
        var roots = PemCertificates.Parse(pem, allowOtherBlocks: true, out var problem);
        if (problem is not null)
        {
            errors.Add($"{where} ({description}): {problem}");
            return null;
        }
        description += roots.Count == 1 ? " (1 certificate)" : string.Create(CultureInfo.InvariantCulture, $" ({roots.Count} certificates)");
        return roots;
    }
}
