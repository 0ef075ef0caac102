using Trellis.Proxy.Http.Http2.Frames;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Frames;

public sealed class Http2FlowWindowTests
{
    [Fact]
    public void TryConsume_WithinWindow_Shrinks()
    {
        var window = new Http2FlowWindow(65535);
        Assert.True(window.TryConsume(65000));
        Assert.True(window.TryConsume(535));
        Assert.Equal(0, window.Available);
    }

    [Fact]
    public void TryConsume_MoreThanAvailable_FalseAndUnchanged()
    {
        var window = new Http2FlowWindow(100);
        Assert.False(window.TryConsume(101));
        Assert.Equal(100, window.Available);
    }

    [Fact]
    public void TryGrow_ToExactly2Pow31Minus1_Accepted()
    {
        var window = new Http2FlowWindow(65535);
        Assert.True(window.TryGrow(int.MaxValue - 65535));
        Assert.Equal(int.MaxValue, window.Available);
    }

    [Fact]
    public void TryGrow_Beyond2Pow31Minus1_FalseAndUnchanged()
    {
        var window = new Http2FlowWindow(65535);
        Assert.False(window.TryGrow(int.MaxValue - 65534));
        Assert.False(window.TryGrow(int.MaxValue));
        Assert.Equal(65535, window.Available);
    }

    [Fact]
    public void TryAdjust_SmallerInitialWindowAfterSending_NegativeUntilUpdatesArrive()
    {
        var window = new Http2FlowWindow(65535);
        Assert.True(window.TryConsume(60000));

        Assert.True(window.TryAdjust(16384 - 65535));

        Assert.Equal(5535 - 49151, window.Available);
        Assert.False(window.TryConsume(1));
        Assert.True(window.TryGrow(43616));
        Assert.Equal(0, window.Available);
        Assert.False(window.TryConsume(1));
        Assert.True(window.TryGrow(10));
        Assert.True(window.TryConsume(10));
    }

    [Fact]
    public void TryAdjust_LargerInitialWindow_Grows()
    {
        var window = new Http2FlowWindow(65535);
        Assert.True(window.TryAdjust(1_000_000));
        Assert.Equal(1_065_535, window.Available);
    }

    [Fact]
    public void TryAdjust_Beyond2Pow31Minus1_FalseAndUnchanged()
    {
        var window = new Http2FlowWindow(65535);
        Assert.True(window.TryGrow(int.MaxValue - 65535 - 10));
        Assert.False(window.TryAdjust(11));
        Assert.Equal(int.MaxValue - 10, window.Available);
    }
}
