//! A size-rotated append-only file of JSON lines.
//!
//! `FILE` grows until the next line would take it past `max_bytes`; then `FILE.{keep-1}`
//! becomes `FILE.{keep}` (the oldest is overwritten), …, `FILE` becomes `FILE.1`, and a new
//! `FILE` starts. A line is never split across files. Files are created mode 0640: they
//! hold user ids and org names. A file may have a header line ([`RotatingFile::with_header`]):
//! the first line of every file it starts, rotated ones included.
//!
//! Used only from the log writer threads; nothing here is on a request path.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// When to rotate and how many old files to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Largest size of one file, in bytes (a single longer line still gets a file).
    pub max_bytes: u64,
    /// Rotated files kept beside the current one (`FILE.1` … `FILE.keep`); at least 1.
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// The open current file and its size.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    out: BufWriter<File>,
    size: u64,
    /// The first line of every new file.
    header: Option<Vec<u8>>,
}

impl RotatingFile {
    /// Open `path` for appending (creating it and its directory).
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            rotation: Rotation {
                keep: rotation.keep.max(1),
                ..rotation
            },
            out: BufWriter::new(file),
            size,
            header: None,
        })
    }

    /// Start every new file with `line`: now, if the current file is empty, and after each
    /// rotation. An existing file keeps what it has.
    pub fn with_header(mut self, line: Vec<u8>) -> io::Result<Self> {
        if self.size == 0 {
            self.put(&line)?;
        }
        self.header = Some(line);
        Ok(self)
    }

    fn put(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line (a newline is added), rotating first if it would not fit.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        let header = self.header.as_ref().map_or(0, |h| h.len() as u64 + 1);
        // A file holding only its header takes the line however long it is.
        if self.size > header && self.size + len > self.rotation.max_bytes {
            self.rotate()?;
            if let Some(h) = self.header.take() {
                let written = self.put(&h);
                self.header = Some(h);
                written?;
            }
        }
        self.put(line)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        for i in (1..self.rotation.keep).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.out = BufWriter::new(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

/// `FILE.n`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_keeping_whole_lines_and_at_most_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut f = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 25,
                keep: 2,
            },
        )
        .unwrap();
        for i in 0..10 {
            f.write_line(format!("line-{i:04}").as_bytes()).unwrap(); // 10 bytes each with \n
        }
        f.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "line-0008\nline-0009\n");
        assert_eq!(read(&numbered(&path, 1)), "line-0006\nline-0007\n");
        assert_eq!(read(&numbered(&path, 2)), "line-0004\nline-0005\n");
        assert!(!numbered(&path, 3).exists(), "only `keep` rotated files");
    }

    #[test]
    fn every_new_file_starts_with_the_header_and_a_reopened_one_gets_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let r = Rotation {
            max_bytes: 25,
            keep: 2,
        };
        let mut f = RotatingFile::open(&path, r)
            .unwrap()
            .with_header(b"HDR".to_vec())
            .unwrap();
        for i in 0..4 {
            f.write_line(format!("line-{i:04}").as_bytes()).unwrap(); // 10 bytes each with \n
        }
        f.flush().unwrap();
        drop(f);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&numbered(&path, 1)), "HDR\nline-0000\nline-0001\n");
        assert_eq!(read(&path), "HDR\nline-0002\nline-0003\n");
        let mut f = RotatingFile::open(&path, r)
            .unwrap()
            .with_header(b"HDR".to_vec())
            .unwrap();
        f.write_line(b"x").unwrap();
        f.flush().unwrap();
        assert_eq!(read(&numbered(&path, 1)), "HDR\nline-0002\nline-0003\n");
        assert_eq!(read(&path), "HDR\nx\n", "rotated, one header");
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let r = Rotation {
            max_bytes: 15,
            keep: 1,
        };
        let mut f = RotatingFile::open(&path, r).unwrap();
        f.write_line(b"first-one").unwrap();
        f.flush().unwrap();
        drop(f);
        let mut f = RotatingFile::open(&path, r).unwrap();
        f.write_line(b"second").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 1)).unwrap(),
            "first-one\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "not world-readable: {mode:o}");
    }
}
