using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Extensions.Filters.Http.Fault.V3;
using Envoy.Extensions.Filters.Http.LocalRatelimit.V3;
using Envoy.Type.V3;
using Google.Protobuf.Collections;
using Google.Protobuf.WellKnownTypes;
using Trellis.Proxy.Model;
using Trellis.Xds;
using FilterConfig = Envoy.Config.Route.V3.FilterConfig;
using UpstreamHttpProtocolOptions = Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions;

namespace Trellis.Proxy.XdsClient;

/// <summary>Per-route filter configs (fault, local rate limit), direct response bodies, and cluster extras
/// (upstream HTTP protocol options, the EWMA marker in Trellis metadata).</summary>
internal static partial class ModelCompiler
{
    /// <summary>Envoy's fill timer refuses anything shorter.</summary>
    private static readonly TimeSpan MinFillInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Reads a route's typed_per_filter_config: fault and local_ratelimit by type URL (a FilterConfig wrapper is
    /// opened; disabled ones are skipped). Any other type is an error unless the wrapper or the connection manager's
    /// filter of that name is marked optional.
    /// </summary>
    private static (FaultModel? Fault, RateLimitModel? RateLimit) CompilePerFilterConfigs(
        string where, MapField<string, Any> configs, IReadOnlySet<string> optionalFilters, List<string> errors)
    {
        FaultModel? fault = null;
        RateLimitModel? rateLimit = null;
        foreach (var (key, raw) in configs.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var fwhere = $"{where}: typed_per_filter_config['{key}']";
            var config = raw;
            var optional = optionalFilters.Contains(key);
            if (raw.TypeUrl == TypeUrls.FilterConfig)
            {
                var wrapper = raw.Unpack<FilterConfig>();
                if (wrapper.Disabled)
                {
                    continue;
                }
                optional |= wrapper.IsOptional;
                if (wrapper.Config is null)
                {
                    errors.Add($"{fwhere}: FilterConfig.config is missing");
                    continue;
                }
                config = wrapper.Config;
            }
            switch (config.TypeUrl)
            {
                case TypeUrls.HttpFault:
                    fault = CompileFault(fwhere, config.Unpack<HTTPFault>(), errors);
                    break;
                case TypeUrls.LocalRateLimit:
                    rateLimit = CompileRateLimit(fwhere, config.Unpack<LocalRateLimit>(), errors);
                    break;
                default:
                    if (!optional)
                    {
                        errors.Add($"{fwhere}: unsupported filter config type '{config.TypeUrl}' (neither it nor the filter is marked is_optional)");
                    }
                    break;
            }
        }
        return (fault, rateLimit);
    }

    private static FaultModel? CompileFault(string where, HTTPFault f, List<string> errors)
    {
        if (f.UpstreamCluster.Length > 0 || f.Headers.Count > 0 || f.DownstreamNodes.Count > 0)
        {
            errors.Add($"{where}: HTTPFault upstream_cluster, headers and downstream_nodes are not supported (faults apply to every request of the route)");
            return null;
        }
        double delayPercent = 0, abortPercent = 0;
        var delay = TimeSpan.Zero;
        int abortHttp = 0;
        int? abortGrpc = null;
        if (f.Delay is { } d)
        {
            if (d.FaultDelaySecifierCase != Envoy.Extensions.Filters.Common.Fault.V3.FaultDelay.FaultDelaySecifierOneofCase.FixedDelay)
            {
                errors.Add($"{where}: delay: only fixed_delay is supported (got {d.FaultDelaySecifierCase})");
                return null;
            }
            delay = d.FixedDelay.ToTimeSpan();
            if (delay < TimeSpan.Zero)
            {
                errors.Add($"{where}: delay.fixed_delay must not be negative");
                return null;
            }
            if (!TryPercent($"{where}: delay.percentage", d.Percentage, errors, out delayPercent))
            {
                return null;
            }
        }
        if (f.Abort is { } a)
        {
            switch (a.ErrorTypeCase)
            {
                case FaultAbort.ErrorTypeOneofCase.HttpStatus when a.HttpStatus is >= 200 and <= 599:
                    abortHttp = (int)a.HttpStatus;
                    break;
                case FaultAbort.ErrorTypeOneofCase.GrpcStatus when a.GrpcStatus <= 16:
                    abortGrpc = (int)a.GrpcStatus;
                    abortHttp = HttpStatusOfGrpc(abortGrpc.Value);
                    break;
                case FaultAbort.ErrorTypeOneofCase.HttpStatus:
                    errors.Add($"{where}: abort.http_status {a.HttpStatus} is not an HTTP status 200-599");
                    return null;
                case FaultAbort.ErrorTypeOneofCase.GrpcStatus:
                    errors.Add($"{where}: abort.grpc_status {a.GrpcStatus} is not a gRPC status 0-16");
                    return null;
                default:
                    errors.Add($"{where}: abort: http_status or grpc_status is required (got {a.ErrorTypeCase})");
                    return null;
            }
            if (!TryPercent($"{where}: abort.percentage", a.Percentage, errors, out abortPercent))
            {
                return null;
            }
        }
        return f.Delay is null && f.Abort is null ? null : new FaultModel(delayPercent, delay, abortPercent, abortHttp, abortGrpc);
    }

    /// <summary>A route's token bucket; null when the filter is not both enabled and enforced (Envoy's defaults are 0%).</summary>
    private static RateLimitModel? CompileRateLimit(string where, LocalRateLimit l, List<string> errors)
    {
        if (!TryPercent($"{where}: filter_enabled.default_value", l.FilterEnabled?.DefaultValue ?? new FractionalPercent(), errors, out var enabled)
            || !TryPercent($"{where}: filter_enforced.default_value", l.FilterEnforced?.DefaultValue ?? new FractionalPercent(), errors, out var enforced))
        {
            return null;
        }
        if (enabled == 0 || enforced == 0 || l.TokenBucket is null)
        {
            return null;
        }
        if (enabled < 100 || enforced < 100)
        {
            errors.Add($"{where}: filter_enabled and filter_enforced must be 0% or 100% (got {enabled}% and {enforced}%)");
            return null;
        }
        var bucket = l.TokenBucket;
        var fill = bucket.FillInterval?.ToTimeSpan() ?? TimeSpan.Zero;
        var perFill = (long)(bucket.TokensPerFill ?? 1);
        if (bucket.MaxTokens is 0 or > int.MaxValue || perFill is 0 or > int.MaxValue)
        {
            errors.Add($"{where}: token_bucket.max_tokens and tokens_per_fill must be 1 or more (got {bucket.MaxTokens} and {perFill})");
            return null;
        }
        if (fill < MinFillInterval)
        {
            errors.Add($"{where}: token_bucket.fill_interval must be at least 50ms (got {fill.TotalMilliseconds}ms)");
            return null;
        }
        return new RateLimitModel((int)bucket.MaxTokens, (int)perFill, fill);
    }

    /// <summary>A FractionalPercent as a percentage 0-100; a missing one is an error (gRPC clients reject it too).</summary>
    private static bool TryPercent(string where, FractionalPercent? p, List<string> errors, out double percent)
    {
        percent = 0;
        if (p is null)
        {
            errors.Add($"{where} is missing");
            return false;
        }
        var denominator = p.Denominator switch
        {
            FractionalPercent.Types.DenominatorType.Hundred => 100.0,
            FractionalPercent.Types.DenominatorType.TenThousand => 10_000.0,
            FractionalPercent.Types.DenominatorType.Million => 1_000_000.0,
            _ => 0,
        };
        if (denominator == 0)
        {
            errors.Add($"{where}: unknown denominator {p.Denominator}");
            return false;
        }
        percent = Math.Min(100.0, p.Numerator * 100.0 / denominator);
        return true;
    }

    /// <summary>The HTTP status a gRPC status corresponds to (as Envoy maps them), for callers that are not gRPC.</summary>
    internal static int HttpStatusOfGrpc(int grpcStatus) => grpcStatus switch
    {
        0 => 200,
        1 => 499,
        3 or 9 or 11 => 400,
        4 => 504,
        5 => 404,
        6 or 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    };

    /// <summary>A listener-wide fault or rate limit would apply to every route; only per-route configs are supported.</summary>
    private static void CheckListenerWideFilter(string where, Any config, List<string> errors)
    {
        if (config.TypeUrl == TypeUrls.HttpFault && config.Unpack<HTTPFault>() is { } fault && (fault.Delay is not null || fault.Abort is not null))
        {
            errors.Add($"{where}: a listener-wide delay or abort is not supported; put it in the routes' typed_per_filter_config");
        }
        else if (config.TypeUrl == TypeUrls.LocalRateLimit && config.Unpack<LocalRateLimit>().TokenBucket is not null)
        {
            errors.Add($"{where}: a listener-wide token_bucket is not supported; put it in the routes' typed_per_filter_config");
        }
    }

    private static string? DirectResponseBody(string where, DataSource? body, List<string> errors)
    {
        switch (body?.SpecifierCase)
        {
            case null or DataSource.SpecifierOneofCase.None:
                return null;
            case DataSource.SpecifierOneofCase.InlineString:
                return body.InlineString;
            case DataSource.SpecifierOneofCase.InlineBytes:
                return Encoding.UTF8.GetString(body.InlineBytes.Span);
            default:
                errors.Add($"{where}: only inline_string and inline_bytes are supported (got {body.SpecifierCase})");
                return null;
        }
    }

    /// <summary>Cluster metadata filter_metadata["trellis.dev"].lb_policy = "EWMA": the control plane asks Trellis proxies for
    /// peak EWMA while lb_policy tells standard clients what to use instead. Other values are left to lb_policy.</summary>
    private static bool IsEwma(Metadata? metadata) =>
        metadata?.FilterMetadata.TryGetValue(ExtensionNames.TrellisMetadata, out var trellis) == true
        && trellis.Fields.TryGetValue(ExtensionNames.LbPolicyKey, out var value)
        && value.StringValue == ExtensionNames.EwmaLbPolicy;

    /// <summary>Upstream connection reuse from typed_extension_protocol_options; other keys are not ours to read.</summary>
    private static ClusterModel ApplyProtocolOptions(string where, ClusterModel model, MapField<string, Any> options, List<string> errors)
    {
        if (!options.TryGetValue(ExtensionNames.UpstreamHttpProtocolOptions, out var any))
        {
            return model;
        }
        if (any.TypeUrl != TypeUrls.UpstreamHttpProtocolOptions)
        {
            errors.Add($"{where}: typed_extension_protocol_options['{ExtensionNames.UpstreamHttpProtocolOptions}']: expected {TypeUrls.UpstreamHttpProtocolOptions}, got '{any.TypeUrl}'");
            return model;
        }
        var common = any.Unpack<UpstreamHttpProtocolOptions>().CommonHttpProtocolOptions;
        if (common is null)
        {
            return model;
        }
        var perConnection = common.MaxRequestsPerConnection is { } n and > 0 ? (int)Math.Min(n, int.MaxValue) : (int?)null;
        var idle = common.IdleTimeout?.ToTimeSpan() is { } t && t > TimeSpan.Zero ? t : model.IdleTimeout;
        return model with { MaxRequestsPerConnection = perConnection, IdleTimeout = idle };
    }
}
