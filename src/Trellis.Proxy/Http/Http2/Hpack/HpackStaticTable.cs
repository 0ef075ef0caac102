namespace Trellis.Proxy.Http.Http2.Hpack;

/// <summary>
/// The HPACK static table (RFC 7541 Appendix A): 61 fixed entries, indices 1 to 61. The constants name the
/// lowest index of the names a proxy looks at, which is what <see cref="IHpackSink.OnHeader"/> reports.
/// </summary>
internal static class HpackStaticTable
{
    public const int Count = 61;

    public const int Authority = 1;
    public const int Method = 2;
    public const int Path = 4;
    public const int Scheme = 6;
    public const int Status = 8;
    public const int AcceptEncoding = 16;
    public const int Authorization = 23;
    public const int CacheControl = 24;
    public const int ContentEncoding = 26;
    public const int ContentLength = 28;
    public const int ContentType = 31;
    public const int Cookie = 32;
    public const int Date = 33;
    public const int Host = 38;
    public const int Location = 46;
    public const int ProxyAuthorization = 49;
    public const int Server = 54;
    public const int SetCookie = 55;
    public const int TransferEncoding = 57;
    public const int UserAgent = 58;

    private const int SlotBits = 7;

    // index -> lowest index with the same name; name -> lowest index by open addressing over a cheap hash.
    private static readonly byte[] s_firstWithName = BuildFirstWithName();
    private static readonly byte[] s_nameSlots = BuildNameSlots();

    /// <summary>The name of entry <paramref name="index"/> (1 to 61).</summary>
    public static ReadOnlySpan<byte> Name(int index) => index switch
    {
        1 => ":authority"u8,
        2 or 3 => ":method"u8,
        4 or 5 => ":path"u8,
        6 or 7 => ":scheme"u8,
        >= 8 and <= 14 => ":status"u8,
        15 => "accept-charset"u8,
        16 => "accept-encoding"u8,
        17 => "accept-language"u8,
        18 => "accept-ranges"u8,
        19 => "accept"u8,
        20 => "access-control-allow-origin"u8,
        21 => "age"u8,
        22 => "allow"u8,
        23 => "authorization"u8,
        24 => "cache-control"u8,
        25 => "content-disposition"u8,
        26 => "content-encoding"u8,
        27 => "content-language"u8,
        28 => "content-length"u8,
        29 => "content-location"u8,
        30 => "content-range"u8,
        31 => "content-type"u8,
        32 => "cookie"u8,
        33 => "date"u8,
        34 => "etag"u8,
        35 => "expect"u8,
        36 => "expires"u8,
        37 => "from"u8,
        38 => "host"u8,
        39 => "if-match"u8,
        40 => "if-modified-since"u8,
        41 => "if-none-match"u8,
        42 => "if-range"u8,
        43 => "if-unmodified-since"u8,
        44 => "last-modified"u8,
        45 => "link"u8,
        46 => "location"u8,
        47 => "max-forwards"u8,
        48 => "proxy-authenticate"u8,
        49 => "proxy-authorization"u8,
        50 => "range"u8,
        51 => "referer"u8,
        52 => "refresh"u8,
        53 => "retry-after"u8,
        54 => "server"u8,
        55 => "set-cookie"u8,
        56 => "strict-transport-security"u8,
        57 => "transfer-encoding"u8,
        58 => "user-agent"u8,
        59 => "vary"u8,
        60 => "via"u8,
        61 => "www-authenticate"u8,
        _ => throw new ArgumentOutOfRangeException(nameof(index), index, "static table indices are 1 to 61"),
    };

    /// <summary>The value of entry <paramref name="index"/> (1 to 61); empty for most.</summary>
    public static ReadOnlySpan<byte> Value(int index) => index switch
    {
        2 => "GET"u8,
        3 => "POST"u8,
        4 => "/"u8,
        5 => "/index.html"u8,
        6 => "http"u8,
        7 => "https"u8,
        8 => "200"u8,
        9 => "204"u8,
        10 => "206"u8,
        11 => "304"u8,
        12 => "400"u8,
        13 => "404"u8,
        14 => "500"u8,
        16 => "gzip, deflate"u8,
        >= 1 and <= Count => [],
        _ => throw new ArgumentOutOfRangeException(nameof(index), index, "static table indices are 1 to 61"),
    };

    /// <summary>The lowest index whose name equals the name of entry <paramref name="index"/> (e.g. 13 gives 8, :status).</summary>
    public static int FirstWithSameName(int index) => s_firstWithName[index];

    /// <summary>The lowest index whose name is <paramref name="name"/> (exact bytes, so lowercase), or 0.</summary>
    public static int FindName(ReadOnlySpan<byte> name)
    {
        if (name.IsEmpty)
        {
            return 0;
        }
        var mask = (1 << SlotBits) - 1;
        for (var slot = Slot(name); ; slot = (slot + 1) & mask)
        {
            int index = s_nameSlots[slot];
            if (index == 0)
            {
                return 0;
            }
            if (Name(index).SequenceEqual(name))
            {
                return index;
            }
        }
    }

    /// <summary>The index of the entry with this name (given by its lowest index) and value, or 0.</summary>
    public static int FindEntry(int nameIndex, ReadOnlySpan<byte> value)
    {
        for (var i = nameIndex; i <= Count && s_firstWithName[i] == nameIndex; i++)
        {
            if (Value(i).SequenceEqual(value))
            {
                return i;
            }
        }
        return 0;
    }

    private static int Slot(ReadOnlySpan<byte> name)
    {
        var h = (uint)name.Length;
        h = (h * 31) + name[0];
        h = (h * 31) + name[name.Length >> 1];
        h = (h * 31) + name[^1];
        return (int)((h * 0x9E3779B1u) >> (32 - SlotBits));
    }

    private static byte[] BuildFirstWithName()
    {
        var first = new byte[Count + 1];
        for (var i = 1; i <= Count; i++)
        {
            first[i] = i > 1 && Name(i).SequenceEqual(Name(i - 1)) ? first[i - 1] : (byte)i;
        }
        return first;
    }

    private static byte[] BuildNameSlots()
    {
        var slots = new byte[1 << SlotBits];
        var mask = slots.Length - 1;
        for (var i = 1; i <= Count; i++)
        {
            if (s_firstWithName[i] != i)
            {
                continue;
            }
            var slot = Slot(Name(i));
            while (slots[slot] != 0)
            {
                slot = (slot + 1) & mask;
            }
            slots[slot] = (byte)i;
        }
        return slots;
    }
}
