using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary><see cref="Http2ServerConnection"/> serving real HTTP/2 clients: HttpClient, h2load, Node's http2.</summary>
public sealed partial class Http2ServerRealClientTests(ITestOutputHelper log)
{
    private static HttpClient H2cClient() => new(new SocketsHttpHandler())
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(20),
    };

    [Fact]
    public async Task HttpClient_Get_ReturnsStatusHeadersAndBody()
    {
        await using var server = new TestH2Server(H2Handlers.HelloAsync);
        using var client = H2cClient();

        using var response = await client.GetAsync(server.Url("/a/b?c=1"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("trellis", Assert.Single(response.Headers.GetValues("x-served-by")));
        Assert.Equal("hello /a/b?c=1", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task HttpClient_RequestHead_ReachesHandlerAsMethodPathAuthorityAndFields()
    {
        string? seen = null;
        await using var server = new TestH2Server(async stream =>
        {
            stream.TryGetField("x-test"u8, out var value);
            seen = $"{stream.Method} {stream.Scheme} {stream.Authority} {stream.Path} x-test={Encoding.ASCII.GetString(value)} fields={stream.GetFields().Count}";
            await stream.WriteResponseHeadAsync(204, null, endStream: true);
        });
        using var client = H2cClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, server.Url("/head"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.Add("x-test", "yes");

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.NotNull(seen);
        Assert.StartsWith($"GET http 127.0.0.1:{server.Port} /head x-test=yes", seen, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HttpClient_Post1MbToSlowHandler_FlowControlHoldsClientBackAndBodyArrivesWhole()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = new MemoryStream();
        await using var server = new TestH2Server(async stream =>
        {
            await gate.Task;
            var buffer = new byte[1024];
            int n;
            while ((n = await stream.ReadDataAsync(buffer)) > 0)
            {
                received.Write(buffer, 0, n);
                await Task.Yield();
            }
            await stream.WriteResponseHeadAsync(200, null, endStream: false);
            await stream.WriteDataAsync(Encoding.ASCII.GetBytes($"received {received.Length}"), endStream: true);
        });
        using var client = H2cClient();
        var body = new byte[1024 * 1024];
        Random.Shared.NextBytes(body);
        var content = new CountingContent(body);

        var post = client.PostAsync(server.Url("/upload"), content);
        // The handler reads nothing yet: the client may send one stream window (65535 bytes) and no more.
        await Eventually.WaitAsync(() => content.Pulled >= 60_000, "the client to send the first window of the body");
        var pulledWhileBlocked = content.Pulled;
        gate.SetResult();
        using var response = await post;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("received 1048576", await response.Content.ReadAsStringAsync());
        Assert.Equal(body, received.ToArray());
        Assert.InRange(pulledWhileBlocked, 60_000, 512 * 1024);
    }

    [Fact]
    public async Task HttpClient_200ConcurrentRequestsWithMaxConcurrentStreams100_AllSucceedOnOneConnection()
    {
        var active = 0;
        var maxActive = 0;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestH2Server(async stream =>
        {
            var now = Interlocked.Increment(ref active);
            InterlockedMax(ref maxActive, now);
            if (now >= 50)
            {
                release.TrySetResult();
            }
            await release.Task;
            Interlocked.Decrement(ref active);
            await H2Handlers.HelloAsync(stream);
        }, new Http2ServerOptions { MaxConcurrentStreams = 100 });
        using var client = H2cClient();

        var requests = Enumerable.Range(0, 200).Select(i => client.GetStringAsync(server.Url($"/r{i}"))).ToArray();
        var bodies = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"hello /r{i}"), bodies);
        Assert.Equal(1, server.Accepted);
        Assert.InRange(maxActive, 1, 100);
    }

    [Fact]
    public async Task HttpClient_16ParallelLargeResponses_AllArriveWhole()
    {
        var body = new byte[2 * 1024 * 1024];
        Random.Shared.NextBytes(body);
        await using var server = new TestH2Server(async stream =>
        {
            await stream.WriteResponseHeadAsync(200, [new("content-length", body.Length.ToString())], endStream: false);
            // Many writers at once: the connection's queued output stays bounded and every writer gets its turn.
            for (var at = 0; at < body.Length; at += 100_000)
            {
                var n = Math.Min(100_000, body.Length - at);
                await stream.WriteDataAsync(body.AsMemory(at, n), endStream: at + n == body.Length);
            }
        });
        using var client = H2cClient();

        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => client.GetByteArrayAsync(server.Url($"/big{i}")))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.All(responses, r => Assert.True(r.AsSpan().SequenceEqual(body), "a response body differs from what the handler wrote"));
        Assert.Equal(1, server.Accepted);
    }

    [Fact]
    public async Task H2load_2000RequestsOver4Connections_AllSucceed()
    {
        if (Tools.FindOnPath("h2load") is not { } h2load)
        {
            log.WriteLine("SKIPPED: h2load (Debian nghttp2-client) is not on PATH");
            return;
        }
        await using var server = new TestH2Server(H2Handlers.HelloAsync);

        var (exitCode, output) = await Tools.RunAsync(h2load, ["-n", "2000", "-c", "4", "-m", "10", server.Url("/")], TimeSpan.FromSeconds(60));
        log.WriteLine(output);

        Assert.Equal(0, exitCode);
        var match = RequestsLine().Match(output);
        Assert.True(match.Success, $"no 'requests:' line in h2load's output:\n{output}");
        Assert.Equal("2000", match.Groups["succeeded"].Value);
        Assert.Equal(4, server.Accepted);
    }

    private const string NodeClient = """
        const h2 = require('http2');
        const session = h2.connect('http://127.0.0.1:' + process.argv[1]);
        session.on('error', (e) => { console.log('session error ' + e.message); process.exit(2); });
        let done = 0;
        const results = [];
        function finish() { if (++done === 3) { console.log(JSON.stringify(results)); session.close(); } }
        for (const path of ['/one', '/two']) {
          const req = session.request({ ':path': path, 'x-node': 'yes' });
          let body = '';
          req.setEncoding('utf8');
          req.on('response', (h) => { results.push({ path, status: h[':status'], served: h['x-served-by'] }); });
          req.on('data', (d) => body += d);
          req.on('end', () => { results.push({ path, body }); finish(); });
          req.end();
        }
        const post = session.request({ ':method': 'POST', ':path': '/post' });
        let postBody = '';
        post.setEncoding('utf8');
        post.on('data', (d) => postBody += d);
        post.on('end', () => { results.push({ path: '/post', body: postBody }); finish(); });
        post.end(Buffer.alloc(300000, 7));
        setTimeout(() => { console.log('timeout'); process.exit(3); }, 20000).unref();
        """;

    [Fact]
    public async Task NodeHttp2Client_GetsAndPost_AnsweredCorrectly()
    {
        if (Tools.FindOnPath("node") is not { } node)
        {
            log.WriteLine("SKIPPED: node is not on PATH");
            return;
        }
        await using var server = new TestH2Server(H2Handlers.HelloAsync);

        var (exitCode, output) = await Tools.RunAsync(node, ["-e", NodeClient, server.Port.ToString()], TimeSpan.FromSeconds(30));
        log.WriteLine(output);

        Assert.Equal(0, exitCode);
        Assert.Contains("""{"path":"/one","status":200,"served":"trellis"}""", output, StringComparison.Ordinal);
        Assert.Contains("""{"path":"/one","body":"hello /one"}""", output, StringComparison.Ordinal);
        Assert.Contains("""{"path":"/two","body":"hello /two"}""", output, StringComparison.Ordinal);
        Assert.Contains("""{"path":"/post","body":"received 300000"}""", output, StringComparison.Ordinal);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) is var seen && seen != current)
        {
            current = seen;
        }
    }

    [GeneratedRegex(@"requests: (?<total>\d+) total, (?<started>\d+) started, (?<done>\d+) done, (?<succeeded>\d+) succeeded")]
    private static partial Regex RequestsLine();

    /// <summary>Content that counts how many bytes the client has taken from it.</summary>
    private sealed class CountingContent(byte[] body) : HttpContent
    {
        private long _pulled;

        public long Pulled => Interlocked.Read(ref _pulled);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            for (var at = 0; at < body.Length; at += 4096)
            {
                var n = Math.Min(4096, body.Length - at);
                Interlocked.Add(ref _pulled, n);
                await stream.WriteAsync(body.AsMemory(at, n));
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = body.Length;
            return true;
        }
    }
}
