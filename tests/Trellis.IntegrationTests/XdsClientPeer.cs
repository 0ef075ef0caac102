using System.Text.Json;
using System.Text.Json.Serialization;

namespace Trellis.IntegrationTests;

/// <summary>Outcome of a batch of calls made by the xDS client peer.</summary>
public sealed record CallResult
{
    [JsonPropertyName("ok")]
    public int Ok { get; init; }

    [JsonPropertyName("failed")]
    public int Failed { get; init; }

    /// <summary>Backend name (the reply) to the number of calls it answered.</summary>
    [JsonPropertyName("byBackend")]
    public Dictionary<string, int> ByBackend { get; init; } = [];

    /// <summary>"CODE NAME: details" to how often it happened.</summary>
    [JsonPropertyName("errors")]
    public Dictionary<string, int> Errors { get; init; } = [];

    public int Count(string backend) => ByBackend.TryGetValue(backend, out var n) ? n : 0;

    /// <summary>Share of all calls (failed ones included) that <paramref name="backend"/> answered.</summary>
    public double Share(string backend) => Ok + Failed == 0 ? 0 : (double)Count(backend) / (Ok + Failed);

    /// <summary>True when every call succeeded and only the named backends answered (each at least once).</summary>
    public bool OnlyAndAll(params string[] backends) =>
        Failed == 0 && ByBackend.Keys.All(backends.Contains) && backends.All(b => Count(b) > 0);

    public override string ToString() => JsonSerializer.Serialize(this);
}

/// <summary>
/// Where the Node.js peers live (tests/xds-client) and the checks that they can run: node on PATH and
/// node_modules installed by `npm ci`.
/// </summary>
public static class XdsClientPeer
{
    private const string Hint = "run scripts/test.sh, which runs npm ci in tests/xds-client";

    private static readonly Lazy<string> Node = new(FindNode);

    public static string NodeExecutable => Node.Value;

    /// <summary>The tests/xds-client directory with its dependencies installed, or a failure that says how to get there.</summary>
    public static string Directory()
    {
        _ = NodeExecutable;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        for (var i = 0; i < 12 && dir is not null; i++, dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "xds-client");
            if (File.Exists(Path.Combine(candidate, "client.js")))
            {
                if (!File.Exists(Path.Combine(candidate, "node_modules", "@grpc", "grpc-js-xds", "package.json")))
                {
                    throw new InvalidOperationException($"{candidate}/node_modules is missing @grpc/grpc-js-xds; {Hint}");
                }
                return candidate;
            }
        }
        throw new InvalidOperationException($"tests/xds-client not found above {AppContext.BaseDirectory}; run the tests from the repository checkout ({Hint})");
    }

    private static string FindNode()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(dir, "node");
            if (File.Exists(path))
            {
                return path;
            }
        }
        throw new InvalidOperationException($"node (Node.js) is not on PATH; the xDS conformance tests drive gRPC's Node.js xDS client. Install nodejs and npm, then {Hint}");
    }

    /// <summary>Starts `node server.js NAME:PORT...` and waits for its "ready".</summary>
    public static async Task<NodeProcess> StartServersAsync(IReadOnlyDictionary<string, int> backends)
    {
        var p = NodeProcess.Start(Directory(), "server.js", backends.Select(b => $"{b.Key}:{b.Value}"));
        try
        {
            var line = await p.ReadLineAsync(TimeSpan.FromSeconds(30));
            if (line != "ready")
            {
                throw new InvalidOperationException($"server.js said \"{line}\" instead of ready; stderr:\n{p.Stderr}");
            }
            return p;
        }
        catch
        {
            await p.DisposeAsync();
            throw;
        }
    }
}

/// <summary>The long-running proxyless client (client.js) with its bootstrap file, driven one JSON command at a time.</summary>
public sealed class XdsClientProcess : IAsyncDisposable
{
    private readonly NodeProcess _process;

    private XdsClientProcess(NodeProcess process, string nodeId)
    {
        _process = process;
        NodeId = nodeId;
    }

    public string NodeId { get; }

    public string Stderr => _process.Stderr;

    /// <summary>Writes a bootstrap naming the control plane's ADS address and starts client.js with it.</summary>
    public static async Task<XdsClientProcess> StartAsync(string grpcAddress, string nodeId, string bootstrapDir)
    {
        var bootstrap = new
        {
            xds_servers = new[]
            {
                new { server_uri = grpcAddress, channel_creds = new[] { new { type = "insecure" } }, server_features = new[] { "xds_v3" } },
            },
            node = new { id = nodeId, cluster = "conformance", locality = new { region = "local", zone = "zone-a" } },
        };
        var path = Path.Combine(bootstrapDir, "bootstrap.json");
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(bootstrap));
        var env = new Dictionary<string, string> { ["GRPC_XDS_BOOTSTRAP"] = path };
        var process = NodeProcess.Start(XdsClientPeer.Directory(), "client.js", [], env);
        var client = new XdsClientProcess(process, nodeId);
        try
        {
            var pong = await client.SendAsync("""{"cmd":"ping"}""", TimeSpan.FromSeconds(30));
            if (!pong.Contains("pong", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"client.js answered ping with {pong}");
            }
            return client;
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>Makes <paramref name="count"/> sequential SayHello calls to <paramref name="target"/>.</summary>
    public async Task<CallResult> CallAsync(string target, int count, int deadlineMs = 2000)
    {
        var command = JsonSerializer.Serialize(new { cmd = "call", target, count, deadlineMs });
        var timeout = TimeSpan.FromMilliseconds(Math.Clamp((long)count * deadlineMs + 10_000, 30_000, 180_000));
        var answer = await SendAsync(command, timeout);
        return JsonSerializer.Deserialize<CallResult>(answer) ?? throw new InvalidOperationException($"client.js answered {answer}");
    }

    private async Task<string> SendAsync(string command, TimeSpan timeout)
    {
        await _process.WriteLineAsync(command);
        return await _process.ReadLineAsync(timeout);
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
