using System.IO.Pipelines;

namespace Trellis.Proxy.Security;

/// <summary>
/// Pipes over a TLS stream, for the engines that read and write pipes (plaintext connections use
/// <see cref="Tcp.SocketReader"/> and <see cref="Tcp.SocketWriter"/> on the socket instead). A TLS record carries at
/// most 16 KiB, so reads take a whole record at a time. The stream is left open: its owner closes it.
/// </summary>
internal static class TlsPipes
{
    private static readonly StreamPipeReaderOptions ReaderOptions = new(bufferSize: 16 * 1024, minimumReadSize: 4096, leaveOpen: true);
    private static readonly StreamPipeWriterOptions WriterOptions = new(minimumBufferSize: 4096, leaveOpen: true);

    public static PipeReader Reader(Stream tls) => PipeReader.Create(tls, ReaderOptions);

    public static PipeWriter Writer(Stream tls) => PipeWriter.Create(tls, WriterOptions);
}
