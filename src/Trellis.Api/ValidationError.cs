using System.Text;

namespace Trellis.Api;

/// <summary>One problem found while reading or validating resources.</summary>
/// <param name="File">File name as given to the reader.</param>
/// <param name="Document">1-based document index within the file; 0 when unknown.</param>
/// <param name="Line">1-based line; 0 when unknown.</param>
/// <param name="Column">1-based column; 0 when unknown.</param>
/// <param name="Path">Field path such as "spec.rules[0].backendRefs[1].name"; empty for the whole document.</param>
/// <param name="Message">What is wrong and what would be right.</param>
public sealed record ValidationError(string File, int Document, int Line, int Column, string Path, string Message)
{
    /// <summary>The resource the error is about, "KIND NAMESPACE/NAME" (or "KIND NAME" when cluster-scoped), when known.</summary>
    public string? Subject { get; init; }

    /// <summary>"routes.yaml:12:9: document 2 (HTTPRoute default/greeter): spec.rules[0].backendRefs[1].name: message".</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(string.IsNullOrEmpty(File) ? "<input>" : File);
        if (Line > 0)
        {
            sb.Append(':').Append(Line);
            if (Column > 0)
            {
                sb.Append(':').Append(Column);
            }
        }

        sb.Append(": ");
        if (Document > 0)
        {
            sb.Append("document ").Append(Document);
            if (!string.IsNullOrEmpty(Subject))
            {
                sb.Append(" (").Append(Subject).Append(')');
            }

            sb.Append(": ");
        }
        else if (!string.IsNullOrEmpty(Subject))
        {
            sb.Append(Subject).Append(": ");
        }

        if (!string.IsNullOrEmpty(Path))
        {
            sb.Append(Path).Append(": ");
        }

        sb.Append(Message);
        return sb.ToString();
    }
}
