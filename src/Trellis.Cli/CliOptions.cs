using System.CommandLine;

namespace Trellis.Cli;

internal static class ExitCodes
{
    public const int Ok = 0;
    public const int UserError = 1;
    public const int Usage = 2;
}

internal static class CliOptions
{
    public const string DefaultServer = "http://127.0.0.1:15080";

    /// <summary>--server URL, else TRELLIS_SERVER, else the local default.</summary>
    public static readonly Option<string?> Server = new("--server")
    {
        Description = $"Control plane REST address (default: $TRELLIS_SERVER, else {DefaultServer})",
        Recursive = true,
    };

    public static string ResolveServer(ParseResult parse) =>
        parse.GetValue(Server) ?? (Environment.GetEnvironmentVariable("TRELLIS_SERVER") is { Length: > 0 } env ? env : DefaultServer);

    public static Option<string> Output(string defaultValue, params string[] allowed)
    {
        var o = new Option<string>("--output", "-o") { Description = $"Output format: {string.Join(" | ", allowed)}", DefaultValueFactory = _ => defaultValue };
        o.AcceptOnlyFromAmong(allowed);
        return o;
    }

    public static Option<string> Namespace() =>
        new("--namespace", "-n") { Description = "Namespace", DefaultValueFactory = _ => "default" };
}
