using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Cli.Commands;

/// <summary>
/// `trellis proxy-config NODE [--section S] [-o table|json]`: a proxy's listeners, routes, clusters and endpoints as the
/// control plane serves them to that node; `--admin HOST:PORT` reads a local proxy's own /config_dump instead.
/// </summary>
internal static class ProxyConfigCommand
{
    public static Command Create()
    {
        var node = new Argument<string?>("NODE") { Description = "Node id of a connected proxy (see trellis proxy-status)", Arity = ArgumentArity.ZeroOrOne };
        var section = new Option<string?>("--section") { Description = $"Show one section only: {string.Join(" | ", ProxyConfigTables.Sections)}" };
        section.AcceptOnlyFromAmong(ProxyConfigTables.Sections);
        var admin = new Option<string?>("--admin") { Description = "Read a local proxy's own config from its admin address (HOST:PORT, e.g. 127.0.0.1:15000) instead of the control plane" };
        var output = CliOptions.Output("table", "table", "json");
        var cmd = new Command("proxy-config", "Show a proxy's listeners, routes, clusters and endpoints as that proxy sees them");
        cmd.Arguments.Add(node);
        cmd.Options.Add(section);
        cmd.Options.Add(admin);
        cmd.Options.Add(output);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            var nodeId = parse.GetValue(node);
            var adminAddress = parse.GetValue(admin);
            JsonNode summary;
            if (adminAddress is not null)
            {
                if (nodeId is not null)
                {
                    throw new CliException("give either NODE (asks the control plane) or --admin HOST:PORT (asks the proxy itself), not both", ExitCodes.Usage);
                }
                summary = ProxyConfigTables.FromConfigDump(await ReadConfigDumpAsync(adminAddress, ct).ConfigureAwait(false), adminAddress);
            }
            else if (nodeId is null)
            {
                throw new CliException("name the proxy: 'trellis proxy-config NODE' (node ids are listed by 'trellis proxy-status'), or use --admin HOST:PORT for a local proxy", ExitCodes.Usage);
            }
            else
            {
                using var api = new ApiClient(CliOptions.ResolveServer(parse));
                summary = (await api.CallAsync(HttpMethod.Get, $"api/v1/proxies/{Uri.EscapeDataString(nodeId)}/config", null, ct).ConfigureAwait(false))!;
            }

            var only = parse.GetValue(section);
            if (parse.GetValue(output) == "json")
            {
                var json = only is null ? summary : summary[only] ?? new JsonArray();
                Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                Console.Write(ProxyConfigTables.Render(summary, only));
            }
            return ExitCodes.Ok;
        }));
        return cmd;
    }

    private static async Task<JsonNode> ReadConfigDumpAsync(string address, CancellationToken ct)
    {
        if (!Uri.TryCreate($"http://{address}/config_dump", UriKind.Absolute, out var uri) || uri.Port <= 0 || address.Contains('/', StringComparison.Ordinal))
        {
            throw new CliException($"--admin \"{address}\" is not HOST:PORT; write the proxy's admin address, e.g. 127.0.0.1:15000", ExitCodes.Usage);
        }
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        try
        {
            var text = await http.GetStringAsync(uri, ct).ConfigureAwait(false);
            return JsonNode.Parse(text) ?? throw new CliException($"the proxy at {address} answered /config_dump with nothing");
        }
        catch (HttpRequestException ex)
        {
            throw new CliException($"cannot read {uri} ({ex.Message}); is trellis proxy running with --admin {address}?");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CliException($"the proxy at {address} did not answer /config_dump within 10 s");
        }
        catch (JsonException ex)
        {
            throw new CliException($"the proxy at {address} answered /config_dump with something that is not JSON: {ex.Message}");
        }
    }
}
