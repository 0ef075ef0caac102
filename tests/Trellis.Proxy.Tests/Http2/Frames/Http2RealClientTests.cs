using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;
using Xunit.Abstractions;

namespace Trellis.Proxy.Tests.Http2.Frames;

/// <summary>
/// Cross-check against an independent HTTP/2 implementation (nghttp2, through the nghttp client or Node.js's http2
/// module): its real connection preface and frames go through our reader, and it must acknowledge SETTINGS and PING
/// frames written by our writer.
/// </summary>
public sealed class Http2RealClientTests(ITestOutputHelper log)
{
    private const ulong PingData = 0x5452_454C_4C49_5321; // "TRELLIS!"

    private const string NodeClient = """
        const h2 = require('http2');
        const session = h2.connect('http://127.0.0.1:' + process.argv[1]);
        session.on('error', () => {});
        session.on('goaway', () => process.exit(0));
        const req = session.request({ ':path': '/' });
        req.on('error', () => {});
        req.end();
        setTimeout(() => process.exit(0), 30000).unref();
        """;

    [Fact]
    public async Task TryReadFrame_RealHttp2ClientConnection_FramesReadAndOurSettingsAndPingAcknowledged()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;

        ProcessStartInfo start;
        if (FindOnPath("nghttp") is { } nghttp)
        {
            start = new ProcessStartInfo(nghttp, ["-nv", $"http://127.0.0.1:{port}/"]);
        }
        else if (FindOnPath("node") is { } node)
        {
            start = new ProcessStartInfo(node, ["-e", NodeClient, port.ToString()]);
        }
        else
        {
            log.WriteLine("SKIPPED: neither nghttp (Debian nghttp2-client) nor node is on PATH; no independent HTTP/2 client to test against");
            return;
        }
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ct = timeout.Token;
        var clientOutput = new StringBuilder();
        using var client = Process.Start(start)!;
        client.OutputDataReceived += (_, e) => { lock (clientOutput) { clientOutput.AppendLine(e.Data); } };
        client.ErrorDataReceived += (_, e) => { lock (clientOutput) { clientOutput.AppendLine(e.Data); } };
        client.BeginOutputReadLine();
        client.BeginErrorReadLine();
        try
        {
            using var socket = await listener.AcceptAsync(ct);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            var frames = new FrameSource(PipeReader.Create(stream));

            // The client's SETTINGS must come first, right after the preface.
            var first = await frames.NextAsync(ct);
            Assert.Equal(Http2FrameType.Settings, first.Header.Type);
            Assert.False(first.IsAck);
            var clientSettings = Http2PeerSettings.Default;
            Assert.True(Http2SettingsReader.TryApply(new ReadOnlySequence<byte>(first.Payload), ref clientSettings, out _, out var settingsError), settingsError.ToString());

            ReadFrame headers;
            while ((headers = await frames.NextAsync(ct)).Header.Type != Http2FrameType.Headers)
            {
                log.WriteLine($"before HEADERS: {headers.Header}");
            }
            log.WriteLine($"request: {headers.Header}");
            Assert.Equal(1, headers.Header.StreamId % 2);
            Assert.True(headers.EndHeaders);
            Assert.True(headers.EndStream);
            Assert.NotEmpty(headers.Payload);
            if (headers.Header.HasFlag(Http2Flags.Priority))
            {
                Assert.Equal(headers.Header.Length - 5, headers.Payload.Length);
            }

            var output = new ArrayBufferWriter<byte>();
            Http2FrameWriter.Settings(output, [new(Http2SettingId.MaxConcurrentStreams, 100), new(Http2SettingId.InitialWindowSize, 1 << 20), new(Http2SettingId.MaxFrameSize, 32768)]);
            Http2FrameWriter.SettingsAck(output);
            Http2FrameWriter.WindowUpdate(output, 0, 1 << 20);
            Http2FrameWriter.Ping(output, ack: false, PingData);
            await stream.WriteAsync(output.WrittenMemory, ct);

            bool settingsAcked = false, pingAcked = false;
            while (!settingsAcked || !pingAcked)
            {
                var frame = await frames.NextAsync(ct);
                log.WriteLine($"after our SETTINGS: {frame.Header}");
                if (frame.Header.Type == Http2FrameType.Settings)
                {
                    Assert.True(frame.IsAck, "the client sent new SETTINGS instead of acknowledging ours");
                    settingsAcked = true;
                }
                else if (frame.Header.Type == Http2FrameType.Ping && frame.IsAck)
                {
                    Assert.Equal(PingData, System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(frame.Payload));
                    pingAcked = true;
                }
            }

            output.ResetWrittenCount();
            Http2FrameWriter.GoAway(output, 0, Http2ErrorCode.NoError, "test done");
            await stream.WriteAsync(output.WrittenMemory, ct);
            socket.Shutdown(SocketShutdown.Send);
            await client.WaitForExitAsync(ct);
        }
        finally
        {
            if (!client.HasExited)
            {
                client.Kill();
            }
            lock (clientOutput)
            {
                log.WriteLine($"client ({start.FileName}) output:\n{clientOutput}");
            }
        }
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path))
            {
                return path;
            }
        }
        return null;
    }

    /// <summary>Frames from a socket through one <see cref="Http2FrameReader"/>, after the client preface.</summary>
    private sealed class FrameSource(PipeReader input)
    {
        private readonly Queue<ReadFrame> _ready = new();
        private Http2FrameReader _reader;
        private bool _prefaceRead;

        public async Task<ReadFrame> NextAsync(CancellationToken ct)
        {
            while (_ready.Count == 0)
            {
                var result = await input.ReadAsync(ct);
                var buffer = result.Buffer;
                Parse(ref buffer);
                input.AdvanceTo(buffer.Start, buffer.End);
                if (_ready.Count == 0 && result.IsCompleted)
                {
                    throw new InvalidOperationException("the client closed the connection early");
                }
            }
            return _ready.Dequeue();
        }

        private void Parse(ref ReadOnlySequence<byte> buffer)
        {
            if (!_prefaceRead)
            {
                var preface = Http2Preface.TryConsume(ref buffer);
                Assert.NotEqual(Http2PrefaceStatus.Mismatch, preface);
                if (preface == Http2PrefaceStatus.NeedMoreData)
                {
                    return;
                }
                _prefaceRead = true;
            }
            while (true)
            {
                var status = _reader.TryReadFrame(ref buffer, Http2Limits.DefaultMaxFrameSize, out var frame, out var error);
                if (status == Http2ReadStatus.Error)
                {
                    Assert.Fail($"the reader rejected the client's frames: {error}");
                }
                if (status == Http2ReadStatus.NeedMoreData)
                {
                    return;
                }
                _ready.Enqueue(FrameTestSupport.Copy(frame));
            }
        }
    }
}
