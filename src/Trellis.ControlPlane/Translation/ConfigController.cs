using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Trellis.Api;
using Trellis.Api.Resources;
using Trellis.ControlPlane.Discovery;
using Trellis.ControlPlane.Store;
using Trellis.ControlPlane.XdsServer;

namespace Trellis.ControlPlane.Translation;

/// <summary>
/// Keeps an in-memory copy of the store (through list + watch), and rebuilds and publishes the snapshot when
/// it changes. Changes within the debounce window coalesce into one build and one push; a registration's
/// heartbeat deadline schedules a build for the moment its health changes.
/// </summary>
internal sealed partial class ConfigController(
    IConfigStore store, SnapshotCache cache, TimeProvider time, ControlPlaneOptions options, ILogger<ConfigController> logger) : BackgroundService
{
    public const string RegistrationKind = "Registration";

    private readonly Lock _gate = new();

    /// <summary>Held for a whole build (read inputs, translate, publish); always taken before <see cref="_gate"/>.</summary>
    private readonly Lock _buildGate = new();
    private readonly Dictionary<ResourceKey, Resource> _resources = [];
    private readonly Dictionary<ResourceKey, Registration> _registrations = [];
    private ITimer? _debounce;
    private ITimer? _healthTimer;
    private long _sequence;
    private volatile IReadOnlyDictionary<string, TranslationStatus> _statuses = new Dictionary<string, TranslationStatus>();
    private readonly TaskCompletionSource _firstBuild = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private volatile TaskCompletionSource _appliedChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _appliedRevision;

    /// <summary>The store revision reflected in the last published snapshot.</summary>
    public long AppliedRevision => Interlocked.Read(ref _appliedRevision);

    /// <summary>Waits until translation has processed <paramref name="revision"/> (or the timeout passes).</summary>
    public async Task<bool> WaitForRevisionAsync(long revision, TimeSpan timeout, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        while (AppliedRevision < revision)
        {
            var changed = _appliedChanged.Task;
            if (AppliedRevision >= revision)
            {
                break;
            }
            try
            {
                await changed.WaitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return false;
            }
        }
        return true;
    }

    private long _seenRevision;

    /// <summary>The last store revision the watch delivered.</summary>
    public long SeenRevision
    {
        get { lock (_gate) { return _seenRevision; } }
    }

    /// <summary>Completes after the first snapshot is published.</summary>
    public Task FirstBuild => _firstBuild.Task;

    public IReadOnlyDictionary<string, TranslationStatus> Statuses => _statuses;

    /// <summary>The typed resources as last read from the store.</summary>
    public IReadOnlyList<Resource> Resources
    {
        get { lock (_gate) { return _resources.Values.ToList(); } }
    }

    public IReadOnlyList<Registration> Registrations
    {
        get { lock (_gate) { return _registrations.Values.ToList(); } }
    }

    /// <summary>The inputs translation would use now (also used by the services API).</summary>
    public MeshInputs CurrentInputs()
    {
        lock (_gate)
        {
            var all = _resources.Values.ToList();
            return new MeshInputs(
                all.OfType<Api.Resources.Service>().ToList(), all.OfType<WorkloadEntry>().ToList(), all.OfType<HttpRoute>().ToList(),
                all.OfType<GrpcRoute>().ToList(), all.OfType<TcpRoute>().ToList(), all.OfType<TrafficPolicy>().ToList(),
                all.OfType<MeshConfig>().FirstOrDefault(), _registrations.Values.ToList(), options.ClusterName, time.GetUtcNow())
            {
                FaultInjections = all.OfType<FaultInjection>().ToList(),
                RateLimits = all.OfType<RateLimit>().ToList(),
            };
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var list = await store.ListAsync(ct: stoppingToken).ConfigureAwait(false);
                lock (_gate)
                {
                    _resources.Clear();
                    _registrations.Clear();
                    foreach (var o in list.Objects)
                    {
                        Load(o);
                    }
                    _seenRevision = list.Revision;
                }
                Rebuild();
                await foreach (var ev in store.WatchAsync(list.Revision, stoppingToken).ConfigureAwait(false))
                {
                    lock (_gate)
                    {
                        if (ev.Type == WatchEventType.Put)
                        {
                            Load(ev.Object);
                        }
                        else
                        {
                            _resources.Remove(ev.Object.Key);
                            _registrations.Remove(ev.Object.Key);
                        }
                        _seenRevision = ev.Revision;
                    }
                    ScheduleRebuild();
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (StoreCompactedException ex)
            {
                Log.Relisting(logger, ex.Message);
            }
            catch (Exception ex)
            {
                Log.WatchFailed(logger, ex);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private void Load(StoredObject o)
    {
        try
        {
            if (o.Key.Kind == RegistrationKind)
            {
                _registrations[o.Key] = JsonSerializer.Deserialize<Registration>(o.Json, RegistrationJson.Options)!;
            }
            else
            {
                var r = ResourceJson.Deserialize(o.Json);
                _resources[o.Key] = r with { Metadata = r.Metadata with { ResourceVersion = o.ModRevision } };
            }
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            Log.BadObject(logger, o.Key.ToString(), ex.Message);
        }
    }

    /// <summary>Coalesces changes: the first change starts the window, the build runs when it ends.</summary>
    private void ScheduleRebuild()
    {
        if (options.Debounce <= TimeSpan.Zero)
        {
            Rebuild();
            return;
        }
        lock (_gate)
        {
            _debounce ??= time.CreateTimer(_ =>
            {
                lock (_gate)
                {
                    _debounce?.Dispose();
                    _debounce = null;
                }
                Rebuild();
            }, null, options.Debounce, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// Translates the current state and publishes the snapshot. Safe to call from any thread: builds run one at a
    /// time, so a build that read older inputs can never publish after (and over) one that read newer inputs.
    /// </summary>
    internal void Rebuild()
    {
        lock (_buildGate)
        {
            RebuildLocked();
        }
    }

    private void RebuildLocked()
    {
        MeshInputs inputs;
        long revision;
        lock (_gate)
        {
            inputs = CurrentInputs();
            revision = _seenRevision;
        }
        try
        {
            var result = MeshTranslator.Translate(inputs, Interlocked.Increment(ref _sequence));
            var problems = SnapshotConsistency.Check(result.Snapshot);
            if (problems.Count > 0)
            {
                // Never publish a snapshot with dangling names: proxies keep the last good one.
                Log.Inconsistent(logger, string.Join("; ", problems));
                return;
            }
            var previous = cache.Current;
            _statuses = result.Statuses;
            Interlocked.Exchange(ref _appliedRevision, revision);
            Interlocked.Exchange(ref _appliedChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            if (previous.Version != result.Snapshot.Version || !cache.HasPublished)
            {
                cache.Publish(result.Snapshot);
                Log.Published(logger, result.Snapshot.Sequence, result.Snapshot.Version, revision);
            }
            _firstBuild.TrySetResult();
        }
        catch (Exception ex)
        {
            Log.TranslationFailed(logger, ex);
        }
        finally
        {
            ScheduleHealthCheck(inputs);
        }
    }

    /// <summary>Arms a build for when the next registration misses its heartbeat deadline.</summary>
    private void ScheduleHealthCheck(MeshInputs inputs)
    {
        var now = inputs.Now;
        var next = inputs.Registrations.Select(r => r.LastHeartbeat + r.Ttl).Where(t => t > now).DefaultIfEmpty(DateTimeOffset.MaxValue).Min();
        lock (_gate)
        {
            _healthTimer?.Dispose();
            _healthTimer = next == DateTimeOffset.MaxValue ? null
                : time.CreateTimer(_ => Rebuild(), null, next - now + TimeSpan.FromMilliseconds(1), Timeout.InfiniteTimeSpan);
        }
    }

    public override void Dispose()
    {
        lock (_gate)
        {
            _debounce?.Dispose();
            _healthTimer?.Dispose();
        }
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "published snapshot {Sequence} version {Version} (store revision {Revision})")]
        public static partial void Published(ILogger logger, long sequence, string version, long revision);

        [LoggerMessage(2, LogLevel.Error, "translation produced an inconsistent snapshot; keeping the last good one: {Problems}")]
        public static partial void Inconsistent(ILogger logger, string problems);

        [LoggerMessage(3, LogLevel.Error, "translation failed; keeping the last good snapshot")]
        public static partial void TranslationFailed(ILogger logger, Exception ex);

        [LoggerMessage(4, LogLevel.Warning, "store watch fell behind ({Message}); reading the store again")]
        public static partial void Relisting(ILogger logger, string message);

        [LoggerMessage(5, LogLevel.Error, "store watch failed; retrying in 1 s")]
        public static partial void WatchFailed(ILogger logger, Exception ex);

        [LoggerMessage(6, LogLevel.Error, "stored object {Key} cannot be read and is skipped: {Error}")]
        public static partial void BadObject(ILogger logger, string key, string error);
    }
}

/// <summary>JSON shape of stored registrations.</summary>
internal static class RegistrationJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web);
}
