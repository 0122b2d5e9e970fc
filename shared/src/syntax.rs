//! A template's source read as MiniJinja reads it, far enough for what promptseal needs to know
//! without rendering: literal text, and the tags with their string literals. The leak guard
//! fingerprints the text and literals; the template check bounds how many blocks a render can
//! produce.

use std::borrow::Cow;

/// One piece of a template's source, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// Text rendered as written: between tags, or inside `{% raw %}`.
    Text(&'a str),
    /// `{{ … }}`: an expression whose value is output.
    Expression(Tag<'a>),
    /// `{% … %}`: a statement.
    Statement(Tag<'a>),
}

/// A tag's code and the string literals in it.
#[derive(Debug, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The code between the delimiters, without whitespace control (`-`, `+`), trimmed.
    pub code: &'a str,
    /// Its string literals, escapes decoded as MiniJinja decodes them.
    pub strings: Vec<Cow<'a, str>>,
}

/// The tokens of `source`. Comments are left out (they render as nothing); an unclosed tag ends
/// the source (MiniJinja refuses it).
pub fn tokens(source: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = source;
    loop {
        let Some((at, open)) = next_tag(rest) else {
            push_text(&mut out, rest);
            return out;
        };
        push_text(&mut out, &rest[..at]);
        let body = &rest[at + 2..];
        let (close, comment) = match open {
            "{{" => ("}}", false),
            "{%" => ("%}", false),
            _ => ("#}", true),
        };
        let Some((strings, end)) = tag_strings(body, close, comment) else {
            return out;
        };
        let code = body[..end - close.len()]
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let after = &body[end..];
        rest = after;
        match open {
            "{{" => out.push(Token::Expression(Tag { code, strings })),
            "{%" if code == "raw" => {
                let (raw, tail) = end_raw(after);
                push_text(&mut out, raw);
                rest = tail;
            }
            "{%" => out.push(Token::Statement(Tag { code, strings })),
            _ => {}
        }
    }
}

/// Where the first tag of `source` opens, and its opening delimiter.
fn next_tag(source: &str) -> Option<(usize, &'static str)> {
    ["{{", "{%", "{#"]
        .iter()
        .filter_map(|open| source.find(open).map(|at| (at, *open)))
        .min()
}

/// The text `source` starts with before its first tag, whitespace at its end left out (a tag
/// written `{%-` or `{{-` takes it away when rendered): what every render of the part begins
/// with, whatever the variables.
pub fn literal_prefix(source: &str) -> &str {
    let end = next_tag(source).map_or(source.len(), |(at, _)| at);
    source[..end].trim_end()
}

/// A part's source as literal text and the variables it outputs with plain `{{ name }}` tags,
/// in order; `None` when it has any other tag (a statement, a filter, a comment, whitespace
/// control) or a variable `declared` does not accept.
pub fn plain_substitutions<'a>(
    source: &'a str,
    declared: impl Fn(&str) -> bool,
) -> Option<Vec<Piece<'a>>> {
    let mut pieces = Vec::new();
    let mut rest = source;
    while let Some((at, open)) = next_tag(rest) {
        pieces.push(Piece::Text(&rest[..at]));
        let after = &rest[at + 2..];
        let end = after.find("}}")?;
        let name = after[..end].trim_matches(' ');
        let plain = open == "{{" && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain || name.is_empty() || !declared(name) {
            return None;
        }
        pieces.push(Piece::Variable(name));
        rest = &after[end + 2..];
    }
    pieces.push(Piece::Text(rest));
    Some(pieces)
}

/// A piece of a part written only with plain substitutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// The most values a template part can output (`{{ … }}` evaluations, macro calls, filter
/// blocks), or `None` when that cannot be known from the source. A loop runs as many rounds as
/// its list literal has items (written in the loop or `set` to a name before), or its
/// `range(…)` of literals gives (at most MiniJinja's 100,000); over a declared variable (a
/// string), at most the variable's length and one (`var_bound`); any other loop is unknown. A
/// macro body counts once per call; a macro used otherwise than called by name (recursion, an
/// alias, `self.`, `caller()`), a declared variable assigned anew, and `call`, `include` or
/// `import` are unknown. Both branches of a condition count.
pub fn max_outputs(source: &str, var_bound: impl Fn(&str) -> Option<usize>) -> Option<usize> {
    struct Frame<'a> {
        rounds: usize,
        macro_name: Option<&'a str>,
        count: usize,
    }
    let mut frames = vec![Frame {
        rounds: 1,
        macro_name: None,
        count: 0,
    }];
    let mut macros: Vec<(&str, usize)> = Vec::new();
    let mut lists: Vec<(&str, usize)> = Vec::new();
    for token in tokens(source) {
        let (tag, output) = match &token {
            Token::Text(_) => continue,
            Token::Expression(tag) => (tag, 1),
            Token::Statement(tag) => (tag, 0),
        };
        let code = tag.code;
        let open_macro = frames.iter().filter_map(|f| f.macro_name);
        let mentioned = |name: &str| mentions(code, name) > 0;
        if code.contains("self.") || code.contains("caller(") || open_macro.clone().any(mentioned) {
            return None;
        }
        let mut calls = 0usize;
        for (name, cost) in &macros {
            let called = calls_of(code, name);
            if called != mentions(code, name) {
                return None;
            }
            calls = calls.saturating_add(cost.saturating_mul(called));
        }
        let mut words = code.split_whitespace();
        let keyword = words.next().unwrap_or("");
        let filter_block = usize::from(keyword == "filter");
        let top = frames.last_mut()?;
        top.count = top.count.saturating_add(output + filter_block + calls);
        for name in assigned(code) {
            if var_bound(name).is_some() {
                return None;
            }
        }
        match keyword {
            "for" => {
                let rounds = rounds(code, &lists, &var_bound)?;
                frames.push(Frame {
                    rounds,
                    macro_name: None,
                    count: 0,
                });
            }
            "set" => {
                // `set x = …`; a block `set x` captures output counted where it is written.
                let (target, value) = code["set".len()..].split_once('=').unwrap_or((code, ""));
                let target = target.trim();
                lists.retain(|(name, _)| *name != target);
                if let Some(items) = list_literal(value.trim()) {
                    lists.push((target, items));
                }
            }
            "macro" => frames.push(Frame {
                rounds: 1,
                macro_name: Some(words.next()?.split('(').next()?),
                count: 0,
            }),
            "endfor" | "endmacro" => {
                let done = frames.pop()?;
                match done.macro_name {
                    Some(name) => macros.push((name, done.count)),
                    None => {
                        let top = frames.last_mut()?;
                        top.count = top
                            .count
                            .saturating_add(done.count.saturating_mul(done.rounds));
                    }
                }
            }
            "call" | "include" | "import" | "from" | "extends" | "block" => return None,
            _ => {}
        }
    }
    match frames.as_slice() {
        [root] => Some(root.count),
        _ => None,
    }
}

/// Where `name` stands as a name of its own in `code` (byte offsets).
fn name_at<'c>(code: &'c str, name: &'c str) -> impl Iterator<Item = usize> + 'c {
    code.match_indices(name)
        .map(|(at, _)| at)
        .filter(move |at| {
            let ident = |c: char| c.is_alphanumeric() || c == '_';
            let before = code[..*at].chars().next_back();
            let after = code[at + name.len()..].chars().next();
            !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
        })
}

/// How often `code` names `name`.
fn mentions(code: &str, name: &str) -> usize {
    name_at(code, name).count()
}

/// How often `code` calls the macro `name`.
fn calls_of(code: &str, name: &str) -> usize {
    name_at(code, name)
        .filter(|at| code[at + name.len()..].trim_start().starts_with('('))
        .count()
}

/// The names a statement assigns: `set` targets, loop variables, macro parameters.
fn assigned(code: &str) -> Vec<&str> {
    fn names(list: &str) -> Vec<&str> {
        list.split([',', '(', ')', ' '])
            .map(|n| n.split('=').next().unwrap_or("").trim())
            .filter(|n| !n.is_empty())
            .collect()
    }
    let mut words = code.splitn(2, char::is_whitespace);
    let rest = words.nth(1).unwrap_or("");
    match code.split_whitespace().next() {
        Some("set") => names(rest.split('=').next().unwrap_or(rest)),
        Some("for") => names(rest.split(" in ").next().unwrap_or(rest)),
        Some("macro") => names(rest.split_once('(').map_or("", |(_, params)| params)),
        _ => Vec::new(),
    }
}

/// MiniJinja's `range` makes at most this many items.
const MAX_RANGE: i128 = 100_000;

/// The rounds of a `for` loop, when the source tells them.
fn rounds(
    code: &str,
    lists: &[(&str, usize)],
    var_bound: &impl Fn(&str) -> Option<usize>,
) -> Option<usize> {
    let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let (_, iterable) = code.split_once(" in ")?;
    if iterable.split_whitespace().any(|w| w == "recursive") {
        return None;
    }
    let iterable = iterable.split(" if ").next()?.trim();
    if let Some(items) = list_literal(iterable) {
        return Some(items);
    }
    if let Some(args) = iterable
        .strip_prefix("range(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let args: Vec<i128> = args
            .split(',')
            .map(|a| a.trim().parse().ok())
            .collect::<Option<_>>()?;
        let (start, end, step) = match args[..] {
            [end] => (0, end, 1),
            [start, end] => (start, end, 1),
            [start, end, step] if step != 0 => (start, end, step),
            _ => return None,
        };
        let span = if step > 0 { end - start } else { start - end };
        let n = (span + step.abs() - 1) / step.abs();
        return usize::try_from(n.clamp(0, MAX_RANGE)).ok();
    }
    if let Some((_, items)) = lists.iter().find(|(name, _)| *name == iterable) {
        return Some(*items);
    }
    // A string variable, or its letters or parts: at most one round per character, and one.
    let (name, filter) = match iterable.split_once('|') {
        Some((name, filter)) => (name.trim(), Some(filter.trim())),
        None => (iterable, None),
    };
    let splits = match filter {
        None | Some("list" | "split") => true,
        Some(f) => f.starts_with("split(") && f.ends_with(')') && !f.contains('|'),
    };
    splits.then(|| var_bound(name)).flatten().map(|n| n + 2)
}

/// The number of items of `expr` when it is a list literal and nothing else: `[…]` whose first
/// bracket closes at its end.
fn list_literal(expr: &str) -> Option<usize> {
    let inner = expr.strip_prefix('[')?.strip_suffix(']')?;
    let (mut depth, mut quote, mut escaped, mut commas) = (0i32, None, false, 0);
    for c in inner.chars() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(' | '{') => depth += 1,
            (None, ']' | ')' | '}') => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            (None, ',') if depth == 0 => commas += 1,
            _ => {}
        }
    }
    if depth != 0 || quote.is_some() {
        return None;
    }
    // Items are separated by top-level commas; a trailing comma ends the last item.
    Some(match inner.trim() {
        "" => 0,
        items => commas + usize::from(!items.ends_with(',')),
    })
}

fn push_text<'a>(out: &mut Vec<Token<'a>>, text: &'a str) {
    if !text.is_empty() {
        out.push(Token::Text(text));
    }
}

/// Splits the text after `{% raw %}` at its `{% endraw %}` (with optional whitespace control):
/// the raw text, and what follows the end tag. Unclosed, all of it is raw text.
fn end_raw(after: &str) -> (&str, &str) {
    let mut from = 0;
    while let Some(at) = after[from..].find("{%").map(|i| from + i) {
        let tag = after[at + 2..].trim_start_matches(['-', '+']).trim_start();
        if let Some(rest) = tag.strip_prefix("endraw") {
            let rest = rest.trim_start().trim_start_matches(['-', '+']);
            if let Some(tail) = rest.strip_prefix("%}") {
                return (&after[..at], tail);
            }
        }
        from = at + 2;
    }
    (after, "")
}

/// The string literals of a tag whose text starts `body`, and the byte offset just past its
/// closing delimiter; `None` when the tag is never closed. As in MiniJinja, the tag ends only
/// outside strings and brackets (`{{ {'k': {'v': 1}} }}`).
fn tag_strings<'a>(
    body: &'a str,
    close: &str,
    comment: bool,
) -> Option<(Vec<Cow<'a, str>>, usize)> {
    if comment {
        return body.find(close).map(|end| (Vec::new(), end + close.len()));
    }
    let mut strings = Vec::new();
    let mut depth = 0usize;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if depth == 0 && body[i..].starts_with(close) {
            return Some((strings, i + close.len()));
        }
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c != '"' && c != '\'' {
            continue;
        }
        let start = i + 1;
        let mut decoded: Option<String> = None;
        loop {
            let (j, d) = chars.next()?;
            if d == c {
                strings.push(decoded.map_or(Cow::Borrowed(&body[start..j]), Cow::Owned));
                break;
            }
            if d == '\\' {
                let text = decoded.get_or_insert_with(|| body[start..j].to_owned());
                let (_, escaped) = chars.next()?;
                match escaped {
                    'n' | 'r' | 't' | 'b' | 'f' => text.push(' '),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                        let unit = u32::from_str_radix(&hex, 16).ok();
                        text.extend(unit.and_then(char::from_u32));
                    }
                    other => text.push(other),
                }
            } else if let Some(text) = &mut decoded {
                text.push(d);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag<'a>(code: &'a str, strings: &[&'a str]) -> Tag<'a> {
        Tag {
            code,
            strings: strings.iter().map(|s| Cow::Borrowed(*s)).collect(),
        }
    }

    #[test]
    fn text_tags_strings_comments_and_raw_blocks() {
        let source = "Hi {{- \"a }} b\" | upper -}}{# note #} there{% if x == 'y' %}!{% endif %}\
                      {%- raw +%}{{ kept }}{% endraw -%} end";
        assert_eq!(
            tokens(source),
            [
                Token::Text("Hi "),
                Token::Expression(tag("\"a }} b\" | upper", &["a }} b"])),
                Token::Text(" there"),
                Token::Statement(tag("if x == 'y'", &["y"])),
                Token::Text("!"),
                Token::Statement(tag("endif", &[])),
                Token::Text("{{ kept }}"),
                Token::Text(" end"),
            ]
        );
    }

    #[test]
    fn outputs_are_bounded_through_loops_and_macros_or_not_at_all() {
        let bound = |name: &str| (name == "q").then_some(40);
        let cases: &[(&str, Option<usize>)] = &[
            ("plain text", Some(0)),
            (
                "{{ a }} and {{ b | upper }}{% if c %}{{ c }}{% else %}x{% endif %}",
                Some(3),
            ),
            (
                "{% for x in ['a, b', \"c\", [1, 2]] %}{{ x }}{{ y }}{% endfor %}",
                Some(6),
            ),
            (
                "{% for i in range(2, 12) %}{% for j in range(3) %}{{ i }}{% endfor %}{% endfor %}",
                Some(30),
            ),
            (
                "{% for i in range(10, 0, -2) %}{{ i }}{% endfor %}",
                Some(5),
            ),
            ("{% for c in q %}{{ c }}{% endfor %}", Some(42)),
            ("{% for w in q | split(' ') %}{{ w }}{% endfor %}", Some(42)),
            (
                "{% macro m(a) %}{{ a }}{{ a }}{% endmacro %}{{ m(1) }}{% for i in [1,2] %}{{ m(i) }}{% endfor %}",
                Some(9),
            ),
            (
                "{% set shots = [{'q': 'a'}, {'q': 'b'}] %}{% for s in shots %}{{ s.q }}{% endfor %}",
                Some(2),
            ),
            (
                "{% for i in range(100) %}{% filter upper %}en{% endfilter %}{% endfor %}",
                Some(100),
            ),
            // A huge range counts as MiniJinja's 100,000 items, without overflowing.
            (
                "{% for i in range(9223372036854775807) %}{% for j in range(9223372036854775807) %}{{ q }}{% endfor %}{% endfor %}",
                Some(10_000_000_000),
            ),
            // Unknown: the loop's rounds, recursion, aliases, shadowed variables, call blocks.
            ("{% for x in items %}{{ x }}{% endfor %}", None),
            (
                "{% for x in q | replace('', 'yy') %}{{ x }}{% endfor %}",
                None,
            ),
            ("{% for i in [range(5000)][0] %}{{ i }}{% endfor %}", None),
            (
                "{% macro r(n) %}{{ q }}{% if n %}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(9) }}",
                None,
            ),
            (
                "{% macro m() %}{{ q }}{% endmacro %}{% set f = m %}{{ f() }}",
                None,
            ),
            (
                "{% set q = range(2000) %}{% for x in q %}{{ x }}{% endfor %}",
                None,
            ),
            ("{% call m() %}x{% endcall %}", None),
            // A block `set` is counted where its outputs are written.
            ("{% set x %}{{ q }}{% endset %}{{ x }}", Some(2)),
        ];
        for (source, expected) in cases {
            assert_eq!(max_outputs(source, bound), *expected, "{source}");
        }
    }

    #[test]
    fn escapes_are_decoded_and_unclosed_tags_end_the_source() {
        let tokens = tokens(r#"{{ "say \"hi\"\nnow \u00e9" }}after {{ "open"#);
        let Token::Expression(t) = &tokens[0] else {
            panic!("{tokens:?}");
        };
        assert_eq!(t.strings, ["say \"hi\" now é"]);
        assert_eq!(tokens[1..], [Token::Text("after ")]);
    }

    #[test]
    fn the_literal_prefix_ends_at_the_first_tag_of_any_kind() {
        assert_eq!(
            literal_prefix("Rules here.\n\n{{ product }} more"),
            "Rules here."
        );
        assert_eq!(literal_prefix("Rules {%- if x %}a{% endif %}"), "Rules");
        assert_eq!(literal_prefix("Rules {# note #} more"), "Rules");
        assert_eq!(literal_prefix("{{ x }} Rules"), "");
        assert_eq!(literal_prefix("Only rules.\n"), "Only rules.");
        assert_eq!(literal_prefix("A { b } c"), "A { b } c");
    }

    #[test]
    fn only_plain_substitutions_of_declared_variables_are_plain() {
        let declared = |n: &str| ["company", "tier"].contains(&n);
        assert_eq!(
            plain_substitutions("For {{ company }} on {{tier}}.", declared),
            Some(vec![
                Piece::Text("For "),
                Piece::Variable("company"),
                Piece::Text(" on "),
                Piece::Variable("tier"),
                Piece::Text("."),
            ])
        );
        for source in [
            "{{ company | upper }}",
            "{{- company }}",
            "{% if tier %}x{% endif %}",
            "{# note #}",
            "{{ other }}",
            "{{ company",
        ] {
            assert_eq!(plain_substitutions(source, declared), None, "{source}");
        }
    }
}
