//! Durable writes, one helper for every writer: a file is replaced atomically (temporary file
//! beside it, fsync, rename, fsync of the folder), so a crash at any moment leaves the old or
//! the new complete file; and an append-only JSON-lines log whose every line is flushed to
//! disk before the next input starts, so a killed batch run loses at most the line being
//! written (which [`JsonLines::open`] then cuts off).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::FileError;

/// Replace `path` by what `write` puts into the temporary path it is given: the temporary
/// file is fsynced, renamed over `path` and the folder fsynced. On failure the temporary file
/// is removed and `path` is untouched.
pub fn replace_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), FileError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        write(&tmp)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_parent(path);
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FileError::io(path, "cannot save", e)
    })
}

/// Replace `path` with `bytes` (see [`replace_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    replace_with(path, |tmp| std::fs::write(tmp, bytes))
}

/// Make a rename or a new file in `path`'s folder durable (best effort: some file systems
/// refuse to open folders).
pub(crate) fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// An append-only file of JSON lines, each naming its input under `key`.
pub struct JsonLines {
    path: PathBuf,
    file: File,
    done: HashSet<String>,
}

impl JsonLines {
    /// Open `path` for appending. With `resume`, the lines already there are kept, a last line
    /// cut short by a kill is removed, and the `key` values of the whole lines are returned by
    /// [`JsonLines::is_done`]; without it an existing file is an error (never overwritten).
    pub fn open(path: &Path, key: &str, resume: bool) -> Result<Self, FileError> {
        let exists = path.exists();
        if exists && !resume {
            return Err(FileError::new(
                path,
                "already exists: pass --resume to continue it, or choose another file",
            ));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| FileError::io(path, "cannot open for appending", e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| FileError::io(path, "cannot read", e))?;
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            // A line without its newline was being written when the run died: drop it.
            file.set_len(whole as u64)
                .and_then(|_| file.seek(SeekFrom::End(0)).map(|_| ()))
                .and_then(|_| file.sync_all())
                .map_err(|e| FileError::io(path, "cannot cut the unfinished last line", e))?;
        }
        let mut done = HashSet::new();
        for (n, line) in text[..whole].lines().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| FileError::new(path, format!("line {} is not JSON: {e}", n + 1)))?;
            match value.get(key).and_then(serde_json::Value::as_str) {
                Some(k) => {
                    done.insert(k.to_string());
                }
                None => {
                    return Err(FileError::new(
                        path,
                        format!("line {} has no \"{key}\" string", n + 1),
                    ))
                }
            }
        }
        if !exists {
            sync_parent(path);
        }
        Ok(JsonLines {
            path: path.to_path_buf(),
            file,
            done,
        })
    }

    /// Whether a whole line for this input is already in the file.
    pub fn is_done(&self, key: &str) -> bool {
        self.done.contains(key)
    }

    /// The inputs the file holds a whole line for.
    pub fn done(&self) -> &HashSet<String> {
        &self.done
    }

    /// How many inputs the file holds.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Append one value as a line (one `write` call, then fsync).
    pub fn append(&mut self, key: &str, value: &serde_json::Value) -> Result<(), FileError> {
        let mut line = serde_json::to_string(value)
            .map_err(|e| FileError::new(&self.path, format!("cannot encode a line: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| FileError::io(&self.path, "cannot append", e))?;
        self.done.insert(key.to_string());
        Ok(())
    }
}

/// `K/N` (1-based shard K of N): whether the input at `index` of a list belongs to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { k: 1, n: 1 };

    /// Round-robin: input `index` (0-based) goes to shard `index % n + 1`.
    pub fn takes(self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("shard {s:?}: expected K/N with 1 ≤ K ≤ N, e.g. 2/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_last_line_is_dropped_and_whole_lines_count_as_done() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(&p, "{\"input\":\"a\"}\n{\"input\":\"b\"}\n{\"inp").unwrap();
        assert!(
            JsonLines::open(&p, "input", false).is_err(),
            "never overwrites"
        );
        let mut log = JsonLines::open(&p, "input", true).unwrap();
        assert!(log.is_done("a") && log.is_done("b") && !log.is_done("c"));
        log.append("c", &serde_json::json!({"input": "c"})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "{\"input\":\"a\"}\n{\"input\":\"b\"}\n{\"input\":\"c\"}\n"
        );
    }

    #[test]
    fn shards_split_a_list_without_overlap() {
        let s: Vec<Shard> = ["1/3", "2/3", "3/3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        for i in 0..10 {
            assert_eq!(s.iter().filter(|s| s.takes(i)).count(), 1);
        }
        for bad in ["0/3", "4/3", "1/0", "x", "1/"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn replace_with_leaves_the_old_file_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        write_atomic(&p, b"old").unwrap();
        let e = replace_with(&p, |_| Err(std::io::Error::other("disk full"))).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
