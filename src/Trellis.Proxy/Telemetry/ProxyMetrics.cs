using System.Diagnostics.Metrics;
using System.Globalization;
using Trellis.Proxy.Listeners;

namespace Trellis.Proxy.Telemetry;

/// <summary>
/// The data path's instruments, all on the one "Trellis.Proxy" meter (the admin port exports every instrument of
/// it). Names carry their Prometheus unit and type suffixes, so no unit is set on the instruments.
/// </summary>
internal static class ProxyMetrics
{
    public const string MeterName = "Trellis.Proxy";

    public static readonly Meter Meter = new(MeterName);

    /// <summary>Connections per detected protocol; tags listener, protocol (tcp, http1, http2, tls).</summary>
    public static readonly Counter<long> ProtocolDetections = Meter.CreateCounter<long>(
        "trellis_proxy_protocol_detections_total", description: "Accepted connections by the protocol detected on them.");

    /// <summary>Time from accept to a detection decision; tags listener, protocol.</summary>
    public static readonly Histogram<double> ProtocolDetectionSeconds = Meter.CreateHistogram<double>(
        "trellis_proxy_protocol_detection_seconds", description: "Time spent detecting the protocol of a new connection (a timeout means opaque TCP).");

    /// <summary>HTTP requests answered; tags listener, code (the status sent downstream).</summary>
    public static readonly Counter<long> HttpRequests = Meter.CreateCounter<long>(
        "trellis_proxy_http_requests_total", description: "HTTP requests answered, by status code sent downstream.");

    /// <summary>From a request's head to its response's end; tag listener.</summary>
    public static readonly Histogram<double> HttpRequestDurationSeconds = Meter.CreateHistogram<double>(
        "trellis_proxy_http_request_duration_seconds", description: "Time from reading an HTTP request's head to sending the last byte of its response.");

    /// <summary>Downstream connections open now; tag listener.</summary>
    public static readonly UpDownCounter<long> DownstreamConnectionsActive = Meter.CreateUpDownCounter<long>(
        "trellis_proxy_downstream_connections_active", description: "Downstream connections open now.");

    /// <summary>TLS handshakes of listeners that terminate TLS; tags listener, result (h2, http/1.1, none: the ALPN chosen; failed).</summary>
    public static readonly Counter<long> DownstreamTlsHandshakes = Meter.CreateCounter<long>(
        "trellis_proxy_downstream_tls_handshakes_total", description: "TLS handshakes on listeners that terminate TLS, by the application protocol chosen (ALPN) or failed.");

    /// <summary>Time from the ClientHello to the end of the handshake; tags listener, result.</summary>
    public static readonly Histogram<double> DownstreamTlsHandshakeSeconds = Meter.CreateHistogram<double>(
        "trellis_proxy_downstream_tls_handshake_seconds", description: "Time spent in TLS handshakes on listeners that terminate TLS.");

    /// <summary>TLS handshakes with upstream endpoints; tags cluster, outcome (ok, untrusted, name_mismatch, no_certificate, alpn_mismatch, timeout, error).</summary>
    public static readonly Counter<long> UpstreamTlsHandshakes = Meter.CreateCounter<long>(
        "trellis_proxy_upstream_tls_handshakes_total", description: "TLS handshakes with upstream endpoints, by cluster and outcome.");

    /// <summary>Time a TLS handshake with an upstream took (after the TCP connect); tags cluster, outcome.</summary>
    public static readonly Histogram<double> UpstreamTlsHandshakeSeconds = Meter.CreateHistogram<double>(
        "trellis_proxy_upstream_tls_handshake_seconds", description: "Time from TCP connect to the end of the TLS handshake with an upstream endpoint.");

    private static readonly string[] StatusCodes = [.. Enumerable.Range(0, 600).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    /// <summary>The tag value for a status code, without allocating for 0-599.</summary>
    public static string CodeTag(int status) => (uint)status < StatusCodes.Length ? StatusCodes[status] : status.ToString(CultureInfo.InvariantCulture);

    public static string ProtocolTag(DetectedProtocol protocol) => protocol switch
    {
        DetectedProtocol.Http1 => "http1",
        DetectedProtocol.Http2 => "http2",
        DetectedProtocol.Tls => "tls",
        _ => "tcp",
    };

    public static void RecordDetection(string listener, DetectedProtocol protocol, TimeSpan elapsed)
    {
        var l = new KeyValuePair<string, object?>("listener", listener);
        var p = new KeyValuePair<string, object?>("protocol", ProtocolTag(protocol));
        ProtocolDetections.Add(1, l, p);
        ProtocolDetectionSeconds.Record(elapsed.TotalSeconds, l, p);
    }

    public static void RecordDownstreamTlsHandshake(string listener, string result, TimeSpan elapsed)
    {
        var l = new KeyValuePair<string, object?>("listener", listener);
        var r = new KeyValuePair<string, object?>("result", result);
        DownstreamTlsHandshakes.Add(1, l, r);
        DownstreamTlsHandshakeSeconds.Record(elapsed.TotalSeconds, l, r);
    }

    public static void RecordHttpRequest(string listener, int status, TimeSpan elapsed)
    {
        var l = new KeyValuePair<string, object?>("listener", listener);
        HttpRequests.Add(1, l, new KeyValuePair<string, object?>("code", CodeTag(status)));
        HttpRequestDurationSeconds.Record(elapsed.TotalSeconds, l);
    }

    public static void RecordUpstreamTlsHandshake(string cluster, string outcome, TimeSpan elapsed)
    {
        var c = new KeyValuePair<string, object?>("cluster", cluster);
        var o = new KeyValuePair<string, object?>("outcome", outcome);
        UpstreamTlsHandshakes.Add(1, c, o);
        UpstreamTlsHandshakeSeconds.Record(elapsed.TotalSeconds, c, o);
    }

    public static void ConnectionOpened(string listener) => DownstreamConnectionsActive.Add(1, new KeyValuePair<string, object?>("listener", listener));

    public static void ConnectionClosed(string listener) => DownstreamConnectionsActive.Add(-1, new KeyValuePair<string, object?>("listener", listener));
}
