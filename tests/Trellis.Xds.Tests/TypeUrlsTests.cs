using Envoy.Config.Cluster.V3;
using Envoy.Config.Endpoint.V3;
using Envoy.Config.Listener.V3;
using Envoy.Config.Route.V3;
using Envoy.Extensions.Filters.Http.Fault.V3;
using Envoy.Extensions.Filters.Http.Router.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Envoy.Extensions.Filters.Network.TcpProxy.V3;
using Envoy.Extensions.TransportSockets.Tls.V3;
using Xunit;

namespace Trellis.Xds.Tests;

public sealed class TypeUrlsTests
{
    public static TheoryData<string, string> UrlsAndNames() => new()
    {
        { TypeUrls.Listener, Listener.Descriptor.FullName },
        { TypeUrls.RouteConfiguration, RouteConfiguration.Descriptor.FullName },
        { TypeUrls.Cluster, Cluster.Descriptor.FullName },
        { TypeUrls.ClusterLoadAssignment, ClusterLoadAssignment.Descriptor.FullName },
        { TypeUrls.Secret, Secret.Descriptor.FullName },
        { TypeUrls.HttpConnectionManager, HttpConnectionManager.Descriptor.FullName },
        { TypeUrls.Router, Router.Descriptor.FullName },
        { TypeUrls.HttpFault, HTTPFault.Descriptor.FullName },
        { TypeUrls.Rbac, Envoy.Extensions.Filters.Http.Rbac.V3.RBAC.Descriptor.FullName },
        { TypeUrls.LocalRateLimit, Envoy.Extensions.Filters.Http.LocalRatelimit.V3.LocalRateLimit.Descriptor.FullName },
        { TypeUrls.FilterConfig, FilterConfig.Descriptor.FullName },
        { TypeUrls.UpstreamHttpProtocolOptions, Envoy.Extensions.Upstreams.Http.V3.HttpProtocolOptions.Descriptor.FullName },
        { TypeUrls.TcpProxy, TcpProxy.Descriptor.FullName },
        { TypeUrls.UpstreamTlsContext, UpstreamTlsContext.Descriptor.FullName },
        { TypeUrls.DownstreamTlsContext, DownstreamTlsContext.Descriptor.FullName },
    };

    [Theory]
    [MemberData(nameof(UrlsAndNames))]
    public void TypeUrl_ForGeneratedMessage_IsGooglePrefixPlusFullName(string url, string fullName)
    {
        Assert.Equal("type.googleapis.com/" + fullName, url);
    }

    [Theory]
    [InlineData(TypeUrls.Listener, "LDS")]
    [InlineData(TypeUrls.RouteConfiguration, "RDS")]
    [InlineData(TypeUrls.Cluster, "CDS")]
    [InlineData(TypeUrls.ClusterLoadAssignment, "EDS")]
    [InlineData(TypeUrls.Secret, "SDS")]
    public void ShortName_ResourceType_ReturnsProtocolName(string url, string expected)
    {
        Assert.Equal(expected, TypeUrls.ShortName(url));
    }

    [Fact]
    public void ShortName_OtherTypeUrl_ReturnsMessageName()
    {
        Assert.Equal("envoy.extensions.filters.http.router.v3.Router", TypeUrls.ShortName(TypeUrls.Router));
    }

    [Fact]
    public void ResourceTypes_AllFive_HaveDistinctShortNames()
    {
        Assert.Equal(5, TypeUrls.ResourceTypes.Select(TypeUrls.ShortName).Distinct().Count());
    }
}
