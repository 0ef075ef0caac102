using Trellis.Api.Resources;
using Trellis.Api.Serialization;

namespace Trellis.Api;

/// <summary>A resource read from a file, with where it came from.</summary>
/// <param name="Resource">The bound resource.</param>
/// <param name="File">File name as given to the reader.</param>
/// <param name="Document">1-based document index within the file; 0 when unknown.</param>
public sealed record ParsedResource(Resource Resource, string File, int Document)
{
    private static readonly IReadOnlyDictionary<string, (int Line, int Column)> NoPositions =
        new Dictionary<string, (int Line, int Column)>();

    /// <summary>Field path to source position, recorded by the reader.</summary>
    internal IReadOnlyDictionary<string, (int Line, int Column)> Positions { get; init; } = NoPositions;

    /// <summary>Position of a field path in the source, or of its nearest recorded ancestor; (0, 0) when unknown.
    /// Scalars point at the value; maps and lists at their key; list items at the item.</summary>
    public (int Line, int Column) Locate(string path)
    {
        var current = path ?? "";
        while (true)
        {
            if (Positions.TryGetValue(current, out var position))
            {
                return position;
            }

            if (current.Length == 0)
            {
                return (0, 0);
            }

            current = FieldPath.Parent(current);
        }
    }

    /// <summary>"KIND NAMESPACE/NAME", or "KIND NAME" for cluster-scoped kinds.</summary>
    internal string Subject => SubjectOf(Resource);

    internal static string SubjectOf(Resource resource) =>
        string.IsNullOrEmpty(resource.Metadata.Namespace)
            ? $"{resource.Kind} {resource.Metadata.Name}"
            : $"{resource.Kind} {resource.Metadata.Namespace}/{resource.Metadata.Name}";

    public bool Equals(ParsedResource? other) =>
        other is not null && Equals(Resource, other.Resource) && File == other.File && Document == other.Document;

    public override int GetHashCode() => HashCode.Combine(Resource, File, Document);
}

/// <summary>What <see cref="ResourceReader.Read"/> found: the well-formed resources and every error.
/// A document with errors contributes errors only.</summary>
public sealed record ResourceReadResult(IReadOnlyList<ParsedResource> Resources, IReadOnlyList<ValidationError> Errors)
{
    public bool Ok => Errors.Count == 0;
}
