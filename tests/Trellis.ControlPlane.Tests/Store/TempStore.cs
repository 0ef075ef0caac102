using Microsoft.Extensions.Time.Testing;
using Trellis.ControlPlane.Store;
using Xunit;

namespace Trellis.ControlPlane.Tests.Store;

/// <summary>A store in its own temporary folder (removed on dispose), driven by a fake clock.</summary>
internal sealed class TempStore : IAsyncDisposable
{
    public static readonly TimeSpan SafetyTimeout = TimeSpan.FromSeconds(30);

    private readonly SqliteConfigStoreOptions _options;

    private TempStore(string folder, FakeTimeProvider time, SqliteConfigStoreOptions options)
    {
        Folder = folder;
        Time = time;
        _options = options;
    }

    public string Folder { get; }

    /// <summary>The database path; its parent folder does not exist until the store first opens.</summary>
    public string DatabasePath => Path.Combine(Folder, "data", "trellis.db");

    public FakeTimeProvider Time { get; }

    public SqliteConfigStore Store { get; private set; } = null!;

    public static async Task<TempStore> OpenAsync(SqliteConfigStoreOptions? options = null)
    {
        var folder = Path.Combine(Path.GetTempPath(), "trellis-store-" + Guid.NewGuid().ToString("N")[..12]);
        var temp = new TempStore(folder, new FakeTimeProvider(), options ?? new SqliteConfigStoreOptions());
        await temp.ReopenAsync();
        return temp;
    }

    /// <summary>Closes the current store (if open) and opens the same file again.</summary>
    public async Task ReopenAsync()
    {
        if (Store is not null)
        {
            await Store.DisposeAsync();
        }

        Store = await SqliteConfigStore.OpenAsync(DatabasePath, Time, _options);
    }

    public async ValueTask DisposeAsync()
    {
        if (Store is not null)
        {
            await Store.DisposeAsync();
        }

        if (Directory.Exists(Folder))
        {
            Directory.Delete(Folder, recursive: true);
        }
    }

    public static ResourceKey Key(string name, string kind = "Service", string ns = "default") => new(kind, ns, name);

    public static StorePut Put(string name, string json = "{}", long? expected = null, long lease = 0) =>
        new(Key(name), json, expected, lease);

    public Task<CommitResult> CommitAsync(params StoreWrite[] writes) => Store.CommitAsync(writes).AsTask();

    /// <summary>Reads <paramref name="count"/> events from a watch, failing after <see cref="SafetyTimeout"/>.</summary>
    public static async Task<List<WatchEvent>> CollectAsync(IAsyncEnumerable<WatchEvent> watch, int count)
    {
        using var timeout = new CancellationTokenSource(SafetyTimeout);
        var events = new List<WatchEvent>(count);
        if (count == 0)
        {
            return events;
        }

        await foreach (var change in watch.WithCancellation(timeout.Token))
        {
            events.Add(change);
            if (events.Count == count)
            {
                break;
            }
        }

        return events;
    }

    /// <summary>Awaits one pending MoveNextAsync with a safety timeout and returns the event.</summary>
    public static async Task<WatchEvent> NextAsync(IAsyncEnumerator<WatchEvent> watch, ValueTask<bool> pending)
    {
        Assert.True(await pending.AsTask().WaitAsync(SafetyTimeout), "the watch ended");
        return watch.Current;
    }
}
