using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Proxy.Listeners;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;
using Xunit;

namespace Trellis.Proxy.Tests.Http.Http1;

/// <summary>A request as a test backend received it (body de-chunked).</summary>
internal sealed record BackendRequest(int Connection, string Method, string Target, IReadOnlyList<(string Name, string Value)> Headers, byte[] Body, bool WasChunked, string Trailers)
{
    public string? Header(string name) => Headers.FirstOrDefault(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase)).Value;

    public int Count(string name) => Headers.Count(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase));

    public string BodyText => Encoding.ASCII.GetString(Body);
}

/// <summary>What a backend handler can do with the connection a request came on.</summary>
internal sealed class BackendExchange(Socket socket, NetworkStream stream)
{
    public NetworkStream Stream => stream;

    public bool Closed { get; private set; }

    public Task WriteAsync(string raw) => stream.WriteAsync(Encoding.ASCII.GetBytes(raw)).AsTask();

    public Task OkAsync(string body, params string[] headers) =>
        WriteAsync($"HTTP/1.1 200 OK\r\ncontent-length: {Encoding.ASCII.GetByteCount(body)}\r\n{string.Concat(headers.Select(h => h + "\r\n"))}\r\n{body}");

    /// <summary>Closes with RST (linger 0) instead of FIN.</summary>
    public void Reset()
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
        Closed = true;
    }

    public void Close()
    {
        socket.Close();
        Closed = true;
    }
}

/// <summary>
/// A loopback HTTP/1.1 server for tests: parses each request (Content-Length or chunked body), records it, and lets
/// the test's handler answer (default: 200 with body "ok"). Counts connections, so tests can check reuse.
/// </summary>
internal sealed class TestBackend : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Func<BackendRequest, BackendExchange, Task> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ConcurrentBag<Socket> _sockets = [];
    private int _connections;

    public TestBackend(Func<BackendRequest, BackendExchange, Task>? handler = null)
    {
        _handler = handler ?? ((_, x) => x.OkAsync("ok"));
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        _loop = AcceptAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public Channel<BackendRequest> Requests { get; } = Channel.CreateUnbounded<BackendRequest>();

    /// <summary>Signals each time a connection closes (the proxy or the handler closed it).</summary>
    public Channel<int> Closed { get; } = Channel.CreateUnbounded<int>();

    public async Task<BackendRequest> NextRequestAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await Requests.Reader.ReadAsync(cts.Token);
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _sockets.Add(s);
            var id = Interlocked.Increment(ref _connections);
            _ = ServeAsync(s, id);
        }
    }

    private async Task ServeAsync(Socket socket, int id)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        var exchange = new BackendExchange(socket, stream);
        var reader = new ByteReader(stream);
        try
        {
            while (!exchange.Closed)
            {
                var head = await reader.ReadHeadAsync(_stop.Token);
                if (head is null)
                {
                    break;
                }
                var lines = head.Split("\r\n");
                var parts = lines[0].Split(' ');
                var headers = lines.Skip(1).Where(l => l.Length > 0).Select(l => (l[..l.IndexOf(':')], l[(l.IndexOf(':') + 1)..].Trim())).ToList();
                var te = headers.FirstOrDefault(h => h.Item1.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase)).Item2;
                var cl = headers.FirstOrDefault(h => h.Item1.Equals("content-length", StringComparison.OrdinalIgnoreCase)).Item2;
                byte[] body = [];
                var trailers = "";
                var chunked = te is not null && te.EndsWith("chunked", StringComparison.OrdinalIgnoreCase);
                if (chunked)
                {
                    (body, trailers) = await reader.ReadChunkedAsync(_stop.Token);
                }
                else if (cl is not null)
                {
                    body = await reader.ReadExactlyAsync(int.Parse(cl, CultureInfo.InvariantCulture), _stop.Token);
                }
                var request = new BackendRequest(id, parts[0], parts[1], headers, body, chunked, trailers);
                Requests.Writer.TryWrite(request);
                await _handler(request, exchange);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            await stream.DisposeAsync();
            Closed.Writer.TryWrite(id);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        foreach (var s in _sockets)
        {
            s.Dispose();
        }
        await _loop;
    }
}

/// <summary>Buffered reads of heads, exact byte counts and chunked bodies from a stream.</summary>
internal sealed class ByteReader(Stream stream)
{
    private readonly List<byte> _buffer = [];

    private async Task<bool> FillAsync(CancellationToken ct)
    {
        var chunk = new byte[8192];
        var n = await stream.ReadAsync(chunk, ct);
        _buffer.AddRange(chunk.AsSpan(0, n).ToArray());
        return n > 0;
    }

    /// <summary>The head up to (not including) the empty line; null at a clean end of stream.</summary>
    public async Task<string?> ReadHeadAsync(CancellationToken ct)
    {
        while (true)
        {
            var text = Encoding.Latin1.GetString([.. _buffer]);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                _buffer.RemoveRange(0, end + 4);
                return text[..end];
            }
            if (!await FillAsync(ct))
            {
                return null;
            }
        }
    }

    public async Task<byte[]> ReadExactlyAsync(int count, CancellationToken ct)
    {
        while (_buffer.Count < count)
        {
            if (!await FillAsync(ct))
            {
                throw new IOException($"stream ended after {_buffer.Count} of {count} body bytes");
            }
        }
        var result = _buffer.GetRange(0, count).ToArray();
        _buffer.RemoveRange(0, count);
        return result;
    }

    public async Task<string> ReadLineAsync(CancellationToken ct)
    {
        while (true)
        {
            var i = _buffer.IndexOf((byte)'\n');
            if (i >= 0)
            {
                var line = Encoding.Latin1.GetString([.. _buffer.GetRange(0, i)]).TrimEnd('\r');
                _buffer.RemoveRange(0, i + 1);
                return line;
            }
            if (!await FillAsync(ct))
            {
                throw new IOException("stream ended inside a line");
            }
        }
    }

    public async Task<(byte[] Body, string Trailers)> ReadChunkedAsync(CancellationToken ct)
    {
        var body = new List<byte>();
        while (true)
        {
            var sizeLine = await ReadLineAsync(ct);
            var size = int.Parse(sizeLine.Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
            {
                var trailers = new StringBuilder();
                string line;
                while ((line = await ReadLineAsync(ct)).Length > 0)
                {
                    trailers.Append(line).Append('\n');
                }
                return ([.. body], trailers.ToString());
            }
            body.AddRange(await ReadExactlyAsync(size, ct));
            await ReadLineAsync(ct);
        }
    }

    /// <summary>Everything until the end of the stream.</summary>
    public async Task<byte[]> ReadToEndAsync(CancellationToken ct)
    {
        while (await FillAsync(ct))
        {
        }
        var all = _buffer.ToArray();
        _buffer.Clear();
        return all;
    }

    public int Buffered => _buffer.Count;
}

/// <summary>A response as the test client read it.</summary>
internal sealed record ClientResponse(int Status, IReadOnlyList<(string Name, string Value)> Headers, string Body, bool WasChunked)
{
    public string? Header(string name) => Headers.FirstOrDefault(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase)).Value;

    public int Count(string name) => Headers.Count(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase));
}

/// <summary>A raw HTTP/1.1 client on one connection: sends bytes as given, reads responses, checks for end of stream.</summary>
internal sealed class RawClient : IDisposable
{
    private readonly TcpClient _client = new();
    private ByteReader _reader = null!;

    public NetworkStream Stream { get; private set; } = null!;

    public static async Task<RawClient> ConnectAsync(IPEndPoint endpoint)
    {
        var c = new RawClient();
        await c._client.ConnectAsync(endpoint);
        c.Stream = c._client.GetStream();
        c._reader = new ByteReader(c.Stream);
        return c;
    }

    public Task SendAsync(string raw) => Stream.WriteAsync(Encoding.Latin1.GetBytes(raw)).AsTask();

    public async Task<ClientResponse> RoundTripAsync(string raw, bool head = false)
    {
        await SendAsync(raw);
        return await ReadResponseAsync(head);
    }

    public async Task<ClientResponse> ReadResponseAsync(bool head = false)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var text = await _reader.ReadHeadAsync(cts.Token) ?? throw new IOException("connection closed before a response");
        var lines = text.Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture);
        var headers = lines.Skip(1).Select(l => (l[..l.IndexOf(':')], l[(l.IndexOf(':') + 1)..].Trim())).ToList();
        var response = new ClientResponse(status, headers, "", false);
        if (head || status is (>= 100 and < 200) or 204 or 304)
        {
            return response;
        }
        if (response.Header("transfer-encoding") is { } te && te.EndsWith("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var (body, _) = await _reader.ReadChunkedAsync(cts.Token);
            return response with { Body = Encoding.Latin1.GetString(body), WasChunked = true };
        }
        if (response.Header("content-length") is { } cl)
        {
            return response with { Body = Encoding.Latin1.GetString(await _reader.ReadExactlyAsync(int.Parse(cl, CultureInfo.InvariantCulture), cts.Token)) };
        }
        return response with { Body = Encoding.Latin1.GetString(await _reader.ReadToEndAsync(cts.Token)) };
    }

    /// <summary>Reads raw bytes (after a 101).</summary>
    public async Task<string> ReadExactlyAsync(int count)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return Encoding.Latin1.GetString(await _reader.ReadExactlyAsync(count, cts.Token));
    }

    /// <summary>Asserts the proxy closed the connection: the next read is the end of the stream (or a reset).</summary>
    public async Task AssertClosedAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal(0, _reader.Buffered);
        try
        {
            var rest = await _reader.ReadToEndAsync(cts.Token);
            Assert.Empty(rest);
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
        }
    }

    public void Dispose() => _client.Dispose();
}

/// <summary>Hand-made models: one outbound route table with a virtual host per service port, clusters with endpoints.</summary>
internal static class TestModels
{
    public const string Service = "web.default:80";

    public static ClusterModel Cluster(string name, params IPEndPoint[] endpoints) =>
        new(name, LoadBalancerKind.RoundRobin, TimeSpan.FromSeconds(2),
            [.. endpoints.Select(e => new EndpointModel(e, 1, EndpointHealthKind.Healthy, 0, "", "", 1))],
            new CircuitBreakerModel(1024, 1024, 1024, 3, null), null);

    public static RouteModel Route(string name, string prefix, params WeightedClusterModel[] clusters) =>
        new(name, new RouteMatchModel(PathMatchKind.Prefix, prefix, [], []), clusters, null, null, null, null, [], [], [], [], null, null, null);

    public static RouteModel Route(string name, string prefix, string cluster) => Route(name, prefix, new WeightedClusterModel(cluster, 1));

    public static ProxyModel ModelOf(IReadOnlyList<VirtualHostModel> hosts, params ClusterModel[] clusters)
    {
        var table = new RouteTable("outbound", hosts);
        var listener = new ListenerModel("outbound", new IPEndPoint(IPAddress.Loopback, 15001), TrafficDirectionKind.Outbound,
            [new FilterChainModel("http", null, "outbound", null)], null);
        return new ProxyModel("v1", new Dictionary<string, ListenerModel> { ["outbound"] = listener }.ToFrozenDictionary(),
            new Dictionary<string, RouteTable> { ["outbound"] = table }.ToFrozenDictionary(),
            clusters.ToDictionary(c => c.Name).ToFrozenDictionary());
    }

    /// <summary>A model whose service port web.default:80 has these routes.</summary>
    public static ProxyModel ModelOf(IReadOnlyList<RouteModel> routes, params ClusterModel[] clusters) =>
        ModelOf([new VirtualHostModel(Service, ["web", Service], routes)], clusters);

    public static ModelState State(ProxyModel model)
    {
        var state = new ModelState();
        state.Swap(model, complete: true);
        return state;
    }
}

/// <summary>An explicit listener on a loopback port for one target, with injectable clock and random source.</summary>
internal sealed class TestProxy : IAsyncDisposable
{
    public TestProxy(ModelState state, string? cluster = TestModels.Service, IPEndPoint? fixedAddress = null, TimeProvider? clock = null, int seed = 1,
        TimeSpan? idleTimeout = null, Func<RetryPolicyModel, int, int?, Trellis.Proxy.Http.ProxyError, bool>? isRetriable = null)
    {
        Clock = clock ?? TimeProvider.System;
        State = state;
        // Clients here always speak first; a long detection timeout keeps a slow test machine from taking them for TCP.
        Services = new ListenerServices(new ClusterRuntimes(Clock), new RoutePolicies(Clock, () => 0.5), Clock, new Random(seed))
        {
            DetectionTimeout = TimeSpan.FromSeconds(30),
            IsRetriable = isRetriable is null ? RoutePolicies.IsRetriable : (p, s, g, e, perTry) => isRetriable(p, s, g, perTry ? Trellis.Proxy.Http.ProxyError.UpstreamTimeout : e),
        };
        Listener = new ExplicitListener(new ListenerTarget("test", new IPEndPoint(IPAddress.Loopback, 0), fixedAddress is null ? cluster : null, fixedAddress),
            state, NullLogger.Instance, Services, null)
        {
            IdleTimeout = idleTimeout ?? TimeSpan.FromHours(1),
        };
        Listener.Start();
    }

    public TimeProvider Clock { get; }
    public ModelState State { get; }
    public ListenerServices Services { get; }
    public ExplicitListener Listener { get; }
    public IPEndPoint EndPoint => Listener.LocalEndPoint;

    public Task<RawClient> ConnectAsync() => RawClient.ConnectAsync(EndPoint);

    public async ValueTask DisposeAsync()
    {
        await Listener.DisposeAsync();
        Services.Pools.Dispose();
    }
}
