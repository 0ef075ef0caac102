using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Google.Protobuf;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Proxy.Http.Http2.Hpack;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Testing.Grpc;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary>A handler from a delegate.</summary>
internal sealed class DelegateHandler(Func<Http2ServerStream, ValueTask> handle) : IHttp2ServerHandler
{
    public ValueTask HandleAsync(Http2ServerStream stream) => handle(stream);
}

/// <summary>
/// Plays the proxy's listener for <see cref="Http2ServerConnection"/>: accepts loopback connections, reads the first
/// bytes (protocol detection's share, maybe part of the preface) and hands socket and bytes to a new connection; or,
/// with a certificate, does the TLS handshake (ALPN h2) and hands over the SslStream.
/// </summary>
internal sealed class TestH2Server : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly IHttp2ServerHandler _handler;
    private readonly Http2ServerOptions _options;
    private readonly TimeProvider _time;
    private readonly X509Certificate2? _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _drain = new();
    private readonly List<Task> _runs = [];
    private readonly List<Http2ServerConnection> _connections = [];
    private readonly Task _acceptLoop;

    public TestH2Server(IHttp2ServerHandler handler, Http2ServerOptions? options = null, TimeProvider? time = null, X509Certificate2? certificate = null)
    {
        _handler = handler;
        _options = options ?? new Http2ServerOptions();
        _time = time ?? TimeProvider.System;
        _certificate = certificate;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        _acceptLoop = AcceptLoopAsync();
    }

    public TestH2Server(Func<Http2ServerStream, ValueTask> handle, Http2ServerOptions? options = null, TimeProvider? time = null, X509Certificate2? certificate = null)
        : this(new DelegateHandler(handle), options, time, certificate)
    {
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public int Port => EndPoint.Port;

    /// <summary>Connections accepted so far.</summary>
    public int Accepted
    {
        get
        {
            lock (_connections)
            {
                return _connections.Count;
            }
        }
    }

    /// <summary>The connections accepted so far.</summary>
    public Http2ServerConnection[] Connections
    {
        get
        {
            lock (_connections)
            {
                return [.. _connections];
            }
        }
    }

    /// <summary>Completes when every connection accepted so far has ended (RunAsync returned).</summary>
    public Task AllRunsEnded()
    {
        lock (_connections)
        {
            return Task.WhenAll(_runs);
        }
    }

    /// <summary>Starts a graceful drain of every connection.</summary>
    public Task DrainAsync() => _drain.CancelAsync();

    public string Url(string path) => $"{(_certificate is null ? "http" : "https")}://127.0.0.1:{Port}{path}";

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(socket);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        Http2ServerConnection connection;
        try
        {
            if (_certificate is null)
            {
                // Protocol detection's share: whatever the first receive brings (often the whole preface and SETTINGS).
                var first = new byte[4096];
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                var n = await socket.ReceiveAsync(first, SocketFlags.None, limit.Token);
                connection = Http2ServerConnection.Create(socket, first.AsMemory(0, n), _options, _time);
            }
            else
            {
                var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = _certificate,
                    ApplicationProtocols = [SslApplicationProtocol.Http2],
                });
                Assert.Equal(SslApplicationProtocol.Http2, ssl.NegotiatedApplicationProtocol);
                connection = Http2ServerConnection.Create(ssl, ReadOnlyMemory<byte>.Empty, _options, _time);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
        {
            socket.Dispose();
            return;
        }
        lock (_connections)
        {
            _connections.Add(connection);
            _runs.Add(connection.RunAsync(_handler, _drain.Token));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _acceptLoop;
        Http2ServerConnection[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }
        foreach (var connection in connections)
        {
            await connection.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }
        await AllRunsEnded().WaitAsync(TimeSpan.FromSeconds(10));
        _stop.Dispose();
        _drain.Dispose();
    }
}

/// <summary>Handlers used by several tests.</summary>
internal static class H2Handlers
{
    /// <summary>GET: "hello PATH" with x-served-by; POST: the byte count of the body read to its end.</summary>
    public static async ValueTask HelloAsync(Http2ServerStream stream)
    {
        if (stream.Method == "POST")
        {
            var buffer = new byte[16 * 1024];
            long total = 0;
            int n;
            while ((n = await stream.ReadDataAsync(buffer)) > 0)
            {
                total += n;
            }
            await stream.WriteResponseHeadAsync(200, [new("content-type", "text/plain")], endStream: false);
            await stream.WriteDataAsync(Encoding.ASCII.GetBytes($"received {total}"), endStream: true);
            return;
        }
        await stream.WriteResponseHeadAsync(200, [new("content-type", "text/plain"), new("x-served-by", "trellis")], endStream: false);
        await stream.WriteDataAsync(Encoding.ASCII.GetBytes($"hello {stream.Path}"), endStream: true);
    }

    /// <summary>The Echo service of echo.proto spoken by hand: gRPC length-prefixed messages and trailers.</summary>
    public static async ValueTask GrpcEchoAsync(Http2ServerStream stream)
    {
        var method = stream.Path;
        var reader = new GrpcMessageReader(stream);
        Http2HeaderField[] head = [new("content-type", "application/grpc")];
        switch (method)
        {
            case "/trellis.testing.Echo/Unary":
                {
                    var request = EchoRequest.Parser.ParseFrom(await reader.ReadAsync() ?? throw new InvalidDataException("no request message"));
                    if (request.FailWith != 0)
                    {
                        // Trailers-only: the status in the head, which ends the stream.
                        await stream.WriteResponseHeadAsync(200,
                            [.. head, new("grpc-status", request.FailWith.ToString()), new("grpc-message", "app says no"), new("x-app-trailer", "failed")], endStream: true);
                        return;
                    }
                    await stream.WriteResponseHeadAsync(200, head, endStream: false);
                    await WriteMessageAsync(stream, new EchoReply { Text = request.Text, Instance = "h2server" });
                    await stream.WriteTrailersAsync([new("grpc-status", "0"), new("x-app-trailer", "unary")]);
                    return;
                }
            case "/trellis.testing.Echo/ServerStream":
                {
                    var request = EchoRequest.Parser.ParseFrom(await reader.ReadAsync() ?? throw new InvalidDataException("no request message"));
                    await stream.WriteResponseHeadAsync(200, head, endStream: false);
                    for (var i = 0; i < request.Count; i++)
                    {
                        await WriteMessageAsync(stream, new EchoReply { Text = $"{request.Text}-{i}", Instance = "h2server" });
                    }
                    await stream.WriteTrailersAsync([new("grpc-status", "0"), new("x-app-trailer", "server-stream")]);
                    return;
                }
            case "/trellis.testing.Echo/ClientStream":
                {
                    var texts = new List<string>();
                    while (await reader.ReadAsync() is { } message)
                    {
                        texts.Add(EchoRequest.Parser.ParseFrom(message).Text);
                    }
                    await stream.WriteResponseHeadAsync(200, head, endStream: false);
                    await WriteMessageAsync(stream, new EchoReply { Text = string.Join(",", texts), Instance = "h2server" });
                    await stream.WriteTrailersAsync([new("grpc-status", "0"), new("x-app-trailer", "client-stream")]);
                    return;
                }
            case "/trellis.testing.Echo/Bidi":
                {
                    await stream.WriteResponseHeadAsync(200, head, endStream: false);
                    while (await reader.ReadAsync() is { } message)
                    {
                        await WriteMessageAsync(stream, new EchoReply { Text = "echo:" + EchoRequest.Parser.ParseFrom(message).Text, Instance = "h2server" });
                    }
                    await stream.WriteTrailersAsync([new("grpc-status", "0"), new("x-app-trailer", "bidi")]);
                    return;
                }
            default:
                await stream.WriteResponseHeadAsync(200, [.. head, new("grpc-status", "12"), new("grpc-message", $"unknown method {method}")], endStream: true);
                return;
        }
    }

    private static ValueTask WriteMessageAsync(Http2ServerStream stream, IMessage message)
    {
        var bytes = message.ToByteArray();
        var framed = new byte[5 + bytes.Length];
        BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)bytes.Length);
        bytes.CopyTo(framed, 5);
        return stream.WriteDataAsync(framed, endStream: false);
    }

    /// <summary>Reads gRPC length-prefixed messages from a request body.</summary>
    private sealed class GrpcMessageReader(Http2ServerStream stream)
    {
        private readonly List<byte> _pending = [];
        private readonly byte[] _buffer = new byte[8192];

        public async Task<byte[]?> ReadAsync()
        {
            while (true)
            {
                if (_pending.Count >= 5)
                {
                    var length = (_pending[1] << 24) | (_pending[2] << 16) | (_pending[3] << 8) | _pending[4];
                    if (_pending.Count >= 5 + length)
                    {
                        var message = _pending.GetRange(5, length).ToArray();
                        _pending.RemoveRange(0, 5 + length);
                        return message;
                    }
                }
                var n = await stream.ReadDataAsync(_buffer);
                if (n == 0)
                {
                    return _pending.Count == 0 ? null : throw new InvalidDataException($"the body ended inside a gRPC message ({_pending.Count} bytes left)");
                }
                _pending.AddRange(_buffer.AsSpan(0, n).ToArray());
            }
        }
    }
}

/// <summary>A frame the raw client received.</summary>
internal sealed record RawFrame(Http2FrameType Type, byte Flags, int StreamId, byte[] Payload)
{
    public Http2ErrorCode ErrorCode => (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(Type == Http2FrameType.GoAway ? Payload.AsSpan(4) : Payload);

    public int GoAwayLastStreamId => (int)(BinaryPrimitives.ReadUInt32BigEndian(Payload) & 0x7FFF_FFFF);

    public string GoAwayDebug => Encoding.UTF8.GetString(Payload.AsSpan(8));

    public override string ToString() => Type switch
    {
        Http2FrameType.GoAway => $"GOAWAY last={GoAwayLastStreamId} {Http2Names.Of(ErrorCode)} '{GoAwayDebug}'",
        Http2FrameType.RstStream => $"RST_STREAM {StreamId} {Http2Names.Of(ErrorCode)}",
        _ => $"{Http2Names.Of(Type)} stream={StreamId} flags=0x{Flags:x2} length={Payload.Length}",
    };
}

/// <summary>
/// A raw HTTP/2 client over loopback for protocol corner cases real clients will not produce: writes frames with our
/// frame writer and HPACK encoder, reads and decodes the server's frames.
/// </summary>
internal sealed class RawH2Client : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly PipeReader _reader;
    private readonly HpackEncoder _encoder = new();
    private readonly HpackDecoder _decoder = new();
    private Http2FrameReader _frames;

    private RawH2Client(Socket socket)
    {
        _socket = socket;
        _reader = PipeReader.Create(new NetworkStream(socket, ownsSocket: false));
    }

    public static CancellationToken Bounded() => new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token;

    /// <summary>Connects; with <paramref name="handshake"/> sends the preface and an empty SETTINGS, and reads up to
    /// the server's SETTINGS.</summary>
    public static async Task<RawH2Client> ConnectAsync(int port, bool handshake = true, params Http2Setting[] settings)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        var client = new RawH2Client(socket);
        if (handshake)
        {
            await client.SendAsync(w =>
            {
                w.Write(Http2Preface.ClientPreface);
                Http2FrameWriter.Settings(w, settings);
            });
            var first = await client.ReadFrameAsync();
            Assert.NotNull(first);
            Assert.Equal(Http2FrameType.Settings, first.Type);
        }
        return client;
    }

    public async Task SendAsync(Action<ArrayBufferWriter<byte>> write)
    {
        var output = new ArrayBufferWriter<byte>();
        write(output);
        await _socket.SendAsync(output.WrittenMemory, SocketFlags.None);
    }

    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes) => await _socket.SendAsync(bytes, SocketFlags.None);

    /// <summary>A request field block (pseudo-headers first) from this client's encoder (keeps HPACK in step).</summary>
    public byte[] Block(params (string Name, string Value)[] fields)
    {
        var block = new ArrayBufferWriter<byte>();
        _encoder.BeginBlock(block);
        foreach (var (name, value) in fields)
        {
            _encoder.WriteHeader(block, Encoding.Latin1.GetBytes(name), Encoding.Latin1.GetBytes(value));
        }
        return block.WrittenSpan.ToArray();
    }

    public static (string, string)[] Get(string path, params (string, string)[] fields) =>
        [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", path), .. fields];

    public static (string, string)[] Post(string path, params (string, string)[] fields) =>
        [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", path), .. fields];

    /// <summary>Sends a request head as one HEADERS frame.</summary>
    public Task SendHeadersAsync(int streamId, bool endStream, params (string, string)[] fields)
    {
        var block = Block(fields);
        return SendAsync(w => Http2FrameWriter.Headers(w, streamId, block, endStream, Http2Limits.DefaultMaxFrameSize));
    }

    /// <summary>The next frame, or null when the server closed the connection.</summary>
    public async Task<RawFrame?> ReadFrameAsync(CancellationToken ct = default)
    {
        if (!ct.CanBeCanceled)
        {
            ct = Bounded();
        }
        while (true)
        {
            ReadResult result;
            try
            {
                result = await _reader.ReadAsync(ct);
            }
            catch (IOException)
            {
                return null;
            }
            var buffer = result.Buffer;
            var status = _frames.TryReadFrame(ref buffer, Http2Limits.MaxFrameSizeLimit, out var frame, out var error);
            Assert.True(status != Http2ReadStatus.Error, $"the server sent a bad frame: {error}");
            if (status == Http2ReadStatus.Frame)
            {
                var received = new RawFrame(frame.Type, frame.Flags, frame.StreamId, frame.Payload.ToArray());
                _reader.AdvanceTo(buffer.Start);
                return received;
            }
            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    /// <summary>Reads until a frame matches (skipping others); null when the connection ends first.</summary>
    public async Task<RawFrame?> ReadUntilAsync(Func<RawFrame, bool> match)
    {
        while (await ReadFrameAsync() is { } frame)
        {
            if (match(frame))
            {
                return frame;
            }
        }
        return null;
    }

    public Task<RawFrame?> ReadUntilAsync(Http2FrameType type) => ReadUntilAsync(f => f.Type == type);

    /// <summary>The next HEADERS frame of <paramref name="streamId"/> (fails on RST_STREAM or GOAWAY first).</summary>
    public async Task<RawFrame> ReadHeadersFrameAsync(int streamId)
    {
        var headers = await ReadUntilAsync(f => (f.Type is Http2FrameType.Headers or Http2FrameType.RstStream && f.StreamId == streamId) || f.Type == Http2FrameType.GoAway);
        Assert.True(headers?.Type == Http2FrameType.Headers, $"expected HEADERS on stream {streamId}, got {headers?.ToString() ?? "the end of the connection"}");
        return headers!;
    }

    /// <summary>The next response head of <paramref name="streamId"/>, decoded.</summary>
    public async Task<List<(string Name, string Value)>> ReadResponseHeadAsync(int streamId) => Decode((await ReadHeadersFrameAsync(streamId)).Payload);

    /// <summary>The DATA of <paramref name="streamId"/> up to END_STREAM, as ASCII (frames of other streams skipped).</summary>
    public async Task<string> ReadBodyAsync(int streamId)
    {
        var body = new StringBuilder();
        while (true)
        {
            var data = await ReadUntilAsync(f => (f.Type == Http2FrameType.Data && f.StreamId == streamId) || f.Type == Http2FrameType.GoAway);
            Assert.True(data?.Type == Http2FrameType.Data, $"expected DATA on stream {streamId}, got {data?.ToString() ?? "the end of the connection"}");
            body.Append(Encoding.ASCII.GetString(data!.Payload));
            if ((data.Flags & Http2Flags.EndStream) != 0)
            {
                return body.ToString();
            }
        }
    }

    /// <summary>A GET of <paramref name="path"/> answered 200 "hello PATH" (the <see cref="H2Handlers.HelloAsync"/> handler).</summary>
    public async Task AssertGetWorksAsync(int streamId, string path)
    {
        await SendHeadersAsync(streamId, endStream: true, Get(path));
        Assert.Contains((":status", "200"), await ReadResponseHeadAsync(streamId));
        Assert.Equal($"hello {path}", await ReadBodyAsync(streamId));
    }

    /// <summary>Reads up to a GOAWAY with <paramref name="code"/>, then to the end of the connection.</summary>
    public async Task<RawFrame> ExpectGoAwayAsync(Http2ErrorCode code)
    {
        var goAway = await ReadUntilAsync(Http2FrameType.GoAway);
        Assert.True(goAway is not null, "the connection ended without GOAWAY");
        Assert.True(goAway.ErrorCode == code, $"expected GOAWAY {Http2Names.Of(code)}, got {goAway}");
        Assert.Null(await ReadUntilAsync(_ => false));
        return goAway;
    }

    /// <summary>Reads up to RST_STREAM on <paramref name="streamId"/>, which must carry <paramref name="code"/>.</summary>
    public async Task<RawFrame> ExpectResetAsync(int streamId, Http2ErrorCode code)
    {
        var reset = await ReadUntilAsync(f => (f.Type == Http2FrameType.RstStream && f.StreamId == streamId) || f.Type == Http2FrameType.GoAway);
        Assert.True(reset is not null, $"the connection ended without RST_STREAM on stream {streamId}");
        Assert.True(reset.Type == Http2FrameType.RstStream && reset.ErrorCode == code, $"expected RST_STREAM {Http2Names.Of(code)} on stream {streamId}, got {reset}");
        return reset;
    }

    /// <summary>Reads to the end of the connection; the frames seen.</summary>
    public async Task<List<RawFrame>> ReadToEndAsync()
    {
        var frames = new List<RawFrame>();
        while (await ReadFrameAsync() is { } frame)
        {
            frames.Add(frame);
        }
        return frames;
    }

    /// <summary>Decodes a response HEADERS payload (decoder state kept in step): :status and fields.</summary>
    public List<(string Name, string Value)> Decode(byte[] block)
    {
        var sink = new ListSink { Fields = [] };
        Assert.Equal(HpackStatus.Ok, _decoder.Decode(block, ref sink));
        return sink.Fields;
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        await _reader.CompleteAsync();
        _decoder.Dispose();
    }

    private struct ListSink : IHpackSink
    {
        public List<(string, string)> Fields;

        public readonly void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
            Fields.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
    }
}

internal static class Tools
{
    public static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path))
            {
                return path;
            }
        }
        return null;
    }

    /// <summary>Runs a program to its end (bounded); its exit code and combined output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string program, IEnumerable<string> args, TimeSpan limit)
    {
        var start = new ProcessStartInfo(program, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} did not finish within {limit.TotalSeconds} s");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
