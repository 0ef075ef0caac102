using System.Diagnostics.Metrics;

namespace Trellis.Proxy.Tests;

/// <summary>
/// Records the measurements of one instrument of the "Trellis.Proxy" meter whose "listener" tag names the test's
/// listener (tests run in parallel, each with its own listener name), as the value of one other tag. Instruments
/// tagged by cluster instead are filtered with <c>filterTag: "cluster"</c>.
/// </summary>
internal sealed class MetricRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly List<string?> _values = [];

    public MetricRecorder(string instrument, string listener, string tag, string filterTag = "listener")
    {
        _listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == "Trellis.Proxy" && i.Name == instrument)
            {
                l.EnableMeasurementEvents(i);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            string? name = null, value = null;
            foreach (var t in tags)
            {
                name = t.Key == filterTag ? (string?)t.Value : name;
                value = t.Key == tag ? (string?)t.Value : value;
            }
            if (name == listener)
            {
                lock (_values)
                {
                    _values.Add(value);
                }
            }
        });
        _listener.Start();
    }

    /// <summary>The tag values recorded so far, in order.</summary>
    public IReadOnlyList<string?> Values
    {
        get
        {
            lock (_values)
            {
                return [.. _values];
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
