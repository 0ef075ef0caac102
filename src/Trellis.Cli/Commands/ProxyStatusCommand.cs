using System.CommandLine;
using System.Text.Json;

namespace Trellis.Cli.Commands;

/// <summary>`trellis proxy-status`: every connected proxy and whether it holds the current configuration.</summary>
internal static class ProxyStatusCommand
{
    private static readonly (string Url, string Short)[] Types =
    [
        ("type.googleapis.com/envoy.config.listener.v3.Listener", "LDS"),
        ("type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "RDS"),
        ("type.googleapis.com/envoy.config.cluster.v3.Cluster", "CDS"),
        ("type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "EDS"),
    ];

    public static Command Create()
    {
        var output = CliOptions.Output("table", "table", "json");
        var cmd = new Command("proxy-status", "List connected proxies: SYNCED, STALE (not yet ACKed) or NACKED (rejected, with the error)");
        cmd.Options.Add(output);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            using var api = new ApiClient(CliOptions.ResolveServer(parse));
            var body = await api.CallAsync(HttpMethod.Get, "api/v1/proxies", null, ct).ConfigureAwait(false);
            if (parse.GetValue(output) == "json")
            {
                Console.WriteLine(body!.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Ok;
            }
            var items = body!["items"]!.AsArray();
            if (items.Count == 0)
            {
                Console.Error.WriteLine("no proxies connected");
                return ExitCodes.Ok;
            }
            var now = DateTimeOffset.UtcNow;
            var rows = items.Select(p =>
            {
                var types = p!["types"]!.AsArray();
                string Cell(string url)
                {
                    var t = types.FirstOrDefault(x => x!["typeUrl"]!.GetValue<string>() == url);
                    if (t is null)
                    {
                        return "-";
                    }
                    if (t["lastResponseNacked"]!.GetValue<bool>())
                    {
                        return "NACKED";
                    }
                    return t["ackedVersion"]?.ToString() == t["sentVersion"]?.ToString() ? "SYNCED" : "STALE";
                }
                var row = new List<string> { p["nodeId"]!.GetValue<string>(), p["state"]!.GetValue<string>() };
                row.AddRange(Types.Select(t => Cell(t.Url)));
                row.Add(p["protocol"]!.GetValue<string>());
                row.Add(Table.Age(p["connectedSince"]!.GetValue<DateTimeOffset>(), now));
                var nack = types.FirstOrDefault(t => t!["lastResponseNacked"]!.GetValue<bool>());
                row.Add(nack is null ? "" : $"{Types.FirstOrDefault(x => x.Url == nack["typeUrl"]!.GetValue<string>()).Short}: {nack["nackError"]}");
                return (IReadOnlyList<string>)row;
            });
            Console.Write(Table.Render(["NODE", "STATUS", "LDS", "RDS", "CDS", "EDS", "XDS", "AGE", "ERROR"], rows));
            return ExitCodes.Ok;
        }));
        return cmd;
    }
}
