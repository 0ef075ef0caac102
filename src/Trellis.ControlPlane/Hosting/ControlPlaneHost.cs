using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Trellis.ControlPlane.Admin;
using Trellis.ControlPlane.Discovery;
using Trellis.ControlPlane.Store;
using Trellis.ControlPlane.Translation;
using Trellis.ControlPlane.XdsServer;

namespace Trellis.ControlPlane.Hosting;

/// <summary>
/// Composes the control plane: one process, two listeners (gRPC for xDS on 15010, HTTP for the REST API and
/// REST-xDS on 15080), and the internal components wired through dependency injection.
/// </summary>
public static class ControlPlaneHost
{
    public static async Task<WebApplication> BuildAsync(ControlPlaneOptions options, TimeProvider? time = null, Action<ILoggingBuilder>? logging = null, CancellationToken ct = default)
    {
        time ??= TimeProvider.System;
        var store = await OpenStoreAsync(options, time, ct).ConfigureAwait(false);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        logging?.Invoke(builder.Logging);

        var grpc = ParseEndpoint(options.GrpcAddress, "--grpc-address");
        var http = ParseEndpoint(options.HttpAddress, "--http-address");
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(grpc, o => o.Protocols = HttpProtocols.Http2);
            k.Listen(http, o => o.Protocols = HttpProtocols.Http1);
            k.Limits.Http2.MaxStreamsPerConnection = 1000;
        });

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(time);
        builder.Services.AddSingleton<IConfigStore>(store);
        builder.Services.AddSingleton<SnapshotCache>();
        builder.Services.AddSingleton<ProxySyncRegistry>();
        builder.Services.AddSingleton<ConfigController>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ConfigController>());
        builder.Services.AddSingleton<ResourceService>();
        builder.Services.AddSingleton<RegistrationService>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = 16 * 1024 * 1024;
            o.EnableDetailedErrors = true;
        });
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase;
        });

        var app = builder.Build();
        app.MapGrpcService<AdsService>();
        AdminEndpoints.Map(app);
        RestDiscovery.Map(app);
        app.MapGet("/healthz", (SnapshotCache cache) => cache.HasPublished ? "ok\n" : "starting\n");
        app.MapGet("/", () => "Trellis control plane. REST API under /api/v1 (try /api/v1/health), REST-xDS under /v3/discovery:*\n");
        app.Lifetime.ApplicationStopped.Register(() => store.DisposeAsync().AsTask().GetAwaiter().GetResult());
        return app;
    }

    public static async Task<IConfigStore> OpenStoreAsync(ControlPlaneOptions options, TimeProvider time, CancellationToken ct)
    {
        var spec = options.Store ?? "sqlite:" + Path.Combine(options.DataDirectory, "trellis.db");
        if (spec.StartsWith("sqlite:", StringComparison.Ordinal))
        {
            return await SqliteConfigStore.OpenAsync(spec["sqlite:".Length..], time, ct).ConfigureAwait(false);
        }
        if (spec.StartsWith("etcd://", StringComparison.Ordinal))
        {
            throw new ArgumentException($"--store {spec}: the etcd store is not available in this version; use sqlite:PATH");
        }
        throw new ArgumentException($"--store {spec}: expected sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...]");
    }

    internal static IPEndPoint ParseEndpoint(string text, string flag)
    {
        if (text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
        {
            text = "127.0.0.1:" + text["localhost:".Length..];
        }
        if (IPEndPoint.TryParse(text, out var ep) && ep.Port > 0 || (IPEndPoint.TryParse(text, out ep) && text.EndsWith(":0", StringComparison.Ordinal)))
        {
            return ep!;
        }
        throw new ArgumentException($"{flag} {text}: expected IP:PORT, e.g. 127.0.0.1:15010");
    }
}
