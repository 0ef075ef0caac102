using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Trellis.Api.Resources;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Trellis.Api;

/// <summary>Writes resources as YAML, in the same canonical shape as <see cref="ResourceJson"/>.</summary>
public static partial class ResourceYaml
{
    public static string Serialize(Resource resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        var element = JsonSerializer.SerializeToElement<Resource>(resource, ResourceJson.Options);
        using var writer = new StringWriter();
        var emitter = new Emitter(writer, new EmitterSettings().WithBestWidth(int.MaxValue));
        emitter.Emit(new StreamStart());
        emitter.Emit(new DocumentStart());
        Emit(emitter, element);
        emitter.Emit(new DocumentEnd(true));
        emitter.Emit(new StreamEnd());
        return writer.ToString();
    }

    /// <summary>Documents separated by "---" lines.</summary>
    public static string Serialize(IEnumerable<Resource> resources)
    {
        ArgumentNullException.ThrowIfNull(resources);
        var sb = new StringBuilder();
        foreach (var resource in resources)
        {
            if (sb.Length > 0)
            {
                sb.Append("---\n");
            }

            sb.Append(Serialize(resource));
        }

        return sb.ToString();
    }

    private static void Emit(IEmitter emitter, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var empty = !element.EnumerateObject().Any();
                emitter.Emit(new MappingStart(AnchorName.Empty, TagName.Empty, true, empty ? MappingStyle.Flow : MappingStyle.Block));
                foreach (var property in element.EnumerateObject())
                {
                    EmitString(emitter, property.Name);
                    Emit(emitter, property.Value);
                }

                emitter.Emit(new MappingEnd());
                break;
            case JsonValueKind.Array:
                var none = element.GetArrayLength() == 0;
                emitter.Emit(new SequenceStart(AnchorName.Empty, TagName.Empty, true, none ? SequenceStyle.Flow : SequenceStyle.Block));
                foreach (var item in element.EnumerateArray())
                {
                    Emit(emitter, item);
                }

                emitter.Emit(new SequenceEnd());
                break;
            case JsonValueKind.String:
                EmitString(emitter, element.GetString()!);
                break;
            case JsonValueKind.Number:
                emitter.Emit(new Scalar(AnchorName.Empty, TagName.Empty, element.GetRawText(), ScalarStyle.Plain, true, false));
                break;
            case JsonValueKind.True or JsonValueKind.False:
                emitter.Emit(new Scalar(AnchorName.Empty, TagName.Empty, element.ValueKind == JsonValueKind.True ? "true" : "false", ScalarStyle.Plain, true, false));
                break;
            default:
                emitter.Emit(new Scalar(AnchorName.Empty, TagName.Empty, "null", ScalarStyle.Plain, true, false));
                break;
        }
    }

    /// <summary>Strings that a YAML reader would take for a number, boolean or null are quoted.</summary>
    private static void EmitString(IEmitter emitter, string value)
    {
        var style = NonStringPlain().IsMatch(value) ? ScalarStyle.DoubleQuoted : ScalarStyle.Any;
        emitter.Emit(new Scalar(AnchorName.Empty, TagName.Empty, value, style, true, true));
    }

    [GeneratedRegex(@"^(|~|null|true|false|yes|no|on|off|y|n|[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?|0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.(inf|nan))$", RegexOptions.IgnoreCase)]
    private static partial Regex NonStringPlain();
}
