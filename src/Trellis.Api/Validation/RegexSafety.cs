using System.Text.RegularExpressions;

namespace Trellis.Api.Validation;

/// <summary>Decides whether a user's regular expression may be used: it must compile, run on a linear-time
/// (RE2-style) engine, and not have the nested-repetition shapes that backtrack catastrophically.</summary>
internal static class RegexSafety
{
    /// <summary>Null when the pattern is acceptable, else what is wrong and what to write instead.</summary>
    public static string? Check(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException ex)
        {
            return $"regular expression \"{pattern}\" does not compile: {ex.Message}";
        }

        try
        {
            _ = new Regex(pattern, RegexOptions.NonBacktracking, TimeSpan.FromSeconds(1));
        }
        catch (Exception ex) when (ex is NotSupportedException or ArgumentException)
        {
            return $"regular expression \"{pattern}\" uses a construct that a linear-time (RE2) engine cannot run " +
                   "(backreferences, lookahead or lookbehind, atomic groups, conditionals); rewrite it without them";
        }

        return CheckNesting(pattern);
    }

    private sealed class Frame(int start)
    {
        public int Start { get; } = start;
        public bool HasUnbounded { get; set; }
        public List<int> Bars { get; } = [];
    }

    /// <summary>Finds a group repeated without bound that contains an unbounded repetition ((a+)+, (a*)*) or
    /// alternatives that can match the same text ((a|aa)+).</summary>
    private static string? CheckNesting(string p)
    {
        var stack = new Stack<Frame>();
        stack.Push(new Frame(-1));
        var i = 0;
        while (i < p.Length)
        {
            var c = p[i];
            switch (c)
            {
                case '\\':
                    i += EscapeLength(p, i);
                    i = AfterQuantifier(p, i, stack.Peek(), null, out _);
                    continue;
                case '[':
                    i = ClassEnd(p, i);
                    i = AfterQuantifier(p, i, stack.Peek(), null, out _);
                    continue;
                case '(':
                    stack.Push(new Frame(i));
                    i++;
                    if (i < p.Length && p[i] == '?')
                    {
                        // (?:  (?<name>  (?'name'  (?i)  (?i:
                        while (i < p.Length && p[i] is not (':' or ')' or '>') && !(p[i] == '\'' && p[i - 1] != '?'))
                        {
                            i++;
                        }

                        if (i < p.Length && p[i] == ')')
                        {
                            // Inline options such as (?i): not a group.
                            stack.Pop();
                        }

                        i++;
                    }

                    continue;
                case '|':
                    stack.Peek().Bars.Add(i);
                    i++;
                    continue;
                case ')':
                    if (stack.Count == 1)
                    {
                        i++;
                        continue;
                    }

                    var group = stack.Pop();
                    var groupText = p[group.Start..(i + 1)];
                    i++;
                    var next = AfterQuantifier(p, i, stack.Peek(), group, out var unbounded);
                    if (unbounded)
                    {
                        var quantifier = p[i..next];
                        if (group.HasUnbounded)
                        {
                            return $"regular expression \"{p}\" repeats a group that already repeats (\"{groupText}{quantifier}\"); " +
                                   "nested repetition backtracks catastrophically on text that almost matches. " +
                                   "Write a single repetition instead, e.g. \"a+\" rather than \"(a+)+\"";
                        }

                        if (OverlappingAlternatives(p, group) is { } pair)
                        {
                            return $"regular expression \"{p}\" repeats a group whose alternatives can match the same text " +
                                   $"(\"{pair.A}\" and \"{pair.B}\" in \"{groupText}{quantifier}\"); this backtracks catastrophically. " +
                                   "Make the alternatives exclusive or use one repetition, e.g. \"a+\" rather than \"(a|aa)+\"";
                        }
                    }

                    i = next;
                    continue;
                default:
                    i++;
                    i = AfterQuantifier(p, i, stack.Peek(), null, out _);
                    continue;
            }
        }

        return null;
    }

    /// <summary>Skips a quantifier at <paramref name="i"/>, if any, and notes unbounded repetition in the enclosing frame.</summary>
    private static int AfterQuantifier(string p, int i, Frame enclosing, Frame? group, out bool unbounded)
    {
        unbounded = false;
        if (i >= p.Length)
        {
            PropagateGroup(enclosing, group);
            return i;
        }

        var start = i;
        if (p[i] is '*' or '+')
        {
            unbounded = true;
            i++;
        }
        else if (p[i] == '?')
        {
            i++;
        }
        else if (p[i] == '{')
        {
            var close = p.IndexOf('}', i);
            var body = close > i ? p[(i + 1)..close] : "";
            if (close > i && body.Length > 0 && body.All(ch => char.IsAsciiDigit(ch) || ch == ','))
            {
                unbounded = body.EndsWith(',');
                i = close + 1;
            }
        }

        if (i > start && i < p.Length && p[i] is '?' or '+')
        {
            i++; // lazy or possessive marker
        }

        if (unbounded)
        {
            enclosing.HasUnbounded = true;
        }

        PropagateGroup(enclosing, group);
        return i;
    }

    private static void PropagateGroup(Frame enclosing, Frame? group)
    {
        if (group is { HasUnbounded: true })
        {
            enclosing.HasUnbounded = true;
        }
    }

    private static (string A, string B)? OverlappingAlternatives(string p, Frame group)
    {
        if (group.Bars.Count == 0)
        {
            return null;
        }

        var bodyStart = p.IndexOf(':', group.Start) is var colon && p[group.Start + 1] == '?' && colon > 0 ? colon + 1 : group.Start + 1;
        if (p[group.Start + 1] == '?' && p.Length > group.Start + 2 && p[group.Start + 2] is '<' or '\'')
        {
            bodyStart = p.IndexOfAny(['>', '\''], group.Start + 3) + 1;
        }

        var bounds = new List<int> { bodyStart - 1 };
        bounds.AddRange(group.Bars);
        var end = FindClose(p, group.Start);
        bounds.Add(end);
        var alternatives = new List<string>();
        for (var k = 0; k + 1 < bounds.Count; k++)
        {
            alternatives.Add(p[(bounds[k] + 1)..bounds[k + 1]]);
        }

        for (var a = 0; a < alternatives.Count; a++)
        {
            for (var b = 0; b < alternatives.Count; b++)
            {
                if (a != b && alternatives[a].Length <= alternatives[b].Length && IsLiteral(alternatives[a]) &&
                    alternatives[b].StartsWith(alternatives[a], StringComparison.Ordinal) && (alternatives[a].Length > 0 || a < b))
                {
                    return (alternatives[a], alternatives[b]);
                }
            }
        }

        return null;
    }

    private static bool IsLiteral(string s) => s.All(ch => !"\\[](){}*+?|.^$".Contains(ch, StringComparison.Ordinal));

    private static int FindClose(string p, int open)
    {
        var depth = 0;
        for (var i = open; i < p.Length; i++)
        {
            switch (p[i])
            {
                case '\\':
                    i += EscapeLength(p, i) - 1;
                    break;
                case '[':
                    i = ClassEnd(p, i) - 1;
                    break;
                case '(':
                    depth++;
                    break;
                case ')':
                    depth--;
                    if (depth == 0)
                    {
                        return i;
                    }

                    break;
            }
        }

        return p.Length;
    }

    private static int EscapeLength(string p, int i)
    {
        if (i + 1 >= p.Length)
        {
            return 1;
        }

        if (p[i + 1] is 'p' or 'P' or 'k' && i + 2 < p.Length && p[i + 2] is '{' or '<')
        {
            var close = p.IndexOfAny(['}', '>'], i + 2);
            return close < 0 ? p.Length - i : close - i + 1;
        }

        return 2;
    }

    /// <summary>Index just past the character class that starts at <paramref name="i"/>.</summary>
    private static int ClassEnd(string p, int i)
    {
        var j = i + 1;
        if (j < p.Length && p[j] == '^')
        {
            j++;
        }

        if (j < p.Length && p[j] == ']')
        {
            j++;
        }

        while (j < p.Length && p[j] != ']')
        {
            j += p[j] == '\\' ? 2 : 1;
        }

        return Math.Min(j + 1, p.Length);
    }
}
