using System.Collections.Concurrent;
using System.Text;
using Envoy.Config.Cluster.V3;
using Envoy.Config.Listener.V3;
using Envoy.Extensions.Filters.Network.HttpConnectionManager.V3;
using Google.Protobuf;

namespace Trellis.Bench.XdsScale;

/// <summary>
/// What a client reads out of received resources, kept cheap because the load generator shares the machine:
/// names come from field 1 of the serialized message (name / cluster_name in all four types), strings are
/// interned, and the EDS name of a cluster and the RDS name of a listener are decoded once per distinct content.
/// </summary>
internal static class Resources
{
    private static readonly ConcurrentDictionary<string, string> Names = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> NameLookup =
        Names.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly ConcurrentDictionary<ByteString, string> EdsNames = new();
    private static readonly ConcurrentDictionary<ByteString, string> RdsNames = new();

    /// <summary>Field 1 (a string) of a serialized message; the serializer writes fields in number order.</summary>
    public static string NameOf(ByteString message)
    {
        var span = message.Span;
        if (span.Length < 2 || span[0] != 0x0A)
        {
            return "";
        }
        int length = 0, shift = 0, i = 1;
        byte b;
        do
        {
            b = span[i++];
            length |= (b & 0x7F) << shift;
            shift += 7;
        }
        while ((b & 0x80) != 0);
        var utf8 = span.Slice(i, length);
        Span<char> chars = length <= 256 ? stackalloc char[length] : new char[length];
        var n = Encoding.UTF8.GetChars(utf8, chars);
        chars = chars[..n];
        if (NameLookup.TryGetValue(chars, out var interned))
        {
            return interned;
        }
        var s = new string(chars);
        return Names.GetOrAdd(s, s);
    }

    /// <summary>The EDS name a cluster asks for: eds_cluster_config.service_name, else the cluster name.</summary>
    public static string EdsNameOf(ByteString cluster) => EdsNames.GetOrAdd(cluster, static bytes =>
    {
        var c = Cluster.Parser.ParseFrom(bytes);
        return Intern(string.IsNullOrEmpty(c.EdsClusterConfig?.ServiceName) ? c.Name : c.EdsClusterConfig.ServiceName);
    });

    /// <summary>The RDS name an api_listener's HttpConnectionManager asks for; "" when routes are inline.</summary>
    public static string RdsNameOf(ByteString listener) => RdsNames.GetOrAdd(listener, static bytes =>
    {
        var l = Listener.Parser.ParseFrom(bytes);
        var hcmAny = l.ApiListener?.ApiListener_;
        if (hcmAny is null || !hcmAny.TryUnpack<HttpConnectionManager>(out var hcm))
        {
            return "";
        }
        return Intern(hcm.Rds?.RouteConfigName ?? "");
    });

    private static string Intern(string s) => Names.GetOrAdd(s, s);
}

/// <summary>
/// What the orchestrator waits for after a change: a resource of one type and name whose content satisfies a
/// predicate. A proxy that receives it records the time right after its ACK has been written.
/// </summary>
internal sealed class Watch(string typeUrl, string name, Func<ByteString, bool> matches)
{
    private readonly ConcurrentDictionary<ByteString, bool> _seen = new();

    public string TypeUrl { get; } = typeUrl;
    public string Name { get; } = name;

    /// <summary>Decodes each distinct content once: every proxy receives the same bytes.</summary>
    public bool Matches(ByteString content) => _seen.GetOrAdd(content, matches);
}
