using System.Globalization;
using System.Net;

namespace Trellis.Proxy;

public enum XdsProtocol { Delta, Sotw }

/// <summary>An explicit outbound listener: SERVICE[.NS]:PORT reached through [ADDR:]LOCALPORT.</summary>
public sealed record UpstreamOption(string Service, string Namespace, int Port, IPEndPoint Local);

/// <summary>The proxy's command line (see INTERFACES.md, "Proxy flags").</summary>
public sealed class ProxyOptions
{
    public const string Usage = """
        usage: trellis-proxy --service NAME [-n NS] [--control-plane HOST:PORT[,HOST:PORT...]]
                             [--app-port PORT] [--inbound [ADDR:]PORT]
                             [--inbound-tls-cert FILE --inbound-tls-key FILE]
                             [--upstream SERVICE[.NS]:PORT=[ADDR:]LOCALPORT]... [--outbound [ADDR:]PORT]
                             [--transparent]
                             [--admin 127.0.0.1:15000] [--join TOKEN] [--wait-ready] [--node ID]
                             [--region R] [--zone Z] [--sub-zone S]
                             [--xds-protocol delta|sotw] [--protocol-detection-timeout DURATION]
          --service NAME         the service this sidecar serves (required)
          -n, --namespace NS     its namespace (default: default)
          --control-plane LIST   control-plane gRPC addresses, tried in order (default 127.0.0.1:15010)
          --app-port PORT        inbound: forward accepted calls to 127.0.0.1:PORT
          --inbound [ADDR:]PORT  where mesh traffic for this workload arrives (default 15006)
          --inbound-tls-cert FILE, --inbound-tls-key FILE
                                 terminate TLS on the inbound listener with this PEM certificate chain
                                 (leaf first) and PEM key; ALPN offers h2 and http/1.1. Without them TLS
                                 connections are relayed to the application untouched
          --upstream SPEC        explicit outbound listener, repeatable
          --outbound [ADDR:]PORT shared outbound listener (default off; ADDR defaults to 127.0.0.1): HTTP
                                 requests on it are routed by their Host header through the mesh's routes
          --transparent          use capture ports 15001/15006 (after `trellis iptables apply`)
          --admin ADDR:PORT      admin endpoint (default 127.0.0.1:15000)
          --join TOKEN           join token
          --wait-ready           print "ready" on stdout once the first complete config is applied
          --node ID              node id (default NAME.NS~HOST~PID)
          --region R, --zone Z, --sub-zone S
                                 where this workload runs: sent as the node's locality, so a TrafficPolicy
                                 with failover.order prefers endpoints in the same zone or region
          --xds-protocol MODE    delta (default) or sotw
          --protocol-detection-timeout DURATION
                                 how long a new connection may stay silent before it is taken for a
                                 server-first TCP protocol (default 100ms; e.g. 250ms, 1s)
        Run with DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 (socket completions then run on the I/O thread,
        which the proxy's data path is written for) and DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION=1024
        (enough pooled buffers for hundreds of HTTP/2 streams); `trellis proxy` sets both.
        """;

    public required string Service { get; init; }
    public string Namespace { get; init; } = "default";
    public IReadOnlyList<DnsEndPoint> ControlPlanes { get; init; } = [new DnsEndPoint("127.0.0.1", 15010)];
    public int? AppPort { get; init; }
    public IPEndPoint Inbound { get; init; } = new(IPAddress.Any, 15006);

    /// <summary>PEM certificate chain and key for TLS on the inbound listener (both or neither).</summary>
    public string? InboundTlsCert { get; init; }
    public string? InboundTlsKey { get; init; }
    public IReadOnlyList<UpstreamOption> Upstreams { get; init; } = [];

    /// <summary>The shared outbound listener (routes HTTP by Host), or null when off.</summary>
    public IPEndPoint? Outbound { get; init; }
    public bool Transparent { get; init; }
    public IPEndPoint Admin { get; init; } = new(IPAddress.Loopback, 15000);
    public string? JoinToken { get; init; }
    public bool WaitReady { get; init; }
    public string? Node { get; init; }

    /// <summary>The workload's locality (--region, --zone, --sub-zone); empty parts are unknown.</summary>
    public string Region { get; init; } = "";
    public string Zone { get; init; } = "";
    public string SubZone { get; init; } = "";
    public XdsProtocol Protocol { get; init; } = XdsProtocol.Delta;

    /// <summary>How long detection waits for a new connection's first bytes before it relays it as opaque TCP.</summary>
    public TimeSpan ProtocolDetectionTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>On SIGTERM, how long connections in flight may take to finish after the listeners close.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The node id sent to the control plane.</summary>
    public string NodeId => Node ?? $"{Service}.{Namespace}~{Dns.GetHostName()}~{Environment.ProcessId}";
}

/// <summary>Result of parsing: options, or help requested, or a usage error.</summary>
public sealed record ProxyOptionsParseResult(ProxyOptions? Options, bool Help, string? Error);

public static class ProxyOptionsParser
{
    public static ProxyOptionsParseResult Parse(IReadOnlyList<string> args)
    {
        string? service = null, ns = null, node = null, join = null, tlsCert = null, tlsKey = null;
        string region = "", zone = "", subZone = "";
        IReadOnlyList<DnsEndPoint>? cps = null;
        int? appPort = null;
        IPEndPoint? inbound = null, admin = null, outbound = null;
        var upstreams = new List<UpstreamOption>();
        bool transparent = false, waitReady = false;
        var protocol = XdsProtocol.Delta;
        TimeSpan? detectionTimeout = null;

        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string? inline = null;
            var eq = arg.StartsWith("--", StringComparison.Ordinal) ? arg.IndexOf('=', StringComparison.Ordinal) : -1;
            if (eq > 0)
            {
                inline = arg[(eq + 1)..];
                arg = arg[..eq];
            }

            string? error = null;
            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }
                if (i + 1 >= args.Count || (args[i + 1].StartsWith('-') && args[i + 1].Length > 1))
                {
                    error = $"{arg} needs a value";
                    return "";
                }
                return args[++i];
            }

            switch (arg)
            {
                case "-h" or "--help":
                    return new(null, true, null);
                case "--service" or "-s":
                    service = Value();
                    if (error is null && !IsName(service))
                    {
                        error = $"--service: expected a service name (lower-case letters, digits, '-'), got '{service}'";
                    }
                    break;
                case "-n" or "--namespace":
                    ns = Value();
                    if (error is null && !IsName(ns))
                    {
                        error = $"{arg}: expected a namespace name (lower-case letters, digits, '-'), got '{ns}'";
                    }
                    break;
                case "--control-plane":
                    {
                        var v = Value();
                        if (error is null)
                        {
                            var list = new List<DnsEndPoint>();
                            foreach (var part in v.Split(',', StringSplitOptions.TrimEntries))
                            {
                                if (!TryHostPort(part, out var ep))
                                {
                                    error = $"--control-plane: expected HOST:PORT[,HOST:PORT...], got '{part}' in '{v}'";
                                    break;
                                }
                                list.Add(ep);
                            }
                            cps = list;
                        }
                        break;
                    }
                case "--app-port":
                    {
                        var v = Value();
                        if (error is null)
                        {
                            if (TryPort(v, out var p))
                            {
                                appPort = p;
                            }
                            else
                            {
                                error = $"--app-port: expected a port 1-65535, got '{v}'";
                            }
                        }
                        break;
                    }
                case "--inbound":
                    {
                        var v = Value();
                        if (error is null && !TryAddrPort(v, IPAddress.Any, out inbound))
                        {
                            error = $"--inbound: expected [ADDR:]PORT with an IP literal and a port 1-65535, got '{v}'";
                        }
                        break;
                    }
                case "--outbound":
                    {
                        var v = Value();
                        if (error is null && !TryAddrPort(v, IPAddress.Loopback, out outbound))
                        {
                            error = $"--outbound: expected [ADDR:]PORT with an IP literal and a port 1-65535, got '{v}'";
                        }
                        break;
                    }
                case "--admin":
                    {
                        var v = Value();
                        if (error is null && !TryAddrPort(v, IPAddress.Loopback, out admin))
                        {
                            error = $"--admin: expected ADDR:PORT with an IP literal and a port 1-65535, got '{v}'";
                        }
                        break;
                    }
                case "--upstream":
                    {
                        var v = Value();
                        if (error is null)
                        {
                            if (TryUpstream(v, out var up))
                            {
                                upstreams.Add(up);
                            }
                            else
                            {
                                error = $"--upstream: expected SERVICE[.NS]:PORT=[ADDR:]LOCALPORT (e.g. greeter:50051=9001), got '{v}'";
                            }
                        }
                        break;
                    }
                case "--transparent":
                    transparent = true;
                    break;
                case "--wait-ready":
                    waitReady = true;
                    break;
                case "--join":
                    join = Value();
                    break;
                case "--node":
                    node = Value();
                    if (error is null && string.IsNullOrWhiteSpace(node))
                    {
                        error = "--node: expected a non-empty node id";
                    }
                    break;
                case "--region" or "--zone" or "--sub-zone":
                    {
                        var v = Value();
                        if (error is null && !IsName(v))
                        {
                            error = $"{arg}: expected a locality name (lower-case letters, digits, '-'), got '{v}'";
                        }
                        else if (arg == "--region")
                        {
                            region = v;
                        }
                        else if (arg == "--zone")
                        {
                            zone = v;
                        }
                        else
                        {
                            subZone = v;
                        }
                        break;
                    }
                case "--inbound-tls-cert" or "--inbound-tls-key":
                    {
                        var v = Value();
                        if (error is null && v.Length == 0)
                        {
                            error = $"{arg}: expected a file name";
                        }
                        else if (arg == "--inbound-tls-cert")
                        {
                            tlsCert = v;
                        }
                        else
                        {
                            tlsKey = v;
                        }
                        break;
                    }
                case "--xds-protocol":
                    {
                        var v = Value();
                        if (error is null)
                        {
                            switch (v)
                            {
                                case "delta": protocol = XdsProtocol.Delta; break;
                                case "sotw": protocol = XdsProtocol.Sotw; break;
                                default: error = $"--xds-protocol: expected 'delta' or 'sotw', got '{v}'"; break;
                            }
                        }
                        break;
                    }
                case "--protocol-detection-timeout":
                    {
                        var v = Value();
                        if (error is null)
                        {
                            if (TryDuration(v, out var d) && d > TimeSpan.Zero)
                            {
                                detectionTimeout = d;
                            }
                            else
                            {
                                error = $"--protocol-detection-timeout: expected a positive duration such as 100ms, 1s or 1m, got '{v}'";
                            }
                        }
                        break;
                    }
                default:
                    error = $"unknown flag '{args[i]}' (see --help)";
                    break;
            }
            if (error is not null)
            {
                return new(null, false, error);
            }
        }

        if (service is null)
        {
            return new(null, false, "--service is required: the name of the service this sidecar serves");
        }
        if ((tlsCert is null) != (tlsKey is null))
        {
            return new(null, false, tlsCert is null
                ? "--inbound-tls-key needs --inbound-tls-cert: give the certificate chain (PEM) that goes with the key"
                : "--inbound-tls-cert needs --inbound-tls-key: give the private key (PEM) of the certificate");
        }
        if (tlsCert is not null && appPort is null)
        {
            return new(null, false, "--inbound-tls-cert: there is no inbound listener without --app-port; add --app-port PORT");
        }
        var resolvedNs = ns ?? "default";
        var resolvedUpstreams = new List<UpstreamOption>(upstreams.Count);
        foreach (var u in upstreams)
        {
            resolvedUpstreams.Add(u.Namespace.Length == 0 ? u with { Namespace = resolvedNs } : u);
        }
        var options = new ProxyOptions
        {
            Service = service,
            Namespace = resolvedNs,
            ControlPlanes = cps ?? [new DnsEndPoint("127.0.0.1", 15010)],
            AppPort = appPort,
            Inbound = inbound ?? new IPEndPoint(IPAddress.Any, 15006),
            InboundTlsCert = tlsCert,
            InboundTlsKey = tlsKey,
            Upstreams = resolvedUpstreams,
            Outbound = outbound,
            Transparent = transparent,
            Admin = admin ?? new IPEndPoint(IPAddress.Loopback, 15000),
            JoinToken = join,
            WaitReady = waitReady,
            Node = node,
            Region = region,
            Zone = zone,
            SubZone = subZone,
            Protocol = protocol,
            ProtocolDetectionTimeout = detectionTimeout ?? TimeSpan.FromMilliseconds(100),
        };
        return new(options, false, null);
    }

    private static bool IsName(string s)
    {
        if (s.Length == 0 || s.Length > 253)
        {
            return false;
        }
        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>A duration: a decimal number with a unit, ms, s, m or h (e.g. 100ms, 1.5s, 2m).</summary>
    internal static bool TryDuration(string s, out TimeSpan duration)
    {
        duration = default;
        var unitStart = s.Length;
        while (unitStart > 0 && char.IsAsciiLetterLower(s[unitStart - 1]))
        {
            unitStart--;
        }
        var scale = s[unitStart..] switch
        {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => 0.0,
        };
        if (scale == 0 || unitStart == 0 ||
            !double.TryParse(s.AsSpan(0, unitStart), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }
        var ms = number * scale;
        if (ms > TimeSpan.FromDays(1).TotalMilliseconds)
        {
            return false;
        }
        duration = TimeSpan.FromMilliseconds(ms);
        return true;
    }

    private static bool TryPort(string s, out int port) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and <= 65535;

    private static bool TryHostPort(string s, out DnsEndPoint ep)
    {
        ep = null!;
        var colon = s.LastIndexOf(':');
        if (colon <= 0 || !TryPort(s[(colon + 1)..], out var port))
        {
            return false;
        }
        var host = s[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        if (host.Length == 0 || host.Contains(' ', StringComparison.Ordinal))
        {
            return false;
        }
        ep = new DnsEndPoint(host, port);
        return true;
    }

    private static bool TryAddrPort(string s, IPAddress defaultAddress, out IPEndPoint? ep)
    {
        ep = null;
        var colon = s.LastIndexOf(':');
        if (colon < 0)
        {
            if (!TryPort(s, out var only))
            {
                return false;
            }
            ep = new IPEndPoint(defaultAddress, only);
            return true;
        }
        var addr = s[..colon];
        if (addr.StartsWith('[') && addr.EndsWith(']'))
        {
            addr = addr[1..^1];
        }
        if (!TryPort(s[(colon + 1)..], out var port) || !IPAddress.TryParse(addr, out var ip))
        {
            return false;
        }
        ep = new IPEndPoint(ip, port);
        return true;
    }

    private static bool TryUpstream(string s, out UpstreamOption up)
    {
        up = null!;
        var eq = s.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
        {
            return false;
        }
        var left = s[..eq];
        var colon = left.LastIndexOf(':');
        if (colon <= 0 || !TryPort(left[(colon + 1)..], out var port))
        {
            return false;
        }
        var name = left[..colon];
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        var svc = dot < 0 ? name : name[..dot];
        var ns = dot < 0 ? "" : name[(dot + 1)..];
        if (!IsName(svc) || (dot >= 0 && !IsName(ns)))
        {
            return false;
        }
        if (!TryAddrPort(s[(eq + 1)..], IPAddress.Loopback, out var local))
        {
            return false;
        }
        up = new UpstreamOption(svc, ns, port, local!);
        return true;
    }
}
