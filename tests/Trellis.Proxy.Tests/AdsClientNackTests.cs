using System.Net;
using System.Threading.Channels;
using Envoy.Config.Core.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Extensions.Filters.Network.TcpProxy.V3;
using Envoy.Service.Discovery.V3;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Trellis.Xds;
using Xunit;
using EnvoyCluster = Envoy.Config.Cluster.V3.Cluster;

namespace Trellis.Proxy.Tests;

/// <summary>A scripted delta ADS server: sends a good CDS and LDS, then (after the LDS ACK) a listener with a bad address.</summary>
internal sealed class ScriptedAdsServer : AggregatedDiscoveryService.AggregatedDiscoveryServiceBase
{
    public Channel<DeltaDiscoveryRequest> Requests { get; } = Channel.CreateUnbounded<DeltaDiscoveryRequest>();

    public static Listener TcpListener(string ip) => new()
    {
        Name = "l",
        Address = new Address { SocketAddress = new Envoy.Config.Core.V3.SocketAddress { Address = ip, PortValue = 15001 } },
        DefaultFilterChain = new FilterChain { Name = "tcp", Filters = { new Filter { Name = "tcp", TypedConfig = Any.Pack(new TcpProxy { StatPrefix = "web", Cluster = "web" }) } } },
    };

    private static DeltaDiscoveryResponse Response(string type, string nonce, string name, string version, Google.Protobuf.IMessage msg) =>
        new() { TypeUrl = type, Nonce = nonce, SystemVersionInfo = version, Resources = { new Resource { Name = name, Version = version, Resource_ = Any.Pack(msg) } } };

    public override async Task DeltaAggregatedResources(IAsyncStreamReader<DeltaDiscoveryRequest> requestStream, IServerStreamWriter<DeltaDiscoveryResponse> responseStream, ServerCallContext context)
    {
        var cluster = new EnvoyCluster
        {
            Name = "web",
            Type = EnvoyCluster.Types.DiscoveryType.Static,
            LoadAssignment = ModelCompilerTests.Cla("web", "127.0.0.1", 18080),
        };
        await responseStream.WriteAsync(Response(TypeUrls.Cluster, "1", "web", "v1", cluster));
        await responseStream.WriteAsync(Response(TypeUrls.Listener, "2", "l", "v1", TcpListener("0.0.0.0")));
        var sentBad = false;
        await foreach (var req in requestStream.ReadAllAsync(context.CancellationToken))
        {
            Requests.Writer.TryWrite(req);
            if (req.ResponseNonce == "2" && req.ErrorDetail is null && !sentBad)
            {
                sentBad = true;
                await responseStream.WriteAsync(Response(TypeUrls.Listener, "3", "l", "v2", TcpListener("localhost")));
            }
        }
    }
}

public sealed class AdsClientNackTests
{
    [Fact]
    public async Task RunAsync_ListenerWithBadAddress_NacksWithPreciseErrorAndKeepsLastGoodModel()
    {
        var script = new ScriptedAdsServer();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(script);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
        await using var app = builder.Build();
        app.MapGrpcService<ScriptedAdsServer>();
        await app.StartAsync();
        var address = new Uri(app.Urls.First()).Authority;
        await using var proxy = ProxyHarness.Start([address]);

        var good = await proxy.WaitAsync(s => s.IsReady, "the good config");
        Assert.Equal(18080, good.Clusters["web"].Endpoints[0].Address.Port);

        DeltaDiscoveryRequest? nack = null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await foreach (var req in script.Requests.Reader.ReadAllAsync(timeout.Token))
        {
            if (req.ResponseNonce == "3")
            {
                nack = req;
                break;
            }
        }

        Assert.NotNull(nack!.ErrorDetail);
        Assert.Equal(TypeUrls.Listener, nack.TypeUrl);
        Assert.Equal("listener l: address.socket_address.address: 'localhost' is not an IP literal", nack.ErrorDetail.Message);
        Assert.Same(good, proxy.State.Current);
        Assert.Equal(1, proxy.Client.NackCount);
        Assert.Contains("LDS: listener l", proxy.Client.Status.LastNack, StringComparison.Ordinal);
    }
}
