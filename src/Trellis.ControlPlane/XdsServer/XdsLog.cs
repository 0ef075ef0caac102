using Microsoft.Extensions.Logging;

namespace Trellis.ControlPlane.XdsServer;

internal static partial class XdsLog
{
    [LoggerMessage(1, LogLevel.Information, "xDS {Protocol} stream {StreamId} opened by {Node} ({Peer})")]
    public static partial void StreamOpened(ILogger logger, string protocol, long streamId, string node, string? peer);

    [LoggerMessage(2, LogLevel.Information, "xDS stream {StreamId} from {Node} closed")]
    public static partial void StreamClosed(ILogger logger, long streamId, string node);

    [LoggerMessage(3, LogLevel.Warning, "{Node} rejected {Type} version {Version}: {Error}")]
    public static partial void Nack(ILogger logger, string node, string type, string? version, string error);

    [LoggerMessage(4, LogLevel.Debug, "{Node} sent a stale nonce {Nonce} for {Type}; ignored")]
    public static partial void StaleNonce(ILogger logger, string node, string type, string nonce);

    [LoggerMessage(5, LogLevel.Debug, "sent {Type} version {Version} ({Count} resources) to {Node}")]
    public static partial void Sent(ILogger logger, string type, string version, int count, string node);

    [LoggerMessage(6, LogLevel.Warning, "xDS stream {StreamId} from {Node} failed")]
    public static partial void StreamFailed(ILogger logger, Exception ex, long streamId, string node);
}
