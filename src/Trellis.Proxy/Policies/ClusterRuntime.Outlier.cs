using Trellis.Proxy.Model;
using Trellis.Proxy.Telemetry;

namespace Trellis.Proxy.Policies;

/// <summary>
/// Outlier detection (passive health checking), after Envoy's consecutive-5xx and consecutive-gateway-failure
/// detectors:
/// <list type="bullet">
/// <item>an endpoint is ejected when its run of failures reaches the threshold (inline, on the try's end);</item>
/// <item>max_ejection_percent caps ejections as Envoy does today: an ejection happens only while
/// 100 x (ejected + 1) / endpoints &lt;= max_ejection_percent, counted over all endpoints of the cluster (so 10%
/// of fewer than 10 endpoints ejects none, and 100% may eject all: then picks enter panic, see
/// <see cref="PickView"/>). A refused ejection restarts the run, so the next full run asks again;</item>
/// <item>an ejection lasts BaseEjectionTime x the endpoint's ejection multiplier, which grows by one per
/// ejection and is capped so that the time never exceeds max(300 s, BaseEjectionTime);</item>
/// <item>an ejected endpoint returns when its time is up, checked lazily on every pick (one timestamp read, only
/// while something is ejected) and on each Interval tick of a TimeProvider timer; its failure runs restart;</item>
/// <item>the multiplier decays like Envoy's: on each Interval tick an endpoint that is not ejected and has been
/// back for at least one Interval loses one step. So a second ejection soon after the first lasts twice as long,
/// one after a few quiet intervals lasts the base time again.</item>
/// </list>
/// </summary>
internal sealed partial class ClusterRuntime
{
    private void SweepIfDue(EndpointSet set)
    {
        if (Volatile.Read(ref _ejectedCount) == 0 || Time.GetTimestamp() < Volatile.Read(ref _nextExpiry))
        {
            return;
        }
        lock (_lock)
        {
            if (ReferenceEquals(set, _set))
            {
                SweepLocked(set, Time.GetTimestamp());
            }
        }
    }

    private void TryEject(EndpointStats stats, OutlierDetectionModel od, int count, string reason)
    {
        lock (_lock)
        {
            var set = _set;
            if (stats.Ejected || _model.OutlierDetection is null || set is null || !set.Contains(stats))
            {
                return;
            }
            var now = Time.GetTimestamp();
            SweepLocked(set, now);
            if (100L * (_ejectedCount + 1) > (long)od.MaxEjectionPercent * set.Count)
            {
                stats.ResetFailures();
                if (_log is not null)
                {
                    LogEjectionCapped(_log, Name, stats.Address, count, reason, od.MaxEjectionPercent, _ejectedCount, set.Count);
                }
                return;
            }
            var baseTime = od.BaseEjectionTime;
            var longest = baseTime > MaxEjectionTime ? baseTime : MaxEjectionTime;
            if (baseTime * stats.EjectionMultiplier < longest)
            {
                stats.EjectionMultiplier++;
            }
            var duration = baseTime * stats.EjectionMultiplier;
            if (duration > longest)
            {
                duration = longest;
            }
            stats.EjectedUntil = now + ToTimestamp(duration);
            stats.TimesEjected++;
            stats.Ejected = true;
            Volatile.Write(ref _ejectedCount, _ejectedCount + 1);
            Volatile.Write(ref _nextExpiry, Math.Min(_nextExpiry, stats.EjectedUntil));
            Interlocked.Increment(ref _version);
            PolicyMetrics.AddCluster(PolicyMetrics.OutlierEjections, Name);
            if (_log is not null)
            {
                LogEjected(_log, Name, stats.Address, duration.TotalSeconds, count, reason, stats.TimesEjected);
            }
        }
    }

    /// <summary>Returns the endpoints whose ejection is over and recomputes the next expiry. Under the lock.</summary>
    private void SweepLocked(EndpointSet set, long now)
    {
        if (_ejectedCount == 0)
        {
            return;
        }
        var changed = false;
        var ejected = 0;
        var next = long.MaxValue;
        foreach (var s in set.Stats)
        {
            if (!s.Ejected)
            {
                continue;
            }
            if (s.EjectedUntil <= now)
            {
                s.Ejected = false;
                s.UnejectedAt = now;
                s.ResetFailures();
                changed = true;
                if (_log is not null)
                {
                    LogReturned(_log, Name, s.Address);
                }
            }
            else
            {
                ejected++;
                next = Math.Min(next, s.EjectedUntil);
            }
        }
        Volatile.Write(ref _ejectedCount, ejected);
        Volatile.Write(ref _nextExpiry, next);
        if (changed)
        {
            Interlocked.Increment(ref _version);
        }
    }

    /// <summary>After the endpoint list changed: count the ejected endpoints that are still in it. Under the lock.</summary>
    private void RecountEjectionsLocked(EndpointSet set)
    {
        var ejected = 0;
        var next = long.MaxValue;
        foreach (var s in set.Stats)
        {
            if (s.Ejected)
            {
                ejected++;
                next = Math.Min(next, s.EjectedUntil);
            }
        }
        Volatile.Write(ref _ejectedCount, ejected);
        Volatile.Write(ref _nextExpiry, next);
    }

    /// <summary>Outlier detection was turned off: every endpoint returns. Under the lock.</summary>
    private void ClearEjectionsLocked()
    {
        var now = Time.GetTimestamp();
        foreach (var s in _stats.Values)
        {
            if (s.Ejected)
            {
                s.Ejected = false;
                s.UnejectedAt = now;
            }
            s.EjectionMultiplier = 0;
            s.ResetFailures();
        }
        Volatile.Write(ref _ejectedCount, 0);
        Volatile.Write(ref _nextExpiry, long.MaxValue);
    }

    /// <summary>Starts, changes or stops the Interval timer. Under the lock.</summary>
    private void ConfigureOutlierTimer(OutlierDetectionModel? od)
    {
        if (od is null || od.Interval <= TimeSpan.Zero)
        {
            _timer?.Dispose();
            _timer = null;
            return;
        }
        if (_timer is null)
        {
            _timer = Time.CreateTimer(static s => ((ClusterRuntime)s!).OnInterval(), this, od.Interval, od.Interval);
        }
        else if (_timerInterval != od.Interval)
        {
            _timer.Change(od.Interval, od.Interval);
        }
        _timerInterval = od.Interval;
    }

    /// <summary>The Interval tick: return expired ejections, then decay the multipliers of endpoints back for a full interval.</summary>
    internal void OnInterval()
    {
        lock (_lock)
        {
            var set = _set;
            var od = _model.OutlierDetection;
            if (set is null || od is null)
            {
                return;
            }
            var now = Time.GetTimestamp();
            SweepLocked(set, now);
            var quiet = ToTimestamp(od.Interval);
            foreach (var s in set.Stats)
            {
                if (!s.Ejected && s.EjectionMultiplier > 0 && now - s.UnejectedAt >= quiet)
                {
                    s.EjectionMultiplier--;
                }
            }
        }
    }

    private long ToTimestamp(TimeSpan span) => (long)Math.Min(span.TotalSeconds * Time.TimestampFrequency, long.MaxValue / 4);
}
