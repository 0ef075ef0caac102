using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;

namespace Trellis.Proxy.Telemetry;

/// <summary>
/// Instruments of the HTTP/2 and gRPC path, on the proxy's "Trellis.Proxy" meter:
/// trellis_proxy_grpc_requests_total{cluster, grpc_status}, trellis_proxy_http2_requests_total{cluster, code, error}
/// and trellis_proxy_http2_connections_active. "cluster" is empty for the inbound (fixed) target and for requests
/// answered before a cluster was chosen; "error" is the x-trellis-error code, empty when the upstream answered.
/// </summary>
internal sealed class Http2Metrics : IDisposable
{
    public const string MeterName = "Trellis.Proxy";

    private readonly Meter _meter;
    private readonly Counter<long> _grpcRequests;
    private readonly Counter<long> _requests;
    private readonly UpDownCounter<long> _connections;

    public Http2Metrics()
    {
        _meter = new Meter(MeterName);
        _grpcRequests = _meter.CreateCounter<long>("trellis_proxy_grpc_requests_total", description: "gRPC calls through the proxy by cluster and final grpc-status");
        _requests = _meter.CreateCounter<long>("trellis_proxy_http2_requests_total", description: "HTTP/2 requests through the proxy by cluster, HTTP status and proxy error");
        _connections = _meter.CreateUpDownCounter<long>("trellis_proxy_http2_connections_active", description: "Downstream HTTP/2 connections being served");
    }

    /// <summary>The meter these instruments live on (tests listen to this instance only).</summary>
    internal Meter Meter => _meter;

    public void ConnectionOpened() => _connections.Add(1);

    public void ConnectionClosed() => _connections.Add(-1);

    /// <summary>One finished request; <paramref name="grpcStatus"/> is set for gRPC calls (null: the call was reset).</summary>
    public void Request(string cluster, int status, string error, bool grpc, int? grpcStatus)
    {
        _requests.Add(1, new TagList
        {
            { "cluster", cluster },
            { "code", StatusText(status) },
            { "error", error },
        });
        if (grpc)
        {
            _grpcRequests.Add(1, new TagList
            {
                { "cluster", cluster },
                { "grpc_status", grpcStatus is { } g ? Http.Http2.GrpcProtocol.StatusString(g) : "reset" },
            });
        }
    }

    private static string StatusText(int status) => status switch
    {
        200 => "200",
        404 => "404",
        503 => "503",
        _ => status.ToString(CultureInfo.InvariantCulture),
    };

    public void Dispose() => _meter.Dispose();
}
