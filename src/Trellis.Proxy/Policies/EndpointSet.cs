using System.Collections.Concurrent;
using System.Net;
using Trellis.Proxy.Model;

namespace Trellis.Proxy.Policies;

/// <summary>
/// What is precomputed for one endpoint list of a cluster: the endpoints with their long-lived stats, an address
/// index, and (for ring hash) one hash ring per priority. Built once per endpoint list object; a new list with the
/// same endpoints is adopted without rebuilding (see <see cref="ClusterRuntime"/>).
/// </summary>
internal sealed class EndpointSet
{
    private readonly Dictionary<IPEndPoint, int> _index;
    private HashRing[]? _rings;

    public EndpointSet(IReadOnlyList<EndpointModel> source, ConcurrentDictionary<IPEndPoint, EndpointStats> stats)
    {
        Source = source;
        var n = source.Count;
        Endpoints = new EndpointModel[n];
        Stats = new EndpointStats[n];
        Weights = new int[n];
        Healthy = new bool[n];
        _index = new Dictionary<IPEndPoint, int>(n);
        var priorities = new List<int>();
        for (var i = 0; i < n; i++)
        {
            var e = source[i];
            Endpoints[i] = e;
            Stats[i] = stats.GetOrAdd(e.Address, static a => new EndpointStats(a));
            Weights[i] = Math.Max(1, e.Weight);
            Healthy[i] = e.Health is EndpointHealthKind.Healthy or EndpointHealthKind.Unknown;
            _index.TryAdd(e.Address, i);
            if (!priorities.Contains(e.Priority))
            {
                priorities.Add(e.Priority);
            }
        }
        priorities.Sort();
        Priorities = [.. priorities];
    }

    /// <summary>The list this set was built from (or an equal list adopted later).</summary>
    public volatile IReadOnlyList<EndpointModel> Source;

    public EndpointModel[] Endpoints { get; }

    public EndpointStats[] Stats { get; }

    /// <summary>Endpoint weights, at least 1.</summary>
    public int[] Weights { get; }

    /// <summary>Healthy or Unknown per the control plane (ejection is separate).</summary>
    public bool[] Healthy { get; }

    /// <summary>Distinct priorities, ascending.</summary>
    public int[] Priorities { get; }

    public int Count => Endpoints.Length;

    public int IndexOf(IPEndPoint? address) => address is not null && _index.TryGetValue(address, out var i) ? i : -1;

    public bool Contains(EndpointStats stats)
    {
        var i = IndexOf(stats.Address);
        return i >= 0 && ReferenceEquals(Stats[i], stats);
    }

    /// <summary>Whether <paramref name="other"/> holds the same endpoints in the same order (value equality).</summary>
    public bool SameEndpoints(IReadOnlyList<EndpointModel> other)
    {
        if (other.Count != Endpoints.Length)
        {
            return false;
        }
        for (var i = 0; i < Endpoints.Length; i++)
        {
            if (!Endpoints[i].Equals(other[i]))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The hash ring of the healthy endpoints of one priority, built on first use and kept with this set.</summary>
    public HashRing Ring(int priority)
    {
        var rings = _rings;
        if (rings is null)
        {
            rings = new HashRing[Priorities.Length];
            for (var p = 0; p < Priorities.Length; p++)
            {
                rings[p] = HashRing.Build(this, Priorities[p]);
            }
            rings = Interlocked.CompareExchange(ref _rings, rings, null) ?? rings;
        }
        return rings[Array.IndexOf(Priorities, priority)];
    }
}

/// <summary>
/// A consistent-hash ring: each endpoint owns a number of points proportional to its weight; a key belongs to the
/// owner of the first point at or after its hash. Point positions depend only on the endpoint's address and the
/// point's number, so removing an endpoint moves only the keys it owned (as long as the points per unit of weight
/// stay the same, which holds while the total weight stays within the same power-of-two band).
/// </summary>
internal sealed class HashRing
{
    /// <summary>Target size of one ring (12 bytes a point); exceeded only when the total weight is larger.</summary>
    public const int MaxPoints = 1 << 14;

    private readonly ulong[] _points;
    private readonly int[] _owners;

    private HashRing(ulong[] points, int[] owners)
    {
        _points = points;
        _owners = owners;
    }

    public int Length => _points.Length;

    public static HashRing Build(EndpointSet set, int priority)
    {
        var totalWeight = 0L;
        for (var i = 0; i < set.Count; i++)
        {
            if (set.Healthy[i] && set.Endpoints[i].Priority == priority)
            {
                totalWeight += set.Weights[i];
            }
        }
        if (totalWeight == 0)
        {
            return new HashRing([], []);
        }
        // Points per unit of weight: the largest power of two that keeps the ring within MaxPoints (at least 1).
        var perWeight = (int)Math.Max(1, System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)(MaxPoints / totalWeight + 1)) >> 1);
        var count = (int)Math.Min(totalWeight * perWeight, int.MaxValue / 2);
        var points = new ulong[count];
        var owners = new int[count];
        var k = 0;
        for (var i = 0; i < set.Count && k < count; i++)
        {
            if (!set.Healthy[i] || set.Endpoints[i].Priority != priority)
            {
                continue;
            }
            var seed = AddressHash(set.Endpoints[i].Address);
            var replicas = set.Weights[i] * perWeight;
            for (var r = 0; r < replicas && k < count; r++, k++)
            {
                points[k] = Mix((ulong)r * 0x9E3779B97F4A7C15UL + seed);
                owners[k] = i;
            }
        }
        Array.Sort(points, owners);
        return new HashRing(points, owners);
    }

    /// <summary>
    /// The owner of <paramref name="key"/> (already mixed) among endpoints with <paramref name="usable"/> set,
    /// walking clockwise past unusable ones and past <paramref name="avoid"/> when another usable owner exists;
    /// -1 when none is usable.
    /// </summary>
    public int Find(ulong key, bool[] usable, int avoid)
    {
        var n = _points.Length;
        if (n == 0)
        {
            return -1;
        }
        var start = Array.BinarySearch(_points, key);
        if (start < 0)
        {
            start = ~start;
        }
        var fallback = -1;
        for (var step = 0; step < n; step++)
        {
            var owner = _owners[(start + step) % n];
            if (!usable[owner])
            {
                continue;
            }
            if (owner != avoid)
            {
                return owner;
            }
            fallback = owner;
        }
        return fallback;
    }

    /// <summary>FNV-1a over the address bytes and port: stable across processes and runs.</summary>
    public static ulong AddressHash(IPEndPoint address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.Address.TryWriteBytes(bytes, out var written);
        var h = 0xcbf29ce484222325UL;
        for (var i = 0; i < written; i++)
        {
            h = (h ^ bytes[i]) * 0x100000001b3UL;
        }
        h = (h ^ (byte)(address.Port >> 8)) * 0x100000001b3UL;
        h = (h ^ (byte)address.Port) * 0x100000001b3UL;
        return h;
    }

    /// <summary>The splitmix64 finalizer: spreads any input (also a weak caller hash) over the whole ring.</summary>
    public static ulong Mix(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9UL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebUL;
        return x ^ (x >> 31);
    }
}
