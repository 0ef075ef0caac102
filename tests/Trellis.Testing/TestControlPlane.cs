using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Trellis.ControlPlane;
using Trellis.ControlPlane.Hosting;

namespace Trellis.Testing;

/// <summary>A control plane running in the test process on free loopback ports, with its own SQLite file.</summary>
public sealed class TestControlPlane : IAsyncDisposable
{
    private TestControlPlane(WebApplication app, ControlPlaneOptions options, string dataDir)
    {
        App = app;
        Options = options;
        DataDirectory = dataDir;
        Http = new HttpClient { BaseAddress = new Uri($"http://{options.HttpAddress}/") };
        Channel = GrpcChannel.ForAddress($"http://{options.GrpcAddress}");
    }

    public WebApplication App { get; }
    public ControlPlaneOptions Options { get; }
    public string DataDirectory { get; }
    public HttpClient Http { get; }
    public GrpcChannel Channel { get; }

    public T Get<T>() where T : notnull => App.Services.GetRequiredService<T>();

    public static async Task<TestControlPlane> StartAsync(TimeSpan? debounce = null, string? dataDir = null, TimeProvider? time = null)
    {
        dataDir ??= TestPaths.NewTempDir();
        var options = new ControlPlaneOptions
        {
            DataDirectory = dataDir,
            GrpcAddress = $"127.0.0.1:{FreePort()}",
            HttpAddress = $"127.0.0.1:{FreePort()}",
            Debounce = debounce ?? TimeSpan.FromMilliseconds(20),
        };
        var app = await ControlPlaneHost.BuildAsync(options, time, l => l.SetMinimumLevel(LogLevel.Warning));
        await app.StartAsync();
        var cp = new TestControlPlane(app, options, dataDir);
        await cp.WaitServingAsync();
        return cp;
    }

    private async Task WaitServingAsync()
    {
        try
        {
            await Get<Trellis.ControlPlane.XdsServer.SnapshotCache>().FirstPublished.WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException("control plane did not publish its first snapshot in 20 s");
        }
    }

    /// <summary>Applies YAML through the REST API; returns the response body.</summary>
    public async Task<JsonNode> ApplyAsync(string yaml, string fileName = "test.yaml", bool expectOk = true)
    {
        using var response = await Http.PostAsJsonAsync("api/v1/apply", new { files = new[] { new { name = fileName, content = yaml } } });
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        if (expectOk && !response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"apply failed ({(int)response.StatusCode}): {body.ToJsonString()}");
        }
        return body;
    }

    public async Task<JsonNode> GetJsonAsync(string path) => JsonNode.Parse(await Http.GetStringAsync(path.TrimStart('/')))!;

    /// <summary>First and count of the ports <see cref="FreePort"/> hands out: below the kernel's ephemeral range.</summary>
    private const int PortBase = 20000, PortCount = 12000;

    /// <summary>Where this process starts in the range, so concurrent test processes rarely meet.</summary>
    private static int s_portCounter = Random.Shared.Next(PortCount);

    /// <summary>
    /// A port free on 127.0.0.1 now, for a server the test starts next. Ports come from below the ephemeral range
    /// (32768 and up on Linux), one after another: an ephemeral port that was free a moment ago can be taken by any
    /// outgoing connection before the server binds it, which made tests fail with "address already in use".
    /// </summary>
    public static int FreePort()
    {
        for (var attempt = 0; attempt < PortCount; attempt++)
        {
            var port = PortBase + (int)((uint)Interlocked.Increment(ref s_portCounter) % PortCount);
            try
            {
                using var l = new TcpListener(IPAddress.Loopback, port);
                l.Start();
                return port;
            }
            catch (SocketException)
            {
                // In use (another test process, or a server of this one): try the next.
            }
        }
        throw new InvalidOperationException($"no free port on 127.0.0.1 between {PortBase} and {PortBase + PortCount - 1}");
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
