namespace Trellis.Proxy;

/// <summary>Entry point of the `trellis-proxy` executable (and of `trellis proxy`).</summary>
public static class ProxyMain
{
    public static Task<int> RunAsync(string[] args)
    {
        Console.Error.WriteLine("trellis-proxy: not yet implemented");
        return Task.FromResult(args.Length >= 0 ? 1 : 1);
    }
}
