using System.Net.Security;
using System.Net.Sockets;

namespace Trellis.Proxy.Tcp;

/// <summary>
/// The sending direction of one connection, to be ended on its own (a half-close): over TLS a close_notify alert
/// first, then the TCP FIN. The other direction stays open.
/// </summary>
internal readonly record struct SendSide(Socket Socket, SslStream? Tls = null)
{
    public async ValueTask EndAsync()
    {
        if (Tls is { } tls)
        {
            try
            {
                await tls.ShutdownAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // The stream already failed or closed: the FIN below still tells the peer.
            }
        }
        try
        {
            Socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }
}
