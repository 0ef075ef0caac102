using Trellis.ControlPlane.Store;
using Xunit;
using static Trellis.ControlPlane.Tests.Store.TempStore;

namespace Trellis.ControlPlane.Tests.Store;

public class SqliteConfigStoreLeaseTests
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task GrantLeaseAsync_TwoLeases_ReturnsDistinctPositiveIds()
    {
        await using var t = await TempStore.OpenAsync();

        var first = await t.Store.GrantLeaseAsync(Ttl);
        var second = await t.Store.GrantLeaseAsync(Ttl);

        Assert.True(first > 0);
        Assert.NotEqual(first, second);
        Assert.Equal(0, await t.Store.GetRevisionAsync());
    }

    [Fact]
    public async Task BackgroundSweep_LeaseExpires_DeletesItsKeysInOneCommitWithDeleteEvents()
    {
        await using var t = await TempStore.OpenAsync();
        var lease = await t.Store.GrantLeaseAsync(Ttl);
        await t.CommitAsync(Put("a", lease: lease), Put("b", lease: lease), Put("keep"));
        using var cts = new CancellationTokenSource(SafetyTimeout);
        await using var watch = t.Store.WatchAsync(1, cts.Token).GetAsyncEnumerator();
        var pending = watch.MoveNextAsync();

        t.Time.Advance(Ttl + TimeSpan.FromSeconds(1));

        var first = await NextAsync(watch, pending);
        var second = await NextAsync(watch, watch.MoveNextAsync());
        Assert.Equal([WatchEventType.Delete, WatchEventType.Delete], new[] { first.Type, second.Type });
        Assert.Equal(["a", "b"], new[] { first.Object.Key.Name, second.Object.Key.Name });
        Assert.Equal([2L, 2L], new[] { first.Revision, second.Revision });
        Assert.Equal(lease, first.Object.LeaseId);
        Assert.Null(await t.Store.GetAsync(Key("a")));
        Assert.NotNull(await t.Store.GetAsync(Key("keep")));
        Assert.False(await t.Store.KeepAliveAsync(lease));
    }

    [Fact]
    public async Task BackgroundSweep_BeforeTtl_KeepsKeys()
    {
        await using var t = await TempStore.OpenAsync();
        var lease = await t.Store.GrantLeaseAsync(Ttl);
        await t.CommitAsync(Put("a", lease: lease));

        t.Time.Advance(Ttl - TimeSpan.FromSeconds(1));

        Assert.NotNull(await t.Store.GetAsync(Key("a")));
        Assert.Equal(0, await t.Store.ExpireLeasesAsync());
        Assert.Equal(1, await t.Store.GetRevisionAsync());
    }

    [Fact]
    public async Task KeepAliveAsync_BeforeExpiry_PostponesDeletion()
    {
        await using var t = await TempStore.OpenAsync();
        var lease = await t.Store.GrantLeaseAsync(Ttl);
        await t.CommitAsync(Put("a", lease: lease));
        using var cts = new CancellationTokenSource(SafetyTimeout);
        await using var watch = t.Store.WatchAsync(1, cts.Token).GetAsyncEnumerator();
        var pending = watch.MoveNextAsync();

        t.Time.Advance(TimeSpan.FromSeconds(6));
        Assert.True(await t.Store.KeepAliveAsync(lease));
        t.Time.Advance(TimeSpan.FromSeconds(6)); // 12 s after grant, 6 s after the renewal

        Assert.Equal(0, await t.Store.ExpireLeasesAsync());
        Assert.NotNull(await t.Store.GetAsync(Key("a")));
        Assert.False(pending.IsCompleted);

        t.Time.Advance(TimeSpan.FromSeconds(5)); // 11 s after the renewal

        var deleted = await NextAsync(watch, pending);
        Assert.Equal((WatchEventType.Delete, "a", 2L), (deleted.Type, deleted.Object.Key.Name, deleted.Revision));
        Assert.Null(await t.Store.GetAsync(Key("a")));
    }

    [Fact]
    public async Task KeepAliveAsync_UnknownLease_ReturnsFalse()
    {
        await using var t = await TempStore.OpenAsync();

        Assert.False(await t.Store.KeepAliveAsync(12345));
    }

    [Fact]
    public async Task RevokeLeaseAsync_DeletesKeysAtOnceWithDeleteEvents()
    {
        await using var t = await TempStore.OpenAsync();
        var lease = await t.Store.GrantLeaseAsync(Ttl);
        var other = await t.Store.GrantLeaseAsync(Ttl);
        await t.CommitAsync(Put("a", lease: lease), Put("b", lease: lease), Put("c", lease: other));

        await t.Store.RevokeLeaseAsync(lease);

        Assert.Equal(2, await t.Store.GetRevisionAsync());
        Assert.Equal(["c"], (await t.Store.ListAsync()).Objects.Select(o => o.Key.Name));
        var events = await CollectAsync(t.Store.WatchAsync(1), 2);
        Assert.All(events, e => Assert.Equal((WatchEventType.Delete, 2L), (e.Type, e.Revision)));
        Assert.False(await t.Store.KeepAliveAsync(lease));
        Assert.True(await t.Store.KeepAliveAsync(other));
        await t.Store.RevokeLeaseAsync(lease); // already gone: no-op
        Assert.Equal(2, await t.Store.GetRevisionAsync());
    }

    [Fact]
    public async Task ExpireLeasesAsync_SeveralExpiredLeases_DeletesAllKeysAtOneRevision()
    {
        // A sweep period far longer than the test keeps the timer out of the way.
        await using var t = await TempStore.OpenAsync(new SqliteConfigStoreOptions { LeaseSweepInterval = TimeSpan.FromDays(1) });
        var shortLease = await t.Store.GrantLeaseAsync(TimeSpan.FromSeconds(5));
        var otherShort = await t.Store.GrantLeaseAsync(TimeSpan.FromSeconds(8));
        var longLease = await t.Store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
        await t.CommitAsync(Put("a", lease: shortLease), Put("b", lease: otherShort), Put("c", lease: longLease));

        t.Time.Advance(TimeSpan.FromSeconds(8));
        var deleted = await t.Store.ExpireLeasesAsync();

        Assert.Equal(2, deleted);
        Assert.Equal(2, await t.Store.GetRevisionAsync());
        Assert.Equal(["c"], (await t.Store.ListAsync()).Objects.Select(o => o.Key.Name));
        Assert.Equal(0, await t.Store.ExpireLeasesAsync());
        Assert.True(await t.Store.KeepAliveAsync(longLease));
    }

    [Fact]
    public async Task ExpireLeasesAsync_AfterReopen_StillExpiresPersistedLease()
    {
        await using var t = await TempStore.OpenAsync(new SqliteConfigStoreOptions { LeaseSweepInterval = TimeSpan.FromDays(1) });
        var lease = await t.Store.GrantLeaseAsync(Ttl);
        await t.CommitAsync(Put("a", lease: lease));
        await t.ReopenAsync();

        t.Time.Advance(Ttl);

        Assert.Equal(1, await t.Store.ExpireLeasesAsync());
        Assert.Null(await t.Store.GetAsync(Key("a")));
    }
}
