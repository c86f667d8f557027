//! A fast reader for the block-style YAML that `kubectl get -o yaml` prints.
//!
//! A general YAML parser spends most of a 20 MB snapshot in its scanner; the
//! YAML kubectl prints uses a small part of the language: block mappings and
//! sequences, plain and quoted scalars (folded over lines past 80 columns, as
//! go-yaml prints long strings), literal block scalars (`|`) and the empty
//! flow collections `{}` and `[]`. This module reads exactly that
//! subset into a flat list of events (a line at a time) and deserializes from
//! them with the same scalar rules as `yaml_serde`, borrowing strings from the
//! input where it can.
//!
//! It never reports an error of its own: on anything outside the subset (an
//! anchor, a tag, a `>` scalar, a flow collection with content, tabs,
//! carriage returns, odd indentation…) and on
//! anything the target type rejects, it answers `None`, and the caller parses
//! the text again with the full parser, whose result (and error message, with
//! its line and column) is then the answer. So the subset only has to be read
//! *correctly*, never *completely*: whatever it accepts, it reads the way
//! `yaml_serde` does, and the tests here and in `snapshot.rs` compare the two.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Visitor};

/// Deserialize `text` if it is in the subset and `T` accepts it.
pub(super) fn from_str<'a, T: de::Deserialize<'a>>(text: &'a str) -> Option<T> {
    let (events, owned) = Parser::new(text).document().ok()?;
    let mut de = Events {
        src: text,
        ev: &events,
        owned: &owned,
        pos: 0,
    };
    let value = T::deserialize(&mut de).ok()?;
    (de.pos == events.len()).then_some(value)
}

/// Outside the subset, or rejected by the target type: fall back.
#[derive(Debug)]
pub(super) struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not in the fast YAML subset")
    }
}

impl std::error::Error for Unsupported {}

impl de::Error for Unsupported {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

type Result<T, E = Unsupported> = std::result::Result<T, E>;

/// An event as the parser makes it.
#[derive(Debug, PartialEq)]
enum Ev<'a> {
    MapStart,
    MapEnd,
    SeqStart,
    SeqEnd,
    /// A scalar's value, and whether it was plain (unquoted, not a block scalar):
    /// only plain scalars are resolved to null, booleans and numbers.
    Scalar(Cow<'a, str>, bool),
}

/// An event as it is kept: 12 bytes, a scalar as a span of the input (or an
/// index into the owned strings). A snapshot has millions of events, and a
/// list of fat ones costs more in page faults than the parsing itself.
#[derive(Clone, Copy)]
struct Packed {
    kind: Kind,
    at: u32,
    len: u32,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    MapStart,
    MapEnd,
    SeqStart,
    SeqEnd,
    /// A plain scalar, `at..at + len` of the input.
    Plain,
    /// A quoted scalar without escapes, `at..at + len` of the input.
    Quoted,
    /// A quoted or block scalar unlike its text in the input: the owned string number `at`.
    Owned,
    /// A plain scalar over several lines: the owned string number `at`.
    OwnedPlain,
}

/// An event as the deserializer reads it.
#[derive(Clone, Copy)]
enum Tok<'e, 'a> {
    MapStart,
    MapEnd,
    SeqStart,
    SeqEnd,
    /// As in [`Ev::Scalar`].
    Scalar(Text<'e, 'a>, bool),
}

/// A scalar's text: borrowed from the input, or from the owned strings.
#[derive(Clone, Copy)]
enum Text<'e, 'a> {
    Input(&'a str),
    Owned(&'e str),
}

impl std::ops::Deref for Text<'_, '_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Input(s) | Text::Owned(s) => s,
        }
    }
}

/// Deeper nesting is left to the full parser (and its recursion limit).
const MAX_DEPTH: usize = 100;

/// One line with content (not blank, not only a comment).
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    /// After the indentation, without the line break.
    text: &'a str,
    /// Offset of the next line.
    next: usize,
}

struct Parser<'a> {
    src: &'a str,
    /// Offset of the first line not yet read.
    pos: usize,
    out: Vec<Packed>,
    owned: Vec<String>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            // kubectl's YAML makes about one event for every 7 bytes; growing
            // the list costs a copy and fresh pages, and reserving more costs
            // nothing until it is written.
            out: Vec::with_capacity(src.len() / 4),
            owned: Vec::new(),
            depth: 0,
        }
    }

    fn emit(&mut self, ev: Ev<'a>) {
        let (kind, at, len) = match ev {
            Ev::MapStart => (Kind::MapStart, 0, 0),
            Ev::MapEnd => (Kind::MapEnd, 0, 0),
            Ev::SeqStart => (Kind::SeqStart, 0, 0),
            Ev::SeqEnd => (Kind::SeqEnd, 0, 0),
            Ev::Scalar(Cow::Borrowed(s), plain) => {
                let kind = if plain { Kind::Plain } else { Kind::Quoted };
                // Every borrowed scalar is a slice of the input but the empty
                // ones, which may be a literal `""`.
                let at = (s.as_ptr() as usize).wrapping_sub(self.src.as_ptr() as usize);
                if s.is_empty()
                    || at
                        .checked_add(s.len())
                        .is_none_or(|end| end > self.src.len())
                {
                    (kind, 0, 0)
                } else {
                    (kind, at, s.len())
                }
            }
            Ev::Scalar(Cow::Owned(s), plain) => {
                self.owned.push(s);
                let kind = if plain { Kind::OwnedPlain } else { Kind::Owned };
                (kind, self.owned.len() - 1, 0)
            }
        };
        // In range: document() takes no input of 4 GiB or more.
        self.out.push(Packed {
            kind,
            at: at as u32,
            len: len as u32,
        });
    }

    fn document(mut self) -> Result<(Vec<Packed>, Vec<String>)> {
        if u32::try_from(self.src.len()).is_err() || has_unsupported_bytes(self.src.as_bytes()) {
            return Err(Unsupported);
        }
        // An explicit start of the document, after comments.
        while self.pos < self.src.len() {
            let (line, next) = self.raw_line(self.pos);
            let text = line.trim_start_matches(' ');
            if text.is_empty() || text.starts_with('#') {
                self.pos = next;
                continue;
            }
            if line == "---" {
                self.pos = next;
            }
            break;
        }
        let Some(l) = self.peek()? else {
            return Err(Unsupported);
        };
        self.pos = l.next;
        self.node_inline(l.indent, l.text, -1)?;
        if self.peek()?.is_some() {
            return Err(Unsupported);
        }
        Ok((self.out, self.owned))
    }

    /// The line at `at` (without its line break) and the offset of the next.
    fn raw_line(&self, at: usize) -> (&'a str, usize) {
        let rest = &self.src[at..];
        match rest.find('\n') {
            Some(i) => (&rest[..i], at + i + 1),
            None => (rest, self.src.len()),
        }
    }

    /// The next line with content, skipping blank and comment lines (which
    /// are consumed); a document marker or directive is outside the subset.
    fn peek(&mut self) -> Result<Option<Line<'a>>> {
        while self.pos < self.src.len() {
            let (line, next) = self.raw_line(self.pos);
            let text = line.trim_start_matches(' ');
            if text.is_empty() || text.starts_with('#') {
                self.pos = next;
                continue;
            }
            let indent = line.len() - text.len();
            if indent == 0
                && (text.starts_with("---") || text.starts_with("...") || text.starts_with('%'))
            {
                return Err(Unsupported);
            }
            return Ok(Some(Line { indent, text, next }));
        }
        Ok(None)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Unsupported);
        }
        Ok(())
    }

    /// A node starting at column `col` of the current line, `text` being the
    /// rest of that line; `parent` is the indentation of the enclosing block.
    fn node_inline(&mut self, col: usize, text: &'a str, parent: isize) -> Result<()> {
        if is_seq_entry(text) {
            return self.seq(col, text);
        }
        if let Some((key, after)) = split_key(text)? {
            return self.map(col, key, after);
        }
        self.scalar_inline(text, parent)
    }

    /// The value after `key:` or `-` when nothing follows on the line: a node
    /// on the next lines, more indented than `parent` (or, after a key, a
    /// sequence at the key's own indentation), or else null.
    fn block_value(&mut self, parent: usize, seq_at_parent: bool) -> Result<()> {
        match self.peek()? {
            Some(l) if l.indent > parent => {
                self.pos = l.next;
                self.node_inline(l.indent, l.text, parent as isize)
            }
            Some(l) if l.indent == parent && seq_at_parent && is_seq_entry(l.text) => {
                self.pos = l.next;
                self.seq(l.indent, l.text)
            }
            _ => {
                self.emit(Ev::Scalar(Cow::Borrowed(""), true));
                Ok(())
            }
        }
    }

    /// A block sequence whose first `-` is at column `col`, `first` being that line's text.
    fn seq(&mut self, col: usize, first: &'a str) -> Result<()> {
        self.enter()?;
        self.emit(Ev::SeqStart);
        let mut entry = first;
        loop {
            let after = &entry[1..];
            let rest = after.trim_start_matches(' ');
            if rest.is_empty() || rest.starts_with('#') {
                self.block_value(col, false)?;
            } else {
                self.node_inline(col + 1 + after.len() - rest.len(), rest, col as isize)?;
            }
            match self.peek()? {
                Some(l) if l.indent == col && is_seq_entry(l.text) => {
                    self.pos = l.next;
                    entry = l.text;
                }
                Some(l) if l.indent > col => return Err(Unsupported),
                _ => break,
            }
        }
        self.emit(Ev::SeqEnd);
        self.depth -= 1;
        Ok(())
    }

    /// A block mapping whose first key is at column `col`.
    fn map(&mut self, col: usize, first_key: Ev<'a>, first_after: &'a str) -> Result<()> {
        self.enter()?;
        self.emit(Ev::MapStart);
        let (mut key, mut after) = (first_key, first_after);
        loop {
            self.emit(key);
            let value = after.trim_start_matches(' ');
            if value.is_empty() || value.starts_with('#') {
                self.block_value(col, true)?;
            } else if is_seq_entry(value) {
                return Err(Unsupported);
            } else {
                self.scalar_inline(value, col as isize)?;
            }
            match self.peek()? {
                Some(l) if l.indent == col => match split_key(l.text)? {
                    Some((k, a)) => {
                        self.pos = l.next;
                        (key, after) = (k, a);
                    }
                    None => return Err(Unsupported),
                },
                Some(l) if l.indent > col => return Err(Unsupported),
                _ => break,
            }
        }
        self.emit(Ev::MapEnd);
        self.depth -= 1;
        Ok(())
    }

    /// A scalar (or `{}` / `[]`) that starts at `text` and ends on this line,
    /// except a literal block scalar, whose content lines follow.
    fn scalar_inline(&mut self, text: &'a str, parent: isize) -> Result<()> {
        let b = text.as_bytes();
        let ev = match b[0] {
            b'"' | b'\'' => {
                let double = b[0] == b'"';
                let one_line = if double {
                    double_quoted(text)?
                } else {
                    single_quoted(text)?
                };
                let (v, rest) = match one_line {
                    Some(v) => v,
                    None => self.quoted_lines(text, parent, double)?,
                };
                end_of_line(rest)?;
                Ev::Scalar(v, false)
            }
            b'|' => {
                let keep = match strip_comment(&text[1..]) {
                    "" => Chomp::Clip,
                    "-" => Chomp::Strip,
                    "+" => Chomp::Keep,
                    _ => return Err(Unsupported),
                };
                let v = self.literal(parent, keep)?;
                Ev::Scalar(Cow::Owned(v), false)
            }
            b'{' | b'[' => {
                let (start, end) = match strip_comment(text) {
                    "{}" => (Ev::MapStart, Ev::MapEnd),
                    "[]" => (Ev::SeqStart, Ev::SeqEnd),
                    _ => return Err(Unsupported),
                };
                self.emit(start);
                end
            }
            _ => {
                let v = plain(text)?;
                // After a comment nothing continues the scalar.
                let commented = v.len() < text.trim_end_matches(' ').len();
                let v = if commented {
                    Cow::Borrowed(v)
                } else {
                    self.plain_lines(v, parent)?
                };
                Ev::Scalar(v, true)
            }
        };
        self.emit(ev);
        Ok(())
    }

    /// A plain scalar whose first line is `first`, with the lines that continue
    /// it (more indented than `parent`) folded in: a line break is a space,
    /// and n blank lines are n line feeds.
    fn plain_lines(&mut self, first: &'a str, parent: isize) -> Result<Cow<'a, str>> {
        let mut out: Option<String> = None;
        let mut pos = self.pos;
        let mut blanks = 0;
        while pos < self.src.len() {
            // Mostly the next line is a sibling or a parent's: tell from its
            // indentation alone, before looking for its end.
            let bytes = &self.src.as_bytes()[pos..];
            let spaces = bytes.iter().take_while(|&&b| b == b' ').count();
            if (spaces as isize) <= parent && bytes.get(spaces).is_some_and(|&b| b != b'\n') {
                break;
            }
            let (line, next) = self.raw_line(pos);
            let text = line.trim_start_matches(' ');
            if text.is_empty() {
                blanks += 1;
                pos = next;
                continue;
            }
            let indent = line.len() - text.len();
            if (indent as isize) <= parent || text.starts_with('#') {
                break;
            }
            if indent == 0 || text.contains(" #") {
                return Err(Unsupported);
            }
            let more = plain(text)?;
            let s = out.get_or_insert_with(|| first.to_string());
            if blanks == 0 {
                s.push(' ');
            }
            for _ in 0..blanks {
                s.push('\n');
            }
            s.push_str(more);
            blanks = 0;
            pos = next;
            self.pos = next;
        }
        Ok(out.map_or(Cow::Borrowed(first), Cow::Owned))
    }

    /// A quoted scalar not closed on its first line, `text` starting at its
    /// opening quote: its value, folded as YAML folds flow scalars (a line
    /// break is a space, n blank lines are n line feeds, spaces around a break
    /// go, `\` before a break in a double-quoted scalar joins the lines), and
    /// the rest of the line that closes it. Every line it spans is more
    /// indented than `parent`.
    fn quoted_lines(
        &mut self,
        text: &'a str,
        parent: isize,
        double: bool,
    ) -> Result<(Cow<'a, str>, &'a str)> {
        let mut out = String::new();
        let mut seg = &text[1..];
        loop {
            // `seg` runs to the end of its line, unclosed.
            let trimmed = seg.trim_end_matches(' ');
            let backslashes = trimmed.len() - trimmed.trim_end_matches('\\').len();
            let joined = double && backslashes % 2 == 1;
            if joined && trimmed.len() < seg.len() {
                // An escaped space before trailing spaces: left to the full parser.
                return Err(Unsupported);
            }
            let body = if joined {
                &trimmed[..trimmed.len() - 1]
            } else {
                trimmed
            };
            unquote_into(body, double, &mut out)?;
            let mut blanks = 0;
            let next_line = loop {
                if self.pos >= self.src.len() {
                    return Err(Unsupported);
                }
                let (line, next) = self.raw_line(self.pos);
                self.pos = next;
                let l = line.trim_start_matches(' ');
                if l.is_empty() {
                    blanks += 1;
                    continue;
                }
                let indent = line.len() - l.len();
                if indent == 0 || (indent as isize) <= parent {
                    return Err(Unsupported);
                }
                break l;
            };
            match (joined, blanks) {
                (true, 0) => {}
                (true, _) => return Err(Unsupported),
                (false, 0) => out.push(' '),
                (false, n) => out.extend(std::iter::repeat_n('\n', n)),
            }
            match close_at(next_line, double) {
                Some(i) => {
                    unquote_into(&next_line[..i], double, &mut out)?;
                    return Ok((Cow::Owned(out), &next_line[i + 1..]));
                }
                None => seg = next_line,
            }
        }
    }

    /// The content of a literal block scalar whose header line has been read,
    /// its indentation detected from its first non-empty line.
    fn literal(&mut self, parent: isize, chomp: Chomp) -> Result<String> {
        let mut out = String::new();
        let mut indent: Option<usize> = None;
        let mut leading_blank_width = 0;
        let mut blanks = 0usize;
        let mut content = false;
        while self.pos < self.src.len() {
            let (line, next) = self.raw_line(self.pos);
            let spaces = line.len() - line.trim_start_matches(' ').len();
            if spaces == line.len() {
                match indent {
                    None => leading_blank_width = leading_blank_width.max(spaces),
                    // A blank line with spaces past the indentation keeps them: rare, left to the full parser.
                    Some(n) if spaces > n => return Err(Unsupported),
                    Some(_) => {}
                }
                blanks += 1;
                self.pos = next;
                continue;
            }
            let n = match indent {
                Some(n) if spaces < n => break,
                Some(n) => n,
                None if (spaces as isize) <= parent => break,
                None if leading_blank_width > spaces => return Err(Unsupported),
                None => {
                    indent = Some(spaces);
                    spaces
                }
            };
            if content {
                out.push('\n');
            }
            for _ in 0..blanks {
                out.push('\n');
            }
            blanks = 0;
            out.push_str(&line[n..]);
            content = true;
            self.pos = next;
        }
        if !self.src.ends_with('\n') && self.pos >= self.src.len() {
            // Whether the last line break is "there" is the full parser's call.
            return Err(Unsupported);
        }
        if !content {
            return match chomp {
                Chomp::Keep => Err(Unsupported),
                _ => Ok(out),
            };
        }
        match chomp {
            Chomp::Strip => {}
            Chomp::Clip => out.push('\n'),
            Chomp::Keep => {
                for _ in 0..=blanks {
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum Chomp {
    Clip,
    Strip,
    Keep,
}

fn is_seq_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Bytes the full parser rejects or treats specially (control characters, tabs,
/// carriage returns, DEL, C1 controls and NEL, U+2028/U+2029 line breaks,
/// byte-order marks, U+FFFE/U+FFFF): any of these sends the whole text to it.
/// A quick pass, folded per chunk so it vectorizes, then an exact one.
fn has_unsupported_bytes(b: &[u8]) -> bool {
    let candidate =
        |x: u8| (x < 0x20 && x != b'\n') | (x == 0x7f) | (x == 0xc2) | (x == 0xe2) | (x == 0xef);
    if !b
        .chunks(64)
        .any(|c| c.iter().fold(false, |acc, &x| acc | candidate(x)))
    {
        return false;
    }
    (0..b.len()).any(|i| match b[i] {
        0xc2 => b.get(i + 1).is_some_and(|x| (0x80..=0x9f).contains(x)),
        0xe2 => matches!(b.get(i + 1..i + 3), Some([0x80, 0xa8 | 0xa9])),
        0xef => matches!(
            b.get(i + 1..i + 3),
            Some([0xbb, 0xbf] | [0xbf, 0xbe | 0xbf])
        ),
        x => (x < 0x20 && x != b'\n') || x == 0x7f,
    })
}

/// A mapping key at the start of `text`: its scalar event and what follows the `:`.
fn split_key(text: &str) -> Result<Option<(Ev<'_>, &str)>> {
    let b = text.as_bytes();
    if b[0] == b'"' || b[0] == b'\'' {
        let one_line = if b[0] == b'"' {
            double_quoted(text)?
        } else {
            single_quoted(text)?
        };
        // Not closed on this line: a multi-line scalar, never a key.
        let Some((key, rest)) = one_line else {
            return Ok(None);
        };
        let rest = rest.trim_start_matches(' ');
        return Ok(match rest.strip_prefix(':') {
            Some(after) if after.is_empty() || after.starts_with(' ') => {
                Some((Ev::Scalar(key, false), after))
            }
            _ => None,
        });
    }
    let mut i = 0;
    while let Some(off) = text[i..].find([':', '#']) {
        let at = i + off;
        if b[at] == b'#' {
            if at > 0 && b[at - 1] == b' ' {
                return Ok(None);
            }
        } else if at + 1 == b.len() || b[at + 1] == b' ' {
            let key = &text[..at];
            if key.is_empty() || key.ends_with(' ') || starts_with_indicator(key) {
                return Err(Unsupported);
            }
            return Ok(Some((
                Ev::Scalar(Cow::Borrowed(key), true),
                &text[at + 1..],
            )));
        }
        i = at + 1;
    }
    Ok(None)
}

/// A plain scalar can't start with these (or with `-`, `?`, `:` before a space).
fn starts_with_indicator(s: &str) -> bool {
    let b = s.as_bytes();
    match b[0] {
        b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' | b',' | b'[' | b']' | b'{'
        | b'}' | b'#' | b'\'' | b'"' => true,
        b'-' | b'?' | b':' => b.len() == 1 || b[1] == b' ',
        _ => false,
    }
}

/// A one-line plain scalar: up to a comment, without trailing spaces.
fn plain(text: &str) -> Result<&str> {
    if starts_with_indicator(text) {
        return Err(Unsupported);
    }
    let b = text.as_bytes();
    let mut end = b.len();
    let mut i = 0;
    while let Some(off) = text[i..].find([':', '#']) {
        let at = i + off;
        if b[at] == b'#' {
            if b[at - 1] == b' ' {
                end = at;
                break;
            }
        } else if at + 1 == b.len() || b[at + 1] == b' ' {
            // `a: b: c` or `a: b:`: a mapping where a scalar belongs.
            return Err(Unsupported);
        }
        i = at + 1;
    }
    Ok(text[..end].trim_end_matches(' '))
}

/// `text` without a trailing comment and spaces (for `|`, `{}`, `[]`).
fn strip_comment(text: &str) -> &str {
    let t = match text.find(" #") {
        Some(i) => &text[..i],
        None => text,
    };
    t.trim_end_matches(' ')
}

/// After a quoted scalar: only spaces and a comment.
fn end_of_line(rest: &str) -> Result<()> {
    let t = rest.trim_start_matches(' ');
    if t.is_empty() || (t.starts_with('#') && t.len() < rest.len()) {
        Ok(())
    } else {
        Err(Unsupported)
    }
}

/// A single-quoted scalar closed on this line and the rest of the line, or
/// `None` if the line does not close it.
fn single_quoted(text: &str) -> Result<Option<(Cow<'_, str>, &str)>> {
    let body = &text[1..];
    let mut owned: Option<String> = None;
    let mut i = 0;
    loop {
        let Some(off) = body[i..].find('\'') else {
            return Ok(None);
        };
        let at = i + off;
        if body.as_bytes().get(at + 1) == Some(&b'\'') {
            owned
                .get_or_insert_with(String::new)
                .push_str(&body[i..=at]);
            i = at + 2;
            continue;
        }
        let v = match owned {
            Some(mut s) => {
                s.push_str(&body[i..at]);
                Cow::Owned(s)
            }
            None => Cow::Borrowed(&body[..at]),
        };
        return Ok(Some((v, &body[at + 1..])));
    }
}

/// A double-quoted scalar closed on this line and the rest of the line, or
/// `None` if the line does not close it.
fn double_quoted(text: &str) -> Result<Option<(Cow<'_, str>, &str)>> {
    let body = &text[1..];
    let b = body.as_bytes();
    let mut owned: Option<String> = None;
    let mut i = 0;
    loop {
        let Some(off) = body[i..].find(['"', '\\']) else {
            return Ok(None);
        };
        let at = i + off;
        if b[at] == b'"' {
            let v = match owned {
                Some(mut s) => {
                    s.push_str(&body[i..at]);
                    Cow::Owned(s)
                }
                None => Cow::Borrowed(&body[..at]),
            };
            return Ok(Some((v, &body[at + 1..])));
        }
        if at + 1 == b.len() {
            // A `\` before the line break: the scalar goes on.
            return Ok(None);
        }
        let s = owned.get_or_insert_with(String::new);
        s.push_str(&body[i..at]);
        let (c, next) = escape(body, at)?;
        s.push(c);
        i = next;
    }
}

/// Where a line of a quoted scalar closes it, if it does.
fn close_at(line: &str, double: bool) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if double => i += 2,
            b'"' if double => return Some(i),
            b'\'' if !double => {
                if b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                } else {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// A stretch of a quoted scalar without its closing quote, unescaped onto `out`.
fn unquote_into(seg: &str, double: bool, out: &mut String) -> Result<()> {
    if !double {
        out.push_str(&seg.replace("''", "'"));
        return Ok(());
    }
    let mut i = 0;
    while let Some(off) = seg[i..].find('\\') {
        let at = i + off;
        out.push_str(&seg[i..at]);
        let (c, next) = escape(seg, at)?;
        out.push(c);
        i = next;
    }
    out.push_str(&seg[i..]);
    Ok(())
}

/// The escape sequence at `at` (a `\`) of a double-quoted scalar: its character
/// and the offset after it.
fn escape(body: &str, at: usize) -> Result<(char, usize)> {
    let b = body.as_bytes();
    let Some(&e) = b.get(at + 1) else {
        return Err(Unsupported);
    };
    let mut next = at + 2;
    let c = match e {
        b'0' => '\0',
        b'a' => '\x07',
        b'b' => '\x08',
        b't' => '\t',
        b'n' => '\n',
        b'v' => '\x0b',
        b'f' => '\x0c',
        b'r' => '\r',
        b'e' => '\x1b',
        b' ' => ' ',
        b'"' => '"',
        b'/' => '/',
        b'\\' => '\\',
        b'N' => '\u{85}',
        b'_' => '\u{a0}',
        b'L' => '\u{2028}',
        b'P' => '\u{2029}',
        b'x' | b'u' | b'U' => {
            let len = match e {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let hex = body.get(at + 2..at + 2 + len).ok_or(Unsupported)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return Err(Unsupported);
            }
            next = at + 2 + len;
            u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or(Unsupported)?
        }
        _ => return Err(Unsupported),
    };
    Ok((c, next))
}

/// The events as a serde `Deserializer`, with `yaml_serde`'s rules.
struct Events<'e, 'a> {
    src: &'a str,
    ev: &'e [Packed],
    owned: &'e [String],
    pos: usize,
}

impl<'e, 'a> Events<'e, 'a> {
    fn next(&mut self) -> Result<Tok<'e, 'a>> {
        let tok = self.peek()?;
        self.pos += 1;
        Ok(tok)
    }

    fn peek(&self) -> Result<Tok<'e, 'a>> {
        let p = self.ev.get(self.pos).ok_or(Unsupported)?;
        let (at, len) = (p.at as usize, p.len as usize);
        let input = || self.src.get(at..at + len).ok_or(Unsupported);
        Ok(match p.kind {
            Kind::MapStart => Tok::MapStart,
            Kind::MapEnd => Tok::MapEnd,
            Kind::SeqStart => Tok::SeqStart,
            Kind::SeqEnd => Tok::SeqEnd,
            Kind::Plain => Tok::Scalar(Text::Input(input()?), true),
            Kind::Quoted => Tok::Scalar(Text::Input(input()?), false),
            Kind::Owned | Kind::OwnedPlain => Tok::Scalar(
                Text::Owned(self.owned.get(at).ok_or(Unsupported)?),
                p.kind == Kind::OwnedPlain,
            ),
        })
    }

    /// Past one node.
    fn skip(&mut self) -> Result<()> {
        let mut depth = 0usize;
        loop {
            let p = self.ev.get(self.pos).ok_or(Unsupported)?;
            self.pos += 1;
            match p.kind {
                Kind::MapStart | Kind::SeqStart => depth += 1,
                Kind::MapEnd | Kind::SeqEnd => depth = depth.checked_sub(1).ok_or(Unsupported)?,
                Kind::Plain | Kind::Quoted | Kind::Owned | Kind::OwnedPlain => {}
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    fn visit_map<V: Visitor<'a>>(&mut self, visitor: V, empty: bool) -> Result<V::Value> {
        let value = visitor.visit_map(Entries { de: self, empty })?;
        if !empty {
            // The visitor must have read every entry (as yaml_serde requires).
            match self.next()? {
                Tok::MapEnd => {}
                _ => return Err(Unsupported),
            }
        }
        Ok(value)
    }

    fn visit_seq<V: Visitor<'a>>(&mut self, visitor: V, empty: bool) -> Result<V::Value> {
        let value = visitor.visit_seq(Entries { de: self, empty })?;
        if !empty {
            match self.next()? {
                Tok::SeqEnd => {}
                _ => return Err(Unsupported),
            }
        }
        Ok(value)
    }
}

fn visit_str<'a, V: Visitor<'a>>(v: Text<'_, 'a>, visitor: V) -> Result<V::Value> {
    match v {
        Text::Input(s) => visitor.visit_borrowed_str(s),
        Text::Owned(s) => visitor.visit_str(s),
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "null" | "Null" | "NULL" | "~")
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Leading zeros before digits make a string (YAML 1.2).
fn digits_but_not_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

/// An integer as `yaml_serde` reads one (decimal, `0x`, `0o`, `0b`) and whether
/// it was written negative; one past `i128` is left to the full parser.
fn parse_int(s: &str) -> Result<Option<(i128, bool)>> {
    let (neg, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
        None => return Ok(None),
    };
    if unsigned.starts_with(['+', '-']) {
        return Ok(None);
    }
    let (radix, digits) = if let Some(d) = unsigned.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = unsigned.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = unsigned.strip_prefix("0b") {
        (2, d)
    } else {
        if digits_but_not_number(s) {
            return Ok(None);
        }
        (10, unsigned)
    };
    if digits.starts_with(['+', '-']) {
        return Ok(None);
    }
    match i128::from_str_radix(digits, radix) {
        Ok(n) => Ok(Some((if neg { -n } else { n }, neg))),
        Err(e)
            if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) =>
        {
            Err(Unsupported)
        }
        Err(_) => Ok(None),
    }
}

/// `yaml_serde`'s resolution of an untagged plain scalar: null, bool, int, float or string.
fn visit_plain<'a, V: Visitor<'a>>(v: Text<'_, 'a>, visitor: V) -> Result<V::Value> {
    let s: &str = &v;
    if s.is_empty() || is_null(s) {
        return visitor.visit_unit();
    }
    if let Some(b) = parse_bool(s) {
        return visitor.visit_bool(b);
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return visit_str(v, visitor);
    }
    if let Some((n, neg)) = parse_int(s)? {
        // yaml_serde visits a number written positive as u64, one written
        // negative as i64 (`-0` too); the 128-bit ones are left to it.
        return match (neg, u64::try_from(n), i64::try_from(n)) {
            (false, Ok(u), _) => visitor.visit_u64(u),
            (true, _, Ok(i)) => visitor.visit_i64(i),
            _ => Err(Unsupported),
        };
    }
    if !digits_but_not_number(s)
        && let Some(f) = parse_f64(s)
    {
        return visitor.visit_f64(f);
    }
    visit_str(v, visitor)
}

fn parse_f64(s: &str) -> Option<f64> {
    let unsigned = match s.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => s,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        _ => {}
    }
    match s {
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

impl<'a> de::Deserializer<'a> for &mut Events<'_, 'a> {
    type Error = Unsupported;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            Tok::Scalar(v, true) => visit_plain(v, visitor),
            Tok::Scalar(v, false) => visit_str(v, visitor),
            Tok::MapStart => self.visit_map(visitor, false),
            Tok::SeqStart => self.visit_seq(visitor, false),
            Tok::MapEnd | Tok::SeqEnd => Err(Unsupported),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            Tok::Scalar(v, true) => visitor.visit_bool(parse_bool(&v).ok_or(Unsupported)?),
            _ => Err(Unsupported),
        }
    }

    fn deserialize_i64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            Tok::Scalar(v, true) => {
                let (n, _) = parse_int(&v)?.ok_or(Unsupported)?;
                visitor.visit_i64(i64::try_from(n).map_err(|_| Unsupported)?)
            }
            _ => Err(Unsupported),
        }
    }

    fn deserialize_u64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            // yaml_serde reads no negative number as unsigned.
            Tok::Scalar(v, true) if !v.starts_with('-') => {
                let (n, _) = parse_int(&v)?.ok_or(Unsupported)?;
                visitor.visit_u64(u64::try_from(n).map_err(|_| Unsupported)?)
            }
            _ => Err(Unsupported),
        }
    }

    fn deserialize_i8<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i16<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_u8<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u16<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f32<V: Visitor<'a>>(self, _: V) -> Result<V::Value> {
        Err(Unsupported)
    }
    fn deserialize_f64<V: Visitor<'a>>(self, _: V) -> Result<V::Value> {
        Err(Unsupported)
    }
    fn deserialize_i128<V: Visitor<'a>>(self, _: V) -> Result<V::Value> {
        Err(Unsupported)
    }
    fn deserialize_u128<V: Visitor<'a>>(self, _: V) -> Result<V::Value> {
        Err(Unsupported)
    }
    fn deserialize_bytes<V: Visitor<'a>>(self, _: V) -> Result<V::Value> {
        Err(Unsupported)
    }
    fn deserialize_byte_buf<V: Visitor<'a>>(self, _: V) -> Result<V::Value> {
        Err(Unsupported)
    }
    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        Err(Unsupported)
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            Tok::Scalar(v, _) => visit_str(v, visitor),
            _ => Err(Unsupported),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            Tok::Scalar(v, true) if v.is_empty() || is_null(&v) => {
                self.pos += 1;
                visitor.visit_none()
            }
            Tok::MapEnd | Tok::SeqEnd => Err(Unsupported),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            Tok::Scalar(v, true) if v.is_empty() || is_null(&v) => visitor.visit_unit(),
            _ => Err(Unsupported),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            Tok::SeqStart => self.visit_seq(visitor, false),
            Tok::Scalar(v, true) if v.is_empty() => self.visit_seq(visitor, true),
            _ => Err(Unsupported),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        match self.next()? {
            Tok::MapStart => self.visit_map(visitor, false),
            Tok::Scalar(v, true) if v.is_empty() => self.visit_map(visitor, true),
            _ => Err(Unsupported),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.skip()?;
        visitor.visit_unit()
    }
}

/// The entries of a mapping or the elements of a sequence.
struct Entries<'d, 'e, 'a> {
    de: &'d mut Events<'e, 'a>,
    /// An empty plain scalar read as an empty collection.
    empty: bool,
}

impl Entries<'_, '_, '_> {
    fn at_end(&self) -> Result<bool> {
        Ok(self.empty || matches!(self.de.peek()?, Tok::MapEnd | Tok::SeqEnd))
    }
}

impl<'a> de::MapAccess<'a> for Entries<'_, '_, 'a> {
    type Error = Unsupported;

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.at_end()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<T::Value> {
        seed.deserialize(&mut *self.de)
    }
}

impl<'a> de::SeqAccess<'a> for Entries<'_, '_, 'a> {
    type Error = Unsupported;

    fn next_element_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.at_end()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::from_str;
    use serde_json::{Value, json};

    /// Whatever the fast path accepts, it reads as yaml_serde does.
    fn agrees(text: &str) -> bool {
        let fast = from_str::<Value>(text);
        let full = yaml_serde::from_str::<Value>(text);
        if let Some(fast) = &fast {
            match &full {
                Ok(full) => assert_eq!(fast, full, "read differently:\n{text}"),
                Err(e) => panic!("accepted what yaml_serde rejects ({e}):\n{text}"),
            }
        }
        fast.is_some()
    }

    #[test]
    fn reads_the_subset_as_yaml_serde_does() {
        let accepted = [
            "a: 1\nb: -2\nc: +3\nd: 0x1F\ne: 0o17\nf: 0b101\ng: 007\nh: -0\ni: 1.5\nj: 1e3\nk: .inf\nl: -.Inf\nm: .nan\n",
            "a: ~\nb: null\nc: Null\nd:\ne: true\nf: False\ng: yes\nh: 'true'\ni: \"1\"\nj: ''\nk: \"\"\n",
            "s: plain text # a comment\nt: a#b\nu: 'it''s'\nv: \"tab\\there \\\"q\\\" \\u00e9 \\x41 \\\\\"\nw: http://x:80/y\nx: a:b\n",
            "# leading comment\n---\nlist:\n- a\n-   b\n- - c\n  - d\n-\n  e: 1\n- f: 2\n  g: [] # empty\n- {}\nempty_map: {}\nempty_seq: []\n",
            "k:\n  - 1\n  - 2\nl:\n- x: 1\n  y:\n  - z\n  w: 2\nm:\n  scalar on its own line\n",
            "lit: |\n  one\n   two\n\n  three\nstrip: |-\n  a\n  b\n\nkeep: |+\n  a\n\n\nlast: x\n",
            "- |\n  in a seq\n- |-\n\n  after a blank\n- \"k\": 'v'\n  'q k': 1\n",
            "\"quoted key\": 1\n'single': 2\nnested:\n  deeper:\n    deepest: [] \n  back: 1\n",
            "a: 1\n\n\nb:   2   \n# trailing comment\n",
            "- -9223372036854775808\n- 18446744073709551615\n",
            "k: é ü 日本 😀\n",
            // Long strings as kubectl (go-yaml) folds them at 80 columns.
            "a: this is\n  continued\n    and again\n\n  after a blank\nb: 1\n",
            "- plain\n  continued\n- x\n",
            "k:\n  value on\n  two lines\n",
            "a: 'open\n  quote'\n",
            "a: 'it''s\n\n\n  two '' lines'   # c\n",
            "status:\n  conditions:\n  - message: '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes\n      are available: 3 No preemption victims found for incoming pod.'\n    reason: Unschedulable\n",
            "a: \"double \\\n  joined\"\nb: \"folded \\t\n   line \\\"q\\\"\"\n",
            "a: \"x\n  \\ y\"\n",
            "a: \"x\n\n  y\"\n",
        ];
        for text in accepted {
            assert!(agrees(text), "not accepted:\n{text}");
        }
        let refused = [
            "a: &x 1\nb: *x\n",
            "n: 99999999999999999999\n",
            "n: 1234567890123456789012345678901234567890123\n",
            "a: !!str 1\n",
            "a: {b: 1}\n",
            "a: [1, 2]\n",
            "a: x\n  y: z\n",
            "a: x\n  - y\n",
            "a: x # c\n  y\n",
            "a: 'unterminated\n",
            "a: 'x\nb: y'\n",
            "- 'x\n- y'\n",
            "a: \"x\\ \n  y\"\n",
            "a: >\n  folded\n",
            "a: |2\n    explicit\n",
            "a:\tb\n",
            "a: b\r\nc: d\r\n",
            "a: b: c\n",
            "a: 1\n---\nb: 2\n",
            "a: 1\n b: 2\n",
            "? a\n: b\n",
            "items: [\n",
            "a: 'x' y\n",
            "a: \"bad \\q escape\"\n",
            "a: x\u{2028}y\n",
            "a: |\n  no final break",
            "",
            "# only a comment\n",
        ];
        for text in refused {
            assert!(!agrees(text), "accepted:\n{text}");
        }
    }

    /// Scalars folded over lines at random, in each style and at a few depths.
    #[test]
    fn random_folded_scalars_read_as_yaml_serde_does() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rnd = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        const WORDS: [&str; 12] = [
            "word",
            "two words",
            "a:b",
            "x#y",
            "-dash",
            "it''s",
            "\\t",
            "\\\"",
            "é",
            "0",
            "true",
            "end",
        ];
        const BREAKS: [&str; 7] = [" ", "\n", "\n\n", "  \n", "\n \n", "\\\n", "\n\\ "];
        let (mut accepted, mut multi) = (0, 0);
        for _ in 0..5000 {
            let (open, close) = [("", ""), ("'", "'"), ("\"", "\"")][rnd(3)];
            let (head, indent) = [
                ("k: ", "  "),
                ("- ", "  "),
                ("a:\n  b: ", "    "),
                ("a:\n- k: ", "    "),
            ][rnd(4)];
            let mut text = format!("{head}{open}");
            for i in 0..1 + rnd(5) {
                if i > 0 {
                    let brk = BREAKS[rnd(BREAKS.len())];
                    text.push_str(&brk.replace('\n', &format!("\n{indent}")));
                }
                text.push_str(WORDS[rnd(WORDS.len())]);
            }
            text.push_str(close);
            text.push_str(["", " # c", "  "][rnd(3)]);
            text.push_str("\nz: 1\n");
            if agrees(&text) {
                accepted += 1;
                multi += usize::from(text.lines().count() > 3);
            }
        }
        assert!(
            multi > 500,
            "{accepted} accepted, {multi} over several lines"
        );
    }

    /// Random values printed by yaml_serde (block style, like kubectl's) read back the same.
    #[test]
    fn random_documents_round_trip() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const WORDS: [&str; 27] = [
            "plain",
            "true",
            "null",
            "~",
            "",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "#x",
            "- x",
            "0x1F",
            "007",
            "1e3",
            "-5",
            "multi\nline",
            "trailing\n",
            "it's",
            "say \"hi\"",
            "tab\there",
            "é",
            "{}",
            "[a]",
            "&a",
            "a long sentence that goes on past the eighty columns at which a YAML printer may fold it",
            "'quoted: and long' so that the printer has to quote it and may fold it over two lines or more",
            "long with\nbreaks and an escape \u{1} in a sentence that goes on past the eighty columns",
        ];
        fn value(rnd: &mut impl FnMut(u64) -> u64, depth: u32) -> Value {
            match if depth > 3 { rnd(4) } else { rnd(7) } {
                0 => json!(WORDS[rnd(WORDS.len() as u64) as usize]),
                1 => json!(rnd(1000) as i64 - 500),
                2 => json!(rnd(2) == 0),
                3 => Value::Null,
                4 | 5 => Value::Object(
                    (0..rnd(4))
                        .map(|i| {
                            let k = format!("{}{i}", WORDS[rnd(WORDS.len() as u64) as usize]);
                            (k, value(rnd, depth + 1))
                        })
                        .collect(),
                ),
                _ => Value::Array((0..rnd(4)).map(|_| value(rnd, depth + 1)).collect()),
            }
        }
        let mut accepted = 0;
        for _ in 0..2000 {
            let v = value(&mut rnd, 0);
            let text = yaml_serde::to_string(&v).unwrap();
            if agrees(&text) {
                accepted += 1;
                assert_eq!(from_str::<Value>(&text).unwrap(), v, "{text}");
            }
        }
        assert!(
            accepted > 1000,
            "only {accepted} of 2000 took the fast path"
        );
    }
}
