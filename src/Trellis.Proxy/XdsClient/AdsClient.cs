using System.Net;
using Envoy.Config.Core.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Service.Discovery.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Model;
using Trellis.Xds;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;

namespace Trellis.Proxy.XdsClient;

/// <summary>The client's link to the control plane, as the admin API shows it.</summary>
public sealed record XdsConnectionStatus(bool Connected, string? Address, string? LastError, DateTimeOffset Since, string? LastNack);

/// <summary>What the ADS client needs to know: who it is and where the control planes are.</summary>
public sealed record AdsClientSettings(string NodeId, string Service, string Namespace, IReadOnlyList<DnsEndPoint> ControlPlanes, XdsProtocol Protocol)
{
    /// <summary>The workload's locality, sent as the node's; empty parts are left out.</summary>
    public string Region { get; init; } = "";
    public string Zone { get; init; } = "";
    public string SubZone { get; init; } = "";

    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// Aggregated discovery client: one stream at a time (delta by default, state of the world as the fallback mode),
/// LDS and CDS wildcard, RDS and EDS by the names the listeners and clusters reference. Each response is applied to a
/// candidate, compiled, and ACKed and swapped in, or NACKed with the compiler's errors while the last good model stays.
/// </summary>
public sealed partial class AdsClient
{
    private static readonly string[] WildcardTypes = [TypeUrls.Listener, TypeUrls.Cluster];

    private readonly AdsClientSettings _settings;
    private readonly ModelState _state;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly ILogger _log;
    private readonly Func<DnsEndPoint, GrpcChannel> _channelFactory;

    private XdsResources _resources = XdsResources.Empty;
    private volatile XdsConnectionStatus _status;
    private int _failures;
    private bool _unreachableLogged;

    public AdsClient(AdsClientSettings settings, ModelState state, ILogger<AdsClient> log, TimeProvider? time = null, Random? random = null)
        : this(settings, state, log, time, random, null)
    {
    }

    internal AdsClient(AdsClientSettings settings, ModelState state, ILogger log, TimeProvider? time, Random? random, Func<DnsEndPoint, GrpcChannel>? channelFactory)
    {
        if (settings.ControlPlanes.Count == 0)
        {
            throw new ArgumentException("at least one control-plane address is needed", nameof(settings));
        }
        _settings = settings;
        _state = state;
        _log = log;
        _time = time ?? TimeProvider.System;
        _random = random ?? Random.Shared;
        _channelFactory = channelFactory ?? CreateChannel;
        _status = new XdsConnectionStatus(false, null, "not connected yet", _time.GetUtcNow(), null);
    }

    public XdsConnectionStatus Status => _status;

    public ModelState State => _state;

    /// <summary>Number of NACKs sent (for tests and stats).</summary>
    public int NackCount => Volatile.Read(ref _nackCount);

    private int _nackCount;

    /// <summary>Runs until cancelled: connect, stream, on failure back off and fail over to the next address.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var index = 0;
        while (!ct.IsCancellationRequested)
        {
            var ep = _settings.ControlPlanes[index];
            var address = $"{FormatHost(ep)}:{ep.Port}";
            try
            {
                using var channel = _channelFactory(ep);
                var client = new AggregatedDiscoveryService.AggregatedDiscoveryServiceClient(channel);
                if (_settings.Protocol == XdsProtocol.Delta)
                {
                    await RunDeltaAsync(client, address, ct).ConfigureAwait(false);
                }
                else
                {
                    await RunSotwAsync(client, address, ct).ConfigureAwait(false);
                }
                Disconnected(address, "stream closed by the control plane");
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                // Shutting down: the stream ended because we asked it to, not because the control plane went away.
                break;
            }
            catch (Exception e) when (e is RpcException or IOException or HttpRequestException or InvalidOperationException or ObjectDisposedException)
            {
                Disconnected(address, e is RpcException re ? $"{re.StatusCode}: {re.Status.Detail}" : e.Message);
            }
            index = (index + 1) % _settings.ControlPlanes.Count;
            var delay = Backoff(_failures++, _settings.InitialBackoff, _settings.MaxBackoff, _random);
            try
            {
                await Task.Delay(delay, _time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>Full-jitter exponential backoff: a random delay in [d/2, d] with d = min(max, initial * 2^attempt).</summary>
    internal static TimeSpan Backoff(int attempt, TimeSpan initial, TimeSpan max, Random random)
    {
        var d = initial.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30));
        d = Math.Min(d, max.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(d / 2 + random.NextDouble() * d / 2);
    }

    private void Connected(string address)
    {
        if (!_status.Connected || _status.Address != address)
        {
            _status = new XdsConnectionStatus(true, address, null, _time.GetUtcNow(), _status.LastNack);
            LogConnected(_log, address);
        }
        _failures = 0;
        _unreachableLogged = false;
    }

    private void Disconnected(string address, string error)
    {
        var wasConnected = _status.Connected;
        _status = new XdsConnectionStatus(false, address, error, wasConnected ? _time.GetUtcNow() : _status.Since, _status.LastNack);
        if (wasConnected || !_unreachableLogged)
        {
            _unreachableLogged = true;
            var version = _state.Current.Version;
            if (version.Length > 0)
            {
                LogUnreachable(_log, version, error);
            }
            else
            {
                LogUnreachableNoConfig(_log, error);
            }
        }
    }

    private Node BuildNode()
    {
        var metadata = new Struct();
        metadata.Fields["trellis.proxy"] = Value.ForString("sidecar");
        metadata.Fields["trellis.service"] = Value.ForString(_settings.Service);
        metadata.Fields["trellis.namespace"] = Value.ForString(_settings.Namespace);
        var node = new Node
        {
            Id = _settings.NodeId,
            Cluster = $"{_settings.Service}.{_settings.Namespace}",
            Metadata = metadata,
            UserAgentName = "trellis-proxy",
            UserAgentVersion = typeof(AdsClient).Assembly.GetName().Version?.ToString() ?? "0",
        };
        if (_settings.Region.Length + _settings.Zone.Length + _settings.SubZone.Length > 0)
        {
            node.Locality = new Locality { Region = _settings.Region, Zone = _settings.Zone, SubZone = _settings.SubZone };
        }
        return node;
    }

    // ---- delta ----------------------------------------------------------------------------------------------

    private async Task RunDeltaAsync(AggregatedDiscoveryService.AggregatedDiscoveryServiceClient client, string address, CancellationToken ct)
    {
        using var call = client.DeltaAggregatedResources(cancellationToken: ct);
        var node = BuildNode();
        var subscribed = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal)
        {
            [TypeUrls.RouteConfiguration] = new(StringComparer.Ordinal),
            [TypeUrls.ClusterLoadAssignment] = new(StringComparer.Ordinal),
        };
        var first = true;
        foreach (var type in WildcardTypes)
        {
            var req = new DeltaDiscoveryRequest { TypeUrl = type, ResourceNamesSubscribe = { "*" } };
            foreach (var (name, version) in HeldVersions(type))
            {
                req.InitialResourceVersions[name] = version;
            }
            if (first)
            {
                req.Node = node;
                first = false;
            }
            await call.RequestStream.WriteAsync(req, ct).ConfigureAwait(false);
        }
        // Named subscriptions for what we already hold (reconnect).
        var compiled = ModelCompiler.Compile(_resources);
        await UpdateDeltaSubscriptionsAsync(call.RequestStream, subscribed, compiled, initial: true, ct).ConfigureAwait(false);
        // The control plane answers with headers at once; after a reconnect it may send nothing else (we are up to date).
        await call.ResponseHeadersAsync.WaitAsync(ct).ConfigureAwait(false);
        Connected(address);

        while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
        {
            var response = call.ResponseStream.Current;
            Connected(address);
            var (candidate, decodeError) = ApplyDelta(_resources, response);
            var result = decodeError is null ? ModelCompiler.Compile(candidate) : null;
            var error = decodeError ?? (result!.IsValid ? null : string.Join("; ", result.Errors));
            if (error is not null)
            {
                Nacked(response.TypeUrl, error);
                await call.RequestStream.WriteAsync(new DeltaDiscoveryRequest
                {
                    TypeUrl = response.TypeUrl,
                    ResponseNonce = response.Nonce,
                    ErrorDetail = new Google.Rpc.Status { Code = (int)StatusCode.InvalidArgument, Message = error },
                }, ct).ConfigureAwait(false);
                continue;
            }
            Accept(candidate, result!);
            await call.RequestStream.WriteAsync(new DeltaDiscoveryRequest { TypeUrl = response.TypeUrl, ResponseNonce = response.Nonce }, ct).ConfigureAwait(false);
            await UpdateDeltaSubscriptionsAsync(call.RequestStream, subscribed, result!, initial: false, ct).ConfigureAwait(false);
        }
    }

    private async Task UpdateDeltaSubscriptionsAsync(IClientStreamWriter<DeltaDiscoveryRequest> writer, Dictionary<string, HashSet<string>> subscribed,
        CompileResult result, bool initial, CancellationToken ct)
    {
        foreach (var (type, wanted) in new[] { (TypeUrls.RouteConfiguration, result.RouteNames), (TypeUrls.ClusterLoadAssignment, result.EdsNames) })
        {
            var current = subscribed[type];
            var add = wanted.Where(n => !current.Contains(n)).ToList();
            var remove = current.Where(n => !wanted.Contains(n, StringComparer.Ordinal)).ToList();
            if (add.Count == 0 && remove.Count == 0)
            {
                continue;
            }
            var req = new DeltaDiscoveryRequest { TypeUrl = type };
            req.ResourceNamesSubscribe.AddRange(add);
            req.ResourceNamesUnsubscribe.AddRange(remove);
            if (initial)
            {
                foreach (var (name, version) in HeldVersions(type))
                {
                    req.InitialResourceVersions[name] = version;
                }
            }
            current.UnionWith(add);
            current.ExceptWith(remove);
            await writer.WriteAsync(req, ct).ConfigureAwait(false);
            if (remove.Count > 0)
            {
                _resources = Without(_resources, type, remove);
            }
        }
    }

    internal static (XdsResources Candidate, string? Error) ApplyDelta(XdsResources current, DeltaDiscoveryResponse response)
    {
        var type = response.TypeUrl;
        try
        {
            switch (type)
            {
                case TypeUrls.Listener:
                    return (current with { Listeners = Merge(current.Listeners, response, Listener.Parser) }, null);
                case TypeUrls.RouteConfiguration:
                    return (current with { Routes = Merge(current.Routes, response, RouteConfiguration.Parser) }, null);
                case TypeUrls.Cluster:
                    return (current with { Clusters = Merge(current.Clusters, response, EnvoyCluster.Parser), ClustersReceived = true }, null);
                case TypeUrls.ClusterLoadAssignment:
                    return (current with { Endpoints = Merge(current.Endpoints, response, ClusterLoadAssignment.Parser) }, null);
                default:
                    return (current, $"type {type} was not subscribed to");
            }
        }
        catch (DecodeException e)
        {
            return (current, e.Message);
        }
    }

    private sealed class DecodeException(string message) : Exception(message);

    private static Dictionary<string, XdsEntry<T>> Merge<T>(IReadOnlyDictionary<string, XdsEntry<T>> current, DeltaDiscoveryResponse response, MessageParser<T> parser)
        where T : IMessage<T>
    {
        var next = new Dictionary<string, XdsEntry<T>>(current, StringComparer.Ordinal);
        foreach (var r in response.Resources)
        {
            next[r.Name] = new XdsEntry<T>(r.Version, Unpack(r.Name, r.Resource_, response.TypeUrl, parser));
        }
        foreach (var name in response.RemovedResources)
        {
            next.Remove(name);
        }
        return next;
    }

    private static T Unpack<T>(string name, Any? any, string typeUrl, MessageParser<T> parser) where T : IMessage<T>
    {
        if (any is null)
        {
            throw new DecodeException($"resource {name}: resource body is missing");
        }
        if (any.TypeUrl != typeUrl)
        {
            throw new DecodeException($"resource {name}: type {any.TypeUrl} in a {typeUrl} response");
        }
        try
        {
            return parser.ParseFrom(any.Value);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new DecodeException($"resource {name}: does not decode as {typeUrl}: {e.Message}");
        }
    }

    private IEnumerable<(string Name, string Version)> HeldVersions(string type) => type switch
    {
        TypeUrls.Listener => _resources.Listeners.Select(p => (p.Key, p.Value.Version)),
        TypeUrls.RouteConfiguration => _resources.Routes.Select(p => (p.Key, p.Value.Version)),
        TypeUrls.Cluster => _resources.Clusters.Select(p => (p.Key, p.Value.Version)),
        TypeUrls.ClusterLoadAssignment => _resources.Endpoints.Select(p => (p.Key, p.Value.Version)),
        _ => [],
    };

    private static XdsResources Without(XdsResources r, string type, IReadOnlyCollection<string> names)
    {
        static Dictionary<string, XdsEntry<T>> Drop<T>(IReadOnlyDictionary<string, XdsEntry<T>> d, IReadOnlyCollection<string> names)
        {
            var next = new Dictionary<string, XdsEntry<T>>(d, StringComparer.Ordinal);
            foreach (var n in names)
            {
                next.Remove(n);
            }
            return next;
        }
        return type switch
        {
            TypeUrls.RouteConfiguration => r with { Routes = Drop(r.Routes, names) },
            TypeUrls.ClusterLoadAssignment => r with { Endpoints = Drop(r.Endpoints, names) },
            _ => r,
        };
    }

    private void Accept(XdsResources candidate, CompileResult result)
    {
        _resources = candidate;
        if (result.Model.Version != _state.Current.Version || (result.Complete && !_state.IsReady))
        {
            _state.Swap(result.Model, result.Complete);
            LogApplied(_log, result.Model.Version, result.Complete, result.Model.Listeners.Count, result.Model.Clusters.Count);
            foreach (var warning in result.Warnings)
            {
                LogConfigWarning(_log, warning);
            }
        }
    }

    private void Nacked(string typeUrl, string error)
    {
        Interlocked.Increment(ref _nackCount);
        var text = $"{TypeUrls.ShortName(typeUrl)}: {error}";
        _status = _status with { LastNack = text };
        LogNack(_log, text, _state.Current.Version);
    }

    // ---- state of the world ---------------------------------------------------------------------------------

    private sealed class SotwType
    {
        public string Version = "";
        public string Nonce = "";
        public List<string> Names = [];
    }

    private async Task RunSotwAsync(AggregatedDiscoveryService.AggregatedDiscoveryServiceClient client, string address, CancellationToken ct)
    {
        using var call = client.StreamAggregatedResources(cancellationToken: ct);
        var types = new Dictionary<string, SotwType>(StringComparer.Ordinal)
        {
            [TypeUrls.Listener] = new(),
            [TypeUrls.Cluster] = new(),
            [TypeUrls.RouteConfiguration] = new(),
            [TypeUrls.ClusterLoadAssignment] = new(),
        };
        var node = BuildNode();
        var first = true;
        foreach (var type in WildcardTypes)
        {
            var req = new DiscoveryRequest { TypeUrl = type };
            if (first)
            {
                req.Node = node;
                first = false;
            }
            await call.RequestStream.WriteAsync(req, ct).ConfigureAwait(false);
        }
        await UpdateSotwSubscriptionsAsync(call.RequestStream, types, ModelCompiler.Compile(_resources), ct).ConfigureAwait(false);
        await call.ResponseHeadersAsync.WaitAsync(ct).ConfigureAwait(false);
        Connected(address);

        while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
        {
            var response = call.ResponseStream.Current;
            Connected(address);
            if (!types.TryGetValue(response.TypeUrl, out var st))
            {
                continue;
            }
            st.Nonce = response.Nonce;
            var (candidate, decodeError) = ApplySotw(_resources, response, st.Names);
            var result = decodeError is null ? ModelCompiler.Compile(candidate) : null;
            var error = decodeError ?? (result!.IsValid ? null : string.Join("; ", result.Errors));
            var req = new DiscoveryRequest { TypeUrl = response.TypeUrl, ResponseNonce = response.Nonce };
            if (response.TypeUrl is TypeUrls.RouteConfiguration or TypeUrls.ClusterLoadAssignment)
            {
                req.ResourceNames.AddRange(st.Names);
            }
            if (error is not null)
            {
                req.VersionInfo = st.Version;
                req.ErrorDetail = new Google.Rpc.Status { Code = (int)StatusCode.InvalidArgument, Message = error };
                Nacked(response.TypeUrl, error);
                await call.RequestStream.WriteAsync(req, ct).ConfigureAwait(false);
                continue;
            }
            st.Version = response.VersionInfo;
            req.VersionInfo = response.VersionInfo;
            Accept(candidate, result!);
            await call.RequestStream.WriteAsync(req, ct).ConfigureAwait(false);
            await UpdateSotwSubscriptionsAsync(call.RequestStream, types, result!, ct).ConfigureAwait(false);
        }
    }

    private async Task UpdateSotwSubscriptionsAsync(IClientStreamWriter<DiscoveryRequest> writer, Dictionary<string, SotwType> types, CompileResult result, CancellationToken ct)
    {
        foreach (var (type, wanted) in new[] { (TypeUrls.RouteConfiguration, result.RouteNames), (TypeUrls.ClusterLoadAssignment, result.EdsNames) })
        {
            var st = types[type];
            if (st.Names.SequenceEqual(wanted, StringComparer.Ordinal))
            {
                continue;
            }
            var removed = st.Names.Except(wanted, StringComparer.Ordinal).ToList();
            st.Names = [.. wanted];
            var req = new DiscoveryRequest { TypeUrl = type, VersionInfo = st.Version, ResponseNonce = st.Nonce };
            req.ResourceNames.AddRange(st.Names);
            await writer.WriteAsync(req, ct).ConfigureAwait(false);
            if (removed.Count > 0)
            {
                _resources = Without(_resources, type, removed);
            }
        }
    }

    internal static (XdsResources Candidate, string? Error) ApplySotw(XdsResources current, DiscoveryResponse response, IReadOnlyList<string> subscribed)
    {
        var type = response.TypeUrl;
        try
        {
            switch (type)
            {
                case TypeUrls.Listener:
                    return (current with { Listeners = Replace(response, Listener.Parser, l => l.Name, null) }, null);
                case TypeUrls.Cluster:
                    return (current with { Clusters = Replace(response, EnvoyCluster.Parser, c => c.Name, null), ClustersReceived = true }, null);
                case TypeUrls.RouteConfiguration:
                    return (current with { Routes = Replace(response, RouteConfiguration.Parser, r => r.Name, current.Routes, subscribed) }, null);
                case TypeUrls.ClusterLoadAssignment:
                    return (current with { Endpoints = Replace(response, ClusterLoadAssignment.Parser, e => e.ClusterName, current.Endpoints, subscribed) }, null);
                default:
                    return (current, $"type {type} was not subscribed to");
            }
        }
        catch (DecodeException e)
        {
            return (current, e.Message);
        }
    }

    /// <summary>LDS and CDS: the response is the whole set. RDS and EDS: the response may hold a subset; others stay.</summary>
    private static Dictionary<string, XdsEntry<T>> Replace<T>(DiscoveryResponse response, MessageParser<T> parser, Func<T, string> nameOf,
        IReadOnlyDictionary<string, XdsEntry<T>>? keep, IReadOnlyList<string>? subscribed = null) where T : IMessage<T>
    {
        var next = new Dictionary<string, XdsEntry<T>>(StringComparer.Ordinal);
        if (keep is not null)
        {
            foreach (var (name, entry) in keep)
            {
                if (subscribed is null || subscribed.Contains(name, StringComparer.Ordinal))
                {
                    next[name] = entry;
                }
            }
        }
        for (var i = 0; i < response.Resources.Count; i++)
        {
            var any = response.Resources[i];
            var msg = Unpack($"#{i}", any, response.TypeUrl, parser);
            next[nameOf(msg)] = new XdsEntry<T>(response.VersionInfo, msg);
        }
        return next;
    }

    /// <summary>h2c channel with HTTP/2 keep-alive pings, so a control plane that vanishes without a FIN is noticed.</summary>
    private static GrpcChannel CreateChannel(DnsEndPoint ep) =>
        GrpcChannel.ForAddress($"http://{FormatHost(ep)}:{ep.Port}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = TimeSpan.FromSeconds(5),
                KeepAlivePingDelay = TimeSpan.FromSeconds(15),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            },
            DisposeHttpClient = true,
        });

    private static string FormatHost(DnsEndPoint ep) => ep.Host.Contains(':', StringComparison.Ordinal) ? $"[{ep.Host}]" : ep.Host;

    [LoggerMessage(Level = LogLevel.Information, Message = "connected to control plane {Address}")]
    private static partial void LogConnected(ILogger log, string address);

    [LoggerMessage(Level = LogLevel.Warning, Message = "control plane unreachable; serving last good config version {Version} ({Error})")]
    private static partial void LogUnreachable(ILogger log, string version, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "control plane unreachable; no config yet ({Error})")]
    private static partial void LogUnreachableNoConfig(ILogger log, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "applied config version {Version} (complete: {Complete}, {Listeners} listeners, {Clusters} clusters)")]
    private static partial void LogApplied(ILogger log, string version, bool complete, int listeners, int clusters);

    [LoggerMessage(Level = LogLevel.Warning, Message = "config warning: {Warning}")]
    private static partial void LogConfigWarning(ILogger log, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "rejected config (NACK) {Error}; keeping version {Version}")]
    private static partial void LogNack(ILogger log, string error, string version);
}
