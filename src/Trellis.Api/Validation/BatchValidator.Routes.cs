using Trellis.Api.Resources;

namespace Trellis.Api.Validation;

/// <summary>HTTPRoute, GRPCRoute and TCPRoute rules, and conflicts between routes.</summary>
internal sealed partial class BatchValidator
{
    private void CheckParentRefs(ParsedResource item, IReadOnlyList<ParentReference>? parentRefs)
    {
        var refs = parentRefs ?? [];
        if (refs.Count == 0)
        {
            Report(item, "spec.parentRefs", "at least one parentRef is required: the Service whose traffic this route handles, e.g. {kind: Service, name: greeter}");
            return;
        }

        for (var i = 0; i < refs.Count; i++)
        {
            var r = refs[i];
            CheckServiceRef(item, $"spec.parentRefs[{i}]", r.Group, r.Kind, r.Name, r.Namespace, r.Port);
        }
    }

    private void CheckBackendRefs(ParsedResource item, string rulePath, IReadOnlyList<BackendRef>? backendRefs, bool required)
    {
        var refs = backendRefs ?? [];
        if (refs.Count == 0)
        {
            if (required)
            {
                Report(item, rulePath + ".backendRefs", "at least one backendRef is required: the Service that receives this traffic");
            }

            return;
        }

        for (var i = 0; i < refs.Count; i++)
        {
            var r = refs[i];
            var path = $"{rulePath}.backendRefs[{i}]";
            CheckServiceRef(item, path, r.Group, r.Kind, r.Name, r.Namespace, r.Port);
            if (r.Weight < 0)
            {
                Report(item, path + ".weight", $"weight {r.Weight} is negative; expected 0 or more");
            }
        }

        if (refs.All(r => r.Weight <= 0))
        {
            Report(item, rulePath + ".backendRefs", "weight sum is 0, so no traffic can be sent; give at least one backendRef a weight above 0");
        }
    }

    private void CheckTimeouts(ParsedResource item, string rulePath, HttpRouteTimeouts? timeouts)
    {
        if (timeouts is null)
        {
            return;
        }

        if (timeouts.Request is { } request && request < TimeSpan.Zero)
        {
            Report(item, rulePath + ".timeouts.request", "request timeout is negative; write a duration such as 5s (0s disables it)");
        }

        if (timeouts.BackendRequest is { } backend && backend < TimeSpan.Zero)
        {
            Report(item, rulePath + ".timeouts.backendRequest", "backendRequest timeout is negative; write a duration such as 2s");
        }

        if (timeouts is { Request: { } req, BackendRequest: { } back } && req > TimeSpan.Zero && back > req)
        {
            Report(item, rulePath + ".timeouts.backendRequest",
                $"backendRequest ({Durations.Format(back)}) is longer than request ({Durations.Format(req)}); one try cannot outlast the whole request, so make it at most {Durations.Format(req)}");
        }
    }

    private void CheckRegex(ParsedResource item, string path, string? pattern)
    {
        if (pattern is null)
        {
            return;
        }

        if (RegexSafety.Check(pattern) is { } problem)
        {
            Report(item, path, problem);
        }
    }

    private void CheckHeaderName(ParsedResource item, string path, string? name)
    {
        if (!Names.IsToken(name))
        {
            Report(item, path, $"\"{name}\" is not a valid header name: letters, digits and !#$%&'*+-.^_`|~ only, e.g. x-user-id");
        }
    }

    private void CheckHeaderMatches(ParsedResource item, string matchPath, IReadOnlyList<HttpHeaderMatch>? headers)
    {
        var list = headers ?? [];
        for (var h = 0; h < list.Count; h++)
        {
            var path = $"{matchPath}.headers[{h}]";
            CheckHeaderName(item, path + ".name", list[h].Name);
            if (list[h].Type == StringMatchType.RegularExpression)
            {
                CheckRegex(item, path + ".value", list[h].Value);
            }
        }
    }

    private void CheckHttpRoute(ParsedResource item, HttpRoute route)
    {
        CheckParentRefs(item, route.Spec.ParentRefs);
        var rules = route.Spec.Rules ?? [];
        if (rules.Count == 0)
        {
            Report(item, "spec.rules", "at least one rule is required, e.g. - backendRefs: [{name: greeter, port: 8080}]");
        }

        for (var r = 0; r < rules.Count; r++)
        {
            var rule = rules[r];
            var rulePath = $"spec.rules[{r}]";
            var matches = rule.Matches ?? [];
            for (var m = 0; m < matches.Count; m++)
            {
                var match = matches[m];
                var matchPath = $"{rulePath}.matches[{m}]";
                if (match.Path is { } pathMatch)
                {
                    CheckEnum(item, matchPath + ".path.type", pathMatch.Type);
                    if (pathMatch.Type == PathMatchType.RegularExpression)
                    {
                        CheckRegex(item, matchPath + ".path.value", pathMatch.Value);
                    }
                    else if (pathMatch.Value is null || !pathMatch.Value.StartsWith('/'))
                    {
                        Report(item, matchPath + ".path.value", $"{pathMatch.Type} value \"{pathMatch.Value}\" must start with \"/\", e.g. /api");
                    }
                }

                CheckHeaderMatches(item, matchPath, match.Headers);
                var query = match.QueryParams ?? [];
                for (var q = 0; q < query.Count; q++)
                {
                    var path = $"{matchPath}.queryParams[{q}]";
                    if (string.IsNullOrEmpty(query[q].Name))
                    {
                        Report(item, path + ".name", "query parameter name is required");
                    }

                    if (query[q].Type == StringMatchType.RegularExpression)
                    {
                        CheckRegex(item, path + ".value", query[q].Value);
                    }
                }

                if (match.Method is { } method && !HttpMethods.Contains(method, StringComparer.Ordinal))
                {
                    Report(item, matchPath + ".method", $"\"{method}\" is not an HTTP method; expected one of: {string.Join(", ", HttpMethods)}");
                }
            }

            var redirects = CheckFilters(item, rulePath, rule.Filters);
            CheckBackendRefs(item, rulePath, rule.BackendRefs, required: !redirects);
            CheckTimeouts(item, rulePath, rule.Timeouts);
        }
    }

    private void CheckGrpcRoute(ParsedResource item, GrpcRoute route)
    {
        CheckParentRefs(item, route.Spec.ParentRefs);
        var rules = route.Spec.Rules ?? [];
        if (rules.Count == 0)
        {
            Report(item, "spec.rules", "at least one rule is required, e.g. - backendRefs: [{name: greeter, port: 50051}]");
        }

        for (var r = 0; r < rules.Count; r++)
        {
            var rule = rules[r];
            var rulePath = $"spec.rules[{r}]";
            var matches = rule.Matches ?? [];
            for (var m = 0; m < matches.Count; m++)
            {
                var match = matches[m];
                var matchPath = $"{rulePath}.matches[{m}]";
                if (match.Method is { } method)
                {
                    CheckEnum(item, matchPath + ".method.type", method.Type);
                    if (method.Type == StringMatchType.RegularExpression)
                    {
                        CheckRegex(item, matchPath + ".method.service", method.Service);
                        CheckRegex(item, matchPath + ".method.method", method.Method);
                    }
                    else
                    {
                        if (string.IsNullOrEmpty(method.Service) && string.IsNullOrEmpty(method.Method))
                        {
                            Report(item, matchPath + ".method", "an Exact method match needs service, method or both, e.g. {service: helloworld.Greeter, method: SayHello}");
                        }

                        if (method.Service?.Contains('/', StringComparison.Ordinal) == true)
                        {
                            Report(item, matchPath + ".method.service", $"\"{method.Service}\" must not contain '/'; write the fully qualified service, e.g. helloworld.Greeter");
                        }

                        if (method.Method?.Contains('/', StringComparison.Ordinal) == true)
                        {
                            Report(item, matchPath + ".method.method", $"\"{method.Method}\" must not contain '/'; write the method name only, e.g. SayHello");
                        }
                    }
                }

                CheckHeaderMatches(item, matchPath, match.Headers);
            }

            CheckFilters(item, rulePath, rule.Filters);
            CheckBackendRefs(item, rulePath, rule.BackendRefs, required: true);
            CheckTimeouts(item, rulePath, rule.Timeouts);
        }
    }

    private void CheckTcpRoute(ParsedResource item, TcpRoute route)
    {
        CheckParentRefs(item, route.Spec.ParentRefs);
        var rules = route.Spec.Rules ?? [];
        if (rules.Count == 0)
        {
            Report(item, "spec.rules", "at least one rule is required, e.g. - backendRefs: [{name: db, port: 5432}]");
        }

        for (var r = 0; r < rules.Count; r++)
        {
            CheckBackendRefs(item, $"spec.rules[{r}]", rules[r].BackendRefs, required: true);
        }
    }

    /// <summary>Checks filter shapes; true when the rule redirects (and so needs no backends).</summary>
    private bool CheckFilters(ParsedResource item, string rulePath, IReadOnlyList<HttpRouteFilter>? filters)
    {
        var redirects = false;
        var extensionsOfRule = new Dictionary<string, string>(StringComparer.Ordinal);
        var list = filters ?? [];
        for (var f = 0; f < list.Count; f++)
        {
            var filter = list[f];
            var path = $"{rulePath}.filters[{f}]";
            CheckEnum(item, path + ".type", filter.Type);
            object? body = filter.Type switch
            {
                HttpRouteFilterType.RequestHeaderModifier => filter.RequestHeaderModifier,
                HttpRouteFilterType.ResponseHeaderModifier => filter.ResponseHeaderModifier,
                HttpRouteFilterType.URLRewrite => filter.UrlRewrite,
                HttpRouteFilterType.RequestRedirect => filter.RequestRedirect,
                HttpRouteFilterType.ExtensionRef => filter.ExtensionRef,
                _ => null,
            };
            if (body is null)
            {
                var field = filter.Type switch
                {
                    HttpRouteFilterType.URLRewrite => "urlRewrite",
                    _ => char.ToLowerInvariant(filter.Type.ToString()[0]) + filter.Type.ToString()[1..],
                };
                Report(item, path, $"a {filter.Type} filter needs its {field} field");
                continue;
            }

            switch (body)
            {
                case HeaderModifier modifier:
                    var modifierPath = path + "." + (filter.Type == HttpRouteFilterType.RequestHeaderModifier ? "requestHeaderModifier" : "responseHeaderModifier");
                    CheckHeaderList(item, modifierPath + ".set", modifier.Set);
                    CheckHeaderList(item, modifierPath + ".add", modifier.Add);
                    var remove = modifier.Remove ?? [];
                    for (var i = 0; i < remove.Count; i++)
                    {
                        CheckHeaderName(item, $"{modifierPath}.remove[{i}]", remove[i]);
                    }

                    break;
                case UrlRewrite rewrite:
                    CheckPathModifier(item, path + ".urlRewrite.path", rewrite.Path);
                    break;
                case RequestRedirect redirect:
                    redirects = true;
                    var redirectPath = path + ".requestRedirect";
                    if (redirect.StatusCode is not (301 or 302 or 303 or 307 or 308))
                    {
                        Report(item, redirectPath + ".statusCode", $"statusCode {redirect.StatusCode} is not a redirect; expected one of: 301, 302, 303, 307, 308");
                    }

                    if (redirect.Scheme is { } scheme && scheme is not ("http" or "https"))
                    {
                        Report(item, redirectPath + ".scheme", $"scheme \"{scheme}\" is not supported; expected http or https");
                    }

                    if (redirect.Port is { } port && !IsPort(port))
                    {
                        Report(item, redirectPath + ".port", $"port {port} is out of range; expected 1-65535");
                    }

                    CheckPathModifier(item, redirectPath + ".path", redirect.Path);
                    break;
                case LocalObjectReference extension:
                    CheckExtensionRef(item, path + ".extensionRef", extension, extensionsOfRule);
                    break;
            }
        }

        return redirects;
    }

    private void CheckHeaderList(ParsedResource item, string path, IReadOnlyList<HttpHeader>? headers)
    {
        var list = headers ?? [];
        for (var i = 0; i < list.Count; i++)
        {
            CheckHeaderName(item, $"{path}[{i}].name", list[i].Name);
        }
    }

    private void CheckPathModifier(ParsedResource item, string path, HttpPathModifier? modifier)
    {
        if (modifier is null)
        {
            return;
        }

        var (field, value) = modifier.Type == PathModifierType.ReplaceFullPath
            ? ("replaceFullPath", modifier.ReplaceFullPath)
            : ("replacePrefixMatch", modifier.ReplacePrefixMatch);
        if (value is null)
        {
            Report(item, path, $"type {modifier.Type} needs the {field} field");
        }
        else if (!value.StartsWith('/'))
        {
            Report(item, $"{path}.{field}", $"\"{value}\" must start with \"/\"");
        }
    }

    // ---- conflicts between rules ----

    private sealed record RuleEntry(
        string RouteKind, string ParentNamespace, string Parent, int? Port, string MatchKey,
        Resource Route, int RuleIndex, int BatchIndex, ParsedResource? Source);

    private void CheckRouteConflicts()
    {
        var entries = new List<RuleEntry>();
        for (var b = 0; b < _batch.Count; b++)
        {
            AddRuleEntries(entries, _batch[b].Resource, b, _batch[b]);
        }

        foreach (var stored in _stored)
        {
            AddRuleEntries(entries, stored, -1, null);
        }

        var reported = new HashSet<(int, int)>();
        foreach (var entry in entries.Where(e => e.Source is not null))
        {
            if (reported.Contains((entry.BatchIndex, entry.RuleIndex)))
            {
                continue;
            }

            var other = entries.FirstOrDefault(o =>
                o.RouteKind == entry.RouteKind && o.ParentNamespace == entry.ParentNamespace && o.Parent == entry.Parent
                && (o.Port is null || entry.Port is null || o.Port == entry.Port) && o.MatchKey == entry.MatchKey
                && (o.BatchIndex < entry.BatchIndex || (o.BatchIndex == entry.BatchIndex && o.RuleIndex < entry.RuleIndex)));
            if (other is null)
            {
                continue;
            }

            reported.Add((entry.BatchIndex, entry.RuleIndex));
            var sameRoute = ReferenceEquals(other.Route, entry.Route);
            var otherName = sameRoute
                ? $"rule {other.RuleIndex} of this route"
                : $"{ParsedResource.SubjectOf(other.Route)} rule {other.RuleIndex}" + (other.Source is null ? " (stored)" : $" ({Where(other.Source)})");
            var port = entry.Port ?? other.Port;
            var parent = $"Service {entry.ParentNamespace}/{entry.Parent}" + (port is null ? "" : $" port {port}");
            var path = $"spec.rules[{entry.RuleIndex}]" + (entry.RouteKind == "TCPRoute" ? "" : ".matches");
            Report(entry.Source!, path,
                $"rule {entry.RuleIndex} conflicts with {otherName}: both match {entry.MatchKey} on {parent}, so one of them would never be used; merge them into one rule or make the matches differ");
        }
    }

    private void AddRuleEntries(List<RuleEntry> entries, Resource resource, int batchIndex, ParsedResource? source)
    {
        (IReadOnlyList<ParentReference>? parents, List<string> keys) = resource switch
        {
            HttpRoute h => (h.Spec.ParentRefs, (h.Spec.Rules ?? []).Select(r => HttpMatchKey(r.Matches)).ToList()),
            GrpcRoute g => (g.Spec.ParentRefs, (g.Spec.Rules ?? []).Select(r => GrpcMatchKey(r.Matches)).ToList()),
            TcpRoute t => (t.Spec.ParentRefs, (t.Spec.Rules ?? []).Select(_ => "all connections").ToList()),
            _ => ((IReadOnlyList<ParentReference>?)null, new List<string>()),
        };
        if (parents is null)
        {
            return;
        }

        var seen = new HashSet<(string, string, int?)>();
        foreach (var parent in parents)
        {
            if (parent.Kind != "Service" || string.IsNullOrEmpty(parent.Name))
            {
                continue;
            }

            var ns = string.IsNullOrEmpty(parent.Namespace) ? resource.Metadata.Namespace : parent.Namespace;
            if (!seen.Add((ns, parent.Name, parent.Port)))
            {
                continue;
            }

            for (var r = 0; r < keys.Count; r++)
            {
                entries.Add(new RuleEntry(resource.Kind, ns, parent.Name, parent.Port, keys[r], resource, r, batchIndex, source));
            }
        }
    }

    private static string HttpMatchKey(IReadOnlyList<HttpRouteMatch>? matches)
    {
        var list = matches is { Count: > 0 } ? matches : [new HttpRouteMatch()];
        var parts = list.Select(m =>
        {
            var path = m.Path ?? new HttpPathMatch();
            var text = $"path {path.Type} {path.Value}";
            if (m.Method is { } method)
            {
                text += $", method {method}";
            }

            foreach (var h in (m.Headers ?? []).OrderBy(h => h.Name.ToLowerInvariant(), StringComparer.Ordinal).ThenBy(h => h.Value, StringComparer.Ordinal))
            {
                text += $", header {h.Name.ToLowerInvariant()} {h.Type} {h.Value}";
            }

            foreach (var q in (m.QueryParams ?? []).OrderBy(q => q.Name, StringComparer.Ordinal).ThenBy(q => q.Value, StringComparer.Ordinal))
            {
                text += $", query {q.Name} {q.Type} {q.Value}";
            }

            return "{" + text + "}";
        });
        return string.Join(" or ", parts.Distinct().Order(StringComparer.Ordinal));
    }

    private static string GrpcMatchKey(IReadOnlyList<GrpcRouteMatch>? matches)
    {
        var list = matches is { Count: > 0 } ? matches : [new GrpcRouteMatch()];
        var parts = list.Select(m =>
        {
            var text = m.Method is { } method
                ? $"method {method.Type} {(string.IsNullOrEmpty(method.Service) ? "*" : method.Service)}/{(string.IsNullOrEmpty(method.Method) ? "*" : method.Method)}"
                : "any method";
            foreach (var h in (m.Headers ?? []).OrderBy(h => h.Name.ToLowerInvariant(), StringComparer.Ordinal).ThenBy(h => h.Value, StringComparer.Ordinal))
            {
                text += $", header {h.Name.ToLowerInvariant()} {h.Type} {h.Value}";
            }

            return "{" + text + "}";
        });
        return string.Join(" or ", parts.Distinct().Order(StringComparer.Ordinal));
    }
}
