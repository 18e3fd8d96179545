//! The one CSV reader for every table the project reads (the instance catalog, Alibaba
//! pod and node lists, simulate's CSV workloads), with the `csv` crate: quoted cells
//! (`"T4|V100M16"`, a comma inside quotes) and a UTF-8 BOM mean what CSV says they mean,
//! cells are trimmed, blank rows are skipped, and every row must have the header's number
//! of cells. Cells are handed over as text, not through serde: each table checks its own
//! columns and names the column and the line in its own words (a serde error names a
//! struct field and a byte position).

use std::collections::HashMap;

/// A table: its header (empty when the text has no row at all) and its rows, each with
/// its 1-based line in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    /// The header's line (1 for an empty text).
    pub header_line: usize,
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// Why a table could not be read: the line, the column when one is to blame, and what.
/// Displays as `column `x`: message`, or the message alone (each table puts its source
/// and the line in front).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", column.as_ref().map(|c| format!("column `{c}`: ")).unwrap_or_default())]
pub struct Error {
    pub line: usize,
    pub column: Option<String>,
    pub message: String,
}

/// Reads `text` as CSV; with `comments`, lines starting with `#` are skipped. A header
/// with a name twice and a row whose length differs from the header's are errors.
pub fn read(text: &str, comments: bool) -> Result<Table, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(comments.then_some(b'#'))
        .from_reader(text.as_bytes());
    // The line from the byte offset (the reader's own line count leaves out comments and
    // blank lines); offsets only grow, so the newlines are counted once.
    let (mut at, mut line) = (0usize, 1usize);
    let mut line_of = |p: Option<&csv::Position>| {
        let byte = p.map_or(at, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        let mut byte = byte.clamp(at, text.len());
        // A record's span starts with the blank and comment lines before it.
        while let Some(rest) = text.get(byte..).filter(|r| !r.is_empty()) {
            let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let l = rest[..end].trim();
            if l.is_empty() || (comments && l.starts_with('#')) {
                byte += end;
            } else {
                break;
            }
        }
        line += text.as_bytes()[at..byte]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        at = byte;
        line
    };
    let fail = |line: usize, column: Option<&str>, message: String| Error {
        line,
        column: column.map(str::to_string),
        message,
    };
    let mut table = Table {
        header: Vec::new(),
        header_line: 1,
        rows: Vec::new(),
    };
    for record in reader.records() {
        let record = record
            .map_err(|e| fail(line_of(e.position()), None, format!("unreadable row: {e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let at = line_of(record.position());
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        if table.header.is_empty() {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, name) in cells.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
                if let Some(first) = seen.insert(name, i) {
                    return Err(fail(
                        at,
                        Some(name),
                        format!(
                            "duplicate column header (cells {} and {})",
                            first + 1,
                            i + 1
                        ),
                    ));
                }
            }
            table.header_line = at;
            table.header = cells;
        } else if cells.len() != table.header.len() {
            return Err(fail(
                at,
                None,
                format!(
                    "expected {} cells (as in the header), found {}",
                    table.header.len(),
                    cells.len()
                ),
            ));
        } else {
            table.rows.push((at, cells));
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_bom_comments_and_lines() {
        let t = read(
            "\u{feff}a, b\n# a comment\n\n1,\"x,y\"\n\"2\",\"T4|V100M16\"\n",
            true,
        )
        .expect("valid");
        assert_eq!(t.header, ["a", "b"]);
        assert_eq!(t.header_line, 1);
        assert_eq!(t.column("b"), Some(1));
        assert_eq!(t.column("c"), None);
        assert_eq!(
            t.rows,
            [
                (4, vec!["1".to_string(), "x,y".to_string()]),
                (5, vec!["2".to_string(), "T4|V100M16".to_string()]),
            ]
        );
        // Without comments, `#` is data.
        assert_eq!(read("a\n#b\n", false).expect("valid").rows[0].1, ["#b"]);
        // An empty text is an empty table; the caller says what was expected.
        let empty = read(" \n\r\n", true).expect("empty");
        assert!(empty.header.is_empty() && empty.rows.is_empty());
        // The header may come after blank lines and comments.
        assert_eq!(read("\n# c\na\n1\n", true).expect("valid").header_line, 3);
    }

    #[test]
    fn row_lengths_and_duplicate_headers_are_errors_naming_the_line() {
        let short = read("a,b\n\n1\n", true).expect_err("short row");
        assert_eq!(
            (short.line, short.to_string()),
            (
                3,
                "expected 2 cells (as in the header), found 1".to_string()
            )
        );
        let long = read("a,b\n1,2,3\n", true).expect_err("long row");
        assert_eq!(
            long.to_string(),
            "expected 2 cells (as in the header), found 3"
        );
        let dup = read("\na,b,a\n", true).expect_err("duplicate");
        assert_eq!(
            (dup.line, dup.column.as_deref(), dup.to_string()),
            (
                2,
                Some("a"),
                "column `a`: duplicate column header (cells 1 and 3)".to_string()
            )
        );
        // Empty header cells are not names.
        assert!(read(",,x\n1,2,3\n", true).is_ok());
        // A quoted comma is one cell, so the row still has the header's length.
        assert!(read("a,b\n\"1,5\",2\n", true).is_ok());
    }
}
