using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Trellis.Proxy.Http.Http2.Hpack;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Hpack.Hpack;

namespace Trellis.Proxy.Tests.Http2.Hpack;

/// <summary>
/// HPACK against an independent implementation: Node.js's http2 client (nghttp2) sends requests on one
/// connection to a bare HTTP/2 peer in the test, which decodes their header blocks with <see cref="HpackDecoder"/>
/// and answers with blocks from <see cref="HpackEncoder"/>, which nghttp2 decodes and the script prints back.
/// </summary>
public sealed class HpackNodeInteropTests
{
    private const string Script = """
        const http2 = require('http2');
        const requests = JSON.parse(process.env.HPACK_REQUESTS);
        const session = http2.connect('http://127.0.0.1:' + process.env.HPACK_PORT);
        session.on('error', e => { console.error('session: ' + e); process.exit(2); });
        (async () => {
          for (const headers of requests) {
            const got = await new Promise((resolve, reject) => {
              const req = session.request(headers, { endStream: true });
              req.on('response', h => { req.resume(); req.on('end', () => resolve(h)); });
              req.on('error', reject);
            });
            console.log(JSON.stringify(got));
          }
          session.close();
        })().catch(e => { console.error('request: ' + e); process.exit(3); });
        """;

    private static readonly Dictionary<string, string>[] Requests =
    [
        new() { [":path"] = "/one?q=1", ["x-custom"] = "alpha", ["accept"] = "application/json", ["user-agent"] = "node-interop/1.0" },
        new() { [":path"] = "/two", ["x-custom"] = "alpha", ["accept"] = "application/json", ["user-agent"] = "node-interop/1.0", ["x-long"] = new string('L', 300) },
        new() { [":path"] = "/three", ["x-custom"] = "beta", ["accept"] = "text/plain", ["user-agent"] = "node-interop/1.0", ["x-long"] = new string('L', 300), ["x-text"] = "Gruesse, \"quoted\" & <tags> ~ `~` {} %7E \\ ^|" },
    ];

    private static readonly int[] Statuses = [200, 404, 302];

    [Fact]
    public async Task Nghttp2_RequestsAndResponsesOnOneConnection_BothSidesDecodeTheOther()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var node = StartNode(port);
        var stdout = new List<string>();
        var stderr = new StringBuilder();
        var stderrTask = node.StandardError.ReadToEndAsync(ct).ContinueWith(t => stderr.Append(t.IsCompletedSuccessfully ? t.Result : ""), TaskScheduler.Default);
        try
        {
            using var client = await listener.AcceptTcpClientAsync(ct);
            var stream = client.GetStream();
            var preface = new byte[24];
            await stream.ReadExactlyAsync(preface, ct);
            Assert.Equal("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Encoding.ASCII.GetString(preface));
            await WriteFrameAsync(stream, type: 4, flags: 0, streamId: 0, ReadOnlyMemory<byte>.Empty, ct); // our (empty) SETTINGS

            var decoder = new HpackDecoder();
            var encoder = new HpackEncoder();
            var blockSizes = new List<int>();
            var answered = 0;
            var header = new byte[9];
            while (answered < Requests.Length)
            {
                await stream.ReadExactlyAsync(header, ct);
                var length = (header[0] << 16) | (header[1] << 8) | header[2];
                var type = header[3];
                var flags = header[4];
                var streamId = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & 0x7fffffff;
                var payload = new byte[length];
                await stream.ReadExactlyAsync(payload, ct);
                if (type == 4 && (flags & 1) == 0)
                {
                    await WriteFrameAsync(stream, type: 4, flags: 1, streamId: 0, ReadOnlyMemory<byte>.Empty, ct); // SETTINGS ACK
                }
                if (type == 7)
                {
                    var code = BinaryPrimitives.ReadInt32BigEndian(payload.AsSpan(4));
                    Assert.Fail($"nghttp2 closed the connection after {answered} responses: GOAWAY with error code {code} (9 is COMPRESSION_ERROR)");
                }
                if (type != 1)
                {
                    continue;
                }
                Assert.True((flags & 0x4) != 0, "expected END_HEADERS: the blocks are small");
                var block = HeaderBlockOf(payload, flags);
                blockSizes.Add(block.Length);
                var fields = Decode(decoder, block);
                AssertRequest(Requests[answered], port, fields);

                var response = new ArrayBufferWriter<byte>();
                encoder.BeginBlock(response);
                encoder.WriteStatus(response, Statuses[answered]);
                foreach (var (name, value) in ResponseFields(fields))
                {
                    encoder.WriteHeader(response, Encoding.UTF8.GetBytes(name), Encoding.UTF8.GetBytes(value),
                        name == "set-cookie" ? HpackIndexing.NeverIndexed : HpackIndexing.Incremental);
                }
                await WriteFrameAsync(stream, type: 1, flags: 0x5, streamId, response.WrittenMemory, ct); // END_STREAM | END_HEADERS
                answered++;
            }
            // nghttp2 indexes: the third request repeats the 300-byte x-long (and more) by index.
            Assert.True(decoder.DynamicTableCount >= 4, $"dynamic table: {decoder.DynamicTableCount} entries");
            Assert.True(blockSizes[2] < blockSizes[1] / 2, $"block sizes {string.Join(", ", blockSizes)}");

            for (var i = 0; i < Requests.Length; i++)
            {
                var line = await node.StandardOutput.ReadLineAsync(ct);
                Assert.True(line is not null, $"node ended early: {stderr}");
                stdout.Add(line);
            }
        }
        finally
        {
            if (!node.HasExited)
            {
                node.Kill(entireProcessTree: true);
            }
            await node.WaitForExitAsync(CancellationToken.None);
            await stderrTask;
        }
        for (var i = 0; i < Requests.Length; i++)
        {
            using var json = JsonDocument.Parse(stdout[i]);
            var got = json.RootElement;
            Assert.Equal(Statuses[i], got.GetProperty(":status").GetInt32());
            foreach (var (name, value) in ExpectedResponse(i))
            {
                Assert.True(got.TryGetProperty(name, out var actual), $"response {i} lacks {name}: {stdout[i]}");
                Assert.Equal(value, actual.ValueKind == JsonValueKind.Array ? actual[0].GetString() : actual.GetString());
            }
        }
    }

    private static Process StartNode(int port)
    {
        var psi = new ProcessStartInfo(FindNode())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        psi.ArgumentList.Add("-e");
        psi.ArgumentList.Add(Script);
        psi.Environment["HPACK_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["HPACK_REQUESTS"] = JsonSerializer.Serialize(Requests);
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start node");
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
        throw new InvalidOperationException("node is not on PATH: this test drives Node.js's http2 client (nghttp2); install nodejs");
    }

    /// <summary>The header block fragment of a HEADERS frame, without padding and priority fields.</summary>
    private static byte[] HeaderBlockOf(byte[] payload, byte flags)
    {
        var start = 0;
        var end = payload.Length;
        if ((flags & 0x8) != 0)
        {
            end -= payload[0];
            start = 1;
        }
        if ((flags & 0x20) != 0)
        {
            start += 5;
        }
        return payload[start..end];
    }

    private static void AssertRequest(Dictionary<string, string> sent, int port, List<Field> fields)
    {
        var got = new Dictionary<string, string>();
        foreach (var f in fields)
        {
            Assert.True(got.TryAdd(f.Name, Encoding.UTF8.GetString(Latin1(f.Value))), $"duplicate {f.Name}");
            Assert.Equal(HpackStaticTable.FindName(Latin1(f.Name)), f.StaticNameIndex);
        }
        Assert.Equal("GET", got[":method"]);
        Assert.Equal("http", got[":scheme"]);
        Assert.Equal($"127.0.0.1:{port}", got[":authority"]);
        foreach (var (name, value) in sent)
        {
            Assert.True(got.TryGetValue(name, out var actual), $"request lacks {name}");
            Assert.Equal(value, actual);
        }
    }

    private static List<(string, string)> ResponseFields(List<Field> request)
    {
        var path = request.First(f => f.Name == ":path").Value;
        var custom = request.First(f => f.Name == "x-custom").Value;
        return
        [
            ("content-type", "application/json"),
            ("x-request-path", path),
            ("x-echo-custom", custom),
            ("set-cookie", "session=" + custom + "; Path=/; HttpOnly"),
            ("x-long", new string('v', 500)),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ];
    }

    private static List<(string, string)> ExpectedResponse(int i)
    {
        var sent = Requests[i];
        return ResponseFields(
        [
            new(":path", sent[":path"]),
            new("x-custom", sent["x-custom"]),
        ]);
    }

    private static async Task WriteFrameAsync(NetworkStream stream, byte type, byte flags, int streamId, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), streamId);
        payload.Span.CopyTo(frame.AsSpan(9));
        await stream.WriteAsync(frame, ct);
    }
}
