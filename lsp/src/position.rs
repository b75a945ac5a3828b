//! Byte offsets and LSP positions. The Language Server Protocol counts columns in UTF-16
//! code units, the compiler in bytes; every request and diagnostic crosses this boundary,
//! so it is exact for any text (including characters outside the BMP) and never panics on
//! positions past the end.
//!
//! Conversions never scan a text from its start: they go through a [`LineIndex`] built once
//! per text (per open document, and per file of an analysis) and cost O(log lines + the
//! length of one line). [`Walker`] converts a sorted run of offsets (every semantic token of
//! a file) in one pass over the text, so no request is quadratic in the size of a file.

use medic_compiler::LineIndex;

/// A position as LSP sends it: 0-based line, 0-based UTF-16 column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf16Position {
    pub line: u32,
    pub character: u32,
}

/// A text together with the line index built from it.
#[derive(Debug, Clone, Copy)]
pub struct Lines<'a> {
    text: &'a str,
    index: &'a LineIndex,
}

impl<'a> Lines<'a> {
    /// `index` must have been built from `text`. A mismatched pair gives wrong positions,
    /// never a panic, because every slice of the text is checked.
    pub fn new(text: &'a str, index: &'a LineIndex) -> Lines<'a> {
        Lines { text, index }
    }

    pub fn text(self) -> &'a str {
        self.text
    }

    /// The LSP position of a byte offset. Offsets inside a character or past the end are
    /// clamped to the nearest character boundary before them.
    pub fn to_lsp(self, offset: usize) -> Utf16Position {
        let offset = floor_char_boundary(self.text, offset);
        let line = self.index.position(self.text, offset).line;
        let line_start = self.index.line_start(line).unwrap_or(0);
        Utf16Position {
            line: saturate(line),
            character: saturate(utf16_len(self.text.get(line_start..offset).unwrap_or(""))),
        }
    }

    /// The byte offset of an LSP position. A line past the end gives the end of the text; a
    /// column past the end of its line gives the end of that line.
    pub fn from_lsp(self, position: Utf16Position) -> usize {
        let Some(line_start) = self.index.line_start(position.line as usize) else {
            return self.text.len();
        };
        let line = self.text.get(line_start..).unwrap_or("");
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
}

/// Converts offsets that mostly increase, walking the text once: moving to a later line
/// costs one binary search, moving along a line the characters passed over. An offset
/// before the previous one is converted on its own, so any order gives correct answers;
/// only the cost assumes sorted offsets.
#[derive(Debug, Clone)]
pub struct Walker<'a> {
    lines: Lines<'a>,
    offset: usize,
    position: Utf16Position,
}

impl<'a> Walker<'a> {
    pub fn new(lines: Lines<'a>) -> Walker<'a> {
        Walker {
            lines,
            offset: 0,
            position: Utf16Position {
                line: 0,
                character: 0,
            },
        }
    }

    pub fn to_lsp(&mut self, offset: usize) -> Utf16Position {
        let offset = floor_char_boundary(self.lines.text, offset);
        let next_line_start = self.lines.index.line_start(self.position.line as usize + 1);
        let same_line = offset >= self.offset && next_line_start.is_none_or(|next| offset < next);
        self.position = if same_line {
            let passed = self.lines.text.get(self.offset..offset).unwrap_or("");
            Utf16Position {
                line: self.position.line,
                character: self
                    .position
                    .character
                    .saturating_add(saturate(utf16_len(passed))),
            }
        } else {
            self.lines.to_lsp(offset)
        };
        self.offset = offset;
        self.position
    }
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

fn saturate(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
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

    /// The answer of a plain scan from the start, to compare the indexed conversions with.
    fn scanned(text: &str, offset: usize) -> Utf16Position {
        let before = &text[..floor_char_boundary(text, offset)];
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        Utf16Position {
            line: saturate(before.matches('\n').count()),
            character: saturate(utf16_len(&before[line_start..])),
        }
    }

    #[test]
    fn utf16_columns_round_trip() {
        let text = "rule r {\n  when alert.summary == \"😀 é\" // ok\n}";
        let index = LineIndex::new(text);
        let lines = Lines::new(text, &index);
        for offset in (0..=text.len()).filter(|offset| text.is_char_boundary(*offset)) {
            assert_eq!(lines.from_lsp(lines.to_lsp(offset)), offset);
        }
        let emoji = text.find('😀').unwrap_or(0);
        let after = lines.to_lsp(emoji + '😀'.len_utf8());
        assert_eq!(
            after,
            Utf16Position {
                line: 1,
                character: lines.to_lsp(emoji).character + 2
            }
        );
    }

    #[test]
    fn out_of_range_positions_clamp() {
        let text = "ab\ncd";
        let index = LineIndex::new(text);
        let lines = Lines::new(text, &index);
        assert_eq!(
            lines.from_lsp(Utf16Position {
                line: 9,
                character: 0
            }),
            text.len()
        );
        assert_eq!(
            lines.from_lsp(Utf16Position {
                line: 0,
                character: 99
            }),
            2
        );
        assert_eq!(
            lines.to_lsp(99),
            Utf16Position {
                line: 1,
                character: 2
            }
        );
    }

    #[test]
    fn indexed_conversions_agree_with_a_scan_from_the_start() {
        let text = "a😀b\n\n  é \"x\"\r\nlast 😀\n";
        let index = LineIndex::new(text);
        let lines = Lines::new(text, &index);
        let mut walker = Walker::new(lines);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                lines.to_lsp(offset),
                scanned(text, offset),
                "offset {offset}"
            );
            assert_eq!(
                walker.to_lsp(offset),
                scanned(text, offset),
                "walk {offset}"
            );
        }
    }

    #[test]
    fn the_walker_answers_offsets_in_any_order() {
        let text = "one\ntwo 😀 two\nthree\n";
        let index = LineIndex::new(text);
        let mut walker = Walker::new(Lines::new(text, &index));
        for offset in [12, 3, 20, 0, 9, 8, 9, 5, 100, 4] {
            assert_eq!(
                walker.to_lsp(offset),
                scanned(text, offset),
                "offset {offset}"
            );
        }
    }
}
