namespace Trellis.ControlPlane;

/// <summary>Settings of one control-plane process (flags of `trellis control-plane`).</summary>
public sealed record ControlPlaneOptions
{
    /// <summary>Where the SQLite store and the CA live; $HOME/.trellis by default.</summary>
    public string DataDirectory { get; init; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".trellis");

    /// <summary>"sqlite:PATH" or etcd endpoints; the SQLite file in <see cref="DataDirectory"/> when null.</summary>
    public string? Store { get; init; }

    public string GrpcAddress { get; init; } = "127.0.0.1:15010";
    public string HttpAddress { get; init; } = "127.0.0.1:15080";
    public string ClusterName { get; init; } = "primary";

    /// <summary>Changes within this window coalesce into one snapshot and one push.</summary>
    public TimeSpan Debounce { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How long an instance whose heartbeats stopped stays listed (as unhealthy) before it is removed.</summary>
    public TimeSpan RegistrationGrace { get; init; } = TimeSpan.FromSeconds(60);
}
