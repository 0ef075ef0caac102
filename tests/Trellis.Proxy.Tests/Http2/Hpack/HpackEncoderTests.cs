using System.Buffers;
using Trellis.Proxy.Http.Http2.Hpack;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Hpack.Hpack;

namespace Trellis.Proxy.Tests.Http2.Hpack;

public sealed class HpackEncoderTests
{
    [Fact]
    public void Encode_RfcC4Requests_GivesTheRfcBytesAndTables()
    {
        // Our choices equal the RFC's here: static full matches indexed, :authority and cache-control literal
        // with the static name and indexed, custom-key literal, Huffman everywhere it is shorter.
        var encoder = new HpackEncoder();
        for (var i = 0; i < 3; i++)
        {
            var block = Encode(encoder, RfcExamples.Requests[i]);
            Assert.Equal(ToHex(Hex(RfcExamples.C4[i])), ToHex(block));
            Assert.Equal(RfcExamples.RequestTables[i], encoder.DynamicTableSnapshot());
            Assert.Equal(RfcExamples.RequestTableSizes[i], encoder.DynamicTableSize);
        }
    }

    [Fact]
    public void Encode_RfcC3Requests_HuffmanCodedYetTheSameListsAndTables()
    {
        // C.3 is C.4 without Huffman coding; this encoder Huffman-codes when shorter, so its bytes are C.4's.
        // Decoded by a second decoder, the lists and both tables are the RFC's.
        var encoder = new HpackEncoder();
        var decoder = new HpackDecoder();
        for (var i = 0; i < 3; i++)
        {
            var block = Encode(encoder, RfcExamples.Requests[i]);
            AssertFields(Decode(decoder, block), RfcExamples.Requests[i]);
            Assert.Equal(RfcExamples.RequestTables[i], encoder.DynamicTableSnapshot());
            Assert.Equal(RfcExamples.RequestTables[i], decoder.DynamicTableSnapshot());
        }
    }

    [Fact]
    public void Encode_RfcC6ResponsesWith256ByteTable_GivesTheRfcBytesExceptWhereHuffmanIsNotShorter()
    {
        var encoder = new HpackEncoder(maxDynamicTableSize: 256);
        var decoder = new HpackDecoder(maxDynamicTableSize: 256);
        for (var i = 0; i < 3; i++)
        {
            var output = new ArrayBufferWriter<byte>();
            encoder.BeginBlock(output);
            foreach (var (name, value) in RfcExamples.Responses[i])
            {
                if (name == ":status")
                {
                    encoder.WriteStatus(output, int.Parse(value, System.Globalization.CultureInfo.InvariantCulture));
                }
                else
                {
                    encoder.WriteHeader(output, Latin1(name), Latin1(value));
                }
            }
            var expected = i switch
            {
                // Our table of 256 is smaller than the protocol's initial 4096: the first block announces it.
                0 => "3fe101" + ToHex(Hex(RfcExamples.C6[0])),
                // "307" Huffman-coded is 3 bytes, as long as plain: the RFC codes it, this encoder does not.
                1 => "4803333037c1c0bf",
                _ => ToHex(Hex(RfcExamples.C6[2])),
            };
            Assert.Equal(expected, ToHex(output.WrittenSpan));
            Assert.Equal(RfcExamples.ResponseTables[i], encoder.DynamicTableSnapshot());
            Assert.Equal(RfcExamples.ResponseTableSizes[i], encoder.DynamicTableSize);
            AssertFields(Decode(decoder, output.WrittenSpan.ToArray()), RfcExamples.Responses[i]);
            Assert.Equal(RfcExamples.ResponseTables[i], decoder.DynamicTableSnapshot());
        }
    }

    [Theory]
    [InlineData(200, "88")]
    [InlineData(204, "89")]
    [InlineData(206, "8a")]
    [InlineData(304, "8b")]
    [InlineData(400, "8c")]
    [InlineData(404, "8d")]
    [InlineData(500, "8e")]
    [InlineData(302, "48826402")]
    [InlineData(503, "4803353033")]
    public void WriteStatus_Code_IndexedOrLiteralWithTheStatusName(int status, string hex)
    {
        var encoder = new HpackEncoder();
        var output = new ArrayBufferWriter<byte>();
        encoder.BeginBlock(output);
        encoder.WriteStatus(output, status);
        Assert.Equal(hex, ToHex(output.WrittenSpan));
        AssertFields(Decode(new HpackDecoder(), output.WrittenSpan.ToArray()), (":status", status.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void WriteStatus_SameUncommonStatusTwice_SecondIsIndexedFromTheDynamicTable()
    {
        var encoder = new HpackEncoder();
        var output = new ArrayBufferWriter<byte>();
        encoder.WriteStatus(output, 302);
        output.ResetWrittenCount();
        encoder.WriteStatus(output, 302);
        Assert.Equal("be", ToHex(output.WrittenSpan));
    }

    [Theory]
    [InlineData(99)]
    [InlineData(1000)]
    public void WriteStatus_OutOfRange_Throws(int status) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new HpackEncoder().WriteStatus(new ArrayBufferWriter<byte>(), status));

    [Fact]
    public void WriteHeader_IndexingModes_UseTheirRepresentationAndOnlyIncrementalIndexes()
    {
        var encoder = new HpackEncoder();
        var output = new ArrayBufferWriter<byte>();
        // Static name (authorization, 23) never indexed: 0001 prefix, 4-bit index 15 + 8.
        encoder.WriteHeader(output, "authorization"u8, "secret"u8, HpackIndexing.NeverIndexed);
        Assert.Equal(0x1f, output.WrittenSpan[0]);
        Assert.Equal(0x08, output.WrittenSpan[1]);
        output.ResetWrittenCount();
        // New name without indexing: 0000 0000, then the name.
        encoder.WriteHeader(output, "x-a"u8, "1"u8, HpackIndexing.WithoutIndexing);
        Assert.Equal(0x00, output.WrittenSpan[0]);
        Assert.Equal(0, encoder.DynamicTableCount);
        output.ResetWrittenCount();
        encoder.WriteHeader(output, "x-a"u8, "1"u8);
        Assert.Equal(0x40, output.WrittenSpan[0]);
        Assert.Equal(1, encoder.DynamicTableCount);
        output.ResetWrittenCount();
        // Now indexed; but never-indexed must not refer to the indexed copy: a literal naming entry 62.
        encoder.WriteHeader(output, "x-a"u8, "1"u8);
        Assert.Equal("be", ToHex(output.WrittenSpan));
        output.ResetWrittenCount();
        encoder.WriteHeader(output, "x-a"u8, "1"u8, HpackIndexing.NeverIndexed);
        Assert.Equal("1f2f0131", ToHex(output.WrittenSpan)); // 0001 1111, 62 - 15 = 47, "1"
        output.ResetWrittenCount();
        // A new value for a name in the dynamic table: literal naming entry 62 (6-bit prefix).
        encoder.WriteHeader(output, "x-a"u8, "2"u8);
        Assert.Equal("7e0132", ToHex(output.WrittenSpan));
    }

    [Fact]
    public void WriteHeader_ValueLargerThanHalfTheTable_WrittenWithoutIndexing()
    {
        var encoder = new HpackEncoder();
        var output = new ArrayBufferWriter<byte>();
        encoder.WriteHeader(output, "x-small"u8, "a"u8);
        // 5 + 2019 + 32 = 2056 > 2048: not indexed, the table keeps its entry.
        encoder.WriteHeader(output, "x-big"u8, Latin1(new string('\u00ff', 2019)));
        Assert.Equal([("x-small", "a")], encoder.DynamicTableSnapshot());
        // Exactly half is indexed.
        encoder.WriteHeader(output, "x-big"u8, Latin1(new string('\u00ff', 2011)));
        Assert.Equal(2, encoder.DynamicTableCount);
    }

    [Fact]
    public void WriteHeader_HuffmanNotShorter_WrittenPlain()
    {
        var encoder = new HpackEncoder();
        var output = new ArrayBufferWriter<byte>();
        // Bytes 0x00-0x02 have codes of 13 to 28 bits: plain is shorter.
        encoder.WriteHeader(output, "x"u8, [0, 1, 2], HpackIndexing.WithoutIndexing);
        Assert.Equal("000178" + "03000102", ToHex(output.WrittenSpan)); // 'x' is 7 bits, still one byte: plain
    }

    [Fact]
    public void SetPeerMaxTableSize_Lowered_NextBlockStartsWithTheUpdateAndEvicts()
    {
        var encoder = new HpackEncoder();
        Encode(encoder, RfcExamples.Request3);
        Assert.Equal(2, encoder.DynamicTableCount);
        encoder.SetPeerMaxTableSize(60);
        var block = Encode(encoder, (":method", "GET"));
        Assert.Equal("3f1d82", ToHex(block)); // 31 + 29 = 60
        Assert.Equal([("custom-key", "custom-value")], encoder.DynamicTableSnapshot());
        Assert.Equal(60, encoder.DynamicTableMaxSize);
        // No further update.
        Assert.Equal("82", ToHex(Encode(encoder, (":method", "GET"))));
    }

    [Fact]
    public void SetPeerMaxTableSize_DownThenUpBetweenBlocks_SignalsTheMinimumThenTheFinalSize()
    {
        var encoder = new HpackEncoder();
        Encode(encoder, RfcExamples.Request3);
        encoder.SetPeerMaxTableSize(0);
        encoder.SetPeerMaxTableSize(4096);
        var block = Encode(encoder, (":method", "GET"));
        Assert.Equal("20" + "3fe11f" + "82", ToHex(block)); // 0, then 4096 (31 + 4065)
        Assert.Equal(0, encoder.DynamicTableCount);
        var decoder = new HpackDecoder();
        Decode(decoder, Hex(RfcExamples.C4[0]));
        AssertFields(Decode(decoder, block), (":method", "GET"));
        Assert.Equal(0, decoder.DynamicTableCount);
    }

    [Fact]
    public void SetPeerMaxTableSize_AboveOwnLimit_UsesOwnLimit()
    {
        var encoder = new HpackEncoder(maxDynamicTableSize: 1000);
        Assert.Equal("3fc90782", ToHex(Encode(encoder, (":method", "GET")))); // 1000 = 31 + 969
        encoder.SetPeerMaxTableSize(65536);
        Assert.Equal("82", ToHex(Encode(encoder, (":method", "GET"))));
        Assert.Equal(1000, encoder.DynamicTableMaxSize);
    }

    [Fact]
    public void SetPeerMaxTableSize_Zero_NothingIsIndexed()
    {
        var encoder = new HpackEncoder();
        encoder.SetPeerMaxTableSize(0);
        var block = Encode(encoder, ("x-a", "1"), ("x-a", "1"));
        Assert.Equal("20" + "0003782d610131" + "0003782d610131", ToHex(block)); // both without indexing, plain
        Assert.Equal(0, encoder.DynamicTableCount);
    }
}
