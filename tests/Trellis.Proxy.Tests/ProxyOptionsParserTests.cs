using System.Net;
using Xunit;

namespace Trellis.Proxy.Tests;

public sealed class ProxyOptionsParserTests
{
    [Fact]
    public void Parse_OnlyService_UsesDefaults()
    {
        var r = ProxyOptionsParser.Parse(["--service", "web"]);

        Assert.Null(r.Error);
        var o = r.Options!;
        Assert.Equal("web", o.Service);
        Assert.Equal("default", o.Namespace);
        Assert.Equal(new DnsEndPoint("127.0.0.1", 15010), Assert.Single(o.ControlPlanes));
        Assert.Equal(new IPEndPoint(IPAddress.Any, 15006), o.Inbound);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 15000), o.Admin);
        Assert.Equal(XdsProtocol.Delta, o.Protocol);
        Assert.False(o.Transparent);
        Assert.False(o.WaitReady);
        Assert.Equal(TimeSpan.FromMilliseconds(100), o.ProtocolDetectionTimeout);
        Assert.StartsWith("web.default~", o.NodeId, StringComparison.Ordinal);
        Assert.EndsWith($"~{Environment.ProcessId}", o.NodeId, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_AllFlags_AreRead()
    {
        var r = ProxyOptionsParser.Parse([
            "--service", "web", "-n", "shop", "--control-plane", "10.0.0.1:15010,cp2:16010", "--app-port", "8080",
            "--inbound", "127.0.0.1:16006", "--upstream", "greeter:50051=9001", "--upstream", "db.data:5432=127.0.0.2:9002",
            "--transparent", "--admin", "127.0.0.1:16000", "--wait-ready", "--node", "n1", "--xds-protocol", "sotw", "--join", "tok",
            "--protocol-detection-timeout", "250ms", "--outbound", "15001", "--region", "eu-west", "--zone", "eu-west-1b",
            "--sub-zone", "rack-3",
        ]);

        Assert.Null(r.Error);
        var o = r.Options!;
        Assert.Equal("shop", o.Namespace);
        Assert.Equal([new DnsEndPoint("10.0.0.1", 15010), new DnsEndPoint("cp2", 16010)], o.ControlPlanes);
        Assert.Equal(8080, o.AppPort);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 16006), o.Inbound);
        Assert.Equal(new UpstreamOption("greeter", "shop", 50051, new IPEndPoint(IPAddress.Loopback, 9001)), o.Upstreams[0]);
        Assert.Equal(new UpstreamOption("db", "data", 5432, new IPEndPoint(IPAddress.Parse("127.0.0.2"), 9002)), o.Upstreams[1]);
        Assert.True(o.Transparent);
        Assert.True(o.WaitReady);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 16000), o.Admin);
        Assert.Equal("n1", o.NodeId);
        Assert.Equal(XdsProtocol.Sotw, o.Protocol);
        Assert.Equal("tok", o.JoinToken);
        Assert.Equal(TimeSpan.FromMilliseconds(250), o.ProtocolDetectionTimeout);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 15001), o.Outbound);
        Assert.Equal(("eu-west", "eu-west-1b", "rack-3"), (o.Region, o.Zone, o.SubZone));
    }

    [Fact]
    public void ListenerTargets_Outbound_RoutesByHostWithNeitherClusterNorFixedAddress()
    {
        var o = ProxyOptionsParser.Parse(["--service", "web", "--outbound", "127.0.0.2:15001", "--upstream", "db:5432=9002", "--app-port", "8080"]).Options!;

        var targets = ProxyMain.ListenerTargets(o).ToList();

        Assert.Null(ProxyOptionsParser.Parse(["--service", "web"]).Options!.Outbound);
        Assert.Equal(3, targets.Count);
        var outbound = Assert.Single(targets, t => t.Name == "outbound");
        Assert.Equal(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 15001), outbound.Listen);
        Assert.Null(outbound.Cluster);
        Assert.Null(outbound.Fixed);
        Assert.Equal("db.default:5432", targets[0].Cluster);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 8080), targets[2].Fixed);
    }

    [Theory]
    [InlineData("100ms", 100)]
    [InlineData("1.5s", 1500)]
    [InlineData("2m", 120_000)]
    [InlineData("1h", 3_600_000)]
    public void Parse_DetectionTimeout_ReadsUnits(string value, int ms)
    {
        var r = ProxyOptionsParser.Parse(["--service", "web", "--protocol-detection-timeout", value]);

        Assert.Equal(TimeSpan.FromMilliseconds(ms), r.Options!.ProtocolDetectionTimeout);
    }

    [Fact]
    public void Parse_InlineValueWithEquals_IsRead()
    {
        var r = ProxyOptionsParser.Parse(["--service=web", "--inbound=16006"]);

        Assert.Equal("web", r.Options!.Service);
        Assert.Equal(16006, r.Options.Inbound.Port);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void Parse_Help_AsksForUsage(string flag)
    {
        var r = ProxyOptionsParser.Parse(["--service", "web", flag]);

        Assert.True(r.Help);
        Assert.Null(r.Error);
    }

    [Theory]
    [InlineData(new string[0], "--service is required")]
    [InlineData(new[] { "--service" }, "--service needs a value")]
    [InlineData(new[] { "--service", "Web!" }, "--service: expected a service name")]
    [InlineData(new[] { "--service", "web", "-n", "Bad_NS" }, "-n: expected a namespace name")]
    [InlineData(new[] { "--service", "web", "--control-plane", "nohost" }, "--control-plane: expected HOST:PORT")]
    [InlineData(new[] { "--service", "web", "--control-plane", "a:1,b:99999" }, "--control-plane: expected HOST:PORT[,HOST:PORT...], got 'b:99999'")]
    [InlineData(new[] { "--service", "web", "--app-port", "0" }, "--app-port: expected a port 1-65535, got '0'")]
    [InlineData(new[] { "--service", "web", "--app-port", "http" }, "--app-port: expected a port")]
    [InlineData(new[] { "--service", "web", "--inbound", "localhost:15006" }, "--inbound: expected [ADDR:]PORT")]
    [InlineData(new[] { "--service", "web", "--admin", "127.0.0.1:x" }, "--admin: expected ADDR:PORT")]
    [InlineData(new[] { "--service", "web", "--upstream", "greeter=9001" }, "--upstream: expected SERVICE[.NS]:PORT=[ADDR:]LOCALPORT")]
    [InlineData(new[] { "--service", "web", "--upstream", "greeter:50051" }, "--upstream: expected")]
    [InlineData(new[] { "--service", "web", "--upstream", "greeter:50051=host:1" }, "--upstream: expected")]
    [InlineData(new[] { "--service", "web", "--xds-protocol", "rest" }, "--xds-protocol: expected 'delta' or 'sotw', got 'rest'")]
    [InlineData(new[] { "--service", "web", "--node", "" }, "--node: expected a non-empty node id")]
    [InlineData(new[] { "--service", "web", "--zone", "Zone A" }, "--zone: expected a locality name (lower-case letters, digits, '-'), got 'Zone A'")]
    [InlineData(new[] { "--service", "web", "--region" }, "--region")]
    [InlineData(new[] { "--service", "web", "--protocol-detection-timeout", "100" }, "--protocol-detection-timeout: expected a positive duration such as 100ms, 1s or 1m, got '100'")]
    [InlineData(new[] { "--service", "web", "--protocol-detection-timeout", "0s" }, "--protocol-detection-timeout: expected a positive duration")]
    [InlineData(new[] { "--service", "web", "--protocol-detection-timeout", "-1s" }, "--protocol-detection-timeout")]
    [InlineData(new[] { "--service", "web", "--protocol-detection-timeout", "5d" }, "--protocol-detection-timeout: expected a positive duration")]
    [InlineData(new[] { "--service", "web", "--outbound", "host:15001" }, "--outbound: expected [ADDR:]PORT with an IP literal and a port 1-65535, got 'host:15001'")]
    [InlineData(new[] { "--service", "web", "--app-port", "8080", "--inbound-tls-cert", "a.crt" }, "--inbound-tls-cert needs --inbound-tls-key")]
    [InlineData(new[] { "--service", "web", "--app-port", "8080", "--inbound-tls-key", "a.key" }, "--inbound-tls-key needs --inbound-tls-cert")]
    [InlineData(new[] { "--service", "web", "--inbound-tls-cert", "a.crt", "--inbound-tls-key", "a.key" }, "no inbound listener without --app-port")]
    [InlineData(new[] { "--service", "web", "--bogus" }, "unknown flag '--bogus'")]
    [InlineData(new[] { "--service", "web", "--admin", "--wait-ready" }, "--admin needs a value")]
    public void Parse_BadFlag_ErrorNamesFlagAndExpectation(string[] args, string expected)
    {
        var r = ProxyOptionsParser.Parse(args);

        Assert.Null(r.Options);
        Assert.Contains(expected, r.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_UsageError_ExitsWith2()
    {
        var code = await ProxyMain.RunAsync(["--service", "web", "--app-port", "nope"]);

        Assert.Equal(2, code);
    }

    [Fact]
    public async Task RunAsync_Help_ExitsWith0()
    {
        var code = await ProxyMain.RunAsync(["--help"]);

        Assert.Equal(0, code);
    }

    [Fact]
    public void ListenerTargets_InboundTls_OnlyTheInboundListenerTerminatesTls()
    {
        var r = ProxyOptionsParser.Parse(["--service", "web", "--app-port", "8080", "--upstream", "greeter:50051=9001",
            "--inbound-tls-cert", "/etc/web/tls.crt", "--inbound-tls-key", "/etc/web/tls.key"]);
        Assert.Null(r.Error);
        Assert.Equal("/etc/web/tls.crt", r.Options!.InboundTlsCert);
        Assert.Equal("/etc/web/tls.key", r.Options.InboundTlsKey);
        var ca = Trellis.Testing.TestCertificates.CreateCa();
        var tls = new Trellis.Proxy.Security.DownstreamTls(Trellis.Testing.TestCertificates.IssueServer(ca, "web"), []);

        var targets = ProxyMain.ListenerTargets(r.Options, tls).ToList();

        Assert.Same(tls, Assert.Single(targets, t => t.Name == "inbound").Tls);
        Assert.Null(Assert.Single(targets, t => t.Name != "inbound").Tls);
    }

    [Fact]
    public async Task RunAsync_UnreadableInboundCertificate_ExitsWith1()
    {
        var code = await ProxyMain.RunAsync(["--service", "web", "--app-port", "8080", "--control-plane", "127.0.0.1:1",
            "--inbound-tls-cert", "/nonexistent/tls.crt", "--inbound-tls-key", "/nonexistent/tls.key"]);

        Assert.Equal(1, code);
    }

    [Fact]
    public async Task RunAsync_AdminPortTaken_ExitsWith1()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var code = await ProxyMain.RunAsync(["--service", "web", "--control-plane", "127.0.0.1:1", "--admin", $"127.0.0.1:{port}"]);

        Assert.Equal(1, code);
    }
}
