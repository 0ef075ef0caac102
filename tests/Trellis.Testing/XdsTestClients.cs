using System.Threading.Channels;
using Envoy.Config.Core.V3;
using Envoy.Service.Discovery.V3;
using Grpc.Core;
using Grpc.Net.Client;

namespace Trellis.Testing;

/// <summary>A hand-driven ADS stream (state of the world or delta) for protocol tests.</summary>
public sealed class XdsTestStream<TRequest, TResponse> : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<TRequest, TResponse> _call;
    private readonly Channel<TResponse> _responses = Channel.CreateUnbounded<TResponse>();
    private readonly Task _pump;
    private readonly CancellationTokenSource _cts = new();

    internal XdsTestStream(AsyncDuplexStreamingCall<TRequest, TResponse> call, bool read = true)
    {
        _call = call;
        _pump = read ? PumpAsync() : Task.CompletedTask;
    }

    private async Task PumpAsync()
    {
        try
        {
            await foreach (var r in _call.ResponseStream.ReadAllAsync(_cts.Token))
            {
                await _responses.Writer.WriteAsync(r);
            }
            _responses.Writer.TryComplete();
        }
        catch (Exception ex)
        {
            _responses.Writer.TryComplete(ex);
        }
    }

    public Task SendAsync(TRequest request) => _call.RequestStream.WriteAsync(request);

    /// <summary>The next response; fails after <paramref name="timeout"/> (a safety net, not a measurement).</summary>
    public async Task<TResponse> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            return await _responses.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("no xDS response arrived");
        }
    }

    /// <summary>A response already received and not yet read, if any.</summary>
    public bool TryNext(out TResponse? response) => _responses.Reader.TryRead(out response);

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _call.Dispose();
        try
        {
            await _pump;
        }
        catch (Exception)
        {
        }
        _cts.Dispose();
    }
}

public static class XdsTestClients
{
    public static Node Node(string id) => new() { Id = id, Cluster = "test" };

    public static XdsTestStream<DiscoveryRequest, DiscoveryResponse> Sotw(GrpcChannel channel, bool read = true) =>
        new(new AggregatedDiscoveryService.AggregatedDiscoveryServiceClient(channel).StreamAggregatedResources(), read);

    public static XdsTestStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> Delta(GrpcChannel channel) =>
        new(new AggregatedDiscoveryService.AggregatedDiscoveryServiceClient(channel).DeltaAggregatedResources());
}
