using System.Buffers;
using System.Runtime.CompilerServices;

namespace Trellis.Proxy.Http.Http2.Hpack;

/// <summary>
/// Decodes HPACK header blocks (RFC 7541) of one connection direction. Each call takes one complete block
/// (HEADERS + CONTINUATION payloads joined) and hands its fields to a sink, in order, as spans: names and values
/// point into the block, into the dynamic table, or (Huffman-coded strings) into a scratch buffer owned by the
/// decoder, and are only valid during the callback. Nothing is allocated per field in steady state.
/// <para>
/// <see cref="HpackStatus.CompressionError"/> leaves the dynamic table out of step with the peer: the connection
/// must close (RFC 9113 COMPRESSION_ERROR). <see cref="LastError"/> names the fault and its byte offset.
/// </para>
/// </summary>
internal sealed class HpackDecoder : IDisposable
{
    /// <summary>The dynamic table size both sides start from (SETTINGS_HEADER_TABLE_SIZE's default, RFC 9113 6.5.2).</summary>
    public const int DefaultTableSize = 4096;

    private const int StaticCount = HpackStaticTable.Count;
    private const int MaxIntegerContinuations = 5;
    private const int MinScratch = 256;

    private readonly HpackDynamicTable _table;
    private readonly int _maxHeaderListSize;
    private int _limit;
    private bool _sizeUpdateRequired;
    private byte[]? _scratch;

    /// <param name="maxDynamicTableSize">The most the peer's size updates may ask for, and the table's maximum size
    /// until the first update: the protocol's 4096 on a new connection, since the peer may encode its first blocks
    /// before it has our SETTINGS. To announce less, keep 4096 here and call <see cref="SetMaxDynamicTableSize"/>
    /// when the peer acknowledges the SETTINGS frame.</param>
    /// <param name="maxHeaderListSize">Our SETTINGS_MAX_HEADER_LIST_SIZE: the largest decoded list (name + value +
    /// 32 per field) passed on; a larger one gives <see cref="HpackStatus.HeaderListTooLarge"/>.</param>
    public HpackDecoder(int maxDynamicTableSize = DefaultTableSize, int maxHeaderListSize = 65536)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxDynamicTableSize);
        ArgumentOutOfRangeException.ThrowIfNegative(maxHeaderListSize);
        _limit = maxDynamicTableSize;
        _maxHeaderListSize = maxHeaderListSize;
        _table = new HpackDynamicTable(maxDynamicTableSize);
    }

    /// <summary>
    /// During <see cref="IHpackSink.OnHeader"/>: whether the field came as a literal never indexed (RFC 7541
    /// 6.2.3), which an intermediary must keep when it encodes the field again (<see cref="HpackIndexing.NeverIndexed"/>).
    /// </summary>
    public bool FieldIsNeverIndexed { get; private set; }

    /// <summary>What was wrong with the last block that failed (null until one fails).</summary>
    public string? LastError { get; private set; }

    /// <summary>Entries in the dynamic table.</summary>
    public int DynamicTableCount => _table.Count;

    /// <summary>Size of the dynamic table (name + value + 32 per entry).</summary>
    public int DynamicTableSize => _table.Size;

    /// <summary>The dynamic table's current maximum size (the peer's last size update, or the initial limit).</summary>
    public int DynamicTableMaxSize => _table.MaxSize;

    /// <summary>The dynamic table, newest first, as text (for tests and diagnostics; allocates).</summary>
    internal List<(string Name, string Value)> DynamicTableSnapshot() => _table.Snapshot();

    /// <summary>
    /// Sets the limit for the peer's dynamic table size updates: call it when the peer acknowledges a SETTINGS
    /// frame carrying a new SETTINGS_HEADER_TABLE_SIZE. If the limit falls below the table's current maximum,
    /// the next block must start with a size update within it (RFC 7541 section 4.2), or it is a compression error.
    /// </summary>
    public void SetMaxDynamicTableSize(int maxSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxSize);
        _limit = maxSize;
        _sizeUpdateRequired = maxSize < _table.MaxSize;
    }

    /// <summary>Decodes one complete header block, giving each field to <paramref name="sink"/>.</summary>
    public HpackStatus Decode<TSink>(ReadOnlySpan<byte> headerBlock, ref TSink sink)
        where TSink : IHpackSink, allows ref struct
    {
        var pos = 0;
        long listSize = 0;
        var tooLarge = false;
        var fieldSeen = false;
        if (_sizeUpdateRequired && (headerBlock.IsEmpty || (headerBlock[0] & 0xE0) != 0x20))
        {
            return Fail($"the block does not start with a dynamic table size update, required after SETTINGS_HEADER_TABLE_SIZE was lowered to {_limit} (table maximum {_table.MaxSize})");
        }
        while (pos < headerBlock.Length)
        {
            var start = pos;
            var first = headerBlock[pos];
            ReadOnlySpan<byte> name;
            ReadOnlySpan<byte> value;
            int staticName;
            int nameLength;
            int valueLength;
            var index = false;
            if ((first & 0x80) != 0)
            {
                // Indexed field (6.1).
                if (!TryReadInteger(headerBlock, ref pos, 7, out var i))
                {
                    return HpackStatus.CompressionError;
                }
                if (!TryResolve(i, start, out name, out value, out staticName))
                {
                    return HpackStatus.CompressionError;
                }
                nameLength = name.Length;
                valueLength = value.Length;
            }
            else if ((first & 0xE0) == 0x20)
            {
                // Dynamic table size update (6.3): only before the first field.
                if (fieldSeen)
                {
                    return Fail($"dynamic table size update after a header field at byte {start} (allowed only at the start of a block)");
                }
                if (!TryReadInteger(headerBlock, ref pos, 5, out var size))
                {
                    return HpackStatus.CompressionError;
                }
                if (size > _limit)
                {
                    return Fail($"dynamic table size update to {size} exceeds the limit {_limit} at byte {start}");
                }
                _table.SetMaxSize(size);
                _sizeUpdateRequired = false;
                continue;
            }
            else
            {
                // Literal field (6.2): with incremental indexing (01), without indexing (0000), never indexed (0001).
                index = (first & 0x40) != 0;
                if (!TryReadInteger(headerBlock, ref pos, index ? 6 : 4, out var nameIndex))
                {
                    return HpackStatus.CompressionError;
                }
                var scratchUsed = 0;
                if (nameIndex == 0)
                {
                    if (!TryReadString(headerBlock, ref pos, ref scratchUsed, out name, out nameLength))
                    {
                        return HpackStatus.CompressionError;
                    }
                    staticName = name.Length == nameLength ? HpackStaticTable.FindName(name) : 0;
                }
                else
                {
                    if (!TryResolve(nameIndex, start, out name, out _, out staticName))
                    {
                        return HpackStatus.CompressionError;
                    }
                    nameLength = name.Length;
                    if (index && nameIndex > StaticCount)
                    {
                        // Adding the field may evict the entry the name points into: work on a copy.
                        name.CopyTo(Scratch(nameLength));
                        scratchUsed = nameLength;
                    }
                }
                var nameInScratch = scratchUsed > 0;
                if (!TryReadString(headerBlock, ref pos, ref scratchUsed, out value, out valueLength))
                {
                    return HpackStatus.CompressionError;
                }
                if (nameInScratch)
                {
                    // Decoding the value may have grown (moved) the scratch buffer the name is at the start of.
                    name = _scratch.AsSpan(0, nameLength);
                }
            }
            fieldSeen = true;
            listSize += (long)nameLength + valueLength + HpackDynamicTable.EntryOverhead;
            if (!tooLarge)
            {
                if (listSize > _maxHeaderListSize)
                {
                    tooLarge = true;
                }
                else
                {
                    FieldIsNeverIndexed = (first & 0xF0) == 0x10;
                    sink.OnHeader(staticName, name, value);
                }
            }
            if (index)
            {
                // A string too long to keep (see TryReadString) makes an entry larger than any table: it empties it.
                if (name.Length == nameLength && value.Length == valueLength)
                {
                    _table.Add(name, value, staticName);
                }
                else
                {
                    _table.Clear();
                }
            }
        }
        if (tooLarge)
        {
            LastError = $"the decoded header list is {listSize} bytes (name + value + 32 per field), over the limit of {_maxHeaderListSize}";
            return HpackStatus.HeaderListTooLarge;
        }
        return HpackStatus.Ok;
    }

    public void Dispose()
    {
        if (_scratch is { } scratch)
        {
            _scratch = null;
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>Resolves an index (6.1) in the static then dynamic table.</summary>
    private bool TryResolve(int index, int at, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value, out int staticName)
    {
        if (index == 0)
        {
            name = value = default;
            staticName = 0;
            Fail($"index 0 at byte {at} (not a valid table index)");
            return false;
        }
        if (index <= StaticCount)
        {
            name = HpackStaticTable.Name(index);
            value = HpackStaticTable.Value(index);
            staticName = HpackStaticTable.FirstWithSameName(index);
            return true;
        }
        var dynamic = index - StaticCount - 1;
        if (dynamic >= _table.Count)
        {
            name = value = default;
            staticName = 0;
            Fail($"index {index} is beyond the static and dynamic tables ({StaticCount + _table.Count} entries) at byte {at}");
            return false;
        }
        ref readonly var entry = ref _table[dynamic];
        name = _table.Name(entry);
        value = _table.Value(entry);
        staticName = entry.StaticNameIndex;
        return true;
    }

    /// <summary>Reads an integer with an N-bit prefix (5.1), at most int.MaxValue and 5 continuation bytes.</summary>
    private bool TryReadInteger(ReadOnlySpan<byte> block, ref int pos, int prefixBits, out int value)
    {
        var start = pos;
        var max = (1 << prefixBits) - 1;
        long result = block[pos++] & max;
        if (result < max)
        {
            value = (int)result;
            return true;
        }
        var shift = 0;
        for (var n = 0; ; n++)
        {
            if (pos >= block.Length)
            {
                value = 0;
                Fail($"integer at byte {start} is cut off by the end of the block");
                return false;
            }
            if (n == MaxIntegerContinuations)
            {
                value = 0;
                Fail($"integer at byte {start} has more than {MaxIntegerContinuations} continuation bytes");
                return false;
            }
            var b = block[pos++];
            result += (long)(b & 0x7F) << shift;
            shift += 7;
            if (result > int.MaxValue)
            {
                value = 0;
                Fail($"integer at byte {start} overflows (more than {int.MaxValue})");
                return false;
            }
            if ((b & 0x80) == 0)
            {
                value = (int)result;
                return true;
            }
        }
    }

    /// <summary>
    /// Reads a string literal (5.2). A plain one is a span of the block; a Huffman-coded one is decoded into the
    /// scratch buffer after its first <paramref name="scratchUsed"/> bytes. A decoded string that would make the
    /// scratch buffer larger than both limits (header list and table) cannot be passed on nor indexed: it is only
    /// checked and measured, and <paramref name="value"/> is then shorter than <paramref name="length"/>.
    /// </summary>
    private bool TryReadString(ReadOnlySpan<byte> block, scoped ref int pos, scoped ref int scratchUsed, out ReadOnlySpan<byte> value, out int length)
    {
        value = default;
        length = 0;
        if (pos >= block.Length)
        {
            Fail($"string expected at byte {pos}, but the block ends there");
            return false;
        }
        var start = pos;
        var huffman = (block[pos] & 0x80) != 0;
        if (!TryReadInteger(block, ref pos, 7, out var encodedLength))
        {
            return false;
        }
        if (encodedLength > block.Length - pos)
        {
            Fail($"string of length {encodedLength} at byte {start} runs past the end of the block ({block.Length - pos} bytes left)");
            return false;
        }
        var encoded = block.Slice(pos, encodedLength);
        pos += encodedLength;
        if (!huffman)
        {
            value = encoded;
            length = encodedLength;
            return true;
        }
        HuffmanError error;
        int at;
        var needed = scratchUsed + HpackHuffman.MaxDecodedLength(encodedLength);
        if (needed <= ScratchBound)
        {
            var scratch = Scratch(needed);
            error = HpackHuffman.Decode(encoded, scratch.AsSpan(scratchUsed), out at);
            if (error == HuffmanError.None)
            {
                value = scratch.AsSpan(scratchUsed, at);
                length = at;
                scratchUsed += at;
                return true;
            }
        }
        else
        {
            error = HpackHuffman.Measure(encoded, out at);
            if (error == HuffmanError.None)
            {
                length = at;
                if (scratchUsed + length <= ScratchBound)
                {
                    // Shorter than the worst case: it fits after all.
                    var scratch = Scratch(scratchUsed + length);
                    HpackHuffman.Decode(encoded, scratch.AsSpan(scratchUsed), out _);
                    value = scratch.AsSpan(scratchUsed, length);
                    scratchUsed += length;
                }
                return true;
            }
        }
        var what = error switch
        {
            HuffmanError.EndOfString => "contains the EOS symbol",
            HuffmanError.PaddingTooLong => "ends with more than 7 bits of padding",
            _ => "ends with padding that is not all ones",
        };
        Fail($"Huffman-coded string at byte {start} {what} (at byte {pos - encodedLength + at})");
        return false;
    }

    /// <summary>The most scratch space kept: a decoded field can be passed on (list limit) or indexed (table limit).</summary>
    private int ScratchBound => Math.Max(_maxHeaderListSize, _limit);

    /// <summary>The scratch buffer with room for <paramref name="size"/> bytes; growing it keeps its content.</summary>
    private byte[] Scratch(int size)
    {
        var scratch = _scratch;
        if (scratch is null || scratch.Length < size)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(size, Math.Max(MinScratch, (scratch?.Length ?? 0) * 2)));
            if (scratch is not null)
            {
                scratch.CopyTo(grown, 0);
                ArrayPool<byte>.Shared.Return(scratch);
            }
            _scratch = scratch = grown;
        }
        return scratch;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private HpackStatus Fail(string message)
    {
        LastError = message;
        return HpackStatus.CompressionError;
    }
}
