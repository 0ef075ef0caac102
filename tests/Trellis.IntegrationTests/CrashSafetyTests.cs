using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Testing;
using Xunit;

namespace Trellis.IntegrationTests;

/// <summary>kill -9 of the control plane during applies: nothing acknowledged is lost, nothing is half-written.</summary>
public sealed class CrashSafetyTests
{
    private static string Services(string prefix, int count)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            sb.Append($"apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {{name: {prefix}-{i}}}\nspec: {{selector: {{app: {prefix}-{i}}}, ports: [{{name: http, port: 8080}}]}}\n---\n");
        }
        return sb.ToString();
    }

    [Fact]
    public async Task KillDuringLargeApply_LosesNothingAcknowledged_AndLeavesNoHalfBatch()
    {
        var data = TestPaths.NewTempDir();
        var grpc = $"127.0.0.1:{TestControlPlane.FreePort()}";
        var http = $"127.0.0.1:{TestControlPlane.FreePort()}";
        var acknowledged = new List<string>();
        const int batch = 3000;

        for (var round = 0; round < 3; round++)
        {
            await using var cp = await TrellisProcess.StartControlPlaneAsync(data, grpc, http);
            using var client = new HttpClient { BaseAddress = new Uri($"http://{http}/"), Timeout = TimeSpan.FromSeconds(60) };

            // A few small applies that are acknowledged before the crash.
            for (var i = 0; i < 3; i++)
            {
                var prefix = $"ack-{round}-{i}";
                using var ok = await client.PostAsJsonAsync("api/v1/apply", new { files = new[] { new { name = prefix + ".yaml", content = Services(prefix, 5) } } });
                Assert.True(ok.IsSuccessStatusCode, await ok.Content.ReadAsStringAsync());
                acknowledged.Add(prefix);
            }

            // A large apply in flight when the process is killed, at a different moment each round: as soon as the
            // request has been sent; when the store starts writing to its log; when it has written to it twice.
            var big = $"big-{round}";
            var wal = new FileInfo(Path.Combine(data, "trellis.db-wal"));
            DateTime WalWritten()
            {
                wal.Refresh();
                return wal.Exists ? wal.LastWriteTimeUtc : DateTime.MinValue;
            }
            var before = WalWritten();
            using var content = new SignallingContent(JsonContent.Create(new { files = new[] { new { name = big + ".yaml", content = Services(big, batch) } } }));
            var inFlight = client.PostAsync("api/v1/apply", content);
            await content.Sent.WaitAsync(TimeSpan.FromSeconds(30));
            for (var writes = 0; writes < round; writes++)
            {
                await Eventually.WaitAsync(() => WalWritten() != before || inFlight.IsCompleted, "the store to write the batch", TimeSpan.FromSeconds(30));
                before = WalWritten();
            }
            await cp.KillAsync();
            try
            {
                using var r = await inFlight;
                if (r.IsSuccessStatusCode)
                {
                    acknowledged.Add(big);
                }
            }
            catch (HttpRequestException)
            {
                // Killed before it answered: the batch may or may not have committed, but never in part.
            }
        }

        await using var after = await TrellisProcess.StartControlPlaneAsync(data, grpc, http);
        using var c = new HttpClient { BaseAddress = new Uri($"http://{http}/") };
        var items = JsonNode.Parse(await c.GetStringAsync("api/v1/resources/services"))!["items"]!.AsArray()
            .Select(i => i!["metadata"]!["name"]!.GetValue<string>()).ToList();
        foreach (var prefix in acknowledged)
        {
            var expected = prefix.StartsWith("big", StringComparison.Ordinal) ? batch : 5;
            Assert.Equal(expected, items.Count(n => n.StartsWith(prefix + "-", StringComparison.Ordinal)));
        }
        for (var round = 0; round < 3; round++)
        {
            var count = items.Count(n => n.StartsWith($"big-{round}-", StringComparison.Ordinal));
            Assert.True(count is 0 or batch, $"round {round}: {count} of {batch} services of one apply survived; an apply must be all or nothing");
        }
    }
}

/// <summary>Request content that says when it has been written to the connection in full.</summary>
internal sealed class SignallingContent(HttpContent inner) : HttpContent
{
    private readonly TaskCompletionSource _sent = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Sent => _sent.Task;

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        await inner.CopyToAsync(stream);
        await stream.FlushAsync();
        _sent.TrySetResult();
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
