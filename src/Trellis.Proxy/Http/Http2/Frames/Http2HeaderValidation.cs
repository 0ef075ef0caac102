using System.Text;

namespace Trellis.Proxy.Http.Http2.Frames;

/// <summary>The pseudo-header fields of RFC 9113 section 8.3 (and RFC 8441's :protocol).</summary>
internal enum Http2PseudoHeader
{
    None,
    Method,
    Scheme,
    Authority,
    Path,
    Protocol,
    Status,
}

/// <summary>Why a field may not be sent or accepted in HTTP/2.</summary>
internal enum Http2FieldProblem
{
    None,

    /// <summary>The name is empty, has upper case, or characters outside tchar (section 8.2.1).</summary>
    InvalidName,

    /// <summary>A connection-specific field (section 8.2.2): connection, keep-alive, proxy-connection,
    /// transfer-encoding, upgrade, or te with a value other than "trailers".</summary>
    ConnectionSpecific,

    /// <summary>The value has NUL, CR or LF, or starts or ends with a space or tab (section 8.2.1).</summary>
    InvalidValue,
}

/// <summary>
/// Field checks of RFC 9113 section 8.2 over raw name and value bytes (as HPACK decodes them), for requests received
/// and for fields forwarded from HTTP/1.1. A message that fails them is malformed: a stream error of type
/// PROTOCOL_ERROR (section 8.1.1). Where pseudo-headers may appear (only the known ones, each once, all before the
/// regular fields, requests and responses apart) is the caller's check; <see cref="IsPseudo"/> and
/// <see cref="GetPseudo"/> help with it.
/// </summary>
internal static class Http2HeaderValidation
{
    /// <summary>
    /// Whether <paramref name="name"/> is a valid HTTP/2 field name: one or more lower-case tchar (RFC 9110 section
    /// 5.6.2), optionally after a single leading ':' for a pseudo-header.
    /// </summary>
    public static bool IsValidName(ReadOnlySpan<byte> name)
    {
        if (!name.IsEmpty && name[0] == (byte)':')
        {
            name = name[1..];
        }
        if (name.IsEmpty)
        {
            return false;
        }
        foreach (var b in name)
        {
            if (!IsLowerTChar(b))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Whether the name is a pseudo-header's (starts with ':').</summary>
    public static bool IsPseudo(ReadOnlySpan<byte> name) => !name.IsEmpty && name[0] == (byte)':';

    /// <summary>Which known pseudo-header <paramref name="name"/> is, or <see cref="Http2PseudoHeader.None"/>.</summary>
    public static Http2PseudoHeader GetPseudo(ReadOnlySpan<byte> name) => name switch
    {
        _ when name.SequenceEqual(":method"u8) => Http2PseudoHeader.Method,
        _ when name.SequenceEqual(":scheme"u8) => Http2PseudoHeader.Scheme,
        _ when name.SequenceEqual(":authority"u8) => Http2PseudoHeader.Authority,
        _ when name.SequenceEqual(":path"u8) => Http2PseudoHeader.Path,
        _ when name.SequenceEqual(":protocol"u8) => Http2PseudoHeader.Protocol,
        _ when name.SequenceEqual(":status"u8) => Http2PseudoHeader.Status,
        _ => Http2PseudoHeader.None,
    };

    /// <summary>
    /// Whether the field is connection-specific and must not appear in HTTP/2 (section 8.2.2). The name must already
    /// be lower case (as a valid HTTP/2 name is); <c>te</c> is allowed only with the value <c>trailers</c>.
    /// </summary>
    public static bool IsConnectionSpecific(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => name.Length switch
    {
        2 => name.SequenceEqual("te"u8) && !Ascii.EqualsIgnoreCase(value, "trailers"u8),
        7 => name.SequenceEqual("upgrade"u8),
        10 => name.SequenceEqual("connection"u8) || name.SequenceEqual("keep-alive"u8),
        16 => name.SequenceEqual("proxy-connection"u8),
        17 => name.SequenceEqual("transfer-encoding"u8),
        _ => false,
    };

    /// <summary>Whether <paramref name="value"/> has no NUL, CR or LF and no leading or trailing space or tab.</summary>
    public static bool IsValidValue(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty)
        {
            return true;
        }
        if (IsWhitespace(value[0]) || IsWhitespace(value[^1]))
        {
            return false;
        }
        return value.IndexOfAny((byte)0, (byte)'\r', (byte)'\n') < 0;
    }

    /// <summary>All three checks; the first problem found, or <see cref="Http2FieldProblem.None"/>.</summary>
    public static Http2FieldProblem Check(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (!IsValidName(name))
        {
            return Http2FieldProblem.InvalidName;
        }
        if (IsConnectionSpecific(name, value))
        {
            return Http2FieldProblem.ConnectionSpecific;
        }
        return IsValidValue(value) ? Http2FieldProblem.None : Http2FieldProblem.InvalidValue;
    }

    private static bool IsWhitespace(byte b) => b is (byte)' ' or (byte)'\t';

    private static bool IsLowerTChar(byte b) => b switch
    {
        >= (byte)'a' and <= (byte)'z' => true,
        >= (byte)'0' and <= (byte)'9' => true,
        (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*' or (byte)'+'
            or (byte)'-' or (byte)'.' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'|' or (byte)'~' => true,
        _ => false,
    };
}
