using Trellis.Proxy.Http.Http2.Hpack;
using Xunit;

namespace Trellis.Proxy.Tests.Http2.Hpack;

public sealed class HpackDynamicTableTests
{
    [Theory]
    [InlineData(1, 4096)]
    [InlineData(2, 256)]
    [InlineData(3, 100)]
    [InlineData(4, 0)]
    public void AddAndSetMaxSize_RandomOperations_MatchAPlainListModel(int seed, int initialMax)
    {
        // The model is RFC 7541 section 4 read literally: a list, newest first, evicting from the end.
        var random = new Random(seed);
        var table = new HpackDynamicTable(initialMax);
        var model = new List<(byte[] Name, byte[] Value)>();
        var max = initialMax;
        for (var op = 0; op < 20_000; op++)
        {
            if (op % 400 == 399)
            {
                // A fresh table now and then: its storage grows from nothing again, a phase of its own.
                table = new HpackDynamicTable(max);
                model.Clear();
            }
            if (random.Next(200) == 0)
            {
                max = random.Next(3) == 0 ? random.Next(0, 300) : random.Next(0, 8192);
                table.SetMaxSize(max);
                while (ModelSize(model) > max)
                {
                    model.RemoveAt(model.Count - 1);
                }
            }
            else
            {
                var name = Bytes(random, random.Next(4) == 0 ? 0 : 1, 24);
                var value = Bytes(random, 0, random.Next(10) == 0 ? 2000 : 60);
                table.Add(name, value, 0);
                var size = name.Length + value.Length + HpackDynamicTable.EntryOverhead;
                if (size > max)
                {
                    model.Clear();
                }
                else
                {
                    while (ModelSize(model) + size > max)
                    {
                        model.RemoveAt(model.Count - 1);
                    }
                    model.Insert(0, (name, value));
                }
            }
            Assert.Equal(model.Count, table.Count);
            Assert.Equal(ModelSize(model), table.Size);
            for (var i = 0; i < model.Count; i++)
            {
                ref readonly var e = ref table[i];
                Assert.True(model[i].Name.AsSpan().SequenceEqual(table.Name(e)), $"op {op}: name of entry {i}");
                Assert.True(model[i].Value.AsSpan().SequenceEqual(table.Value(e)), $"op {op}: value of entry {i}");
            }
            if (model.Count > 0)
            {
                // A name from the table with either its own value or another one.
                var name = model[random.Next(model.Count)].Name;
                var value = random.Next(2) == 0 ? model[random.Next(model.Count)].Value : Bytes(random, 0, 3);
                var expected = model.FindIndex(m => m.Name.AsSpan().SequenceEqual(name) && m.Value.AsSpan().SequenceEqual(value));
                Assert.Equal(expected, table.Find(name, value, out var nameMatch));
                if (expected < 0)
                {
                    Assert.Equal(model.FindIndex(m => m.Name.AsSpan().SequenceEqual(name)), nameMatch);
                }
                Assert.Equal(model.FindIndex(m => m.Name.AsSpan().SequenceEqual(name)), table.FindName(name));
            }
        }
    }

    [Fact]
    public void Find_EmptyTable_FindsNothing()
    {
        var table = new HpackDynamicTable(0);
        Assert.Equal(-1, table.Find("a"u8, "b"u8, out var nameMatch));
        Assert.Equal(-1, nameMatch);
        Assert.Equal(-1, table.FindName("a"u8));
        table.Add("a"u8, "b"u8, 0); // larger than 0: not added
        Assert.Equal(0, table.Count);
    }

    private static int ModelSize(List<(byte[] Name, byte[] Value)> model) =>
        model.Sum(m => m.Name.Length + m.Value.Length + HpackDynamicTable.EntryOverhead);

    private static byte[] Bytes(Random random, int min, int max)
    {
        // A small alphabet, so equal names and values recur.
        var bytes = new byte[random.Next(min, max + 1)];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)('a' + random.Next(3));
        }
        return bytes;
    }
}
