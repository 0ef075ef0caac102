using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Trellis.Proxy.Model;
using Xunit;

namespace Trellis.Proxy.Tests.Http2;

/// <summary>Plain HTTP/2 (h2c) requests through the frontend: routing, rewrites, header mutations, proxy answers.</summary>
public sealed class Http2FrontendHttpTests(H2Backends backends) : IClassFixture<H2Backends>
{
    /// <summary>
    /// /a/ goes to backend a with its prefix rewritten to / and header mutations both ways; /b/ goes to backend b
    /// unchanged; /direct is answered by the proxy.
    /// </summary>
    private ProxyModel Model(string version, string aCluster = "a")
    {
        var a = H2Models.Route("a", "/a/", aCluster) with
        {
            PrefixRewrite = "/",
            RequestHeadersToAdd = [new HeaderMutation("x-set", "proxy", Append: false), new HeaderMutation("x-added", "proxy", Append: true)],
            RequestHeadersToRemove = ["x-secret"],
            ResponseHeadersToAdd = [new HeaderMutation("x-route", "a", Append: false)],
            ResponseHeadersToRemove = ["x-remove-me"],
        };
        var direct = H2Models.Route("direct", "/direct", "a") with { DirectResponseStatus = 418, DirectResponseBody = "short and stout" };
        return H2Models.Model(version, [a, H2Models.Route("b", "/b/", "b"), direct],
            H2Models.Cluster("a", backends.A.EndPoint), H2Models.Cluster("b", backends.B.EndPoint));
    }

    private static Proxied Web(ProxyModel model) => new(model, H2Models.Target(H2Models.WebTarget));

    /// <summary>Every path to one cluster of one endpoint.</summary>
    private static Proxied WebToOne(string cluster, IPEndPoint endpoint) =>
        Web(H2Models.Model("v1", [H2Models.Route("all", "/", cluster)], H2Models.Cluster(cluster, endpoint)));

    private static Dictionary<string, string> Lines(string body) =>
        body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");

    [Fact]
    public async Task Get_PathRoutes_ReachTheirClustersWithPrefixRewritten()
    {
        await using var proxied = Web(Model("v1"));
        var client = proxied.Http;

        using var a = await client.GetAsync(proxied.Url("/a/who?x=1"));
        using var b = await client.GetAsync(proxied.Url("/b/who"));

        Assert.Equal(HttpVersion.Version20, a.Version);
        Assert.Equal(HttpStatusCode.OK, a.StatusCode);
        var aSeen = Lines(await a.Content.ReadAsStringAsync());
        Assert.Equal("a", aSeen["backend"]);
        Assert.Equal("/who?x=1", aSeen["path"]);
        var bSeen = Lines(await b.Content.ReadAsStringAsync());
        Assert.Equal("b", bSeen["backend"]);
        Assert.Equal("/b/who", bSeen["path"]);
        // The original authority goes upstream unchanged.
        Assert.Equal(proxied.Proxy.ToString(), bSeen["h:host"]);
    }

    [Fact]
    public async Task Get_RouteHeaderMutations_SeenByBackendAndClient()
    {
        await using var proxied = Web(Model("v1"));
        var client = proxied.Http;
        using var request = new HttpRequestMessage(HttpMethod.Get, proxied.Url("/a/headers")) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Headers.Add("x-set", "client");
        request.Headers.Add("x-added", "client");
        request.Headers.Add("x-secret", "hunter2");
        request.Headers.Add("x-kept", "yes");

        using var response = await client.SendAsync(request);
        var seen = Lines(await response.Content.ReadAsStringAsync());

        Assert.Equal("proxy", seen["h:x-set"]);
        // Appended: the client's field and the route's (one list, however the fields are split on the wire).
        Assert.Equal(["client", "proxy"], seen["h:x-added"].Split(',').Select(v => v.Trim()));
        Assert.False(seen.ContainsKey("h:x-secret"));
        Assert.Equal("yes", seen["h:x-kept"]);
        Assert.Equal("a", Assert.Single(response.Headers.GetValues("x-route")));
        Assert.Equal("a", Assert.Single(response.Headers.GetValues("x-backend")));
        Assert.False(response.Headers.Contains("x-remove-me"));
    }

    [Fact]
    public async Task Get_RouteChangesOnALiveConnection_NextRequestFollowsTheNewRoute()
    {
        await using var proxied = Web(Model("v1"));
        var client = proxied.Http;

        using var before = await client.GetAsync(proxied.Url("/a/who"));
        Assert.Equal("a", Lines(await before.Content.ReadAsStringAsync())["backend"]);

        proxied.Harness.State.Swap(Model("v2", aCluster: "b"), complete: true);
        using var after = await client.GetAsync(proxied.Url("/a/who"));

        Assert.Equal("b", Lines(await after.Content.ReadAsStringAsync())["backend"]);
        Assert.Equal(1, proxied.Harness.Accepted);
    }

    [Fact]
    public async Task Get_DirectResponseRoute_AnsweredByTheProxy()
    {
        await using var proxied = Web(Model("v1"));
        var client = proxied.Http;

        using var response = await client.GetAsync(proxied.Url("/direct"));

        Assert.Equal((HttpStatusCode)418, response.StatusCode);
        Assert.Equal("short and stout", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Get_NoRouteMatches_404WithTrellisErrorAndExplanation()
    {
        await using var proxied = Web(Model("v1"));
        var client = proxied.Http;

        using var response = await client.GetAsync(proxied.Url("/elsewhere"));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("no_route", Assert.Single(response.Headers.GetValues("x-trellis-error")));
        Assert.Contains("no route matches this request", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Post_RefusedEndpoint_503WithConnectFailure()
    {
        await using var proxied = WebToOne("down", H2Models.ClosedPort());
        var client = proxied.Http;

        using var response = await client.PostAsync(proxied.Url("/upload"), new StringContent("body"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("upstream_connect_failure", Assert.Single(response.Headers.GetValues("x-trellis-error")));
    }

    [Fact]
    public async Task Get_HeaderListLargerThanTheLimit_RejectedWith431()
    {
        await using var proxied = Web(Model("v1"));
        // A raw client: HttpClient refuses to send past the SETTINGS_MAX_HEADER_LIST_SIZE the proxy announces, once it has it.
        await using var client = await Server.RawH2Client.ConnectAsync(proxied.Proxy.Port);

        // 72 KiB in all, each field under the limit.
        await client.SendHeadersAsync(1, endStream: true,
            Server.RawH2Client.Get("/b/big", [.. Enumerable.Range(0, 8).Select(i => ($"x-big-{i}", new string('x', 9 * 1024)))]));

        Assert.Contains((":status", "431"), await client.ReadResponseHeadAsync(1));
    }

    /// <summary>
    /// A backend that hashes what it receives (POST) or sends 3 MiB of seeded bytes (GET). Echoing a large body would
    /// deadlock on flow control even without a proxy: HttpClient reads no response before a byte-array body is sent.
    /// </summary>
    private static Task<H2Backend> BulkBackendAsync() => H2Backend.StartAsync("bulk", async ctx =>
    {
        if (HttpMethods.IsPost(ctx.Request.Method))
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[16 * 1024];
            long total = 0;
            int n;
            while ((n = await ctx.Request.Body.ReadAsync(buffer, ctx.RequestAborted)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                total += n;
            }
            await ctx.Response.WriteAsync($"{total} {Convert.ToHexString(sha.GetHashAndReset())}", ctx.RequestAborted);
            return;
        }
        ctx.Response.ContentType = "application/octet-stream";
        await ctx.Response.Body.WriteAsync(Payload(), ctx.RequestAborted);
    });

    private static byte[] Payload()
    {
        var payload = new byte[(3 * 1024 * 1024) + 17];
        new Random(7).NextBytes(payload);
        return payload;
    }

    [Fact]
    public async Task Post_LargeBody_ReachesTheBackendWhole()
    {
        await using var bulk = await BulkBackendAsync();
        await using var proxied = WebToOne("bulk", bulk.EndPoint);
        var client = proxied.Http;
        var payload = Payload();

        using var response = await client.PostAsync(proxied.Url("/upload"), new ByteArrayContent(payload));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"{payload.Length} {Convert.ToHexString(SHA256.HashData(payload))}", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Get_LargeResponse_ReachesTheClientWhole()
    {
        await using var bulk = await BulkBackendAsync();
        await using var proxied = WebToOne("bulk", bulk.EndPoint);
        var client = proxied.Http;

        var body = await client.GetByteArrayAsync(proxied.Url("/download"));

        Assert.Equal(Payload(), body);
    }
}
