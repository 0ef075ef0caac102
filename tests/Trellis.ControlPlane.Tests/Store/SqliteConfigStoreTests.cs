using Trellis.ControlPlane.Store;
using Xunit;
using static Trellis.ControlPlane.Tests.Store.TempStore;

namespace Trellis.ControlPlane.Tests.Store;

public class SqliteConfigStoreTests
{
    [Fact]
    public async Task OpenAsync_MissingFolder_CreatesFileAndStartsAtRevisionZero()
    {
        await using var t = await TempStore.OpenAsync();

        Assert.True(File.Exists(t.DatabasePath));
        Assert.Equal(0, await t.Store.GetRevisionAsync());
        Assert.Equal("sqlite:" + t.DatabasePath, t.Store.Description);
        var list = await t.Store.ListAsync();
        Assert.Empty(list.Objects);
        Assert.Equal(0, list.Revision);
    }

    [Fact]
    public async Task OpenAsync_NewFile_UsesWalJournalAndRecordsSchemaVersion()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"));

        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={t.DatabasePath};Pooling=False");
        connection.Open();
        using var journal = connection.CreateCommand();
        journal.CommandText = "PRAGMA journal_mode;";
        using var meta = connection.CreateCommand();
        meta.CommandText = "SELECT key || '=' || value FROM meta ORDER BY key;";
        var rows = new List<string>();
        using (var reader = meta.ExecuteReader())
        {
            while (reader.Read())
            {
                rows.Add(reader.GetString(0));
            }
        }

        Assert.Equal("wal", journal.ExecuteScalar() as string);
        Assert.Equal(["compacted_revision=0", "revision=1", "schema_version=1"], rows);
    }

    [Fact]
    public async Task CommitAsync_Put_GetReturnsObjectWithRevisions()
    {
        await using var t = await TempStore.OpenAsync();

        var result = await t.CommitAsync(Put("web", """{"port":80}"""));

        Assert.True(result.Succeeded);
        Assert.Equal(1, result.Revision);
        Assert.Empty(result.Conflicts);
        var stored = await t.Store.GetAsync(Key("web"));
        Assert.NotNull(stored);
        Assert.Equal(new StoredObject(Key("web"), """{"port":80}""", 1, 1), stored);
        Assert.Null(await t.Store.GetAsync(Key("missing")));
    }

    [Fact]
    public async Task CommitAsync_Update_KeepsCreateRevisionAndAdvancesModRevision()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("web", "{\"v\":1}"));
        await t.CommitAsync(Put("other"));

        var result = await t.CommitAsync(Put("web", "{\"v\":2}"));

        Assert.Equal(3, result.Revision);
        var stored = await t.Store.GetAsync(Key("web"));
        Assert.Equal(new StoredObject(Key("web"), "{\"v\":2}", 1, 3), stored);
    }

    [Fact]
    public async Task CommitAsync_ManyWrites_ShareOneNewRevision()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("gone"));

        var result = await t.CommitAsync(Put("a"), Put("b"), Put("c"), new StoreDelete(Key("gone")));

        Assert.True(result.Succeeded);
        Assert.Equal(2, result.Revision);
        Assert.Equal(2, await t.Store.GetRevisionAsync());
        var list = await t.Store.ListAsync();
        Assert.Equal(["a", "b", "c"], list.Objects.Select(o => o.Key.Name));
        Assert.All(list.Objects, o => Assert.Equal(2, o.ModRevision));
        Assert.Equal(2, list.Revision);
    }

    [Fact]
    public async Task CommitAsync_SequentialCommits_RevisionsIncreaseByOne()
    {
        await using var t = await TempStore.OpenAsync();

        var revisions = new List<long>();
        for (var i = 0; i < 20; i++)
        {
            revisions.Add((await t.CommitAsync(Put("k" + (i % 3)))).Revision);
        }

        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), revisions);
    }

    [Fact]
    public async Task CommitAsync_DeleteOfMissingKey_IsNoOpWithoutNewRevision()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"));

        var result = await t.CommitAsync(new StoreDelete(Key("missing")));

        Assert.True(result.Succeeded);
        Assert.Equal(1, result.Revision);
        Assert.Equal(1, await t.Store.GetRevisionAsync());
        var events = await CollectAsync(t.Store.WatchAsync(0), 1);
        Assert.Single(events);
    }

    [Fact]
    public async Task CommitAsync_Delete_RemovesKey()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"), Put("b"));

        var result = await t.CommitAsync(new StoreDelete(Key("a"), ExpectedModRevision: 1));

        Assert.True(result.Succeeded);
        Assert.Equal(2, result.Revision);
        Assert.Null(await t.Store.GetAsync(Key("a")));
        Assert.NotNull(await t.Store.GetAsync(Key("b")));
    }

    [Fact]
    public async Task CommitAsync_GuardsMatch_Succeeds()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"));

        var result = await t.CommitAsync(Put("a", "{\"v\":2}", expected: 1), Put("new", expected: 0));

        Assert.True(result.Succeeded);
        Assert.Equal(2, result.Revision);
        Assert.Equal(2, (await t.Store.GetAsync(Key("a")))!.ModRevision);
        Assert.Equal(2, (await t.Store.GetAsync(Key("new")))!.CreateRevision);
    }

    [Fact]
    public async Task CommitAsync_SeveralGuardsFail_ReportsEveryConflictAndWritesNothing()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"));
        await t.CommitAsync(Put("b"), Put("d"));

        var result = await t.CommitAsync(
            Put("a", "{\"changed\":true}", expected: 1),   // matches
            Put("b", "{\"changed\":true}", expected: 1),   // b is at 2
            Put("c", expected: 5),                          // c is absent
            Put("a2", expected: 0),                         // matches (absent)
            new StoreDelete(Key("d"), ExpectedModRevision: 0)); // d exists at 2

        Assert.False(result.Succeeded);
        Assert.Equal(2, result.Revision);
        Assert.Equal([(Key("b"), 2L), (Key("c"), 0L), (Key("d"), 2L)], result.Conflicts);
        Assert.NotNull(await t.Store.GetAsync(Key("d")));
        Assert.Equal(2, await t.Store.GetRevisionAsync());
        Assert.Equal("{}", (await t.Store.GetAsync(Key("a")))!.Json);
        Assert.Equal("{}", (await t.Store.GetAsync(Key("b")))!.Json);
        Assert.Null(await t.Store.GetAsync(Key("a2")));
    }

    [Fact]
    public async Task CommitAsync_OneGuardFailsAmongMany_WritesNothingAndEmitsNoEvent()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("existing"));
        var writes = Enumerable.Range(0, 100).Select(i => (StoreWrite)Put("n" + i))
            .Append(Put("existing", expected: 0))
            .ToList();

        var result = await t.Store.CommitAsync(writes);

        Assert.False(result.Succeeded);
        Assert.Equal([(Key("existing"), 1L)], result.Conflicts);
        var list = await t.Store.ListAsync();
        Assert.Single(list.Objects);
        Assert.Equal(1, list.Revision);
        await t.CommitAsync(Put("after"));
        var events = await CollectAsync(t.Store.WatchAsync(0), 2);
        Assert.Equal([1L, 2L], events.Select(e => e.Revision));
        Assert.Equal("after", events[1].Object.Key.Name);
    }

    [Fact]
    public async Task CommitAsync_SameKeyTwice_ThrowsArgumentException()
    {
        await using var t = await TempStore.OpenAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => t.CommitAsync(Put("a"), new StoreDelete(Key("a"))));
        Assert.Equal(0, await t.Store.GetRevisionAsync());
    }

    [Fact]
    public async Task CommitAsync_UnknownLease_ThrowsAndWritesNothing()
    {
        await using var t = await TempStore.OpenAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => t.CommitAsync(Put("a"), Put("b", lease: 42)));

        Assert.Equal(0, await t.Store.GetRevisionAsync());
        Assert.Null(await t.Store.GetAsync(Key("a")));
        Assert.True((await t.CommitAsync(Put("c"))).Succeeded);
        Assert.Equal(1, await t.Store.GetRevisionAsync());
    }

    [Fact]
    public async Task ListAsync_KindAndNamespaceFilters_ReturnMatchingObjectsAtCurrentRevision()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(
            new StorePut(Key("web", "Service", "shop"), "{}"),
            new StorePut(Key("db", "Service", "data"), "{}"),
            new StorePut(Key("web", "Route", "shop"), "{}"),
            new StorePut(Key("global", "Mesh", ""), "{}"));
        await t.CommitAsync(new StorePut(Key("api", "Service", "shop"), "{}"));

        var services = await t.Store.ListAsync("Service");
        var shop = await t.Store.ListAsync(@namespace: "shop");
        var shopServices = await t.Store.ListAsync("Service", "shop");
        var all = await t.Store.ListAsync();

        Assert.Equal(["data/db", "shop/api", "shop/web"], services.Objects.Select(o => o.Key.Namespace + "/" + o.Key.Name));
        Assert.Equal(["Route/web", "Service/api", "Service/web"], shop.Objects.Select(o => o.Key.Kind + "/" + o.Key.Name));
        Assert.Equal(["api", "web"], shopServices.Objects.Select(o => o.Key.Name));
        Assert.Equal(5, all.Objects.Count);
        Assert.All(new[] { services, shop, shopServices, all }, l => Assert.Equal(2, l.Revision));
    }

    [Fact]
    public async Task ListAsync_DuringConcurrentCommits_SeesWholeCommitsOnly()
    {
        await using var t = await TempStore.OpenAsync();
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (var i = 1; i <= 200; i++)
            {
                // Each commit rewrites both keys with the same value, so a consistent read sees them equal.
                await t.CommitAsync(Put("left", $"{{\"v\":{i}}}"), Put("right", $"{{\"v\":{i}}}"));
            }
        });

        while (!writer.IsCompleted)
        {
            var list = await t.Store.ListAsync();
            if (list.Objects.Count == 2)
            {
                Assert.Equal(list.Objects[0].Json, list.Objects[1].Json);
                Assert.All(list.Objects, o => Assert.Equal(list.Revision, o.ModRevision));
            }
        }

        await writer;
    }

    [Fact]
    public async Task OpenAsync_Reopened_KeepsDataAndContinuesRevision()
    {
        await using var t = await TempStore.OpenAsync();
        await t.CommitAsync(Put("a"), Put("b"));
        await t.CommitAsync(Put("a", "{\"v\":2}"));
        await t.CommitAsync(new StoreDelete(Key("b")));

        await t.ReopenAsync();

        Assert.Equal(3, await t.Store.GetRevisionAsync());
        Assert.Equal(new StoredObject(Key("a"), "{\"v\":2}", 1, 2), await t.Store.GetAsync(Key("a")));
        Assert.Null(await t.Store.GetAsync(Key("b")));
        Assert.Equal(4, (await t.CommitAsync(Put("c"))).Revision);
        var history = await CollectAsync(t.Store.WatchAsync(0), 5);
        Assert.Equal([1L, 1L, 2L, 3L, 4L], history.Select(e => e.Revision));
        Assert.Equal(WatchEventType.Delete, history[3].Type);
    }

    [Fact]
    public async Task OpenAsync_FilesCopiedWhileStoreIsOpen_ContainEveryAcknowledgedCommit()
    {
        // A crash image: the database and its write-ahead log as they are on disk while the writer is still open.
        await using var t = await TempStore.OpenAsync();
        for (var i = 0; i < 10; i++)
        {
            await t.CommitAsync(Put("k" + i));
        }

        var copyFolder = Path.Combine(t.Folder, "crash-image");
        Directory.CreateDirectory(copyFolder);
        var copyPath = Path.Combine(copyFolder, "trellis.db");
        File.Copy(t.DatabasePath, copyPath);
        if (File.Exists(t.DatabasePath + "-wal"))
        {
            File.Copy(t.DatabasePath + "-wal", copyPath + "-wal");
        }

        await using var recovered = await SqliteConfigStore.OpenAsync(copyPath, t.Time);

        Assert.Equal(10, await recovered.GetRevisionAsync());
        Assert.Equal(10, (await recovered.ListAsync()).Objects.Count);
    }

    [Fact]
    public async Task CommitAsync_FiveThousandObjects_IsAtomicAndDurable()
    {
        await using var t = await TempStore.OpenAsync();
        var writes = Enumerable.Range(0, 5_000)
            .Select(i => (StoreWrite)new StorePut(Key($"svc-{i:D5}", ns: "ns" + (i % 10)), $"{{\"i\":{i}}}"))
            .ToList();

        var failed = await t.Store.CommitAsync([.. writes, Put("blocker", expected: 7)]);
        var result = await t.Store.CommitAsync(writes);
        await t.ReopenAsync();

        Assert.False(failed.Succeeded);
        Assert.True(result.Succeeded);
        Assert.Equal(1, result.Revision);
        var list = await t.Store.ListAsync();
        Assert.Equal(5_000, list.Objects.Count);
        Assert.All(list.Objects, o => Assert.Equal(1, o.ModRevision));
        Assert.Equal(1, list.Revision);
        Assert.Equal(500, (await t.Store.ListAsync("Service", "ns3")).Objects.Count);
        var events = await CollectAsync(t.Store.WatchAsync(0), 5_000);
        Assert.All(events, e => Assert.Equal(1, e.Revision));
    }

    [Fact]
    public async Task DisposeAsync_ThenUse_ThrowsObjectDisposed()
    {
        var t = await TempStore.OpenAsync();
        await using (t)
        {
            await t.Store.DisposeAsync();

            await Assert.ThrowsAsync<ObjectDisposedException>(() => t.CommitAsync(Put("a")));
            await Assert.ThrowsAsync<ObjectDisposedException>(() => t.Store.GetAsync(Key("a")).AsTask());
        }
    }
}
