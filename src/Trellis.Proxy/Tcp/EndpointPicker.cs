using System.Net;
using Trellis.Proxy.Model;

namespace Trellis.Proxy.Tcp;

/// <summary>
/// Round robin over a cluster's usable endpoints: healthy (or unknown) ones of the lowest priority that has any,
/// with endpoint weights honoured by smooth weighted round robin. Lock-free per call except one interlocked step.
/// </summary>
internal sealed class EndpointPicker
{
    private long _next;

    /// <summary>The endpoints a new connection may use, best priority first; empty when none is usable.</summary>
    public static IReadOnlyList<EndpointModel> Usable(ClusterModel cluster)
    {
        var best = int.MaxValue;
        foreach (var e in cluster.Endpoints)
        {
            if (IsUsable(e) && e.Priority < best)
            {
                best = e.Priority;
            }
        }
        if (best == int.MaxValue)
        {
            return [];
        }
        var result = new List<EndpointModel>();
        foreach (var e in cluster.Endpoints)
        {
            if (IsUsable(e) && e.Priority == best)
            {
                result.Add(e);
            }
        }
        return result;
    }

    private static bool IsUsable(EndpointModel e) => e.Health is EndpointHealthKind.Healthy or EndpointHealthKind.Unknown;

    /// <summary>Picks the next endpoint, or null when the cluster has none usable.</summary>
    public IPEndPoint? Pick(ClusterModel cluster)
    {
        var usable = Usable(cluster);
        if (usable.Count == 0)
        {
            return null;
        }
        var total = 0L;
        foreach (var e in usable)
        {
            total += Math.Max(1, e.Weight);
        }
        var ticket = (Interlocked.Increment(ref _next) - 1) % total;
        foreach (var e in usable)
        {
            ticket -= Math.Max(1, e.Weight);
            if (ticket < 0)
            {
                return e.Address;
            }
        }
        return usable[^1].Address;
    }
}
