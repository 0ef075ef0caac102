using Trellis.Proxy.Http.Http2.Hpack;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Hpack;

public sealed class HpackHuffmanTests
{
    [Fact]
    public void CodeTable_LengthsAndCodes_FormTheCompleteCanonicalCodeOfTheRfc()
    {
        // The transcription check: RFC 7541 Appendix B is a canonical code (codes of one length consecutive,
        // by symbol; each length starts at the previous end shifted left), and complete (Kraft sum exactly 1).
        var order = Enumerable.Range(0, 257).OrderBy(s => HpackHuffman.Lengths[s]).ThenBy(s => s).ToArray();
        long code = 0;
        var previous = HpackHuffman.Lengths[order[0]];
        for (var i = 0; i < order.Length; i++)
        {
            var length = HpackHuffman.Lengths[order[i]];
            if (i > 0)
            {
                code = (code + 1) << (length - previous);
            }
            previous = length;
            Assert.True(code == HpackHuffman.Codes[order[i]], $"symbol {order[i]}: code {HpackHuffman.Codes[order[i]]:x}, canonical {code:x}");
        }
        Assert.Equal((1L << 30) - 1, code); // the last code, EOS, is 30 ones: the code is complete
        Assert.Equal(0x3fffffffu, HpackHuffman.Codes[256]);
        Assert.Equal(0x18u, HpackHuffman.Codes['/']); // the RFC's own example: '/' is 011000
        Assert.Equal(6, HpackHuffman.Lengths['/']);
    }

    [Theory]
    [InlineData("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff")]
    [InlineData("no-cache", "a8eb10649cbf")]
    [InlineData("custom-key", "25a849e95ba97d7f")]
    [InlineData("custom-value", "25a849e95bb8e8b4bf")]
    [InlineData("302", "6402")]
    [InlineData("307", "640eff")]
    [InlineData("private", "aec3771a4b")]
    [InlineData("Mon, 21 Oct 2013 20:13:21 GMT", "d07abe941054d444a8200595040b8166e082a62d1bff")]
    [InlineData("https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3")]
    [InlineData("gzip", "9bd9ab")]
    [InlineData("foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1", "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007")]
    public void Encode_RfcAppendixCStrings_GivesTheRfcBytes(string text, string hex)
    {
        var source = Hpack.Latin1(text);
        var encoded = new byte[HpackHuffman.GetEncodedLength(source)];
        Assert.Equal(encoded.Length, HpackHuffman.Encode(source, encoded));
        Assert.Equal(hex, Hpack.ToHex(encoded));

        var decoded = new byte[HpackHuffman.MaxDecodedLength(encoded.Length)];
        Assert.Equal(HuffmanError.None, HpackHuffman.Decode(encoded, decoded, out var written));
        Assert.Equal(text, Hpack.Latin1String(decoded.AsSpan(0, written)));
    }

    [Fact]
    public void EncodeThenDecode_EveryByteValueAlone_RoundTrips()
    {
        for (var b = 0; b < 256; b++)
        {
            byte[] source = [(byte)b];
            var encoded = new byte[HpackHuffman.GetEncodedLength(source)];
            HpackHuffman.Encode(source, encoded);
            Assert.Equal((HpackHuffman.Lengths[b] + 7) / 8, encoded.Length);
            var decoded = new byte[HpackHuffman.MaxDecodedLength(encoded.Length)];
            Assert.True(HpackHuffman.Decode(encoded, decoded, out var written) == HuffmanError.None, $"byte {b}");
            Assert.True(written == 1 && decoded[0] == b, $"byte {b} decoded to {written} bytes");
        }
    }

    [Fact]
    public void EncodeThenDecode_AllSymbolsInOneStringBothWays_RoundTrips()
    {
        var ascending = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        foreach (var source in new[] { ascending, ascending.Reverse().ToArray() })
        {
            var bits = source.Sum(b => HpackHuffman.Lengths[b]);
            var encoded = new byte[HpackHuffman.GetEncodedLength(source)];
            Assert.Equal((bits + 7) / 8, HpackHuffman.Encode(source, encoded));
            var decoded = new byte[HpackHuffman.MaxDecodedLength(encoded.Length)];
            Assert.Equal(HuffmanError.None, HpackHuffman.Decode(encoded, decoded, out var written));
            Assert.Equal(source, decoded.AsSpan(0, written).ToArray());
            Assert.Equal(HuffmanError.None, HpackHuffman.Measure(encoded, out var measured));
            Assert.Equal(256, measured);
        }
    }

    [Fact]
    public void Decode_EmptyInput_GivesEmptyString()
    {
        Assert.Equal(HuffmanError.None, HpackHuffman.Decode([], [], out var written));
        Assert.Equal(0, written);
    }

    [Theory]
    // 'a' (00011), then EOS (30 ones), then five bits of padding.
    [InlineData("00011" + "111111111111111111111111111111" + "11111", nameof(HuffmanError.EndOfString), 0)]
    // EOS alone, with two bits of padding.
    [InlineData("111111111111111111111111111111" + "11", nameof(HuffmanError.EndOfString), 0)]
    // 'a' 'a' then EOS: the error points at the byte where EOS starts.
    [InlineData("00011" + "00011" + "111111111111111111111111111111", nameof(HuffmanError.EndOfString), 1)]
    // 'a' then 11 bits of ones: padding longer than 7 bits.
    [InlineData("00011" + "11111111111", nameof(HuffmanError.PaddingTooLong), 0)]
    // A whole byte of ones: 8 bits of padding.
    [InlineData("11111111", nameof(HuffmanError.PaddingTooLong), 0)]
    // 'a' then 3 bits of padding that are not all ones.
    [InlineData("00011" + "101", nameof(HuffmanError.PaddingNotOnes), 0)]
    // 'a' then zero padding.
    [InlineData("00011" + "000", nameof(HuffmanError.PaddingNotOnes), 0)]
    // '0' then 'a' cut short: a code missing its last bits is padding that is not all ones.
    [InlineData("00000" + "000", nameof(HuffmanError.PaddingNotOnes), 0)]
    public void Decode_MalformedString_Rejected(string bits, string error, int at)
    {
        var expected = Enum.Parse<HuffmanError>(error);
        var encoded = Hpack.Bits(bits);
        var decoded = new byte[HpackHuffman.MaxDecodedLength(encoded.Length)];
        Assert.Equal(expected, HpackHuffman.Decode(encoded, decoded, out var offset));
        Assert.Equal(at, offset);
        Assert.Equal(expected, HpackHuffman.Measure(encoded, out _));
    }
}
