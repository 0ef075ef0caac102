namespace Trellis.Cli.Demo;

/// <summary>The sample mesh `trellis demo` applies: a greeter with two versions and a canary split.</summary>
internal static class DemoMesh
{
    public const string Yaml = """
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter, namespace: demo}
        spec:
          ports: [{name: http, port: 8080, protocol: http}]
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter-v1, namespace: demo}
        spec:
          ports: [{name: http, port: 8080, protocol: http}]
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: greeter-v2, namespace: demo}
        spec:
          ports: [{name: http, port: 8080, protocol: http}]
        ---
        apiVersion: trellis.dev/v1alpha1
        kind: Service
        metadata: {name: web, namespace: demo}
        spec:
          ports: [{name: http, port: 8080, protocol: http}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: greeter-canary, namespace: demo}
        spec:
          parentRefs: [{kind: Service, name: greeter, port: 8080}]
          rules:
          - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-canary, value: "1"}]}]
            backendRefs: [{kind: Service, name: greeter-v2, port: 8080}]
          - backendRefs:
            - {kind: Service, name: greeter-v1, port: 8080, weight: 90}
            - {kind: Service, name: greeter-v2, port: 8080, weight: 10}
            timeouts: {request: 5s}
        """;
}
