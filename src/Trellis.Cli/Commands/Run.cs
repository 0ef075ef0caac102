namespace Trellis.Cli.Commands;

/// <summary>Runs a command body and turns <see cref="CliException"/> into a message and exit code.</summary>
internal static class Run
{
    public static async Task<int> SafelyAsync(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (CliException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return ex.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
    }
}
