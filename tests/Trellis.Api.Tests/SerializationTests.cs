using System.Text.Json;
using Trellis.Api.Resources;
using Xunit;
using static Trellis.Api.Tests.TestSupport;

namespace Trellis.Api.Tests;

public class SerializationTests
{
    [Fact]
    public void Serialize_YamlToModelToJsonToModel_IsEqual()
    {
        foreach (var parsed in ReadOk(Examples.AllModelled, "examples.yaml"))
        {
            var json = ResourceJson.Serialize(parsed.Resource);
            var back = ResourceJson.Deserialize(json);

            Assert.Equal(parsed.Resource.GetType(), back.GetType());
            Assert.Equal(json, ResourceJson.Serialize(back));
            Assert.Equal(parsed.Resource.Metadata.Name, back.Metadata.Name);
        }
    }

    [Fact]
    public void Serialize_Json_StartsWithApiVersionAndKindAndOmitsNulls()
    {
        var route = ReadOk(Examples.HttpRoute)[0].Resource;

        var json = ResourceJson.Serialize(route);

        Assert.StartsWith("{\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"HTTPRoute\",\"metadata\":{\"name\":\"greeter-canary\",\"namespace\":\"default\"}", json, StringComparison.Ordinal);
        Assert.DoesNotContain("null", json, StringComparison.Ordinal);
        Assert.Contains("\"request\":\"5s\"", json, StringComparison.Ordinal);
        Assert.Contains("\"type\":\"PathPrefix\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public void Serialize_ClusterScoped_OmitsNamespace()
    {
        var mesh = ReadOk(Examples.MeshConfig)[0].Resource;

        var json = ResourceJson.Serialize(mesh);

        Assert.Equal("{\"apiVersion\":\"trellis.dev/v1alpha1\",\"kind\":\"MeshConfig\",\"metadata\":{\"name\":\"mesh\"},\"spec\":{\"trustDomain\":\"cluster.local\",\"defaultAccess\":\"allow\",\"workloadCertTtl\":\"24h\"}}", json);
    }

    [Fact]
    public void Serialize_YamlOut_ReadsBackToSameModel()
    {
        var resources = ReadOk(Examples.AllModelled, "examples.yaml").Select(p => p.Resource).ToList();

        var yaml = ResourceYaml.Serialize(resources);
        var again = ResourceReader.Read(yaml, "out.yaml");

        Assert.True(again.Ok, string.Join("\n", again.Errors) + "\n" + yaml);
        Assert.Equal(resources.Select(ResourceJson.Serialize), again.Resources.Select(p => ResourceJson.Serialize(p.Resource)));
        Assert.Equal(4, yaml.Split('\n').Count(l => l == "---"));
    }

    [Fact]
    public void Serialize_YamlStringsThatLookLikeNumbers_AreQuoted()
    {
        var route = (HttpRoute)ReadOk(Examples.HttpRoute)[0].Resource;

        var yaml = ResourceYaml.Serialize(route);

        Assert.Contains("value: \"1\"", yaml, StringComparison.Ordinal);
        Assert.StartsWith("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n", yaml, StringComparison.Ordinal);
        var back = (HttpRoute)ResourceReader.Read(yaml, "x").Resources[0].Resource;
        Assert.Equal("1", back.Spec.Rules[0].Matches![0].Headers![0].Value);
    }

    [Fact]
    public void Serialize_StatusAndMetadataFields_RoundTripThroughJson()
    {
        var service = new Service
        {
            Metadata = new ObjectMeta { Name = "s", Namespace = "prod", ResourceVersion = 42, CreationTimestamp = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero), Labels = new Dictionary<string, string> { ["a.b/c"] = "d" } },
            Spec = new ServiceSpec { Ports = [new ServicePort { Name = "http", Port = 80, Protocol = ServiceProtocol.Http2 }] },
            Status = new ResourceStatus { Accepted = true, Reasons = ["ok"], Proxies = [new ProxyResourceStatus { Node = "n", State = "ACKED" }] },
        };

        var clone = ResourceJson.Clone(service);

        Assert.NotSame(service, clone);
        Assert.Equal(ResourceJson.Serialize(service), ResourceJson.Serialize(clone));
        Assert.Equal(42, clone.Metadata.ResourceVersion);
        Assert.True(clone.Status!.Accepted);
        Assert.Equal(ServiceProtocol.Http2, clone.Spec.Ports[0].Protocol);
        Assert.Contains("\"protocol\":\"http2\"", ResourceJson.Serialize(service), StringComparison.Ordinal);
    }

    [Fact]
    public void Options_SerializeResourceList_WritesEachWithKind()
    {
        var resources = ReadOk(Examples.AllModelled).Select(p => p.Resource).ToList();

        var json = JsonSerializer.Serialize(resources, ResourceJson.Options);
        var back = JsonSerializer.Deserialize<List<Resource>>(json, ResourceJson.Options)!;

        Assert.Equal(resources.Select(r => r.GetType()), back.Select(r => r.GetType()));
    }

    [Theory]
    [InlineData("{\"apiVersion\":\"trellis.dev/v1alpha1\",\"kind\":\"Nope\",\"metadata\":{\"name\":\"a\"}}", "unknown kind \"Nope\"")]
    [InlineData("{\"apiVersion\":\"trellis.dev/v1alpha1\",\"metadata\":{\"name\":\"a\"}}", "kind is required")]
    [InlineData("{\"apiVersion\":\"trellis.dev/v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"}}", "does not serve kind Service")]
    [InlineData("{\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"ports\":[{\"name\":\"h\",\"port\":80,\"protocol\":\"udp\"}]}}", "expected one of: http, http2, grpc, tcp")]
    [InlineData("{\"kind\":\"TrafficPolicy\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"timeout\":\"soon\"}}", "expected a duration")]
    [InlineData("{\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"prots\":[]}}", "prots")]
    [InlineData("{\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"},\"extra\":1}", "unknown field \"extra\"")]
    [InlineData("[1]", "expected a resource object")]
    [InlineData("{", "invalid resource JSON")]
    public void Deserialize_BadJson_ThrowsFormatExceptionSayingWhat(string json, string message)
    {
        var ex = Assert.Throws<FormatException>(() => ResourceJson.Deserialize(json));

        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deserialize_ClusterScoped_GetsEmptyNamespace()
    {
        var mesh = ResourceJson.Deserialize("{\"kind\":\"MeshConfig\",\"metadata\":{\"name\":\"mesh\",\"namespace\":\"x\"},\"spec\":{\"defaultAccess\":\"Deny\"}}");

        Assert.Equal("", mesh.Metadata.Namespace);
        Assert.Equal(AccessDefault.Deny, ((MeshConfig)mesh).Spec.DefaultAccess);
    }
}
