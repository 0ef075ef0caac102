namespace Trellis.Proxy.Policies;

/// <summary>
/// Which endpoints a pick may use right now, derived from an <see cref="EndpointSet"/> and the ejection state, and
/// rebuilt only when either changes (never per pick):
/// <list type="bullet">
/// <item>usable = healthy or unknown per the control plane and not ejected by outlier detection;</item>
/// <item>priority failover: only the lowest priority that has a usable endpoint serves;</item>
/// <item>panic: when no endpoint is usable but some are healthy (every healthy one is ejected), the lowest
/// priority with healthy endpoints serves with all of them, ejections ignored (Envoy's panic threshold at its
/// extreme: better to try ejected endpoints than to fail every request);</item>
/// <item>localities: when the serving priority spans several localities (region/zone) and any has a locality
/// weight, a locality is chosen first by its weight scaled by its usable fraction (times 1.4, capped at 1, as
/// Envoy's overprovisioning factor), then an endpoint in it. A locality of weight 0 then gets no traffic.</item>
/// </list>
/// </summary>
internal sealed class PickView
{
    private const double OverprovisioningFactor = 1.4;

    private PickView(EndpointSet set, int version)
    {
        Set = set;
        Version = version;
        Usable = new bool[set.Count];
    }

    public EndpointSet Set { get; }

    /// <summary>The runtime's ejection version this view was built at.</summary>
    public int Version { get; }

    /// <summary>Per endpoint index: may be picked.</summary>
    public bool[] Usable { get; }

    /// <summary>The usable endpoints of the serving priority; null when none.</summary>
    public EndpointGroup? All { get; private set; }

    public int Priority { get; private set; }

    public bool Panic { get; private set; }

    /// <summary>Per locality with traffic: its usable endpoints; null when locality weighting is off.</summary>
    public EndpointGroup[]? Localities { get; private set; }

    /// <summary>Cumulative effective locality weights, parallel to <see cref="Localities"/>.</summary>
    public double[]? LocalityCumulative { get; private set; }

    public static PickView Build(EndpointSet set, int version, bool ejectionEnabled, Func<double> random)
    {
        var view = new PickView(set, version);
        var priority = LowestPriority(set, ejectionEnabled);
        if (priority is null)
        {
            priority = LowestPriority(set, ejectionEnabled: false);
            if (priority is null)
            {
                return view;
            }
            view.Panic = true;
            ejectionEnabled = false;
        }
        view.Priority = priority.Value;
        var members = new List<int>();
        for (var i = 0; i < set.Count; i++)
        {
            if (set.Endpoints[i].Priority == priority && IsUsable(set, i, ejectionEnabled))
            {
                view.Usable[i] = true;
                members.Add(i);
            }
        }
        view.All = new EndpointGroup([.. members], set.Weights, FirstTicket(random, members.Count));
        view.BuildLocalities(priority.Value, ejectionEnabled, random);
        return view;
    }

    private static bool IsUsable(EndpointSet set, int i, bool ejectionEnabled) =>
        set.Healthy[i] && !(ejectionEnabled && set.Stats[i].Ejected);

    private static int? LowestPriority(EndpointSet set, bool ejectionEnabled)
    {
        int? best = null;
        for (var i = 0; i < set.Count; i++)
        {
            var p = set.Endpoints[i].Priority;
            if ((best is null || p < best) && IsUsable(set, i, ejectionEnabled))
            {
                best = p;
            }
        }
        return best;
    }

    private static long FirstTicket(Func<double> random, int count) => (long)(random() * Math.Max(1, count));

    private void BuildLocalities(int priority, bool ejectionEnabled, Func<double> random)
    {
        // Localities of the serving priority, in order of first appearance: (region, zone, weight, total, usable members).
        var keys = new List<(string Region, string Zone, int Weight)>();
        var totals = new List<int>();
        var usable = new List<List<int>>();
        var anyWeight = false;
        for (var i = 0; i < Set.Count; i++)
        {
            var e = Set.Endpoints[i];
            if (e.Priority != priority)
            {
                continue;
            }
            var k = 0;
            while (k < keys.Count && !(keys[k].Region == e.Region && keys[k].Zone == e.Zone))
            {
                k++;
            }
            if (k == keys.Count)
            {
                keys.Add((e.Region, e.Zone, Math.Max(0, e.LocalityWeight)));
                totals.Add(0);
                usable.Add([]);
            }
            anyWeight |= e.LocalityWeight > 0;
            totals[k]++;
            if (IsUsable(Set, i, ejectionEnabled))
            {
                usable[k].Add(i);
            }
        }
        if (keys.Count < 2 || !anyWeight)
        {
            return;
        }
        var groups = new List<EndpointGroup>();
        var cumulative = new List<double>();
        var sum = 0.0;
        for (var k = 0; k < keys.Count; k++)
        {
            if (usable[k].Count == 0 || keys[k].Weight == 0)
            {
                continue;
            }
            var healthyShare = Math.Min(1.0, OverprovisioningFactor * usable[k].Count / totals[k]);
            sum += keys[k].Weight * healthyShare;
            groups.Add(new EndpointGroup([.. usable[k]], Set.Weights, FirstTicket(random, usable[k].Count)));
            cumulative.Add(sum);
        }
        if (groups.Count == 0)
        {
            return; // every weighted locality is down: fall back to all usable endpoints of the priority
        }
        Localities = [.. groups];
        LocalityCumulative = [.. cumulative];
    }

    /// <summary>A locality drawn by effective weight (only when <see cref="Localities"/> is set).</summary>
    public EndpointGroup PickLocality(Func<double> random)
    {
        var cumulative = LocalityCumulative!;
        var x = random() * cumulative[^1];
        for (var k = 0; k < cumulative.Length - 1; k++)
        {
            if (x < cumulative[k])
            {
                return Localities![k];
            }
        }
        return Localities![^1];
    }
}
