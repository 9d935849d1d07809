//! CSV tables (manifests, worklists, label columns), one reader for all: RFC 4180 quoting
//! (quoted commas, quotes and newlines inside a field) through the `csv` crate, a header row,
//! cells trimmed, blank rows skipped. Errors name the file and the line.

use std::path::{Path, PathBuf};

use super::FileError;

/// A CSV file read whole: its header and its rows.
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

/// One data row and the line it starts on (1-based, the header being line 1).
#[derive(Clone, Debug)]
pub struct Row {
    pub line: u64,
    cells: Vec<String>,
}

impl Row {
    /// The cell in column `col`, or "" where the row is short or there is no such column.
    pub fn get(&self, col: Option<usize>) -> &str {
        col.and_then(|c| self.cells.get(c))
            .map(String::as_str)
            .unwrap_or("")
    }
}

impl Table {
    pub fn read(path: &Path) -> Result<Table, FileError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| FileError::io(path, "cannot read CSV", e))?;
        Table::parse(&text, path)
    }

    /// Parse CSV text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Table, FileError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut records = Vec::new();
        for record in reader.records() {
            // Lines counted from the byte offset, past the blank lines the csv crate puts at a
            // record's start (it does not count them).
            let line_at = |byte: u64| {
                let bytes = text.as_bytes();
                let mut end = (byte as usize).min(bytes.len());
                while end < bytes.len() && matches!(bytes[end], b'\n' | b'\r') {
                    end += 1;
                }
                1 + bytes[..end].iter().filter(|&&b| b == b'\n').count() as u64
            };
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                FileError::new(path, format!("CSV line {line}: {e}"))
            })?;
            if record.iter().all(str::is_empty) {
                continue;
            }
            let line = record.position().map_or(0, |p| line_at(p.byte()));
            records.push(Row {
                line,
                cells: record.iter().map(str::to_string).collect(),
            });
        }
        let mut records = records.into_iter();
        let header = records
            .next()
            .ok_or_else(|| FileError::new(path, "CSV is empty"))?
            .cells;
        Ok(Table {
            path: path.to_path_buf(),
            header,
            rows: records.collect(),
        })
    }

    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The index of the column named `name`, or an error naming the file.
    pub fn require(&self, name: &str) -> Result<usize, FileError> {
        self.column(name)
            .ok_or_else(|| FileError::new(&self.path, format!("CSV has no \"{name}\" column")))
    }
}

/// CSV text of a header and rows, quoted where a field needs it.
pub fn to_csv<I, R, S>(header: &[&str], rows: I) -> Result<String, csv::Error>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for r in rows {
        w.write_record(r)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_commas_quotes_and_newlines() {
        let text = "case,labels\n\"a, b\",\"1=x \"\"q\"\"\"\n\n\"multi\nline\",2=y\n";
        let t = Table::parse(text, Path::new("m.csv")).unwrap();
        let (c, l) = (t.column("case"), t.column("labels"));
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].get(c), "a, b");
        assert_eq!(t.rows[0].get(l), "1=x \"q\"");
        assert_eq!(t.rows[1].get(c), "multi\nline");
        assert_eq!(t.rows[1].line, 4);
        assert_eq!(t.rows[1].get(Some(9)), "");
        let e = t.require("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("m.csv"), "{e}");
    }

    #[test]
    fn what_to_csv_writes_reads_back() {
        let rows = vec![vec!["a,\"b\"", "plain"], vec!["new\nline", ""]];
        let text = to_csv(&["x", "y"], rows.clone()).unwrap();
        let t = Table::parse(&text, Path::new("t.csv")).unwrap();
        assert_eq!(t.header, ["x", "y"]);
        for (row, want) in t.rows.iter().zip(&rows) {
            assert_eq!(row.get(Some(0)), want[0]);
            assert_eq!(row.get(Some(1)), want[1]);
        }
    }
}
