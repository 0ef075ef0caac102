using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Trellis.Api.Resources;

namespace Trellis.Api.Serialization;

/// <summary>Enums as their canonical names (see <see cref="EnumNames"/>), read ignoring case.</summary>
internal sealed class EnumNameConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) => typeToConvert.IsEnum;

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(EnumNameConverter<>).MakeGenericType(typeToConvert))!;

    private sealed class EnumNameConverter<T> : JsonConverter<T> where T : struct, Enum
    {
        public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.String && EnumNames.TryRead(typeof(T), reader.GetString()!, out var value))
            {
                return (T)value!;
            }

            var got = reader.TokenType == JsonTokenType.String ? "\"" + reader.GetString() + "\"" : reader.TokenType.ToString();
            throw new JsonException($"expected one of: {EnumNames.Expected(typeof(T))}; got {got}");
        }

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) =>
            writer.WriteStringValue(EnumNames.Write(typeof(T), value));
    }
}

/// <summary>TimeSpan as a Go-style duration string.</summary>
internal sealed class DurationConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String && Durations.TryParse(reader.GetString()!, out var value))
        {
            return value;
        }

        var got = reader.TokenType == JsonTokenType.String ? "\"" + reader.GetString() + "\"" : reader.TokenType.ToString();
        throw new JsonException($"expected a duration such as 100ms, 5s, 1m30s or 2h; got {got}");
    }

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Durations.Format(value));
}

/// <summary>Resources as apiVersion, kind, metadata, spec, status; reading picks the type from kind.</summary>
internal sealed class ResourceConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) => typeof(Resource).IsAssignableFrom(typeToConvert);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(ResourceConverter<>).MakeGenericType(typeToConvert))!;

    private sealed class ResourceConverter<T> : JsonConverter<T> where T : Resource
    {
        public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new JsonException($"expected a resource object with apiVersion, kind, metadata and spec; got {root.ValueKind}");
            }

            if (!root.TryGetProperty("kind", out var kindElement) || kindElement.ValueKind != JsonValueKind.String)
            {
                throw new JsonException($"kind is required; known kinds: {ResourceKinds.KnownKindsText}");
            }

            var kind = kindElement.GetString()!;
            var info = ResourceKinds.ByKind(kind)
                       ?? throw new JsonException($"unknown kind \"{kind}\"; known kinds: {ResourceKinds.KnownKindsText}");
            if (!typeToConvert.IsAssignableFrom(info.ClrType))
            {
                throw new JsonException($"kind {kind} cannot be read as {typeToConvert.Name}");
            }

            if (root.TryGetProperty("apiVersion", out var apiElement) && apiElement.GetString() != info.ApiVersion)
            {
                throw new JsonException($"apiVersion \"{apiElement}\" does not serve kind {kind}; expected {info.ApiVersion}");
            }

            var metadata = new ObjectMeta();
            object? spec = null;
            ResourceStatus? status = null;
            foreach (var property in root.EnumerateObject())
            {
                switch (property.Name)
                {
                    case "apiVersion" or "kind":
                        break;
                    case "metadata":
                        metadata = Element<ObjectMeta>(property.Value, typeof(ObjectMeta), "metadata", options) ?? new ObjectMeta();
                        break;
                    case "spec":
                        spec = Element<object>(property.Value, info.ClrType.GetProperty("Spec")!.PropertyType, "spec", options);
                        break;
                    case "status":
                        status = Element<ResourceStatus>(property.Value, typeof(ResourceStatus), "status", options);
                        break;
                    default:
                        throw new JsonException(YamlBinder.UnknownFieldMessage(property.Name, ["apiVersion", "kind", "metadata", "spec", "status"]));
                }
            }

            metadata = metadata with
            {
                Namespace = !info.Namespaced ? "" : string.IsNullOrEmpty(metadata.Namespace) ? "default" : metadata.Namespace,
            };
            var resource = (Resource)Activator.CreateInstance(info.ClrType)!;
            resource = resource with { Metadata = metadata, Status = status };
            if (spec is not null)
            {
                info.ClrType.GetProperty("Spec")!.SetValue(resource, spec);
            }

            return (T)resource;
        }

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            writer.WriteString("apiVersion", value.ApiVersion);
            writer.WriteString("kind", value.Kind);
            writer.WritePropertyName("metadata");
            JsonSerializer.Serialize(writer, value.Metadata, options);
            writer.WritePropertyName("spec");
            JsonSerializer.Serialize(writer, value.SpecObject, value.SpecObject.GetType(), options);
            if (value.Status is not null)
            {
                writer.WritePropertyName("status");
                JsonSerializer.Serialize(writer, value.Status, options);
            }

            writer.WriteEndObject();
        }

        private static TValue? Element<TValue>(JsonElement element, Type type, string field, JsonSerializerOptions options)
        {
            if (element.ValueKind == JsonValueKind.Null)
            {
                return default;
            }

            try
            {
                return (TValue?)element.Deserialize(type, options);
            }
            catch (JsonException ex)
            {
                var path = ex.Path is { Length: > 1 } p ? field + p[1..] : field;
                throw new JsonException($"{path}: {StripPath(ex.Message)}", ex);
            }
        }

        private static string StripPath(string message)
        {
            var at = message.IndexOf(" Path: $", StringComparison.Ordinal);
            return at > 0 ? message[..at] : message;
        }
    }
}

/// <summary>Type-info tweaks: the empty namespace of cluster-scoped resources is not written.</summary>
internal static class JsonModifiers
{
    public static void OmitEmptyNamespace(JsonTypeInfo typeInfo)
    {
        if (typeInfo.Type != typeof(ObjectMeta))
        {
            return;
        }

        foreach (var property in typeInfo.Properties)
        {
            if (property.Name == "namespace")
            {
                property.ShouldSerialize = static (_, value) => !string.IsNullOrEmpty(value as string);
            }
        }
    }
}
