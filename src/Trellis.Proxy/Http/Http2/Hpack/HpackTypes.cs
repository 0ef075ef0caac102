namespace Trellis.Proxy.Http.Http2.Hpack;

/// <summary>How decoding a header block ended.</summary>
internal enum HpackStatus
{
    /// <summary>The block was decoded and every field was given to the sink.</summary>
    Ok,

    /// <summary>
    /// The block is malformed (RFC 9113: a connection error of type COMPRESSION_ERROR). The decoder's dynamic
    /// table can no longer be trusted; the connection must close. <see cref="HpackDecoder.LastError"/> says why.
    /// </summary>
    CompressionError,

    /// <summary>
    /// The decoded header list is larger than the decoder's limit (name + value + 32 per field). The whole block
    /// was still processed, so the dynamic table is in sync and the connection can go on; the stream is refused.
    /// The sink got the fields up to the one that crossed the limit, not that one nor any after it.
    /// </summary>
    HeaderListTooLarge,
}

/// <summary>How the encoder writes a literal field (RFC 7541 section 6.2).</summary>
internal enum HpackIndexing
{
    /// <summary>Literal with incremental indexing: the field is added to the dynamic table (unless it is too large).</summary>
    Incremental,

    /// <summary>Literal without indexing: the field is not added to the dynamic table.</summary>
    WithoutIndexing,

    /// <summary>
    /// Literal never indexed: for sensitive values (authorization, cookie ...). Neither this encoder nor any
    /// intermediary that re-encodes the field may index it or refer to an indexed copy of it.
    /// </summary>
    NeverIndexed,
}

/// <summary>Receives the fields of a header block, in order, as <see cref="HpackDecoder"/> decodes them.</summary>
internal interface IHpackSink
{
    /// <summary>
    /// One field. <paramref name="staticNameIndex"/> is the lowest static-table index whose name equals
    /// <paramref name="name"/> (see <see cref="HpackStaticTable"/>: 1 :authority, 2 :method, 4 :path, 6 :scheme,
    /// 8 :status, 28 content-length ...), or 0 when the name is not in the static table. It is set however the
    /// field was represented (static or dynamic index, or literal name), so the caller never has to compare
    /// bytes to recognise a static name. The spans are only valid during the call.
    /// </summary>
    void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value);
}

/// <summary>A sink that drops every field: decodes a block only to keep the dynamic table in step.</summary>
internal struct HpackDiscardSink : IHpackSink
{
    public readonly void OnHeader(int staticNameIndex, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
    }
}
