using System.Collections.Concurrent;
using Trellis.Api.Resources;

namespace Trellis.Api.Serialization;

/// <summary>How enum values are written: Gateway API style ("PathPrefix") unless a kind's YAML uses lower case
/// ("grpc", "healthy", "allow") or Istio's upper case ("SIMPLE"). Reading ignores case.</summary>
internal static class EnumNames
{
    private static readonly HashSet<Type> LowerCase = [typeof(ServiceProtocol), typeof(EndpointHealth), typeof(AccessDefault)];

    /// <summary>Kinds whose YAML follows Istio's upper case ("SIMPLE").</summary>
    private static readonly HashSet<Type> UpperCase = [typeof(UpstreamTlsMode)];

    private static readonly ConcurrentDictionary<Type, Table> Tables = new();

    public static string Write(Type enumType, object value) => Get(enumType).ToName.TryGetValue(value, out var name)
        ? name
        : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture).ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static bool TryRead(Type enumType, string text, out object? value) => Get(enumType).FromName.TryGetValue(text.Trim(), out value);

    /// <summary>The canonical names, comma separated, for error messages.</summary>
    public static string Expected(Type enumType) => string.Join(", ", Get(enumType).Names);

    private static Table Get(Type enumType) => Tables.GetOrAdd(enumType, static t =>
    {
        var names = new List<string>();
        var toName = new Dictionary<object, string>();
        var fromName = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        foreach (var value in Enum.GetValues(t))
        {
            var name = Enum.GetName(t, value)!;
            var written = LowerCase.Contains(t) ? name.ToLowerInvariant() : UpperCase.Contains(t) ? name.ToUpperInvariant() : name;
            names.Add(written);
            toName[value] = written;
            fromName[written] = value;
            fromName.TryAdd(name, value);
        }

        return new Table(names, toName, fromName);
    });

    private sealed record Table(IReadOnlyList<string> Names, Dictionary<object, string> ToName, Dictionary<string, object?> FromName);
}
