using Trellis.Api.Resources;
using Trellis.Api.Validation;

namespace Trellis.Api;

/// <summary>Semantic validation of an apply batch: field ranges, references, and conflicts with each other and with
/// what is stored. Every error is collected; nothing throws.</summary>
public static class ResourceValidator
{
    /// <summary>Validates <paramref name="batch"/> against <paramref name="existing"/>. A stored resource with the same
    /// kind, namespace and name as a batch item is replaced by it (the batch wins).</summary>
    public static IReadOnlyList<ValidationError> Validate(IReadOnlyList<ParsedResource> batch, IReadOnlyCollection<Resource> existing)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return new BatchValidator(batch, existing ?? []).Run();
    }
}
