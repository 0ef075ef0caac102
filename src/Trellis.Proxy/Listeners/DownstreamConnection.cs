using System.Net;
using System.Net.Sockets;
using Trellis.Proxy.Model;

namespace Trellis.Proxy.Listeners;

/// <summary>What protocol detection found on a new connection.</summary>
public enum DetectedProtocol { Tcp, Http1, Http2, Tls }

/// <summary>
/// An accepted connection after protocol detection: the socket, the bytes already read from it (they must be
/// replayed first), the listener it came in on, the model it keeps for its whole life, and the original
/// destination when interception knows it. <see cref="Prefix"/> lives in a pooled buffer that the listener takes
/// back when the handler's task ends: copy it to keep it longer. With <see cref="Tls"/> set, the prefix is empty and
/// the socket only carries the encrypted bytes.
/// </summary>
internal sealed record DownstreamConnection(
    Socket Socket,
    ReadOnlyMemory<byte> Prefix,
    DetectedProtocol Protocol,
    ListenerTarget Target,
    ProxyModel Model,
    IPEndPoint? OriginalDestination)
{
    /// <summary>The decrypted stream when the listener terminated TLS (bytes go through it, not the socket).</summary>
    public Stream? Tls { get; init; }
}

/// <summary>Serves HTTP/2 (and gRPC) connections handed over by the listener after detection.</summary>
internal interface IHttp2Frontend
{
    Task ServeAsync(DownstreamConnection connection, CancellationToken cancellationToken);
}
