using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Trellis.Proxy.Http;
using Trellis.Proxy.Http.Http1;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Model;
using Trellis.Testing;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Client.H2Client;

namespace Trellis.Proxy.Tests.Http2.Client;

/// <summary><see cref="Http2ClusterPool"/> against Kestrel: reuse, extra connections at the server's stream limit, limits, TLS.</summary>
public sealed class Http2ConnectionPoolTests
{
    private static readonly PoolLimits Roomy = new(MaxConnections: 16, MaxPending: 16, MaxRequestsPerConnection: null, IdleTimeout: TimeSpan.FromMinutes(1));

    /// <summary>
    /// Kestrel h2 on loopback allowing <paramref name="maxStreams"/> streams per connection. "/hold" waits for
    /// <see cref="Release"/>; every request records the Kestrel connection it came on.
    /// </summary>
    private sealed class Upstream : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private Upstream(WebApplication app, int port)
        {
            _app = app;
            Port = port;
        }

        public int Port { get; }
        public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);
        public ConcurrentQueue<string> Connections { get; } = new();
        public int Held => _held;
        private int _held;

        public void Release() => Interlocked.Exchange(ref _gate, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

        public static async Task<Upstream> StartAsync(int maxStreams, X509Certificate2? certificate = null)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Limits.Http2.MaxStreamsPerConnection = maxStreams;
                k.Listen(IPAddress.Loopback, 0, o =>
                {
                    o.Protocols = HttpProtocols.Http2;
                    if (certificate is not null)
                    {
                        o.UseHttps(certificate);
                    }
                });
            });
            var app = builder.Build();
            Upstream? self = null;
            app.Run(async ctx =>
            {
                self!.Connections.Enqueue(ctx.Connection.Id);
                if (ctx.Request.Path == "/hold")
                {
                    Interlocked.Increment(ref self._held);
                    await self._gate.Task.WaitAsync(TimeSpan.FromSeconds(30));
                    Interlocked.Decrement(ref self._held);
                }
                await ctx.Response.WriteAsync("ok");
            });
            await app.StartAsync();
            self = new Upstream(app, new Uri(app.Urls.First()).Port);
            return self;
        }

        public async ValueTask DisposeAsync()
        {
            Release();
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private static Http2ClusterPool Pool(TimeProvider? time = null) => new("test", time ?? TimeProvider.System, new Http2ClientOptions());

    private static Task<Http2StreamLease> GetAsync(Http2ClusterPool pool, Upstream upstream, string path, PoolLimits? limits = null, UpstreamTlsModel? tls = null) =>
        pool.OpenStreamAsync(upstream.EndPoint, tls, limits ?? Roomy, TimeSpan.FromSeconds(5),
            [new(":method", "GET"), new(":scheme", tls is null ? "http" : "https"), new(":authority", "127.0.0.1"), new(":path", path)], endStream: true, Bounded()).AsTask();

    private static async Task<int> FinishAsync(Http2StreamLease lease)
    {
        Assert.Equal(ProxyError.None, lease.Error);
        using var stream = lease.Stream!;
        var head = await stream.ReadResponseHeadAsync(Bounded());
        await ReadBodyAsync(stream, Bounded());
        return head.Status;
    }

    [Fact]
    public async Task OpenStream_SequentialRequests_ShareOneConnection()
    {
        await using var upstream = await Upstream.StartAsync(maxStreams: 100);
        await using var pool = Pool();

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/")));
        }

        Assert.Equal(1, pool.Connections);
        Assert.Single(upstream.Connections.Distinct());
    }

    [Fact]
    public async Task OpenStream_MoreStreamsThanTheServerAllows_OpensAnotherConnection()
    {
        await using var upstream = await Upstream.StartAsync(maxStreams: 2);
        await using var pool = Pool();
        // The first connection learns the server's limit from its SETTINGS.
        Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/")));

        var held = new List<Http2StreamLease>();
        for (var i = 0; i < 3; i++)
        {
            held.Add(await GetAsync(pool, upstream, "/hold"));
        }
        await Eventually.WaitAsync(() => upstream.Held == 3, "three held requests to reach the server");
        upstream.Release();
        foreach (var lease in held)
        {
            Assert.Equal(200, await FinishAsync(lease));
        }

        Assert.Equal(2, pool.Connections);
        Assert.Equal(2, upstream.Connections.Distinct().Count());
    }

    [Fact]
    public async Task OpenStream_AtMaxConnections_WaitsForAStreamToEnd()
    {
        await using var upstream = await Upstream.StartAsync(maxStreams: 2);
        await using var pool = Pool();
        var limits = Roomy with { MaxConnections = 1 };
        Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/", limits)));
        var first = await GetAsync(pool, upstream, "/hold", limits);
        var second = await GetAsync(pool, upstream, "/hold", limits);

        await Eventually.WaitAsync(() => upstream.Held == 2, "both held requests to reach the server");

        var third = GetAsync(pool, upstream, "/", limits);
        await Eventually.WaitAsync(() => pool.Waiting == 1, "the third request to wait for a stream slot");
        Assert.False(third.IsCompleted);

        upstream.Release();
        Assert.Equal(200, await FinishAsync(first));
        Assert.Equal(200, await FinishAsync(await third.WaitAsync(TimeSpan.FromSeconds(10))));
        Assert.Equal(200, await FinishAsync(second));
        Assert.Equal(1, pool.Connections);
    }

    [Fact]
    public async Task OpenStream_AtMaxConnectionsWithPendingFull_AnswersCircuitOpen()
    {
        await using var upstream = await Upstream.StartAsync(maxStreams: 1);
        await using var pool = Pool();
        var limits = Roomy with { MaxConnections = 1, MaxPending = 0 };
        Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/", limits)));
        var held = await GetAsync(pool, upstream, "/hold", limits);
        await Eventually.WaitAsync(() => upstream.Held == 1, "the held request to reach the server");

        var refused = await GetAsync(pool, upstream, "/", limits);

        Assert.Equal(ProxyError.CircuitOpen, refused.Error);
        Assert.Contains("max_pending_requests 0", refused.Detail, StringComparison.Ordinal);
        upstream.Release();
        Assert.Equal(200, await FinishAsync(held));
    }

    [Fact]
    public async Task OpenStream_CallerGivesUpWhileConnecting_TheNextRequestConnects()
    {
        await using var upstream = await Upstream.StartAsync(maxStreams: 100);
        await using var pool = Pool();
        using var gone = new CancellationTokenSource();
        await gone.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pool.OpenStreamAsync(upstream.EndPoint, null, Roomy, TimeSpan.FromSeconds(5),
            [new(":method", "GET"), new(":scheme", "http"), new(":authority", "x"), new(":path", "/")], endStream: true, gone.Token).AsTask());

        Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/").WaitAsync(TimeSpan.FromSeconds(10))));
    }

    [Fact]
    public async Task OpenStream_NothingListens_ConnectFailureWithTheReason()
    {
        await using var pool = Pool();
        var closed = Trellis.Proxy.Tests.Http2.H2Models.ClosedPort();

        var lease = await pool.OpenStreamAsync(closed, null, Roomy, TimeSpan.FromSeconds(5),
            [new(":method", "GET"), new(":scheme", "http"), new(":authority", "x"), new(":path", "/")], endStream: true, Bounded());

        Assert.Equal(ProxyError.UpstreamConnectFailure, lease.Error);
        Assert.Contains($"connect to {closed} failed", lease.Detail, StringComparison.Ordinal);
        Assert.Equal(0, pool.Connections);
    }

    [Fact]
    public async Task OpenStream_MaxRequestsPerConnection_ThirdRequestOnAFreshConnection()
    {
        await using var upstream = await Upstream.StartAsync(maxStreams: 100);
        await using var pool = Pool();
        var limits = Roomy with { MaxRequestsPerConnection = 2 };

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/", limits)));
        }

        var seen = upstream.Connections.ToArray();
        Assert.Equal(seen[0], seen[1]);
        Assert.NotEqual(seen[1], seen[2]);
        pool.Sweep(); // the retired, idle first connection closes
        Assert.Equal(1, pool.Connections);
    }

    [Fact]
    public async Task Sweep_ConnectionIdlePastTheIdleTimeout_IsClosed()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        await using var upstream = await Upstream.StartAsync(maxStreams: 100);
        await using var pool = Pool(clock);
        var limits = Roomy with { IdleTimeout = TimeSpan.FromSeconds(30) };
        Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/", limits)));

        clock.Advance(TimeSpan.FromSeconds(29));
        pool.Sweep();
        Assert.Equal(1, pool.Connections);
        clock.Advance(TimeSpan.FromSeconds(2));
        pool.Sweep();

        Assert.Equal(0, pool.Connections);
    }

    [Fact]
    public async Task OpenStream_TlsCluster_HandshakesWithAlpnH2AndReusesTheConnection()
    {
        var ca = TestCertificates.CreateCa();
        await using var upstream = await Upstream.StartAsync(maxStreams: 100, TestCertificates.IssueServer(ca, "127.0.0.1"));
        await using var pool = Pool();
        var tls = new UpstreamTlsModel
        {
            Trust = UpstreamTrustKind.CustomCa,
            TrustedCa = [X509CertificateLoader.LoadCertificate(ca.RawData)],
            TrustSource = "inline (1 certificate)",
            Key = "test-ca",
        };

        Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/a", tls: tls)));
        Assert.Equal(200, await FinishAsync(await GetAsync(pool, upstream, "/b", tls: tls)));
        Assert.Equal(1, pool.Connections);

        var untrusted = await GetAsync(pool, upstream, "/c", tls: tls with { TrustedCa = [X509CertificateLoader.LoadCertificate(TestCertificates.CreateCa("Other").RawData)], Key = "other" });
        Assert.Equal(ProxyError.UpstreamConnectFailure, untrusted.Error);
        Assert.Contains("not trusted", untrusted.Detail, StringComparison.Ordinal);
    }
}
