namespace Trellis.Api.Resources;

/// <summary>
/// Injected delays and errors, for testing how callers cope. Applies to the routes of HTTPRoute (or GRPCRoute) rules
/// that name it in an ExtensionRef filter, and, with a targetRef, to every route that sends all its traffic to the
/// target Service. A rule's own ExtensionRef wins over a targetRef.
/// </summary>
public sealed record FaultInjection : Resource<FaultInjectionSpec>
{
    public override string ApiVersion => ApiVersions.Trellis;
    public override string Kind => "FaultInjection";
}

public sealed record FaultInjectionSpec
{
    /// <summary>The Service whose callers see the faults; leave out to apply only through ExtensionRef filters.</summary>
    public PolicyTargetReference? TargetRef { get; init; }

    public FaultDelaySettings? Delay { get; init; }
    public FaultAbortSettings? Abort { get; init; }
}

public sealed record FaultDelaySettings
{
    /// <summary>Share of requests delayed, 0-100.</summary>
    public int? Percent { get; init; }

    /// <summary>How long each delayed request waits before it is sent on.</summary>
    public TimeSpan? FixedDelay { get; init; }
}

public sealed record FaultAbortSettings
{
    /// <summary>Share of requests aborted, 0-100.</summary>
    public int? Percent { get; init; }

    /// <summary>HTTP status of the aborted request's answer (200-599).</summary>
    public int? HttpStatus { get; init; }

    /// <summary>grpc-status of the aborted call's answer (0-16). With both set, gRPC ports use this one and other ports httpStatus.</summary>
    public int? GrpcStatus { get; init; }
}

/// <summary>
/// A local rate limit: a token bucket per route in each calling proxy. Applies like <see cref="FaultInjection"/>:
/// through ExtensionRef filters, or with a targetRef to every route that sends all its traffic to the target.
/// </summary>
public sealed record RateLimit : Resource<RateLimitSpec>
{
    public override string ApiVersion => ApiVersions.Trellis;
    public override string Kind => "RateLimit";
}

public sealed record RateLimitSpec
{
    /// <summary>The Service whose callers are limited; leave out to apply only through ExtensionRef filters.</summary>
    public PolicyTargetReference? TargetRef { get; init; }

    public TokenBucketSettings? TokenBucket { get; init; }
}

public sealed record TokenBucketSettings
{
    /// <summary>Bucket size: the largest burst let through at once (1 or more).</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Tokens added every fill interval (1 up to maxTokens); maxTokens when left out.</summary>
    public int? TokensPerFill { get; init; }

    /// <summary>How often tokens are added (50ms or more).</summary>
    public TimeSpan? FillInterval { get; init; }
}
