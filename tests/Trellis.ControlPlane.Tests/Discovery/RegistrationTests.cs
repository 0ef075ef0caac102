using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Envoy.Config.Endpoint.V3;
using Microsoft.Extensions.Time.Testing;
using Trellis.ControlPlane.Store;
using Trellis.ControlPlane.XdsServer;
using Trellis.Testing;
using Trellis.Xds;
using Xunit;

namespace Trellis.ControlPlane.Tests.Discovery;

public sealed class RegistrationTests
{
    private const string Service = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: vm}
        spec: {ports: [{name: http, port: 8080}]}
        """;

    private static Task WaitForAsync(Func<bool> condition, string what) => Eventually.WaitAsync(condition, what);

    private static IReadOnlyList<LbEndpoint> Endpoints(TestControlPlane cp) =>
        cp.Get<SnapshotCache>().Current.Get(TypeUrls.ClusterLoadAssignment).Items.TryGetValue("vm.default:8080", out var r)
            ? r.Any.Unpack<ClusterLoadAssignment>().Endpoints.SelectMany(l => l.LbEndpoints).ToList()
            : [];

    [Fact]
    public async Task Registration_HeartbeatsStop_TurnsUnhealthyAfterTtl_ThenIsRemovedAfterGrace()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var cp = await TestControlPlane.StartAsync(debounce: TimeSpan.Zero, time: time);
        await cp.ApplyAsync(Service);
        using var reg = await cp.Http.PostAsJsonAsync("api/v1/registrations", new { service = "vm", address = "10.1.2.3", port = 9000, ttl = "30s", zone = "z1" });
        Assert.True(reg.IsSuccessStatusCode, await reg.Content.ReadAsStringAsync());
        var id = JsonNode.Parse(await reg.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        await WaitForAsync(() => Endpoints(cp).Count == 1 && Endpoints(cp)[0].HealthStatus == Envoy.Config.Core.V3.HealthStatus.Healthy, "a healthy endpoint");

        // A heartbeat within the TTL keeps it healthy past the first deadline.
        time.Advance(TimeSpan.FromSeconds(20));
        using (var hb = await cp.Http.PutAsync($"api/v1/registrations/{id}/heartbeat", null))
        {
            Assert.True(hb.IsSuccessStatusCode);
        }
        // Let the controller see the heartbeat before the clock moves on (in real time this takes microseconds).
        var store = cp.Get<IConfigStore>();
        var controller = cp.Get<Trellis.ControlPlane.Translation.ConfigController>();
        var revision = await store.GetRevisionAsync();
        await WaitForAsync(() => controller.SeenRevision >= revision, "the controller to see the heartbeat");
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(Envoy.Config.Core.V3.HealthStatus.Healthy, Endpoints(cp)[0].HealthStatus);

        // No more heartbeats: unhealthy once the TTL has passed.
        time.Advance(TimeSpan.FromSeconds(11));
        await WaitForAsync(() => Endpoints(cp) is [{ HealthStatus: Envoy.Config.Core.V3.HealthStatus.Unhealthy }], "the endpoint to turn unhealthy");

        // And gone after the grace period (60 s by default).
        for (var i = 0; i < 70 && Endpoints(cp).Count > 0; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Yield();
        }
        await WaitForAsync(() => Endpoints(cp).Count == 0, "the endpoint to be removed");
        using var late = await cp.Http.PutAsync($"api/v1/registrations/{id}/heartbeat", null);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, late.StatusCode);
        Assert.Contains("register the instance again", await late.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Registration_UnknownServiceOrHostname_IsRefusedWithAdvice()
    {
        await using var cp = await TestControlPlane.StartAsync();
        using var noService = await cp.Http.PostAsJsonAsync("api/v1/registrations", new { service = "ghost", address = "10.0.0.1", port = 1 });
        Assert.Equal(System.Net.HttpStatusCode.NotFound, noService.StatusCode);
        Assert.Contains("apply it first", await noService.Content.ReadAsStringAsync());

        await cp.ApplyAsync(Service);
        using var hostname = await cp.Http.PostAsJsonAsync("api/v1/registrations", new { service = "vm", address = "vm1.example", port = 1 });
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, hostname.StatusCode);
        Assert.Contains("not an IP address", await hostname.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Changes_WithinTheDebounceWindow_CoalesceIntoOnePublish()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var cp = await TestControlPlane.StartAsync(debounce: TimeSpan.FromMilliseconds(100), time: time);
        var cache = cp.Get<SnapshotCache>();
        var store = cp.Get<IConfigStore>();
        var controller = cp.Get<Trellis.ControlPlane.Translation.ConfigController>();
        var publishes = 0;
        cache.Published += _ => Interlocked.Increment(ref publishes);

        // Straight to the store: the REST apply would wait for the (fake) clock to publish.
        for (var i = 0; i < 5; i++)
        {
            var svc = Trellis.Api.ResourceReader.Read(Service.Replace("name: vm", $"name: vm-{i}", StringComparison.Ordinal), "s.yaml").Resources[0].Resource;
            var commit = await store.CommitAsync([new StorePut(new ResourceKey("Service", "default", $"vm-{i}"), Trellis.Api.ResourceJson.Serialize(svc))]);
            Assert.True(commit.Succeeded);
        }
        var revision = await store.GetRevisionAsync();
        await WaitForAsync(() => controller.SeenRevision == revision, "the controller to see every change");
        Assert.Equal(0, publishes);

        time.Advance(TimeSpan.FromMilliseconds(100));
        await WaitForAsync(() => publishes == 1, "one publish");
        Assert.Equal(5, cache.Current.Get(TypeUrls.Cluster).Items.Count);
    }
}
