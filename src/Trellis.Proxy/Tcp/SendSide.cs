using System.Net.Security;
using System.Net.Sockets;

namespace Trellis.Proxy.Tcp;

/// <summary>
/// The sending half of a connection, to pass a half-close on: a socket, or a TLS stream over it (which first sends
/// its close_notify alert, then the socket's FIN).
/// </summary>
internal readonly struct SendSide(Socket socket, SslStream? tls = null)
{
    public async ValueTask ShutdownAsync()
    {
        try
        {
            if (tls is not null)
            {
                await tls.ShutdownAsync().ConfigureAwait(false);
            }
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }
}
