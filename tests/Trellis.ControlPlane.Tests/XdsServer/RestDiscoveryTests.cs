using System.Net;
using System.Text.Json.Nodes;
using Trellis.Testing;
using Xunit;

namespace Trellis.ControlPlane.Tests.XdsServer;

public sealed class RestDiscoveryTests
{
    [Fact]
    public async Task PostListeners_ReturnsJsonResponse_Then304WhenUnchanged()
    {
        await using var cp = await TestControlPlane.StartAsync();
        await cp.ApplyAsync(AdsServerTests.Mesh);
        // An apply answers once translation has published it, so the pull sees it at once.
        using var r = await cp.Http.PostAsync("v3/discovery:clusters", new StringContent("{\"node\":{\"id\":\"rest-1\"}}"));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Assert.Equal(2, body["resources"]!.AsArray().Count);
        Assert.Equal("type.googleapis.com/envoy.config.cluster.v3.Cluster", body["typeUrl"]!.GetValue<string>());
        Assert.Equal("type.googleapis.com/envoy.config.cluster.v3.Cluster", body["resources"]![0]!["@type"]!.GetValue<string>());
        var version = body["versionInfo"]!.GetValue<string>();

        using var again = await cp.Http.PostAsync("v3/discovery:clusters", new StringContent($"{{\"node\":{{\"id\":\"rest-1\"}},\"versionInfo\":\"{version}\"}}"));
        Assert.Equal(HttpStatusCode.NotModified, again.StatusCode);

        using var named = await cp.Http.PostAsync("v3/discovery:endpoints", new StringContent("{\"resourceNames\":[\"greeter.default:50051\"]}"));
        var eds = JsonNode.Parse(await named.Content.ReadAsStringAsync())!;
        Assert.Equal("greeter.default:50051", eds["resources"]![0]!["clusterName"]!.GetValue<string>());
    }

    [Fact]
    public async Task PostUnknownType_Returns404NamingTheKnownOnes()
    {
        await using var cp = await TestControlPlane.StartAsync();
        using var r = await cp.Http.PostAsync("v3/discovery:secretz", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Contains("listeners", await r.Content.ReadAsStringAsync());
    }
}
