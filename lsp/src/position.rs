//! Byte offsets and LSP positions. The Language Server Protocol counts columns in UTF-16
//! code units, the compiler in bytes; every request and diagnostic crosses this boundary,
//! so it is exact for any text (including characters outside the BMP) and never panics on
//! positions past the end.

/// A position as LSP sends it: 0-based line, 0-based UTF-16 column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf16Position {
    pub line: u32,
    pub character: u32,
}

/// The LSP position of a byte offset. Offsets inside a character or past the end are
/// clamped to the nearest character boundary before them.
pub fn to_lsp(text: &str, offset: usize) -> Utf16Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let line = before.matches('\n').count();
    let character: usize = before
        .get(line_start..)
        .unwrap_or("")
        .chars()
        .map(char::len_utf16)
        .sum();
    Utf16Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        character: u32::try_from(character).unwrap_or(u32::MAX),
    }
}

/// The byte offset of an LSP position. A line past the end gives the end of the text; a
/// column past the end of its line gives the end of that line.
pub fn from_lsp(text: &str, position: Utf16Position) -> usize {
    let mut line_start = 0;
    for _ in 0..position.line {
        match text.get(line_start..).and_then(|rest| rest.find('\n')) {
            Some(index) => line_start += index + 1,
            None => return text.len(),
        }
    }
    let line = text.get(line_start..).unwrap_or("");
    let line = line.split('\n').next().unwrap_or("");
    let mut units = 0usize;
    for (index, character) in line.char_indices() {
        if units >= position.character as usize {
            return line_start + index;
        }
        units += character.len_utf16();
    }
    line_start + line.len()
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests"
)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_round_trip() {
        let text = "rule r {\n  when alert.summary == \"😀 é\" // ok\n}";
        for offset in (0..=text.len()).filter(|offset| text.is_char_boundary(*offset)) {
            assert_eq!(from_lsp(text, to_lsp(text, offset)), offset);
        }
        let emoji = text.find('😀').unwrap_or(0);
        let after = to_lsp(text, emoji + '😀'.len_utf8());
        assert_eq!(
            after,
            Utf16Position {
                line: 1,
                character: to_lsp(text, emoji).character + 2
            }
        );
    }

    #[test]
    fn out_of_range_positions_clamp() {
        let text = "ab\ncd";
        assert_eq!(
            from_lsp(
                text,
                Utf16Position {
                    line: 9,
                    character: 0
                }
            ),
            text.len()
        );
        assert_eq!(
            from_lsp(
                text,
                Utf16Position {
                    line: 0,
                    character: 99
                }
            ),
            2
        );
        assert_eq!(
            to_lsp(text, 99),
            Utf16Position {
                line: 1,
                character: 2
            }
        );
    }
}
