using Microsoft.Extensions.Logging;

namespace Trellis.ControlPlane.Store;

/// <summary>Tuning for <see cref="SqliteConfigStore"/>. The defaults suit a single control-plane process.</summary>
public sealed class SqliteConfigStoreOptions
{
    /// <summary>How many of the most recent revisions keep their watch events. Older history is compacted, and a
    /// watch that asks for it fails with <see cref="StoreCompactedException"/>. Default 10,000.</summary>
    public int EventRetention { get; init; } = 10_000;

    /// <summary>Commits a watcher may have queued before it stops receiving live batches and re-reads the
    /// events table instead. Default 1,024.</summary>
    public int WatchBufferCapacity { get; init; } = 1_024;

    /// <summary>Period of the background sweep that deletes the keys of expired leases. Default 1 s.</summary>
    public TimeSpan LeaseSweepInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a connection waits for a lock held by another connection or process. Default 5 s.</summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Logger for background failures; none when null.</summary>
    public ILogger? Logger { get; init; }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(EventRetention, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(WatchBufferCapacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(LeaseSweepInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(BusyTimeout, TimeSpan.Zero);
    }
}
