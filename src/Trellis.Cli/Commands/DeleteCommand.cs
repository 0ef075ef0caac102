using System.CommandLine;

namespace Trellis.Cli.Commands;

/// <summary>`trellis delete KIND NAME` or `trellis delete -f FILE`.</summary>
internal static class DeleteCommand
{
    public static Command Create()
    {
        var kind = new Argument<string?>("KIND") { Description = "Kind (service, httproutes, ...)", Arity = ArgumentArity.ZeroOrOne };
        var name = new Argument<string?>("NAME") { Description = "Name", Arity = ArgumentArity.ZeroOrOne };
        var files = new Option<string[]>("--filename", "-f") { Description = "Delete what these files name", AllowMultipleArgumentsPerToken = true };
        var ns = CliOptions.Namespace();
        var cmd = new Command("delete", "Delete resources by kind and name, or those named in files");
        cmd.Arguments.Add(kind);
        cmd.Arguments.Add(name);
        cmd.Options.Add(files);
        cmd.Options.Add(ns);
        cmd.SetAction((parse, ct) => Run.SafelyAsync(async () =>
        {
            using var api = new ApiClient(CliOptions.ResolveServer(parse));
            var paths = parse.GetValue(files);
            if (paths is { Length: > 0 })
            {
                var (status, body) = await api.SendAsync(HttpMethod.Post, "api/v1/delete", new { files = ApplyCommand.ReadSources(paths) }, ct).ConfigureAwait(false);
                return ApplyCommand.Report(body, (int)status, "delete");
            }
            var k = parse.GetValue(kind);
            var n = parse.GetValue(name);
            if (k is null || n is null)
            {
                throw new CliException("name what to delete: 'trellis delete KIND NAME' or 'trellis delete -f FILE'", ExitCodes.Usage);
            }
            var (st, result) = await api.SendAsync(HttpMethod.Delete, $"api/v1/resources/{Uri.EscapeDataString(k)}/{Uri.EscapeDataString(n)}?namespace={Uri.EscapeDataString(parse.GetValue(ns)!)}", null, ct).ConfigureAwait(false);
            return ApplyCommand.Report(result, (int)st, "delete");
        }));
        return cmd;
    }
}
