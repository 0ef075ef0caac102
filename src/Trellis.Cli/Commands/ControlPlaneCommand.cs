using System.CommandLine;
using Microsoft.Extensions.Hosting;
using Trellis.ControlPlane;
using Trellis.ControlPlane.Hosting;

namespace Trellis.Cli.Commands;

/// <summary>`trellis control-plane`: runs the control plane in the foreground.</summary>
internal static class ControlPlaneCommand
{
    public static Command Create()
    {
        var defaults = new ControlPlaneOptions();
        var data = new Option<string>("--data") { Description = "Folder for the SQLite store and CA", DefaultValueFactory = _ => defaults.DataDirectory };
        var store = new Option<string?>("--store") { Description = "sqlite:PATH (default: DATA/trellis.db) or etcd://HOST:PORT[,HOST:PORT...]" };
        var grpc = new Option<string>("--grpc-address") { Description = "xDS (gRPC) listen address", DefaultValueFactory = _ => defaults.GrpcAddress };
        var http = new Option<string>("--http-address") { Description = "REST API, REST-xDS and dashboard listen address", DefaultValueFactory = _ => defaults.HttpAddress };
        var cluster = new Option<string>("--cluster-name") { Description = "Name of the cluster this control plane serves", DefaultValueFactory = _ => defaults.ClusterName };
        var debounce = new Option<int>("--debounce-ms") { Description = "Changes within this many milliseconds coalesce into one push", DefaultValueFactory = _ => 100 };

        var cmd = new Command("control-plane", "Run the control plane: store, discovery, xDS server and REST API in one process");
        cmd.Options.Add(data);
        cmd.Options.Add(store);
        cmd.Options.Add(grpc);
        cmd.Options.Add(http);
        cmd.Options.Add(cluster);
        cmd.Options.Add(debounce);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            var options = new ControlPlaneOptions
            {
                DataDirectory = parse.GetValue(data)!,
                Store = parse.GetValue(store),
                GrpcAddress = parse.GetValue(grpc)!,
                HttpAddress = parse.GetValue(http)!,
                ClusterName = parse.GetValue(cluster)!,
                Debounce = TimeSpan.FromMilliseconds(Math.Max(0, parse.GetValue(debounce))),
            };
            Microsoft.AspNetCore.Builder.WebApplication app;
            try
            {
                app = await ControlPlaneHost.BuildAsync(options, ct: ct).ConfigureAwait(false);
            }
            catch (ArgumentException ex)
            {
                throw new CliException(ex.Message, ExitCodes.Usage);
            }
            try
            {
                await app.StartAsync(ct).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                throw new CliException($"cannot listen: {ex.Message}; is another control plane running? Choose other ports with --grpc-address and --http-address");
            }
            Console.WriteLine($"trellis control plane: xDS on {options.GrpcAddress}, REST API on http://{options.HttpAddress}, store {options.Store ?? "sqlite:" + Path.Combine(options.DataDirectory, "trellis.db")}");
            await app.WaitForShutdownAsync(ct).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        return cmd;
    }
}
