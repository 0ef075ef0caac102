using Trellis.Proxy.Http.Http2.Client;
using Trellis.Proxy.Http.Http2.Server;
using Trellis.Proxy.Tests.Http2.Client;
using Xunit;
using Xunit.Abstractions;

namespace Trellis.Proxy.Tests.Http2.Server;

/// <summary>
/// What one GET with a small response body costs the server in allocated bytes: our own HTTP/2 client sends
/// sequential requests on one connection; the handler answers from pre-built fields and body. Measured across the
/// process (client included), so it runs alone and subtracts the client's cost measured the same way.
/// </summary>
[Collection(nameof(AllocationMeasurements))]
public sealed class Http2ServerAllocationTests(ITestOutputHelper output)
{
    private const int Requests = 2000;
    private static readonly Http2HeaderField[] ResponseFields = [new("content-type", "text/plain")];
    private static readonly byte[] Body = "hello"u8.ToArray();

    [Fact]
    public async Task Get_SequentialRequests_AllocatesLittlePerRequest()
    {
        await using var server = new TestH2Server(new PrebuiltHandler());
        await using var connection = await H2Client.ConnectAsync(server.Port);
        var request = H2Client.Request("GET", server.Port, "/small");
        var buffer = new byte[64];

        for (var i = 0; i < 300; i++)
        {
            await GetAsync(connection, request, buffer);
        }
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < Requests; i++)
        {
            await GetAsync(connection, request, buffer);
        }
        var total = (GC.GetTotalAllocatedBytes(precise: true) - before) / Requests;
        output.WriteLine($"{total} bytes allocated per request, client and server together");

        // Debug builds make every async state machine a class (about 2 kB for the client alone, see
        // Http2ClientAllocationTests); a buffer or a connection-sized object per request would break the bound.
        Assert.InRange(total, 0, 8192);
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

    private sealed class PrebuiltHandler : IHttp2ServerHandler
    {
        public async ValueTask HandleAsync(Http2ServerStream stream)
        {
            await stream.WriteResponseHeadAsync(200, ResponseFields, endStream: false);
            await stream.WriteDataAsync(Body, endStream: true);
        }
    }
}
