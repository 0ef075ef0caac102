using Trellis.Api.Resources;

namespace Trellis.Api.Validation;

/// <summary>FaultInjection and RateLimit, and the ExtensionRef filters that name them.</summary>
internal sealed partial class BatchValidator
{
    internal const string ExtensionGroup = "trellis.dev";

    /// <summary>Rate-limit fill timers shorter than this are refused (Envoy's local rate limit refuses them too).</summary>
    internal static readonly TimeSpan MinFillInterval = TimeSpan.FromMilliseconds(50);

    private void CheckFaultInjection(ParsedResource item, FaultInjection fault)
    {
        var spec = fault.Spec;
        if (spec.TargetRef is { } target)
        {
            CheckServiceRef(item, "spec.targetRef", target.Group, target.Kind, target.Name, null, target.Port);
        }

        if (spec.Delay is null && spec.Abort is null)
        {
            Report(item, "spec", "a FaultInjection needs delay, abort or both, e.g. abort: {percent: 5, httpStatus: 503} or delay: {percent: 10, fixedDelay: 2s}");
        }

        if (spec.Delay is { } delay)
        {
            RequiredPercent(item, "spec.delay", delay.Percent, "delay");
            if (delay.FixedDelay is null)
            {
                Report(item, "spec.delay", "fixedDelay is required: how long each delayed request waits, e.g. fixedDelay: 2s");
            }
            else
            {
                Positive(item, "spec.delay.fixedDelay", delay.FixedDelay);
            }
        }

        if (spec.Abort is { } abort)
        {
            RequiredPercent(item, "spec.abort", abort.Percent, "abort");
            if (abort.HttpStatus is null && abort.GrpcStatus is null)
            {
                Report(item, "spec.abort", "httpStatus or grpcStatus is required: what an aborted request gets, e.g. httpStatus: 503 or grpcStatus: 14 (UNAVAILABLE)");
            }

            if (abort.HttpStatus is { } http && http is < 200 or > 599)
            {
                Report(item, "spec.abort.httpStatus", $"httpStatus {http} is out of range; expected an HTTP status 200-599, e.g. 503");
            }

            if (abort.GrpcStatus is { } grpc && grpc is < 0 or > 16)
            {
                Report(item, "spec.abort.grpcStatus", $"grpcStatus {grpc} is out of range; expected a gRPC status code 0-16, e.g. 14 (UNAVAILABLE)");
            }
        }
    }

    private void CheckRateLimit(ParsedResource item, RateLimit limit)
    {
        var spec = limit.Spec;
        if (spec.TargetRef is { } target)
        {
            CheckServiceRef(item, "spec.targetRef", target.Group, target.Kind, target.Name, null, target.Port);
        }

        if (spec.TokenBucket is not { } bucket)
        {
            Report(item, "spec.tokenBucket", "tokenBucket is required, e.g. tokenBucket: {maxTokens: 100, tokensPerFill: 100, fillInterval: 1s}");
            return;
        }

        if (bucket.MaxTokens is not { } max)
        {
            Report(item, "spec.tokenBucket", "maxTokens is required: the largest burst let through, e.g. maxTokens: 100");
        }
        else
        {
            AtLeast(item, "spec.tokenBucket.maxTokens", max, 1);
        }

        if (bucket.TokensPerFill is { } perFill)
        {
            if (perFill < 1)
            {
                AtLeast(item, "spec.tokenBucket.tokensPerFill", perFill, 1);
            }
            else if (bucket.MaxTokens is { } m && m >= 1 && perFill > m)
            {
                Report(item, "spec.tokenBucket.tokensPerFill", $"tokensPerFill {perFill} is more than maxTokens {m}; a fill cannot add more than the bucket holds, so make it at most {m}");
            }
        }

        if (bucket.FillInterval is not { } interval)
        {
            Report(item, "spec.tokenBucket", "fillInterval is required: how often tokens are added, e.g. fillInterval: 1s");
        }
        else if (interval <= TimeSpan.Zero)
        {
            Positive(item, "spec.tokenBucket.fillInterval", interval);
        }
        else if (interval < MinFillInterval)
        {
            Report(item, "spec.tokenBucket.fillInterval",
                $"fillInterval {Durations.Format(interval)} is too short; expected {Durations.Format(MinFillInterval)} or more (scale maxTokens and tokensPerFill instead)");
        }
    }

    private void RequiredPercent(ParsedResource item, string path, int? percent, string what)
    {
        if (percent is null)
        {
            Report(item, path, $"percent is required: the share of requests to {what}, 0-100");
        }
        else
        {
            Percent(item, path + ".percent", percent);
        }
    }

    /// <summary>An ExtensionRef filter: group trellis.dev, a supported kind, and a resource of that kind in the route's namespace.</summary>
    private void CheckExtensionRef(ParsedResource item, string path, LocalObjectReference extension, Dictionary<string, string> usedByRule)
    {
        if (extension.Group != ExtensionGroup)
        {
            Report(item, path + ".group", string.IsNullOrEmpty(extension.Group)
                ? $"group is required for an extensionRef; write group: {ExtensionGroup}"
                : $"group \"{extension.Group}\" is not supported; write group: {ExtensionGroup}");
        }

        if (!ExtensionKinds.Contains(extension.Kind, StringComparer.Ordinal))
        {
            Report(item, path + ".kind", $"kind \"{extension.Kind}\" is not supported as an extensionRef; expected one of: {string.Join(", ", ExtensionKinds)}");
            return;
        }

        if (!Names.IsDnsLabel(extension.Name))
        {
            Report(item, path + ".name", $"\"{extension.Name}\" is not a valid name: {Names.DnsLabelRule}");
            return;
        }

        if (usedByRule.TryGetValue(extension.Kind, out var earlier))
        {
            Report(item, path + ".kind", $"this rule already names a {extension.Kind} in {earlier}; a rule takes at most one {extension.Kind}");
            return;
        }

        usedByRule[extension.Kind] = FilterPathLeaf(path);
        var ns = item.Resource.Metadata.Namespace;
        if (!_extensions.Contains((extension.Kind, ns, extension.Name)))
        {
            var candidates = _extensions.Where(e => e.Kind == extension.Kind && e.Namespace == ns).Select(e => e.Name)
                .Order(StringComparer.Ordinal).ToList();
            var expected = candidates.Count == 0
                ? $"no {extension.Kind}s exist in namespace \"{ns}\"; apply it in the same file or first"
                : "expected one of: " + string.Join(", ", candidates.Take(20)) + (candidates.Count > 20 ? ", ..." : "");
            Report(item, path + ".name", $"{extension.Kind} \"{extension.Name}\" not found; {expected}");
        }
    }

    /// <summary>"filters[1]" out of "spec.rules[0].filters[1].extensionRef".</summary>
    private static string FilterPathLeaf(string extensionPath)
    {
        var filter = extensionPath[..extensionPath.LastIndexOf('.')];
        return filter[(filter.LastIndexOf('.') + 1)..];
    }
}
