using System.Text.RegularExpressions;
using Trellis.Api.Resources;
using Trellis.Api.Serialization;
using Trellis.Api.Validation;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Trellis.Api;

/// <summary>Reads resource files: YAML or JSON, one or many documents separated by "---".</summary>
public static partial class ResourceReader
{
    private static readonly string[] TopLevelFields = ["apiVersion", "kind", "metadata", "spec", "status"];

    /// <summary>Reads every document of <paramref name="text"/>. Never throws on bad input: each problem of each
    /// document becomes an error with file, document, line, column and field path. Empty documents are skipped
    /// (they still count when numbering documents); <c>status</c> is accepted and ignored.</summary>
    public static ResourceReadResult Read(string text, string fileName)
    {
        ArgumentNullException.ThrowIfNull(text);
        fileName ??= "";
        var resources = new List<ParsedResource>();
        var errors = new List<ValidationError>();

        var offset = 0;
        var lineOffset = 0;
        var documentNumber = 0;
        while (offset <= text.Length)
        {
            var chunk = text[offset..];
            var stream = new YamlStream();
            YamlException? syntaxError = null;
            try
            {
                stream.Load(new Parser(new StringReader(chunk)));
            }
            catch (YamlException ex)
            {
                syntaxError = ex;
            }

            foreach (var document in stream.Documents)
            {
                documentNumber++;
                ReadDocument(document.RootNode, fileName, documentNumber, lineOffset, resources, errors);
            }

            if (syntaxError is null)
            {
                break;
            }

            documentNumber++;
            var line = (int)syntaxError.Start.Line;
            errors.Add(new ValidationError(fileName, documentNumber, line + lineOffset, (int)syntaxError.Start.Column, "",
                "YAML syntax error: " + SyntaxMessage(syntaxError)));

            // Resume at the next document separator after the error, if any.
            var resume = NextSeparator(chunk, Math.Max(line, 1));
            if (resume < 0)
            {
                break;
            }

            lineOffset += CountLines(chunk, resume);
            offset += resume;
        }

        return new ResourceReadResult(resources, errors);
    }

    private static void ReadDocument(YamlNode? root, string file, int documentNumber, int lineOffset,
        List<ParsedResource> resources, List<ValidationError> errors)
    {
        if (root is null || YamlBinder.IsNull(root))
        {
            return;
        }

        var binder = new YamlBinder(lineOffset);
        binder.Positions[""] = binder.Position(root);
        string? subject = null;
        var resource = Bind(root, binder, ref subject);

        foreach (var (path, line, column, message) in binder.Errors)
        {
            errors.Add(new ValidationError(file, documentNumber, line, column, path, message) { Subject = subject });
        }

        if (binder.Errors.Count == 0 && resource is not null)
        {
            resources.Add(new ParsedResource(resource, file, documentNumber) { Positions = binder.Positions });
        }
    }

    private static Resource? Bind(YamlNode root, YamlBinder binder, ref string? subject)
    {
        if (root is not YamlMappingNode map)
        {
            binder.Error(root, "", $"expected a resource (a map with apiVersion, kind, metadata and spec); got {YamlBinder.Describe(root)}");
            return null;
        }

        var fields = new Dictionary<string, (YamlNode Key, YamlNode Value)>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in map.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value;
            if (key is null)
            {
                binder.Error(keyNode, "", "field names must be plain strings");
                continue;
            }

            binder.Record(key, keyNode, valueNode);
            if (!TopLevelFields.Contains(key, StringComparer.Ordinal))
            {
                binder.Positions[key] = binder.Position(keyNode);
                binder.Error(keyNode, key, YamlBinder.UnknownFieldMessage(key, TopLevelFields));
                continue;
            }

            fields[key] = (keyNode, valueNode);
        }

        // kind
        if (!fields.TryGetValue("kind", out var kindField) || YamlBinder.IsNull(kindField.Value))
        {
            binder.Error(root, "kind", $"kind is required; known kinds: {ResourceKinds.KnownKindsText}");
            return null;
        }

        if (kindField.Value is not YamlScalarNode { Value: { } kindText })
        {
            binder.Error(kindField.Value, "kind", $"expected a string naming the kind; known kinds: {ResourceKinds.KnownKindsText}");
            return null;
        }

        var info = ResourceKinds.ByKind(kindText);
        if (info is null)
        {
            var near = ResourceKinds.All.FirstOrDefault(k => string.Equals(k.Kind, kindText, StringComparison.OrdinalIgnoreCase))?.Kind
                       ?? Names.Closest(kindText, ResourceKinds.All.Select(k => k.Kind));
            var hint = near is null ? "" : $"did you mean \"{near}\"? ";
            binder.Error(kindField.Value, "kind", $"unknown kind \"{kindText}\"; {hint}known kinds: {ResourceKinds.KnownKindsText}");
            return null;
        }

        subject = info.Kind;

        // apiVersion
        if (!fields.TryGetValue("apiVersion", out var apiField) || YamlBinder.IsNull(apiField.Value))
        {
            binder.Error(root, "apiVersion", $"apiVersion is required; expected {info.ApiVersion} for {info.Kind}");
        }
        else if (apiField.Value is not YamlScalarNode { Value: { } apiVersion })
        {
            binder.Error(apiField.Value, "apiVersion", $"expected a string; {info.Kind} uses apiVersion {info.ApiVersion}");
        }
        else if (apiVersion != info.ApiVersion)
        {
            var known = ResourceKinds.All.Any(k => k.ApiVersion == apiVersion);
            binder.Error(apiField.Value, "apiVersion", known
                ? $"apiVersion \"{apiVersion}\" does not serve kind {info.Kind}; expected {info.ApiVersion}"
                : $"unknown apiVersion \"{apiVersion}\"; expected {info.ApiVersion} for {info.Kind}");
        }

        // metadata
        ObjectMeta metadata;
        if (!fields.TryGetValue("metadata", out var metaField) || YamlBinder.IsNull(metaField.Value))
        {
            binder.Error(metaField.Value ?? root, "metadata.name", "metadata.name is required");
            metadata = new ObjectMeta();
        }
        else
        {
            metadata = binder.BindObject(typeof(ObjectMeta), metaField.Value, "metadata") as ObjectMeta ?? new ObjectMeta();
            var nameMentioned = binder.Positions.ContainsKey("metadata.name");
            if (string.IsNullOrEmpty(metadata.Name))
            {
                if (metaField.Value is YamlMappingNode)
                {
                    binder.Error(nameMentioned ? PositionNode(metaField.Value, "name") : metaField.Key, "metadata.name", "metadata.name is required");
                }
            }
            else if (!Names.IsDnsLabel(metadata.Name))
            {
                binder.Error(PositionNode(metaField.Value, "name"), "metadata.name", $"\"{metadata.Name}\" is not a valid name: {Names.DnsLabelRule}");
            }

            if (info.Namespaced && !string.IsNullOrEmpty(metadata.Namespace) && !Names.IsDnsLabel(metadata.Namespace))
            {
                binder.Error(PositionNode(metaField.Value, "namespace"), "metadata.namespace",
                    $"\"{metadata.Namespace}\" is not a valid namespace: {Names.DnsLabelRule}");
            }
        }

        metadata = metadata with { Namespace = !info.Namespaced ? "" : string.IsNullOrEmpty(metadata.Namespace) ? "default" : metadata.Namespace };
        subject = string.IsNullOrEmpty(metadata.Name) ? info.Kind : ParsedResource.SubjectOf(Create(info, metadata, null));

        // spec
        object? spec = null;
        if (fields.TryGetValue("spec", out var specField) && !YamlBinder.IsNull(specField.Value))
        {
            var specType = info.ClrType.GetProperty("Spec")!.PropertyType;
            spec = binder.BindObject(specType, specField.Value, "spec");
            if (ReferenceEquals(spec, YamlBinder.Failed))
            {
                spec = null;
            }
        }

        return Create(info, metadata, spec);
    }

    private static Resource Create(ResourceKindInfo info, ObjectMeta metadata, object? spec)
    {
        var resource = (Resource)Activator.CreateInstance(info.ClrType)!;
        resource = resource with { Metadata = metadata };
        if (spec is not null)
        {
            info.ClrType.GetProperty("Spec")!.SetValue(resource, spec);
        }

        return resource;
    }

    /// <summary>The value node of a field of a map (for error positions), or the map itself.</summary>
    private static YamlNode PositionNode(YamlNode map, string field) =>
        map is YamlMappingNode m && m.Children.TryGetValue(new YamlScalarNode(field), out var value) ? value : map;

    private static string SyntaxMessage(YamlException ex)
    {
        var message = MarkPrefix().Replace(ex.Message, "");
        return ex.InnerException is YamlException inner && message.Length == 0 ? SyntaxMessage(inner) : message;
    }

    private static int NextSeparator(string text, int afterLine)
    {
        var line = 1;
        for (var i = 0; i < text.Length; i++)
        {
            if (i == 0 || text[i - 1] == '\n')
            {
                if (i > 0 && line >= afterLine && text.AsSpan(i).StartsWith("---") &&
                    (i + 3 == text.Length || char.IsWhiteSpace(text[i + 3])))
                {
                    return i;
                }
            }

            if (text[i] == '\n')
            {
                line++;
            }
        }

        return -1;
    }

    private static int CountLines(string text, int length)
    {
        var count = 0;
        for (var i = 0; i < length; i++)
        {
            if (text[i] == '\n')
            {
                count++;
            }
        }

        return count;
    }

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex MarkPrefix();
}
