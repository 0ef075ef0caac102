using Trellis.Proxy.Model;
using Xunit;

namespace Trellis.Proxy.Tests;

public sealed class ModelStateTests
{
    [Fact]
    public async Task Swap_CompleteModel_BecomesCurrentReadyAndWakesWaiters()
    {
        var state = new ModelState();
        var changed = state.Changed;
        Assert.False(state.IsReady);
        var model = new ProxyModel("v1", ProxyModel.Empty.Listeners, ProxyModel.Empty.Routes, ProxyModel.Empty.Clusters);

        state.Swap(model, complete: true);

        await changed.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Same(model, state.Current);
        Assert.True(state.IsReady);
    }
}
