using System.Net;
using Trellis.Proxy.Model;
using Xunit;
using static Trellis.Proxy.Tests.Http.Http1.TestModels;

namespace Trellis.Proxy.Tests.Http.Http1;

public sealed class Http1RoutingTests
{
    private static readonly IReadOnlyList<HeaderMatchModel> NoMatches = [];

    private static RouteModel Match(string name, string cluster, string prefix = "/", IReadOnlyList<HeaderMatchModel>? headers = null, IReadOnlyList<HeaderMatchModel>? query = null) =>
        Route(name, prefix, cluster) with { Match = new RouteMatchModel(PathMatchKind.Prefix, prefix, headers ?? NoMatches, query ?? NoMatches) };

    [Fact]
    public async Task Route_ByPathHeaderMethodAndQuery_ReachesTheMatchingCluster()
    {
        await using var api = new TestBackend((r, x) => x.OkAsync("api"));
        await using var canary = new TestBackend((r, x) => x.OkAsync("canary"));
        await using var posts = new TestBackend((r, x) => x.OkAsync("posts"));
        await using var beta = new TestBackend((r, x) => x.OkAsync("beta"));
        await using var rest = new TestBackend((r, x) => x.OkAsync("rest"));
        var routes = new[]
        {
            Match("canary", "canary", headers: [new HeaderMatchModel("x-canary", "1", null, false)]),
            Match("api", "api", prefix: "/api/"),
            Match("posts", "posts", headers: [new HeaderMatchModel(":method", "POST", null, false)]),
            Match("beta", "beta", query: [new HeaderMatchModel("beta", "yes", null, false)]),
            Match("rest", "rest"),
        };
        await using var proxy = new TestProxy(State(ModelOf(routes,
            Cluster("api", api.EndPoint), Cluster("canary", canary.EndPoint), Cluster("posts", posts.EndPoint), Cluster("beta", beta.EndPoint), Cluster("rest", rest.EndPoint))));
        using var client = await proxy.ConnectAsync();

        Assert.Equal("api", (await client.RoundTripAsync("GET /api/users HTTP/1.1\r\nHost: web\r\n\r\n")).Body);
        Assert.Equal("canary", (await client.RoundTripAsync("GET /api/users HTTP/1.1\r\nHost: web\r\nX-Canary: 1\r\n\r\n")).Body);
        Assert.Equal("posts", (await client.RoundTripAsync("POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n")).Body);
        Assert.Equal("beta", (await client.RoundTripAsync("GET /x?a=1&beta=yes HTTP/1.1\r\nHost: web\r\n\r\n")).Body);
        Assert.Equal("rest", (await client.RoundTripAsync("GET /x?beta=no HTTP/1.1\r\nHost: web\r\n\r\n")).Body);
    }

    [Fact]
    public async Task Route_OutboundListenerWithoutCluster_PicksTheVirtualHostByHost()
    {
        await using var web = new TestBackend((r, x) => x.OkAsync("web"));
        await using var db = new TestBackend((r, x) => x.OkAsync("shop"));
        var model = ModelOf(
            [
                new VirtualHostModel(Service, ["web", Service], [Route("w", "/", "web")]),
                new VirtualHostModel("shop.default:80", ["shop", "shop.default:80"], [Route("s", "/", "shop")]),
            ],
            Cluster("web", web.EndPoint), Cluster("shop", db.EndPoint));
        await using var proxy = new TestProxy(State(model), cluster: null);
        using var client = await proxy.ConnectAsync();

        Assert.Equal("web", (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Body);
        Assert.Equal("shop", (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: shop:80\r\n\r\n")).Body);
        var none = await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n");
        Assert.Equal(404, none.Status);
        Assert.Equal("no_route", none.Header("x-trellis-error"));
    }

    [Fact]
    public async Task Route_NoRouteMatches_Answers404NoRouteAndKeepsTheConnection()
    {
        await using var backend = new TestBackend();
        await using var proxy = new TestProxy(State(ModelOf([Route("api", "/api", "web")], Cluster("web", backend.EndPoint))));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET /other HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal(404, response.Status);
        Assert.Equal("no_route", response.Header("x-trellis-error"));
        Assert.Contains("no route matches", response.Body, StringComparison.Ordinal);
        Assert.Equal(200, (await client.RoundTripAsync("GET /api HTTP/1.1\r\nHost: web\r\n\r\n")).Status);
    }

    [Fact]
    public async Task Route_NamesAMissingCluster_Answers503NoCluster()
    {
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "gone")])));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal(503, response.Status);
        Assert.Equal("no_cluster", response.Header("x-trellis-error"));
    }

    [Fact]
    public async Task Route_NoHealthyEndpoint_Answers503NoHealthyUpstream()
    {
        var cluster = Cluster("web", new IPEndPoint(IPAddress.Loopback, 9));
        cluster = cluster with { Endpoints = [cluster.Endpoints[0] with { Health = EndpointHealthKind.Unhealthy }] };
        await using var proxy = new TestProxy(State(ModelOf([Route("r", "/", "web")], cluster)));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal(503, response.Status);
        Assert.Equal("no_healthy_upstream", response.Header("x-trellis-error"));
    }

    [Fact]
    public async Task Route_WeightedSplit80To20_RatioWithinTolerance()
    {
        await using var v1 = new TestBackend((r, x) => x.OkAsync("v1"));
        await using var v2 = new TestBackend((r, x) => x.OkAsync("v2"));
        var route = Route("split", "/", new WeightedClusterModel("v1", 80), new WeightedClusterModel("v2", 20));
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("v1", v1.EndPoint), Cluster("v2", v2.EndPoint))), seed: 42);
        using var client = await proxy.ConnectAsync();

        const int total = 400;
        var toV2 = 0;
        for (var i = 0; i < total; i++)
        {
            toV2 += (await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\n\r\n")).Body == "v2" ? 1 : 0;
        }

        // 20% of 400 = 80; binomial standard deviation = 8: allow four of them.
        Assert.InRange(toV2, 48, 112);
    }

    [Fact]
    public async Task Route_PrefixAndHostRewrite_AreWhatTheBackendSees()
    {
        await using var backend = new TestBackend();
        var route = Route("r", "/old/", "web") with { PrefixRewrite = "/new/", HostRewrite = "internal.example" };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))));
        using var client = await proxy.ConnectAsync();

        await client.RoundTripAsync("GET /old/page?x=1 HTTP/1.1\r\nHost: web\r\n\r\n");
        var seen = await backend.NextRequestAsync();

        Assert.Equal("/new/page?x=1", seen.Target);
        Assert.Equal("internal.example", seen.Header("host"));
        Assert.Equal(1, seen.Count("host"));
    }

    [Theory]
    [InlineData("/api", "/", "/api/users", "/users")]
    [InlineData("/api/", "/", "/api/users", "/users")]
    [InlineData("/api", "", "/api", "/")]
    [InlineData("/api", "/v2", "/api/x?q", "/v2/x?q")]
    public async Task Route_PrefixRewrite_JoinsWithOneSlash(string prefix, string rewrite, string path, string expected)
    {
        await using var backend = new TestBackend();
        var route = Route("r", prefix, "web") with { PrefixRewrite = rewrite };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))));
        using var client = await proxy.ConnectAsync();

        await client.RoundTripAsync($"GET {path} HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal(expected, (await backend.NextRequestAsync()).Target);
    }

    [Fact]
    public async Task Route_HeaderMutations_AddSetAndRemoveBothWays()
    {
        await using var backend = new TestBackend((r, x) => x.OkAsync("ok", "Server: backend", "X-Internal: secret", "X-Tag: upstream"));
        var route = Route("r", "/", "web") with
        {
            RequestHeadersToAdd = [new HeaderMutation("x-added", "1", Append: true), new HeaderMutation("x-env", "prod", Append: false)],
            RequestHeadersToRemove = ["x-debug"],
            ResponseHeadersToAdd = [new HeaderMutation("x-tag", "proxy", Append: true), new HeaderMutation("server", "trellis", Append: false)],
            ResponseHeadersToRemove = ["x-internal"],
        };
        await using var proxy = new TestProxy(State(ModelOf([route], Cluster("web", backend.EndPoint))));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET / HTTP/1.1\r\nHost: web\r\nX-Added: 0\r\nX-Env: dev\r\nX-Debug: on\r\n\r\n");
        var seen = await backend.NextRequestAsync();

        Assert.Equal(2, seen.Count("x-added"));
        Assert.Equal("prod", seen.Header("x-env"));
        Assert.Equal(1, seen.Count("x-env"));
        Assert.Null(seen.Header("x-debug"));
        Assert.Equal("trellis", response.Header("server"));
        Assert.Equal(1, response.Count("server"));
        Assert.Equal(2, response.Count("x-tag"));
        Assert.Null(response.Header("x-internal"));
    }

    [Fact]
    public async Task Route_DirectResponse_AnswersWithoutAnUpstream()
    {
        var route = Route("d", "/health", "unused") with { DirectResponseStatus = 418, DirectResponseBody = "short and stout", Clusters = [] };
        await using var proxy = new TestProxy(State(ModelOf([route])));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET /health HTTP/1.1\r\nHost: web\r\n\r\n");

        Assert.Equal(418, response.Status);
        Assert.Equal("short and stout", response.Body);
        Assert.Null(response.Header("x-trellis-error"));
    }

    [Theory]
    [InlineData(null, null, null, null, null, "http://web:8080/old/a?q=1")]
    [InlineData("https", "secure.example", null, null, null, "https://secure.example/old/a?q=1")]
    [InlineData(null, null, 9090, "/moved", null, "http://web:9090/moved?q=1")]
    [InlineData(null, "other", null, null, "/new/", "http://other:8080/new/a?q=1")]
    public async Task Route_Redirect_LocationFollowsTheRedirect(string? scheme, string? host, int? port, string? path, string? prefix, string expected)
    {
        var route = Route("r", "/old/", "unused") with { Redirect = new RedirectModel(scheme, host, port, path, prefix, 302), Clusters = [] };
        await using var proxy = new TestProxy(State(ModelOf([route])));
        using var client = await proxy.ConnectAsync();

        var response = await client.RoundTripAsync("GET /old/a?q=1 HTTP/1.1\r\nHost: web:8080\r\n\r\n");

        Assert.Equal(302, response.Status);
        Assert.Equal(expected, response.Header("location"));
    }
}
