using System.Net;

namespace Trellis.Proxy.Policies;

/// <summary>
/// What the proxy has learnt about one endpoint address, kept while the address stays in the cluster (model swaps
/// that keep it keep this object): tries in flight, peak-EWMA latency, consecutive failures and ejection state.
/// Counters are interlocked; the EWMA has its own tiny lock; ejection fields are written only under the owning
/// runtime's lock and read anywhere.
/// </summary>
internal sealed class EndpointStats(IPEndPoint address)
{
    /// <summary>Decay time constant of the latency EWMA: an observation's weight falls to 1/e after this long.</summary>
    public const double EwmaTauSeconds = 10;

    private readonly Lock _ewmaLock = new();
    private int _outstanding;
    private int _consecutive5xx;
    private int _consecutiveGateway;
    private double _ewmaMs;
    private long _ewmaStamp;
    private volatile bool _hasEwma;

    public IPEndPoint Address { get; } = address;

    public int Outstanding => Volatile.Read(ref _outstanding);

    public int Consecutive5xx => Volatile.Read(ref _consecutive5xx);

    public int ConsecutiveGatewayErrors => Volatile.Read(ref _consecutiveGateway);

    public bool HasLatency => _hasEwma;

    // Outlier detection state, written under ClusterRuntime's lock.
    internal volatile bool Ejected;
    internal long EjectedUntil;
    internal long UnejectedAt;
    internal int EjectionMultiplier;
    internal int TimesEjected;

    public void AttemptStarted() => Interlocked.Increment(ref _outstanding);

    public void AttemptEnded()
    {
        if (Interlocked.Decrement(ref _outstanding) < 0)
        {
            // An end without a start (the caller's mistake): never let the count stay negative.
            Interlocked.Increment(ref _outstanding);
        }
    }

    /// <summary>
    /// Counts a try's outcome: a 5xx or no response (status 0) extends the 5xx run; 502, 503, 504 and no response
    /// extend the gateway-error run, another 5xx ends it; anything else ends both. Returns both runs.
    /// </summary>
    public (int FiveXx, int Gateway) RecordStatus(int status)
    {
        if (status == 0 || status is >= 500 and <= 599)
        {
            var fiveXx = Interlocked.Increment(ref _consecutive5xx);
            if (status is 0 or 502 or 503 or 504)
            {
                return (fiveXx, Interlocked.Increment(ref _consecutiveGateway));
            }
            Volatile.Write(ref _consecutiveGateway, 0);
            return (fiveXx, 0);
        }
        ResetFailures();
        return (0, 0);
    }

    public void ResetFailures()
    {
        Volatile.Write(ref _consecutive5xx, 0);
        Volatile.Write(ref _consecutiveGateway, 0);
    }

    /// <summary>
    /// Peak EWMA: a latency above the current average replaces it at once (slowness is noticed on the first slow
    /// answer); a lower one is blended in with a weight that grows with the time since the last observation.
    /// </summary>
    public void ObserveLatency(double ms, long now, long frequency)
    {
        lock (_ewmaLock)
        {
            if (!_hasEwma || ms > _ewmaMs)
            {
                _ewmaMs = ms;
            }
            else
            {
                var keep = Math.Exp(-Math.Max(0, now - _ewmaStamp) / (double)frequency / EwmaTauSeconds);
                _ewmaMs = (_ewmaMs * keep) + (ms * (1 - keep));
            }
            _ewmaStamp = now;
            _hasEwma = true;
        }
    }

    /// <summary>
    /// The latency estimate at <paramref name="now"/>: the EWMA decayed toward zero for the time without
    /// observations (an endpoint avoided for being slow is tried again after a while), or
    /// <paramref name="neutral"/> when nothing was observed yet.
    /// </summary>
    public double LatencyMs(long now, long frequency, double neutral)
    {
        if (!_hasEwma)
        {
            return neutral;
        }
        var ewma = Volatile.Read(ref _ewmaMs);
        var idle = now - Volatile.Read(ref _ewmaStamp);
        return idle <= 0 ? ewma : ewma * Math.Exp(-idle / (double)frequency / EwmaTauSeconds);
    }
}
