using Trellis.Api.Resources;
using Xunit;

namespace Trellis.Api.Tests;

internal static class TestSupport
{
    /// <summary>Services every validator test can refer to: greeter (grpc 50051, http 8080), greeter-v1 and greeter-v2 (grpc 50051).</summary>
    public const string BaseServices = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter}
        spec:
          ports:
          - {name: grpc, port: 50051, protocol: grpc}
          - {name: http, port: 8080, protocol: http}
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter-v1}
        spec:
          ports: [{name: grpc, port: 50051, protocol: grpc}]
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter-v2}
        spec:
          ports: [{name: grpc, port: 50051, protocol: grpc}]
        """;

    public static IReadOnlyList<Resource> Base() => ReadOk(BaseServices, "base.yaml").Select(p => p.Resource).ToList();

    public static IReadOnlyList<ParsedResource> ReadOk(string yaml, string file = "v.yaml")
    {
        var result = ResourceReader.Read(yaml, file);
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        return result.Resources;
    }

    /// <summary>Reads <paramref name="yaml"/> (which must read cleanly) and validates it against the base services plus <paramref name="extra"/>.</summary>
    public static IReadOnlyList<ValidationError> Validate(string yaml, params Resource[] extra) =>
        ResourceValidator.Validate(ReadOk(yaml), Base().Concat(extra).ToList());

    /// <summary>Exactly one error has <paramref name="path"/>; it is at the given place and its message contains <paramref name="message"/>.</summary>
    public static ValidationError AssertError(IReadOnlyList<ValidationError> errors, string file, int document, int line, int column, string path, string message)
    {
        var matching = errors.Where(e => e.Path == path).ToList();
        Assert.True(matching.Count == 1, $"expected one error at {path}, got:\n{string.Join("\n", errors)}");
        var error = matching[0];
        Assert.Equal((file, document, line, column, path), (error.File, error.Document, error.Line, error.Column, error.Path));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        return error;
    }

    /// <summary>The only error there is; as <see cref="AssertError"/>.</summary>
    public static ValidationError AssertOnlyError(IReadOnlyList<ValidationError> errors, string file, int document, int line, int column, string path, string message)
    {
        Assert.True(errors.Count == 1, $"expected exactly one error, got:\n{string.Join("\n", errors)}");
        return AssertError(errors, file, document, line, column, path, message);
    }
}
