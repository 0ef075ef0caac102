using Trellis.Proxy.Http.Http2.Hpack;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Hpack.Hpack;

namespace Trellis.Proxy.Tests.Http2.Hpack;

/// <summary>The RFC 7541 Appendix C examples, as hex dumps and the states they lead to.</summary>
internal static class RfcExamples
{
    public static readonly (string, string)[] Request1 =
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];

    public static readonly (string, string)[] Request2 =
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")];

    public static readonly (string, string)[] Request3 =
        [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")];

    public static readonly (string, string)[][] Requests = [Request1, Request2, Request3];

    public static readonly (string, string)[][] RequestTables =
    [
        [(":authority", "www.example.com")],
        [("cache-control", "no-cache"), (":authority", "www.example.com")],
        [("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")],
    ];

    public static readonly int[] RequestTableSizes = [57, 110, 164];

    public static readonly string[] C3 =
    [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ];

    public static readonly string[] C4 =
    [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];

    private const string Cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

    public static readonly (string, string)[][] Responses =
    [
        [(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
        [(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
        [(":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"), ("location", "https://www.example.com"), ("content-encoding", "gzip"), ("set-cookie", Cookie)],
    ];

    public static readonly (string, string)[][] ResponseTables =
    [
        [("location", "https://www.example.com"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("cache-control", "private"), (":status", "302")],
        [(":status", "307"), ("location", "https://www.example.com"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("cache-control", "private")],
        [("set-cookie", Cookie), ("content-encoding", "gzip"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT")],
    ];

    public static readonly int[] ResponseTableSizes = [222, 222, 215];

    public static readonly string[] C5 =
    [
        """
        4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
        2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
        6c65 2e63 6f6d
        """,
        "4803 3330 37c1 c0bf",
        """
        88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
        54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
        5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
        3d31
        """,
    ];

    public static readonly string[] C6 =
    [
        """
        4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
        2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3
        """,
        "4883 640e ffc1 c0bf",
        """
        88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
        77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
        9587 3160 65c0 03ed 4ee5 b106 3d50 07
        """,
    ];
}

public sealed class HpackDecoderTests
{
    [Fact]
    public void Decode_RfcC21LiteralWithIndexing_AddsToTheTable()
    {
        var decoder = new HpackDecoder();
        var fields = Decode(decoder, Hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
        AssertFields(fields, ("custom-key", "custom-header"));
        Assert.Equal([("custom-key", "custom-header")], decoder.DynamicTableSnapshot());
        Assert.Equal(55, decoder.DynamicTableSize);
    }

    [Fact]
    public void Decode_RfcC22LiteralWithoutIndexing_LeavesTheTableEmpty()
    {
        var decoder = new HpackDecoder();
        var fields = Decode(decoder, Hex("040c 2f73 616d 706c 652f 7061 7468"));
        AssertFields(fields, (":path", "/sample/path"));
        Assert.Equal(HpackStaticTable.Path, fields[0].StaticNameIndex);
        Assert.Equal(0, decoder.DynamicTableCount);
        Assert.Equal(0, decoder.DynamicTableSize);
    }

    [Fact]
    public void Decode_RfcC23LiteralNeverIndexed_LeavesTheTableEmpty()
    {
        var decoder = new HpackDecoder();
        var fields = Decode(decoder, Hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
        AssertFields(fields, ("password", "secret"));
        Assert.Equal(0, fields[0].StaticNameIndex);
        Assert.Equal(0, decoder.DynamicTableCount);
    }

    [Fact]
    public void Decode_RfcC24IndexedField_GivesTheStaticEntry()
    {
        var decoder = new HpackDecoder();
        var fields = Decode(decoder, Hex("82"));
        AssertFields(fields, (":method", "GET"));
        Assert.Equal(HpackStaticTable.Method, fields[0].StaticNameIndex);
        Assert.Equal(0, decoder.DynamicTableCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decode_RfcC3AndC4RequestsOnOneDecoder_GivesTheRfcListsAndTables(bool huffman)
    {
        var decoder = new HpackDecoder();
        var blocks = huffman ? RfcExamples.C4 : RfcExamples.C3;
        for (var i = 0; i < 3; i++)
        {
            var fields = Decode(decoder, Hex(blocks[i]));
            AssertFields(fields, RfcExamples.Requests[i]);
            Assert.Equal(RfcExamples.RequestTables[i], decoder.DynamicTableSnapshot());
            Assert.Equal(RfcExamples.RequestTableSizes[i], decoder.DynamicTableSize);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decode_RfcC5AndC6ResponsesWith256ByteTable_EvictAsTheRfcShows(bool huffman)
    {
        var decoder = new HpackDecoder(maxDynamicTableSize: 256);
        var blocks = huffman ? RfcExamples.C6 : RfcExamples.C5;
        for (var i = 0; i < 3; i++)
        {
            var fields = Decode(decoder, Hex(blocks[i]));
            AssertFields(fields, RfcExamples.Responses[i]);
            Assert.Equal(RfcExamples.ResponseTables[i], decoder.DynamicTableSnapshot());
            Assert.Equal(RfcExamples.ResponseTableSizes[i], decoder.DynamicTableSize);
        }
    }

    [Fact]
    public void Decode_StaticNameIndex_IsTheLowestStaticIndexWhateverTheRepresentation()
    {
        var decoder = new HpackDecoder();
        // :status 404 indexed (13); :authority literal with static name, indexed (41); the same from the dynamic
        // table (be); content-length as a literal name (00 0e ...); x-custom literal name.
        var block = new List<byte> { 0x8d, 0x41, 0x01, (byte)'a', 0xbe, 0x00, 0x0e };
        block.AddRange(Latin1("content-length"));
        block.AddRange([0x01, (byte)'5', 0x00, 0x01, (byte)'x', 0x00]);
        var fields = Decode(decoder, [.. block]);
        Assert.Equal([8, 1, 1, 28, 0], fields.Select(f => f.StaticNameIndex));
        AssertFields(fields, (":status", "404"), (":authority", "a"), (":authority", "a"), ("content-length", "5"), ("x", ""));
    }

    [Fact]
    public void Decode_NeverIndexedLiteral_ReportedDuringTheCallback()
    {
        // :method GET (indexed), password: secret (C.2.3, never indexed), :path /sample/path (C.2.2, without indexing).
        var decoder = new HpackDecoder();
        byte[] block = [0x82, .. Hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), .. Hex("040c 2f73 616d 706c 652f 7061 7468")];
        var sink = new NeverIndexedSink(decoder);
        Assert.Equal(HpackStatus.Ok, decoder.Decode(block, ref sink));
        Assert.Equal([false, true, false], sink.Flags);
    }

    private readonly struct NeverIndexedSink(HpackDecoder decoder) : IHpackSink
    {
        public List<bool> Flags { get; } = [];

        public void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => Flags.Add(decoder.FieldIsNeverIndexed);
    }

    [Fact]
    public void Decode_IndexZero_CompressionErrorNamingTheByte()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, [0x82, 0x80], HpackStatus.CompressionError);
        Assert.Equal("index 0 at byte 1 (not a valid table index)", decoder.LastError);
    }

    [Fact]
    public void Decode_IndexBeyondTheTables_CompressionErrorNamingIndexTablesAndByte()
    {
        var decoder = new HpackDecoder();
        // One dynamic entry (x: y), then :method GET, then index 70.
        Decode(decoder, [0x40, 0x01, (byte)'x', 0x01, (byte)'y', 0x82, 0xc6], HpackStatus.CompressionError);
        Assert.Equal("index 70 is beyond the static and dynamic tables (62 entries) at byte 6", decoder.LastError);

        var fresh = new HpackDecoder();
        Decode(fresh, [0xbe], HpackStatus.CompressionError);
        Assert.Equal("index 62 is beyond the static and dynamic tables (61 entries) at byte 0", fresh.LastError);
    }

    [Fact]
    public void Decode_LiteralNameIndexBeyondTheTables_CompressionError()
    {
        var decoder = new HpackDecoder();
        // Literal with incremental indexing, name index 63 (6-bit prefix full, then 0), value "v".
        Decode(decoder, [0x7f, 0x00, 0x01, (byte)'v'], HpackStatus.CompressionError);
        Assert.Equal("index 63 is beyond the static and dynamic tables (61 entries) at byte 0", decoder.LastError);
    }

    [Theory]
    [InlineData(new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f }, "integer at byte 0 overflows (more than 2147483647)")]
    [InlineData(new byte[] { 0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }, "integer at byte 0 has more than 5 continuation bytes")]
    [InlineData(new byte[] { 0xff, 0x80 }, "integer at byte 0 is cut off by the end of the block")]
    [InlineData(new byte[] { 0x82, 0x0f }, "integer at byte 1 is cut off by the end of the block")]
    public void Decode_BadInteger_CompressionError(byte[] block, string error)
    {
        var decoder = new HpackDecoder();
        Decode(decoder, block, HpackStatus.CompressionError);
        Assert.Equal(error, decoder.LastError);
    }

    [Fact]
    public void Decode_LargestIntegerThatFits_IsAccepted()
    {
        // Index int.MaxValue: a valid integer (5 continuation bytes), but no such entry.
        var block = new byte[6];
        var n = HpackEncoder.WriteInteger(block, int.MaxValue, 7, 0x80);
        Assert.Equal(6, n);
        var decoder = new HpackDecoder();
        Decode(decoder, block, HpackStatus.CompressionError);
        Assert.Equal("index 2147483647 is beyond the static and dynamic tables (61 entries) at byte 0", decoder.LastError);
    }

    [Fact]
    public void Decode_StringLongerThanTheBlock_CompressionError()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, [0x40, 0x0a, (byte)'c', (byte)'u', (byte)'s'], HpackStatus.CompressionError);
        Assert.Equal("string of length 10 at byte 1 runs past the end of the block (3 bytes left)", decoder.LastError);

        Decode(new HpackDecoder(), [0x40, 0x01, (byte)'x'], HpackStatus.CompressionError);
    }

    [Theory]
    // :path (name index 4, without indexing), value Huffman-coded, 5 bytes: 'a' then EOS then padding.
    [InlineData("00011" + "111111111111111111111111111111" + "11111", "contains the EOS symbol (at byte 2)")]
    [InlineData("00011" + "11111111111", "ends with more than 7 bits of padding (at byte 2)")]
    [InlineData("00011" + "000", "ends with padding that is not all ones (at byte 2)")]
    public void Decode_BadHuffmanString_CompressionError(string bits, string error)
    {
        var value = Bits(bits);
        byte[] block = [0x04, (byte)(0x80 | value.Length), .. value];
        var decoder = new HpackDecoder();
        Decode(decoder, block, HpackStatus.CompressionError);
        Assert.Equal("Huffman-coded string at byte 1 " + error, decoder.LastError);
    }

    [Fact]
    public void Decode_SizeUpdateAboveTheLimit_CompressionError()
    {
        var decoder = new HpackDecoder(maxDynamicTableSize: 4096);
        var block = new byte[6];
        var n = HpackEncoder.WriteInteger(block, 4097, 5, 0x20);
        Decode(decoder, block[..n], HpackStatus.CompressionError);
        Assert.Equal("dynamic table size update to 4097 exceeds the limit 4096 at byte 0", decoder.LastError);
    }

    [Fact]
    public void Decode_SizeUpdateAfterAField_CompressionError()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, [0x82, 0x3f, 0x01], HpackStatus.CompressionError);
        Assert.Equal("dynamic table size update after a header field at byte 1 (allowed only at the start of a block)", decoder.LastError);
    }

    [Fact]
    public void Decode_SizeUpdatesAtTheStart_EvictAndApply()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, Hex(RfcExamples.C3[0]));
        Decode(decoder, Hex(RfcExamples.C3[1]));
        Assert.Equal(2, decoder.DynamicTableCount);
        // Two updates in one block (to 0, then to 100), then a field that is added (43 bytes fits in 100).
        var fields = Decode(decoder, [0x20, 0x3f, 0x45, 0x41, 0x01, (byte)'a']);
        AssertFields(fields, (":authority", "a"));
        Assert.Equal(100, decoder.DynamicTableMaxSize);
        Assert.Equal([(":authority", "a")], decoder.DynamicTableSnapshot());
    }

    [Fact]
    public void SetMaxDynamicTableSize_Lowered_NextBlockMustStartWithAnUpdate()
    {
        var decoder = new HpackDecoder();
        decoder.SetMaxDynamicTableSize(100);
        Decode(decoder, [0x82], HpackStatus.CompressionError);
        Assert.StartsWith("the block does not start with a dynamic table size update", decoder.LastError);

        var next = new HpackDecoder();
        next.SetMaxDynamicTableSize(100);
        Decode(next, [0x3f, 0x46, 0x82], HpackStatus.CompressionError); // 101: above the new limit
        Assert.Equal("dynamic table size update to 101 exceeds the limit 100 at byte 0", next.LastError);

        var good = new HpackDecoder();
        good.SetMaxDynamicTableSize(100);
        AssertFields(Decode(good, [0x3f, 0x45, 0x82]), (":method", "GET"));
        AssertFields(Decode(good, [0x82]), (":method", "GET")); // only the first block after the change
    }

    [Fact]
    public void SetMaxDynamicTableSize_Raised_UpdateUpToTheNewLimitGrowsTheTable()
    {
        var decoder = new HpackDecoder(maxDynamicTableSize: 256);
        decoder.SetMaxDynamicTableSize(8192);
        // A 3000-byte value: larger than the old table, fits the new one.
        var value = new string('v', 3000);
        var encoder = new HpackEncoder(8192);
        encoder.SetPeerMaxTableSize(8192);
        var block = Encode(encoder, ("x-big", value));
        Assert.Equal([0x3f, 0xe1, 0x3f], block[..3]); // size update to 8192
        var fields = Decode(decoder, block);
        AssertFields(fields, ("x-big", value));
        Assert.Equal(8192, decoder.DynamicTableMaxSize);
        Assert.Equal(3000 + 5 + 32, decoder.DynamicTableSize);
    }

    [Fact]
    public void Decode_EntryLargerThanTheTable_EmptiesIt()
    {
        var decoder = new HpackDecoder(maxDynamicTableSize: 256);
        Decode(decoder, Hex(RfcExamples.C5[0]));
        Assert.Equal(4, decoder.DynamicTableCount);
        // x: 224 bytes = 1 + 224 + 32 = 257 > 256.
        byte[] block = [0x40, 0x01, (byte)'x', 0x7f, 224 - 127, .. Enumerable.Repeat((byte)'v', 224)];
        var fields = Decode(decoder, block);
        Assert.Equal(224, fields[0].Value.Length);
        Assert.Equal(0, decoder.DynamicTableCount);
        Assert.Equal(0, decoder.DynamicTableSize);

        // Exactly 256 fits, alone.
        Decode(decoder, Hex(RfcExamples.C5[0]));
        byte[] fits = [0x40, 0x01, (byte)'x', 0x7f, 223 - 127, .. Enumerable.Repeat((byte)'v', 223)];
        Decode(decoder, fits);
        Assert.Equal(1, decoder.DynamicTableCount);
        Assert.Equal(256, decoder.DynamicTableSize);
    }

    [Fact]
    public void Decode_LiteralNamedByAnEntryItEvicts_KeepsTheName()
    {
        // Table of 100: one entry "custom-name: a" (44). A new field named by index 62 with a 50-byte value
        // (11 + 50 + 32 = 93) evicts the entry its name comes from.
        var decoder = new HpackDecoder(maxDynamicTableSize: 100);
        byte[] first = [0x40, 0x0b, .. Latin1("custom-name"), 0x01, (byte)'a'];
        Decode(decoder, first);
        var value = new string('z', 50);
        byte[] second = [0x7e, 0x32, .. Latin1(value)];
        AssertFields(Decode(decoder, second), ("custom-name", value));
        Assert.Equal([("custom-name", value)], decoder.DynamicTableSnapshot());
    }

    [Fact]
    public void Decode_HeaderListOverTheLimit_TooLargeButTheTableStaysInSync()
    {
        var decoder = new HpackDecoder(maxHeaderListSize: 150);
        var encoder = new HpackEncoder();
        (string, string)[] big = [(":method", "GET"), ("x-one", new string('1', 60)), ("x-two", new string('2', 60)), ("x-three", "3")];
        var block = Encode(encoder, big);
        var fields = Decode(decoder, block, HpackStatus.HeaderListTooLarge);
        // The sink got the fields before the limit was crossed; the table got every indexed one.
        AssertFields(fields, (":method", "GET"), ("x-one", new string('1', 60)));
        Assert.Equal("the decoded header list is 276 bytes (name + value + 32 per field), over the limit of 150", decoder.LastError);
        Assert.Equal(encoder.DynamicTableSnapshot(), decoder.DynamicTableSnapshot());

        // The next block refers to those entries by index and decodes.
        var next = Encode(encoder, ("x-two", new string('2', 60)), ("x-three", "3"));
        Assert.Equal([0xbf, 0xbe], next);
        AssertFields(Decode(decoder, next), ("x-two", new string('2', 60)), ("x-three", "3"));
    }

    [Fact]
    public void Decode_HuffmanStringLargerThanAnyLimit_MeasuredAndStillKeepsTheTableInSync()
    {
        // Limits of 100 (list and table): a 300-byte Huffman value cannot be kept; its entry would empty the table.
        var decoder = new HpackDecoder(maxDynamicTableSize: 100, maxHeaderListSize: 100);
        var encoder = new HpackEncoder(100);
        var warm = Encode(encoder, ("a", "b"));
        Decode(decoder, warm);
        Assert.Equal(1, decoder.DynamicTableCount);

        var value = Latin1(new string('e', 300));
        var huffman = new byte[HpackHuffman.GetEncodedLength(value)];
        HpackHuffman.Encode(value, huffman);
        var length = new byte[6];
        var n = HpackEncoder.WriteInteger(length, huffman.Length, 7, 0x80);
        byte[] block = [0x40, 0x01, (byte)'x', .. length[..n], .. huffman, 0x82];
        var fields = Decode(decoder, block, HpackStatus.HeaderListTooLarge);
        Assert.Empty(fields);
        Assert.Equal(0, decoder.DynamicTableCount);
        Assert.Contains("375 bytes", decoder.LastError, StringComparison.Ordinal); // 1 + 300 + 32, and :method GET
    }

    [Fact]
    public void Decode_EmptyBlock_Ok()
    {
        var decoder = new HpackDecoder();
        Assert.Empty(Decode(decoder, []));
    }
}
