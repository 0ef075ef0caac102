using System.CommandLine;

namespace Trellis.Cli.Commands;

/// <summary>`trellis register` and `trellis deregister`: VM and bare-metal instances with TTL heartbeats.</summary>
internal static class RegisterCommand
{
    public static Command Create()
    {
        var service = new Option<string>("--service") { Description = "Service the instance belongs to", Required = true };
        var address = new Option<string>("--address") { Description = "Instance IP address", Required = true };
        var port = new Option<int?>("--port") { Description = "Instance port (for a service with one port)" };
        var ports = new Option<string[]>("--ports") { Description = "Instance ports as SERVICEPORT=PORT (name or number)", AllowMultipleArgumentsPerToken = true };
        var ns = CliOptions.Namespace();
        var zone = new Option<string?>("--zone") { Description = "Locality zone" };
        var region = new Option<string?>("--region") { Description = "Locality region" };
        var sa = new Option<string?>("--service-account") { Description = "Identity (service account) of the instance" };
        var weight = new Option<int?>("--weight") { Description = "Load-balancing weight" };
        var ttl = new Option<string>("--ttl") { Description = "Heartbeat deadline; unhealthy when it passes without one", DefaultValueFactory = _ => "30s" };
        var once = new Option<bool>("--once") { Description = "Register and exit (send heartbeats yourself with PUT /api/v1/registrations/ID/heartbeat)" };

        var cmd = new Command("register", "Register a VM or bare-metal instance and keep it alive with heartbeats until interrupted (then deregister)");
        foreach (var o in new Option[] { service, address, port, ports, ns, zone, region, sa, weight, ttl, once })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            var portMap = new Dictionary<string, int>();
            foreach (var p in parse.GetValue(ports) ?? [])
            {
                var eq = p.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0 || !int.TryParse(p[(eq + 1)..], out var value))
                {
                    throw new CliException($"--ports {p}: expected SERVICEPORT=PORT, e.g. grpc=50051", ExitCodes.Usage);
                }
                portMap[p[..eq]] = value;
            }
            if (parse.GetValue(port) is null && portMap.Count == 0)
            {
                throw new CliException("give the instance's port with --port PORT, or --ports NAME=PORT for a service with several ports", ExitCodes.Usage);
            }
            using var api = new ApiClient(CliOptions.ResolveServer(parse));
            var nsValue = parse.GetValue(ns)!;
            var body = await api.CallAsync(HttpMethod.Post, "api/v1/registrations", new
            {
                service = parse.GetValue(service),
                @namespace = nsValue,
                address = parse.GetValue(address),
                port = parse.GetValue(port),
                ports = portMap.Count > 0 ? portMap : null,
                zone = parse.GetValue(zone),
                region = parse.GetValue(region),
                serviceAccount = parse.GetValue(sa),
                weight = parse.GetValue(weight),
                ttl = parse.GetValue(ttl),
            }, ct).ConfigureAwait(false);
            var id = body!["id"]!.GetValue<string>();
            Console.WriteLine($"registered {id}");
            if (parse.GetValue(once))
            {
                return ExitCodes.Ok;
            }
            var ttlValue = Api.Durations.TryParse(parse.GetValue(ttl)!, out var parsedTtl) ? parsedTtl : TimeSpan.FromSeconds(30);
            var interval = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(200).Ticks, ttlValue.Ticks / 3));
            Console.WriteLine($"sending heartbeats every {Api.Durations.Format(interval)}; press Ctrl-C to deregister and stop");
            try
            {
                using var timer = new PeriodicTimer(interval);
                while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
                {
                    try
                    {
                        await api.CallAsync(HttpMethod.Put, $"api/v1/registrations/{Uri.EscapeDataString(id)}/heartbeat?namespace={Uri.EscapeDataString(nsValue)}", null, ct).ConfigureAwait(false);
                    }
                    catch (CliException ex)
                    {
                        Console.Error.WriteLine($"warning: heartbeat failed: {ex.Message}");
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await api.SendAsync(HttpMethod.Delete, $"api/v1/registrations/{Uri.EscapeDataString(id)}?namespace={Uri.EscapeDataString(nsValue)}", null, cts.Token).ConfigureAwait(false);
            Console.WriteLine($"deregistered {id}");
            return ExitCodes.Ok;
        }));
        return cmd;
    }

    public static Command CreateDeregister()
    {
        var id = new Argument<string>("ID") { Description = "Registration id printed by 'trellis register'" };
        var ns = CliOptions.Namespace();
        var cmd = new Command("deregister", "Remove a registered instance at once");
        cmd.Arguments.Add(id);
        cmd.Options.Add(ns);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            using var api = new ApiClient(CliOptions.ResolveServer(parse));
            var value = parse.GetValue(id)!;
            await api.CallAsync(HttpMethod.Delete, $"api/v1/registrations/{Uri.EscapeDataString(value)}?namespace={Uri.EscapeDataString(parse.GetValue(ns)!)}", null, ct).ConfigureAwait(false);
            Console.WriteLine($"deregistered {value}");
            return ExitCodes.Ok;
        }));
        return cmd;
    }
}
