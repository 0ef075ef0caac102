using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Envoy.Service.Discovery.V3;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Trellis.Proxy.Model;
using Trellis.Proxy.XdsClient;
using Trellis.Testing;
using Trellis.Xds;
using Xunit;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;

namespace Trellis.Proxy.Tests;

/// <summary>First stream: sends a good CDS and LDS and ends after the LDS ACK. Later streams: record requests only.</summary>
internal sealed class DroppingAdsServer : AggregatedDiscoveryService.AggregatedDiscoveryServiceBase
{
    private int _streams;

    public Channel<(int Stream, DeltaDiscoveryRequest Request)> Requests { get; } = Channel.CreateUnbounded<(int, DeltaDiscoveryRequest)>();

    public override async Task DeltaAggregatedResources(IAsyncStreamReader<DeltaDiscoveryRequest> requestStream, IServerStreamWriter<DeltaDiscoveryResponse> responseStream, ServerCallContext context)
    {
        var stream = Interlocked.Increment(ref _streams);
        if (stream == 1)
        {
            var cluster = new EnvoyCluster { Name = "web", Type = EnvoyCluster.Types.DiscoveryType.Static, LoadAssignment = ModelCompilerTests.Cla("web", "127.0.0.1", 18080) };
            await responseStream.WriteAsync(new DeltaDiscoveryResponse { TypeUrl = TypeUrls.Cluster, Nonce = "1", Resources = { new Resource { Name = "web", Version = "c1", Resource_ = Any.Pack(cluster) } } });
            await responseStream.WriteAsync(new DeltaDiscoveryResponse { TypeUrl = TypeUrls.Listener, Nonce = "2", Resources = { new Resource { Name = "l", Version = "l1", Resource_ = Any.Pack(ScriptedAdsServer.TcpListener("0.0.0.0")) } } });
        }
        await foreach (var req in requestStream.ReadAllAsync(context.CancellationToken))
        {
            Requests.Writer.TryWrite((stream, req));
            if (stream == 1 && req.ResponseNonce == "2")
            {
                return;
            }
        }
    }
}

public sealed class AdsClientReconnectTests
{
    [Fact]
    public async Task RunAsync_StreamEnds_ReconnectsWithInitialResourceVersionsAndKeepsModel()
    {
        var server = new DroppingAdsServer();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(server);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
        await using var app = builder.Build();
        app.MapGrpcService<DroppingAdsServer>();
        await app.StartAsync();
        await using var proxy = ProxyHarness.Start([new Uri(app.Urls.First()).Authority]);
        var good = await proxy.WaitAsync(s => s.IsReady, "the first config");

        var second = new Dictionary<string, DeltaDiscoveryRequest>(StringComparer.Ordinal);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await foreach (var (stream, req) in server.Requests.Reader.ReadAllAsync(timeout.Token))
        {
            if (stream == 2)
            {
                second.TryAdd(req.TypeUrl, req);
                if (second.ContainsKey(TypeUrls.Listener) && second.ContainsKey(TypeUrls.Cluster))
                {
                    break;
                }
            }
        }

        Assert.Equal("l1", second[TypeUrls.Listener].InitialResourceVersions["l"]);
        Assert.Equal("c1", second[TypeUrls.Cluster].InitialResourceVersions["web"]);
        Assert.Equal("web.default~test~1", second[TypeUrls.Listener].Node?.Id ?? second[TypeUrls.Cluster].Node?.Id);
        Assert.Same(good, proxy.State.Current);
    }

    [Fact]
    public async Task RunAsync_ConnectFails_WaitsBackoffOnClockThenTriesNextAddress()
    {
        var time = new TimerWatchingTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var dialed = new ConcurrentQueue<string>();
        var addresses = new[] { new DnsEndPoint("127.0.0.1", TestControlPlane.FreePort()), new DnsEndPoint("127.0.0.1", TestControlPlane.FreePort()) };
        var settings = new AdsClientSettings("n", "web", "default", addresses, XdsProtocol.Delta) { InitialBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(8) };
        var client = new AdsClient(settings, new ModelState(), NullLogger.Instance, time, new Random(1), ep =>
        {
            dialed.Enqueue($"{ep.Host}:{ep.Port}");
            return GrpcChannel.ForAddress($"http://{ep.Host}:{ep.Port}");
        });
        using var stop = new CancellationTokenSource();
        var run = Task.Run(() => client.RunAsync(stop.Token));

        // The first dial failed and the client now waits its backoff on the fake clock (0.5-1 s for the first try).
        var backoff = await time.NextTimerAsync();
        Assert.InRange(backoff, TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1));
        Assert.Single(dialed);
        Assert.False(client.Status.Connected);

        // Less than the backoff: no second dial (nothing can run until the timer fires).
        time.Advance(backoff - TimeSpan.FromMilliseconds(1));
        Assert.Single(dialed);

        // The backoff passes: the next address is tried.
        time.Advance(TimeSpan.FromMilliseconds(1));
        await Eventually.WaitAsync(() => dialed.Count >= 2, "the second dial");
        Assert.Equal([$"127.0.0.1:{addresses[0].Port}", $"127.0.0.1:{addresses[1].Port}"], dialed.Take(2));

        await stop.CancelAsync();
        await run;
    }
}
