namespace Trellis.Proxy.Policies;

/// <summary>
/// Endpoints a balancer chooses among (the usable ones of a priority, or of one locality in it), with what the
/// balancers need precomputed: cumulative weights for weighted sampling and, on first round-robin use, the smooth
/// weighted round-robin order. Positions are indexes into <see cref="Members"/>; members are endpoint indexes
/// into the <see cref="EndpointSet"/>. Every pick is lock-free and allocation-free.
/// </summary>
internal sealed class EndpointGroup
{
    /// <summary>Round-robin orders longer than this are built from proportionally scaled-down weights.</summary>
    public const int MaxScheduleLength = 4096;

    private readonly long[]? _start;
    private readonly int[] _weights;
    private int[]? _schedule;
    private long _next;

    public EndpointGroup(int[] members, int[] setWeights, long firstTicket)
    {
        Members = members;
        _weights = new int[members.Length];
        var total = 0L;
        var equal = true;
        for (var i = 0; i < members.Length; i++)
        {
            _weights[i] = setWeights[members[i]];
            total += _weights[i];
            equal &= _weights[i] == _weights[0];
        }
        TotalWeight = total;
        if (!equal)
        {
            _start = new long[members.Length];
            var sum = 0L;
            for (var i = 0; i < members.Length; i++)
            {
                _start[i] = sum;
                sum += _weights[i];
            }
        }
        _next = firstTicket;
    }

    public int[] Members { get; }

    public long TotalWeight { get; }

    public int Count => Members.Length;

    /// <summary>The position of endpoint <paramref name="index"/> in this group, or -1.</summary>
    public int PositionOf(int index)
    {
        if (index < 0)
        {
            return -1;
        }
        for (var i = 0; i < Members.Length; i++)
        {
            if (Members[i] == index)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>
    /// A position drawn with probability proportional to weight, never <paramref name="excludeA"/> or
    /// <paramref name="excludeB"/> (-1 = none); -1 when nothing else is left.
    /// </summary>
    public int Sample(Func<double> random, int excludeA, int excludeB)
    {
        if (excludeA == excludeB)
        {
            excludeB = -1;
        }
        var lo = Math.Min(excludeA, excludeB);
        var hi = Math.Max(excludeA, excludeB);
        if (lo < 0)
        {
            lo = hi;
            hi = -1;
        }
        if (_start is null)
        {
            var left = Members.Length - (lo >= 0 ? 1 : 0) - (hi >= 0 ? 1 : 0);
            if (left <= 0)
            {
                return -1;
            }
            var r = Math.Min((int)(random() * left), left - 1);
            // Map the r-th remaining position back over the excluded ones (lo < hi).
            if (lo >= 0 && r >= lo)
            {
                r++;
            }
            if (hi >= 0 && r >= hi)
            {
                r++;
            }
            return r;
        }
        var range = TotalWeight - (lo >= 0 ? _weights[lo] : 0) - (hi >= 0 ? _weights[hi] : 0);
        if (range <= 0)
        {
            return -1;
        }
        var x = Math.Min((long)(random() * range), range - 1);
        // Same over the weight line: skip the excluded members' intervals.
        if (lo >= 0 && x >= _start[lo])
        {
            x += _weights[lo];
        }
        if (hi >= 0 && x >= _start[hi])
        {
            x += _weights[hi];
        }
        var found = Array.BinarySearch(_start, x);
        return found >= 0 ? found : ~found - 1;
    }

    /// <summary>
    /// The next position in smooth weighted round-robin order (weights 5,1,1 give a a b a c a a: spread out, not
    /// bunched), skipping <paramref name="avoid"/> when the group has another member.
    /// </summary>
    public int NextRoundRobin(int avoid)
    {
        var schedule = _schedule ?? BuildSchedule();
        var length = schedule?.Length ?? Members.Length;
        var position = 0;
        for (var attempt = 0; attempt < length; attempt++)
        {
            var ticket = (ulong)(Interlocked.Increment(ref _next) - 1) % (ulong)length;
            position = schedule is null ? (int)ticket : schedule[ticket];
            if (position != avoid || Members.Length == 1)
            {
                return position;
            }
        }
        return position;
    }

    private int[]? BuildSchedule()
    {
        if (_start is null)
        {
            return null; // equal weights: plain rotation
        }
        var weights = _weights;
        var total = TotalWeight;
        if (total > MaxScheduleLength)
        {
            weights = new int[_weights.Length];
            total = 0;
            for (var i = 0; i < weights.Length; i++)
            {
                weights[i] = (int)Math.Max(1, _weights[i] * MaxScheduleLength / TotalWeight);
                total += weights[i];
            }
        }
        // Smooth weighted round robin: each step every member gains its weight, the richest is chosen and pays the
        // total. Over one cycle of `total` steps each member is chosen exactly `weight` times.
        var schedule = new int[total];
        var current = new long[weights.Length];
        for (var step = 0; step < schedule.Length; step++)
        {
            var best = 0;
            for (var i = 0; i < weights.Length; i++)
            {
                current[i] += weights[i];
                if (current[i] > current[best])
                {
                    best = i;
                }
            }
            current[best] -= total;
            schedule[step] = best;
        }
        return Interlocked.CompareExchange(ref _schedule, schedule, null) ?? schedule;
    }
}
