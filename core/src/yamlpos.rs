//! Find the line and column of a field path (`spec.windows[0].schedule`) in
//! YAML text, for errors found after deserialization (the YAML parser only
//! knows positions while it parses).
//!
//! This is a line scanner for block-style YAML, which is what people write in
//! fleet repos; for flow style it falls back to the nearest enclosing key.

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Parse `spec.windows[0].schedule` into segments.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(n) = stripped[..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = &stripped[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

struct Line<'a> {
    /// Indentation of the content, counting a leading `- ` as indentation.
    indent: usize,
    /// Whether the line starts a list item (`- `).
    item: bool,
    /// Indentation of the `-` for list items.
    dash_indent: usize,
    content: &'a str,
}

fn scan(text: &str) -> Vec<Option<Line<'_>>> {
    text.lines()
        .map(|raw| {
            let trimmed = raw.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                return None;
            }
            let lead = raw.len() - trimmed.len();
            if let Some(after) = trimmed
                .strip_prefix("- ")
                .or_else(|| (trimmed == "-").then_some(""))
            {
                let extra = after.len() - after.trim_start_matches(' ').len();
                Some(Line {
                    indent: lead + 2 + extra,
                    item: true,
                    dash_indent: lead,
                    content: after.trim_start_matches(' '),
                })
            } else {
                Some(Line {
                    indent: lead,
                    item: false,
                    dash_indent: lead,
                    content: trimmed,
                })
            }
        })
        .collect()
}

fn key_of(content: &str) -> Option<&str> {
    let (k, _) = content.split_once(':')?;
    Some(k.trim().trim_matches('"').trim_matches('\''))
}

/// 1-based (line, column) of the path's last segment that could be found.
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    locate_exact(text, path).map(|(l, c, _)| (l, c))
}

/// Like [`locate`], and whether every segment of the path was found.
pub fn locate_exact(text: &str, path: &[Seg]) -> Option<(usize, usize, bool)> {
    locate_nth(text, path, 0)
}

/// 1-based (line, column) of the second `key` of the block mapping at `path`
/// (`spec.drain` + `timeout`): where a key given twice is given again. `None`
/// when the mapping or a second `key` line is not found (flow style).
pub fn locate_repeat(text: &str, path: &[Seg], key: &str) -> Option<(usize, usize)> {
    let mut full = path.to_vec();
    full.push(Seg::Key(key.to_string()));
    match locate_nth(text, &full, 1)? {
        (l, c, true) => Some((l, c)),
        _ => None,
    }
}

/// [`locate_exact`], taking the `last_nth` (0-based) occurrence of the path's
/// last key among its siblings.
fn locate_nth(text: &str, path: &[Seg], last_nth: usize) -> Option<(usize, usize, bool)> {
    let mut matched = 0;
    let lines = scan(text);
    let mut range = 0..lines.len();
    let mut found: Option<(usize, usize)> = None;
    for (depth, seg) in path.iter().enumerate() {
        let nth = if depth + 1 == path.len() { last_nth } else { 0 };
        // The indentation of this block's children: the first content line in range.
        let child = range
            .clone()
            .find_map(|i| lines[i].as_ref().map(|l| (i, l)));
        let Some((_, first)) = child else { break };
        let hit = match seg {
            Seg::Key(k) => {
                let ind = first.indent;
                range
                    .clone()
                    .filter(|&i| {
                        lines[i].as_ref().is_some_and(|l| {
                            l.indent == ind && key_of(l.content) == Some(k.as_str())
                        })
                    })
                    .nth(nth)
            }
            Seg::Index(n) => {
                let dash = first.dash_indent;
                range
                    .clone()
                    .filter(|&i| {
                        lines[i]
                            .as_ref()
                            .is_some_and(|l| l.item && l.dash_indent == dash)
                    })
                    .nth(*n)
            }
        };
        let Some(i) = hit else { break };
        matched += 1;
        let l = lines[i].as_ref()?;
        found = Some((
            i + 1,
            if matches!(seg, Seg::Index(_)) {
                l.dash_indent + 1
            } else {
                l.indent + 1
            },
        ));
        // The block of this node: following lines indented deeper than its own start.
        let own = match seg {
            Seg::Key(_) => l.indent,
            Seg::Index(_) => l.dash_indent,
        };
        let end = (i + 1..lines.len())
            .find(|&j| {
                lines[j]
                    .as_ref()
                    .is_some_and(|m| (if m.item { m.dash_indent } else { m.indent }) <= own)
            })
            .unwrap_or(lines.len());
        range = match seg {
            // A list item's first key sits on the item's own line.
            Seg::Index(_) => i..end,
            Seg::Key(_) => i + 1..end,
        };
    }
    found.map(|(l, c)| (l, c, matched == path.len()))
}

/// Line and column (1-based, columns in characters) of byte offset `at` of `text`.
pub fn line_col_of_byte(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// How deep flow collections (`[...]`, `{...}`) may nest. The YAML parser stops at
/// 128 levels anyway, but takes time quadratic in the depth to get there (a 100 kB
/// file of `[` took a minute), so deeper input is refused before it is parsed.
pub const MAX_FLOW_DEPTH: usize = 128;

/// Where flow collections nest deeper than [`MAX_FLOW_DEPTH`] (line, column), if they
/// do. Brackets in comments and quoted strings do not count; the scan is linear.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev = '\n';
    let mut comment = false;
    for (i, c) in text.char_indices() {
        if comment {
            comment = c != '\n';
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if prev.is_whitespace() || "[{,:".contains(prev) => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(line_col_of_byte(text, i));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "apiVersion: x\nkind: UpdateSchedule\nspec:\n  windows:\n    - schedule: \"0 2 * * 6\"\n      duration: 4h\n    - days: [Sat]\n      startTime: \"01:00\"\n      timeZone: Mars/Base\n  suspended: false\n";

    #[test]
    fn finds_nested_fields() {
        let cases = [
            ("spec", Some((3, 1))),
            ("spec.windows", Some((4, 3))),
            ("spec.windows[0].schedule", Some((5, 7))),
            ("spec.windows[0].duration", Some((6, 7))),
            ("spec.windows[1]", Some((7, 5))),
            ("spec.windows[1].timeZone", Some((9, 7))),
            ("spec.suspended", Some((10, 3))),
            ("kind", Some((2, 1))),
            ("spec.nothing", Some((3, 1))),
        ];
        for (path, want) in cases {
            assert_eq!(locate(DOC, &parse_path(path)), want, "{path}");
        }
    }

    #[test]
    fn finds_a_key_given_again() {
        let doc = "spec:\n  kubernetesVersion: 1.34.2\n  drain:\n    timeout: 1m\n    force: true\n    timeout: 2m\n  kubernetesVersion: 1.35.0\nkind: A\nkind: B\n";
        let cases = [
            ("spec", "kubernetesVersion", Some((7, 3))),
            ("spec.drain", "timeout", Some((6, 5))),
            ("", "kind", Some((9, 1))),
            ("spec.drain", "force", None),
            ("spec.nothing", "timeout", None),
        ];
        for (path, key, want) in cases {
            assert_eq!(
                locate_repeat(doc, &parse_path(path), key),
                want,
                "{path} {key}"
            );
        }
    }

    #[test]
    fn deep_flow_nesting_is_found_and_quotes_and_comments_do_not_count() {
        let deep = format!("a: {}", "[".repeat(MAX_FLOW_DEPTH + 1));
        assert_eq!(too_deep(&deep), Some((1, 4 + MAX_FLOW_DEPTH)));
        let ok = format!(
            "a: {0}{1}\n",
            "[".repeat(MAX_FLOW_DEPTH),
            "]".repeat(MAX_FLOW_DEPTH)
        );
        assert_eq!(too_deep(&ok), None);
        let quoted = format!("a: \"{0}\"\nb: '{0}'\n# {0}\nc: x # {0}\n", "[".repeat(500));
        assert_eq!(too_deep(&quoted), None);
        assert_eq!(line_col_of_byte("ab\ncé\0", 6), (2, 3));
    }
}
