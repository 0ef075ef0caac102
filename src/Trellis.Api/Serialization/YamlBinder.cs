using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Trellis.Api.Validation;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Trellis.Api.Serialization;

/// <summary>Binds YAML nodes to the resource records by reflection, recording every field's position and
/// collecting every type error instead of stopping at the first.</summary>
internal sealed class YamlBinder(int lineOffset)
{
    /// <summary>Returned when a value could not be bound (an error was recorded).</summary>
    public static readonly object Failed = new();

    private static readonly ConcurrentDictionary<Type, IReadOnlyDictionary<string, PropertyInfo>> PropertyCache = new();

    public List<(string Path, int Line, int Column, string Message)> Errors { get; } = [];

    public Dictionary<string, (int Line, int Column)> Positions { get; } = [];

    public (int Line, int Column) Position(YamlNode node) => Position(node.Start);

    public (int Line, int Column) Position(Mark mark) => ((int)mark.Line + lineOffset, (int)mark.Column);

    public void Error(YamlNode node, string path, string message) => Error(node.Start, path, message);

    public void Error(Mark mark, string path, string message)
    {
        var (line, column) = Position(mark);
        Errors.Add((path, line, column, message));
    }

    /// <summary>Records where a mapping entry is: the value for scalars, the key for maps and lists.</summary>
    public void Record(string path, YamlNode key, YamlNode value) =>
        Positions[path] = Position(value is YamlScalarNode ? value : key);

    /// <summary>Fields of a record as written: camelCase names of its settable properties.</summary>
    public static IReadOnlyDictionary<string, PropertyInfo> Properties(Type type) => PropertyCache.GetOrAdd(type, static t =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true } && p.GetIndexParameters().Length == 0)
            .ToDictionary(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name), StringComparer.Ordinal));

    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any } s
        && (string.IsNullOrEmpty(s.Value) || s.Value is "~" or "null" or "Null" or "NULL");

    public static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a map",
        YamlSequenceNode => "a list",
        YamlScalarNode s => "\"" + s.Value + "\"",
        _ => "something else",
    };

    public static string UnknownFieldMessage(string field, IEnumerable<string> allowed)
    {
        var list = allowed.ToList();
        var closest = Names.Closest(field, list);
        return closest is not null
            ? $"unknown field \"{field}\"; did you mean \"{closest}\"?"
            : $"unknown field \"{field}\"; fields allowed here: {string.Join(", ", list)}";
    }

    /// <summary>Binds a node to a value of <paramref name="type"/>; <see cref="Failed"/> after recording an error.</summary>
    public object? Bind(Type type, YamlNode node, string path)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        if (underlying == typeof(string))
        {
            return node is YamlScalarNode s ? s.Value ?? "" : Fail(node, path, $"expected a string, got {Describe(node)}");
        }

        if (underlying == typeof(int) || underlying == typeof(long))
        {
            if (node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any } s
                && long.TryParse(s.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
            {
                if (underlying == typeof(long))
                {
                    return n;
                }

                if (n is >= int.MinValue and <= int.MaxValue)
                {
                    return (int)n;
                }

                return Fail(node, path, $"expected an integer, got {s.Value}, which is out of range");
            }

            return Fail(node, path, $"expected an integer, got {Describe(node)}");
        }

        if (underlying == typeof(bool))
        {
            if (node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any } s && bool.TryParse(s.Value, out var b))
            {
                return b;
            }

            return Fail(node, path, $"expected true or false, got {Describe(node)}");
        }

        if (underlying.IsEnum)
        {
            if (node is YamlScalarNode s && s.Value is not null && EnumNames.TryRead(underlying, s.Value, out var e))
            {
                return e;
            }

            return Fail(node, path, $"expected one of: {EnumNames.Expected(underlying)}; got {Describe(node)}");
        }

        if (underlying == typeof(TimeSpan))
        {
            if (node is YamlScalarNode s && s.Value is not null && Durations.TryParse(s.Value, out var d))
            {
                return d;
            }

            return Fail(node, path, $"expected a duration such as 100ms, 5s, 1m30s or 2h; got {Describe(node)}");
        }

        if (underlying == typeof(DateTimeOffset))
        {
            if (node is YamlScalarNode s && DateTimeOffset.TryParse(s.Value, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t))
            {
                return t;
            }

            return Fail(node, path, $"expected a timestamp such as 2025-01-02T03:04:05Z; got {Describe(node)}");
        }

        if (DictionaryValueType(underlying) is { } valueType)
        {
            return BindDictionary(valueType, node, path);
        }

        if (ListItemType(underlying) is { } itemType)
        {
            return BindList(itemType, node, path);
        }

        if (underlying.IsClass)
        {
            return BindObject(underlying, node, path);
        }

        return Fail(node, path, $"cannot read a value of type {underlying.Name}");
    }

    /// <summary>Binds a map to a record, field by field.</summary>
    public object? BindObject(Type type, YamlNode node, string path)
    {
        var properties = Properties(type);
        if (node is not YamlMappingNode map)
        {
            return Fail(node, path, $"expected a map with fields {string.Join(", ", properties.Keys)}; got {Describe(node)}");
        }

        var instance = Activator.CreateInstance(type)!;
        foreach (var (keyNode, valueNode) in map.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } key })
            {
                Error(keyNode, path, "field names must be plain strings");
                continue;
            }

            var childPath = FieldPath.Field(path, key);
            if (!properties.TryGetValue(key, out var property))
            {
                Positions[childPath] = Position(keyNode);
                Error(keyNode, childPath, UnknownFieldMessage(key, properties.Keys));
                continue;
            }

            Record(childPath, keyNode, valueNode);
            if (IsNull(valueNode))
            {
                continue;
            }

            var value = Bind(property.PropertyType, valueNode, childPath);
            if (!ReferenceEquals(value, Failed))
            {
                property.SetValue(instance, value);
            }
        }

        return instance;
    }

    private object? BindList(Type itemType, YamlNode node, string path)
    {
        if (node is not YamlSequenceNode sequence)
        {
            return Fail(node, path, $"expected a list, got {Describe(node)}");
        }

        var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(itemType))!;
        var index = 0;
        foreach (var item in sequence.Children)
        {
            var itemPath = FieldPath.Index(path, index++);
            Positions[itemPath] = Position(item);
            if (IsNull(item))
            {
                Error(item, itemPath, "list items cannot be empty");
                continue;
            }

            var value = Bind(itemType, item, itemPath);
            if (!ReferenceEquals(value, Failed))
            {
                list.Add(value);
            }
        }

        return list;
    }

    private object? BindDictionary(Type valueType, YamlNode node, string path)
    {
        if (node is not YamlMappingNode map)
        {
            return Fail(node, path, $"expected a map, got {Describe(node)}");
        }

        var dictionary = (IDictionary)Activator.CreateInstance(typeof(Dictionary<,>).MakeGenericType(typeof(string), valueType))!;
        foreach (var (keyNode, valueNode) in map.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } key })
            {
                Error(keyNode, path, "map keys must be plain strings");
                continue;
            }

            var childPath = FieldPath.Key(path, key);
            Record(childPath, keyNode, valueNode);
            var value = IsNull(valueNode) && valueType == typeof(string) ? "" : Bind(valueType, valueNode, childPath);
            if (!ReferenceEquals(value, Failed))
            {
                dictionary[key] = value;
            }
        }

        return dictionary;
    }

    private object Fail(YamlNode node, string path, string message)
    {
        Error(node, path, message);
        return Failed;
    }

    private static Type? ListItemType(Type type)
    {
        if (type.IsArray)
        {
            return null;
        }

        if (type.IsGenericType)
        {
            var definition = type.GetGenericTypeDefinition();
            if (definition == typeof(IReadOnlyList<>) || definition == typeof(IList<>) || definition == typeof(List<>)
                || definition == typeof(IEnumerable<>) || definition == typeof(ICollection<>) || definition == typeof(IReadOnlyCollection<>))
            {
                return type.GetGenericArguments()[0];
            }
        }

        return null;
    }

    private static Type? DictionaryValueType(Type type)
    {
        if (type.IsGenericType)
        {
            var definition = type.GetGenericTypeDefinition();
            if ((definition == typeof(IReadOnlyDictionary<,>) || definition == typeof(IDictionary<,>) || definition == typeof(Dictionary<,>))
                && type.GetGenericArguments()[0] == typeof(string))
            {
                return type.GetGenericArguments()[1];
            }
        }

        return null;
    }
}
