using System.CommandLine;
using System.Text.Json.Nodes;

namespace Trellis.Cli.Commands;

/// <summary>`trellis apply -f FILE|DIR|-`: validates every file as one batch and applies all of it or nothing.</summary>
internal static class ApplyCommand
{
    public static Command Create()
    {
        var files = FilesOption("Files, folders (every .yaml, .yml and .json inside) or - for standard input");
        var dryRun = new Option<bool>("--dry-run") { Description = "Validate and show what would change, change nothing" };
        var cmd = new Command("apply", "Create or update resources from YAML or JSON files");
        cmd.Options.Add(files);
        cmd.Options.Add(dryRun);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            var sources = ReadSources(parse.GetValue(files)!);
            using var api = new ApiClient(CliOptions.ResolveServer(parse));
            var (status, body) = await api.SendAsync(HttpMethod.Post, "api/v1/apply", new { files = sources, dryRun = parse.GetValue(dryRun) }, ct).ConfigureAwait(false);
            return Report(body, (int)status, "apply");
        }));
        return cmd;
    }

    public static Option<string[]> FilesOption(string description) =>
        new("--filename", "-f") { Description = description, Required = true, AllowMultipleArgumentsPerToken = true };

    /// <summary>Reads the named files, folders and standard input into (name, content) pairs.</summary>
    public static List<object> ReadSources(IEnumerable<string> paths)
    {
        var result = new List<object>();
        foreach (var path in paths)
        {
            if (path == "-")
            {
                result.Add(new { name = "<stdin>", content = Console.In.ReadToEnd() });
            }
            else if (Directory.Exists(path))
            {
                var found = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal).ToList();
                if (found.Count == 0)
                {
                    throw new CliException($"{path}: the folder holds no .yaml, .yml or .json files");
                }
                result.AddRange(found.Select(f => new { name = f, content = File.ReadAllText(f) }));
            }
            else if (File.Exists(path))
            {
                result.Add(new { name = path, content = File.ReadAllText(path) });
            }
            else
            {
                throw new CliException($"{path}: no such file or folder");
            }
        }
        return result;
    }

    /// <summary>Prints each resource's outcome, or every error; returns the exit code.</summary>
    public static int Report(JsonNode? body, int status, string verb)
    {
        if (body is null)
        {
            throw new CliException($"the control plane answered {status} with no body to {verb}");
        }
        if (body["error"] is { } error)
        {
            throw new CliException(error.GetValue<string>());
        }
        if (body["ok"]?.GetValue<bool>() != true)
        {
            var errors = body["errors"]!.AsArray();
            foreach (var e in errors)
            {
                Console.Error.WriteLine($"error: {e!["text"]!.GetValue<string>()}");
            }
            Console.Error.WriteLine($"{errors.Count} error{(errors.Count == 1 ? "" : "s")}; nothing was {(verb == "apply" ? "applied" : "deleted")}. Fix {(errors.Count == 1 ? "it" : "them")} and run 'trellis {verb}' again.");
            return ExitCodes.UserError;
        }
        foreach (var r in body["resources"]!.AsArray())
        {
            var ns = r!["namespace"]!.GetValue<string>();
            var kind = r["kind"]!.GetValue<string>().ToLowerInvariant();
            Console.WriteLine($"{kind}/{(ns.Length > 0 ? ns + "/" : "")}{r["name"]!.GetValue<string>()} {r["outcome"]!.GetValue<string>()}");
        }
        return ExitCodes.Ok;
    }
}
