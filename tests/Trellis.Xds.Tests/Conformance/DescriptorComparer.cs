using Google.Protobuf.Reflection;

namespace Trellis.Xds.Tests.Conformance;

/// <summary>
/// Checks that every file, message, field, enum and service we declare exists upstream with the same wire
/// identity: file path, package, full names, field numbers, types, labels and oneof membership.
/// Upstream may have more of everything; we may never differ.
/// </summary>
internal static class DescriptorComparer
{
    /// <summary>Returns one line per mismatch; empty when <paramref name="ours"/> conforms.</summary>
    /// <param name="ours">Our descriptors; only files under "envoy/" are checked.</param>
    /// <param name="upstream">The reference descriptors.</param>
    public static IReadOnlyList<string> Compare(FileDescriptorSet ours, FileDescriptorSet upstream)
    {
        var problems = new List<string>();
        var upFiles = upstream.File.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var upMessages = new Dictionary<string, (DescriptorProto Msg, string File)>(StringComparer.Ordinal);
        var upEnums = new Dictionary<string, (EnumDescriptorProto Enum, string File)>(StringComparer.Ordinal);
        foreach (var f in upstream.File)
        {
            Index(f, upMessages, upEnums);
        }

        foreach (var file in ours.File.Where(f => f.Name.StartsWith("envoy/", StringComparison.Ordinal)))
        {
            if (!upFiles.TryGetValue(file.Name, out var upFile))
            {
                problems.Add($"{file.Name}: no upstream file with this path");
                continue;
            }

            if (file.Package != upFile.Package)
            {
                problems.Add($"{file.Name}: package ours={file.Package} upstream={upFile.Package}");
            }

            if (file.Syntax != "proto3")
            {
                problems.Add($"{file.Name}: syntax ours={Show(file.Syntax)} expected=proto3");
            }

            foreach (var m in file.MessageType)
            {
                CompareMessage(file.Name, file.Package + "." + m.Name, m, upMessages, upEnums, problems);
            }

            foreach (var e in file.EnumType)
            {
                CompareEnum(file.Name, file.Package + "." + e.Name, e, upEnums, problems);
            }

            foreach (var s in file.Service)
            {
                CompareService(file, s, upFile, problems);
            }
        }

        return problems;
    }

    private static void Index(
        FileDescriptorProto file,
        Dictionary<string, (DescriptorProto, string)> messages,
        Dictionary<string, (EnumDescriptorProto, string)> enums)
    {
        void Walk(DescriptorProto m, string fullName)
        {
            messages[fullName] = (m, file.Name);
            foreach (var n in m.NestedType)
            {
                Walk(n, fullName + "." + n.Name);
            }

            foreach (var e in m.EnumType)
            {
                enums[fullName + "." + e.Name] = (e, file.Name);
            }
        }

        foreach (var m in file.MessageType)
        {
            Walk(m, file.Package + "." + m.Name);
        }

        foreach (var e in file.EnumType)
        {
            enums[file.Package + "." + e.Name] = (e, file.Name);
        }
    }

    private static void CompareMessage(
        string file,
        string fullName,
        DescriptorProto ours,
        Dictionary<string, (DescriptorProto Msg, string File)> upMessages,
        Dictionary<string, (EnumDescriptorProto Enum, string File)> upEnums,
        List<string> problems)
    {
        if (!upMessages.TryGetValue(fullName, out var up))
        {
            problems.Add($"{file}: message {fullName} does not exist upstream");
            return;
        }

        if (up.File != file)
        {
            problems.Add($"{file}: message {fullName} is declared upstream in {up.File}");
        }

        var upFields = up.Msg.Field.ToDictionary(f => f.Name, StringComparer.Ordinal);
        foreach (var field in ours.Field)
        {
            var where = $"{file}: {fullName}.{field.Name}";
            if (!upFields.TryGetValue(field.Name, out var upField))
            {
                var sameNumber = up.Msg.Field.FirstOrDefault(f => f.Number == field.Number);
                problems.Add(sameNumber == null
                    ? $"{where}: no such field upstream"
                    : $"{where}: no such field upstream (number {field.Number} is '{sameNumber.Name}' there)");
                continue;
            }

            Check(where, "number", field.Number, upField.Number, problems);
            Check(where, "type", field.Type, upField.Type, problems);
            Check(where, "type_name", field.TypeName, upField.TypeName, problems);
            Check(where, "label", field.Label, upField.Label, problems);
            Check(where, "oneof", OneofName(ours, field), OneofName(up.Msg, upField), problems);
            Check(where, "proto3_optional", field.Proto3Optional, upField.Proto3Optional, problems);
        }

        foreach (var nested in ours.NestedType)
        {
            CompareMessage(file, fullName + "." + nested.Name, nested, upMessages, upEnums, problems);
        }

        foreach (var e in ours.EnumType)
        {
            CompareEnum(file, fullName + "." + e.Name, e, upEnums, problems);
        }
    }

    private static void CompareEnum(
        string file,
        string fullName,
        EnumDescriptorProto ours,
        Dictionary<string, (EnumDescriptorProto Enum, string File)> upEnums,
        List<string> problems)
    {
        if (!upEnums.TryGetValue(fullName, out var up))
        {
            problems.Add($"{file}: enum {fullName} does not exist upstream");
            return;
        }

        if (up.File != file)
        {
            problems.Add($"{file}: enum {fullName} is declared upstream in {up.File}");
        }

        foreach (var value in ours.Value)
        {
            var upValue = up.Enum.Value.FirstOrDefault(v => v.Name == value.Name);
            if (upValue == null)
            {
                problems.Add($"{file}: {fullName}.{value.Name}: no such enum value upstream");
            }
            else
            {
                Check($"{file}: {fullName}.{value.Name}", "number", value.Number, upValue.Number, problems);
            }
        }
    }

    private static void CompareService(
        FileDescriptorProto file, ServiceDescriptorProto ours, FileDescriptorProto upFile, List<string> problems)
    {
        var fullName = file.Package + "." + ours.Name;
        var up = upFile.Service.FirstOrDefault(s => s.Name == ours.Name);
        if (up == null)
        {
            problems.Add($"{file.Name}: service {fullName} does not exist upstream in this file");
            return;
        }

        foreach (var method in ours.Method)
        {
            var where = $"{file.Name}: {fullName}.{method.Name}";
            var upMethod = up.Method.FirstOrDefault(m => m.Name == method.Name);
            if (upMethod == null)
            {
                problems.Add($"{where}: no such rpc upstream");
                continue;
            }

            Check(where, "input", method.InputType, upMethod.InputType, problems);
            Check(where, "output", method.OutputType, upMethod.OutputType, problems);
            Check(where, "client_streaming", method.ClientStreaming, upMethod.ClientStreaming, problems);
            Check(where, "server_streaming", method.ServerStreaming, upMethod.ServerStreaming, problems);
        }
    }

    private static string OneofName(DescriptorProto message, FieldDescriptorProto field) =>
        field.HasOneofIndex && field.OneofIndex < message.OneofDecl.Count
            ? message.OneofDecl[field.OneofIndex].Name
            : string.Empty;

    private static void Check<T>(string where, string what, T ours, T upstream, List<string> problems)
    {
        if (!EqualityComparer<T>.Default.Equals(ours, upstream))
        {
            problems.Add($"{where}: {what} ours={Show(ours)} upstream={Show(upstream)}");
        }
    }

    private static string Show<T>(T value) => value is string s && s.Length == 0 ? "(none)" : value?.ToString() ?? "(null)";
}
