namespace Trellis.ControlPlane.XdsServer;

/// <summary>
/// Holds the current snapshot and wakes streams when it is replaced. Publishing is one reference swap; a
/// stream that is busy writing to a slow proxy simply sees the newest snapshot when it next looks.
/// </summary>
internal sealed class SnapshotCache
{
    private volatile Entry _current = new(XdsSnapshot.Empty);
    private readonly TaskCompletionSource _firstPublished = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The snapshot every new request is answered from.</summary>
    public XdsSnapshot Current => _current.Snapshot;

    /// <summary>True once translation has published at least once.</summary>
    public bool HasPublished => _current.Snapshot.Sequence > 0;

    /// <summary>Completes when translation publishes for the first time.</summary>
    public Task FirstPublished => _firstPublished.Task;

    /// <summary>Completes when a snapshot newer than <paramref name="seen"/> is published.</summary>
    public Task WhenChangedAsync(XdsSnapshot seen)
    {
        var entry = _current;
        return ReferenceEquals(entry.Snapshot, seen) ? entry.Replaced.Task : Task.CompletedTask;
    }

    public void Publish(XdsSnapshot snapshot)
    {
        var previous = Interlocked.Exchange(ref _current, new Entry(snapshot));
        previous.Replaced.TrySetResult();
        if (snapshot.Sequence > 0)
        {
            _firstPublished.TrySetResult();
        }
        Published?.Invoke(snapshot);
    }

    /// <summary>Raised after each publish (status and metrics listen here).</summary>
    public event Action<XdsSnapshot>? Published;

    private sealed class Entry(XdsSnapshot snapshot)
    {
        public XdsSnapshot Snapshot { get; } = snapshot;
        public TaskCompletionSource Replaced { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
