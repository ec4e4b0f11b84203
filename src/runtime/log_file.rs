//! Where a service's logs go: the journal when it receives our stderr, else a size-capped,
//! rotated file under the home's `log/`.
//!
//! In: the file path, its size cap and how many rotations to keep; `JOURNAL_STREAM` and the
//! fd of stderr. Out: a thread-safe [`RotatingFile`] that tracing-subscriber writes through
//! ([`MakeWriter`]), whole events at a time, and [`stderr_is_journal`].
//!
//! The live file is `NAME.log`; when an event would take it past the cap it becomes
//! `NAME.log.1`, `.1` becomes `.2` and so on, and the oldest beyond the kept count is dropped.
//! An event is never split between two files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard};

use camino::{Utf8Path, Utf8PathBuf};
use tracing_subscriber::fmt::MakeWriter;

/// The live file's size cap: 5 MiB.
pub const MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Rotations kept beside the live file (`.1` to `.3`).
pub const KEEP: usize = 3;

/// The rotated file number `n` of `path` (`NAME.log.N`); `0` is the live file.
pub fn rotation(path: &Utf8Path, n: usize) -> Utf8PathBuf {
    if n == 0 {
        path.to_owned()
    } else {
        Utf8PathBuf::from(format!("{path}.{n}"))
    }
}

/// A log file that rotates itself when it passes its cap. Safe to share between threads.
#[derive(Debug)]
pub struct RotatingFile {
    path: Utf8PathBuf,
    max_bytes: u64,
    keep: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` after a rotation could not reopen the file: events go to stderr until one can.
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    /// Opens (appending to) `path`, creating its directory; rotates past `max_bytes`, keeping
    /// `keep` old files.
    pub fn open(path: &Utf8Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            keep,
            inner: Mutex::new(Inner {
                file: Some(file),
                size,
            }),
        })
    }

    /// The live file.
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A writer that panicked mid-write leaves nothing half-done that matters: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `record` (whole events) to the live file, rotating first when it would pass the
    /// cap and the file is not empty.
    pub fn write_record(&self, record: &[u8]) -> io::Result<()> {
        if record.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        let full = inner.size > 0 && inner.size + record.len() as u64 > self.max_bytes;
        if full && inner.file.is_some() {
            inner.file = None;
            self.rotate();
        }
        if inner.file.is_none() {
            match append(&self.path) {
                Ok(f) => {
                    inner.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    inner.file = Some(f);
                }
                Err(e) => {
                    let mut err = io::stderr().lock();
                    let _ = writeln!(err, "log file `{}`: {e}", self.path);
                    return err.write_all(record);
                }
            }
        }
        let file = inner.file.as_mut().expect("the file was just opened above");
        file.write_all(record)?;
        inner.size += record.len() as u64;
        Ok(())
    }

    /// Shifts `.N-1` to `.N` down to the live file becoming `.1`; the oldest is overwritten.
    fn rotate(&self) {
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
            return;
        }
        for n in (1..=self.keep).rev() {
            let from = rotation(&self.path, n - 1);
            if from.exists() {
                let _ = std::fs::rename(&from, rotation(&self.path, n));
            }
        }
    }
}

fn append(path: &Utf8Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open it: {e}")))
}

/// One event's writer: buffers what tracing writes and hands it to the file in one piece when
/// flushed or dropped, so concurrent events never interleave or straddle a rotation.
#[derive(Debug)]
pub struct EventWriter<'a> {
    file: &'a RotatingFile,
    buf: Vec<u8>,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let record = std::mem::take(&mut self.buf);
        self.file.write_record(&record)
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            file: self,
            buf: Vec::new(),
        }
    }
}

/// Whether `journal_stream` (the value of `JOURNAL_STREAM`, `DEVICE:INODE`) names the file
/// with device `dev` and inode `ino`.
pub fn journal_stream_names(journal_stream: Option<&str>, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.and_then(|v| v.trim().split_once(':')) else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// Whether our stderr goes to the journal: systemd sets `JOURNAL_STREAM` to the device and
/// inode of the stream it connects, which a redirected stderr no longer matches.
pub fn stderr_is_journal() -> bool {
    let var = std::env::var("JOURNAL_STREAM").ok();
    if var.is_none() {
        return false;
    }
    // `st_dev` and `st_ino` are not 64 bits on every target a sensor runs on.
    #[allow(clippy::unnecessary_cast)]
    match rustix::fs::fstat(io::stderr()) {
        Ok(st) => journal_stream_names(var.as_deref(), st.st_dev as u64, st.st_ino as u64),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, Utf8PathBuf) {
        let d = tempfile::tempdir().expect("temp dir");
        let p = Utf8Path::from_path(d.path()).expect("utf-8").to_owned();
        (d, p)
    }

    fn lines_of(path: &Utf8Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn event(file: &RotatingFile, text: &str) {
        let mut w = file.make_writer();
        // Written in pieces, as a formatter does: the pieces still land together.
        for part in text.as_bytes().chunks(7) {
            w.write_all(part).expect("write");
        }
    }

    #[test]
    fn rotates_at_the_cap_and_keeps_three() {
        let (_d, root) = dir();
        let path = root.join("log/acoupi-beat.log");
        let file = RotatingFile::open(&path, 100, 3).expect("open");
        // 20-byte lines: five fit in 100 bytes, the sixth rotates.
        for i in 0..40 {
            event(&file, &format!("line {i:04} 123456789\n"));
        }
        for n in 0..=3 {
            let p = rotation(&path, n);
            let size = std::fs::metadata(&p).expect("exists").len();
            assert!(size <= 100 && size > 0, "{p}: {size}");
        }
        assert!(!rotation(&path, 4).exists());
        // The newest 20 lines, in order, across `.3 .2 .1` and the live file.
        let all: Vec<String> = (0..=3)
            .rev()
            .flat_map(|n| lines_of(&rotation(&path, n)))
            .collect();
        let want: Vec<String> = (20..40).map(|i| format!("line {i:04} 123456789")).collect();
        assert_eq!(all, want);
        // Reopening appends to the live file and keeps counting its size.
        drop(file);
        let file = RotatingFile::open(&path, 100, 3).expect("reopen");
        event(&file, &format!("line {:04} 123456789\n", 40));
        assert_eq!(
            lines_of(&path).len(),
            1,
            "the live file was full: it rotated"
        );
        assert_eq!(
            lines_of(&rotation(&path, 1)).last().map(String::as_str),
            Some("line 0039 123456789")
        );
    }

    #[test]
    fn an_event_larger_than_the_cap_gets_a_file_of_its_own() {
        let (_d, root) = dir();
        let path = root.join("big.log");
        let file = RotatingFile::open(&path, 10, 2).expect("open");
        event(&file, "short\n");
        event(&file, "a line well past the cap\n");
        event(&file, "next\n");
        assert_eq!(lines_of(&path), ["next"]);
        assert_eq!(lines_of(&rotation(&path, 1)), ["a line well past the cap"]);
        assert_eq!(lines_of(&rotation(&path, 2)), ["short"]);
    }

    #[test]
    fn concurrent_writers_lose_and_split_no_line() {
        let (_d, root) = dir();
        let path = root.join("many.log");
        // Enough rotations kept that nothing is dropped: every line must be found whole.
        let file = std::sync::Arc::new(RotatingFile::open(&path, 512, 1000).expect("open"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let file = std::sync::Arc::clone(&file);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        event(
                            &file,
                            &format!("thread {t} event {i} {}\n", "x".repeat(i % 37)),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut n = 0;
        while rotation(&path, n).exists() {
            let p = rotation(&path, n);
            assert!(std::fs::metadata(&p).expect("meta").len() <= 512, "{p}");
            let text = std::fs::read_to_string(&p).expect("read");
            assert!(text.ends_with('\n'), "{p} ends mid-line");
            for line in text.lines() {
                let parts: Vec<&str> = line.split(' ').collect();
                assert_eq!(parts.len(), 5, "split line {line:?}");
                let i: usize = parts[3].parse().expect("event number");
                assert_eq!(parts[4], "x".repeat(i % 37), "{line:?}");
                assert!(seen.insert((parts[1].to_owned(), i)), "duplicate {line:?}");
            }
            n += 1;
        }
        assert_eq!(seen.len(), 8 * 200);
        assert!(n > 10, "the files rotated: {n}");
    }

    #[test]
    fn an_unopenable_file_is_an_error_naming_what_failed() {
        let (_d, root) = dir();
        std::fs::write(root.join("log"), "a file, not a directory").expect("write");
        let err = RotatingFile::open(&root.join("log/x.log"), 100, 3).expect_err("fails");
        assert!(err.to_string().contains(&format!("`{root}/log`")), "{err}");
        // A directory where the file should be.
        std::fs::create_dir_all(root.join("d/x.log")).expect("dir");
        let err = RotatingFile::open(&root.join("d/x.log"), 100, 3).expect_err("fails");
        assert!(err.to_string().starts_with("cannot open it: "), "{err}");
    }

    #[test]
    fn the_journal_is_detected_only_for_the_stream_it_names() {
        assert!(journal_stream_names(Some("8:12345"), 8, 12345));
        assert!(!journal_stream_names(None, 8, 12345));
        assert!(!journal_stream_names(Some("8:999"), 8, 12345));
        assert!(!journal_stream_names(Some("9:12345"), 8, 12345));
        assert!(!journal_stream_names(Some("garbage"), 8, 12345));
        assert!(!journal_stream_names(Some(""), 8, 12345));
    }
}
