using System.Buffers;

namespace Trellis.Proxy.Http.Http2.Hpack;

/// <summary>
/// Encodes header blocks (RFC 7541) for one connection direction. A block is <see cref="BeginBlock"/> then
/// <see cref="WriteStatus"/> / <see cref="WriteHeader"/> per field, each written straight into the output.
/// <para>
/// Choices: a full match in the static table, then in the dynamic table (newest first), is written as an index;
/// otherwise a literal, naming the static entry (or else the newest dynamic entry) with that name when there is
/// one; strings are Huffman-coded when that is strictly shorter. A field asked to be indexed that is larger than
/// half the dynamic table is written without indexing, so one large value does not flush the table.
/// Dynamic-table lookups scan the entries (at most table size / 32 of them); nothing is allocated per field.
/// </para>
/// </summary>
internal sealed class HpackEncoder
{
    private const int StaticCount = HpackStaticTable.Count;
    private const int MaxIntegerBytes = 6;

    private readonly HpackDynamicTable _table;
    private readonly int _ownMax;
    private int _peerMax = HpackDecoder.DefaultTableSize;
    private bool _updatePending;
    private int _updateMin = int.MaxValue;
    private int _updateTarget;

    /// <param name="maxDynamicTableSize">The largest dynamic table this encoder keeps; it uses the smaller
    /// of this and the peer's SETTINGS_HEADER_TABLE_SIZE (4096 until the peer says otherwise).</param>
    public HpackEncoder(int maxDynamicTableSize = HpackDecoder.DefaultTableSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxDynamicTableSize);
        _ownMax = maxDynamicTableSize;
        // Both sides start at the protocol's 4096 (the peer's decoder assumes it): a smaller own limit is
        // announced in the first block.
        _table = new HpackDynamicTable(Math.Min(maxDynamicTableSize, HpackDecoder.DefaultTableSize));
        if (maxDynamicTableSize < HpackDecoder.DefaultTableSize)
        {
            _updatePending = true;
            _updateTarget = _updateMin = maxDynamicTableSize;
        }
    }

    /// <summary>Entries in the dynamic table.</summary>
    public int DynamicTableCount => _table.Count;

    /// <summary>Size of the dynamic table (name + value + 32 per entry).</summary>
    public int DynamicTableSize => _table.Size;

    /// <summary>The dynamic table's current maximum size (the last size update written, or the initial one).</summary>
    public int DynamicTableMaxSize => _table.MaxSize;

    /// <summary>The dynamic table, newest first, as text (for tests and diagnostics; allocates).</summary>
    internal List<(string Name, string Value)> DynamicTableSnapshot() => _table.Snapshot();

    /// <summary>
    /// The peer's SETTINGS_HEADER_TABLE_SIZE: the table's maximum becomes min(own limit, this), announced by a
    /// dynamic table size update at the start of the next block (the smallest value reached, then the final one,
    /// when it went down and up again in between, as RFC 7541 section 4.2 asks).
    /// </summary>
    public void SetPeerMaxTableSize(int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        _peerMax = size;
        Retarget();
    }

    /// <summary>Starts a header block: must be called before its first field; writes any pending size update.</summary>
    public void BeginBlock(IBufferWriter<byte> output)
    {
        if (!_updatePending)
        {
            return;
        }
        var span = output.GetSpan(2 * MaxIntegerBytes);
        var n = 0;
        if (_updateMin < _updateTarget)
        {
            n += WriteInteger(span, _updateMin, 5, 0x20);
            _table.SetMaxSize(_updateMin);
        }
        n += WriteInteger(span[n..], _updateTarget, 5, 0x20);
        _table.SetMaxSize(_updateTarget);
        output.Advance(n);
        _updatePending = false;
        _updateMin = int.MaxValue;
    }

    /// <summary>Writes :status: one byte for 200, 204, 206, 304, 400, 404 and 500 (static entries), else a literal.</summary>
    public void WriteStatus(IBufferWriter<byte> output, int status)
    {
        var index = status switch
        {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => 0,
        };
        if (index != 0)
        {
            WriteIndexed(output, index);
            return;
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(status, 100);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(status, 999);
        Span<byte> digits = stackalloc byte[3];
        digits[0] = (byte)('0' + (status / 100));
        digits[1] = (byte)('0' + (status / 10 % 10));
        digits[2] = (byte)('0' + (status % 10));
        WriteField(output, HpackStaticTable.Status, HpackStaticTable.Name(HpackStaticTable.Status), digits, HpackIndexing.Incremental);
    }

    /// <summary>Writes one field; <paramref name="name"/> must be lowercase (HTTP/2 field names are).</summary>
    public void WriteHeader(IBufferWriter<byte> output, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, HpackIndexing indexing = HpackIndexing.Incremental) =>
        WriteField(output, HpackStaticTable.FindName(name), name, value, indexing);

    /// <summary>Writes an integer with an N-bit prefix (RFC 7541 section 5.1) after the flag bits; returns its length.</summary>
    internal static int WriteInteger(Span<byte> destination, int value, int prefixBits, byte flags)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            destination[0] = (byte)(flags | value);
            return 1;
        }
        destination[0] = (byte)(flags | max);
        var n = 1;
        var rest = (uint)(value - max);
        while (rest >= 0x80)
        {
            destination[n++] = (byte)(rest | 0x80);
            rest >>= 7;
        }
        destination[n++] = (byte)rest;
        return n;
    }

    private void WriteField(IBufferWriter<byte> output, int staticName, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, HpackIndexing indexing)
    {
        int nameIndex;
        if (indexing != HpackIndexing.NeverIndexed)
        {
            if (staticName != 0 && HpackStaticTable.FindEntry(staticName, value) is var full and not 0)
            {
                WriteIndexed(output, full);
                return;
            }
            var dynamic = _table.Find(name, value, out var dynamicName);
            if (dynamic >= 0)
            {
                WriteIndexed(output, StaticCount + 1 + dynamic);
                return;
            }
            nameIndex = staticName != 0 ? staticName : dynamicName >= 0 ? StaticCount + 1 + dynamicName : 0;
        }
        else
        {
            nameIndex = staticName != 0 ? staticName : _table.FindName(name) is var d and >= 0 ? StaticCount + 1 + d : 0;
        }
        if (indexing == HpackIndexing.Incremental && name.Length + value.Length + HpackDynamicTable.EntryOverhead > _table.MaxSize / 2)
        {
            indexing = HpackIndexing.WithoutIndexing;
        }
        var span = output.GetSpan((3 * MaxIntegerBytes) + name.Length + value.Length);
        var n = indexing switch
        {
            HpackIndexing.Incremental => WriteInteger(span, nameIndex, 6, 0x40),
            HpackIndexing.WithoutIndexing => WriteInteger(span, nameIndex, 4, 0x00),
            _ => WriteInteger(span, nameIndex, 4, 0x10),
        };
        if (nameIndex == 0)
        {
            n += WriteString(span[n..], name);
        }
        n += WriteString(span[n..], value);
        output.Advance(n);
        if (indexing == HpackIndexing.Incremental)
        {
            _table.Add(name, value, staticName);
        }
    }

    private static void WriteIndexed(IBufferWriter<byte> output, int index)
    {
        var span = output.GetSpan(MaxIntegerBytes);
        output.Advance(WriteInteger(span, index, 7, 0x80));
    }

    /// <summary>A string literal (5.2), Huffman-coded when that is strictly shorter.</summary>
    private static int WriteString(Span<byte> destination, ReadOnlySpan<byte> value)
    {
        var huffmanLength = HpackHuffman.GetEncodedLength(value);
        if (huffmanLength < value.Length)
        {
            var n = WriteInteger(destination, huffmanLength, 7, 0x80);
            return n + HpackHuffman.Encode(value, destination[n..]);
        }
        var m = WriteInteger(destination, value.Length, 7, 0x00);
        value.CopyTo(destination[m..]);
        return m + value.Length;
    }

    private void Retarget()
    {
        var target = Math.Min(_ownMax, _peerMax);
        if (target == _table.MaxSize && !_updatePending)
        {
            return;
        }
        _updatePending = true;
        _updateTarget = target;
        _updateMin = Math.Min(_updateMin, target);
    }
}
