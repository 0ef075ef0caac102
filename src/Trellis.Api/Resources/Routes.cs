namespace Trellis.Api.Resources;

/// <summary>Gateway API reference to a parent (in the mesh profile, a Service).</summary>
public sealed record ParentReference
{
    public string? Group { get; init; }
    public string Kind { get; init; } = "Service";
    public string Name { get; init; } = "";
    public string? Namespace { get; init; }
    public int? Port { get; init; }
}

/// <summary>Gateway API backend reference (a Service and port) with a weight.</summary>
public sealed record BackendRef
{
    public string? Group { get; init; }
    public string Kind { get; init; } = "Service";
    public string Name { get; init; } = "";
    public string? Namespace { get; init; }
    public int? Port { get; init; }
    public int Weight { get; init; } = 1;
}

/// <summary>HTTP routing for traffic addressed to a Service (Gateway API HTTPRoute, mesh profile).</summary>
public sealed record HttpRoute : Resource<HttpRouteSpec>
{
    public override string ApiVersion => ApiVersions.GatewayV1;
    public override string Kind => "HTTPRoute";
}

public sealed record HttpRouteSpec
{
    public IReadOnlyList<ParentReference> ParentRefs { get; init; } = [];
    public IReadOnlyList<string>? Hostnames { get; init; }
    public IReadOnlyList<HttpRouteRule> Rules { get; init; } = [];
}

public sealed record HttpRouteRule
{
    public string? Name { get; init; }
    public IReadOnlyList<HttpRouteMatch>? Matches { get; init; }
    public IReadOnlyList<HttpRouteFilter>? Filters { get; init; }
    public IReadOnlyList<BackendRef>? BackendRefs { get; init; }
    public HttpRouteTimeouts? Timeouts { get; init; }
}

public sealed record HttpRouteMatch
{
    public HttpPathMatch? Path { get; init; }
    public IReadOnlyList<HttpHeaderMatch>? Headers { get; init; }
    public IReadOnlyList<HttpQueryParamMatch>? QueryParams { get; init; }

    /// <summary>HTTP method, upper case (GET, POST, ...).</summary>
    public string? Method { get; init; }
}

public enum PathMatchType { PathPrefix, Exact, RegularExpression }

public enum StringMatchType { Exact, RegularExpression }

public sealed record HttpPathMatch
{
    public PathMatchType Type { get; init; } = PathMatchType.PathPrefix;
    public string Value { get; init; } = "/";
}

public sealed record HttpHeaderMatch
{
    public StringMatchType Type { get; init; } = StringMatchType.Exact;
    public string Name { get; init; } = "";
    public string Value { get; init; } = "";
}

public sealed record HttpQueryParamMatch
{
    public StringMatchType Type { get; init; } = StringMatchType.Exact;
    public string Name { get; init; } = "";
    public string Value { get; init; } = "";
}

public sealed record HttpRouteTimeouts
{
    /// <summary>Whole request, retries included.</summary>
    public TimeSpan? Request { get; init; }

    /// <summary>One try to the backend.</summary>
    public TimeSpan? BackendRequest { get; init; }
}

public enum HttpRouteFilterType { RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect, ExtensionRef }

public sealed record HttpRouteFilter
{
    public HttpRouteFilterType Type { get; init; }
    public HeaderModifier? RequestHeaderModifier { get; init; }
    public HeaderModifier? ResponseHeaderModifier { get; init; }
    public UrlRewrite? UrlRewrite { get; init; }
    public RequestRedirect? RequestRedirect { get; init; }
    public LocalObjectReference? ExtensionRef { get; init; }
}

public sealed record HeaderModifier
{
    public IReadOnlyList<HttpHeader>? Set { get; init; }
    public IReadOnlyList<HttpHeader>? Add { get; init; }
    public IReadOnlyList<string>? Remove { get; init; }
}

public sealed record HttpHeader
{
    public string Name { get; init; } = "";
    public string Value { get; init; } = "";
}

public sealed record UrlRewrite
{
    public string? Hostname { get; init; }
    public HttpPathModifier? Path { get; init; }
}

public enum PathModifierType { ReplaceFullPath, ReplacePrefixMatch }

public sealed record HttpPathModifier
{
    public PathModifierType Type { get; init; }
    public string? ReplaceFullPath { get; init; }
    public string? ReplacePrefixMatch { get; init; }
}

public sealed record RequestRedirect
{
    public string? Scheme { get; init; }
    public string? Hostname { get; init; }
    public HttpPathModifier? Path { get; init; }
    public int? Port { get; init; }
    public int StatusCode { get; init; } = 302;
}

public sealed record LocalObjectReference
{
    public string? Group { get; init; }
    public string Kind { get; init; } = "";
    public string Name { get; init; } = "";
}

/// <summary>gRPC routing (Gateway API GRPCRoute, mesh profile).</summary>
public sealed record GrpcRoute : Resource<GrpcRouteSpec>
{
    public override string ApiVersion => ApiVersions.GatewayV1;
    public override string Kind => "GRPCRoute";
}

public sealed record GrpcRouteSpec
{
    public IReadOnlyList<ParentReference> ParentRefs { get; init; } = [];
    public IReadOnlyList<string>? Hostnames { get; init; }
    public IReadOnlyList<GrpcRouteRule> Rules { get; init; } = [];
}

public sealed record GrpcRouteRule
{
    public string? Name { get; init; }
    public IReadOnlyList<GrpcRouteMatch>? Matches { get; init; }
    public IReadOnlyList<HttpRouteFilter>? Filters { get; init; }
    public IReadOnlyList<BackendRef>? BackendRefs { get; init; }
    public HttpRouteTimeouts? Timeouts { get; init; }
}

public sealed record GrpcRouteMatch
{
    public GrpcMethodMatch? Method { get; init; }
    public IReadOnlyList<HttpHeaderMatch>? Headers { get; init; }
}

public sealed record GrpcMethodMatch
{
    public StringMatchType Type { get; init; } = StringMatchType.Exact;

    /// <summary>Fully qualified service, e.g. helloworld.Greeter. Any service when empty.</summary>
    public string? Service { get; init; }

    /// <summary>Method name, e.g. SayHello. Any method when empty.</summary>
    public string? Method { get; init; }
}

/// <summary>Opaque TCP routing (Gateway API TCPRoute, v1alpha2).</summary>
public sealed record TcpRoute : Resource<TcpRouteSpec>
{
    public override string ApiVersion => ApiVersions.GatewayV1Alpha2;
    public override string Kind => "TCPRoute";
}

public sealed record TcpRouteSpec
{
    public IReadOnlyList<ParentReference> ParentRefs { get; init; } = [];
    public IReadOnlyList<TcpRouteRule> Rules { get; init; } = [];
}

public sealed record TcpRouteRule
{
    public string? Name { get; init; }
    public IReadOnlyList<BackendRef>? BackendRefs { get; init; }
}
