namespace Trellis.Proxy.Http.Http2.Hpack;

/// <summary>Why a Huffman-coded string was rejected (RFC 7541 section 5.2).</summary>
internal enum HuffmanError
{
    None,

    /// <summary>The string contains the EOS symbol.</summary>
    EndOfString,

    /// <summary>More than 7 bits are left after the last symbol.</summary>
    PaddingTooLong,

    /// <summary>The bits after the last symbol are not all ones (the start of EOS).</summary>
    PaddingNotOnes,
}

/// <summary>
/// The static Huffman code of HPACK (RFC 7541 Appendix B). Encoding shifts each symbol's code into a 64-bit
/// accumulator; decoding reads the top 8 bits of one through a 256-entry table (every code of 8 bits or fewer:
/// letters, digits and common punctuation) and finds longer codes by their length, which the code being
/// canonical (codes of one length are consecutive, ordered by symbol) makes a comparison per length.
/// </summary>
internal static class HpackHuffman
{
    private const int Eos = 256;
    private const int MaxCodeLength = 30;
    private const int FastBits = 8;

    private static readonly DecodeTables s_tables = new();

    /// <summary>The code of each symbol, 0-255 and EOS, aligned to the least significant bit.</summary>
    internal static ReadOnlySpan<uint> Codes => s_codes;

    // An array, not a span over constant data: that form allocates on every access in unoptimised builds.
    private static readonly uint[] s_codes =
    [
        0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, // 0-7
        0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, // 8-15
        0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, // 16-23
        0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, // 24-31
        0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, // 32-39
        0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, // 40-47
        0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, // 48-55
        0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, // 56-63
        0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, // 64-71
        0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, // 72-79
        0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, // 80-87
        0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, // 88-95
        0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, // 96-103
        0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, // 104-111
        0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, // 112-119
        0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, // 120-127
        0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, // 128-135
        0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, // 136-143
        0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, // 144-151
        0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, // 152-159
        0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, // 160-167
        0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, // 168-175
        0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, // 176-183
        0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, // 184-191
        0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, // 192-199
        0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, // 200-207
        0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, // 208-215
        0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, // 216-223
        0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3, // 224-231
        0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, // 232-239
        0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, // 240-247
        0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee, // 248-255
        0x3fffffff, // 256-256
    ];

    /// <summary>The length in bits of each symbol's code.</summary>
    internal static ReadOnlySpan<byte> Lengths =>
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32-47
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48-63
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64-79
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80-95
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96-111
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112-127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
        30, // 256-256
    ];

    /// <summary>The most bytes <paramref name="encodedLength"/> bytes of Huffman code can decode to (5-bit codes are the shortest).</summary>
    public static int MaxDecodedLength(int encodedLength) => (int)((long)encodedLength * 8 / 5);

    /// <summary>The length in bytes of <paramref name="source"/> Huffman-coded, padding included.</summary>
    public static int GetEncodedLength(ReadOnlySpan<byte> source)
    {
        var lengths = Lengths;
        long bits = 0;
        foreach (var b in source)
        {
            bits += lengths[b];
        }
        return (int)((bits + 7) >> 3);
    }

    /// <summary>
    /// Writes <paramref name="source"/> Huffman-coded into <paramref name="destination"/>, which must hold
    /// <see cref="GetEncodedLength"/> bytes; returns the bytes written.
    /// </summary>
    public static int Encode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var codes = Codes;
        var lengths = Lengths;
        ulong pending = 0; // the low `bits` bits are not yet written
        var bits = 0;
        var written = 0;
        foreach (var b in source)
        {
            pending = (pending << lengths[b]) | codes[b];
            bits += lengths[b];
            while (bits >= 8)
            {
                bits -= 8;
                destination[written++] = (byte)(pending >> bits);
            }
        }
        if (bits > 0)
        {
            // Pad with the most significant bits of EOS, which are all ones.
            destination[written++] = (byte)((pending << (8 - bits)) | (0xFFu >> bits));
        }
        return written;
    }

    /// <summary>
    /// Decodes <paramref name="source"/> into <paramref name="destination"/>, which must hold
    /// <see cref="MaxDecodedLength"/> bytes. On an error, <paramref name="written"/> is the offset in
    /// <paramref name="source"/> of the byte where the offending bits start.
    /// </summary>
    public static HuffmanError Decode(ReadOnlySpan<byte> source, Span<byte> destination, out int written) =>
        Decode(source, destination, store: true, out written);

    /// <summary>Checks <paramref name="source"/> and counts the bytes it decodes to, without storing them.</summary>
    public static HuffmanError Measure(ReadOnlySpan<byte> source, out int decodedLength) =>
        Decode(source, [], store: false, out decodedLength);

    private static HuffmanError Decode(ReadOnlySpan<byte> source, Span<byte> destination, bool store, out int written)
    {
        var t = s_tables;
        ulong acc = 0; // unread bits, aligned to the most significant bit
        var bits = 0;
        var read = 0;
        written = 0;
        while (true)
        {
            while (bits <= 56 && read < source.Length)
            {
                acc |= (ulong)source[read++] << (56 - bits);
                bits += 8;
            }
            if (bits == 0)
            {
                return HuffmanError.None;
            }
            int length;
            int symbol;
            var fast = t.Fast[(int)(acc >> (64 - FastBits))];
            if (fast != 0)
            {
                length = fast >> 8;
                symbol = fast & 0xFF;
            }
            else
            {
                var top = (uint)(acc >> (64 - MaxCodeLength));
                length = FastBits + 1;
                while (top >= t.Limit[length])
                {
                    length++;
                }
                symbol = t.Sorted[t.FirstSorted[length] + (int)(top >> (MaxCodeLength - length)) - t.FirstCode[length]];
            }
            if (length > bits)
            {
                // The input is exhausted (the refill keeps more than 30 bits otherwise): what is left is padding.
                var error = bits > 7 ? HuffmanError.PaddingTooLong
                    : acc >> (64 - bits) != (1UL << bits) - 1 ? HuffmanError.PaddingNotOnes
                    : HuffmanError.None;
                if (error != HuffmanError.None)
                {
                    written = ((read * 8) - bits) / 8;
                }
                return error;
            }
            if (symbol == Eos)
            {
                written = ((read * 8) - bits) / 8;
                return HuffmanError.EndOfString;
            }
            if (store)
            {
                destination[written] = (byte)symbol;
            }
            written++;
            acc <<= length;
            bits -= length;
        }
    }

    /// <summary>
    /// Decoding tables derived from the code table: <see cref="Fast"/> maps the top 8 bits to (length &lt;&lt; 8 |
    /// symbol) for codes of up to 8 bits (0 for longer ones); for longer codes, the 30 top bits are below
    /// <see cref="Limit"/>[L] exactly when the code is at most L bits long, and the symbol is found by the
    /// code's rank among the codes of its length (<see cref="FirstCode"/>, <see cref="FirstSorted"/>, <see cref="Sorted"/>).
    /// </summary>
    private sealed class DecodeTables
    {
        public readonly ushort[] Fast = new ushort[1 << FastBits];
        public readonly uint[] Limit = new uint[MaxCodeLength + 1];
        public readonly int[] FirstCode = new int[MaxCodeLength + 1];
        public readonly int[] FirstSorted = new int[MaxCodeLength + 1];
        public readonly ushort[] Sorted = new ushort[Eos + 1];

        public DecodeTables()
        {
            var code = 0;
            var next = 0;
            for (var length = 1; length <= MaxCodeLength; length++)
            {
                FirstCode[length] = code;
                FirstSorted[length] = next;
                for (var symbol = 0; symbol <= Eos; symbol++)
                {
                    if (Lengths[symbol] != length)
                    {
                        continue;
                    }
                    Sorted[next++] = (ushort)symbol;
                    if (length <= FastBits)
                    {
                        var start = code << (FastBits - length);
                        for (var i = 0; i < 1 << (FastBits - length); i++)
                        {
                            Fast[start + i] = (ushort)((length << 8) | symbol);
                        }
                    }
                    code++;
                }
                Limit[length] = (uint)code << (MaxCodeLength - length);
                code <<= 1;
            }
        }
    }
}
