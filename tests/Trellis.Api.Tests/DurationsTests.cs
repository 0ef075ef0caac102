using Xunit;

namespace Trellis.Api.Tests;

public class DurationsTests
{
    [Theory]
    [InlineData("100ms", 0, 0, 0, 100)]
    [InlineData("5s", 0, 0, 5, 0)]
    [InlineData("1m30s", 0, 1, 30, 0)]
    [InlineData("2h", 2, 0, 0, 0)]
    [InlineData("1.5s", 0, 0, 1, 500)]
    [InlineData("1h2m3s4ms", 1, 2, 3, 4)]
    [InlineData("0", 0, 0, 0, 0)]
    [InlineData("24h", 24, 0, 0, 0)]
    public void TryParse_GoDuration_ReturnsValue(string text, int h, int m, int s, int ms)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(new TimeSpan(0, h, m, s, ms), value);
    }

    [Fact]
    public void TryParse_MicroAndNanoseconds_RoundToTicks()
    {
        Assert.True(Durations.TryParse("250us", out var us));
        Assert.Equal(TimeSpan.FromTicks(2500), us);
        Assert.True(Durations.TryParse("300ns", out var ns));
        Assert.Equal(TimeSpan.FromTicks(3), ns);
        Assert.True(Durations.TryParse("-5s", out var negative));
        Assert.Equal(TimeSpan.FromSeconds(-5), negative);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("s")]
    [InlineData("5 s")]
    [InlineData("5d")]
    [InlineData("fast")]
    [InlineData("1..5s")]
    public void TryParse_Invalid_ReturnsFalse(string text) => Assert.False(Durations.TryParse(text, out _));

    [Theory]
    [InlineData("100ms")]
    [InlineData("5s")]
    [InlineData("1m30s")]
    [InlineData("2h")]
    [InlineData("1.5s")]
    [InlineData("1h5s")]
    [InlineData("250us")]
    [InlineData("1.5ms")]
    [InlineData("0s")]
    [InlineData("-3s")]
    public void Format_ParsedValue_RoundTripsToSameText(string text)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(text, Durations.Format(value));
    }
}
