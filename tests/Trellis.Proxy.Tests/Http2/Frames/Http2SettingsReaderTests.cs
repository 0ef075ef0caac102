using System.Buffers;
using System.Buffers.Binary;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;
using static Trellis.Proxy.Tests.Http2.Frames.FrameTestSupport;

namespace Trellis.Proxy.Tests.Http2.Frames;

public sealed class Http2SettingsReaderTests
{
    private static byte[] Payload(params (ushort Id, uint Value)[] settings)
    {
        var bytes = new byte[settings.Length * 6];
        for (var i = 0; i < settings.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(i * 6), settings[i].Id);
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(i * 6 + 2), settings[i].Value);
        }
        return bytes;
    }

    private static Http2Error AssertRejected(byte[] payload, Http2ErrorCode code, string message)
    {
        var settings = Http2PeerSettings.Default;
        settings.HeaderTableSize = 123;
        var before = settings;

        Assert.False(Http2SettingsReader.TryApply(new ReadOnlySequence<byte>(payload), ref settings, out _, out var error));

        Assert.Equal(code, error.Code);
        Assert.True(error.IsConnectionError);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal(before, settings);
        return error;
    }

    [Fact]
    public void Default_RfcInitialValues()
    {
        var d = Http2PeerSettings.Default;
        Assert.Equal(4096u, d.HeaderTableSize);
        Assert.True(d.EnablePush);
        Assert.Equal(uint.MaxValue, d.MaxConcurrentStreams);
        Assert.Equal(65535, d.InitialWindowSize);
        Assert.Equal(16384, d.MaxFrameSize);
        Assert.Equal(uint.MaxValue, d.MaxHeaderListSize);
        Assert.False(d.EnableConnectProtocol);
    }

    [Fact]
    public void TryApply_EverySetting_Applied()
    {
        var settings = Http2PeerSettings.Default;
        var payload = Payload((1, 0), (2, 0), (3, 100), (4, 1_000_000), (5, 1 << 20), (6, 8192), (8, 1));

        Assert.True(Http2SettingsReader.TryApply(Segmented(payload, 5), ref settings, out var delta, out _));

        Assert.Equal(0u, settings.HeaderTableSize);
        Assert.False(settings.EnablePush);
        Assert.Equal(100u, settings.MaxConcurrentStreams);
        Assert.Equal(1_000_000, settings.InitialWindowSize);
        Assert.Equal(1 << 20, settings.MaxFrameSize);
        Assert.Equal(8192u, settings.MaxHeaderListSize);
        Assert.True(settings.EnableConnectProtocol);
        Assert.Equal(1_000_000 - 65535, delta);
    }

    [Fact]
    public void TryApply_RepeatedAndUnknownIds_LastValueWinsUnknownIgnored()
    {
        var settings = Http2PeerSettings.Default;
        var payload = Payload((4, 10), (0x99, 12345), (4, 20), (0, 1));

        Assert.True(Http2SettingsReader.TryApply(new ReadOnlySequence<byte>(payload), ref settings, out var delta, out _));

        Assert.Equal(20, settings.InitialWindowSize);
        Assert.Equal(20 - 65535, delta);
        Assert.Equal(Http2PeerSettings.Default with { InitialWindowSize = 20 }, settings);
    }

    [Fact]
    public void TryApply_NoInitialWindowChange_ZeroDelta()
    {
        var settings = Http2PeerSettings.Default;
        Assert.True(Http2SettingsReader.TryApply(new ReadOnlySequence<byte>(Payload((3, 10), (4, 65535))), ref settings, out var delta, out _));
        Assert.Equal(0, delta);
    }

    [Fact]
    public void TryApply_EmptyPayload_NothingChanges()
    {
        var settings = Http2PeerSettings.Default;
        Assert.True(Http2SettingsReader.TryApply(ReadOnlySequence<byte>.Empty, ref settings, out var delta, out _));
        Assert.Equal(Http2PeerSettings.Default, settings);
        Assert.Equal(0, delta);
    }

    [Theory]
    [InlineData(2u)]
    [InlineData(uint.MaxValue)]
    public void TryApply_EnablePushNotZeroOrOne_ProtocolError(uint value)
    {
        AssertRejected(Payload((2, value)), Http2ErrorCode.ProtocolError, $"SETTINGS_ENABLE_PUSH is {value}");
    }

    [Fact]
    public void TryApply_InitialWindowSizeAbove2Pow31Minus1_FlowControlErrorAndNothingApplied()
    {
        AssertRejected(Payload((3, 7), (4, 0x8000_0000)), Http2ErrorCode.FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE is 2147483648");
    }

    [Fact]
    public void TryApply_InitialWindowSizeExactly2Pow31Minus1_Accepted()
    {
        var settings = Http2PeerSettings.Default;
        Assert.True(Http2SettingsReader.TryApply(new ReadOnlySequence<byte>(Payload((4, int.MaxValue))), ref settings, out var delta, out _));
        Assert.Equal(int.MaxValue - 65535, delta);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(16383u)]
    [InlineData(16_777_216u)]
    public void TryApply_MaxFrameSizeOutOfRange_ProtocolError(uint value)
    {
        AssertRejected(Payload((5, value)), Http2ErrorCode.ProtocolError, $"SETTINGS_MAX_FRAME_SIZE is {value}; it must be 16384..16777215");
    }

    [Theory]
    [InlineData(16384u)]
    [InlineData(16_777_215u)]
    public void TryApply_MaxFrameSizeAtLimits_Accepted(uint value)
    {
        var settings = Http2PeerSettings.Default;
        Assert.True(Http2SettingsReader.TryApply(new ReadOnlySequence<byte>(Payload((5, value))), ref settings, out _, out _));
        Assert.Equal((int)value, settings.MaxFrameSize);
    }

    [Fact]
    public void TryApply_EnableConnectProtocolTwo_ProtocolError()
    {
        AssertRejected(Payload((8, 2)), Http2ErrorCode.ProtocolError, "SETTINGS_ENABLE_CONNECT_PROTOCOL is 2");
    }
}
