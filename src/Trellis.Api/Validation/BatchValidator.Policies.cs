using Trellis.Api.Resources;
using Trellis.Security;

namespace Trellis.Api.Validation;

/// <summary>TrafficPolicy and MeshConfig.</summary>
internal sealed partial class BatchValidator
{
    private void CheckTrafficPolicy(ParsedResource item, TrafficPolicy policy)
    {
        var spec = policy.Spec;
        var target = spec.TargetRef ?? new PolicyTargetReference();
        CheckServiceRef(item, "spec.targetRef", target.Group, target.Kind, target.Name, null, target.Port);

        if (spec.LoadBalancer is { } lb)
        {
            CheckEnum(item, "spec.loadBalancer.algorithm", lb.Algorithm);
            if (lb.Algorithm == LoadBalancerAlgorithm.RingHash && lb.HashOn is null)
            {
                Report(item, "spec.loadBalancer.hashOn", "RingHash needs hashOn to know what to hash, e.g. hashOn: {header: x-user} (or cookie, or sourceIp: true)");
            }

            if (lb.HashOn is { } hashOn)
            {
                if (hashOn.Header is null && hashOn.Cookie is null && hashOn.SourceIp is not true)
                {
                    Report(item, "spec.loadBalancer.hashOn", "hashOn needs one of header, cookie or sourceIp: true");
                }

                if (hashOn.Header is not null)
                {
                    CheckHeaderName(item, "spec.loadBalancer.hashOn.header", hashOn.Header);
                }

                if (hashOn.Cookie is { } cookie && !Names.IsToken(cookie))
                {
                    Report(item, "spec.loadBalancer.hashOn.cookie", $"\"{cookie}\" is not a valid cookie name");
                }
            }
        }

        if (spec.ConnectionPool is { } pool)
        {
            AtLeast(item, "spec.connectionPool.maxConnections", pool.MaxConnections, 1);
            AtLeast(item, "spec.connectionPool.maxPendingRequests", pool.MaxPendingRequests, 1);
            AtLeast(item, "spec.connectionPool.maxRequests", pool.MaxRequests, 1);
            AtLeast(item, "spec.connectionPool.maxRequestsPerConnection", pool.MaxRequestsPerConnection, 1);
            AtLeast(item, "spec.connectionPool.maxRetries", pool.MaxRetries, 0);
            Positive(item, "spec.connectionPool.idleTimeout", pool.IdleTimeout);
        }

        if (spec.OutlierDetection is { } outlier)
        {
            AtLeast(item, "spec.outlierDetection.consecutive5xx", outlier.Consecutive5xx, 0);
            AtLeast(item, "spec.outlierDetection.consecutiveGatewayErrors", outlier.ConsecutiveGatewayErrors, 0);
            Positive(item, "spec.outlierDetection.interval", outlier.Interval);
            Positive(item, "spec.outlierDetection.baseEjectionTime", outlier.BaseEjectionTime);
            Percent(item, "spec.outlierDetection.maxEjectionPercent", outlier.MaxEjectionPercent);
        }

        if (spec.Retries is { } retries)
        {
            if (retries.Attempts is < 0 or > 10)
            {
                Report(item, "spec.retries.attempts", $"attempts {retries.Attempts} is out of range; expected 0-10");
            }

            Positive(item, "spec.retries.perTryTimeout", retries.PerTryTimeout);
            var retryOn = retries.RetryOn ?? [];
            for (var i = 0; i < retryOn.Count; i++)
            {
                if (!RetryOnValues.Contains(retryOn[i], StringComparer.Ordinal))
                {
                    var near = Names.Closest(retryOn[i] ?? "", RetryOnValues);
                    Report(item, $"spec.retries.retryOn[{i}]",
                        $"unknown retryOn value \"{retryOn[i]}\"; {(near is null ? "" : $"did you mean \"{near}\"? ")}expected one of: {string.Join(", ", RetryOnValues)}");
                }
            }

            Percent(item, "spec.retries.budgetPercent", retries.BudgetPercent);
            Positive(item, "spec.retries.backoffBaseInterval", retries.BackoffBaseInterval);
            Positive(item, "spec.retries.backoffMaxInterval", retries.BackoffMaxInterval);
            if (retries is { BackoffBaseInterval: { } baseInterval, BackoffMaxInterval: { } maxInterval } && maxInterval < baseInterval)
            {
                Report(item, "spec.retries.backoffMaxInterval",
                    $"backoffMaxInterval ({Durations.Format(maxInterval)}) is shorter than backoffBaseInterval ({Durations.Format(baseInterval)}); make it at least as long");
            }
        }

        Positive(item, "spec.timeout", spec.Timeout);

        if (spec.Tls is { } tls)
        {
            CheckUpstreamTls(item, tls);
        }

        if (spec.Failover is { } failover)
        {
            var order = failover.Order ?? [];
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < order.Count; i++)
            {
                if (!FailoverLevels.Contains(order[i], StringComparer.Ordinal))
                {
                    Report(item, $"spec.failover.order[{i}]", $"unknown locality level \"{order[i]}\"; expected one of: {string.Join(", ", FailoverLevels)}");
                }
                else if (!seen.Add(order[i]))
                {
                    Report(item, $"spec.failover.order[{i}]", $"\"{order[i]}\" is listed twice; list each level once");
                }
            }
        }
    }

    private void CheckUpstreamTls(ParsedResource item, UpstreamTlsSettings tls)
    {
        CheckEnum(item, "spec.tls.mode", tls.Mode);
        if (tls.Sni is { } sni && !Names.IsDnsName(sni))
        {
            Report(item, "spec.tls.sni", $"\"{sni}\" is not a DNS name; write the name the instances' certificates carry, e.g. greeter.example.com (leave sni out to check the instance's IP address instead)");
        }

        if (tls.CaCertificates is { } pem && PemProblem(pem) is { } problem)
        {
            Report(item, "spec.tls.caCertificates", $"{problem}; paste the CA certificate(s) as PEM, each from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----");
        }

        if (tls.InsecureSkipVerify && tls.CaCertificates is not null)
        {
            Report(item, "spec.tls.insecureSkipVerify", "insecureSkipVerify: true conflicts with caCertificates (the certificates would never be checked); remove one of them");
        }

        if (tls.Mode == UpstreamTlsMode.Disable && (tls.Sni is not null || tls.CaCertificates is not null || tls.InsecureSkipVerify))
        {
            Report(item, "spec.tls.mode", "mode DISABLE (the default) sends plaintext, so sni, caCertificates and insecureSkipVerify do nothing; set mode: SIMPLE or remove them");
        }
    }

    /// <summary>What is wrong with a PEM bundle of CA certificates, or null when every block is a certificate that parses.</summary>
    private static string? PemProblem(string pem)
    {
        var certificates = PemCertificates.Parse(pem, allowOtherBlocks: false, out var problem);
        foreach (var c in certificates)
        {
            c.Dispose();
        }

        return problem;
    }

    /// <summary>One Service takes one policy of each kind: a second one targeting the same Service (and port) is an error.</summary>
    private void CheckTargetConflicts<T>(Func<T, PolicyTargetReference?> targetOf) where T : Resource
    {
        var entries = new List<(T Policy, string Namespace, string Target, int? Port, int BatchIndex, ParsedResource? Source)>();
        for (var b = 0; b < _batch.Count; b++)
        {
            if (_batch[b].Resource is T p && targetOf(p) is { Kind: "Service", Name.Length: > 0 } t)
            {
                entries.Add((p, p.Metadata.Namespace, t.Name, t.Port, b, _batch[b]));
            }
        }

        foreach (var p in _stored.OfType<T>())
        {
            if (targetOf(p) is { Kind: "Service", Name.Length: > 0 } t)
            {
                entries.Add((p, p.Metadata.Namespace, t.Name, t.Port, int.MaxValue, null));
            }
        }

        foreach (var entry in entries.Where(e => e.Source is not null))
        {
            var other = entries.FirstOrDefault(o =>
                o.BatchIndex < entry.BatchIndex && o.Namespace == entry.Namespace && o.Target == entry.Target
                && (o.Port is null || entry.Port is null || o.Port == entry.Port)
                && o.Policy.Metadata.Name != entry.Policy.Metadata.Name);
            if (other.Policy is null)
            {
                // A stored policy counts as "earlier" too.
                other = entries.FirstOrDefault(o =>
                    o.Source is null && o.Namespace == entry.Namespace && o.Target == entry.Target
                    && (o.Port is null || entry.Port is null || o.Port == entry.Port));
            }

            if (other.Policy is null)
            {
                continue;
            }

            var kind = entry.Policy.Kind;
            var where = other.Source is null ? "stored" : Where(other.Source);
            var port = entry.Port ?? other.Port;
            Report(entry.Source!, "spec.targetRef",
                $"conflicts with {kind} {other.Namespace}/{other.Policy.Metadata.Name} ({where}), which also targets Service {entry.Namespace}/{entry.Target}"
                + (port is null ? "" : $" port {port}") + $"; one Service takes one {kind}, so merge them");
        }
    }

    private void CheckMeshConfig(ParsedResource item, MeshConfigSpec spec)
    {
        if (!Names.IsDnsName(spec.TrustDomain))
        {
            Report(item, "spec.trustDomain", $"\"{spec.TrustDomain}\" is not a valid trust domain; write a DNS name of lower-case labels separated by dots, e.g. cluster.local or example.org");
        }

        CheckEnum(item, "spec.defaultAccess", spec.DefaultAccess);
        Positive(item, "spec.workloadCertTtl", spec.WorkloadCertTtl);
    }

    private void CheckMeshConfigCount()
    {
        var batchConfigs = _batch.Where(p => p.Resource is MeshConfig).ToList();
        var stored = _stored.OfType<MeshConfig>().ToList();
        for (var i = 0; i < batchConfigs.Count; i++)
        {
            var item = batchConfigs[i];
            var earlier = batchConfigs.Take(i).FirstOrDefault(o => o.Resource.Metadata.Name != item.Resource.Metadata.Name);
            string? other = earlier is not null
                ? $"MeshConfig \"{earlier.Resource.Metadata.Name}\" ({Where(earlier)})"
                : stored.FirstOrDefault() is { } s ? $"MeshConfig \"{s.Metadata.Name}\" (stored)" : null;
            if (other is not null)
            {
                Report(item, "metadata.name", $"a mesh has one MeshConfig and {other} already exists; edit that one instead");
            }
        }
    }

    private void AtLeast(ParsedResource item, string path, int? value, int minimum)
    {
        if (value is { } v && v < minimum)
        {
            Report(item, path, $"{v} is too small; expected {minimum} or more");
        }
    }

    private void Percent(ParsedResource item, string path, int? value)
    {
        if (value is { } v && v is < 0 or > 100)
        {
            Report(item, path, $"{v} is out of range; expected a percentage 0-100");
        }
    }

    private void Positive(ParsedResource item, string path, TimeSpan? value)
    {
        if (value is { } v && v <= TimeSpan.Zero)
        {
            Report(item, path, $"{Durations.Format(v)} must be positive; write a duration such as 100ms, 5s or 1m");
        }
    }
}
