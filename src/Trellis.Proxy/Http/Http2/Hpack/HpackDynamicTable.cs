using System.Text;

namespace Trellis.Proxy.Http.Http2.Hpack;

/// <summary>
/// The HPACK dynamic table (RFC 7541 sections 2.3.2 and 4): a FIFO of fields, newest first, whose size (name +
/// value + 32 per entry) never exceeds <see cref="MaxSize"/>; adding evicts from the oldest end, and an entry
/// larger than the maximum empties the table.
/// <para>
/// Storage is allocated once per capacity: the bytes of all entries live in one ring of <c>capacity</c> bytes,
/// each entry's name then value contiguous from its offset. The ring's array is twice the capacity and an entry
/// that runs past the end of the ring is also copied to its start, so every entry can be read as one span at
/// [offset, offset + length) while the ring still wraps. Entries' lengths live in a second ring of small structs
/// (at most capacity / 32 of them). Live bytes plus a new entry never exceed the capacity, so a write never
/// overlaps a live entry.
/// </para>
/// </summary>
internal sealed class HpackDynamicTable
{
    /// <summary>The overhead RFC 7541 section 4.1 adds to each entry's name and value lengths.</summary>
    public const int EntryOverhead = 32;

    private byte[] _bytes;
    private int _capacity;
    private Entry[] _entries;
    private int _oldest;      // slot of the oldest entry in _entries
    private int _byteTail;    // ring offset where the next entry's bytes go

    public HpackDynamicTable(int capacity, int maxSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxSize, capacity);
        _capacity = capacity;
        _bytes = new byte[2 * capacity];
        _entries = new Entry[(capacity / EntryOverhead) + 1];
        MaxSize = maxSize;
    }

    /// <summary>Number of entries.</summary>
    public int Count { get; private set; }

    /// <summary>Sum of the entries' sizes (name + value + 32 each).</summary>
    public int Size { get; private set; }

    /// <summary>The current maximum size (the last dynamic table size update).</summary>
    public int MaxSize { get; private set; }

    /// <summary>The largest maximum size this table can take without reallocating.</summary>
    public int Capacity => _capacity;

    /// <summary>Entry <paramref name="i"/>, 0 being the newest (HPACK index 62).</summary>
    public ref readonly Entry this[int i] => ref _entries[Slot(i)];

    public ReadOnlySpan<byte> Name(in Entry entry) => _bytes.AsSpan(entry.Offset, entry.NameLength);

    public ReadOnlySpan<byte> Value(in Entry entry) => _bytes.AsSpan(entry.Offset + entry.NameLength, entry.ValueLength);

    /// <summary>Sets the maximum size, evicting from the oldest end until the entries fit; grows the storage if needed.</summary>
    public void SetMaxSize(int maxSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxSize);
        if (maxSize > _capacity)
        {
            Grow(maxSize);
        }
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
        var offset = _byteTail;
        var length = name.Length + value.Length;
        name.CopyTo(_bytes.AsSpan(offset));
        value.CopyTo(_bytes.AsSpan(offset + name.Length));
        var end = offset + length;
        if (end > _capacity)
        {
            // The entry wraps: its bytes past the end also belong at the start of the ring.
            _bytes.AsSpan(_capacity, end - _capacity).CopyTo(_bytes);
            end -= _capacity;
        }
        _byteTail = end == _capacity ? 0 : end;
        _entries[(_oldest + Count) % _entries.Length] = new Entry(offset, name.Length, value.Length, staticNameIndex);
        Count++;
        Size += size;
    }

    /// <summary>
    /// The newest entry whose name and value equal the given ones (its position, 0 newest), or -1;
    /// <paramref name="nameMatch"/> is the newest entry with that name, or -1.
    /// </summary>
    public int Find(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, out int nameMatch)
    {
        nameMatch = -1;
        var entries = _entries;
        var slot = (_oldest + Count - 1) % entries.Length;
        for (var i = 0; i < Count; i++)
        {
            ref readonly var e = ref entries[slot];
            if (e.NameLength == name.Length && _bytes.AsSpan(e.Offset, e.NameLength).SequenceEqual(name))
            {
                if (e.ValueLength == value.Length && _bytes.AsSpan(e.Offset + e.NameLength, e.ValueLength).SequenceEqual(value))
                {
                    return i;
                }
                if (nameMatch < 0)
                {
                    nameMatch = i;
                }
            }
            slot = slot == 0 ? entries.Length - 1 : slot - 1;
        }
        return -1;
    }

    /// <summary>The newest entry with this name (its position, 0 newest), or -1.</summary>
    public int FindName(ReadOnlySpan<byte> name)
    {
        var entries = _entries;
        var slot = (_oldest + Count - 1) % entries.Length;
        for (var i = 0; i < Count; i++)
        {
            ref readonly var e = ref entries[slot];
            if (e.NameLength == name.Length && _bytes.AsSpan(e.Offset, e.NameLength).SequenceEqual(name))
            {
                return i;
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

    private void Grow(int capacity)
    {
        var oldBytes = _bytes;
        var old = new Entry[Count];
        for (var i = 0; i < Count; i++)
        {
            old[i] = this[Count - 1 - i]; // oldest first
        }
        _capacity = capacity;
        _bytes = new byte[2 * capacity];
        _entries = new Entry[(capacity / EntryOverhead) + 1];
        var max = MaxSize;
        Clear();
        MaxSize = capacity;
        foreach (var e in old)
        {
            Add(oldBytes.AsSpan(e.Offset, e.NameLength), oldBytes.AsSpan(e.Offset + e.NameLength, e.ValueLength), e.StaticNameIndex);
        }
        MaxSize = max;
    }

    /// <summary>
    /// One entry: where its bytes start in the ring and how long its name and value are, and the lowest
    /// static-table index with the same name (0 if none), so a decoder reports it without comparing bytes.
    /// </summary>
    internal readonly record struct Entry(int Offset, int NameLength, int ValueLength, int StaticNameIndex);
}
