using System.Buffers;
using System.Globalization;
using System.Text;
using Trellis.Proxy.Http.Http2.Hpack;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Hpack.Hpack;

namespace Trellis.Proxy.Tests.Http2.Hpack;

public sealed class HpackRoundTripTests
{
    private static readonly string[] StaticNames =
        [":method", ":path", ":authority", ":scheme", "content-type", "content-length", "accept-encoding", "user-agent", "cookie", "date", "cache-control", "set-cookie", "authorization"];

    private static readonly string[] StaticValues = ["GET", "POST", "/", "/index.html", "http", "https", "gzip, deflate", ""];

    private static readonly string[] CustomNames = ["x-request-id", "x-b3-traceid", "traceparent", "grpc-timeout", "te", "x-a", "x-envoy-attempt-count"];

    private static readonly int[] PeerSizes = [0, 64, 256, 1000, 4096, 8192];

    private static readonly int[] Statuses = [200, 204, 302, 307, 404, 500, 503, 101, 299];

    [Theory]
    [InlineData(4096, 1000, 7541)]
    [InlineData(700, 1000, 9113)]
    public void EncodeThenDecode_RandomHeaderLists_SameListsAndEqualTables(int encoderLimit, int lists, int seed)
    {
        var random = new Random(seed);
        var encoder = new HpackEncoder(encoderLimit);
        var decoder = new HpackDecoder(maxDynamicTableSize: 4096, maxHeaderListSize: 1 << 20);
        var output = new ArrayBufferWriter<byte>();
        var seen = new List<(string, string)>();
        var evictions = 0;
        var largestCount = 0;
        var dynamicIndexed = 0;
        for (var list = 0; list < lists; list++)
        {
            if (random.Next(10) == 0)
            {
                // We announce a new SETTINGS_HEADER_TABLE_SIZE and the peer acknowledges it.
                var size = PeerSizes[random.Next(PeerSizes.Length)];
                encoder.SetPeerMaxTableSize(size);
                decoder.SetMaxDynamicTableSize(size);
            }
            var fields = new List<(string Name, string Value)>();
            output.ResetWrittenCount();
            encoder.BeginBlock(output);
            if (random.Next(3) == 0)
            {
                var status = Statuses[random.Next(Statuses.Length)];
                encoder.WriteStatus(output, status);
                fields.Add((":status", status.ToString(CultureInfo.InvariantCulture)));
            }
            var count = random.Next(16);
            for (var f = 0; f < count; f++)
            {
                var (name, value) = NextField(random, seen);
                seen.Add((name, value));
                var before = output.WrittenCount;
                encoder.WriteHeader(output, Latin1(name), Latin1(value), NextIndexing(random));
                if (output.WrittenCount - before == 1 && output.WrittenSpan[before] > 0x80 + HpackStaticTable.Count)
                {
                    dynamicIndexed++;
                }
                fields.Add((name, value));
            }
            var countBefore = decoder.DynamicTableCount;
            var decoded = Decode(decoder, output.WrittenSpan.ToArray());

            Assert.Equal(fields, Pairs(decoded));
            foreach (var field in decoded)
            {
                Assert.Equal(HpackStaticTable.FindName(Latin1(field.Name)), field.StaticNameIndex);
            }
            Assert.Equal(encoder.DynamicTableSnapshot(), decoder.DynamicTableSnapshot());
            Assert.Equal(encoder.DynamicTableSize, decoder.DynamicTableSize);
            Assert.Equal(encoder.DynamicTableMaxSize, decoder.DynamicTableMaxSize);
            Assert.True(decoder.DynamicTableSize <= decoder.DynamicTableMaxSize);
            if (decoder.DynamicTableCount < countBefore + count)
            {
                evictions++;
            }
            largestCount = Math.Max(largestCount, decoder.DynamicTableCount);
        }
        // The run did exercise what it claims to: eviction, a well-filled table, references into it.
        Assert.True(evictions > lists / 10, $"only {evictions} blocks evicted");
        Assert.True(largestCount >= 10, $"the table never held more than {largestCount} entries");
        Assert.True(dynamicIndexed > lists / 4, $"only {dynamicIndexed} fields were written as dynamic indices");
    }

    [Fact]
    public void EncodeAndDecode_TypicalRequestAfterWarmUp_AllocatesNothing()
    {
        var encoder = new HpackEncoder();
        var decoder = new HpackDecoder();
        var output = new ArrayBufferWriter<byte>(4096);
        var sink = new CountingSink();
        Span<byte> id = stackalloc byte[16];
        Span<byte> path = stackalloc byte[32];
        var failures = 0;
        long allocated = 0;
        for (var round = 0; round < 2; round++)
        {
            // Round 0 warms up (JIT, static tables, the decoder's scratch buffer); round 1 is measured.
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 1000; i++)
            {
                output.ResetWrittenCount();
                encoder.BeginBlock(output);
                encoder.WriteHeader(output, ":method"u8, "GET"u8);
                encoder.WriteHeader(output, ":scheme"u8, "http"u8);
                "/api/items/"u8.CopyTo(path);
                (i % 50).TryFormat(path[11..], out var digits, default, CultureInfo.InvariantCulture);
                encoder.WriteHeader(output, ":path"u8, path[..(11 + digits)]);
                encoder.WriteHeader(output, ":authority"u8, "backend.default.svc.cluster.local:8080"u8);
                encoder.WriteHeader(output, "user-agent"u8, "grpc-dotnet/2.85.0 (.NET 10.0; CLR 10.0; net10.0; linux; x64)"u8);
                encoder.WriteHeader(output, "accept"u8, "application/json"u8);
                (i + (round * 1000)).TryFormat(id, out _, "x16", CultureInfo.InvariantCulture);
                encoder.WriteHeader(output, "x-request-id"u8, id);
                encoder.WriteHeader(output, "authorization"u8, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.signature"u8, HpackIndexing.NeverIndexed);
                if (decoder.Decode(output.WrittenSpan, ref sink) != HpackStatus.Ok)
                {
                    failures++;
                }
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.Equal(0, failures);
        Assert.Equal(2 * 1000 * 8, sink.Fields);
        Assert.Equal(0, allocated);
        // Steady state: x-request-id changes every request, so the table is full and evicting.
        Assert.True(decoder.DynamicTableSize > 4096 - 200, $"table size {decoder.DynamicTableSize}");
    }

    private static (string, string) NextField(Random random, List<(string, string)> seen)
    {
        var kind = random.Next(100);
        if (kind < 25)
        {
            var name = StaticNames[random.Next(StaticNames.Length)];
            return (name, random.Next(2) == 0 ? StaticValues[random.Next(StaticValues.Length)] : Text(random, 1, 30));
        }
        if (kind < 50 && seen.Count > 0)
        {
            // Mostly recent ones, which are likely still in the table.
            return seen[Math.Max(0, seen.Count - 1 - random.Next(Math.Min(seen.Count, 40)))];
        }
        if (kind < 75)
        {
            return (CustomNames[random.Next(CustomNames.Length)], Text(random, 0, 40));
        }
        if (kind < 88)
        {
            return (Text(random, 1, 20, lowercase: true), Bytes(random, 0, 30));
        }
        // Long values: evict most of a table, or are too large to index at all.
        return (CustomNames[random.Next(CustomNames.Length)], random.Next(2) == 0 ? Text(random, 100, 3000) : Bytes(random, 100, 3000));
    }

    private static HpackIndexing NextIndexing(Random random) => random.Next(10) switch
    {
        < 7 => HpackIndexing.Incremental,
        < 9 => HpackIndexing.WithoutIndexing,
        _ => HpackIndexing.NeverIndexed,
    };

    private static string Text(Random random, int min, int max, bool lowercase = false)
    {
        var sb = new StringBuilder();
        var length = random.Next(min, max + 1);
        for (var i = 0; i < length; i++)
        {
            sb.Append(lowercase ? (char)('a' + random.Next(26)) : (char)random.Next(0x20, 0x7f));
        }
        return sb.ToString();
    }

    private static string Bytes(Random random, int min, int max)
    {
        var bytes = new byte[random.Next(min, max + 1)];
        random.NextBytes(bytes);
        return Latin1String(bytes);
    }
}
