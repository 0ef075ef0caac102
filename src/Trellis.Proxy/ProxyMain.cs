using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Trellis.Proxy.Admin;
using Trellis.Proxy.Model;
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
        var settings = new AdsClientSettings(options.NodeId, options.Service, options.Namespace, options.ControlPlanes, options.Protocol);
        var ads = new AdsClient(settings, state, loggerFactory.CreateLogger<AdsClient>());

        AdminServer admin;
        try
        {
            admin = await AdminServer.StartAsync(options.Admin, ads, loggerFactory, stop.Token).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"trellis-proxy: --admin {options.Admin}: cannot listen: {e.Message}");
            return 1;
        }
        await using (admin.ConfigureAwait(false))
        {
            LogStarted(log, options.NodeId, admin.Address.ToString());
            var adsTask = ads.RunAsync(stop.Token);
            if (options.WaitReady)
            {
                _ = PrintReadyAsync(state, stop.Token);
            }
            var quit = admin.QuitRequested;
            await Task.WhenAny(quit, Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default)).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
            await adsTask.ConfigureAwait(false);
        }
        return 0;
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
