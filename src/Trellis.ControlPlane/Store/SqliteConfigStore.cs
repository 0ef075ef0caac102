using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Trellis.ControlPlane.Store;

/// <summary>
/// The embedded config store: one SQLite file in WAL mode with <c>synchronous=FULL</c>, so a commit that returned
/// success survives the process being killed.
/// </summary>
/// <remarks>
/// <para>Writes (commits and lease changes) go through one connection, one at a time, behind an async lock. Each
/// successful commit that changes something takes exactly one new revision, shared by all of its writes; a commit
/// whose writes are all no-ops (deletes of missing keys) succeeds without a new revision. Reads open their own pooled
/// connection and read inside one transaction, so they see a single revision and never wait for a writer.</para>
/// <para>Watches replay the events table, then follow live batches pushed by the committer into a bounded per-watcher
/// channel (one batch per commit). A watcher that lets its channel fill is never waited for: the committer drops it
/// from the live feed, and the watcher, once it drains what it has, re-reads the events table from the last revision
/// it delivered and subscribes again. Only if it fell behind the retained history does it fail with
/// <see cref="StoreCompactedException"/>.</para>
/// <para>Compaction: events of the newest <see cref="SqliteConfigStoreOptions.EventRetention"/> revisions are kept;
/// older ones are removed inside the commit that pushes them out.</para>
/// <para>Microsoft.Data.Sqlite runs its "async" methods synchronously, so the store calls the synchronous API
/// directly; the only real waits (the write lock and the watch channels) are awaited.</para>
/// </remarks>
public sealed class SqliteConfigStore : IConfigStore
{
    private const int SchemaVersion = 1;
    private const int HistoryPageRevisions = 256;

    private const string ObjectColumns = "kind, namespace, name, json, create_revision, mod_revision, lease_id";
    private const string EventColumns = "revision, type, " + ObjectColumns;

    private readonly string _connectionString;
    private readonly SqliteConnection _writer;
    private readonly TimeProvider _time;
    private readonly SqliteConfigStoreOptions _options;
    private readonly ILogger _logger;
    private readonly int _busyTimeoutMs;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _disposeCts = new();
    private readonly Lock _watchersLock = new();
    private readonly ITimer _sweepTimer;

    private Watcher[] _watchers = [];
    private long _revision;      // written under _writeLock, read with Volatile
    private long _compacted;     // highest revision whose events were removed; under _writeLock
    private int _sweeping;
    private int _disposeStarted;
    private volatile bool _disposed;
    private Task _sweepTask = Task.CompletedTask;

    private SqliteConfigStore(
        string path, string connectionString, SqliteConnection writer, TimeProvider time,
        SqliteConfigStoreOptions options, long revision, long compacted)
    {
        Description = "sqlite:" + path;
        _connectionString = connectionString;
        _writer = writer;
        _time = time;
        _options = options;
        _logger = options.Logger ?? NullLogger.Instance;
        _busyTimeoutMs = (int)Math.Min(int.MaxValue, options.BusyTimeout.TotalMilliseconds);
        _revision = revision;
        _compacted = compacted;
        _sweepTimer = time.CreateTimer(
            static state => ((SqliteConfigStore)state!).OnSweepTimer(), this,
            options.LeaseSweepInterval, options.LeaseSweepInterval);
    }

    /// <inheritdoc />
    public string Description { get; }

    /// <summary>Opens (creating the file and its folder when missing) a store with default options.</summary>
    public static Task<SqliteConfigStore> OpenAsync(string path, TimeProvider time, CancellationToken ct = default) =>
        OpenAsync(path, time, new SqliteConfigStoreOptions(), ct);

    /// <summary>Opens (creating the file and its folder when missing) a store.</summary>
    public static async Task<SqliteConfigStore> OpenAsync(
        string path, TimeProvider time, SqliteConfigStoreOptions options, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ct.ThrowIfCancellationRequested();

        var fullPath = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(fullPath);
        if (!string.IsNullOrEmpty(folder))
        {
            Directory.CreateDirectory(folder);
        }

        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = (int)Math.Max(1, Math.Ceiling(options.BusyTimeout.TotalSeconds)),
        }.ToString();

        var writer = new SqliteConnection(connectionString);
        try
        {
            await writer.OpenAsync(ct).ConfigureAwait(false);
            var busyMs = (int)Math.Min(int.MaxValue, options.BusyTimeout.TotalMilliseconds);
            Execute(writer, null, $"PRAGMA busy_timeout = {busyMs};");
            var mode = Convert.ToString(Scalar(writer, null, "PRAGMA journal_mode = WAL;"), System.Globalization.CultureInfo.InvariantCulture);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"could not switch {fullPath} to WAL journaling (got '{mode}')");
            }

            Execute(writer, null, "PRAGMA synchronous = FULL;");
            var (revision, compacted) = InitializeSchema(writer);
            var store = new SqliteConfigStore(fullPath, connectionString, writer, time, options, revision, compacted);
            SqliteConfigStoreLog.Opened(store._logger, fullPath, revision);
            return store;
        }
        catch
        {
            SqliteConnection.ClearPool(writer);
            await writer.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask<long> GetRevisionAsync(CancellationToken ct = default)
    {
        ThrowIfDisposed();
        ct.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Volatile.Read(ref _revision));
    }

    /// <inheritdoc />
    public ValueTask<StoredObject?> GetAsync(ResourceKey key, CancellationToken ct = default)
    {
        ValidateKey(key);
        ct.ThrowIfCancellationRequested();
        using var connection = OpenReader();
        using var command = Command(connection, null,
            $"SELECT {ObjectColumns} FROM objects WHERE kind = $kind AND namespace = $ns AND name = $name;");
        SetKey(command, key);
        using var reader = command.ExecuteReader();
        return ValueTask.FromResult(reader.Read() ? ReadObject(reader, 0) : null);
    }

    /// <inheritdoc />
    public ValueTask<StoreList> ListAsync(string? kind = null, string? @namespace = null, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        using var connection = OpenReader();
        using var transaction = connection.BeginTransaction(deferred: true);
        var revision = ReadMeta(connection, transaction, "revision");

        var sql = $"SELECT {ObjectColumns} FROM objects";
        if (kind is not null && @namespace is not null)
        {
            sql += " WHERE kind = $kind AND namespace = $ns";
        }
        else if (kind is not null)
        {
            sql += " WHERE kind = $kind";
        }
        else if (@namespace is not null)
        {
            sql += " WHERE namespace = $ns";
        }

        using var command = Command(connection, transaction, sql + " ORDER BY kind, namespace, name;");
        command.Parameters.AddWithValue("$kind", (object?)kind ?? DBNull.Value);
        command.Parameters.AddWithValue("$ns", (object?)@namespace ?? DBNull.Value);
        var objects = new List<StoredObject>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                objects.Add(ReadObject(reader, 0));
            }
        }

        transaction.Commit();
        return ValueTask.FromResult(new StoreList(objects, revision));
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">A write is malformed, or two writes name the same key.</exception>
    /// <exception cref="InvalidOperationException">A put names a lease that does not exist; nothing was written.</exception>
    public async ValueTask<CommitResult> CommitAsync(IReadOnlyList<StoreWrite> writes, CancellationToken ct = default)
    {
        ValidateWrites(writes);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            return CommitLocked(writes);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>Throws <see cref="StoreCompactedException"/> when <paramref name="afterRevision"/> is older than the
    /// retained history, either at once or later if this watcher falls that far behind. Ends normally when the store
    /// is disposed.</remarks>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(
        long afterRevision, [EnumeratorCancellation] CancellationToken ct = default)
    {
        ThrowIfDisposed();
        var last = Math.Max(0, afterRevision);
        while (true)
        {
            // Subscribe before reading history: every commit that the history read misses is then in the channel.
            var watcher = Register();
            if (watcher is null)
            {
                yield break;
            }

            try
            {
                while (true)
                {
                    ct.ThrowIfCancellationRequested();
                    var page = ReadHistoryPage(last);
                    if (page is null)
                    {
                        yield break;
                    }

                    foreach (var change in page.Events)
                    {
                        yield return change;
                    }

                    last = Math.Max(last, page.UpTo);
                    if (page.UpTo >= page.Current)
                    {
                        break;
                    }
                }

                var resync = false;
                var reader = watcher.Channel.Reader;
                while (!resync && await reader.WaitToReadAsync(ct).ConfigureAwait(false))
                {
                    while (reader.TryRead(out var batch))
                    {
                        var revision = batch[0].Revision;
                        if (revision <= last)
                        {
                            continue; // already delivered from history
                        }

                        if (revision != last + 1)
                        {
                            resync = true; // defensive: never expected, but a gap is repaired from the table
                            break;
                        }

                        foreach (var change in batch)
                        {
                            yield return change;
                        }

                        last = revision;
                    }
                }

                if (!resync && !watcher.Overflowed)
                {
                    yield break; // the store was disposed
                }
            }
            finally
            {
                Unregister(watcher);
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        var ttlMs = Math.Max(1, (long)Math.Ceiling(ttl.TotalMilliseconds));
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            using var command = Command(_writer, null,
                "INSERT INTO leases (ttl_ms, expires_at_ms) VALUES ($ttl, $expires) RETURNING id;");
            command.Parameters.AddWithValue("$ttl", ttlMs);
            command.Parameters.AddWithValue("$expires", NowMs() + ttlMs);
            return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>A lease whose expiry time has passed counts as gone even before the sweep deletes it.</remarks>
    public async ValueTask<bool> KeepAliveAsync(long leaseId, CancellationToken ct = default)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            using var command = Command(_writer, null,
                "UPDATE leases SET expires_at_ms = $now + ttl_ms WHERE id = $id AND expires_at_ms > $now;");
            command.Parameters.AddWithValue("$id", leaseId);
            command.Parameters.AddWithValue("$now", NowMs());
            return command.ExecuteNonQuery() == 1;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>Revoking a lease that does not exist does nothing.</remarks>
    public async ValueTask RevokeLeaseAsync(long leaseId, CancellationToken ct = default)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            RemoveLeasesLocked(leaseId, nowMs: 0);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Deletes, in one commit, the keys of every lease that has expired by the injected clock, and the
    /// leases. Returns how many keys were deleted. The background sweep calls this every
    /// <see cref="SqliteConfigStoreOptions.LeaseSweepInterval"/>.</summary>
    public async Task<int> ExpireLeasesAsync(CancellationToken ct = default)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            return RemoveLeasesLocked(leaseId: null, NowMs());
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Stops the lease sweep, ends every watch and closes the database.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) != 0)
        {
            return;
        }

        await _sweepTimer.DisposeAsync().ConfigureAwait(false);
        await _disposeCts.CancelAsync().ConfigureAwait(false);
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            lock (_watchersLock)
            {
                _disposed = true;
                foreach (var watcher in _watchers)
                {
                    watcher.Channel.Writer.TryComplete();
                }

                _watchers = [];
            }

            SqliteConnection.ClearPool(_writer);
            await _writer.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }

        await _sweepTask.ConfigureAwait(false);
        _disposeCts.Dispose();
    }

    private CommitResult CommitLocked(IReadOnlyList<StoreWrite> writes)
    {
        var current = new StoredObject?[writes.Count];
        using var transaction = _writer.BeginTransaction(); // BEGIN IMMEDIATE
        List<(ResourceKey Key, long ActualModRevision)>? conflicts = null;
        using (var select = Command(_writer, transaction,
                   $"SELECT {ObjectColumns} FROM objects WHERE kind = $kind AND namespace = $ns AND name = $name;"))
        {
            for (var i = 0; i < writes.Count; i++)
            {
                var write = writes[i];
                SetKey(select, write.Key);
                using (var reader = select.ExecuteReader())
                {
                    current[i] = reader.Read() ? ReadObject(reader, 0) : null;
                }

                var actual = current[i]?.ModRevision ?? 0;
                if (write.ExpectedModRevision is { } expected && expected != actual)
                {
                    (conflicts ??= []).Add((write.Key, actual));
                }
            }
        }

        var previous = Volatile.Read(ref _revision);
        if (conflicts is not null)
        {
            transaction.Rollback();
            return new CommitResult(false, previous, conflicts);
        }

        EnsureLeasesExist(transaction, writes);

        var revision = previous + 1;
        var events = new List<WatchEvent>(writes.Count);
        using (var upsert = Command(_writer, transaction,
                   $"INSERT INTO objects ({ObjectColumns}) VALUES ($kind, $ns, $name, $json, $create, $mod, $lease) " +
                   "ON CONFLICT (kind, namespace, name) DO UPDATE SET json = excluded.json, " +
                   "mod_revision = excluded.mod_revision, lease_id = excluded.lease_id;"))
        using (var delete = Command(_writer, transaction,
                   "DELETE FROM objects WHERE kind = $kind AND namespace = $ns AND name = $name;"))
        {
            for (var i = 0; i < writes.Count; i++)
            {
                switch (writes[i])
                {
                    case StorePut put:
                        var stored = new StoredObject(put.Key, put.Json, current[i]?.CreateRevision ?? revision, revision, put.LeaseId);
                        SetObject(upsert, stored);
                        upsert.ExecuteNonQuery();
                        events.Add(new WatchEvent(WatchEventType.Put, stored, revision));
                        break;
                    case StoreDelete when current[i] is { } existing:
                        SetKey(delete, existing.Key);
                        delete.ExecuteNonQuery();
                        events.Add(new WatchEvent(WatchEventType.Delete, existing, revision));
                        break;
                }
            }
        }

        if (events.Count == 0)
        {
            transaction.Rollback();
            return new CommitResult(true, previous, []);
        }

        var compacted = AppendEvents(transaction, events, revision);
        transaction.Commit();
        Advance(revision, compacted, events);
        return new CommitResult(true, revision, []);
    }

    /// <summary>Deletes the keys of one lease (revoke) or of every lease expired at <paramref name="nowMs"/>, and
    /// those leases, in one transaction at one revision.</summary>
    private int RemoveLeasesLocked(long? leaseId, long nowMs)
    {
        using var transaction = _writer.BeginTransaction();
        var leaseIds = new List<long>();
        using (var select = leaseId is not null
                   ? Command(_writer, transaction, "SELECT id FROM leases WHERE id = $id;")
                   : Command(_writer, transaction, "SELECT id FROM leases WHERE expires_at_ms <= $now ORDER BY id;"))
        {
            select.Parameters.AddWithValue("$id", leaseId ?? 0);
            select.Parameters.AddWithValue("$now", nowMs);
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                leaseIds.Add(reader.GetInt64(0));
            }
        }

        if (leaseIds.Count == 0)
        {
            transaction.Rollback();
            return 0;
        }

        var revision = Volatile.Read(ref _revision) + 1;
        var events = new List<WatchEvent>();
        using (var keys = Command(_writer, transaction,
                   $"SELECT {ObjectColumns} FROM objects WHERE lease_id = $id ORDER BY kind, namespace, name;"))
        using (var deleteKeys = Command(_writer, transaction, "DELETE FROM objects WHERE lease_id = $id;"))
        using (var deleteLease = Command(_writer, transaction, "DELETE FROM leases WHERE id = $id;"))
        {
            var keysId = keys.Parameters.Add("$id", SqliteType.Integer);
            var deleteKeysId = deleteKeys.Parameters.Add("$id", SqliteType.Integer);
            var deleteLeaseId = deleteLease.Parameters.Add("$id", SqliteType.Integer);
            foreach (var id in leaseIds)
            {
                keysId.Value = id;
                using (var reader = keys.ExecuteReader())
                {
                    while (reader.Read())
                    {
                        events.Add(new WatchEvent(WatchEventType.Delete, ReadObject(reader, 0), revision));
                    }
                }

                deleteKeysId.Value = id;
                deleteKeys.ExecuteNonQuery();
                deleteLeaseId.Value = id;
                deleteLease.ExecuteNonQuery();
            }
        }

        if (events.Count == 0)
        {
            transaction.Commit(); // only lease rows went away; no key changed, so no new revision
            return 0;
        }

        var compacted = AppendEvents(transaction, events, revision);
        transaction.Commit();
        Advance(revision, compacted, events);
        return events.Count;
    }

    private void EnsureLeasesExist(SqliteTransaction transaction, IReadOnlyList<StoreWrite> writes)
    {
        HashSet<long>? checkedIds = null;
        SqliteCommand? command = null;
        try
        {
            foreach (var write in writes)
            {
                if (write is not StorePut { LeaseId: > 0 and var leaseId } || !(checkedIds ??= []).Add(leaseId))
                {
                    continue;
                }

                command ??= Command(_writer, transaction, "SELECT 1 FROM leases WHERE id = $id;");
                command.Parameters.Clear();
                command.Parameters.AddWithValue("$id", leaseId);
                if (command.ExecuteScalar() is null)
                {
                    throw new InvalidOperationException($"lease {leaseId} does not exist (put of {write.Key})");
                }
            }
        }
        finally
        {
            command?.Dispose();
        }
    }

    /// <summary>Appends the commit's events, records the revision and compacts old events. Returns the new
    /// compaction floor.</summary>
    private long AppendEvents(SqliteTransaction transaction, List<WatchEvent> events, long revision)
    {
        using (var insert = Command(_writer, transaction,
                   $"INSERT INTO events ({EventColumns}) VALUES ($rev, $type, $kind, $ns, $name, $json, $create, $mod, $lease);"))
        {
            insert.Parameters.AddWithValue("$rev", revision);
            var type = insert.Parameters.Add("$type", SqliteType.Integer);
            foreach (var change in events)
            {
                type.Value = change.Type == WatchEventType.Put ? 0 : 1;
                SetObject(insert, change.Object);
                insert.ExecuteNonQuery();
            }
        }

        WriteMeta(transaction, "revision", revision);
        var compacted = _compacted;
        var floor = revision - _options.EventRetention;
        if (floor > compacted)
        {
            using var prune = Command(_writer, transaction, "DELETE FROM events WHERE revision <= $floor;");
            prune.Parameters.AddWithValue("$floor", floor);
            prune.ExecuteNonQuery();
            WriteMeta(transaction, "compacted_revision", floor);
            compacted = floor;
        }

        return compacted;
    }

    private void Advance(long revision, long compacted, List<WatchEvent> events)
    {
        _compacted = compacted;
        Volatile.Write(ref _revision, revision);

        Watcher[] watchers;
        lock (_watchersLock)
        {
            watchers = _watchers;
        }

        if (watchers.Length == 0)
        {
            return;
        }

        var batch = events.ToArray();
        foreach (var watcher in watchers)
        {
            if (!watcher.Channel.Writer.TryWrite(batch))
            {
                // Never wait for a slow watcher: cut it off the live feed; it re-reads the table and resubscribes.
                watcher.Overflowed = true;
                watcher.Channel.Writer.TryComplete();
            }
        }
    }

    private HistoryPage? ReadHistoryPage(long after)
    {
        if (_disposed)
        {
            return null;
        }

        SqliteConnection connection;
        try
        {
            connection = OpenReader();
        }
        catch (ObjectDisposedException) when (_disposed)
        {
            return null;
        }

        using (connection)
        {
            using var transaction = connection.BeginTransaction(deferred: true);
            var current = ReadMeta(connection, transaction, "revision");
            var compacted = ReadMeta(connection, transaction, "compacted_revision");
            if (after < compacted)
            {
                throw new StoreCompactedException(after, compacted + 1);
            }

            var upTo = Math.Min(current, after + HistoryPageRevisions);
            var events = new List<WatchEvent>();
            if (upTo > after)
            {
                using var command = Command(connection, transaction,
                    $"SELECT {EventColumns} FROM events WHERE revision > $after AND revision <= $upTo ORDER BY revision, seq;");
                command.Parameters.AddWithValue("$after", after);
                command.Parameters.AddWithValue("$upTo", upTo);
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    var type = reader.GetInt32(1) == 0 ? WatchEventType.Put : WatchEventType.Delete;
                    events.Add(new WatchEvent(type, ReadObject(reader, 2), reader.GetInt64(0)));
                }
            }

            transaction.Commit();
            return new HistoryPage(events, upTo, current);
        }
    }

    private Watcher? Register()
    {
        lock (_watchersLock)
        {
            if (_disposed)
            {
                return null;
            }

            var watcher = new Watcher(_options.WatchBufferCapacity);
            _watchers = [.. _watchers, watcher];
            return watcher;
        }
    }

    private void Unregister(Watcher watcher)
    {
        lock (_watchersLock)
        {
            var index = Array.IndexOf(_watchers, watcher);
            if (index >= 0)
            {
                _watchers = [.. _watchers.AsSpan(0, index), .. _watchers.AsSpan(index + 1)];
            }
        }

        watcher.Channel.Writer.TryComplete();
    }

    private void OnSweepTimer()
    {
        if (_disposed || Interlocked.CompareExchange(ref _sweeping, 1, 0) != 0)
        {
            return;
        }

        _sweepTask = SweepAsync();
    }

    private async Task SweepAsync()
    {
        try
        {
            var deleted = await ExpireLeasesAsync(_disposeCts.Token).ConfigureAwait(false);
            if (deleted > 0)
            {
                SqliteConfigStoreLog.LeaseKeysExpired(_logger, deleted);
            }
        }
        catch (OperationCanceledException) when (_disposeCts.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException) when (_disposed)
        {
        }
        catch (Exception ex)
        {
            SqliteConfigStoreLog.LeaseSweepFailed(_logger, ex);
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }

    private SqliteConnection OpenReader()
    {
        ThrowIfDisposed();
        var connection = new SqliteConnection(_connectionString);
        try
        {
            connection.Open();
            Execute(connection, null, $"PRAGMA busy_timeout = {_busyTimeoutMs};");
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private void WriteMeta(SqliteTransaction transaction, string key, long value)
    {
        using var command = Command(_writer, transaction, "UPDATE meta SET value = $value WHERE key = $key;");
        command.Parameters.AddWithValue("$key", key);
        command.Parameters.AddWithValue("$value", value);
        command.ExecuteNonQuery();
    }

    private static (long Revision, long Compacted) InitializeSchema(SqliteConnection connection)
    {
        using var transaction = connection.BeginTransaction();
        Execute(connection, transaction,
            "CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;");
        var version = Scalar(connection, transaction, "SELECT value FROM meta WHERE key = 'schema_version';");
        if (version is null)
        {
            Execute(connection, transaction, """
                CREATE TABLE objects (
                    kind TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    name TEXT NOT NULL,
                    json TEXT NOT NULL,
                    create_revision INTEGER NOT NULL,
                    mod_revision INTEGER NOT NULL,
                    lease_id INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (kind, namespace, name)
                ) WITHOUT ROWID;
                CREATE INDEX objects_by_lease ON objects (lease_id) WHERE lease_id <> 0;
                CREATE INDEX objects_by_namespace ON objects (namespace);
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY,
                    revision INTEGER NOT NULL,
                    type INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    name TEXT NOT NULL,
                    json TEXT NOT NULL,
                    create_revision INTEGER NOT NULL,
                    mod_revision INTEGER NOT NULL,
                    lease_id INTEGER NOT NULL
                );
                CREATE INDEX events_by_revision ON events (revision);
                CREATE TABLE leases (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    ttl_ms INTEGER NOT NULL,
                    expires_at_ms INTEGER NOT NULL
                );
                CREATE INDEX leases_by_expiry ON leases (expires_at_ms);
                """);
            Execute(connection, transaction,
                $"INSERT INTO meta (key, value) VALUES ('schema_version', {SchemaVersion}), ('revision', 0), ('compacted_revision', 0);");
        }
        else if (Convert.ToInt64(version, System.Globalization.CultureInfo.InvariantCulture) != SchemaVersion)
        {
            throw new NotSupportedException(
                $"config store schema version {version} is not supported (this build reads version {SchemaVersion})");
        }

        var revision = ReadMeta(connection, transaction, "revision");
        var compacted = ReadMeta(connection, transaction, "compacted_revision");
        transaction.Commit();
        return (revision, compacted);
    }

    private static long ReadMeta(SqliteConnection connection, SqliteTransaction? transaction, string key)
    {
        using var command = Command(connection, transaction, "SELECT value FROM meta WHERE key = $key;");
        command.Parameters.AddWithValue("$key", key);
        return command.ExecuteScalar() is { } value
            ? Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"config store meta row '{key}' is missing");
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        return command;
    }

    private static void Execute(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        using var command = Command(connection, transaction, sql);
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        using var command = Command(connection, transaction, sql);
        return command.ExecuteScalar();
    }

    private static void SetKey(SqliteCommand command, ResourceKey key)
    {
        SetParameter(command, "$kind", key.Kind);
        SetParameter(command, "$ns", key.Namespace);
        SetParameter(command, "$name", key.Name);
    }

    private static void SetObject(SqliteCommand command, StoredObject stored)
    {
        SetKey(command, stored.Key);
        SetParameter(command, "$json", stored.Json);
        SetParameter(command, "$create", stored.CreateRevision);
        SetParameter(command, "$mod", stored.ModRevision);
        SetParameter(command, "$lease", stored.LeaseId);
    }

    private static void SetParameter(SqliteCommand command, string name, object value)
    {
        var index = command.Parameters.IndexOf(name);
        if (index >= 0)
        {
            command.Parameters[index].Value = value;
        }
        else
        {
            command.Parameters.AddWithValue(name, value);
        }
    }

    private static StoredObject ReadObject(SqliteDataReader reader, int offset) => new(
        new ResourceKey(reader.GetString(offset), reader.GetString(offset + 1), reader.GetString(offset + 2)),
        reader.GetString(offset + 3),
        reader.GetInt64(offset + 4),
        reader.GetInt64(offset + 5),
        reader.GetInt64(offset + 6));

    private static void ValidateKey(ResourceKey key)
    {
        if (string.IsNullOrEmpty(key.Kind) || key.Namespace is null || string.IsNullOrEmpty(key.Name))
        {
            throw new ArgumentException($"invalid resource key '{key}': kind and name are required, namespace must not be null", nameof(key));
        }
    }

    private static void ValidateWrites(IReadOnlyList<StoreWrite> writes)
    {
        ArgumentNullException.ThrowIfNull(writes);
        var seen = new HashSet<ResourceKey>();
        foreach (var write in writes)
        {
            if (write is null)
            {
                throw new ArgumentException("a commit cannot contain a null write", nameof(writes));
            }

            ValidateKey(write.Key);
            if (!seen.Add(write.Key))
            {
                throw new ArgumentException($"{write.Key} is written more than once in one commit", nameof(writes));
            }

            if (write.ExpectedModRevision is < 0)
            {
                throw new ArgumentException($"{write.Key}: expected mod revision cannot be negative", nameof(writes));
            }

            switch (write)
            {
                case StorePut { Json: null }:
                    throw new ArgumentException($"{write.Key}: put without a document", nameof(writes));
                case StorePut { LeaseId: < 0 }:
                    throw new ArgumentException($"{write.Key}: lease id cannot be negative", nameof(writes));
                case StorePut or StoreDelete:
                    break;
                default:
                    throw new ArgumentException($"{write.Key}: unsupported write type {write.GetType().Name}", nameof(writes));
            }
        }
    }

    private sealed record HistoryPage(List<WatchEvent> Events, long UpTo, long Current);

    private sealed class Watcher(int capacity)
    {
        public Channel<WatchEvent[]> Channel { get; } = System.Threading.Channels.Channel.CreateBounded<WatchEvent[]>(
            new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = false, FullMode = BoundedChannelFullMode.Wait });

        /// <summary>Set by the committer when it dropped this watcher from the live feed.</summary>
        public volatile bool Overflowed;
    }
}

internal static partial class SqliteConfigStoreLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Opened config store {Path} at revision {Revision}")]
    public static partial void Opened(ILogger logger, string path, long revision);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Lease expiry deleted {Count} keys")]
    public static partial void LeaseKeysExpired(ILogger logger, int count);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Lease expiry sweep failed")]
    public static partial void LeaseSweepFailed(ILogger logger, Exception exception);
}
