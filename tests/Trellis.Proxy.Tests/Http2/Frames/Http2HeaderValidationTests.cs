using System.Text;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Frames;

public sealed class Http2HeaderValidationTests
{
    private static byte[] B(string s) => Encoding.Latin1.GetBytes(s);

    [Theory]
    [InlineData("content-type")]
    [InlineData("x-b3-traceid")]
    [InlineData("a!#$%&'*+-.^_`|~9")]
    [InlineData(":path")]
    [InlineData(":authority")]
    public void IsValidName_LowercaseTokens_True(string name)
    {
        Assert.True(Http2HeaderValidation.IsValidName(B(name)));
    }

    [Theory]
    [InlineData("")]
    [InlineData(":")]
    [InlineData("::path")]
    [InlineData("Content-Type")]
    [InlineData("x-a:b")]
    [InlineData("x a")]
    [InlineData("x\u0000a")]
    [InlineData("caf\u00e9")]
    [InlineData("x\"y")]
    [InlineData("x\u007f")]
    public void IsValidName_UppercaseSeparatorsControlsNonAscii_False(string name)
    {
        Assert.False(Http2HeaderValidation.IsValidName(B(name)));
    }

    [Fact]
    public void IsPseudo_ColonPrefix_True()
    {
        Assert.True(Http2HeaderValidation.IsPseudo(":method"u8));
        Assert.False(Http2HeaderValidation.IsPseudo("method"u8));
        Assert.False(Http2HeaderValidation.IsPseudo([]));
    }

    [Theory]
    [InlineData(":method", (int)Http2PseudoHeader.Method)]
    [InlineData(":scheme", (int)Http2PseudoHeader.Scheme)]
    [InlineData(":authority", (int)Http2PseudoHeader.Authority)]
    [InlineData(":path", (int)Http2PseudoHeader.Path)]
    [InlineData(":protocol", (int)Http2PseudoHeader.Protocol)]
    [InlineData(":status", (int)Http2PseudoHeader.Status)]
    [InlineData(":host", (int)Http2PseudoHeader.None)]
    [InlineData("method", (int)Http2PseudoHeader.None)]
    public void GetPseudo_Name_KnownPseudoHeaderOrNone(string name, int expected)
    {
        Assert.Equal((Http2PseudoHeader)expected, Http2HeaderValidation.GetPseudo(B(name)));
    }

    [Theory]
    [InlineData("connection", "close")]
    [InlineData("keep-alive", "timeout=5")]
    [InlineData("proxy-connection", "keep-alive")]
    [InlineData("transfer-encoding", "chunked")]
    [InlineData("upgrade", "websocket")]
    [InlineData("te", "gzip")]
    [InlineData("te", "trailers, gzip")]
    public void IsConnectionSpecific_ForbiddenFields_True(string name, string value)
    {
        Assert.True(Http2HeaderValidation.IsConnectionSpecific(B(name), B(value)));
        Assert.Equal(Http2FieldProblem.ConnectionSpecific, Http2HeaderValidation.Check(B(name), B(value)));
    }

    [Theory]
    [InlineData("te", "trailers")]
    [InlineData("te", "Trailers")]
    [InlineData("content-length", "5")]
    [InlineData("connectionx", "close")]
    [InlineData("grpc-timeout", "1S")]
    public void IsConnectionSpecific_OtherFieldsAndTeTrailers_False(string name, string value)
    {
        Assert.False(Http2HeaderValidation.IsConnectionSpecific(B(name), B(value)));
        Assert.Equal(Http2FieldProblem.None, Http2HeaderValidation.Check(B(name), B(value)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("text/html; charset=utf-8")]
    [InlineData("a\tb")]
    [InlineData("caf\u00e9")]
    public void IsValidValue_PlainValues_True(string value)
    {
        Assert.True(Http2HeaderValidation.IsValidValue(B(value)));
    }

    [Theory]
    [InlineData("a\u0000b")]
    [InlineData("a\rb")]
    [InlineData("a\nb")]
    [InlineData(" a")]
    [InlineData("a ")]
    [InlineData("\ta")]
    [InlineData("a\t")]
    [InlineData(" ")]
    public void IsValidValue_NulCrLfOrEdgeWhitespace_False(string value)
    {
        Assert.False(Http2HeaderValidation.IsValidValue(B(value)));
        Assert.Equal(Http2FieldProblem.InvalidValue, Http2HeaderValidation.Check("x-a"u8, B(value)));
    }

    [Fact]
    public void Check_InvalidName_ReportedFirst()
    {
        Assert.Equal(Http2FieldProblem.InvalidName, Http2HeaderValidation.Check("Connection"u8, " x"u8));
    }
}
