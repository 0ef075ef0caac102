namespace Trellis.Proxy.Http;

/// <summary>
/// An error the proxy itself produces (never one passed through from the application). Each has the HTTP status it
/// answers with, the value of the <c>x-trellis-error</c> response header, and the grpc-status used for gRPC calls.
/// </summary>
public enum ProxyError
{
    None = 0,
    NoRoute,
    NoCluster,
    NoHealthyUpstream,
    UpstreamConnectFailure,
    UpstreamReset,
    UpstreamTimeout,
    UpstreamProtocolError,
    CircuitOpen,
    RetryBudgetExhausted,
    RateLimited,
    FaultInjected,
    BadRequest,
    RequestHeadersTooLarge,
    TooManyHeaders,
    RequestTimeout,
    Draining,
}

public static class ProxyErrors
{
    /// <summary>The response header that marks an answer as the proxy's own.</summary>
    public const string HeaderName = "x-trellis-error";

    /// <summary>The value of <see cref="HeaderName"/>: snake_case, stable, documented in docs/proxy-errors.md.</summary>
    public static string Code(this ProxyError error) => error switch
    {
        ProxyError.NoRoute => "no_route",
        ProxyError.NoCluster => "no_cluster",
        ProxyError.NoHealthyUpstream => "no_healthy_upstream",
        ProxyError.UpstreamConnectFailure => "upstream_connect_failure",
        ProxyError.UpstreamReset => "upstream_reset",
        ProxyError.UpstreamTimeout => "upstream_timeout",
        ProxyError.UpstreamProtocolError => "upstream_protocol_error",
        ProxyError.CircuitOpen => "circuit_open",
        ProxyError.RetryBudgetExhausted => "retry_budget_exhausted",
        ProxyError.RateLimited => "rate_limited",
        ProxyError.FaultInjected => "fault_injected",
        ProxyError.BadRequest => "bad_request",
        ProxyError.RequestHeadersTooLarge => "request_headers_too_large",
        ProxyError.TooManyHeaders => "too_many_headers",
        ProxyError.RequestTimeout => "request_timeout",
        ProxyError.Draining => "draining",
        _ => "none",
    };

    /// <summary>The HTTP status the proxy answers with.</summary>
    public static int HttpStatus(this ProxyError error) => error switch
    {
        ProxyError.NoRoute => 404,
        ProxyError.BadRequest => 400,
        ProxyError.RequestTimeout => 408,
        ProxyError.RateLimited => 429,
        ProxyError.RequestHeadersTooLarge or ProxyError.TooManyHeaders => 431,
        ProxyError.UpstreamProtocolError => 502,
        ProxyError.UpstreamTimeout => 504,
        _ => 503,
    };

    /// <summary>
    /// The grpc-status for a gRPC call (HTTP 200 with this status in the trailers-only response): UNAVAILABLE (14) for
    /// what a client may retry, DEADLINE_EXCEEDED (4) for timeouts, RESOURCE_EXHAUSTED (8) for rate limits,
    /// UNIMPLEMENTED (12) when nothing routes the method, INTERNAL (13) for malformed requests.
    /// </summary>
    public static int GrpcStatus(this ProxyError error) => error switch
    {
        ProxyError.NoRoute => 12,
        ProxyError.UpstreamTimeout or ProxyError.RequestTimeout => 4,
        ProxyError.RateLimited => 8,
        ProxyError.BadRequest or ProxyError.RequestHeadersTooLarge or ProxyError.TooManyHeaders or ProxyError.UpstreamProtocolError => 13,
        _ => 14,
    };

    /// <summary>Human text for the response body: what happened and what to do next.</summary>
    public static string Message(this ProxyError error) => error switch
    {
        ProxyError.NoRoute => "no route matches this request; check the HTTPRoutes of the service (trellis get httproute)",
        ProxyError.NoCluster => "the route names a cluster the proxy does not have; check trellis proxy-status for NACKs",
        ProxyError.NoHealthyUpstream => "the service has no healthy endpoint; check trellis get workloadentry and registrations",
        ProxyError.UpstreamConnectFailure => "could not connect to any endpoint of the service",
        ProxyError.UpstreamReset => "the upstream closed or reset the connection before answering",
        ProxyError.UpstreamTimeout => "the upstream did not answer within the route's timeout",
        ProxyError.UpstreamProtocolError => "the upstream answered with malformed HTTP",
        ProxyError.CircuitOpen => "the service's connection pool limit is reached (circuit breaker); raise TrafficPolicy connectionPool or add capacity",
        ProxyError.RetryBudgetExhausted => "the retry budget of the service is spent",
        ProxyError.RateLimited => "the route's rate limit is reached; retry later",
        ProxyError.FaultInjected => "aborted by a FaultInjection policy",
        ProxyError.BadRequest => "malformed HTTP request",
        ProxyError.RequestHeadersTooLarge => "request headers are too large",
        ProxyError.TooManyHeaders => "request has too many headers",
        ProxyError.RequestTimeout => "the request was not received in time",
        ProxyError.Draining => "the proxy is shutting down",
        _ => "",
    };
}
