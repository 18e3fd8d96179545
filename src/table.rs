//! CSV tables, read with the `csv` crate: quoted cells (`"T4|V100M16"`, a comma inside
//! quotes) and a UTF-8 BOM mean what CSV says they mean, cells are trimmed, blank rows are
//! skipped. Row lengths are the caller's to check (the reader is flexible), so each table
//! reports them in its own words, with the line.

/// A table: its header and its rows, each with its 1-based line in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

/// Reads `text` as CSV; with `comments`, lines starting with `#` are skipped. An error is
/// `(line, message)`; an empty text is an error on line 1.
pub fn read(text: &str, comments: bool) -> Result<Table, (usize, String)> {
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
    let mut header = None;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| (line_of(e.position()), format!("unreadable row: {e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        if header.is_none() {
            header = Some(cells);
        } else {
            rows.push((line_of(record.position()), cells));
        }
    }
    let header = header.ok_or_else(|| (1, "empty trace".to_string()))?;
    Ok(Table { header, rows })
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
        assert_eq!(
            t.rows,
            [
                (4, vec!["1".to_string(), "x,y".to_string()]),
                (5, vec!["2".to_string(), "T4|V100M16".to_string()]),
            ]
        );
        // Without comments, `#` is data.
        assert_eq!(read("a\n#b\n", false).expect("valid").rows[0].1, ["#b"]);
        assert_eq!(read("", true), Err((1, "empty trace".to_string())));
        assert_eq!(read("a,b\n1\n", true).expect("flexible").rows[0].1, ["1"]);
    }
}
