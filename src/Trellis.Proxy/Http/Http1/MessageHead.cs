using System.Buffers;
using System.Text;

namespace Trellis.Proxy.Http.Http1;

/// <summary>What reading a message head found.</summary>
internal enum HeadStatus { Incomplete, Complete, Malformed, TooLarge, TooManyFields }

/// <summary>The header fields the proxy interprets; every other field is forwarded as the bytes it came in.</summary>
internal enum FieldKind : byte { Other, Host, ContentLength, TransferEncoding, Connection, KeepAlive, ProxyConnection, TE, Trailer, Upgrade, Expect, Cookie }

/// <summary>One header line, as offsets into the head's buffer.</summary>
internal struct HeadField
{
    public int Start;
    public int NameLength;
    public int ValueStart;
    public int ValueEnd;
    public int End;
    public FieldKind Kind;

    /// <summary>Hop-by-hop (RFC 9110 7.6.1): not forwarded (Connection, the fields it names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade).</summary>
    public bool HopByHop;
}

/// <summary>
/// A request or response head in HTTP/1.1 syntax (RFC 9112), copied into a buffer owned by the connection and
/// parsed into offsets: only framing and routing fields are interpreted; field lines are forwarded byte for byte.
/// Parsing is strict where leniency enables request smuggling: bare LF or CR, obs-fold, whitespace before the colon,
/// conflicting Content-Length, Transfer-Encoding not ending in chunked, both framings at once.
/// One instance per connection is reused for every message (no allocation per request once warm).
/// </summary>
internal abstract class MessageHead : IDisposable
{
    /// <summary>Largest head accepted (request or status line plus fields plus the empty line).</summary>
    public const int MaxBytes = 60 * 1024;

    /// <summary>Most header fields accepted.</summary>
    public const int MaxFields = 100;

    private readonly HeadField[] _fields = new HeadField[MaxFields];
    private readonly List<Range> _connectionTokens = [];
    private byte[] _buffer = [];

    public int Length { get; private set; }

    /// <summary>What was wrong when parsing answered <see cref="HeadStatus.Malformed"/> (for the error body).</summary>
    public string Problem { get; protected set; } = "";

    /// <summary>The problem <see cref="FindEnd"/> reports as <see cref="HeadStatus.Malformed"/>.</summary>
    public const string BareLf = "a line ends in LF without CR";

    /// <summary>Index just after the request or status line's CRLF.</summary>
    public int FirstLineEnd { get; private set; }

    public int FieldCount { get; private set; }

    /// <summary>The declared Content-Length, or -1.</summary>
    public long ContentLength { get; private set; }

    public bool HasTransferEncoding { get; private set; }

    /// <summary>
    /// Content-Length came as a list ("5, 5") or in several fields, all with one value: forwarded as a single field
    /// with that value, so the next hop cannot read it differently.
    /// </summary>
    public bool ContentLengthRepeated { get; private set; }

    /// <summary>Transfer-Encoding's final coding is chunked (and chunked appears once).</summary>
    public bool Chunked { get; private set; }

    /// <summary>Transfer-Encoding is present but its final coding is not chunked.</summary>
    protected bool TransferEncodingNotChunked { get; private set; }

    public bool ConnectionClose { get; private set; }
    public bool ConnectionKeepAlive { get; private set; }
    public bool ConnectionUpgrade { get; private set; }

    /// <summary>The Upgrade field's index, or -1.</summary>
    public int UpgradeField { get; private set; }

    /// <summary>The message says HTTP/1.0 (else HTTP/1.1).</summary>
    public bool IsHttp10 { get; protected set; }

    public ReadOnlySpan<byte> Bytes => _buffer.AsSpan(0, Length);

    public ref readonly HeadField Field(int i) => ref _fields[i];

    public ReadOnlySpan<byte> Name(int i) => _buffer.AsSpan(_fields[i].Start, _fields[i].NameLength);

    public ReadOnlySpan<byte> Value(int i) => _buffer.AsSpan(_fields[i].ValueStart, _fields[i].ValueEnd - _fields[i].ValueStart);

    /// <summary>The whole field line including its CRLF, as received.</summary>
    public ReadOnlySpan<byte> Line(int i) => _buffer.AsSpan(_fields[i].Start, _fields[i].End - _fields[i].Start);

    /// <summary>
    /// Looks for the end of a head in the bytes buffered so far: <paramref name="start"/> skips empty lines before the
    /// first line (RFC 9112 2.2), <paramref name="end"/> is just after the empty line. Every LF must follow a CR.
    /// </summary>
    public static HeadStatus FindEnd(ReadOnlySpan<byte> data, out int start, out int end)
    {
        end = -1;
        start = 0;
        while (start + 1 < data.Length && data[start] == '\r' && data[start + 1] == '\n' && start < MaxBytes)
        {
            start += 2;
        }
        var lineStart = start;
        var lines = 0;
        while (true)
        {
            var rel = data[lineStart..].IndexOf((byte)'\n');
            if (rel < 0)
            {
                return data.Length - start > MaxBytes ? HeadStatus.TooLarge : HeadStatus.Incomplete;
            }
            var lf = lineStart + rel;
            if (lf == lineStart || data[lf - 1] != '\r')
            {
                return HeadStatus.Malformed; // bare LF
            }
            if (lf - 1 == lineStart)
            {
                end = lf + 1;
                return end - start > MaxBytes ? HeadStatus.TooLarge : HeadStatus.Complete;
            }
            if (++lines > MaxFields + 1)
            {
                return HeadStatus.TooManyFields;
            }
            lineStart = lf + 1;
        }
    }

    /// <summary>Copies a complete head (as found by <see cref="FindEnd"/>, leading empty lines excluded) and parses it.</summary>
    public HeadStatus Load(in ReadOnlySequence<byte> head)
    {
        var length = (int)head.Length;
        if (_buffer.Length < length)
        {
            Return();
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 2048));
        }
        head.CopyTo(_buffer);
        Length = length;
        return Parse();
    }

    private HeadStatus Parse()
    {
        FieldCount = 0;
        ContentLength = -1;
        HasTransferEncoding = Chunked = TransferEncodingNotChunked = ContentLengthRepeated = false;
        ConnectionClose = ConnectionKeepAlive = ConnectionUpgrade = false;
        UpgradeField = -1;
        _connectionTokens.Clear();
        Problem = "";
        Reset();

        var bytes = _buffer.AsSpan(0, Length);
        var firstLf = bytes.IndexOf((byte)'\n');
        FirstLineEnd = firstLf + 1;
        var firstLine = bytes[..(firstLf - 1)];
        if (firstLine.Contains((byte)'\r') || !ParseFirstLine(firstLine))
        {
            Problem = Problem.Length > 0 ? Problem : "the first line is not 'METHOD TARGET HTTP/1.x' (or 'HTTP/1.x STATUS REASON')";
            return HeadStatus.Malformed;
        }

        var pos = FirstLineEnd;
        while (true)
        {
            var lf = pos + bytes[pos..].IndexOf((byte)'\n');
            var lineEnd = lf - 1;
            if (lineEnd == pos)
            {
                break;
            }
            var line = bytes[pos..lineEnd];
            if (line[0] is (byte)' ' or (byte)'\t')
            {
                Problem = "a header line starts with whitespace (obsolete line folding)";
                return HeadStatus.Malformed;
            }
            if (line.Contains((byte)'\r'))
            {
                Problem = "a header line holds a CR without LF";
                return HeadStatus.Malformed;
            }
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || !HttpSyntax.IsToken(line[..colon]))
            {
                Problem = "a header name is empty or holds characters not allowed in a token (whitespace before ':'?)";
                return HeadStatus.Malformed;
            }
            if (!HttpSyntax.IsFieldValue(line[(colon + 1)..]))
            {
                Problem = "a header value holds a control character";
                return HeadStatus.Malformed;
            }
            if (FieldCount == MaxFields)
            {
                return HeadStatus.TooManyFields;
            }
            var (trimStart, trimEnd) = HttpSyntax.OwsBounds(line[(colon + 1)..]);
            var valueStart = pos + colon + 1 + trimStart;
            var valueEnd = pos + colon + 1 + trimEnd;
            _fields[FieldCount++] = new HeadField
            {
                Start = pos,
                NameLength = colon,
                ValueStart = valueStart,
                ValueEnd = valueEnd,
                End = lf + 1,
                Kind = Classify(line[..colon]),
            };
            pos = lf + 1;
        }
        return Interpret() ? Validate() : HeadStatus.Malformed;
    }

    private static FieldKind Classify(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 when HttpSyntax.EqualsLower(name, "te") => FieldKind.TE,
        4 when HttpSyntax.EqualsLower(name, "host") => FieldKind.Host,
        6 when HttpSyntax.EqualsLower(name, "expect") => FieldKind.Expect,
        6 when HttpSyntax.EqualsLower(name, "cookie") => FieldKind.Cookie,
        7 when HttpSyntax.EqualsLower(name, "trailer") => FieldKind.Trailer,
        7 when HttpSyntax.EqualsLower(name, "upgrade") => FieldKind.Upgrade,
        10 when HttpSyntax.EqualsLower(name, "connection") => FieldKind.Connection,
        10 when HttpSyntax.EqualsLower(name, "keep-alive") => FieldKind.KeepAlive,
        14 when HttpSyntax.EqualsLower(name, "content-length") => FieldKind.ContentLength,
        16 when HttpSyntax.EqualsLower(name, "proxy-connection") => FieldKind.ProxyConnection,
        17 when HttpSyntax.EqualsLower(name, "transfer-encoding") => FieldKind.TransferEncoding,
        _ => FieldKind.Other,
    };

    /// <summary>Reads the framing and connection fields; false when they are malformed or conflicting.</summary>
    private bool Interpret()
    {
        var chunkedCount = 0;
        var lastIsChunked = false;
        for (var i = 0; i < FieldCount; i++)
        {
            ref var f = ref _fields[i];
            var value = _buffer.AsSpan(f.ValueStart, f.ValueEnd - f.ValueStart);
            switch (f.Kind)
            {
                case FieldKind.ContentLength:
                    {
                        // Repeated fields or list values are accepted only when every value is the same (RFC 9110 8.6).
                        var n = HttpSyntax.ParseContentLength(value);
                        if (n < 0 || (ContentLength >= 0 && n != ContentLength))
                        {
                            Problem = n < 0 ? "Content-Length is not a number, or lists differing values" : "Content-Length fields disagree";
                            return false;
                        }
                        ContentLengthRepeated |= ContentLength >= 0 || value.Contains((byte)',');
                        ContentLength = n;
                        break;
                    }
                case FieldKind.TransferEncoding:
                    {
                        HasTransferEncoding = true;
                        var next = 0;
                        while ((next = HttpSyntax.NextListElement(value, next, out var element)) >= 0)
                        {
                            lastIsChunked = HttpSyntax.EqualsLower(value[element], "chunked");
                            chunkedCount += lastIsChunked ? 1 : 0;
                        }
                        break;
                    }
                case FieldKind.Connection:
                    {
                        f.HopByHop = true;
                        var next = 0;
                        while ((next = HttpSyntax.NextListElement(value, next, out var element)) >= 0)
                        {
                            var token = value[element];
                            if (HttpSyntax.EqualsLower(token, "close"))
                            {
                                ConnectionClose = true;
                            }
                            else if (HttpSyntax.EqualsLower(token, "keep-alive"))
                            {
                                ConnectionKeepAlive = true;
                            }
                            else if (HttpSyntax.EqualsLower(token, "upgrade"))
                            {
                                ConnectionUpgrade = true;
                            }
                            else
                            {
                                var (offset, length) = element.GetOffsetAndLength(value.Length);
                                _connectionTokens.Add(new Range(f.ValueStart + offset, f.ValueStart + offset + length));
                            }
                        }
                        break;
                    }
                case FieldKind.Upgrade:
                    f.HopByHop = true;
                    UpgradeField = UpgradeField < 0 ? i : UpgradeField;
                    break;
                case FieldKind.KeepAlive or FieldKind.ProxyConnection or FieldKind.TE or FieldKind.Trailer:
                    f.HopByHop = true;
                    break;
            }
        }
        if (HasTransferEncoding)
        {
            if (chunkedCount > 1 || (chunkedCount == 1 && !lastIsChunked))
            {
                Problem = "Transfer-Encoding applies chunked twice, or not as the final coding";
                return false;
            }
            Chunked = lastIsChunked;
            TransferEncodingNotChunked = !lastIsChunked;
        }
        // Fields named by Connection are hop-by-hop too.
        foreach (var token in _connectionTokens)
        {
            var name = _buffer.AsSpan(token);
            for (var i = 0; i < FieldCount; i++)
            {
                if (!_fields[i].HopByHop && HttpSyntax.EqualsIgnoreCase(Name(i), name))
                {
                    _fields[i].HopByHop = true;
                }
            }
        }
        return true;
    }

    /// <summary>Parses the request line or status line (without its CRLF).</summary>
    protected abstract bool ParseFirstLine(ReadOnlySpan<byte> line);

    /// <summary>Clears what the subclass parsed from the previous message.</summary>
    protected abstract void Reset();

    /// <summary>Rules that differ for requests and responses; runs after the fields were read.</summary>
    protected abstract HeadStatus Validate();

    /// <summary>The message asks to keep the connection open (HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive").</summary>
    public bool KeepAlive => !ConnectionClose && (!IsHttp10 || ConnectionKeepAlive);

    /// <summary>The index of the first field with this name (any case), or -1.</summary>
    public int Find(string name)
    {
        for (var i = 0; i < FieldCount; i++)
        {
            if (Ascii.EqualsIgnoreCase(Name(i), name))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The value of field <paramref name="i"/> as a string (Latin-1, byte for char).</summary>
    public string ValueString(int i) => Encoding.Latin1.GetString(Value(i));

    private void Return()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }

    public void Dispose() => Return();
}
