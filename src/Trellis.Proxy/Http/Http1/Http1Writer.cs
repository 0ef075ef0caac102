using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;
using Trellis.Proxy.Model;

namespace Trellis.Proxy.Http.Http1;

/// <summary>
/// Writes HTTP/1.1 heads: the request as forwarded upstream and the response as forwarded downstream (field lines
/// copied byte for byte, except hop-by-hop fields and what a route removes or sets), and the proxy's own answers
/// (errors, direct responses, redirects).
/// </summary>
internal static class Http1Writer
{
    public static void Text(IBufferWriter<byte> w, string s)
    {
        var span = w.GetSpan(Encoding.UTF8.GetMaxByteCount(s.Length));
        w.Advance(Encoding.UTF8.GetBytes(s, span));
    }

    public static void Number(IBufferWriter<byte> w, long n)
    {
        var span = w.GetSpan(20);
        n.TryFormat(span, out var written, default, CultureInfo.InvariantCulture);
        w.Advance(written);
    }

    private static void Field(IBufferWriter<byte> w, string name, string value)
    {
        Text(w, name);
        w.Write(": "u8);
        Text(w, value);
        w.Write("\r\n"u8);
    }

    private static bool Listed(ReadOnlySpan<byte> name, IReadOnlyList<string> names)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (System.Text.Ascii.EqualsIgnoreCase(name, names[i]))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>True when a header mutation list replaces (not appends to) a field of this name.</summary>
    private static bool Replaced(ReadOnlySpan<byte> name, IReadOnlyList<HeaderMutation> mutations)
    {
        for (var i = 0; i < mutations.Count; i++)
        {
            if (!mutations[i].Append && System.Text.Ascii.EqualsIgnoreCase(name, mutations[i].Name))
            {
                return true;
            }
        }
        return false;
    }

    private static void Mutations(IBufferWriter<byte> w, IReadOnlyList<HeaderMutation> mutations)
    {
        for (var i = 0; i < mutations.Count; i++)
        {
            Field(w, mutations[i].Name, mutations[i].Value);
        }
    }

    /// <summary>
    /// The request head for the upstream: request line with the (rewritten) path and HTTP/1.1, every field line as
    /// received except hop-by-hop fields, Expect (answered by the proxy) and what the route removes or sets; Host
    /// replaced by the route's host rewrite or an absolute-form target's authority; then the route's added fields,
    /// and on a retry <c>x-trellis-attempt-count</c> with the try's number (2 for the first retry).
    /// </summary>
    public static void RequestHead(IBufferWriter<byte> w, RequestHead request, RouteModel? route, bool upgrade, int attempt = 1)
    {
        w.Write(request.MethodBytes);
        w.Write(" "u8);
        WritePath(w, request, route);
        w.Write(" HTTP/1.1\r\n"u8);

        var hostOverride = route?.HostRewrite;
        var hostWritten = false;
        for (var i = 0; i < request.FieldCount; i++)
        {
            ref readonly var f = ref request.Field(i);
            if (f.HopByHop && !(upgrade && f.Kind == FieldKind.Upgrade))
            {
                continue;
            }
            if (f.Kind == FieldKind.Expect && request.Expect100)
            {
                continue;
            }
            if (f.Kind == FieldKind.ContentLength && request.ContentLengthRepeated)
            {
                continue;
            }
            if (f.Kind == FieldKind.Host && (hostOverride is not null || request.HasTargetAuthority))
            {
                if (!hostWritten)
                {
                    w.Write("host: "u8);
                    if (hostOverride is not null)
                    {
                        Text(w, hostOverride);
                    }
                    else
                    {
                        w.Write(request.Bytes[request.TargetAuthority]);
                    }
                    w.Write("\r\n"u8);
                    hostWritten = true;
                }
                continue;
            }
            if (route is not null && (Listed(request.Name(i), route.RequestHeadersToRemove) || Replaced(request.Name(i), route.RequestHeadersToAdd)))
            {
                continue;
            }
            w.Write(request.Line(i));
        }
        if (!hostWritten && request.HostField < 0 && request.HasTargetAuthority)
        {
            w.Write("host: "u8);
            w.Write(request.Bytes[request.TargetAuthority]);
            w.Write("\r\n"u8);
        }
        if (request.ContentLengthRepeated)
        {
            ContentLength(w, request.ContentLength);
        }
        if (route is not null)
        {
            Mutations(w, route.RequestHeadersToAdd);
        }
        if (attempt > 1)
        {
            w.Write("x-trellis-attempt-count: "u8);
            Text(w, attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));
            w.Write("\r\n"u8);
        }
        if (upgrade)
        {
            w.Write("connection: upgrade\r\n"u8);
        }
        w.Write("\r\n"u8);
    }

    /// <summary>The path and query, with the route's prefix rewrite applied (a doubled '/' at the seam is avoided).</summary>
    private static void WritePath(IBufferWriter<byte> w, RequestHead request, RouteModel? route)
    {
        var path = request.PathBytes;
        if (path.IsEmpty)
        {
            w.Write("/"u8);
            return;
        }
        if (route?.PrefixRewrite is { } rewrite && route.Match.PathKind == PathMatchKind.Prefix &&
            path.Length >= route.Match.Path.Length && System.Text.Ascii.Equals(path[..route.Match.Path.Length], route.Match.Path))
        {
            var rest = path[route.Match.Path.Length..];
            if (rewrite.EndsWith('/') && !rest.IsEmpty && rest[0] == '/')
            {
                rest = rest[1..];
            }
            if (rewrite.Length == 0 && (rest.IsEmpty || rest[0] != '/'))
            {
                w.Write("/"u8);
            }
            Text(w, rewrite);
            w.Write(rest);
            return;
        }
        w.Write(path);
    }

    /// <summary>
    /// The response head for the downstream: "HTTP/1.1" with the upstream's status, its field lines except
    /// hop-by-hop ones (Connection and Upgrade stay on a 101), Transfer-Encoding when the body is de-chunked for an
    /// HTTP/1.0 client, and what the route removes or sets; then the route's fields and the connection decision.
    /// </summary>
    public static void ResponseHead(IBufferWriter<byte> w, ResponseHead response, RouteModel? route, bool switching, bool dechunk, bool close, bool http10KeepAlive)
    {
        w.Write("HTTP/1.1 "u8);
        w.Write(response.StatusText);
        w.Write("\r\n"u8);
        for (var i = 0; i < response.FieldCount; i++)
        {
            ref readonly var f = ref response.Field(i);
            if (f.HopByHop && !(switching && f.Kind is FieldKind.Connection or FieldKind.Upgrade))
            {
                continue;
            }
            if ((dechunk && f.Kind == FieldKind.TransferEncoding) || (f.Kind == FieldKind.ContentLength && response.ContentLengthRepeated))
            {
                continue;
            }
            if (route is not null && (Listed(response.Name(i), route.ResponseHeadersToRemove) || Replaced(response.Name(i), route.ResponseHeadersToAdd)))
            {
                continue;
            }
            w.Write(response.Line(i));
        }
        if (response.ContentLengthRepeated)
        {
            ContentLength(w, response.ContentLength);
        }
        EndResponseHead(w, route, close, http10KeepAlive);
    }

    private static void ContentLength(IBufferWriter<byte> w, long length)
    {
        w.Write("content-length: "u8);
        Number(w, length);
        w.Write("\r\n"u8);
    }

    private static void EndResponseHead(IBufferWriter<byte> w, RouteModel? route, bool close, bool http10KeepAlive)
    {
        if (route is not null)
        {
            Mutations(w, route.ResponseHeadersToAdd);
        }
        if (close)
        {
            w.Write("connection: close\r\n"u8);
        }
        else if (http10KeepAlive)
        {
            w.Write("connection: keep-alive\r\n"u8);
        }
        w.Write("\r\n"u8);
    }

    /// <summary>An answer of the proxy's own with a text body (errors, direct responses, redirects).</summary>
    public static void Simple(IBufferWriter<byte> w, int status, ProxyError error, string? location, string body, RouteModel? route, bool close, bool http10KeepAlive, bool headOnly)
    {
        w.Write("HTTP/1.1 "u8);
        Number(w, status);
        w.Write(" "u8);
        Text(w, ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } reason ? reason : "Unknown");
        w.Write("\r\n"u8);
        if (error != ProxyError.None)
        {
            w.Write("x-trellis-error: "u8);
            Text(w, error.Code());
            w.Write("\r\n"u8);
        }
        if (location is not null)
        {
            Field(w, "location", location);
        }
        var length = Encoding.UTF8.GetByteCount(body);
        if (length > 0)
        {
            w.Write("content-type: text/plain; charset=utf-8\r\n"u8);
        }
        ContentLength(w, length);
        EndResponseHead(w, route, close, http10KeepAlive);
        if (!headOnly)
        {
            Text(w, body);
        }
    }

    /// <summary>
    /// The Location of a redirect: scheme, host and port from the redirect where set (a new scheme drops the
    /// request's port, and a scheme's default port is left out), the path replaced whole or by prefix, the query kept
    /// unless the new path carries its own.
    /// </summary>
    public static string Location(RedirectModel redirect, RouteModel route, string authority, string pathAndQuery)
    {
        var scheme = redirect.Scheme ?? "http";
        var (host, port) = SplitAuthority(authority);
        if (redirect.Host is { } newHost)
        {
            host = newHost;
        }
        if (redirect.Port is { } newPort)
        {
            port = newPort;
        }
        else if (redirect.Scheme is not null)
        {
            port = null;
        }
        if (port is { } p && ((scheme == "http" && p == 80) || (scheme == "https" && p == 443)))
        {
            port = null;
        }
        var q = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        var path = q < 0 ? pathAndQuery : pathAndQuery[..q];
        var query = q < 0 ? "" : pathAndQuery[q..];
        if (redirect.Path is { } newPath)
        {
            path = newPath;
            if (newPath.Contains('?', StringComparison.Ordinal))
            {
                query = "";
            }
        }
        else if (redirect.PrefixRewrite is { } prefix && route.Match.PathKind == PathMatchKind.Prefix && path.StartsWith(route.Match.Path, StringComparison.Ordinal))
        {
            var rest = path[route.Match.Path.Length..];
            path = prefix.EndsWith('/') && rest.StartsWith('/') ? prefix + rest[1..] : prefix + rest;
            if (path.Length == 0)
            {
                path = "/";
            }
        }
        var sb = new StringBuilder(scheme.Length + host.Length + path.Length + query.Length + 16);
        sb.Append(scheme).Append("://").Append(host);
        if (port is { } finalPort)
        {
            sb.Append(':').Append(finalPort.ToString(CultureInfo.InvariantCulture));
        }
        return sb.Append(path).Append(query).ToString();
    }

    private static (string Host, int? Port) SplitAuthority(string authority)
    {
        var colon = authority.LastIndexOf(':');
        if (colon > 0 && authority.IndexOf(']', StringComparison.Ordinal) < colon &&
            int.TryParse(authority.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return (authority[..colon], port);
        }
        return (authority, null);
    }
}
