using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Api;
using Trellis.Api.Resources;
using Trellis.ControlPlane.Discovery;
using Trellis.ControlPlane.Store;
using Trellis.ControlPlane.Translation;
using Trellis.ControlPlane.XdsServer;

namespace Trellis.ControlPlane.Admin;

/// <summary>Request body of POST /api/v1/apply and /api/v1/delete.</summary>
public sealed record ApplyRequest(IReadOnlyList<SourceFile> Files, bool DryRun = false);

/// <summary>The REST API under /api/v1: resources, services, proxies, registrations, health.</summary>
internal static class AdminEndpoints
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1");

        api.MapGet("/health", async (IConfigStore store, SnapshotCache cache, ConfigController controller, ProxySyncRegistry proxies, CancellationToken ct) =>
            Results.Json(new
            {
                status = cache.HasPublished ? "serving" : "starting",
                store = store.Description,
                revision = await store.GetRevisionAsync(ct),
                appliedRevision = controller.AppliedRevision,
                snapshot = cache.Current.Version,
                proxies = proxies.Count,
            }, Json));

        api.MapPost("/apply", async (ApplyRequest body, ResourceService resources, CancellationToken ct) =>
            ToResult(await resources.ApplyAsync(body.Files ?? [], body.DryRun, ct)));

        api.MapPost("/delete", async (ApplyRequest body, ResourceService resources, CancellationToken ct) =>
            ToResult(await resources.DeleteFilesAsync(body.Files ?? [], ct)));

        api.MapGet("/kinds", () => Results.Json(ResourceKinds.All.Select(k => new { k.Kind, k.Plural, k.ApiVersion, k.Namespaced, k.Aliases }), Json));

        api.MapGet("/resources/{kind}", async (string kind, string? @namespace, ResourceService resources, CancellationToken ct) =>
        {
            if (!ResourceKinds.TryResolve(kind, out var info))
            {
                return UnknownKind(kind);
            }
            var items = await resources.ListAsync(info, string.IsNullOrEmpty(@namespace) ? null : @namespace, ct);
            return JsonArray("items", items.Select(ResourceJson.Serialize));
        });

        api.MapGet("/resources/{kind}/{name}", async (string kind, string name, string? @namespace, ResourceService resources, CancellationToken ct) =>
        {
            if (!ResourceKinds.TryResolve(kind, out var info))
            {
                return UnknownKind(kind);
            }
            var ns = @namespace ?? "default";
            var r = await resources.GetAsync(info, ns, name, ct);
            return r is null
                ? Error(404, $"{info.Kind} \"{(info.Namespaced ? ns + "/" : "")}{name}\" not found; list them with: trellis get {info.Plural}{(info.Namespaced ? " -A" : "")}")
                : Results.Text(ResourceJson.Serialize(r), "application/json");
        });

        api.MapPut("/resources/{kind}/{name}", async (string kind, string name, string? @namespace, HttpContext http, ResourceService resources, CancellationToken ct) =>
        {
            if (!ResourceKinds.TryResolve(kind, out var info))
            {
                return UnknownKind(kind);
            }
            using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
            var text = await reader.ReadToEndAsync(ct);
            var read = ResourceReader.Read(text, "request body");
            if (!read.Ok)
            {
                return ToResult(new ApplyResult(false, 0, [], read.Errors));
            }
            if (read.Resources.Count != 1 || read.Resources[0].Resource.Kind != info.Kind || read.Resources[0].Resource.Metadata.Name != name)
            {
                return Error(400, $"the body must hold exactly one {info.Kind} named \"{name}\"");
            }
            var resource = read.Resources[0].Resource;
            return ToResult(await resources.PutAsync(resource, resource.Metadata.ResourceVersion, ct));
        });

        api.MapDelete("/resources/{kind}/{name}", async (string kind, string name, string? @namespace, long? resourceVersion, ResourceService resources, CancellationToken ct) =>
        {
            if (!ResourceKinds.TryResolve(kind, out var info))
            {
                return UnknownKind(kind);
            }
            var key = new ResourceKey(info.Kind, info.Namespaced ? @namespace ?? "default" : "", name);
            var result = await resources.DeleteAsync([key], resourceVersion, ct);
            if (result.Ok && result.Resources.All(r => r.Outcome == "not found"))
            {
                return Error(404, $"{key} not found");
            }
            return ToResult(result);
        });

        api.MapGet("/services", (ConfigController controller) =>
        {
            var inputs = controller.CurrentInputs();
            var services = inputs.Services.OrderBy(s => s.Metadata.Namespace, StringComparer.Ordinal).ThenBy(s => s.Metadata.Name, StringComparer.Ordinal)
                .Select(s => new
                {
                    name = s.Metadata.Name,
                    @namespace = s.Metadata.Namespace,
                    ports = s.Spec.Ports.Select(p => new
                    {
                        p.Name,
                        p.Port,
                        protocol = p.Protocol.ToString().ToLowerInvariant(),
                        xdsName = XdsNames.ServicePort(s.Metadata.Name, s.Metadata.Namespace, p.Port),
                        endpoints = EndpointResolver.Resolve(s, p, inputs).Select(e => new
                        {
                            e.Address, e.Port, e.Cluster, e.Region, e.Zone, identity = e.ServiceAccount,
                            health = e.Health.ToString().ToLowerInvariant(), e.Weight, e.Source,
                        }),
                    }),
                });
            return Results.Json(new { items = services }, Json);
        });

        api.MapGet("/proxies", (ProxySyncRegistry proxies, SnapshotCache cache) =>
            Results.Json(new { snapshot = cache.Current.Version, items = proxies.List(cache.Current.Version) }, Json));

        api.MapGet("/proxies/{node}/config", (string node, ProxySyncRegistry proxies, SnapshotCache cache) =>
        {
            if (proxies.Find(node) is not { } connection)
            {
                var connected = proxies.Connections.Select(c => c.NodeId).Distinct().Order(StringComparer.Ordinal).Take(10).ToList();
                return Error(404, $"no proxy with node id \"{node}\" is connected to this control plane; "
                    + (connected.Count == 0 ? "none is connected now" : $"connected now: {string.Join(", ", connected)}")
                    + "; list them with: trellis proxy-status");
            }
            return Results.Json(ProxyConfigView.Build(connection, cache.Current), Json);
        });

        api.MapGet("/registrations", (ConfigController controller, TimeProvider time) =>
        {
            var now = time.GetUtcNow();
            return Results.Json(new
            {
                items = controller.Registrations.OrderBy(r => r.Id, StringComparer.Ordinal)
                    .Select(r => new { registration = r, health = r.HealthAt(now).ToString().ToLowerInvariant() }),
            }, Json);
        });

        api.MapPost("/registrations", async (RegistrationRequest body, RegistrationService registrations, CancellationToken ct) =>
            Outcome(await registrations.RegisterAsync(body, ct)));

        api.MapPut("/registrations/{id}/heartbeat", async (string id, string? @namespace, bool? draining, RegistrationService registrations, CancellationToken ct) =>
            Outcome(await registrations.HeartbeatAsync(@namespace ?? "default", id, draining, ct)));

        api.MapDelete("/registrations/{id}", async (string id, string? @namespace, RegistrationService registrations, CancellationToken ct) =>
            Outcome(await registrations.DeregisterAsync(@namespace ?? "default", id, ct)));
    }

    private static IResult Outcome(RegistrationOutcome o) =>
        o.Registration is null ? Error(o.StatusCode, o.Error ?? "failed") : Results.Json(o.Registration, Json, statusCode: o.StatusCode);

    private static IResult ToResult(ApplyResult r) =>
        Results.Json(new
        {
            ok = r.Ok,
            revision = r.Revision,
            resources = r.Resources,
            errors = r.Errors.Select(e => new { e.File, e.Document, e.Line, e.Column, e.Path, e.Message, text = e.ToString() }),
        }, Json, statusCode: r.Ok ? 200 : r.Errors.Any(e => e.Path == "metadata.resourceVersion") ? 409 : 422);

    private static IResult UnknownKind(string kind) =>
        Error(404, $"unknown kind \"{kind}\"; known kinds: {string.Join(", ", ResourceKinds.All.Select(k => k.Plural))}");

    public static IResult Error(int status, string message) => Results.Json(new { error = message }, Json, statusCode: status);

    private static IResult JsonArray(string property, IEnumerable<string> items) =>
        Results.Text($"{{\"{property}\":[{string.Join(",", items)}]}}", "application/json");
}
