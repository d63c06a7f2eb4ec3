//! Offsets, positions and format-preserving replacement.

use crate::{Finding, FindingKind, Span};

/// Line starts of a text, so many offsets can be turned into lines cheaply.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// 0-based (line, column) of a byte offset; the column counts Unicode
    /// scalar values, or UTF-16 code units when `utf16`. Offsets inside a
    /// character count up to that character's start; offsets past the end clamp.
    pub fn position(&self, offset: usize, utf16: bool) -> (u32, u32) {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let prefix = &self.text[self.starts[line]..offset];
        let column = if utf16 {
            prefix.encode_utf16().count()
        } else {
            prefix.chars().count()
        };
        (line as u32, column as u32)
    }

    /// 0-based (line, column) with the column in UTF-8 bytes or UTF-16 code
    /// units: the two encodings LSP clients negotiate.
    pub fn lsp_position(&self, offset: usize, utf16: bool) -> (u32, u32) {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let prefix = &self.text[self.starts[line]..offset];
        let column = if utf16 {
            prefix.encode_utf16().count()
        } else {
            prefix.len()
        };
        (line as u32, column as u32)
    }

    /// The byte offset of an LSP position (column in UTF-8 bytes or UTF-16
    /// code units). Positions past a line's end clamp to it (as LSP requires).
    pub fn offset_at(&self, line: u32, column: u32, utf16: bool) -> usize {
        let Some(&start) = self.starts.get(line as usize) else {
            return self.text.len();
        };
        let end = self
            .starts
            .get(line as usize + 1)
            .map(|&next| next - 1)
            .unwrap_or(self.text.len());
        let line_text = &self.text[start..end];
        let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
        let mut units = 0usize;
        for (i, c) in line_text.char_indices() {
            if units >= column as usize {
                return start + i;
            }
            units += if utf16 { c.len_utf16() } else { c.len_utf8() };
        }
        start + line_text.len()
    }

    pub(crate) fn finding(
        &self,
        file: &str,
        span: Span,
        kind: FindingKind,
        message: String,
    ) -> Finding {
        let (line, column) = self.position(span.start, false);
        Finding {
            file: file.to_string(),
            span,
            line,
            column,
            message,
            kind,
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// LSP position of a byte offset: 0-based line and a column in UTF-8 bytes
/// (`utf16 = false`) or UTF-16 code units (`utf16 = true`).
pub fn position(text: &str, offset: usize, utf16: bool) -> (u32, u32) {
    LineIndex::new(text).lsp_position(offset, utf16)
}

/// The byte offset of an LSP position; the inverse of [`position`].
pub fn offset_at(text: &str, line: u32, column: u32, utf16: bool) -> usize {
    LineIndex::new(text).offset_at(line, column, utf16)
}

/// Replaces the requirement at `span` (as found by the parsers: the text
/// inside the quotes) with `new_requirement`, leaving everything around it —
/// quotes, commas, comments, indentation — untouched.
///
/// Inside a TOML string the new text must not close the string: marker quotes
/// are switched to the other quote style, which PEP 508 allows, and a
/// backslash in a basic string is escaped.
pub fn replace_requirement(text: &str, span: Span, new_requirement: &str) -> String {
    let replacement = quoted_for(text, span, new_requirement);
    let mut out = String::with_capacity(text.len() + replacement.len());
    out.push_str(&text[..span.start]);
    out.push_str(&replacement);
    out.push_str(&text[span.end..]);
    out
}

/// `new` as it must be written at `span`: inside a TOML string it must not
/// close the string (see [`replace_requirement`]); elsewhere it is verbatim.
pub(crate) fn quoted_for(text: &str, span: Span, new: &str) -> String {
    match text[..span.start].chars().next_back() {
        Some('"') => new.replace('\\', "\\\\").replace('"', "'"),
        Some('\'') => new.replace('\'', "\""),
        _ => new.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_in_both_encodings() {
        let text = "a = 1\n# café 🐍 x\ny";
        let x = text.find('x').unwrap();
        // "# café 🐍 " is 2+5+1+4+1 bytes and 2+4+1+2+1 UTF-16 units.
        assert_eq!(position(text, x, false), (1, 13));
        assert_eq!(position(text, x, true), (1, 10));
        assert_eq!(offset_at(text, 1, 13, false), x);
        assert_eq!(offset_at(text, 1, 10, true), x);
        assert_eq!(position(text, text.len(), true), (2, 1));
        // Past the end of a line clamps to it.
        assert_eq!(offset_at(text, 0, 99, true), 5);
        assert_eq!(offset_at(text, 9, 0, true), text.len());
    }

    #[test]
    fn replacement_keeps_quotes_and_switches_marker_quotes() {
        let text = "deps = [\"tomli; python_version < '3.11'\", 'x']";
        let start = text.find("tomli").unwrap();
        let end = text.find("\",").unwrap();
        let out = replace_requirement(
            text,
            Span::new(start, end),
            "tomli>=2; python_version < \"3.11\"",
        );
        assert_eq!(out, "deps = [\"tomli>=2; python_version < '3.11'\", 'x']");
        let x = out.rfind('x').unwrap();
        let out2 = replace_requirement(&out, Span::new(x, x + 1), "y ; os_name == 'nt'");
        assert_eq!(
            out2,
            "deps = [\"tomli>=2; python_version < '3.11'\", 'y ; os_name == \"nt\"']"
        );
    }
}
