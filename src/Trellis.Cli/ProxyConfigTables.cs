using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Trellis.Cli;

/// <summary>
/// The four tables of `trellis proxy-config`: listeners, routes, clusters, endpoints. Reads the control plane's
/// summary (GET /api/v1/proxies/{node}/config) directly, and converts a proxy's own /config_dump to the same shape.
/// </summary>
internal static class ProxyConfigTables
{
    public static readonly string[] Sections = ["listeners", "routes", "clusters", "endpoints"];

    /// <summary>The tables (all, or one section) as text.</summary>
    public static string Render(JsonNode summary, string? section)
    {
        var sb = new StringBuilder();
        if (section is null)
        {
            sb.Append(Header(summary));
        }
        foreach (var name in Sections.Where(s => section is null || s == section))
        {
            var rows = Items(summary, name);
            if (section is null)
            {
                sb.Append('\n').Append(name.ToUpperInvariant()).Append('\n');
            }
            if (rows.Count == 0)
            {
                sb.Append("(none)\n");
                continue;
            }
            sb.Append(name switch
            {
                "listeners" => Table.Render(["NAME", "ADDRESS", "DIRECTION", "CHAINS"], rows.Select(Listener)),
                "routes" => Table.Render(["TABLE", "VIRTUAL HOST", "DOMAINS", "NAME", "MATCH", "ACTION", "FILTERS"], rows.Select(Route)),
                "clusters" => Table.Render(["NAME", "TYPE", "LB", "BREAKERS", "OUTLIER", "MAX REQ/CONN"], rows.Select(Cluster)),
                _ => Table.Render(["CLUSTER", "ADDRESS", "HEALTH", "PRIORITY", "LOCALITY", "WEIGHT"], rows.Select(Endpoint)),
            });
        }
        return sb.ToString();
    }

    private static List<JsonNode> Items(JsonNode summary, string section) =>
        summary[section]?.AsArray().Where(i => i is not null).Select(i => i!).ToList() ?? [];

    private static string Header(JsonNode s)
    {
        var sb = new StringBuilder();
        var protocol = Text(s["protocol"]);
        sb.Append("node ").Append(Text(s["node"])).Append(protocol.Length > 0 ? $" ({protocol})" : "").Append(": ").Append(Text(s["state"]));
        if (Text(s["snapshotVersion"]) is { Length: > 0 } version)
        {
            sb.Append(", config version ").Append(version);
        }
        sb.Append('\n');
        var types = Items(s, "types");
        if (types.Count > 0)
        {
            sb.Append(Table.Render(["TYPE", "STATE", "SUBSCRIBED", "ACKED", "NACKED", "ERROR"], types.Select(t => (IReadOnlyList<string>)
            [
                Text(t["type"]), Text(t["state"]),
                t["wildcard"]?.GetValue<bool>() == true ? "*" : Count(t["subscribed"]),
                Text(t["ackedVersion"], "-"), Text(t["nackedVersion"], "-"), Text(t["nackError"]),
            ])));
        }
        return sb.ToString();
    }

    private static IReadOnlyList<string> Listener(JsonNode l) =>
    [
        Text(l["name"]), Text(l["address"]), Text(l["direction"]),
        string.Join("; ", Items(l, "chains").Select(c =>
            $"{(c["destinationPort"] is { } port ? port.ToString() : "*")} {Text(c["protocol"])} -> {Text(c["target"])}"
            + (Items(c, "httpFilters") is { Count: > 1 } filters ? $" [{string.Join(", ", filters.Select(f => Text(f)))}]" : ""))),
    ];

    private static IReadOnlyList<string> Route(JsonNode r)
    {
        var domains = Items(r, "domains").Select(d => Text(d)).ToList();
        var shown = domains.Count <= 3 ? string.Join(",", domains) : string.Join(",", domains.Take(3)) + $",+{domains.Count - 3}";
        return [Text(r["table"]), Text(r["virtualHost"]), shown, Text(r["name"]), Text(r["match"]), Text(r["action"]), string.Join("; ", Items(r, "filters").Select(f => Text(f)))];
    }

    private static IReadOnlyList<string> Cluster(JsonNode c) =>
        [Text(c["name"]), Text(c["type"], "-"), Text(c["lb"]), Text(c["breakers"]), Text(c["outlier"], "-"), Text(c["maxRequestsPerConnection"], "-")];

    private static IReadOnlyList<string> Endpoint(JsonNode e) =>
        [Text(e["cluster"]), Text(e["address"]), Text(e["health"]), Text(e["priority"]), Text(e["locality"], "-"), Text(e["weight"])];

    private static string Count(JsonNode? list) => list?.AsArray().Count.ToString(CultureInfo.InvariantCulture) ?? "0";

    private static string Text(JsonNode? node, string empty = "") =>
        node is null ? empty : node.GetValueKind() == System.Text.Json.JsonValueKind.String ? node.GetValue<string>() is { Length: > 0 } s ? s : empty : node.ToJsonString();

    // ---- a proxy's /config_dump (snake_case) in the control plane's summary shape ----

    /// <summary>Converts trellis-proxy's /config_dump to the summary shape, so both sources print the same tables.</summary>
    public static JsonObject FromConfigDump(JsonNode dump, string admin)
    {
        var listeners = new JsonArray();
        foreach (var l in Items(dump, "listeners"))
        {
            var chains = new JsonArray();
            foreach (var c in Items(l, "chains").Append(l["default_chain"]).Where(c => c is not null))
            {
                var http = c!["route_table"] is not null;
                chains.Add(new JsonObject
                {
                    ["name"] = Text(c["name"]),
                    ["destinationPort"] = c["destination_port"]?.DeepClone(),
                    ["protocol"] = http ? "http" : "tcp",
                    ["target"] = Text(http ? c["route_table"] : c["tcp_cluster"]),
                    ["httpFilters"] = new JsonArray(),
                });
            }
            listeners.Add(new JsonObject
            {
                ["name"] = Text(l["name"]), ["address"] = Text(l["address"]), ["direction"] = Text(l["direction"]), ["chains"] = chains,
            });
        }

        var routes = new JsonArray();
        foreach (var table in Items(dump, "route_tables"))
        {
            foreach (var vh in Items(table, "virtual_hosts"))
            {
                foreach (var r in Items(vh, "routes"))
                {
                    routes.Add(new JsonObject
                    {
                        ["table"] = Text(table["name"]),
                        ["virtualHost"] = Text(vh["name"]),
                        ["domains"] = vh["domains"]?.DeepClone() ?? new JsonArray(),
                        ["name"] = Text(r["name"]),
                        ["match"] = DumpMatch(r),
                        ["action"] = DumpAction(r),
                        ["filters"] = new JsonArray(DumpFilters(r).Select(f => (JsonNode?)JsonValue.Create(f)).ToArray()),
                    });
                }
            }
        }

        var clusters = new JsonArray();
        var endpoints = new JsonArray();
        foreach (var c in Items(dump, "clusters"))
        {
            var b = c["circuit_breakers"];
            clusters.Add(new JsonObject
            {
                ["name"] = Text(c["name"]),
                ["type"] = "",
                ["lb"] = UpperSnake(Text(c["load_balancer"])),
                ["breakers"] = b is null ? "default"
                    : $"connections={Text(b["max_connections"])} pending={Text(b["max_pending_requests"])} requests={Text(b["max_requests"])} retries={Text(b["max_retries"])}"
                      + (b["retry_budget_percent"] is { } budget ? $" retryBudget={Text(budget)}%" : ""),
                ["maxRequestsPerConnection"] = c["max_requests_per_connection"]?.DeepClone(),
            });
            foreach (var e in Items(c, "endpoints"))
            {
                endpoints.Add(new JsonObject
                {
                    ["cluster"] = Text(c["name"]),
                    ["address"] = Text(e["address"]),
                    ["health"] = Text(e["health"]),
                    ["priority"] = e["priority"]?.DeepClone(),
                    ["locality"] = string.Join('/', new[] { Text(e["region"]), Text(e["zone"]) }.Where(s => s.Length > 0)),
                    ["weight"] = e["weight"]?.DeepClone(),
                });
            }
        }

        var connection = dump["connection"];
        var ready = dump["ready"]?.GetValue<bool>() == true;
        return new JsonObject
        {
            ["node"] = $"local proxy at {admin}",
            ["protocol"] = "",
            ["state"] = (ready ? "READY" : "NOT READY") + (connection?["connected"]?.GetValue<bool>() == true
                ? $", connected to {Text(connection["address"])}"
                : $", control plane unreachable: {Text(connection?["last_error"], "unknown")}"),
            ["snapshotVersion"] = Text(dump["version"]),
            ["types"] = new JsonArray(),
            ["listeners"] = listeners,
            ["routes"] = routes,
            ["clusters"] = clusters,
            ["endpoints"] = endpoints,
        };
    }

    private static string DumpMatch(JsonNode r)
    {
        var parts = new List<string> { $"{Text(r["path_match"])} {Text(r["path"])}" };
        foreach (var h in Items(r, "headers"))
        {
            parts.Add(DumpHeader(h, ""));
        }
        foreach (var q in Items(r, "query_parameters"))
        {
            parts.Add(DumpHeader(q, "?"));
        }
        return string.Join(' ', parts);
    }

    private static string DumpHeader(JsonNode h, string prefix) =>
        (h["invert"]?.GetValue<bool>() == true ? "!" : "") + prefix + Text(h["name"])
        + (h["exact"] is { } exact ? "=" + Text(exact) : h["regex"] is { } regex ? "~" + Text(regex) : "");

    private static string DumpAction(JsonNode r)
    {
        if (r["direct_response_status"] is { } status)
        {
            return "direct " + Text(status);
        }
        if (r["redirect"]?.GetValue<bool>() == true)
        {
            return "redirect";
        }
        var clusters = Items(r, "clusters");
        return clusters.Count == 1
            ? "cluster " + Text(clusters[0]["cluster"])
            : "weighted " + string.Join(",", clusters.Select(c => $"{Text(c["cluster"])}={Text(c["weight"])}"));
    }

    private static IEnumerable<string> DumpFilters(JsonNode r)
    {
        if (r["fault"] is { } f)
        {
            var parts = new List<string>();
            if (f["delay_percent"]?.GetValue<double>() is > 0 and var delay)
            {
                parts.Add($"delay {Percent(delay)} {Seconds(f["delay_seconds"]?.GetValue<double>() ?? 0)}");
            }
            if (f["abort_percent"]?.GetValue<double>() is > 0 and var abort)
            {
                parts.Add($"abort {Percent(abort)} " + (f["abort_grpc_status"] is { } grpc ? $"grpc {Text(grpc)}" : $"http {Text(f["abort_http_status"])}"));
            }
            yield return "fault: " + (parts.Count == 0 ? "none" : string.Join(", ", parts));
        }
        if (r["rate_limit"] is { } l)
        {
            yield return $"ratelimit: {Text(l["max_tokens"])} tokens, +{Text(l["tokens_per_fill"])} every {Seconds(l["fill_interval_seconds"]?.GetValue<double>() ?? 0)}";
        }
    }

    /// <summary>The proxy's "RoundRobin" as Envoy and the control plane write it: "ROUND_ROBIN".</summary>
    private static string UpperSnake(string pascal) =>
        string.Concat(pascal.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant();

    private static string Percent(double p) => p.ToString("0.##", CultureInfo.InvariantCulture) + "%";

    private static string Seconds(double s) => s.ToString("0.###", CultureInfo.InvariantCulture) + "s";
}
