using System.Buffers;
using Trellis.Proxy.Http.Http2.Frames;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Frames;

/// <summary>The frame layer is on the hot path: after warm-up, writing and reading frames allocates nothing.</summary>
public sealed class Http2FrameAllocationTests
{
    private const int Frames = 1000;
    private static readonly byte[] Body = new byte[20_000];
    private static readonly byte[] Block = new byte[300];
    private static readonly Http2Setting[] Settings = [new(Http2SettingId.MaxConcurrentStreams, 100), new(Http2SettingId.InitialWindowSize, 1 << 20)];

    /// <summary>Writes 1000 frames of every kind the writer has (DATA and HEADERS splitting across frames).</summary>
    private static int WriteFrames(ArrayBufferWriter<byte> output)
    {
        output.ResetWrittenCount();
        var written = 0;
        for (var i = 0; written < Frames; i++)
        {
            var stream = (i * 2) + 1;
            switch (i % 8)
            {
                case 0: Http2FrameWriter.Settings(output, Settings); written++; break;
                case 1: Http2FrameWriter.SettingsAck(output); written++; break;
                case 2: Http2FrameWriter.Headers(output, stream, Block, endStream: false, peerMaxFrameSize: 16384); written++; break;
                case 3: Http2FrameWriter.Data(output, stream, Body, endStream: true, peerMaxFrameSize: 16384); written += 2; break;
                case 4: Http2FrameWriter.WindowUpdate(output, 0, 20_000); written++; break;
                case 5: Http2FrameWriter.Ping(output, ack: true, (ulong)i); written++; break;
                case 6: Http2FrameWriter.RstStream(output, stream, Http2ErrorCode.Cancel); written++; break;
                default: Http2FrameWriter.GoAway(output, stream, Http2ErrorCode.NoError, "draining"); written++; break;
            }
        }
        return written;
    }

    /// <summary>Reads every frame back, with the payload readers; returns a checksum so nothing is optimised away.</summary>
    private static long ReadFrames(ReadOnlyMemory<byte> data, out int count)
    {
        var reader = new Http2FrameReader();
        var buffer = new ReadOnlySequence<byte>(data);
        var settings = Http2PeerSettings.Default;
        var window = new Http2FlowWindow(int.MaxValue / 2);
        long sum = 0;
        count = 0;
        while (reader.TryReadFrame(ref buffer, 16384, out var frame, out _) == Http2ReadStatus.Frame)
        {
            count++;
            sum += frame.Payload.Length;
            switch (frame.Type)
            {
                case Http2FrameType.Settings when !frame.IsAck:
                    Http2SettingsReader.TryApply(frame.Payload, ref settings, out var delta, out _);
                    sum += delta;
                    break;
                case Http2FrameType.Data:
                    window.TryConsume(frame.Header.Length);
                    break;
                case Http2FrameType.WindowUpdate:
                    window.TryGrow(Http2Payloads.ReadWindowUpdateIncrement(frame));
                    break;
                case Http2FrameType.Ping:
                    sum += (long)Http2Payloads.ReadPingData(frame);
                    break;
                case Http2FrameType.RstStream:
                    sum += (long)Http2Payloads.ReadRstStreamCode(frame);
                    break;
                case Http2FrameType.GoAway:
                    sum += Http2Payloads.ReadGoAway(frame).LastStreamId;
                    break;
            }
        }
        return sum + window.Available;
    }

    [Fact]
    public void WriteAndRead_ThousandFramesAfterWarmUp_AllocateNothing()
    {
        var output = new ArrayBufferWriter<byte>(1 << 20);
        WriteFrames(output);
        var expected = ReadFrames(output.WrittenMemory, out _);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var written = WriteFrames(output);
        var checksum = ReadFrames(output.WrittenMemory, out var read);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(Frames, written);
        Assert.Equal(written, read);
        Assert.Equal(expected, checksum);
        Assert.Equal(0, allocated);
    }
}
