using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Model;
using Trellis.Proxy.XdsClient;
using Trellis.Testing;

namespace Trellis.Proxy.Tests;

/// <summary>An ADS client running against a control plane, with helpers to wait for model states.</summary>
internal sealed class ProxyHarness : IAsyncDisposable
{
    public const string MeshYaml = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          selector: {app: web}
          ports:
          - {name: http, port: 8080, protocol: http}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: web-a, namespace: default}
        spec:
          address: 127.0.0.1
          ports: {http: 18080}
          labels: {app: web}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: db, namespace: default}
        spec:
          selector: {app: db}
          ports:
          - {name: pg, port: 5432, protocol: tcp}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry
        metadata: {name: db-a, namespace: default}
        spec:
          address: 127.0.0.1
          ports: {pg: 15432}
          labels: {app: db}
        """;

    private readonly CancellationTokenSource _stop;

    public AdsClient Client { get; }
    public Task Run { get; }
    public ModelState State => Client.State;

    public static ProxyHarness Start(IReadOnlyList<string> addresses, XdsProtocol protocol = XdsProtocol.Delta, string node = "web.default~test~1")
    {
        var eps = addresses.Select(a => new DnsEndPoint(a[..a.LastIndexOf(':')], int.Parse(a[(a.LastIndexOf(':') + 1)..]))).ToList();
        var settings = new AdsClientSettings(node, "web", "default", eps, protocol) { InitialBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(500) };
        var client = new AdsClient(settings, new ModelState(), NullLogger<AdsClient>.Instance);
        var stop = new CancellationTokenSource();
        return new ProxyHarness(client, Task.Run(() => client.RunAsync(stop.Token)), stop);
    }

    private ProxyHarness(AdsClient client, Task run, CancellationTokenSource stop)
    {
        Client = client;
        Run = run;
        _stop = stop;
    }

    /// <summary>Waits (bounded) until the model satisfies the condition.</summary>
    public async Task<ProxyModel> WaitAsync(Func<ModelState, bool> condition, string what, int seconds = 20)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (true)
        {
            var changed = State.Changed;
            if (condition(State))
            {
                return State.Current;
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"timed out waiting for: {what}; status {Client.Status}; model {State.Current.Version} listeners [{string.Join(", ", State.Current.Listeners.Keys)}]");
            }
            try
            {
                await changed.WaitAsync(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
            }
            catch (TimeoutException)
            {
            }
        }
    }

    public static string Address(TestControlPlane cp) => cp.Options.GrpcAddress;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Run;
        _stop.Dispose();
    }
}
