//! Byte offsets ↔ LSP positions in the negotiated encoding. Every
//! conversion in the crate goes through here so UTF-8 / UTF-16 handling
//! lives in one place.

use tower_lsp_server::ls_types::{Position, Range};

/// The position encoding agreed with the client in `initialize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    Utf8,
    /// The LSP default: every client supports it.
    #[default]
    Utf16,
}

/// Byte offset of the start of every line of `text`.
fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    starts
}

fn column_units(segment: &str, enc: Encoding) -> u32 {
    match enc {
        Encoding::Utf8 => segment.len() as u32,
        Encoding::Utf16 => segment.encode_utf16().count() as u32,
    }
}

/// The position of byte `offset` (clamped to the text and to a char boundary).
pub fn position(text: &str, offset: usize, enc: Encoding) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position::new(line, column_units(&text[line_start..offset], enc))
}

pub fn range(text: &str, start: usize, end: usize, enc: Encoding) -> Range {
    Range::new(position(text, start, enc), position(text, end, enc))
}

/// The byte offset of `pos`. A line past the end maps to the end of the
/// text, a column past the end of its line to the line's end (as the LSP
/// specification asks).
pub fn offset(text: &str, pos: Position, enc: Encoding) -> usize {
    let starts = line_starts(text);
    let Some(&start) = starts.get(pos.line as usize) else {
        return text.len();
    };
    let end = starts
        .get(pos.line as usize + 1)
        .map_or(text.len(), |next| next - 1);
    let line = &text[start..end];
    let mut units = 0u32;
    for (i, ch) in line.char_indices() {
        if units >= pos.character {
            return start + i;
        }
        units += match enc {
            Encoding::Utf8 => ch.len_utf8() as u32,
            Encoding::Utf16 => ch.len_utf16() as u32,
        };
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_encodings() {
        let text = "a = \"é𝄞x\"\nsecond\n";
        let x = text.find('x').unwrap();
        let p16 = position(text, x, Encoding::Utf16);
        assert_eq!(p16, Position::new(0, 8));
        let p8 = position(text, x, Encoding::Utf8);
        assert_eq!(p8, Position::new(0, 11));
        assert_eq!(offset(text, p16, Encoding::Utf16), x);
        assert_eq!(offset(text, p8, Encoding::Utf8), x);
        let s = text.find("second").unwrap();
        assert_eq!(position(text, s, Encoding::Utf16), Position::new(1, 0));
        assert_eq!(
            offset(text, Position::new(1, 99), Encoding::Utf16),
            text.len() - 1
        );
        assert_eq!(
            offset(text, Position::new(9, 0), Encoding::Utf16),
            text.len()
        );
    }
}
