using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Cli;

/// <summary>A failure to report to the user: the message says what went wrong and what to do.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.UserError) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>Talks to the control plane's REST API.</summary>
internal sealed class ApiClient(string server) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = new Uri(server.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };

    public string Server { get; } = server;

    public async Task<(HttpStatusCode Status, JsonNode? Body)> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, options: new JsonSerializerOptions(JsonSerializerDefaults.Web));
        }
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new CliException($"cannot reach the control plane at {Server} ({ex.Message}); start it with 'trellis control-plane', or point --server or TRELLIS_SERVER at it");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CliException($"the control plane at {Server} did not answer within 30 s; check that it is running and healthy");
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            JsonNode? node = null;
            if (text.Length > 0 && response.Content.Headers.ContentType?.MediaType == "application/json")
            {
                node = JsonNode.Parse(text);
            }
            return (response.StatusCode, node);
        }
    }

    /// <summary>Sends and throws a <see cref="CliException"/> with the server's error text on failure.</summary>
    public async Task<JsonNode?> CallAsync(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        var (status, node) = await SendAsync(method, path, body, ct).ConfigureAwait(false);
        if ((int)status >= 400)
        {
            throw new CliException(node?["error"]?.GetValue<string>() ?? $"the control plane answered {(int)status} {status} to {method} {path}");
        }
        return node;
    }

    public void Dispose() => _http.Dispose();
}
