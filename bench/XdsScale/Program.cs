using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;
using Trellis.Bench.XdsScale;

// bench/xds-scale: how many ADS clients the control plane holds, how fast they sync, and how fast a change
// reaches all of them. Prints one Markdown table row per run, then the median.
var o = Options.Parse(args);
if (o is null)
{
    return 2;
}
var rows = new List<RunResult>();
for (var run = 1; run <= o.Runs; run++)
{
    var result = await Bench.RunAsync(o, run);
    rows.Add(result);
    Console.Error.WriteLine(RunResult.Header);
    Console.Error.WriteLine(result.Row);
}
Console.WriteLine();
Console.WriteLine($"xds-scale: mode {o.Mode}, {o.Proxies} proxies, {o.Services} services x {o.Endpoints} endpoints, " +
                  $"{o.Changes} measured changes of each kind per run after {o.Warmup} warm-up, {o.Runs} run(s)" +
                  (o.CpCpus is null ? "" : $", control plane on CPUs {o.CpCpus}"));
Console.WriteLine();
Console.WriteLine(RunResult.Header);
Console.WriteLine(RunResult.Separator);
foreach (var r in rows)
{
    Console.WriteLine(r.Row);
}
if (rows.Count > 1)
{
    Console.WriteLine(RunResult.Median(rows).Row);
}
return rows.All(r => r.Complete) ? 0 : 1;

namespace Trellis.Bench.XdsScale
{
    internal sealed record Options(
        int Proxies, string Mode, int Runs, int Services, int Endpoints, int StreamsPerChannel, int Window, int Changes, int Warmup,
        string? Server, string? Xds, string? CpPid, string? CpCpus, string TrellisDll, int DebounceMs, TimeSpan Timeout)
    {
        public static Options? Parse(string[] args)
        {
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < args.Length; i++)
            {
                if (args[i] is "-h" or "--help" || !args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                {
                    Console.Error.WriteLine(Usage);
                    return null;
                }
                values[args[i][2..]] = args[++i];
            }
            int Int(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
            string? Str(string name) => values.GetValueOrDefault(name);
            var known = new[] { "proxies", "mode", "runs", "services", "endpoints", "streams-per-channel", "window", "changes", "warmup", "server", "xds", "cp-pid", "cp-cpus", "trellis", "debounce-ms", "timeout-s" };
            var unknown = values.Keys.FirstOrDefault(k => !known.Contains(k));
            var mode = Str("mode") ?? "mixed";
            if (unknown is not null || mode is not ("sotw" or "delta" or "mixed") || (Str("server") is null) != (Str("xds") is null))
            {
                Console.Error.WriteLine(unknown is not null ? $"unknown flag --{unknown}" : "bad --mode, or --server without --xds");
                Console.Error.WriteLine(Usage);
                return null;
            }
            return new Options(
                Int("proxies", 100), mode, Int("runs", 1), Int("services", 100), Int("endpoints", 10), Int("streams-per-channel", 100),
                Int("window", 500), Int("changes", 3), Int("warmup", 1), Str("server"), Str("xds"), Str("cp-pid"), Str("cp-cpus"),
                Str("trellis") ?? DefaultTrellisDll(), Int("debounce-ms", 100), TimeSpan.FromSeconds(Int("timeout-s", 120)));
        }

        private const string Usage = """
            usage: XdsScale [--proxies N] [--mode sotw|delta|mixed] [--runs R] [--services 100] [--endpoints 10]
                            [--streams-per-channel 100] [--window 500] [--changes 3] [--warmup 1] [--timeout-s 120]
                            [--cp-cpus LIST] [--debounce-ms 100] [--trellis PATH/trellis.dll]
                            [--server http://HOST:PORT --xds HOST:PORT [--cp-pid PID]]
            Starts the Release control plane (src/Trellis.Cli/bin/Release/net10.0/trellis.dll) on free loopback ports with a
            fresh data dir, unless --server/--xds name a running one. --cp-cpus runs it under `taskset -c LIST`.
            """;

        private static string DefaultTrellisDll()
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Trellis.slnx")))
                {
                    return Path.Combine(dir.FullName, "src", "Trellis.Cli", "bin", "Release", "net10.0", "trellis.dll");
                }
            }
            return "trellis.dll";
        }
    }

    /// <summary>Latency of one change: per proxy, from the apply request being sent to its ACK being written.</summary>
    internal sealed record ChangeResult(double P50, double P99, double Max, int Acked, int Total, double ApplyMs, double CpCpu, double LgCpu)
    {
        public string Cell => Acked == Total
            ? $"{P50:0} / {P99:0} / {Max:0}"
            : $"{P50:0} / {P99:0} / >{Max:0} ({Acked}/{Total})";
    }

    internal sealed record RunResult(
        int Run, string Mode, int Proxies, int Synced, double SyncSeconds, double CpCpuConnect, double LgCpuConnect,
        ChangeResult Route, ChangeResult Endpoint, long RssIdleKiB, long HwmIdleKiB, long RssNKiB, long HwmNKiB)
    {
        public bool Complete => Synced == Proxies && Route.Acked == Route.Total && Endpoint.Acked == Endpoint.Total;

        public const string Header =
            "| run | mode | N | connect+sync all (s) | CP CPU connect (s) | LG CPU connect (s) | route p50 / p99 / max (ms) | CP CPU route (s) | " +
            "endpoint p50 / p99 / max (ms) | CP CPU endpoint (s) | LG CPU change (s) | RSS idle (MiB) | RSS N (MiB) | HWM (MiB) | KiB / proxy |";

        public const string Separator = "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|";

        public string Row =>
            $"| {(Run == 0 ? "median" : Run.ToString(CultureInfo.InvariantCulture))} | {Mode} | {Proxies} | " +
            $"{(Synced == Proxies ? SyncSeconds.ToString("0.00", CultureInfo.InvariantCulture) : $">{SyncSeconds:0.0} ({Synced}/{Proxies})")} | " +
            $"{CpCpuConnect:0.00} | {LgCpuConnect:0.00} | {Route.Cell} | {Route.CpCpu:0.00} | {Endpoint.Cell} | {Endpoint.CpCpu:0.00} | " +
            $"{(Route.LgCpu + Endpoint.LgCpu) / 2:0.00} | {RssIdleKiB / 1024.0:0} | {RssNKiB / 1024.0:0} | {HwmNKiB / 1024.0:0} | " +
            $"{(RssNKiB - RssIdleKiB) / (double)Math.Max(1, Proxies):0.0} |";

        public static RunResult Median(IReadOnlyList<RunResult> rows)
        {
            double M(Func<RunResult, double> f) => Stats.Median(rows.Select(f).ToList());
            long L(Func<RunResult, long> f) => (long)M(r => f(r));
            ChangeResult C(Func<RunResult, ChangeResult> f) => new(
                M(r => f(r).P50), M(r => f(r).P99), M(r => f(r).Max), rows.Min(r => f(r).Acked), rows[0].Proxies, M(r => f(r).ApplyMs),
                M(r => f(r).CpCpu), M(r => f(r).LgCpu));
            return new RunResult(0, rows[0].Mode, rows[0].Proxies, rows.Min(r => r.Synced), M(r => r.SyncSeconds), M(r => r.CpCpuConnect),
                M(r => r.LgCpuConnect), C(r => r.Route), C(r => r.Endpoint), L(r => r.RssIdleKiB), L(r => r.HwmIdleKiB), L(r => r.RssNKiB), L(r => r.HwmNKiB));
        }
    }

    internal static class Stats
    {
        public static double Median(List<double> values)
        {
            values.Sort();
            return values.Count == 0 ? 0 : values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
        }

        /// <summary>Nearest-rank percentile of sorted values.</summary>
        public static double Percentile(List<double> sorted, double p) =>
            sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

        public static double Ms(long from, long to) => (to - from) * 1000.0 / Stopwatch.Frequency;
    }

    internal static class Bench
    {
        public static async Task<RunResult> RunAsync(Options o, int run)
        {
            Log($"run {run}: starting control plane");
            await using var cp = o.Server is null
                ? await ControlPlane.StartAsync(o.TrellisDll, o.CpCpus, o.DebounceMs)
                : ControlPlane.Attach(o.Server, o.Xds!, o.CpPid);
            Log($"control plane: xDS {cp.XdsAddress}, pid {cp.Pid ?? "?"}; applying {o.Services} services x {o.Endpoints} workload entries");
            var sw = Stopwatch.StartNew();
            var revision = await cp.ApplyAsync(Mesh.Initial(o.Services, o.Endpoints));
            await cp.WaitAppliedAsync(revision);
            Log($"applied revision {revision} in {sw.Elapsed.TotalSeconds:0.00} s; settling");
            await Task.Delay(TimeSpan.FromSeconds(3));
            var idle = cp.Sample();

            using var cts = new CancellationTokenSource();
            var channels = new List<GrpcChannel>();
            var proxies = new List<SimulatedProxy>(o.Proxies);
            var runs = new List<Task>(o.Proxies);
            try
            {
                // Connect: at most `window` proxies between "stream opened" and "holds the full config" at a time.
                var cp0 = cp.Sample();
                var lg0 = ProcSample.Read("self");
                var start = Stopwatch.GetTimestamp();
                using var window = new SemaphoreSlim(o.Window);
                using var progress = Progress(proxies, o.Proxies, start);
                for (var i = 0; i < o.Proxies; i++)
                {
                    if (i % o.StreamsPerChannel == 0)
                    {
                        channels.Add(CreateChannel(cp.XdsAddress));
                    }
                    if (!await window.WaitAsync(o.Timeout))
                    {
                        break;
                    }
                    SimulatedProxy p = o.Mode switch
                    {
                        "sotw" => new SotwProxy(i, o.Services),
                        "delta" => new DeltaProxy(i, o.Services),
                        _ => i % 2 == 0 ? new SotwProxy(i, o.Services) : new DeltaProxy(i, o.Services),
                    };
                    lock (proxies)
                    {
                        proxies.Add(p);
                    }
                    _ = p.Synced.ContinueWith(_ => window.Release(), TaskScheduler.Default);
                    runs.Add(Task.Run(() => p.RunAsync(channels[^1], cts.Token)));
                }
                var all = Task.WhenAll(proxies.Select(p => p.Synced));
                await Task.WhenAny(all, Task.Delay(o.Timeout));
                var end = Stopwatch.GetTimestamp();
                var cp1 = cp.Sample();
                var lg1 = ProcSample.Read("self");
                var synced = proxies.Count(p => p.Synced.IsCompletedSuccessfully);
                var failed = proxies.FirstOrDefault(p => p.Failure is not null);
                if (failed is not null)
                {
                    Log($"{proxies.Count(p => p.Failure is not null)} streams failed; first: {failed.Failure!.GetType().Name}: {failed.Failure.Message}");
                }
                var syncSeconds = Stats.Ms(start, end) / 1000;
                Log($"{synced}/{o.Proxies} proxies synced in {syncSeconds:0.00} s; settling");
                await Task.Delay(TimeSpan.FromSeconds(3));
                var held = cp.Sample();
                var health = await cp.HealthAsync();
                Log($"control plane reports {health.GetProperty("proxies").GetInt32()} connected proxies");

                var routes = new List<ChangeResult>();
                var endpoints = new List<ChangeResult>();
                for (var k = 0; k < o.Warmup + o.Changes; k++)
                {
                    var (routeYaml, routeWatch) = Mesh.RouteChange(90 - k);
                    var r = await MeasureChangeAsync(cp, proxies, routeYaml, routeWatch, o.Timeout, $"route change {k + 1}");
                    var (epYaml, epWatch) = Mesh.EndpointChange(k);
                    var e = await MeasureChangeAsync(cp, proxies, epYaml, epWatch, o.Timeout, $"endpoint change {k + 1}");
                    if (k >= o.Warmup)
                    {
                        routes.Add(r);
                        endpoints.Add(e);
                    }
                }
                var final = cp.Sample();
                return new RunResult(run, o.Mode, o.Proxies, synced, syncSeconds,
                    Cpu(cp0, cp1), lg1.CpuSeconds - lg0.CpuSeconds, MedianOf(routes), MedianOf(endpoints),
                    idle?.RssKiB ?? 0, idle?.HwmKiB ?? 0, held?.RssKiB ?? 0, Math.Max(held?.HwmKiB ?? 0, final?.HwmKiB ?? 0));
            }
            finally
            {
                await cts.CancelAsync();
                await Task.WhenAll(runs);
                foreach (var c in channels)
                {
                    c.Dispose();
                }
            }
        }

        private static double Cpu(ProcSample? a, ProcSample? b) => a is null || b is null ? 0 : b.Value.CpuSeconds - a.Value.CpuSeconds;

        private static ChangeResult MedianOf(List<ChangeResult> results) => new(
            Stats.Median(results.Select(r => r.P50).ToList()), Stats.Median(results.Select(r => r.P99).ToList()),
            Stats.Median(results.Select(r => r.Max).ToList()), results.Min(r => r.Acked), results[0].Total,
            Stats.Median(results.Select(r => r.ApplyMs).ToList()), Stats.Median(results.Select(r => r.CpCpu).ToList()),
            Stats.Median(results.Select(r => r.LgCpu).ToList()));

        private static async Task<ChangeResult> MeasureChangeAsync(ControlPlane cp, List<SimulatedProxy> proxies, string yaml, Watch watch, TimeSpan timeout, string label)
        {
            var live = proxies.Where(p => p.Synced.IsCompletedSuccessfully && p.Failure is null).ToList();
            foreach (var p in live)
            {
                p.Arm(watch);
            }
            var cp0 = cp.Sample();
            var lg0 = ProcSample.Read("self");
            var t0 = Stopwatch.GetTimestamp();
            await cp.ApplyAsync(yaml);
            var applied = Stopwatch.GetTimestamp();
            var deadline = t0 + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (live.Any(p => p.WatchHitAt == 0) && Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(5);
            }
            var cp1 = cp.Sample();
            var lg1 = ProcSample.Read("self");
            var latencies = live.Where(p => p.WatchHitAt != 0).Select(p => Stats.Ms(t0, p.WatchHitAt)).Order().ToList();
            var result = new ChangeResult(
                Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 99), latencies.Count > 0 ? latencies[^1] : 0,
                latencies.Count, proxies.Count, Stats.Ms(t0, applied), Cpu(cp0, cp1), lg1.CpuSeconds - lg0.CpuSeconds);
            Log($"{label}: apply {result.ApplyMs:0} ms; {result.Acked}/{result.Total} ACKed; p50 {result.P50:0} ms, p99 {result.P99:0} ms, " +
                $"all {result.Max:0} ms; CP CPU {result.CpCpu:0.00} s, LG CPU {result.LgCpu:0.00} s");
            await Task.Delay(TimeSpan.FromSeconds(1));
            return result;
        }

        private static GrpcChannel CreateChannel(string address) =>
            GrpcChannel.ForAddress($"http://{address}", new GrpcChannelOptions
            {
                // One HTTP/2 connection per channel: the benchmark spreads streams over channels itself.
                HttpHandler = new SocketsHttpHandler
                {
                    EnableMultipleHttp2Connections = false,
                    PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                    ConnectTimeout = TimeSpan.FromSeconds(30),
                },
                MaxReceiveMessageSize = 64 * 1024 * 1024,
            });

        private static Timer Progress(List<SimulatedProxy> proxies, int total, long start) => new(_ =>
        {
            int started, synced, failed;
            lock (proxies)
            {
                started = proxies.Count;
                synced = proxies.Count(p => p.Synced.IsCompletedSuccessfully);
                failed = proxies.Count(p => p.Failure is not null);
            }
            Log($"  {Stats.Ms(start, Stopwatch.GetTimestamp()) / 1000:0.0} s: {started}/{total} streams opened, {synced} synced, {failed} failed");
        }, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

        public static void Log(string message) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss.fff}] {message}");
    }
}
