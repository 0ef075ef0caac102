using System.Buffers;
using System.Text;
using Trellis.Proxy.Http.Http2.Hpack;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Hpack;

/// <summary>A decoded field as the tests compare them: Latin-1 text, so every byte value survives.</summary>
internal readonly record struct Field(string Name, string Value, int StaticNameIndex = -1)
{
    public override string ToString() => $"{Name}: {Value}";
}

/// <summary>Records every field a decoder hands over.</summary>
internal struct RecordingSink() : IHpackSink
{
    public List<Field> Fields { get; } = [];

    public readonly void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
        Fields.Add(new Field(Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value), staticNameIndex));
}

/// <summary>Counts fields and bytes without allocating (for the allocation tests).</summary>
internal struct CountingSink : IHpackSink
{
    public int Fields;
    public long Bytes;

    public void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        Fields++;
        Bytes += name.Length + value.Length;
    }
}

internal static class Hpack
{
    /// <summary>Bytes from the hex dumps of RFC 7541 Appendix C (spaces and line breaks ignored).</summary>
    public static byte[] Hex(string dump) => Convert.FromHexString(dump.Replace(" ", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal));

    public static string ToHex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes).ToLowerInvariant();

    public static byte[] Latin1(string s) => Encoding.Latin1.GetBytes(s);

    public static string Latin1String(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    /// <summary>Bytes from a string of '0' and '1' (length a multiple of 8).</summary>
    public static byte[] Bits(string bits)
    {
        Assert.Equal(0, bits.Length % 8);
        var bytes = new byte[bits.Length / 8];
        for (var i = 0; i < bits.Length; i++)
        {
            if (bits[i] == '1')
            {
                bytes[i / 8] |= (byte)(0x80 >> (i % 8));
            }
        }
        return bytes;
    }

    /// <summary>Decodes one block, asserting the status, and returns the fields.</summary>
    public static List<Field> Decode(HpackDecoder decoder, byte[] block, HpackStatus expected = HpackStatus.Ok)
    {
        var sink = new RecordingSink();
        var status = decoder.Decode(block, ref sink);
        Assert.True(status == expected, $"expected {expected}, got {status}: {decoder.LastError}");
        return sink.Fields;
    }

    /// <summary>Encodes one block of fields given as "name: value" pairs (incremental indexing).</summary>
    public static byte[] Encode(HpackEncoder encoder, params (string Name, string Value)[] fields)
    {
        var output = new ArrayBufferWriter<byte>();
        encoder.BeginBlock(output);
        foreach (var (name, value) in fields)
        {
            encoder.WriteHeader(output, Latin1(name), Latin1(value));
        }
        return output.WrittenSpan.ToArray();
    }

    public static List<(string, string)> Pairs(IEnumerable<Field> fields) => [.. fields.Select(f => (f.Name, f.Value))];

    public static void AssertFields(IEnumerable<Field> actual, params (string Name, string Value)[] expected) =>
        Assert.Equal(expected.ToList(), Pairs(actual));
}
