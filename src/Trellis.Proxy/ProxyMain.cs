using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Admin;
using Trellis.Proxy.Http.Http2;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Trellis.Proxy.Security;
using Trellis.Proxy.XdsClient;

namespace Trellis.Proxy;

/// <summary>Entry point of the `trellis-proxy` executable (and of `trellis proxy`).</summary>
public static partial class ProxyMain
{
    public static async Task<int> RunAsync(string[] args)
    {
        var parsed = ProxyOptionsParser.Parse(args);
        if (parsed.Help)
        {
            Console.Out.WriteLine(ProxyOptions.Usage);
            return 0;
        }
        if (parsed.Options is not { } options)
        {
            Console.Error.WriteLine($"trellis-proxy: {parsed.Error}");
            Console.Error.WriteLine("run 'trellis-proxy --help' for usage");
            return 2;
        }

        DownstreamTls? inboundTls = null;
        if (options.InboundTlsCert is { } certFile && options.InboundTlsKey is { } keyFile)
        {
            try
            {
                inboundTls = DownstreamTls.Load(certFile, keyFile);
            }
            catch (DownstreamTlsException e)
            {
                Console.Error.WriteLine($"trellis-proxy: --inbound-tls-cert/--inbound-tls-key: {e.Message}");
                return 1;
            }
        }

        using var loggerFactory = LoggerFactory.Create(b => b
            .SetMinimumLevel(LogLevel.Information)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            })
            .AddFilter("Microsoft", LogLevel.Warning));
        // Logs go to stderr so that stdout carries only what scripts read ("ready").
        var log = loggerFactory.CreateLogger("trellis-proxy");

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

        var state = new ModelState();
        var settings = new AdsClientSettings(options.NodeId, options.Service, options.Namespace, options.ControlPlanes, options.Protocol)
        {
            Region = options.Region,
            Zone = options.Zone,
            SubZone = options.SubZone,
        };
        var ads = new AdsClient(settings, state, loggerFactory.CreateLogger<AdsClient>());

        // One set of cluster runtimes (balancers, breakers, outlier state) and route policies for every listener
        // and both HTTP paths; the runtimes follow the newest model.
        using var runtimes = new ClusterRuntimes(TimeProvider.System, state, Random.Shared.NextDouble, loggerFactory.CreateLogger<ClusterRuntimes>());
        var policies = new RoutePolicies(TimeProvider.System, Random.Shared.NextDouble);
        AdminServer admin;
        try
        {
            admin = await AdminServer.StartAsync(options.Admin, ads, runtimes, loggerFactory, stop.Token).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"trellis-proxy: --admin {options.Admin}: cannot listen: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // SIGTERM or Ctrl-C before the proxy was up: nothing was served, nothing to drain.
            return 0;
        }
        await using (admin.ConfigureAwait(false))
        {
            LogStarted(log, options.NodeId, admin.Address.ToString());
            var listeners = new List<ExplicitListener>();
            var services = new ListenerServices(runtimes, policies, TimeProvider.System, Random.Shared)
            {
                DetectionTimeout = options.ProtocolDetectionTimeout,
            };
            var http2 = new Http2Frontend(state, runtimes, policies, TimeProvider.System, loggerFactory);
            await using var http2Scope = http2.ConfigureAwait(false);
            try
            {
                foreach (var target in ListenerTargets(options, inboundTls))
                {
                    var listener = new ExplicitListener(target, state, loggerFactory.CreateLogger<ExplicitListener>(), services, http2);
                    listeners.Add(listener);
                    listener.Start();
                }
            }
            catch (System.Net.Sockets.SocketException e)
            {
                Console.Error.WriteLine($"trellis-proxy: cannot listen on {listeners[^1].Target.Listen} ({listeners[^1].Target.Name}): {e.Message}; choose another port");
                foreach (var l in listeners)
                {
                    await l.DisposeAsync().ConfigureAwait(false);
                }
                return 1;
            }
            var adsTask = ads.RunAsync(stop.Token);
            if (options.WaitReady)
            {
                _ = PrintReadyAsync(state, stop.Token);
            }
            _ = TrimAfterStartupAsync(state, stop.Token);
            var quit = admin.QuitRequested;
            await Task.WhenAny(quit, Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default)).ConfigureAwait(false);
            // Stop accepting, let connections in flight finish (bounded), then stop the xDS client.
            foreach (var l in listeners)
            {
                await l.StopAcceptingAsync().ConfigureAwait(false);
            }
            var drainUntil = Environment.TickCount64 + (long)options.DrainTimeout.TotalMilliseconds;
            while (listeners.Any(l => l.ActiveConnections > 0) && Environment.TickCount64 < drainUntil)
            {
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
            }
            await stop.CancelAsync().ConfigureAwait(false);
            await adsTask.ConfigureAwait(false);
            services.Pools.Dispose();
        }
        return 0;
    }

    /// <summary>
    /// The explicit listeners: one per --upstream (to the cluster of that service port), the shared outbound port
    /// when --outbound is given (routes by Host), and the inbound port when --app-port names the local application.
    /// </summary>
    internal static IEnumerable<ListenerTarget> ListenerTargets(ProxyOptions options, DownstreamTls? inboundTls = null)
    {
        foreach (var up in options.Upstreams)
        {
            var cluster = $"{up.Service}.{up.Namespace}:{up.Port}";
            yield return new ListenerTarget($"upstream {cluster}", up.Local, cluster, null);
        }
        if (options.Outbound is { } outbound)
        {
            yield return new ListenerTarget("outbound", outbound, null, null);
        }
        if (options.AppPort is int app)
        {
            yield return new ListenerTarget("inbound", options.Inbound, null, new IPEndPoint(IPAddress.Loopback, app)) { Tls = inboundTls };
        }
    }

    /// <summary>
    /// Once the first complete config is applied, collects and compacts the heap and returns free memory to the
    /// system: start-up (xDS stream, config compile, listener and Kestrel start) leaves megabytes of garbage that no
    /// collection would reclaim on an idle sidecar, which allocates next to nothing.
    /// </summary>
    private static async Task TrimAfterStartupAsync(ModelState state, CancellationToken ct)
    {
        try
        {
            while (!state.IsReady)
            {
                await state.Changed.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    private static async Task PrintReadyAsync(ModelState state, CancellationToken ct)
    {
        try
        {
            while (!state.IsReady)
            {
                await state.Changed.WaitAsync(ct).ConfigureAwait(false);
            }
            Console.Out.WriteLine("ready");
            Console.Out.Flush();
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "trellis-proxy node {Node}, admin on {Admin}")]
    private static partial void LogStarted(ILogger log, string node, string admin);
}
