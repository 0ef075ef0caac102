using System.Text;

namespace Trellis.Proxy.Http.Http1;

/// <summary>
/// A parsed HTTP/1.x request head. Also the header view routing reads (<see cref="IRequestHeaders"/>), so a route
/// that matches on a header costs one string for that header's value and nothing for the others.
/// </summary>
internal sealed class RequestHead : MessageHead, IRequestHeaders
{
    private static readonly string[] KnownMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"];

    private readonly LastString _methodCache = new();
    private readonly LastString _pathCache = new();
    private readonly LastString _authorityCache = new();

    public int MethodLength { get; private set; }
    public int TargetStart { get; private set; }
    public int TargetEnd { get; private set; }

    /// <summary>Where the origin-form part (path and query) of the target starts; after the authority for absolute-form.</summary>
    public int PathStart { get; private set; }

    /// <summary>For an absolute-form target (http://host/path), the authority's range in the buffer; else default.</summary>
    public Range TargetAuthority { get; private set; }

    public bool HasTargetAuthority { get; private set; }

    /// <summary>The Host field's index, or -1.</summary>
    public int HostField { get; private set; }

    /// <summary>Expect: 100-continue.</summary>
    public bool Expect100 { get; private set; }

    public ReadOnlySpan<byte> MethodBytes => Bytes[..MethodLength];

    /// <summary>Path and query as sent upstream (origin-form, "/" when an absolute-form target has no path).</summary>
    public ReadOnlySpan<byte> PathBytes => Bytes[PathStart..TargetEnd];

    public bool IsHead => MethodLength == 4 && MethodBytes.SequenceEqual("HEAD"u8);

    public bool IsConnect => MethodLength == 7 && MethodBytes.SequenceEqual("CONNECT"u8);

    /// <summary>A body follows the head (Content-Length above 0, or chunked).</summary>
    public bool HasBody => Chunked || ContentLength > 0;

    /// <summary>The client asks to switch protocols (Connection: upgrade with an Upgrade field).</summary>
    public bool IsUpgrade => ConnectionUpgrade && UpgradeField >= 0;

    /// <summary>The method as a string (known methods without allocating).</summary>
    public string Method
    {
        get
        {
            var m = MethodBytes;
            foreach (var known in KnownMethods)
            {
                if (m.Length == known.Length && Ascii.Equals(m, known))
                {
                    return known;
                }
            }
            return _methodCache.Get(m);
        }
    }

    /// <summary>Path and query as a string (the last one is reused when the next request has the same).</summary>
    public string Path => PathBytes.IsEmpty ? "/" : _pathCache.Get(PathBytes);

    /// <summary>The authority: from an absolute-form target, else the Host field; "" when neither.</summary>
    public string Authority =>
        HasTargetAuthority ? _authorityCache.Get(Bytes[TargetAuthority]) : HostField >= 0 ? _authorityCache.Get(Value(HostField)) : "";

    public string? Get(string name)
    {
        var i = Find(name);
        return i < 0 ? null : ValueString(i);
    }

    protected override void Reset()
    {
        MethodLength = TargetStart = TargetEnd = PathStart = 0;
        TargetAuthority = default;
        HasTargetAuthority = false;
        HostField = -1;
        Expect100 = false;
    }

    protected override bool ParseFirstLine(ReadOnlySpan<byte> line)
    {
        var sp1 = line.IndexOf((byte)' ');
        if (sp1 <= 0 || !HttpSyntax.IsToken(line[..sp1]))
        {
            return false;
        }
        var rest = line[(sp1 + 1)..];
        var sp2 = rest.IndexOf((byte)' ');
        if (sp2 <= 0 || !HttpSyntax.IsTarget(rest[..sp2]))
        {
            return false;
        }
        var version = rest[(sp2 + 1)..];
        if (version.SequenceEqual("HTTP/1.1"u8))
        {
            IsHttp10 = false;
        }
        else if (version.SequenceEqual("HTTP/1.0"u8))
        {
            IsHttp10 = true;
        }
        else
        {
            Problem = "the HTTP version is not HTTP/1.1 or HTTP/1.0";
            return false;
        }
        MethodLength = sp1;
        TargetStart = sp1 + 1;
        TargetEnd = TargetStart + sp2;
        PathStart = TargetStart;
        var target = line[TargetStart..TargetEnd];
        if (target.Length > 7 && HttpSyntax.EqualsLower(target[..7], "http://"))
        {
            // absolute-form (a client configured to use the proxy): the authority replaces Host (RFC 9112 3.2.2).
            var afterScheme = TargetStart + 7;
            var slash = line[afterScheme..TargetEnd].IndexOfAny((byte)'/', (byte)'?');
            var authorityEnd = slash < 0 ? TargetEnd : afterScheme + slash;
            if (authorityEnd == afterScheme)
            {
                return false;
            }
            TargetAuthority = new Range(afterScheme, authorityEnd);
            HasTargetAuthority = true;
            PathStart = authorityEnd;
        }
        else if (target[0] != '/' && !(target.Length == 1 && target[0] == '*'))
        {
            Problem = "the request target is neither a path nor http://authority/path (CONNECT is not proxied)";
            return false;
        }
        return true;
    }

    protected override HeadStatus Validate()
    {
        var hosts = 0;
        for (var i = 0; i < FieldCount; i++)
        {
            ref readonly var f = ref Field(i);
            if (f.Kind == FieldKind.Host)
            {
                hosts++;
                HostField = HostField < 0 ? i : HostField;
            }
            else if (f.Kind == FieldKind.Expect && HttpSyntax.EqualsLower(Value(i), "100-continue"))
            {
                Expect100 = true;
            }
        }
        // RFC 9112 3.2: exactly one Host in HTTP/1.1 (at most one in 1.0).
        if (hosts > 1 || (hosts == 0 && !IsHttp10))
        {
            Problem = hosts > 1 ? "more than one Host field" : "an HTTP/1.1 request without Host";
            return HeadStatus.Malformed;
        }
        // RFC 9112 6.1 and 6.3: Transfer-Encoding with Content-Length, in HTTP/1.0, or without chunked as the final
        // coding cannot be framed safely: reject (and close) rather than guess.
        if (HasTransferEncoding && (ContentLength >= 0 || IsHttp10 || TransferEncodingNotChunked))
        {
            Problem = ContentLength >= 0 ? "both Content-Length and Transfer-Encoding"
                : IsHttp10 ? "Transfer-Encoding in an HTTP/1.0 request"
                : "Transfer-Encoding does not end in chunked";
            return HeadStatus.Malformed;
        }
        return HeadStatus.Complete;
    }

    /// <summary>The last string made from some bytes, reused while the next bytes are the same.</summary>
    private sealed class LastString
    {
        private byte[] _bytes = [];
        private int _length;
        private string _value = "";

        public string Get(ReadOnlySpan<byte> bytes)
        {
            if (bytes.SequenceEqual(_bytes.AsSpan(0, _length)))
            {
                return _value;
            }
            if (_bytes.Length < bytes.Length)
            {
                _bytes = new byte[Math.Max(bytes.Length, 64)];
            }
            bytes.CopyTo(_bytes);
            _length = bytes.Length;
            _value = Encoding.Latin1.GetString(bytes);
            return _value;
        }
    }
}

/// <summary>A parsed HTTP/1.x response head from an upstream.</summary>
internal sealed class ResponseHead : MessageHead
{
    public int Status { get; private set; }

    /// <summary>The status line from the status code on ("200 OK"), forwarded after the proxy's own "HTTP/1.1 ".</summary>
    public ReadOnlySpan<byte> StatusText => Bytes[9..(FirstLineEnd - 2)];

    /// <summary>Transfer-Encoding without chunked last: the body runs until the upstream closes.</summary>
    public bool UntilClose => TransferEncodingNotChunked;

    protected override void Reset() => Status = 0;

    protected override bool ParseFirstLine(ReadOnlySpan<byte> line)
    {
        // HTTP-version SP 3DIGIT [SP reason-phrase]
        if (line.Length < 12 || !line[..7].SequenceEqual("HTTP/1."u8) || line[7] is not ((byte)'0' or (byte)'1') || line[8] != ' ')
        {
            return false;
        }
        IsHttp10 = line[7] == '0';
        var code = line[9..12];
        if ((uint)(code[0] - '1') > 4 || (uint)(code[1] - '0') > 9 || (uint)(code[2] - '0') > 9 || (line.Length > 12 && line[12] != ' '))
        {
            return false;
        }
        Status = ((code[0] - '0') * 100) + ((code[1] - '0') * 10) + (code[2] - '0');
        return true;
    }

    protected override HeadStatus Validate() =>
        // A response with both framings may be an attempt at response splitting: treat it as malformed (502).
        HasTransferEncoding && ContentLength >= 0 ? HeadStatus.Malformed : HeadStatus.Complete;
}
