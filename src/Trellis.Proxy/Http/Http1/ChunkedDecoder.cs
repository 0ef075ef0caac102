using System.Buffers;

namespace Trellis.Proxy.Http.Http1;

/// <summary>What one step of chunked decoding reached.</summary>
internal enum ChunkedStatus { NeedMore, Done, Malformed }

/// <summary>
/// Streams a chunked body (RFC 9112 section 7.1) from input to output, validating its framing strictly: the chunk
/// size is 1-15 hex digits, extensions may follow after ';' (dropped), every line ends in CRLF, chunk data is
/// followed by CRLF, trailer fields follow field syntax. Output is the same body re-chunked with the same sizes
/// (normalised: no extensions), or only the data when <c>dechunk</c> is set (for HTTP/1.0 clients).
/// Anything else is <see cref="ChunkedStatus.Malformed"/>: the connection cannot be trusted and must close.
/// </summary>
internal struct ChunkedDecoder
{
    private const int MaxLine = 4096;

    private State _state;
    private long _remaining;
    private int _trailerBytes;

    private enum State { Size, Data, DataEnd, Trailer, Done }

    public readonly bool IsDone => _state == State.Done;

    /// <summary>Decodes as much of <paramref name="input"/> as is complete; <paramref name="consumed"/> is where to continue.</summary>
    public ChunkedStatus Process(in ReadOnlySequence<byte> input, IBufferWriter<byte> output, bool dechunk, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(input);
        try
        {
            while (true)
            {
                switch (_state)
                {
                    case State.Size:
                        {
                            if (!reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
                            {
                                return reader.Remaining > MaxLine ? ChunkedStatus.Malformed : ChunkedStatus.NeedMore;
                            }
                            if (!TryParseSize(line, out var size))
                            {
                                return ChunkedStatus.Malformed;
                            }
                            if (!dechunk)
                            {
                                WriteSize(output, size);
                            }
                            _remaining = size;
                            _state = size == 0 ? State.Trailer : State.Data;
                            break;
                        }
                    case State.Data:
                        {
                            if (reader.End)
                            {
                                return ChunkedStatus.NeedMore;
                            }
                            var take = Math.Min(_remaining, reader.Remaining);
                            foreach (var segment in input.Slice(reader.Position, take))
                            {
                                output.Write(segment.Span);
                            }
                            reader.Advance(take);
                            _remaining -= take;
                            if (_remaining == 0)
                            {
                                _state = State.DataEnd;
                            }
                            break;
                        }
                    case State.DataEnd:
                        {
                            if (reader.Remaining < 2)
                            {
                                return reader.Remaining == 1 && !reader.IsNext((byte)'\r') ? ChunkedStatus.Malformed : ChunkedStatus.NeedMore;
                            }
                            if (!reader.IsNext("\r\n"u8, advancePast: true))
                            {
                                return ChunkedStatus.Malformed;
                            }
                            if (!dechunk)
                            {
                                output.Write("\r\n"u8);
                            }
                            _state = State.Size;
                            break;
                        }
                    case State.Trailer:
                        {
                            if (!reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
                            {
                                return _trailerBytes + reader.Remaining > MessageHead.MaxBytes ? ChunkedStatus.Malformed : ChunkedStatus.NeedMore;
                            }
                            _trailerBytes += (int)line.Length + 1;
                            if (_trailerBytes > MessageHead.MaxBytes || !IsTrailerLine(line, out var empty))
                            {
                                return ChunkedStatus.Malformed;
                            }
                            if (!dechunk)
                            {
                                foreach (var segment in line)
                                {
                                    output.Write(segment.Span);
                                }
                                output.Write("\n"u8);
                            }
                            if (empty)
                            {
                                _state = State.Done;
                                return ChunkedStatus.Done;
                            }
                            break;
                        }
                    default:
                        return ChunkedStatus.Done;
                }
            }
        }
        finally
        {
            consumed = reader.Position;
        }
    }

    /// <summary>chunk-size [ chunk-ext ] CR (the LF was consumed): hex digits, then nothing, or BWS ';' and extensions.</summary>
    private static bool TryParseSize(in ReadOnlySequence<byte> lineWithCr, out long size)
    {
        size = 0;
        Span<byte> small = stackalloc byte[64];
        scoped ReadOnlySpan<byte> line;
        if (lineWithCr.IsSingleSegment)
        {
            line = lineWithCr.FirstSpan;
        }
        else if (lineWithCr.Length <= small.Length)
        {
            lineWithCr.CopyTo(small);
            line = small[..(int)lineWithCr.Length];
        }
        else
        {
            line = lineWithCr.ToArray(); // a long extension split across segments: rare
        }
        if (line.IsEmpty || line[^1] != '\r')
        {
            return false; // bare LF
        }
        line = line[..^1];
        var digits = 0;
        while (digits < line.Length && HexValue(line[digits]) >= 0)
        {
            if (digits == 15)
            {
                return false; // would not fit a signed 64-bit length
            }
            size = (size << 4) | (uint)HexValue(line[digits]);
            digits++;
        }
        if (digits == 0)
        {
            return false;
        }
        var rest = line[digits..];
        var ws = 0;
        while (ws < rest.Length && rest[ws] is (byte)' ' or (byte)'\t')
        {
            ws++;
        }
        if (ws == rest.Length)
        {
            return ws == 0; // trailing whitespace without an extension is not allowed
        }
        return rest[ws] == ';' && HttpSyntax.IsFieldValue(rest[(ws + 1)..]);
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };

    private static bool IsTrailerLine(in ReadOnlySequence<byte> lineWithCr, out bool empty)
    {
        var line = lineWithCr.IsSingleSegment ? lineWithCr.FirstSpan : lineWithCr.ToArray();
        empty = line.Length == 1 && line[0] == '\r';
        if (empty)
        {
            return true;
        }
        if (line.IsEmpty || line[^1] != '\r')
        {
            return false;
        }
        line = line[..^1];
        var colon = line.IndexOf((byte)':');
        return colon > 0 && HttpSyntax.IsToken(line[..colon]) && HttpSyntax.IsFieldValue(line[(colon + 1)..]);
    }

    private static void WriteSize(IBufferWriter<byte> output, long size)
    {
        var span = output.GetSpan(20);
        var n = 0;
        var started = false;
        for (var shift = 60; shift >= 0; shift -= 4)
        {
            var nibble = (int)((size >> shift) & 0xF);
            if (nibble != 0 || started || shift == 0)
            {
                started = true;
                span[n++] = (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
            }
        }
        span[n++] = (byte)'\r';
        span[n++] = (byte)'\n';
        output.Advance(n);
    }
}
