//! Reading the services' logs from whichever place has them: the user journal, or the
//! rotated files under the home's `log/` that services write where no journal runs.
//!
//! In: the home, its program, a unit as the user names it, a line count. Out: the unit names
//! meant ([`resolve`]), the last lines ([`tail`], [`last_lines`]) and a [`Follower`] that
//! prints lines as they are appended, across rotations. `journalctl` comes from
//! `ACOUPI_JOURNALCTL`, else `PATH`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use super::deploy::service_units;
use crate::runtime::log_file::{KEEP, rotation};
use crate::spec::Program;
use crate::spec::layout::{BEAT_UNIT, log_file, worker_unit};

/// The `journalctl` to run: `ACOUPI_JOURNALCTL`, else `journalctl` on `PATH`.
pub fn journalctl() -> OsString {
    std::env::var_os("ACOUPI_JOURNALCTL")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "journalctl".into())
}

/// The service units `name` means: every service when `None`, else the one named by its
/// worker name, `beat`, its unit name or its unit name without `.service`.
pub fn resolve(program: &Program, name: Option<&str>) -> Result<Vec<String>, String> {
    let all = service_units(program);
    let Some(name) = name else {
        return Ok(all);
    };
    let wanted = if name == "beat" {
        BEAT_UNIT.to_owned()
    } else if program.worker(name).is_some() {
        worker_unit(name)
    } else if name.ends_with(".service") {
        name.to_owned()
    } else {
        format!("{name}.service")
    };
    if all.contains(&wanted) {
        return Ok(vec![wanted]);
    }
    let known: Vec<String> = program
        .workers
        .iter()
        .map(|w| format!("`{}` ({})", w.name, worker_unit(&w.name)))
        .chain(std::iter::once(format!("`beat` ({BEAT_UNIT})")))
        .collect();
    Err(format!(
        "no unit `{name}` in program `{}`; it has: {}",
        program.name,
        known.join(", ")
    ))
}

/// `journalctl --user` arguments for `units`.
fn journal_args(units: &[String], lines: usize, follow: bool) -> Vec<String> {
    let mut args = vec!["--user".to_owned(), "--no-pager".to_owned()];
    for u in units {
        args.push("-u".to_owned());
        args.push(u.clone());
    }
    args.push("-n".to_owned());
    args.push(lines.to_string());
    if follow {
        args.push("-f".to_owned());
    }
    args
}

/// Whether the user journal has entries for any of `units` (false when `journalctl` is
/// missing or fails).
pub fn journal_has(journalctl: &OsString, units: &[String]) -> bool {
    let mut args = journal_args(units, 1, false);
    args.extend(["-q".to_owned(), "-o".to_owned(), "cat".to_owned()]);
    Command::new(journalctl)
        .args(&args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// The journal's command showing `units` (`-n lines`, `-f` to follow).
pub fn journal_command(
    journalctl: &OsString,
    units: &[String],
    lines: usize,
    follow: bool,
) -> Command {
    let mut c = Command::new(journalctl);
    c.args(journal_args(units, lines, follow));
    c
}

/// The files of `unit`, oldest first: `.3 .2 .1`, then the live file (those that exist).
pub fn files(home: &Utf8Path, unit: &str) -> Vec<Utf8PathBuf> {
    let live = log_file(home, unit);
    (0..=KEEP)
        .rev()
        .map(|n| rotation(&live, n))
        .filter(|p| p.is_file())
        .collect()
}

/// The last `n` lines of `unit`'s log files, across rotations, oldest first; `None` when it
/// has no log file.
pub fn tail(home: &Utf8Path, unit: &str, n: usize) -> io::Result<Option<Vec<String>>> {
    let files = files(home, unit);
    if files.is_empty() {
        return Ok(None);
    }
    let mut lines = std::collections::VecDeque::with_capacity(n.min(4096));
    // Newest file first, stopping once `n` lines are found.
    for path in files.iter().rev() {
        let bytes = fs_err::read(path)?;
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines().rev() {
            if lines.len() == n {
                break;
            }
            lines.push_front(line.to_owned());
        }
        if lines.len() == n {
            break;
        }
    }
    Ok(Some(lines.into()))
}

/// Where a unit's lines came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The user journal.
    Journal,
    /// The unit's log file (the live one).
    File(Utf8PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Journal => f.write_str("the journal"),
            Source::File(p) => write!(f, "`{p}`"),
        }
    }
}

/// The last `n` lines of `unit`, from the journal when it has entries for it, else from its
/// log files; `None` when neither has any.
pub fn last_lines(
    home: &Utf8Path,
    journalctl: &OsString,
    unit: &str,
    n: usize,
) -> io::Result<Option<(Source, Vec<String>)>> {
    let units = [unit.to_owned()];
    if journal_has(journalctl, &units) {
        let mut args = journal_args(&units, n, false);
        args.extend(["-q".to_owned()]);
        let out = Command::new(journalctl)
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        return Ok(Some((
            Source::Journal,
            text.lines().map(str::to_owned).collect(),
        )));
    }
    Ok(tail(home, unit, n)?.map(|l| (Source::File(log_file(home, unit)), l)))
}

/// One followed file: the open handle, where reading got to, and an unfinished last line.
struct Followed {
    path: Utf8PathBuf,
    file: Option<File>,
    ino: u64,
    pending: Vec<u8>,
}

impl Followed {
    /// Starts at the current end of `path` (or at its start once it appears).
    fn new(path: Utf8PathBuf) -> Self {
        let mut f = Self {
            path,
            file: None,
            ino: 0,
            pending: Vec::new(),
        };
        if let Ok(mut file) = File::open(&f.path) {
            let _ = file.seek(SeekFrom::End(0));
            f.ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            f.file = Some(file);
        }
        f
    }

    /// The complete lines appended since the last call. After a rotation the old file is read
    /// to its end before the new live file, from its start.
    fn poll(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        self.drain(&mut lines)?;
        let now = std::fs::metadata(&self.path).ok();
        match (&mut self.file, now) {
            (Some(file), Some(meta)) if meta.ino() == self.ino => {
                // Truncated in place: start again from its beginning.
                if meta.len() < file.stream_position()? {
                    file.seek(SeekFrom::Start(0))?;
                    self.drain(&mut lines)?;
                }
            }
            (_, Some(_)) => {
                if let Ok(file) = File::open(&self.path) {
                    self.ino = file.metadata()?.ino();
                    self.file = Some(file);
                    self.drain(&mut lines)?;
                }
            }
            (_, None) => {}
        }
        Ok(lines)
    }

    fn drain(&mut self, lines: &mut Vec<String>) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        file.read_to_end(&mut self.pending)?;
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let complete: Vec<u8> = self.pending.drain(..=end).collect();
            lines.extend(
                String::from_utf8_lossy(&complete)
                    .lines()
                    .map(str::to_owned),
            );
        }
        Ok(())
    }
}

/// Follows `units`' live log files from where they end when it is made; make it before
/// printing their last lines, so no line logged in between is missed.
pub struct Follower {
    files: Vec<Followed>,
}

impl Follower {
    /// Starts at the current end of each unit's live file (at the start of one made later).
    pub fn new(home: &Utf8Path, units: &[String]) -> Self {
        Self {
            files: units
                .iter()
                .map(|u| Followed::new(log_file(home, u)))
                .collect(),
        }
    }

    /// Prints the lines appended to the files to `out` as they come (polling every `every`),
    /// following each across rotations, until writing fails or the process is interrupted.
    /// With several files, a `==> FILE <==` header marks each change of file.
    pub fn run(mut self, every: Duration, out: &mut dyn Write) -> io::Result<()> {
        let several = self.files.len() > 1;
        let mut last: Option<usize> = None;
        loop {
            for (i, f) in self.files.iter_mut().enumerate() {
                let lines = f.poll()?;
                if lines.is_empty() {
                    continue;
                }
                if several && last != Some(i) {
                    writeln!(out, "\n==> {} <==", f.path)?;
                    last = Some(i);
                }
                for line in lines {
                    writeln!(out, "{line}")?;
                }
                out.flush()?;
            }
            std::thread::sleep(every);
        }
    }
}

/// The unit a deploy's start failure names (its message begins with the unit in backticks).
pub fn failed_unit<'a>(units: &'a [String], cause: &str) -> Option<&'a str> {
    units
        .iter()
        .find(|u| cause.starts_with(&format!("`{u}` ")))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Utf8PathBuf) {
        let d = tempfile::tempdir().expect("temp dir");
        let p = Utf8Path::from_path(d.path()).expect("utf-8").to_owned();
        (d, p)
    }

    #[test]
    fn tail_reads_across_rotations_oldest_first() {
        let (_d, h) = home();
        let live = log_file(&h, "acoupi-beat.service");
        std::fs::create_dir_all(live.parent().expect("dir")).expect("mkdir");
        std::fs::write(rotation(&live, 2), "a\nb\n").expect("w");
        std::fs::write(rotation(&live, 1), "c\nd\n").expect("w");
        std::fs::write(&live, "e\n").expect("w");
        let t = |n| {
            tail(&h, "acoupi-beat.service", n)
                .expect("read")
                .expect("some")
        };
        assert_eq!(t(2), ["d", "e"]);
        assert_eq!(t(4), ["b", "c", "d", "e"]);
        assert_eq!(t(50), ["a", "b", "c", "d", "e"]);
        assert!(t(0).is_empty());
        assert_eq!(tail(&h, "acoupi-worker-x.service", 5).expect("read"), None);
    }

    #[test]
    fn follow_polls_pick_up_appends_and_rotations() {
        let (_d, h) = home();
        let live = log_file(&h, "u.service");
        std::fs::create_dir_all(live.parent().expect("dir")).expect("mkdir");
        std::fs::write(&live, "old\n").expect("w");
        let mut f = Followed::new(live.clone());
        assert!(f.poll().expect("poll").is_empty(), "starts at the end");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .expect("open");
        file.write_all(b"one\ntw").expect("append");
        assert_eq!(f.poll().expect("poll"), ["one"]);
        file.write_all(b"o\n").expect("append");
        drop(file);
        std::fs::rename(&live, rotation(&live, 1)).expect("rotate");
        std::fs::write(&live, "three\n").expect("new live");
        assert_eq!(f.poll().expect("poll"), ["two", "three"]);
        assert!(f.poll().expect("poll").is_empty());
    }

    #[test]
    fn a_failed_unit_is_found_in_the_cause() {
        let units = vec![
            "acoupi-worker-a.service".to_owned(),
            "acoupi-beat.service".to_owned(),
        ];
        assert_eq!(
            failed_unit(&units, "`acoupi-beat.service` failed to start (x)"),
            Some("acoupi-beat.service")
        );
        assert_eq!(failed_unit(&units, "cannot run `systemctl`"), None);
    }
}
