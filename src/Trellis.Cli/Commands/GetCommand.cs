using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.Api;

namespace Trellis.Cli.Commands;

/// <summary>`trellis get KIND [NAME] [-n NS | -A] [-o table|wide|yaml|json]`.</summary>
internal static class GetCommand
{
    public static Command Create()
    {
        var kind = new Argument<string>("KIND") { Description = $"Kind: {string.Join(", ", ResourceKinds.All.Select(k => k.Singular))} (singular or plural)" };
        var name = new Argument<string?>("NAME") { Description = "One resource by name", Arity = ArgumentArity.ZeroOrOne };
        var ns = CliOptions.Namespace();
        var all = new Option<bool>("--all-namespaces", "-A") { Description = "List across all namespaces" };
        var output = CliOptions.Output("table", "table", "wide", "yaml", "json");
        var cmd = new Command("get", "Show resources with their status");
        cmd.Arguments.Add(kind);
        cmd.Arguments.Add(name);
        cmd.Options.Add(ns);
        cmd.Options.Add(all);
        cmd.Options.Add(output);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            var k = parse.GetValue(kind)!;
            if (!ResourceKinds.TryResolve(k, out var info))
            {
                throw new CliException($"unknown kind \"{k}\"; known kinds: {string.Join(", ", ResourceKinds.All.Select(x => x.Plural))}");
            }
            using var api = new ApiClient(CliOptions.ResolveServer(parse));
            var n = parse.GetValue(name);
            var nsValue = parse.GetValue(ns)!;
            List<JsonNode> items;
            if (n is not null)
            {
                var one = await api.CallAsync(HttpMethod.Get, $"api/v1/resources/{info.Plural}/{Uri.EscapeDataString(n)}?namespace={Uri.EscapeDataString(nsValue)}", null, ct).ConfigureAwait(false);
                items = [one!];
            }
            else
            {
                var query = parse.GetValue(all) ? "" : $"?namespace={Uri.EscapeDataString(nsValue)}";
                var list = await api.CallAsync(HttpMethod.Get, $"api/v1/resources/{info.Plural}{query}", null, ct).ConfigureAwait(false);
                items = list!["items"]!.AsArray().Select(i => i!).ToList();
            }
            var format = parse.GetValue(output)!;
            switch (format)
            {
                case "json":
                    var json = n is not null ? items[0] : new JsonObject { ["items"] = new JsonArray(items.Select(i => i.DeepClone()).ToArray()) };
                    Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                    break;
                case "yaml":
                    Console.Write(ResourceYaml.Serialize(items.Select(i => ResourceJson.Deserialize(i.ToJsonString()))));
                    break;
                default:
                    if (items.Count == 0)
                    {
                        Console.Error.WriteLine(parse.GetValue(all) ? $"no {info.Plural} found" : $"no {info.Plural} found in namespace {nsValue}");
                        return ExitCodes.Ok;
                    }
                    Console.Write(RenderTable(items, info.Namespaced, format == "wide"));
                    break;
            }
            return ExitCodes.Ok;
        }));
        return cmd;
    }

    private static string RenderTable(List<JsonNode> items, bool namespaced, bool wide)
    {
        var headers = new List<string>();
        if (namespaced)
        {
            headers.Add("NAMESPACE");
        }
        headers.AddRange(["NAME", "ACCEPTED", "PROXIES", "REVISION"]);
        if (wide)
        {
            headers.Add("REASONS");
        }
        var rows = items.Select(i =>
        {
            var row = new List<string>();
            if (namespaced)
            {
                row.Add(i["metadata"]?["namespace"]?.GetValue<string>() ?? "");
            }
            row.Add(i["metadata"]?["name"]?.GetValue<string>() ?? "");
            var status = i["status"];
            row.Add(status?["accepted"]?.GetValue<bool>() == true ? "True" : "False");
            var proxies = status?["proxies"]?.AsArray().Select(p => p!["state"]!.GetValue<string>()).ToList() ?? [];
            row.Add(proxies.Count == 0 ? "-" : string.Join(", ", proxies.GroupBy(p => p).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}")));
            row.Add(i["metadata"]?["resourceVersion"]?.ToString() ?? "");
            if (wide)
            {
                var reasons = status?["reasons"]?.AsArray().Select(r => r!.GetValue<string>()) ?? [];
                var nacks = status?["proxies"]?.AsArray().Where(p => p!["error"] is not null).Select(p => $"{p!["node"]}: {p["error"]}") ?? [];
                row.Add(string.Join("; ", reasons.Concat(nacks)));
            }
            return (IReadOnlyList<string>)row;
        });
        return Table.Render(headers, rows);
    }
}
