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

    /// <summary>1-based line and column of the first occurrence of <paramref name="needle"/> in <paramref name="text"/>.</summary>
    public static (int Line, int Column) At(string text, string needle, int occurrence = 1)
    {
        var index = -1;
        for (var i = 0; i < occurrence; i++)
        {
            index = text.IndexOf(needle, index + 1, StringComparison.Ordinal);
            Assert.True(index >= 0, $"\"{needle}\" not in the test text");
        }

        var line = text[..index].Count(c => c == '\n') + 1;
        var column = index - (text.LastIndexOf('\n', Math.Max(index - 1, 0)) is var nl && nl >= 0 && nl < index ? nl + 1 : 0) + 1;
        return (line, column);
    }

    /// <summary>Exactly one error at <paramref name="path"/>, located at the first occurrence of <paramref name="needle"/>.</summary>
    public static ValidationError AssertErrorAt(IReadOnlyList<ValidationError> errors, string yaml, string needle, string path, string message, int document = 1, int occurrence = 1)
    {
        var (line, column) = At(yaml, needle, occurrence);
        return AssertError(errors, "v.yaml", document, line, column, path, message);
    }

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
