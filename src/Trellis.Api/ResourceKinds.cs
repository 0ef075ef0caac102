using System.Diagnostics.CodeAnalysis;
using Trellis.Api.Resources;

namespace Trellis.Api;

/// <summary>A resource kind: its names, API version, scope and model type.</summary>
/// <param name="Kind">Kind as written in files, e.g. "HTTPRoute".</param>
/// <param name="Plural">Lower-case plural, e.g. "httproutes".</param>
/// <param name="ApiVersion">The apiVersion that serves the kind.</param>
/// <param name="Namespaced">False for cluster-scoped kinds (namespace "").</param>
/// <param name="ClrType">The model record type.</param>
/// <param name="Aliases">Short names accepted on the command line, e.g. "svc".</param>
public sealed record ResourceKindInfo(string Kind, string Plural, string ApiVersion, bool Namespaced, Type ClrType, IReadOnlyList<string> Aliases)
{
    /// <summary>Lower-case singular, e.g. "httproute".</summary>
    public string Singular => Kind.ToLowerInvariant();
}

/// <summary>The kinds this version knows.</summary>
public static class ResourceKinds
{
    private static readonly Dictionary<string, ResourceKindInfo> ByName = new(StringComparer.OrdinalIgnoreCase);
    private static readonly Dictionary<Type, ResourceKindInfo> ByType = [];

    static ResourceKinds()
    {
        All =
        [
            new("Service", "services", ApiVersions.Trellis, true, typeof(Service), ["svc"]),
            new("WorkloadEntry", "workloadentries", ApiVersions.Trellis, true, typeof(WorkloadEntry), ["we"]),
            new("HTTPRoute", "httproutes", ApiVersions.GatewayV1, true, typeof(HttpRoute), ["hr"]),
            new("GRPCRoute", "grpcroutes", ApiVersions.GatewayV1, true, typeof(GrpcRoute), ["gr"]),
            new("TCPRoute", "tcproutes", ApiVersions.GatewayV1Alpha2, true, typeof(TcpRoute), ["tr"]),
            new("TrafficPolicy", "trafficpolicies", ApiVersions.Trellis, true, typeof(TrafficPolicy), ["tp"]),
            new("FaultInjection", "faultinjections", ApiVersions.Trellis, true, typeof(FaultInjection), ["fi"]),
            new("RateLimit", "ratelimits", ApiVersions.Trellis, true, typeof(RateLimit), ["rl"]),
            new("MeshConfig", "meshconfigs", ApiVersions.Trellis, false, typeof(MeshConfig), ["mc"]),
        ];
        foreach (var info in All)
        {
            ByType[info.ClrType] = info;
            foreach (var name in new[] { info.Kind, info.Plural }.Concat(info.Aliases))
            {
                ByName[name] = info;
            }
        }
    }

    /// <summary>Every known kind, in a stable order (services first, mesh config last).</summary>
    public static IReadOnlyList<ResourceKindInfo> All { get; }

    /// <summary>Resolves a kind name ("HTTPRoute"), lower-case singular ("httproute"), plural ("httproutes")
    /// or short alias ("svc", "we", "tp"), ignoring case.</summary>
    public static bool TryResolve(string nameOrAlias, [NotNullWhen(true)] out ResourceKindInfo? info)
    {
        info = null;
        return !string.IsNullOrWhiteSpace(nameOrAlias) && ByName.TryGetValue(nameOrAlias.Trim(), out info);
    }

    /// <summary>The kind of a model type or resource instance.</summary>
    internal static ResourceKindInfo Of(Type clrType) =>
        ByType.TryGetValue(clrType, out var info) ? info : throw new ArgumentException($"{clrType.Name} is not a known resource type", nameof(clrType));

    /// <summary>Exact (case-sensitive) kind as written in files.</summary>
    internal static ResourceKindInfo? ByKind(string kind) => All.FirstOrDefault(k => k.Kind == kind);

    internal static string KnownKindsText => string.Join(", ", All.Select(k => k.Kind));
}
