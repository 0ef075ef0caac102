using Envoy.Config.Cluster.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Http.Router.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Service.Discovery.V3;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Xds;

namespace Trellis.ControlPlane.XdsServer;

/// <summary>
/// Pull mode: Envoy's REST-JSON discovery endpoints (POST /v3/discovery:listeners and friends). The request is a
/// DiscoveryRequest in proto3 JSON; the answer is a DiscoveryResponse, or 304 when the version the caller holds
/// is still current.
/// </summary>
internal static class RestDiscovery
{
    private static readonly Dictionary<string, string> Paths = new(StringComparer.Ordinal)
    {
        ["listeners"] = TypeUrls.Listener,
        ["routes"] = TypeUrls.RouteConfiguration,
        ["clusters"] = TypeUrls.Cluster,
        ["endpoints"] = TypeUrls.ClusterLoadAssignment,
    };

    private static readonly TypeRegistry Registry = TypeRegistry.FromMessages(
        Listener.Descriptor, RouteConfiguration.Descriptor, Cluster.Descriptor, ClusterLoadAssignment.Descriptor,
        HttpConnectionManager.Descriptor, Router.Descriptor);

    public static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithTypeRegistry(Registry));
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true).WithTypeRegistry(Registry));

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/v3/discovery:{kind}", async (string kind, HttpContext http, SnapshotCache cache) =>
        {
            if (!Paths.TryGetValue(kind, out var typeUrl))
            {
                return Results.Text($"unknown discovery type \"{kind}\"; use one of: {string.Join(", ", Paths.Keys)}\n", statusCode: 404);
            }
            DiscoveryRequest request;
            try
            {
                using var reader = new StreamReader(http.Request.Body);
                var body = await reader.ReadToEndAsync(http.RequestAborted).ConfigureAwait(false);
                request = string.IsNullOrWhiteSpace(body) ? new DiscoveryRequest() : Parser.Parse<DiscoveryRequest>(body);
            }
            catch (InvalidProtocolBufferException ex)
            {
                return Results.Text($"the body is not a DiscoveryRequest in JSON: {ex.Message}\n", statusCode: 400);
            }
            if (!string.IsNullOrEmpty(request.TypeUrl) && request.TypeUrl != typeUrl)
            {
                return Results.Text($"type_url {request.TypeUrl} does not match /v3/discovery:{kind} ({typeUrl})\n", statusCode: 400);
            }
            if (!cache.HasPublished)
            {
                // An empty answer would read as "everything deleted" to the caller.
                return Results.Text("the control plane is starting and has no configuration yet; retry shortly\n", statusCode: 503);
            }
            var snapshot = cache.Current;
            var names = request.ResourceNames.Where(n => n != "*").ToList();
            var wildcard = names.Count == 0 || request.ResourceNames.Contains("*");
            var (selected, version) = SotwStream.Select(snapshot, typeUrl, wildcard, names);
            if (request.VersionInfo == version)
            {
                return Results.StatusCode(StatusCodes.Status304NotModified);
            }
            var response = new DiscoveryResponse { TypeUrl = typeUrl, VersionInfo = version };
            response.Resources.AddRange(selected.Select(r => r.Any));
            return Results.Text(Formatter.Format(response), "application/json");
        });
    }
}
