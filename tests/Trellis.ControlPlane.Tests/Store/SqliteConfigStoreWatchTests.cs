using Trellis.ControlPlane.Store;
using Xunit;
using static Trellis.ControlPlane.Tests.Store.TempStore;

namespace Trellis.ControlPlane.Tests.Store;

public class SqliteConfigStoreWatchTests
{
    [Fact]
    public async Task WatchAsync_FromZero_ReplaysHistoryInOrderWithValues()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a", "{\"v\":1}"), Put("b"));
        await t.CommitAsync(Put("a", "{\"v\":2}"));
        await t.CommitAsync(new StoreDelete(Key("b")));

        var events = await CollectAsync(t.Store.WatchAsync(0), 4);

        Assert.Equal(
            [
                new WatchEvent(WatchEventType.Put, new StoredObject(Key("a"), "{\"v\":1}", 1, 1), 1),
                new WatchEvent(WatchEventType.Put, new StoredObject(Key("b"), "{}", 1, 1), 1),
                new WatchEvent(WatchEventType.Put, new StoredObject(Key("a"), "{\"v\":2}", 1, 2), 2),
                new WatchEvent(WatchEventType.Delete, new StoredObject(Key("b"), "{}", 1, 1), 3),
            ],
            events);
    }

    [Fact]
    public async Task WatchAsync_AfterRevision_SkipsOlderEventsThenDeliversLive()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"));
        await t.CommitAsync(Put("b"));
        using var cts = new CancellationTokenSource(SafetyTimeout);
        await using var watch = t.Store.WatchAsync(1, cts.Token).GetAsyncEnumerator();

        var replayed = await NextAsync(watch, watch.MoveNextAsync());
        var pending = watch.MoveNextAsync();
        await t.CommitAsync(Put("c"));
        var live = await NextAsync(watch, pending);

        Assert.Equal(("b", 2L), (replayed.Object.Key.Name, replayed.Revision));
        Assert.Equal(("c", 3L), (live.Object.Key.Name, live.Revision));
    }

    [Fact]
    public async Task WatchAsync_FutureRevision_WaitsForThatRevision()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"));
        using var cts = new CancellationTokenSource(SafetyTimeout);
        await using var watch = t.Store.WatchAsync(1, cts.Token).GetAsyncEnumerator();
        var pending = watch.MoveNextAsync();

        await t.CommitAsync(Put("b"));

        Assert.Equal(2, (await NextAsync(watch, pending)).Revision);
    }

    [Theory]
    [InlineData(1_024)]
    [InlineData(2)] // tiny buffer: the watcher keeps overflowing and catching up from the table
    public async Task WatchAsync_WhileCommitsRun_DeliversEveryRevisionOnceInOrder(int buffer)
    {
        const int Total = 500;
        await using var t = await TempStore.OpenAsync(new SqliteConfigStoreOptions { WatchBufferCapacity = buffer });
        for (var i = 1; i <= 50; i++)
        {
            await t.CommitAsync(Put("k" + (i % 7), $"{{\"i\":{i}}}"));
        }

        var writer = Task.Run(async () =>
        {
            for (var i = 51; i <= Total; i++)
            {
                await t.CommitAsync(Put("k" + (i % 7), $"{{\"i\":{i}}}"));
            }
        });
        var events = await CollectAsync(t.Store.WatchAsync(0), Total);
        await writer;

        Assert.Equal(Enumerable.Range(1, Total).Select(i => (long)i), events.Select(e => e.Revision));
        Assert.Equal(Enumerable.Range(1, Total).Select(i => $"{{\"i\":{i}}}"), events.Select(e => e.Object.Json));
    }

    [Fact]
    public async Task WatchAsync_SlowWatcherOverflows_CatchesUpWithoutGapOrDuplicate()
    {
        await using var t = await TempStore.OpenAsync(new SqliteConfigStoreOptions { WatchBufferCapacity = 4 });
        await t.CommitAsync(Put("first"));
        using var cts = new CancellationTokenSource(SafetyTimeout);
        await using var watch = t.Store.WatchAsync(0, cts.Token).GetAsyncEnumerator();
        Assert.Equal(1, (await NextAsync(watch, watch.MoveNextAsync())).Revision);

        for (var i = 0; i < 100; i++)
        {
            await t.CommitAsync(Put("k" + i)); // nobody reads meanwhile; the commits must not wait
        }

        var revisions = new List<long>();
        for (var i = 0; i < 100; i++)
        {
            revisions.Add((await NextAsync(watch, watch.MoveNextAsync())).Revision);
        }

        Assert.Equal(Enumerable.Range(2, 100).Select(i => (long)i), revisions);
        var pending = watch.MoveNextAsync();
        await t.CommitAsync(Put("live"));
        Assert.Equal(102, (await NextAsync(watch, pending)).Revision);
    }

    [Fact]
    public async Task WatchAsync_TwoWatchers_SeeTheSameSequence()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("seed"));
        var first = CollectAsync(t.Store.WatchAsync(0), 61);
        var second = CollectAsync(t.Store.WatchAsync(0), 61);

        for (var i = 0; i < 30; i++)
        {
            await t.CommitAsync(Put("a" + i), Put("b" + i));
        }

        var a = await first;
        var b = await second;
        Assert.Equal(61, a.Count);
        Assert.Equal(a, b);
        Assert.Equal(31, a[^1].Revision);
    }

    [Fact]
    public async Task WatchAsync_CompactedRevision_ThrowsStoreCompactedException()
    {
        await using var t = await TempStore.OpenAsync(new SqliteConfigStoreOptions { EventRetention = 5 });
        for (var i = 0; i < 20; i++)
        {
            await t.CommitAsync(Put("k" + i));
        }

        var ex = await Assert.ThrowsAsync<StoreCompactedException>(() => CollectAsync(t.Store.WatchAsync(1), 1));
        var kept = await CollectAsync(t.Store.WatchAsync(15), 5);

        Assert.Equal(1, ex.Requested);
        Assert.Equal(16, ex.CompactedTo);
        Assert.Equal([16L, 17L, 18L, 19L, 20L], kept.Select(e => e.Revision));
        await Assert.ThrowsAsync<StoreCompactedException>(() => CollectAsync(t.Store.WatchAsync(14), 1));
    }

    [Fact]
    public async Task WatchAsync_CompactionSurvivesReopen_StillThrows()
    {
        await using var t = await TempStore.OpenAsync(new SqliteConfigStoreOptions { EventRetention = 3 });
        for (var i = 0; i < 10; i++)
        {
            await t.CommitAsync(Put("k" + i));
        }

        await t.ReopenAsync();

        await Assert.ThrowsAsync<StoreCompactedException>(() => CollectAsync(t.Store.WatchAsync(0), 1));
        Assert.Equal([8L, 9L, 10L], (await CollectAsync(t.Store.WatchAsync(7), 3)).Select(e => e.Revision));
    }

    [Fact]
    public async Task WatchAsync_Cancelled_StopsWithOperationCanceled()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"));
        using var cts = new CancellationTokenSource();
        await using var watch = t.Store.WatchAsync(0, cts.Token).GetAsyncEnumerator();
        await NextAsync(watch, watch.MoveNextAsync());
        var pending = watch.MoveNextAsync();

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.AsTask().WaitAsync(SafetyTimeout));
        Assert.True((await t.CommitAsync(Put("b"))).Succeeded); // the store carries on without the watcher
    }

    [Fact]
    public async Task DisposeAsync_WithActiveWatch_CompletesTheWatch()
    {
        var t = await TempStore.OpenAsync();
        await using (t)
        {
            await using var watch = t.Store.WatchAsync(0).GetAsyncEnumerator();
            var pending = watch.MoveNextAsync();

            await t.Store.DisposeAsync();

            Assert.False(await pending.AsTask().WaitAsync(SafetyTimeout));
        }
    }
}
