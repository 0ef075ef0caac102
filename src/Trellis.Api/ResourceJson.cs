using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Trellis.Api.Resources;
using Trellis.Api.Serialization;

namespace Trellis.Api;

/// <summary>Canonical JSON for resources (the store and the REST API use it).</summary>
public static class ResourceJson
{
    /// <summary>camelCase fields, enums by name, durations as "5s", nulls left out, unknown fields refused;
    /// resources always start with apiVersion and kind. Read-only.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    /// <summary>Compact canonical JSON: apiVersion, kind, metadata, spec, status.</summary>
    public static string Serialize(Resource resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        return JsonSerializer.Serialize<Resource>(resource, Options);
    }

    /// <summary>Reads one resource; "kind" picks the type. Throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static Resource Deserialize(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            return JsonSerializer.Deserialize<Resource>(json, Options)
                   ?? throw new FormatException("expected a resource object, got null");
        }
        catch (JsonException ex)
        {
            var where = ex.LineNumber is { } line ? $" (line {line + 1}, byte {ex.BytePositionInLine + 1})" : "";
            throw new FormatException($"invalid resource JSON{where}: {ex.Message}", ex);
        }
    }

    /// <summary>A deep copy, through the canonical JSON form.</summary>
    public static T Clone<T>(T resource) where T : Resource
    {
        ArgumentNullException.ThrowIfNull(resource);
        return (T)Deserialize(Serialize(resource));
    }

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            DictionaryKeyPolicy = null,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { JsonModifiers.OmitEmptyNamespace } },
        };
        options.Converters.Add(new ResourceConverterFactory());
        options.Converters.Add(new EnumNameConverterFactory());
        options.Converters.Add(new DurationConverter());
        options.MakeReadOnly();
        return options;
    }
}
