using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.Time.Testing;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;

namespace Trellis.Proxy.Tests.Policies;

/// <summary>Small builders for cluster models and runtimes on a fake clock with seeded randomness.</summary>
internal static class PolicyFixtures
{
    public static readonly CircuitBreakerModel DefaultBreakers = new(1024, 1024, 1024, 3, null);

    public static IPEndPoint Address(int n) => new(IPAddress.Parse($"10.0.{n / 250}.{(n % 250) + 1}"), 8080);

    public static EndpointModel Endpoint(int n, int weight = 1, EndpointHealthKind health = EndpointHealthKind.Healthy, int priority = 0,
        string zone = "zone-a", int localityWeight = 0) =>
        new(Address(n), weight, health, priority, "region", zone, localityWeight);

    public static ClusterModel Cluster(LoadBalancerKind balancer, IReadOnlyList<EndpointModel> endpoints, OutlierDetectionModel? outlier = null,
        CircuitBreakerModel? breakers = null, string name = "svc") =>
        new(name, balancer, TimeSpan.FromSeconds(1), endpoints, breakers ?? DefaultBreakers, outlier);

    public static Func<double> Seeded(int seed)
    {
        var random = new Random(seed);
        return random.NextDouble;
    }

    public static FakeTimeProvider Clock() => new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public static ClusterRuntime Runtime(ClusterModel model, TimeProvider? time = null, int seed = 1) =>
        new(model, time ?? Clock(), Seeded(seed));

    /// <summary>Picks <paramref name="picks"/> times and counts the picks per endpoint address.</summary>
    public static Dictionary<IPEndPoint, int> CountPicks(ClusterRuntime runtime, int picks, IPEndPoint? avoid = null)
    {
        var counts = new Dictionary<IPEndPoint, int>();
        for (var i = 0; i < picks; i++)
        {
            var e = runtime.Pick(0, avoid) ?? throw new InvalidOperationException("no endpoint picked");
            counts[e.Address] = counts.GetValueOrDefault(e.Address) + 1;
        }
        return counts;
    }

    /// <summary>Ends <paramref name="count"/> tries to <paramref name="address"/> with <paramref name="status"/>.</summary>
    public static void Fail(ClusterRuntime runtime, IPEndPoint address, int count, int status = 500)
    {
        for (var i = 0; i < count; i++)
        {
            runtime.OnAttemptStart(address);
            runtime.OnAttemptEnd(address, status, TimeSpan.FromMilliseconds(5));
        }
    }

    public static bool IsEjected(ClusterRuntime runtime, IPEndPoint address)
    {
        foreach (var s in runtime.Describe())
        {
            if (s.Address.Equals(address))
            {
                return s.Ejected;
            }
        }
        throw new InvalidOperationException($"{address} is not in the cluster");
    }
}

/// <summary>Sums one counter's measurements whose tag <paramref name="tag"/> equals <paramref name="value"/> (tests run in parallel: use unique tag values).</summary>
internal sealed class CounterProbe : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _total;

    public CounterProbe(string instrument, string tag, string value, string? tag2 = null, string? value2 = null)
    {
        _listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == Telemetry.PolicyMetrics.MeterName && i.Name == instrument)
            {
                l.EnableMeasurementEvents(i);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, measurement, tags, _) =>
        {
            var match = 0;
            foreach (var t in tags)
            {
                if ((t.Key == tag && Equals(t.Value, value)) || (tag2 is not null && t.Key == tag2 && Equals(t.Value, value2)))
                {
                    match++;
                }
            }
            if (match == (tag2 is null ? 1 : 2))
            {
                Interlocked.Add(ref _total, measurement);
            }
        });
        _listener.Start();
    }

    public long Total => Interlocked.Read(ref _total);

    public void Dispose() => _listener.Dispose();
}
