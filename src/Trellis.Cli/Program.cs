using System.CommandLine;
using Trellis.Cli;
using Trellis.Cli.Commands;

var root = new RootCommand("Trellis: a service mesh. One command for every role: control plane, proxy, and the tools to drive them.");
root.Options.Add(CliOptions.Server);
root.Subcommands.Add(ControlPlaneCommand.Create());
root.Subcommands.Add(ApplyCommand.Create());
root.Subcommands.Add(GetCommand.Create());
root.Subcommands.Add(DeleteCommand.Create());
root.Subcommands.Add(ProxyStatusCommand.Create());
root.Subcommands.Add(ProxyConfigCommand.Create());
root.Subcommands.Add(RegisterCommand.Create());
root.Subcommands.Add(RegisterCommand.CreateDeregister());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(ProxyCommand.Create());

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
    {
        Console.Error.WriteLine($"error: {error.Message}");
    }
    Console.Error.WriteLine($"run 'trellis {string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')).Take(1))} --help' for usage");
    return ExitCodes.Usage;
}
return await parsed.InvokeAsync();
