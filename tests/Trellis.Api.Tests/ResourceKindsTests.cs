using Trellis.Api.Resources;
using Xunit;

namespace Trellis.Api.Tests;

public class ResourceKindsTests
{
    [Theory]
    [InlineData("HTTPRoute", "HTTPRoute")]
    [InlineData("httproute", "HTTPRoute")]
    [InlineData("httproutes", "HTTPRoute")]
    [InlineData("HTTPROUTES", "HTTPRoute")]
    [InlineData("hr", "HTTPRoute")]
    [InlineData("Service", "Service")]
    [InlineData("services", "Service")]
    [InlineData("svc", "Service")]
    [InlineData("we", "WorkloadEntry")]
    [InlineData("workloadentries", "WorkloadEntry")]
    [InlineData("tp", "TrafficPolicy")]
    [InlineData("trafficpolicies", "TrafficPolicy")]
    [InlineData("grpcroute", "GRPCRoute")]
    [InlineData("tcproutes", "TCPRoute")]
    [InlineData("meshconfig", "MeshConfig")]
    [InlineData(" mc ", "MeshConfig")]
    [InlineData("faultinjection", "FaultInjection")]
    [InlineData("faultinjections", "FaultInjection")]
    [InlineData("fi", "FaultInjection")]
    [InlineData("ratelimit", "RateLimit")]
    [InlineData("RateLimits", "RateLimit")]
    [InlineData("rl", "RateLimit")]
    public void TryResolve_KnownNameOrAlias_ReturnsKind(string name, string kind)
    {
        Assert.True(ResourceKinds.TryResolve(name, out var info));
        Assert.Equal(kind, info.Kind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("routes")]
    [InlineData("AccessPolicy")]
    public void TryResolve_UnknownName_ReturnsFalse(string name)
    {
        Assert.False(ResourceKinds.TryResolve(name, out var info));
        Assert.Null(info);
    }

    [Fact]
    public void All_EachKind_HasMatchingModelTypeAndScope()
    {
        foreach (var info in ResourceKinds.All)
        {
            var instance = (Resource)Activator.CreateInstance(info.ClrType)!;
            Assert.Equal(info.Kind, instance.Kind);
            Assert.Equal(info.ApiVersion, instance.ApiVersion);
            Assert.Equal(info.Kind != "MeshConfig", info.Namespaced);
            Assert.Equal(info.Kind.ToLowerInvariant(), info.Singular);
        }

        Assert.Equal(9, ResourceKinds.All.Count);
    }
}
