using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Google.Protobuf;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Trellis.Testing.Grpc;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Client;

/// <summary>Requests and gRPC messages written by hand for <see cref="Http2ClientConnection"/> tests.</summary>
internal static class H2Client
{
    public static CancellationToken Bounded() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    public static Task<Http2ClientConnection> ConnectAsync(int port, Http2ClientOptions? options = null) =>
        Http2ClientConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), options ?? new Http2ClientOptions(), TimeProvider.System, Bounded());

    public static Http2HeaderField[] Request(string method, int port, string path, params Http2HeaderField[] fields) =>
    [
        new(":method", method),
        new(":scheme", "http"),
        new(":authority", $"127.0.0.1:{port}"),
        new(":path", path),
        .. fields,
    ];

    public static Http2HeaderField[] GrpcCall(int port, string method) =>
        Request("POST", port, $"/trellis.testing.Echo/{method}", new("content-type", "application/grpc"), new("te", "trailers"));

    public static async Task<byte[]> ReadBodyAsync(Http2ClientStream stream, CancellationToken ct)
    {
        var body = new MemoryStream();
        var buffer = new byte[8192];
        int n;
        while ((n = await stream.ReadDataAsync(buffer, ct)) > 0)
        {
            body.Write(buffer, 0, n);
        }
        return body.ToArray();
    }

    /// <summary>A gRPC length-prefixed message: 0 (not compressed), big-endian length, protobuf bytes.</summary>
    public static byte[] Frame(EchoRequest request)
    {
        var bytes = request.ToByteArray();
        var framed = new byte[5 + bytes.Length];
        BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)bytes.Length);
        bytes.CopyTo(framed, 5);
        return framed;
    }

    public static List<EchoReply> Replies(byte[] body)
    {
        var replies = new List<EchoReply>();
        var at = 0;
        while (at < body.Length)
        {
            Assert.True(body.Length - at >= 5, $"a truncated gRPC message prefix at {at} of {body.Length}");
            Assert.Equal(0, body[at]);
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(at + 1));
            replies.Add(EchoReply.Parser.ParseFrom(body, at + 5, length));
            at += 5 + length;
        }
        return replies;
    }

    /// <summary>Reads exactly one gRPC reply from a stream (for bidi calls, where the body stays open).</summary>
    public static async Task<EchoReply> ReadReplyAsync(Http2ClientStream stream, List<byte> pending, CancellationToken ct)
    {
        var buffer = new byte[4096];
        while (true)
        {
            if (pending.Count >= 5)
            {
                var length = (pending[1] << 24) | (pending[2] << 16) | (pending[3] << 8) | pending[4];
                if (pending.Count >= 5 + length)
                {
                    var message = EchoReply.Parser.ParseFrom(pending.GetRange(5, length).ToArray());
                    pending.RemoveRange(0, 5 + length);
                    return message;
                }
            }
            var n = await stream.ReadDataAsync(buffer, ct);
            Assert.True(n > 0, "the response ended before a whole gRPC message");
            pending.AddRange(buffer.AsSpan(0, n).ToArray());
        }
    }
}

/// <summary>A frame the fake server received.</summary>
internal sealed record ReceivedFrame(Http2FrameType Type, byte Flags, int StreamId, byte[] Payload);

/// <summary>
/// A raw HTTP/2 server on loopback for protocol corner cases a real server will not produce: it accepts one
/// connection, checks the preface, and reads and writes frames with our frame codec.
/// </summary>
internal sealed class FakeH2Server : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private Socket? _socket;
    private PipeReader? _reader;
    private Http2FrameReader _frames;

    public FakeH2Server()
    {
        _listener.Start();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Accepts the client, reads its preface and sends our SETTINGS (empty unless given).</summary>
    public async Task AcceptAsync(CancellationToken ct, params Http2Setting[] settings)
    {
        _socket = await _listener.AcceptSocketAsync(ct);
        _reader = PipeReader.Create(new NetworkStream(_socket, ownsSocket: false));
        while (true)
        {
            var result = await _reader.ReadAsync(ct);
            var buffer = result.Buffer;
            var status = Http2Preface.TryConsume(ref buffer);
            Assert.NotEqual(Http2PrefaceStatus.Mismatch, status);
            if (status == Http2PrefaceStatus.Matched)
            {
                _reader.AdvanceTo(buffer.Start);
                break;
            }
            Assert.False(result.IsCompleted, "the client closed before its preface");
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
        await SendAsync(w => Http2FrameWriter.Settings(w, settings), ct);
    }

    public async Task SendAsync(Action<ArrayBufferWriter<byte>> write, CancellationToken ct)
    {
        var output = new ArrayBufferWriter<byte>();
        write(output);
        await _socket!.SendAsync(output.WrittenMemory, SocketFlags.None, ct);
    }

    /// <summary>The next frame from the client, or null when it closed the connection.</summary>
    public async Task<ReceivedFrame?> ReadFrameAsync(CancellationToken ct)
    {
        while (true)
        {
            var result = await _reader!.ReadAsync(ct);
            var buffer = result.Buffer;
            var status = _frames.TryReadFrame(ref buffer, Http2Limits.DefaultMaxFrameSize, out var frame, out var error);
            Assert.NotEqual(Http2ReadStatus.Error, status);
            if (status == Http2ReadStatus.Frame)
            {
                var received = new ReceivedFrame(frame.Type, frame.Flags, frame.StreamId, frame.Payload.ToArray());
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

    /// <summary>Reads until a frame of <paramref name="type"/> (skipping others), or null at the end.</summary>
    public async Task<ReceivedFrame?> ReadUntilAsync(Http2FrameType type, CancellationToken ct)
    {
        while (await ReadFrameAsync(ct) is { } frame)
        {
            if (frame.Type == type)
            {
                return frame;
            }
        }
        return null;
    }

    public static string Text(byte[] bytes) => Encoding.ASCII.GetString(bytes);

    /// <summary>A field block with :status and the given fields, from a fresh encoder (so no dynamic-table references).</summary>
    public static byte[] Block(int status, params (string Name, string Value)[] fields) => Encode(status, fields);

    /// <summary>A trailer block: the fields only, no :status.</summary>
    public static byte[] TrailerBlock(params (string Name, string Value)[] fields) => Encode(null, fields);

    private static byte[] Encode(int? status, (string Name, string Value)[] fields)
    {
        var encoder = new Trellis.Proxy.Http.Http2.Hpack.HpackEncoder();
        var block = new ArrayBufferWriter<byte>();
        encoder.BeginBlock(block);
        if (status is { } code)
        {
            encoder.WriteStatus(block, code);
        }
        foreach (var (name, value) in fields)
        {
            encoder.WriteHeader(block, Encoding.ASCII.GetBytes(name), Encoding.ASCII.GetBytes(value), Trellis.Proxy.Http.Http2.Hpack.HpackIndexing.WithoutIndexing);
        }
        return block.WrittenSpan.ToArray();
    }

    /// <summary>Closes the connection from the server side, without GOAWAY.</summary>
    public void Abort() => _socket?.Dispose();

    public async ValueTask DisposeAsync()
    {
        _socket?.Dispose();
        _listener.Stop();
        if (_reader is not null)
        {
            await _reader.CompleteAsync();
        }
    }
}

/// <summary>A <see cref="FakeH2Server"/> with our client connected to it.</summary>
internal sealed class FakeH2Session : IAsyncDisposable
{
    private FakeH2Session(FakeH2Server server, Http2ClientConnection connection)
    {
        Server = server;
        Connection = connection;
    }

    public FakeH2Server Server { get; }

    public Http2ClientConnection Connection { get; }

    public static Task<FakeH2Session> StartAsync(CancellationToken ct, params Http2Setting[] settings) => StartAsync(new Http2ClientOptions(), ct, settings);

    public static async Task<FakeH2Session> StartAsync(Http2ClientOptions options, CancellationToken ct, params Http2Setting[] settings)
    {
        var server = new FakeH2Server();
        var accept = server.AcceptAsync(ct, settings);
        var connection = await H2Client.ConnectAsync(server.Port, options);
        await accept;
        return new FakeH2Session(server, connection);
    }

    /// <summary>Opens a stream and waits until the server has its HEADERS; returns the stream id the server saw.</summary>
    public async Task<(Http2ClientStream Stream, int SeenId)> OpenAsync(string method, string path, bool endStream, CancellationToken ct)
    {
        var stream = await Connection.OpenStreamAsync(H2Client.Request(method, Server.Port, path), endStream, ct);
        var headers = await Server.ReadUntilAsync(Http2FrameType.Headers, ct);
        Assert.NotNull(headers);
        return (stream, headers.StreamId);
    }

    /// <summary>Sends a field block (from <see cref="FakeH2Server.Block"/>) as one HEADERS frame.</summary>
    public Task SendHeadersAsync(int streamId, byte[] block, bool endStream, CancellationToken ct) =>
        Server.SendAsync(w => Http2FrameWriter.Headers(w, streamId, block, endStream, Http2Limits.DefaultMaxFrameSize), ct);

    public async ValueTask DisposeAsync()
    {
        await Connection.DisposeAsync();
        await Server.DisposeAsync();
    }
}
