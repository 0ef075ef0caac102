using System.Text;

namespace Trellis.Proxy.Http.Http2.Hpack;

/// <summary>
/// The HPACK dynamic table (RFC 7541 sections 2.3.2 and 4): a FIFO of fields, newest first, whose size (name +
/// value + 32 per entry) never exceeds <see cref="MaxSize"/>; adding evicts from the oldest end, and an entry
/// larger than the maximum empties the table.
/// <para>
/// The bytes of all entries live in one ring, each entry's name then value contiguous from its offset. Offsets
/// wrap at the ring's capacity, but the array is twice as long, so an entry that starts near the end simply runs
/// on past it and every entry is one span at [offset, offset + length). Live bytes plus a new entry never exceed
/// the capacity, so a new entry never overlaps a live one: the part of the array past the capacity that an entry
/// ran into is only reused after the ring has gone round once more, by which time that entry was evicted.
/// Entries' lengths live in a second ring of small structs. Both start small and double when an entry does not
/// fit (never beyond what <see cref="MaxSize"/> can hold), so a connection that sends few headers keeps a small
/// table; once grown, adding and evicting allocate nothing.
/// </para>
/// </summary>
internal sealed class HpackDynamicTable
{
    /// <summary>The overhead RFC 7541 section 4.1 adds to each entry's name and value lengths.</summary>
    public const int EntryOverhead = 32;

    private const int MinBytes = 256;
    private const int MinEntries = 8;

    private byte[] _bytes = [];
    private int _capacity;    // ring capacity in bytes (_bytes is twice as long)
    private Entry[] _entries = [];
    private int _oldest;      // slot of the oldest entry in _entries
    private int _byteTail;    // ring offset where the next entry's bytes go

    public HpackDynamicTable(int maxSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxSize);
        MaxSize = maxSize;
    }

    /// <summary>Number of entries.</summary>
    public int Count { get; private set; }

    /// <summary>Sum of the entries' sizes (name + value + 32 each).</summary>
    public int Size { get; private set; }

    /// <summary>The current maximum size (the last dynamic table size update).</summary>
    public int MaxSize { get; private set; }

    /// <summary>Entry <paramref name="i"/>, 0 being the newest (HPACK index 62).</summary>
    public ref readonly Entry this[int i] => ref _entries[Slot(i)];

    public ReadOnlySpan<byte> Name(in Entry entry) => _bytes.AsSpan(entry.Offset, entry.NameLength);

    public ReadOnlySpan<byte> Value(in Entry entry) => _bytes.AsSpan(entry.Offset + entry.NameLength, entry.ValueLength);

    /// <summary>Sets the maximum size, evicting from the oldest end until the entries fit.</summary>
    public void SetMaxSize(int maxSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxSize);
        MaxSize = maxSize;
        while (Size > maxSize)
        {
            EvictOldest();
        }
    }

    /// <summary>
    /// Adds a field as the newest entry, evicting as needed; a field larger than <see cref="MaxSize"/> empties
    /// the table and is not added. <paramref name="name"/> and <paramref name="value"/> must not point into this table.
    /// </summary>
    public void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex)
    {
        var size = name.Length + value.Length + EntryOverhead;
        if (size > MaxSize)
        {
            Clear();
            return;
        }
        while (Size + size > MaxSize)
        {
            EvictOldest();
        }
        var length = name.Length + value.Length;
        var used = Size - (Count * EntryOverhead);
        if (used + length > _capacity || Count == _entries.Length)
        {
            Grow(used + length);
        }
        var offset = _byteTail;
        name.CopyTo(_bytes.AsSpan(offset));
        value.CopyTo(_bytes.AsSpan(offset + name.Length));
        // An entry that runs past the end of the ring stays whole in the upper half; the next starts at the wrap.
        var end = offset + length;
        _byteTail = end >= _capacity ? end - _capacity : end;
        _entries[(_oldest + Count) % _entries.Length] = new Entry(offset, name.Length, value.Length, staticNameIndex);
        Count++;
        Size += size;
    }

    /// <summary>
    /// The newest entry whose name and value equal the given ones (its position, 0 newest), or -1. When there
    /// is none, <paramref name="nameMatch"/> is the newest entry with that name, or -1 (otherwise it is unspecified).
    /// </summary>
    public int Find(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, out int nameMatch) =>
        Scan(name, value, compareValues: true, out nameMatch);

    /// <summary>The newest entry with this name (its position, 0 newest), or -1.</summary>
    public int FindName(ReadOnlySpan<byte> name)
    {
        Scan(name, default, compareValues: false, out var nameMatch);
        return nameMatch;
    }

    private int Scan(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool compareValues, out int nameMatch)
    {
        nameMatch = -1;
        if (Count == 0)
        {
            return -1;
        }
        var entries = _entries;
        var slot = (_oldest + Count - 1) % entries.Length;
        for (var i = 0; i < Count; i++)
        {
            ref readonly var e = ref entries[slot];
            if (e.NameLength == name.Length && _bytes.AsSpan(e.Offset, e.NameLength).SequenceEqual(name))
            {
                if (compareValues && e.ValueLength == value.Length && _bytes.AsSpan(e.Offset + e.NameLength, e.ValueLength).SequenceEqual(value))
                {
                    return i;
                }
                if (nameMatch < 0)
                {
                    nameMatch = i;
                    if (!compareValues)
                    {
                        return -1;
                    }
                }
            }
            slot = slot == 0 ? entries.Length - 1 : slot - 1;
        }
        return -1;
    }

    /// <summary>The entries, newest first, as text (Latin-1, so every byte shows): for tests and diagnostics.</summary>
    public List<(string Name, string Value)> Snapshot()
    {
        var list = new List<(string, string)>(Count);
        for (var i = 0; i < Count; i++)
        {
            ref readonly var e = ref this[i];
            list.Add((Encoding.Latin1.GetString(Name(e)), Encoding.Latin1.GetString(Value(e))));
        }
        return list;
    }

    private int Slot(int i)
    {
        if ((uint)i >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(i), i, $"the dynamic table has {Count} entries");
        }
        return (_oldest + Count - 1 - i) % _entries.Length;
    }

    private void EvictOldest()
    {
        ref readonly var e = ref _entries[_oldest];
        Size -= e.NameLength + e.ValueLength + EntryOverhead;
        _oldest = (_oldest + 1) % _entries.Length;
        Count--;
        if (Count == 0)
        {
            _oldest = 0;
            _byteTail = 0;
        }
    }

    /// <summary>Empties the table (what adding an entry larger than the maximum size does).</summary>
    public void Clear()
    {
        Count = 0;
        Size = 0;
        _oldest = 0;
        _byteTail = 0;
    }

    /// <summary>
    /// Makes room for <paramref name="bytesNeeded"/> live bytes and one more entry: doubles whichever ring is
    /// short (up to what the maximum size can hold) and packs the entries, oldest first, from offset 0.
    /// </summary>
    private void Grow(int bytesNeeded)
    {
        var capacity = _capacity;
        if (bytesNeeded > capacity)
        {
            capacity = Math.Max(bytesNeeded, Math.Min(Math.Max(MinBytes, 2 * capacity), MaxSize));
        }
        var slots = _entries.Length;
        if (Count == slots)
        {
            slots = Math.Max(Count + 1, Math.Min(Math.Max(MinEntries, 2 * slots), (MaxSize / EntryOverhead) + 1));
        }
        var bytes = capacity == _capacity ? _bytes : new byte[2 * capacity];
        var entries = new Entry[slots];
        var offset = 0;
        for (var i = 0; i < Count; i++)
        {
            var e = this[Count - 1 - i];
            var length = e.NameLength + e.ValueLength;
            if (!ReferenceEquals(bytes, _bytes))
            {
                _bytes.AsSpan(e.Offset, length).CopyTo(bytes.AsSpan(offset));
                e = e with { Offset = offset };
                offset += length;
            }
            entries[i] = e;
        }
        if (!ReferenceEquals(bytes, _bytes))
        {
            _byteTail = offset;
        }
        _bytes = bytes;
        _capacity = capacity;
        _entries = entries;
        _oldest = 0;
    }

    /// <summary>
    /// One entry: where its bytes start in the ring and how long its name and value are, and the lowest
    /// static-table index with the same name (0 if none), so a decoder reports it without comparing bytes.
    /// </summary>
    internal readonly record struct Entry(int Offset, int NameLength, int ValueLength, int StaticNameIndex);
}
