using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Trellis.Proxy.Telemetry;

/// <summary>
/// Export of the proxy's metrics: every instrument of the "Trellis.Proxy" meter (listeners, HTTP, policies) plus
/// process gauges, served as Prometheus text on the admin port at /stats/prometheus.
/// </summary>
internal static class MetricsExport
{
    public const string MeterName = "Trellis.Proxy";

    /// <summary>Bucket bounds for durations in seconds: 0.5 ms to 30 s.</summary>
    private static readonly double[] SecondsBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private static readonly Meter ProcessMeter = new(MeterName);
    private static readonly DateTimeOffset StartTime = Process.GetCurrentProcess().StartTime.ToUniversalTime();

    static MetricsExport()
    {
        ProcessMeter.CreateObservableGauge("process_resident_memory_bytes", static () => Environment.WorkingSet,
            description: "Resident memory of the proxy process.");
        ProcessMeter.CreateObservableCounter("process_cpu_seconds_total", static () => Environment.CpuUsage.TotalTime.TotalSeconds,
            description: "User and system CPU time of the proxy process.");
        ProcessMeter.CreateObservableGauge("process_start_time_seconds", static () => StartTime.ToUnixTimeMilliseconds() / 1000.0,
            description: "Start time of the proxy process since the Unix epoch.");
        ProcessMeter.CreateObservableGauge("trellis_proxy_gc_heap_bytes", static () => GC.GetTotalMemory(false),
            description: "Bytes in the managed heap.");
        ProcessMeter.CreateObservableCounter("trellis_proxy_gc_allocated_bytes_total", static () => GC.GetTotalAllocatedBytes(),
            description: "Bytes allocated on the managed heap since the proxy started (allocation rate: its rate()).");
        ProcessMeter.CreateObservableCounter("trellis_proxy_gc_collections_total", static () => new[]
        {
            new Measurement<long>(GC.CollectionCount(0), new KeyValuePair<string, object?>("generation", "gen0")),
            new Measurement<long>(GC.CollectionCount(1), new KeyValuePair<string, object?>("generation", "gen1")),
            new Measurement<long>(GC.CollectionCount(2), new KeyValuePair<string, object?>("generation", "gen2")),
        }, description: "Garbage collections since the proxy started: gen0 counts every collection, gen1 those of gen1 and gen2, gen2 the full ones.");
    }

    /// <summary>Registers the meter provider and the Prometheus exporter in the admin app's services.</summary>
    public static void AddProxyMetrics(this IServiceCollection services)
    {
        services.AddOpenTelemetry().ConfigureResource(r => r.AddService("trellis-proxy")).WithMetrics(m => m
            .AddMeter(MeterName)
            .AddView(instrument => instrument.Name.EndsWith("_seconds", StringComparison.Ordinal) && instrument.GetType().Name.StartsWith("Histogram", StringComparison.Ordinal)
                ? new ExplicitBucketHistogramConfiguration { Boundaries = SecondsBuckets }
                : null)
            .AddPrometheusExporter(o =>
            {
                o.DisableTotalNameSuffixForCounters = true;
                o.ScrapeResponseCacheDurationMilliseconds = 0;
            }));
    }
}
