using Trellis.Api.Resources;
using Xunit;
using static Trellis.Api.Tests.TestSupport;

namespace Trellis.Api.Tests;

public class ResourceReaderTests
{
    private const string File = "r.yaml";

    private static IReadOnlyList<ValidationError> Errors(string yaml) => ResourceReader.Read(yaml, File).Errors;

    [Fact]
    public void Read_InterfacesExamples_ParseWithoutErrors()
    {
        var result = ResourceReader.Read(Examples.AllModelled, "examples.yaml");

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(["Service", "WorkloadEntry", "HTTPRoute", "TrafficPolicy", "MeshConfig"], result.Resources.Select(r => r.Resource.Kind));
        Assert.Equal([1, 2, 3, 4, 5], result.Resources.Select(r => r.Document));
        var service = Assert.IsType<Service>(result.Resources[0].Resource);
        Assert.Equal(ServiceProtocol.Grpc, service.Spec.Ports[0].Protocol);
        var route = Assert.IsType<HttpRoute>(result.Resources[2].Resource);
        Assert.Equal("1", route.Spec.Rules[0].Matches![0].Headers![0].Value);
        Assert.Equal(TimeSpan.FromSeconds(5), route.Spec.Rules[1].Timeouts!.Request);
        var policy = Assert.IsType<TrafficPolicy>(result.Resources[3].Resource);
        Assert.Equal(TimeSpan.FromSeconds(30), policy.Spec.OutlierDetection!.BaseEjectionTime);
        Assert.Equal(["connect-failure", "reset", "5xx"], policy.Spec.Retries!.RetryOn!);
        var mesh = Assert.IsType<MeshConfig>(result.Resources[4].Resource);
        Assert.Equal("", mesh.Metadata.Namespace);
        Assert.Equal(TimeSpan.FromHours(24), mesh.Spec.WorkloadCertTtl);
    }

    [Fact]
    public void Read_LaterKindsFromInterfaces_ReportUnknownKindAndKeepTheRest()
    {
        var result = ResourceReader.Read(Examples.All, "examples.yaml");

        Assert.Equal(2, result.Errors.Count);
        Assert.All(result.Errors, e => Assert.Equal("kind", e.Path));
        Assert.Contains("unknown kind \"AccessPolicy\"", result.Errors[0].Message, StringComparison.Ordinal);
        Assert.Equal(5, result.Errors[0].Document);
        Assert.Equal(6, result.Errors[1].Document);
        Assert.Equal(5, result.Resources.Count);
        Assert.Equal(7, result.Resources[^1].Document);
    }

    [Fact]
    public void Read_UnknownKind_ReportsKindPositionAndKnownKinds()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Servise\nmetadata: {name: a}\n");

        var error = AssertOnlyError(errors, File, 1, 2, 7, "kind", "unknown kind \"Servise\"; did you mean \"Service\"? known kinds: Service, WorkloadEntry, HTTPRoute");
        Assert.Equal("r.yaml:2:7: document 1: kind: " + error.Message, error.ToString());
    }

    [Fact]
    public void Read_MissingKind_ReportsDocumentStart()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nmetadata: {name: a}\n");

        AssertOnlyError(errors, File, 1, 1, 1, "kind", "kind is required; known kinds:");
    }

    [Fact]
    public void Read_UnknownApiVersion_ReportsExpectedVersion()
    {
        var errors = Errors("apiVersion: trellis.dev/v9\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\n");

        AssertOnlyError(errors, File, 1, 1, 13, "apiVersion", "unknown apiVersion \"trellis.dev/v9\"; expected trellis.dev/v1alpha1 for Service");
    }

    [Fact]
    public void Read_ApiVersionOfAnotherKind_ReportsMismatch()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: HTTPRoute\nmetadata: {name: a}\n");

        AssertOnlyError(errors, File, 1, 1, 13, "apiVersion", "does not serve kind HTTPRoute; expected gateway.networking.k8s.io/v1");
    }

    [Fact]
    public void Read_MissingApiVersion_ReportsRequired()
    {
        var errors = Errors("kind: Service\nmetadata: {name: a}\n");

        AssertOnlyError(errors, File, 1, 1, 1, "apiVersion", "apiVersion is required; expected trellis.dev/v1alpha1 for Service");
    }

    [Fact]
    public void Read_MissingMetadataName_ReportsMetadata()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata:\n  namespace: prod\n");

        AssertOnlyError(errors, File, 1, 3, 1, "metadata.name", "metadata.name is required");
    }

    [Fact]
    public void Read_MissingMetadata_ReportsDocumentStart()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\n");

        AssertOnlyError(errors, File, 1, 1, 1, "metadata.name", "metadata.name is required");
    }

    [Theory]
    [InlineData("Greeter")]
    [InlineData("greeter_1")]
    [InlineData("-greeter")]
    [InlineData("greeter.v1")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void Read_InvalidName_ReportsDnsLabelRule(string name)
    {
        var errors = Errors($"apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata:\n  name: {name}\n");

        AssertOnlyError(errors, File, 1, 4, 9, "metadata.name", $"\"{name}\" is not a valid name: use lower-case letters, digits and '-'");
    }

    [Fact]
    public void Read_InvalidNamespace_ReportsNamespace()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata:\n  name: a\n  namespace: Prod\n");

        AssertOnlyError(errors, File, 1, 5, 14, "metadata.namespace", "\"Prod\" is not a valid namespace");
    }

    [Fact]
    public void Read_MisspelledField_SuggestsClosestField()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  prots: []\n");

        AssertOnlyError(errors, File, 1, 5, 3, "spec.prots", "unknown field \"prots\"; did you mean \"ports\"?");
    }

    [Fact]
    public void Read_UnknownField_ListsAllowedFields()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - name: http\n    port: 80\n    nodePort: 30080\n");

        AssertOnlyError(errors, File, 1, 8, 5, "spec.ports[0].nodePort", "unknown field \"nodePort\"; fields allowed here: name, port, targetPort, protocol");
    }

    [Fact]
    public void Read_UnknownTopLevelField_SuggestsSpec()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspecs: {}\n");

        AssertOnlyError(errors, File, 1, 4, 1, "specs", "did you mean \"spec\"?");
    }

    [Fact]
    public void Read_StringWhereIntegerExpected_ReportsValuePosition()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - name: http\n    port: eighty\n");

        AssertOnlyError(errors, File, 1, 7, 11, "spec.ports[0].port", "expected an integer, got \"eighty\"");
    }

    [Fact]
    public void Read_QuotedNumberWhereIntegerExpected_ReportsWrongType()
    {
        var errors = Errors("{\"apiVersion\": \"trellis.dev/v1alpha1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"a\"},\n \"spec\": {\"ports\": [{\"name\": \"http\", \"port\": \"80\"}]}}\n");

        AssertOnlyError(errors, File, 1, 2, 46, "spec.ports[0].port", "expected an integer, got \"80\"");
    }

    [Fact]
    public void Read_ListWhereStringExpected_ReportsWrongType()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - name: [http]\n    port: 80\n");

        AssertOnlyError(errors, File, 1, 6, 11, "spec.ports[0].name", "expected a string, got a list");
    }

    [Fact]
    public void Read_MapWhereListExpected_ReportsWrongType()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: {name: http, port: 80}\n");

        AssertOnlyError(errors, File, 1, 5, 10, "spec.ports", "expected a list, got a map");
    }

    [Fact]
    public void Read_ListWhereMapExpected_ReportsWrongType()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: [app]\n  ports: [{name: http, port: 80}]\n");

        AssertOnlyError(errors, File, 1, 5, 13, "spec.selector", "expected a map, got a list");
    }

    [Fact]
    public void Read_ScalarWhereRecordExpected_ListsFields()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec:\n  address: 10.0.0.1\n  locality: zone-a\n");

        AssertOnlyError(errors, File, 1, 6, 13, "spec.locality", "expected a map with fields region, zone, subZone; got \"zone-a\"");
    }

    [Fact]
    public void Read_BadDuration_ReportsExpectedFormat()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: a}\nspec:\n  targetRef: {name: greeter}\n  timeout: 5 seconds\n");

        AssertOnlyError(errors, File, 1, 6, 12, "spec.timeout", "expected a duration such as 100ms, 5s, 1m30s or 2h; got \"5 seconds\"");
    }

    [Fact]
    public void Read_BadEnum_ListsValues()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - {name: dns, port: 53, protocol: udp}\n");

        AssertOnlyError(errors, File, 1, 6, 37, "spec.ports[0].protocol", "expected one of: http, http2, grpc, tcp; got \"udp\"");
    }

    [Fact]
    public void Read_BadBoolean_ReportsExpected()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: a}\nspec:\n  loadBalancer: {algorithm: RingHash, hashOn: {sourceIp: maybe}}\n");

        AssertOnlyError(errors, File, 1, 5, 58, "spec.loadBalancer.hashOn.sourceIp", "expected true or false, got \"maybe\"");
    }

    [Fact]
    public void Read_EnumsAnyCase_ReadAsCanonical()
    {
        var result = ResourceReader.Read(
            "apiVersion: trellis.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {defaultAccess: DENY}\n---\n" +
            "apiVersion: trellis.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec: {address: 10.0.0.1, health: Draining}\n", File);

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(AccessDefault.Deny, ((MeshConfig)result.Resources[0].Resource).Spec.DefaultAccess);
        Assert.Equal(EndpointHealth.Draining, ((WorkloadEntry)result.Resources[1].Resource).Spec.Health);
        Assert.Contains("health: draining", ResourceYaml.Serialize(result.Resources[1].Resource), StringComparison.Ordinal);
        Assert.Contains("defaultAccess: deny", ResourceYaml.Serialize(result.Resources[0].Resource), StringComparison.Ordinal);
    }

    [Fact]
    public void Read_YamlSyntaxError_ReportsPositionAndReadsLaterDocuments()
    {
        var text = "apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a\n---\napiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{name: http, port: 80}]}\n";

        var result = ResourceReader.Read(text, File);

        var error = Assert.Single(result.Errors);
        Assert.Equal((File, 1, 4, 1, ""), (error.File, error.Document, error.Line, error.Column, error.Path));
        Assert.StartsWith("YAML syntax error: ", error.Message, StringComparison.Ordinal);
        var resource = Assert.Single(result.Resources);
        Assert.Equal("b", resource.Resource.Metadata.Name);
        Assert.Equal(2, resource.Document);
        Assert.Equal((7, 1), resource.Locate("metadata"));
    }

    [Fact]
    public void Read_BadIndentation_ReportsSyntaxErrorLine()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata:\n  name: a\n   namespace: b\n");

        var error = Assert.Single(errors);
        Assert.Equal((1, 5), (error.Document, error.Line));
        Assert.StartsWith("YAML syntax error: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_DuplicateKey_ReportsSyntaxError()
    {
        var errors = Errors("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nmetadata: {name: b}\n");

        var error = Assert.Single(errors);
        Assert.Equal((1, 4), (error.Document, error.Line));
    }

    [Fact]
    public void Read_ErrorsInSeveralDocuments_CollectsAll()
    {
        var text = "apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: A}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{name: http, port: x}], bogus: 1}\n";

        var errors = Errors(text);

        Assert.Equal(3, errors.Count);
        AssertError(errors, File, 1, 3, 18, "metadata.name", "\"A\" is not a valid name");
        AssertError(errors, File, 2, 8, 35, "spec.ports[0].port", "expected an integer");
        AssertError(errors, File, 2, 8, 40, "spec.bogus", "unknown field \"bogus\"");
        Assert.Equal("Service default/b", errors[1].Subject);
        Assert.Equal("r.yaml:8:35: document 2 (Service default/b): spec.ports[0].port: expected an integer, got \"x\"", errors[1].ToString());
    }

    [Fact]
    public void Read_EmptyDocuments_AreSkipped()
    {
        var text = "---\n# nothing here\n---\n\n---\napiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\n---\n";

        var result = ResourceReader.Read(text, File);

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        var resource = Assert.Single(result.Resources);
        Assert.Equal((7, 7), resource.Locate("kind"));
    }

    [Fact]
    public void Read_EmptyText_ReturnsNothing()
    {
        var result = ResourceReader.Read("", File);

        Assert.True(result.Ok);
        Assert.Empty(result.Resources);
    }

    [Fact]
    public void Read_NotAMap_ReportsExpectedResource()
    {
        var errors = Errors("- a\n- b\n");

        AssertOnlyError(errors, File, 1, 1, 1, "", "expected a resource (a map with apiVersion, kind, metadata and spec); got a list");
    }

    [Fact]
    public void Read_Status_IsAcceptedAndIgnored()
    {
        var result = ResourceReader.Read("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\nstatus: {accepted: true, anything: [1]}\n", File);

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Null(result.Resources[0].Resource.Status);
    }

    [Fact]
    public void Read_NamespaceOmitted_DefaultsToDefault()
    {
        var resources = ReadOk("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\n");

        Assert.Equal("default", resources[0].Resource.Metadata.Namespace);
    }

    [Fact]
    public void Read_ClusterScopedWithNamespace_GetsEmptyNamespace()
    {
        var resources = ReadOk("apiVersion: trellis.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: default}\n");

        Assert.Equal("", resources[0].Resource.Metadata.Namespace);
    }

    [Fact]
    public void Read_JsonInput_BindsAndLocates()
    {
        var json = """
            {
              "apiVersion": "gateway.networking.k8s.io/v1",
              "kind": "HTTPRoute",
              "metadata": {"name": "r", "namespace": "prod", "labels": {"app.kubernetes.io/name": "web"}},
              "spec": {
                "parentRefs": [{"name": "greeter", "port": 8080}],
                "rules": [{"backendRefs": [{"name": "greeter", "port": 8080, "weight": 3}], "timeouts": {"request": "1m30s"}}]
              }
            }
            """;

        var result = ResourceReader.Read(json, "route.json");

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        var parsed = Assert.Single(result.Resources);
        var route = Assert.IsType<HttpRoute>(parsed.Resource);
        Assert.Equal("prod", route.Metadata.Namespace);
        Assert.Equal("web", route.Metadata.Labels!["app.kubernetes.io/name"]);
        Assert.Equal(3, route.Spec.Rules[0].BackendRefs![0].Weight);
        Assert.Equal(TimeSpan.FromSeconds(90), route.Spec.Rules[0].Timeouts!.Request);
        Assert.Equal((6, 48), parsed.Locate("spec.parentRefs[0].port"));
        Assert.Equal((4, 87), parsed.Locate("metadata.labels[\"app.kubernetes.io/name\"]"));
    }

    [Fact]
    public void Read_JsonWithWrongType_ReportsPosition()
    {
        var json = "{\"apiVersion\": \"trellis.dev/v1alpha1\", \"kind\": \"WorkloadEntry\",\n \"metadata\": {\"name\": \"a\"},\n \"spec\": {\"address\": \"10.0.0.1\", \"weight\": true}}";

        var errors = Errors(json);

        AssertOnlyError(errors, File, 1, 3, 44, "spec.weight", "expected an integer, got \"true\"");
    }

    [Fact]
    public void Locate_MissingField_ReturnsNearestAncestor()
    {
        var parsed = ReadOk("apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - name: http\n    port: 80\n")[0];

        Assert.Equal((6, 5), parsed.Locate("spec.ports[0]"));
        Assert.Equal((6, 11), parsed.Locate("spec.ports[0].name"));
        Assert.Equal((6, 5), parsed.Locate("spec.ports[0].targetPort"));
        Assert.Equal((5, 3), parsed.Locate("spec.ports[3].name"));
        Assert.Equal((4, 1), parsed.Locate("spec.selector"));
        Assert.Equal((1, 1), parsed.Locate("nothing.here"));
    }

    [Fact]
    public void Locate_ConstructedWithoutSource_ReturnsZero()
    {
        var parsed = new ParsedResource(new Service(), "x", 0);

        Assert.Equal((0, 0), parsed.Locate("spec.ports"));
    }
}
