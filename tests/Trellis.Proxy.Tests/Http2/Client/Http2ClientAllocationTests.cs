using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;
using Xunit.Abstractions;

namespace Trellis.Proxy.Tests.Http2.Client;

[CollectionDefinition(nameof(AllocationMeasurements), DisableParallelization = true)]
public sealed class AllocationMeasurements;

/// <summary>
/// What one request costs the client in allocated bytes, against a responder that allocates nothing per request
/// (it answers every request HEADERS with pre-built ":status 200" HEADERS and a 2-byte DATA). It runs alone, as the
/// process-wide allocation counter also sees other threads.
/// </summary>
[Collection(nameof(AllocationMeasurements))]
public sealed class Http2ClientAllocationTests(ITestOutputHelper output)
{
    private const int Requests = 2000;

    [Fact]
    public async Task Get_SequentialRequests_AllocatesLittlePerRequest()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var responder = RespondAsync(listener);
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        await using var connection = await H2Client.ConnectAsync(port);
        var request = H2Client.Request("GET", port, "/");
        var buffer = new byte[64];

        for (var i = 0; i < 200; i++)
        {
            await GetAsync(connection, request, buffer);
        }
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < Requests; i++)
        {
            await GetAsync(connection, request, buffer);
        }
        var perRequest = (GC.GetTotalAllocatedBytes(precise: true) - before) / Requests;
        output.WriteLine($"{perRequest} bytes allocated per request");

        Assert.Equal(0, connection.ActiveStreams);
        // Release: about 400 bytes (the stream, its two signals, the response head, thread-pool work items). Debug
        // builds make every async state machine a class, about 2 kB. A buffer or a connection-sized object per
        // request would break the bound.
        Assert.InRange(perRequest, 0, 4096);
        await connection.DisposeAsync();
        await responder.WaitAsync(H2Client.Bounded());
    }

    private static async Task GetAsync(Http2ClientConnection connection, Http2HeaderField[] request, byte[] buffer)
    {
        using var stream = await connection.OpenStreamAsync(request, endStream: true);
        var head = await stream.ReadResponseHeadAsync();
        if (head.Status != 200)
        {
            throw new InvalidOperationException($"status {head.Status}");
        }
        while (await stream.ReadDataAsync(buffer) > 0)
        {
        }
    }

    /// <summary>Answers each HEADERS frame; ignores the request's field block (the answer needs no HPACK state).</summary>
    private static async Task RespondAsync(TcpListener listener)
    {
        using var socket = await listener.AcceptSocketAsync();
        var input = new byte[64 * 1024];
        var outgoing = new ArrayBufferWriter<byte>(64 * 1024);
        var reader = new Http2FrameReader();
        var start = 0;
        var end = 0;
        var prefaceSeen = false;
        Http2FrameWriter.Settings(outgoing, []);
        await socket.SendAsync(outgoing.WrittenMemory, SocketFlags.None);
        while (true)
        {
            if (start == end)
            {
                start = end = 0;
            }
            var n = await socket.ReceiveAsync(input.AsMemory(end), SocketFlags.None);
            if (n == 0)
            {
                return;
            }
            end += n;
            var buffer = new ReadOnlySequence<byte>(input, start, end - start);
            if (!prefaceSeen)
            {
                if (Http2Preface.TryConsume(ref buffer) != Http2PrefaceStatus.Matched)
                {
                    continue;
                }
                prefaceSeen = true;
            }
            outgoing.ResetWrittenCount();
            while (reader.TryReadFrame(ref buffer, Http2Limits.DefaultMaxFrameSize, out var frame, out _) == Http2ReadStatus.Frame)
            {
                if (frame.Type == Http2FrameType.Headers)
                {
                    Http2FrameWriter.Headers(outgoing, frame.StreamId, [0x88], endStream: false, Http2Limits.DefaultMaxFrameSize);
                    Http2FrameWriter.Data(outgoing, frame.StreamId, "ok"u8, endStream: true, Http2Limits.DefaultMaxFrameSize);
                }
            }
            start = (int)buffer.Start.GetInteger();
            // Compact so a partial frame has room to complete.
            Buffer.BlockCopy(input, start, input, 0, end - start);
            end -= start;
            start = 0;
            if (outgoing.WrittenCount > 0)
            {
                await socket.SendAsync(outgoing.WrittenMemory, SocketFlags.None);
            }
        }
    }
}

