using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Proxy.Telemetry;
using Trellis.Proxy.XdsClient;

namespace Trellis.Proxy.Admin;

public sealed record ConfigDump(string Version, bool Ready, bool Draining, ConnectionDump Connection,
    IReadOnlyList<ListenerDump> Listeners, IReadOnlyList<RouteTableDump> RouteTables, IReadOnlyList<ClusterDump> Clusters);

public sealed record ConnectionDump(bool Connected, string? Address, string? LastError, DateTimeOffset Since, string? LastNack);

public sealed record ListenerDump(string Name, string Address, string Direction, IReadOnlyList<ChainDump> Chains, ChainDump? DefaultChain);

public sealed record ChainDump(string Name, int? DestinationPort, string? RouteTable, string? TcpCluster);

public sealed record RouteTableDump(string Name, IReadOnlyList<VirtualHostDump> VirtualHosts);

public sealed record VirtualHostDump(string Name, IReadOnlyList<string> Domains, IReadOnlyList<RouteDump> Routes);

public sealed record RouteDump(string Name, string PathMatch, string Path, IReadOnlyList<WeightedClusterDump> Clusters, int? DirectResponseStatus, bool Redirect)
{
    /// <summary>Header matches (":method" is the request method), then query parameter matches.</summary>
    public IReadOnlyList<HeaderMatchDump>? Headers { get; init; }
    public IReadOnlyList<HeaderMatchDump>? QueryParameters { get; init; }
    public FaultDump? Fault { get; init; }
    public RateLimitDump? RateLimit { get; init; }
}

public sealed record HeaderMatchDump(string Name, string? Exact, string? Regex, bool Invert);

public sealed record FaultDump(double DelayPercent, double DelaySeconds, double AbortPercent, int AbortHttpStatus, int? AbortGrpcStatus);

public sealed record RateLimitDump(int MaxTokens, int TokensPerFill, double FillIntervalSeconds);

public sealed record CircuitBreakerDump(int MaxConnections, int MaxPendingRequests, int MaxRequests, int MaxRetries, double? RetryBudgetPercent);

public sealed record WeightedClusterDump(string Cluster, int Weight);

public sealed record ClusterDump(string Name, string LoadBalancer, double ConnectTimeoutSeconds, IReadOnlyList<EndpointDump> Endpoints)
{
    public CircuitBreakerDump? CircuitBreakers { get; init; }
    public int? MaxRequestsPerConnection { get; init; }

    /// <summary>Requests in flight (null when the cluster has no runtime yet: no request used it).</summary>
    public int? ActiveRequests { get; init; }

    /// <summary>Retries in flight.</summary>
    public int? ActiveRetries { get; init; }

    /// <summary>TLS origination to the endpoints (absent: plaintext). Never key material.</summary>
    public UpstreamTlsDump? Tls { get; init; }
}

/// <summary>A cluster's upstream TLS: SNI (absent: none; the endpoint IP is checked), ALPN listed, how the certificate is checked and against what.</summary>
public sealed record UpstreamTlsDump(string? Sni, IReadOnlyList<string> Alpn, string Trust, string TrustSource);

/// <summary>An endpoint; the nullable fields come from the cluster's runtime and are left out when it has none.</summary>
public sealed record EndpointDump(string Address, int Weight, string Health, int Priority, string Region, string Zone)
{
    /// <summary>Ejected by outlier detection.</summary>
    public bool? Ejected { get; init; }

    public DateTimeOffset? EjectedUntil { get; init; }

    public int? TimesEjected { get; init; }

    /// <summary>Tries in flight.</summary>
    public int? Outstanding { get; init; }

    /// <summary>Peak-EWMA latency estimate in milliseconds (absent before the first response).</summary>
    public double? EwmaMs { get; init; }
}

public sealed record ClustersDump(string Version, IReadOnlyList<ClusterDump> Clusters);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ConfigDump))]
[JsonSerializable(typeof(ClustersDump))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;

/// <summary>
/// The admin endpoint (localhost only by default): /ready, /healthz, /stats/prometheus, /config_dump, /clusters, POST /drain, POST /quitquitquit.
/// </summary>
public sealed class AdminServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly AdsClient _ads;
    private readonly ModelState _state;
    private readonly ClusterRuntimes? _runtimes;
    private readonly TaskCompletionSource _quit = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _draining;

    private AdminServer(WebApplication app, AdsClient ads, ClusterRuntimes? runtimes)
    {
        _app = app;
        _ads = ads;
        _state = ads.State;
        _runtimes = runtimes;
    }

    /// <summary>Completes when POST /quitquitquit was answered.</summary>
    public Task QuitRequested => _quit.Task;

    public bool Draining => _draining;

    /// <summary>The address actually bound (port 0 resolves to the chosen port).</summary>
    public IPEndPoint Address { get; private set; } = new(IPAddress.Loopback, 0);

    public static Task<AdminServer> StartAsync(IPEndPoint address, AdsClient ads, ILoggerFactory? loggerFactory = null, CancellationToken ct = default) =>
        StartAsync(address, ads, runtimes: null, loggerFactory, ct);

    /// <param name="runtimes">The proxy's cluster runtimes: /clusters and /config_dump then show ejections, tries in flight and latency.</param>
    internal static async Task<AdminServer> StartAsync(IPEndPoint address, AdsClient ads, ClusterRuntimes? runtimes, ILoggerFactory? loggerFactory = null, CancellationToken ct = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (loggerFactory is not null)
        {
            builder.Services.AddSingleton(loggerFactory);
        }
        builder.WebHost.ConfigureKestrel(k => k.Listen(address));
        builder.Services.AddProxyMetrics();
        var app = builder.Build();
        var server = new AdminServer(app, ads, runtimes);
        server.Map();
        await app.StartAsync(ct).ConfigureAwait(false);
        var bound = app.Urls.FirstOrDefault();
        server.Address = bound is not null && Uri.TryCreate(bound, UriKind.Absolute, out var uri)
            ? new IPEndPoint(address.Address, uri.Port)
            : address;
        return server;
    }

    /// <summary>Marks the proxy draining: /ready answers 503 "draining" from now on.</summary>
    public void Drain() => _draining = true;

    /// <summary>The /ready decision: status code and body.</summary>
    public (int Status, string Body) Readiness()
    {
        if (_draining)
        {
            return (503, "draining\n");
        }
        var status = _ads.Status;
        if (!_state.IsReady)
        {
            var reason = status.Connected
                ? $"not ready: waiting for the first complete config from {status.Address}"
                : $"not ready: no config yet; control plane {status.Address ?? "(none tried yet)"}: {status.LastError}";
            return (503, reason + "\n");
        }
        if (!status.Connected)
        {
            return (200, $"ready: control plane unreachable since {status.Since.ToString("O", CultureInfo.InvariantCulture)} ({status.LastError}); serving last good config version {_state.Current.Version}\n");
        }
        return (200, "ready\n");
    }

    private void Map()
    {
        _app.MapGet("/ready", (RequestDelegate)(ctx =>
        {
            var (code, body) = Readiness();
            return Text(ctx, code, body);
        }));
        _app.MapPrometheusScrapingEndpoint("/stats/prometheus");
        _app.MapGet("/healthz", (RequestDelegate)(ctx => Text(ctx, 200, "ok\n")));
        _app.MapGet("/config_dump", (RequestDelegate)(ctx =>
        {
            ctx.Response.ContentType = "application/json";
            return JsonSerializer.SerializeAsync(ctx.Response.Body, BuildDump(), AdminJsonContext.Default.ConfigDump, ctx.RequestAborted);
        }));
        _app.MapGet("/clusters", (RequestDelegate)(ctx =>
        {
            var model = _state.Current;
            ctx.Response.ContentType = "application/json";
            return JsonSerializer.SerializeAsync(ctx.Response.Body, new ClustersDump(model.Version, Clusters(model)), AdminJsonContext.Default.ClustersDump, ctx.RequestAborted);
        }));
        _app.MapPost("/drain", (RequestDelegate)(ctx =>
        {
            Drain();
            return Text(ctx, 200, "draining\n");
        }));
        _app.MapPost("/quitquitquit", (RequestDelegate)(ctx =>
        {
            ctx.Response.OnCompleted(() =>
            {
                _quit.TrySetResult();
                return Task.CompletedTask;
            });
            return Text(ctx, 200, "OK\n");
        }));
    }

    private static Task Text(HttpContext ctx, int status, string body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        return ctx.Response.WriteAsync(body, ctx.RequestAborted);
    }

    public ConfigDump BuildDump()
    {
        var model = _state.Current;
        var s = _ads.Status;
        var listeners = model.Listeners.Values.OrderBy(l => l.Name, StringComparer.Ordinal)
            .Select(l => new ListenerDump(l.Name, l.Address.ToString(), l.Direction.ToString().ToLowerInvariant(),
                [.. l.Chains.Select(Chain)], l.DefaultChain is null ? null : Chain(l.DefaultChain)))
            .ToList();
        var routes = model.Routes.Values.OrderBy(r => r.Name, StringComparer.Ordinal)
            .Select(r => new RouteTableDump(r.Name, [.. r.VirtualHosts.Select(v => new VirtualHostDump(v.Name, v.Domains,
                [.. v.Routes.Select(Route)]))]))
            .ToList();
        return new ConfigDump(model.Version, _state.IsReady, _draining, new ConnectionDump(s.Connected, s.Address, s.LastError, s.Since, s.LastNack),
            listeners, routes, Clusters(model));
    }

    private static ChainDump Chain(FilterChainModel c) => new(c.Name, c.DestinationPort, c.RouteTableName, c.TcpCluster);

    private static RouteDump Route(RouteModel x) =>
        new(x.Name, x.Match.PathKind.ToString().ToLowerInvariant(), x.Match.Path,
            [.. x.Clusters.Select(c => new WeightedClusterDump(c.Cluster, c.Weight))], x.DirectResponseStatus, x.Redirect is not null)
        {
            Headers = x.Match.Headers.Count == 0 ? null : [.. x.Match.Headers.Select(h => new HeaderMatchDump(h.Name, h.Exact, h.Regex, h.Invert))],
            QueryParameters = x.Match.QueryParameters.Count == 0 ? null : [.. x.Match.QueryParameters.Select(h => new HeaderMatchDump(h.Name, h.Exact, h.Regex, h.Invert))],
            Fault = x.Fault is { } f ? new FaultDump(f.DelayPercent, f.Delay.TotalSeconds, f.AbortPercent, f.AbortHttpStatus, f.AbortGrpcStatus) : null,
            RateLimit = x.RateLimit is { } r ? new RateLimitDump(r.MaxTokens, r.TokensPerFill, r.FillInterval.TotalSeconds) : null,
        };

    private List<ClusterDump> Clusters(ProxyModel model) =>
        [.. model.Clusters.Values.OrderBy(c => c.Name, StringComparer.Ordinal).Select(c => Cluster(c, _runtimes?.Find(c.Name)))];

    /// <summary>A cluster of the model, with its runtime's view of each endpoint when it has a runtime.</summary>
    internal static ClusterDump Cluster(ClusterModel c, ClusterRuntime? runtime)
    {
        var live = new Dictionary<IPEndPoint, EndpointStatus>();
        if (runtime is not null)
        {
            foreach (var s in runtime.Describe())
            {
                live.TryAdd(s.Address, s);
            }
        }
        var endpoints = new List<EndpointDump>(c.Endpoints.Count);
        foreach (var e in c.Endpoints)
        {
            var dump = new EndpointDump(e.Address.ToString(), e.Weight, e.Health.ToString().ToLowerInvariant(), e.Priority, e.Region, e.Zone);
            if (live.TryGetValue(e.Address, out var s))
            {
                dump = dump with
                {
                    Ejected = s.Ejected,
                    EjectedUntil = s.EjectedUntil,
                    TimesEjected = s.TimesEjected,
                    Outstanding = s.Outstanding,
                    EwmaMs = s.EwmaMs is double ms ? Math.Round(ms, 3) : null,
                };
            }
            endpoints.Add(dump);
        }
        return new ClusterDump(c.Name, c.LoadBalancer.ToString(), c.ConnectTimeout.TotalSeconds, endpoints)
        {
            CircuitBreakers = new CircuitBreakerDump(c.CircuitBreakers.MaxConnections, c.CircuitBreakers.MaxPendingRequests,
                c.CircuitBreakers.MaxRequests, c.CircuitBreakers.MaxRetries, c.CircuitBreakers.RetryBudgetPercent),
            MaxRequestsPerConnection = c.MaxRequestsPerConnection,
            ActiveRequests = runtime?.ActiveRequests,
            ActiveRetries = runtime?.ActiveRetries,
            Tls = c.Tls is { } tls ? new UpstreamTlsDump(tls.Sni, tls.Alpn, TrustName(tls.Trust), tls.TrustSource) : null,
        };
    }

    private static string TrustName(UpstreamTrustKind trust) => trust switch
    {
        UpstreamTrustKind.CustomCa => "custom_ca",
        UpstreamTrustKind.AcceptUntrusted => "accept_untrusted",
        _ => "system",
    };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
