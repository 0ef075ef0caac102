using System.Buffers;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>
/// A field block arriving in pieces (HEADERS without END_HEADERS, then CONTINUATION frames), joined in a pooled
/// buffer until it is complete and can be decoded. One per connection direction; a mutable struct kept in a field.
/// </summary>
internal struct Http2FieldBlock
{
    private byte[]? _buffer;
    private int _length;

    /// <summary>The stream the block belongs to.</summary>
    public int StreamId { get; private set; }

    /// <summary>The HEADERS frame carried END_STREAM.</summary>
    public bool EndStream { get; private set; }

    /// <summary>The bytes joined so far.</summary>
    public readonly ReadOnlySpan<byte> Bytes => _buffer.AsSpan(0, _length);

    /// <summary>Starts a block with a HEADERS frame.</summary>
    public void Start(int streamId, bool endStream)
    {
        _length = 0;
        StreamId = streamId;
        EndStream = endStream;
    }

    /// <summary>Appends a frame's payload; false (nothing appended) when the block would exceed <paramref name="limit"/>.</summary>
    public bool TryAppend(in ReadOnlySequence<byte> payload, int limit)
    {
        var length = (int)payload.Length;
        if (_length + length > limit)
        {
            return false;
        }
        PooledArrays.Grow(ref _buffer, _length, _length + length, 4096);
        payload.CopyTo(_buffer.AsSpan(_length));
        _length += length;
        return true;
    }

    /// <summary>Returns the buffer to the pool.</summary>
    public void Release()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
        _length = 0;
    }
}

/// <summary>Growth of arrays rented from <see cref="ArrayPool{T}.Shared"/>.</summary>
internal static class PooledArrays
{
    /// <summary>
    /// Makes <paramref name="array"/> hold at least <paramref name="needed"/> items: when it is null or smaller, a
    /// larger one (at least <paramref name="minimum"/>) is rented, the first <paramref name="used"/> items are
    /// copied over and the old array goes back to the pool.
    /// </summary>
    public static void Grow<T>([System.Diagnostics.CodeAnalysis.NotNull] ref T[]? array, int used, int needed, int minimum)
    {
        if (array is not null && array.Length >= needed)
        {
            return;
        }
        var grown = ArrayPool<T>.Shared.Rent(Math.Max(needed, minimum));
        if (array is not null)
        {
            array.AsSpan(0, used).CopyTo(grown);
            ArrayPool<T>.Shared.Return(array);
        }
        array = grown;
    }
}
