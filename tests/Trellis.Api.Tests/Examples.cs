namespace Trellis.Api.Tests;

/// <summary>The resource shapes from the interfaces document (kinds modelled so far).</summary>
internal static class Examples
{
    public const string Service = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter, namespace: default}
        spec:
          selector: {app: greeter}                 # matches WorkloadEntry / registration / pod labels
          ports:
          - {name: grpc, port: 50051, protocol: grpc}   # protocol: http | http2 | grpc | tcp
        """;

    public const string WorkloadEntry = """
        apiVersion: trellis.dev/v1alpha1
        kind: WorkloadEntry                        # one instance on a VM or bare metal
        metadata: {name: greeter-a, namespace: default}
        spec:
          address: 127.0.0.1                       # IP literal
          ports: {grpc: 50051}                     # Service port name -> instance port
          labels: {app: greeter, version: v1}
          serviceAccount: greeter                  # identity: spiffe://TD/ns/default/sa/greeter
          locality: {region: local, zone: zone-a}
          cluster: primary
          weight: 1                                # a locality's weight is the sum of its endpoints' weights
          health: healthy                          # healthy | unhealthy | draining
        """;

    public const string HttpRoute = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute                            # GRPCRoute alike, with method matches
        metadata: {name: greeter-canary, namespace: default}
        spec:
          parentRefs: [{kind: Service, name: greeter, port: 50051}]
          rules:
          - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-canary, value: "1"}]}]
            backendRefs: [{kind: Service, name: greeter-v2, port: 50051, weight: 100}]
          - backendRefs:
            - {kind: Service, name: greeter-v1, port: 50051, weight: 90}
            - {kind: Service, name: greeter-v2, port: 50051, weight: 10}
            timeouts: {request: 5s}
        """;

    public const string TrafficPolicy = """
        apiVersion: trellis.dev/v1alpha1
        kind: TrafficPolicy
        metadata: {name: greeter, namespace: default}
        spec:
          targetRef: {kind: Service, name: greeter}
          loadBalancer: {algorithm: RoundRobin}    # RoundRobin | LeastRequest | Random | RingHash | Ewma; hashOn: {header: x-user}
          connectionPool: {maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024}
          outlierDetection: {consecutive5xx: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
          retries: {attempts: 2, perTryTimeout: 2s, retryOn: [connect-failure, reset, 5xx], budgetPercent: 20}
          timeout: 15s
          failover: {order: [zone, region, cluster]}
        """;

    public const string AccessPolicy = """
        apiVersion: trellis.dev/v1alpha1
        kind: AccessPolicy
        metadata: {name: greeter, namespace: default}
        spec:
          targetRef: {kind: Service, name: greeter}
          default: deny                            # for this target; MeshConfig sets the mesh default
          rules:
          - action: allow
            from: [{serviceAccount: frontend}, {namespace: ops}]
            to: [{methods: [GET], paths: [/api/]}]  # or grpc: [{service: helloworld.Greeter, method: SayHello}]
        """;

    public const string MtlsPolicy = """
        apiVersion: trellis.dev/v1alpha1
        kind: MtlsPolicy
        metadata: {name: default, namespace: default}
        spec: {mode: STRICT}                       # STRICT | PERMISSIVE | DISABLE
        """;

    public const string MeshConfig = """
        apiVersion: trellis.dev/v1alpha1
        kind: MeshConfig
        metadata: {name: mesh}
        spec: {trustDomain: cluster.local, defaultAccess: allow, workloadCertTtl: 24h}
        """;

    /// <summary>Every modelled example, as one multi-document file.</summary>
    public static string AllModelled => string.Join("\n---\n", Service, WorkloadEntry, HttpRoute, TrafficPolicy, MeshConfig) + "\n";

    /// <summary>The whole example file, later kinds included.</summary>
    public static string All => string.Join("\n---\n", Service, WorkloadEntry, HttpRoute, TrafficPolicy, AccessPolicy, MtlsPolicy, MeshConfig) + "\n";
}
