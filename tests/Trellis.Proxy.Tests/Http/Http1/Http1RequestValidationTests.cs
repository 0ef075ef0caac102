using Xunit;
using static Trellis.Proxy.Tests.Http.Http1.TestModels;

namespace Trellis.Proxy.Tests.Http.Http1;

/// <summary>Limits and request-smuggling defences (RFC 9112): each bad request gets 400 or 431 and the connection closes.</summary>
public sealed class Http1RequestValidationTests
{
    private static (TestBackend Backend, TestProxy Proxy) Start()
    {
        var backend = new TestBackend();
        return (backend, new TestProxy(State(ModelOf([Route("all", "/", "web")], Cluster("web", backend.EndPoint)))));
    }

    /// <summary>Sends a request that must be accepted; returns the response and what the upstream received.</summary>
    private static async Task<(ClientResponse Response, BackendRequest Seen)> ForwardAsync(string request)
    {
        var (backend, proxy) = Start();
        await using (backend)
        await using (proxy)
        {
            using var client = await proxy.ConnectAsync();
            var response = await client.RoundTripAsync(request);
            Assert.Equal(200, response.Status);
            return (response, await backend.NextRequestAsync());
        }
    }

    private static async Task AssertRejectedAsync(string request, int status, string code)
    {
        var (backend, proxy) = Start();
        await using (backend)
        await using (proxy)
        {
            using var client = await proxy.ConnectAsync();
            var response = await client.RoundTripAsync(request);

            Assert.Equal(status, response.Status);
            Assert.Equal(code, response.Header("x-trellis-error"));
            Assert.Equal("close", response.Header("connection"));
            await client.AssertClosedAsync();
            Assert.False(backend.Requests.Reader.TryRead(out _), "the bad request must not reach the upstream");
        }
    }

    [Fact]
    public async Task Headers_LargerThan60KiB_Answer431AndClose()
    {
        var big = new string('a', 61 * 1024);
        await AssertRejectedAsync($"GET / HTTP/1.1\r\nHost: web\r\nX-Big: {big}\r\n\r\n", 431, "request_headers_too_large");
    }

    [Fact]
    public async Task Headers_JustUnder60KiB_AreAccepted()
    {
        var value = new string('a', 59 * 1024);
        var (_, seen) = await ForwardAsync($"GET / HTTP/1.1\r\nHost: web\r\nX-Big: {value}\r\n\r\n");

        Assert.Equal(value, seen.Header("x-big"));
    }

    [Fact]
    public async Task Headers_MoreThan100_Answer431TooManyHeaders()
    {
        var fields = string.Concat(Enumerable.Range(0, 101).Select(i => $"X-H{i}: v\r\n"));
        await AssertRejectedAsync($"GET / HTTP/1.1\r\nHost: web\r\n{fields}\r\n", 431, "too_many_headers");
    }

    [Fact]
    public async Task Headers_Exactly100_AreAccepted()
    {
        var fields = string.Concat(Enumerable.Range(0, 99).Select(i => $"X-H{i}: v\r\n"));
        var (_, seen) = await ForwardAsync($"GET / HTTP/1.1\r\nHost: web\r\n{fields}\r\n");

        Assert.Equal(100, seen.Headers.Count);
    }

    [Theory]
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")] // both framings
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")] // conflicting lengths
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5, 6\r\n\r\nhello!")] // conflicting list
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: +5\r\n\r\nhello")] // not digits
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: gzip\r\n\r\nxyz")] // final coding not chunked
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n")] // chunked not last
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")] // chunked twice
    [InlineData("POST / HTTP/1.0\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")] // chunked in HTTP/1.0
    [InlineData("GET / HTTP/1.1\r\nHost: web\r\nX-Folded: a\r\n b\r\n\r\n")] // obs-fold
    [InlineData("GET / HTTP/1.1\r\nHost: web\r\nX-Space : a\r\n\r\n")] // whitespace before the colon
    [InlineData("GET / HTTP/1.1\nHost: web\n\n")] // bare LF
    [InlineData("GET / HTTP/1.1\r\nHost: web\r\nX-A: 1\n\r\n")] // one bare LF
    [InlineData("GET / HTTP/1.1\r\nHost: web\r\nX-A: a\rb\r\n\r\n")] // bare CR
    [InlineData("GET / HTTP/1.1\r\nX-No-Host: 1\r\n\r\n")] // no Host in HTTP/1.1
    [InlineData("GET / HTTP/1.1\r\nHost: web\r\nHost: other\r\n\r\n")] // two Hosts
    [InlineData("GET  / HTTP/1.1\r\nHost: web\r\n\r\n")] // two spaces in the request line
    [InlineData("GET / HTTP/2.0\r\nHost: web\r\n\r\n")] // unknown version
    [InlineData("CONNECT web:443 HTTP/1.1\r\nHost: web:443\r\n\r\n")] // authority-form is not proxied
    public async Task Smuggling_AmbiguousRequest_Answers400AndCloses(string request)
    {
        await AssertRejectedAsync(request, 400, "bad_request");
    }

    [Theory]
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "both Content-Length and Transfer-Encoding")]
    [InlineData("GET / HTTP/1.1\r\nHost: web\r\nX-Space : a\r\n\r\n", "whitespace before ':'")]
    [InlineData("GET / HTTP/1.1\nHost: web\n\n", "LF without CR")]
    [InlineData("GET / HTTP/1.1\r\n\r\n", "without Host")]
    [InlineData("POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunked body is malformed")]
    public async Task BadRequest_Body_SaysWhatIsWrong(string request, string expected)
    {
        var (backend, proxy) = Start();
        await using (backend)
        await using (proxy)
        {
            using var client = await proxy.ConnectAsync();
            var response = await client.RoundTripAsync(request);

            Assert.Equal(400, response.Status);
            Assert.Contains(expected, response.Body, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("zz\r\nabc\r\n0\r\n\r\n")] // not hex
    [InlineData(" 3\r\nabc\r\n0\r\n\r\n")] // leading space
    [InlineData("3 \r\nabc\r\n0\r\n\r\n")] // trailing space without an extension
    [InlineData("3\nabc\r\n0\r\n\r\n")] // bare LF after the size
    [InlineData("3\r\nabcX\r\n0\r\n\r\n")] // data longer than its size
    [InlineData("ffffffffffffffff\r\nabc\r\n0\r\n\r\n")] // size overflow
    [InlineData("3\r\nabc\r\n0\r\nBad Trailer: x\r\n\r\n")] // malformed trailer
    public async Task Smuggling_BadChunkFraming_Answers400AndCloses(string body)
    {
        await AssertRejectedAsync($"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n{body}", 400, "bad_request");
    }

    [Fact]
    public async Task ContentLength_RepeatedWithTheSameValue_IsAcceptedAndForwardedOnce()
    {
        var (_, seen) = await ForwardAsync("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello");

        Assert.Equal("hello", seen.BodyText);
        Assert.Equal(1, seen.Count("content-length"));
        Assert.Equal("5", seen.Header("content-length"));
    }

    [Fact]
    public async Task TransferEncoding_GzipThenChunked_IsForwardedChunked()
    {
        var (_, seen) = await ForwardAsync("POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n");

        Assert.Equal("gzip, chunked", seen.Header("transfer-encoding"));
        Assert.Equal("zz", seen.BodyText);
    }
}
