using Trellis.Proxy.Http;
using Trellis.Proxy.Http.Http2;
using Trellis.Proxy.Model;
using Xunit;

namespace Trellis.Proxy.Tests.Http2;

public sealed class GrpcProtocolTests
{
    [Theory]
    [InlineData("1H", 36_000_000_000L)]
    [InlineData("2M", 1_200_000_000L)]
    [InlineData("3S", 30_000_000L)]
    [InlineData("300m", 3_000_000L)]
    [InlineData("250u", 2_500L)]
    [InlineData("1500n", 15L)]
    [InlineData("99999999m", 999_999_990_000L)]
    public void TryParseTimeout_EveryUnit_ParsesToTheDuration(string value, long ticks)
    {
        Assert.True(GrpcProtocol.TryParseTimeout(value, out var timeout));
        Assert.Equal(TimeSpan.FromTicks(ticks), timeout);
    }

    [Theory]
    [InlineData("")]
    [InlineData("m")]
    [InlineData("10")]
    [InlineData("10s")]
    [InlineData("-1S")]
    [InlineData("123456789S")]
    [InlineData("1.5S")]
    public void TryParseTimeout_Malformed_Rejected(string value) =>
        Assert.False(GrpcProtocol.TryParseTimeout(value, out _));

    [Theory]
    [InlineData(3_000_000L, "300000u")]
    [InlineData(1L, "1u")]
    [InlineData(1_000_000_000L, "100000m")]
    [InlineData(1_000_000_000_000L, "100000S")]
    public void FormatTimeout_FinestUnitThatFits_RoundedUp(long ticks, string expected) =>
        Assert.Equal(expected, GrpcProtocol.FormatTimeout(TimeSpan.FromTicks(ticks)));

    [Fact]
    public void FormatTimeout_ThenParse_NeverGivesMoreTime()
    {
        foreach (var ticks in new[] { 1L, 9L, 12_345L, 10_000_001L, 987_654_321_123L })
        {
            Assert.True(GrpcProtocol.TryParseTimeout(GrpcProtocol.FormatTimeout(TimeSpan.FromTicks(ticks)), out var back));
            Assert.True(back >= TimeSpan.FromTicks(ticks));
            Assert.True(back - TimeSpan.FromTicks(ticks) < TimeSpan.FromTicks(Math.Max(10, ticks / 1000)));
        }
    }

    [Fact]
    public void EncodeMessage_NonAsciiAndPercent_PercentEncodedAsUtf8()
    {
        Assert.Equal("plain text", GrpcProtocol.EncodeMessage("plain text"));
        Assert.Equal("50%25 caf%C3%A9%0A", GrpcProtocol.EncodeMessage("50% café\n"));
    }

    [Theory]
    [InlineData(404, 12)]
    [InlineData(503, 14)]
    [InlineData(429, 14)]
    [InlineData(401, 16)]
    [InlineData(500, 2)]
    public void StatusFromHttp_GrpcMapping(int http, int grpc) => Assert.Equal(grpc, GrpcProtocol.StatusFromHttp(http));

    private static RouteModel Prefix(string prefix, string? rewrite) =>
        new("r", new RouteMatchModel(PathMatchKind.Prefix, prefix, [], []), [], null, null, rewrite, null, [], [], [], [], null, null, null);

    [Theory]
    [InlineData("/api/", "/", "/api/users?id=1", "/users?id=1")]
    [InlineData("/api", "/v2", "/api/users", "/v2/users")]
    [InlineData("/api/", null, "/api/users", "/api/users")]
    public void UpstreamPath_PrefixRewrite_SwapsTheMatchedPrefixOnly(string prefix, string? rewrite, string target, string expected) =>
        Assert.Equal(expected, RouteRewrites.UpstreamPath(Prefix(prefix, rewrite), target));

    [Fact]
    public void RedirectLocation_HostPortSchemeAndPrefix_Rewritten()
    {
        var route = Prefix("/old/", null);
        var redirect = new RedirectModel("https", "new.example", 8443, null, "/new/", 301);
        Assert.Equal("https://new.example:8443/new/page?q=1", RouteRewrites.RedirectLocation(route, redirect, "http", "web:80", "/old/page?q=1"));

        var pathOnly = new RedirectModel(null, null, null, "/moved", null, 302);
        Assert.Equal("http://web:80/moved?q=1", RouteRewrites.RedirectLocation(route, pathOnly, "http", "web:80", "/old/page?q=1"));
    }
}
