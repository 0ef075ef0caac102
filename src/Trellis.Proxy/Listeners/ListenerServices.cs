using Trellis.Proxy.Http;
using Trellis.Proxy.Http.Http1;
using Trellis.Proxy.Model;
using Trellis.Proxy.Policies;

namespace Trellis.Proxy.Listeners;

/// <summary>
/// What every listener of one proxy shares: the per-cluster runtimes (balancers, circuit breakers), the per-route
/// policies, the clock and the random source (both injected so tests decide time and weighted splits), and the
/// data-path settings from the command line.
/// </summary>
internal sealed class ListenerServices
{
    public ListenerServices(ClusterRuntimes clusters, RoutePolicies policies, TimeProvider time, Random random)
    {
        Clusters = clusters;
        Policies = policies;
        Time = time;
        Random = random;
        Pools = new UpstreamPools(time, TimeSpan.FromSeconds(5));
    }

    /// <summary>Production defaults: the system clock and the shared random source.</summary>
    public static ListenerServices CreateDefault() =>
        new(new ClusterRuntimes(TimeProvider.System), new RoutePolicies(TimeProvider.System, Random.Shared.NextDouble), TimeProvider.System, Random.Shared);

    public ClusterRuntimes Clusters { get; }
    public RoutePolicies Policies { get; }
    public TimeProvider Time { get; }
    public Random Random { get; }

    /// <summary>Upstream keep-alive connections of the HTTP/1.1 path, per cluster.</summary>
    public UpstreamPools Pools { get; }

    /// <summary>How long a new connection may stay silent before it is relayed as opaque TCP (--protocol-detection-timeout).</summary>
    public TimeSpan DetectionTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Whether a failed try may be retried: <see cref="RoutePolicies.IsRetriable"/> (the route's retry_on); replaceable
    /// so that tests of the retry flow do not depend on the policy rules.
    /// </summary>
    public Func<RetryPolicyModel, int, int?, ProxyError, bool, bool> IsRetriable { get; init; } = RoutePolicies.IsRetriable;

    /// <summary>A uniform random number for weighted cluster choice.</summary>
    public uint Roll() => (uint)Random.NextInt64(0, 1L << 32);
}
