//! Crash safety read off the system calls: `acoupi task run manage-files` runs under `strace`,
//! which records every directory creation, rename, removal, write to the store's log and
//! fsync, and injects faults the file systems here never give (a rename without
//! `RENAME_NOREPLACE`, an interrupted read, a `.part` file vanishing or refusing removal).
//!
//! The promises checked on the trace are the ones only a power cut would otherwise show:
//! - a copy is fsynced before it is renamed to its final name, and the directory after;
//! - every directory created is made durable in its parent before a file is placed in it;
//! - no staged file is removed while a store write is not yet on disk (the write that
//!   points the store at the kept copy, or marks the recording deleted), and the staging
//!   directory is fsynced after a removal;
//! - a `.part` file swept at the start is removed durably.
//!
//! `scripts/test` installs strace; these tests fail when it is missing.

mod common;

use std::collections::HashMap;
use std::process::Output;

use acoupi::spec::data::new_id;
use acoupi::store::{Filter, Store};
use camino::{Utf8Path, Utf8PathBuf};

/// The system calls the durability checks read.
const TRACED: &str = "trace=mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,\
                      fsync,fdatasync,write,pwrite64,writev";

/// A home whose program keeps every second of four staged recordings in date folders under a
/// storage directory that does not exist yet, and deletes the others.
struct Staged {
    _guard: tempfile::TempDir,
    dir: Utf8PathBuf,
    home: Utf8PathBuf,
    staging: Utf8PathBuf,
    recordings: Utf8PathBuf,
    metadata: Utf8PathBuf,
    staged: Vec<Utf8PathBuf>,
}

impl Staged {
    fn new() -> Self {
        let (guard, dir) = common::tempdir();
        let staging = dir.join("staging");
        let recordings = dir.join("card/recordings");
        let metadata = dir.join("metadata.db");
        std::fs::create_dir_all(&staging).expect("staging");
        let manifest = common::write(
            &dir,
            "acoupi.kdl",
            format!(
                "program \"durable\"\nmicrophone \"m\" {{ synthetic \"sweep\"; samplerate \"192kHz\" }}\n\
                 paths {{\n    staging \"{staging}\"\n    recordings \"{recordings}\"\n    metadata \"{metadata}\"\n}}\n\
                 saving {{\n    keep-if every n=2\n    folder \"{{date:%Y}}/{{date:%m}}/{{date:%d}}\"\n    otherwise \"delete\"\n}}\n"
            ),
        );
        let home = dir.join("home");
        let out = common::run(&["build", manifest.as_str(), "--home", home.as_str()]);
        assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
        let staged: Vec<Utf8PathBuf> = (0..4u8)
            .map(|i| staging.join(format!("r{i}.wav")))
            .collect();
        // Distinct bytes per file: byte i after a RIFF tag.
        common::stage_recordings(
            &metadata,
            staged.iter().enumerate().map(|(i, path)| {
                let mut bytes = vec![i as u8; 300_000];
                bytes[..4].copy_from_slice(b"RIFF");
                (path.clone(), bytes)
            }),
        );
        Self {
            _guard: guard,
            dir,
            home,
            staging,
            recordings,
            metadata,
            staged,
        }
    }

    /// Runs `acoupi task run manage-files` under strace with `options`; returns its output and
    /// the trace.
    fn manage_files(&self, options: &[&str]) -> (Output, Vec<Call>) {
        let log = self.dir.join(format!("strace-{}.log", new_id()));
        let acoupi = common::acoupi();
        let out = std::process::Command::new("strace")
            .args(["-f", "-qq", "-y", "-o", log.as_str()])
            .args(options)
            .arg(acoupi.get_program())
            .args(["--home", self.home.as_str(), "task", "run", "manage-files"])
            .env_remove("ACOUPI_HOME")
            .env("NO_COLOR", "1")
            .output()
            .expect("strace runs (scripts/test installs it)");
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| {
            panic!(
                "no trace at {log}: {e}; strace said: {}",
                common::stderr(&out)
            )
        });
        (out, parse(&text))
    }

    /// The store's view after the run: (kept paths, deleted count, still pending).
    fn outcome(&self) -> (Vec<Utf8PathBuf>, usize, u64) {
        let store = Store::open_read_only(&self.metadata).expect("store");
        let mut kept = Vec::new();
        let mut deleted = 0;
        for r in store.recordings(&Filter::default()).expect("rows") {
            if r.deleted_on.is_some() {
                deleted += 1;
            } else {
                kept.push(r.recording.path.expect("a path"));
            }
        }
        kept.sort();
        (kept, deleted, store.pending_count().expect("count"))
    }

    /// Asserts the run kept two recordings in storage (with the bytes they were staged with)
    /// and deleted two, and left staging empty.
    fn assert_kept_two_deleted_two(&self) {
        let (kept, deleted, pending) = self.outcome();
        assert_eq!((kept.len(), deleted, pending), (2, 2, 0), "kept {kept:?}");
        for path in &kept {
            assert!(
                path.starts_with(&self.recordings),
                "{path} is not in storage"
            );
            let name = path.file_name().expect("a name");
            let original = self.staged.iter().position(|s| s.file_name() == Some(name));
            let i = original.unwrap_or_else(|| panic!("{path} is no staged recording's name"));
            let bytes = std::fs::read(path).expect("the kept file");
            assert_eq!(bytes.len(), 300_000, "{path}");
            assert!(bytes[4..].iter().all(|&b| usize::from(b) == i), "{path}");
        }
        assert_eq!(
            common::files_under(&self.staging),
            Vec::<Utf8PathBuf>::new()
        );
    }
}

/// One finished system call of the trace.
#[derive(Debug, Clone)]
struct Call {
    /// The system call's name.
    name: String,
    /// Its quoted path arguments, in order.
    paths: Vec<String>,
    /// The path `-y` printed for its first descriptor argument.
    fd_path: Option<String>,
    /// Whether it succeeded.
    ok: bool,
    /// Whether strace injected its result.
    injected: bool,
}

/// Parses a `strace -f -qq -y` log into the calls in the order they returned; a call another
/// thread interrupted is taken where it resumed (so an fsync counts once it is done). A line
/// it cannot read fails the test rather than going missing.
fn parse(log: &str) -> Vec<Call> {
    let mut pending: HashMap<&str, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in log.lines() {
        let unreadable = || -> ! { panic!("unreadable strace line: {line}") };
        let (pid, rest) = line
            .trim_start()
            .split_once(' ')
            .unwrap_or_else(|| unreadable());
        let rest = rest.trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") {
            continue; // an exit or a signal
        }
        let text = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_owned());
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            match (tail.split_once(" resumed>"), pending.remove(pid)) {
                (Some((_, after)), Some(head)) => format!("{head}{after}"),
                _ => unreadable(),
            }
        } else {
            rest.to_owned()
        };
        // `NAME(ARGS) = RESULT`, with spaces before the `=` that pad short lines to a column.
        let (name, args, result) = text
            .split_once('(')
            .and_then(|(name, rest)| rest.rsplit_once(" = ").map(|(a, r)| (name, a, r)))
            .and_then(|(name, a, r)| a.trim_end().strip_suffix(')').map(|a| (name, a, r)))
            .unwrap_or_else(|| unreadable());
        // Quoted arguments are the odd pieces between double quotes (the traced paths hold
        // none, and a data buffer's quotes are escaped as \").
        let unescaped = args.replace("\\\"", "");
        let paths = unescaped
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        let fd_path = args
            .split_once('<')
            .filter(|(fd, _)| !fd.is_empty() && fd.chars().all(|c| c.is_ascii_digit()))
            .and_then(|(_, p)| p.split_once('>'))
            .map(|(p, _)| p.to_owned());
        let result = result.trim_start();
        calls.push(Call {
            name: name.to_owned(),
            paths,
            fd_path,
            ok: !result.starts_with('-') && !result.starts_with('?'),
            injected: result.contains("(INJECTED)"),
        });
    }
    calls
}

fn is(call: &Call, names: &[&str]) -> bool {
    call.ok && names.contains(&call.name.as_str())
}

fn is_sync_of(call: &Call, path: &str) -> bool {
    is(call, &["fsync", "fdatasync"]) && call.fd_path.as_deref() == Some(path)
}

/// The calls named `names` that succeeded on a path under `prefix` (their last quoted
/// argument): (index in the trace, path).
fn on_paths(calls: &[Call], names: &[&str], prefix: &str) -> Vec<(usize, String)> {
    calls
        .iter()
        .enumerate()
        .filter(|(_, c)| is(c, names))
        .filter_map(|(i, c)| {
            c.paths
                .last()
                .filter(|p| p.starts_with(prefix))
                .map(|p| (i, p.clone()))
        })
        .collect()
}

/// The parent directory of `path` as text.
fn parent(path: &str) -> &str {
    Utf8Path::new(path).parent().expect("a parent").as_str()
}

#[test]
fn every_step_of_a_move_is_durable_before_the_next_relies_on_it() {
    let setup = Staged::new();
    // A copy a crashed run left: the sweep removes it first.
    let old = setup.recordings.join("old");
    std::fs::create_dir_all(&old).expect("old folder");
    let leftover = old.join(".r9.wav.part");
    std::fs::write(&leftover, b"half a copy").expect("leftover");

    let (out, calls) = setup.manage_files(&["-e", TRACED]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    setup.assert_kept_two_deleted_two();
    assert!(!leftover.exists(), "the sweep removed the leftover .part");

    let storage = setup.recordings.as_str();
    let staging = setup.staging.as_str();
    let wal = format!("{}-wal", setup.metadata);
    let after = |i: usize, pred: &dyn Fn(&Call) -> bool| {
        calls[i + 1..].iter().position(pred).map(|j| i + 1 + j)
    };

    // The sweep's removal, then its directory's fsync.
    let swept = on_paths(&calls, &["unlink", "unlinkat"], leftover.as_str());
    assert_eq!(swept.len(), 1, "one removal of the leftover");
    assert!(
        after(swept[0].0, &|c| is_sync_of(c, old.as_str())).is_some(),
        "the sweep fsyncs {old} after removing {leftover}"
    );

    // Every directory created under storage is made durable in its parent before a file is
    // renamed into it.
    let renames: Vec<(usize, String, String)> = (0..calls.len())
        .filter(|&i| is(&calls[i], &["rename", "renameat", "renameat2"]))
        .filter_map(|i| match calls[i].paths.as_slice() {
            [from, to] if to.starts_with(storage) => Some((i, from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        renames.len(),
        2,
        "two copies renamed into storage: {renames:?}"
    );
    let made = on_paths(&calls, &["mkdir", "mkdirat"], storage);
    assert_eq!(
        made.iter()
            .map(|(_, p)| p.strip_prefix(storage).unwrap_or(p))
            .collect::<Vec<_>>(),
        ["/2026", "/2026/06", "/2026/06/01"],
        "the date folders created"
    );
    for (i, dir) in &made {
        let first_use = renames
            .iter()
            .find(|(_, _, to)| to.starts_with(&format!("{dir}/")))
            .map(|(r, _, _)| *r)
            .expect("a file placed under each new folder");
        let synced = after(*i, &|c| is_sync_of(c, parent(dir)));
        assert!(
            synced.is_some_and(|s| s < first_use),
            "{} is fsynced after {dir} is made and before a file lands in it",
            parent(dir)
        );
    }

    // Each copy: fsynced as `.part`, renamed, its directory fsynced before the staged file
    // is removed.
    let unlinks = on_paths(&calls, &["unlink", "unlinkat"], staging);
    assert_eq!(
        unlinks.len(),
        4,
        "every staged file removed once: {unlinks:?}"
    );
    for (r, from, to) in &renames {
        assert!(from.ends_with(".part"), "{from} is a .part copy");
        assert!(
            calls[..*r].iter().any(|c| is_sync_of(c, from)),
            "{from} is fsynced before it is renamed"
        );
        let name = Utf8Path::new(to).file_name().expect("a name");
        let source = format!("{staging}/{name}");
        let removed = unlinks
            .iter()
            .find(|(_, p)| *p == source)
            .map(|(u, _)| *u)
            .unwrap_or_else(|| panic!("{source} is removed"));
        let synced = after(*r, &|c| is_sync_of(c, parent(to)));
        assert!(
            synced.is_some_and(|s| s < removed),
            "{} is fsynced after {to} lands and before {source} is removed",
            parent(to)
        );
    }

    // No staged file is removed while a store write is still only in the page cache: the
    // write that points the store at the copy, or marks the recording deleted, is on disk.
    let mut unsynced = None;
    for (i, c) in calls.iter().enumerate() {
        if is(c, &["write", "pwrite64", "writev"]) && c.fd_path.as_deref() == Some(wal.as_str()) {
            unsynced.get_or_insert(i);
        } else if is_sync_of(c, &wal) {
            unsynced = None;
        } else if let Some((_, path)) = unlinks.iter().find(|(u, _)| *u == i) {
            if let Some(w) = unsynced {
                panic!(
                    "{path} is removed while the store's write is not fsynced: {:#?}",
                    &calls[w..=i]
                );
            }
            assert!(
                after(i, &|c| is_sync_of(c, staging)).is_some(),
                "staging is fsynced after {path} is removed"
            );
        }
    }
    assert!(
        calls.iter().any(|c| is_sync_of(c, &wal)),
        "the store's log is fsynced at all"
    );
}

/// A file system without `RENAME_NOREPLACE` (some network and FUSE file systems) answers the
/// flag with one of these errors: the move falls back to a plain rename, whose target
/// `place` checked was free.
#[test]
fn a_file_system_without_rename_noreplace_still_gets_its_recordings() {
    for errno in ["EINVAL", "ENOSYS", "EOPNOTSUPP"] {
        let setup = Staged::new();
        let inject = format!("inject=renameat2:error={errno}");
        let (out, calls) = setup.manage_files(&["-e", "trace=renameat2", "-e", &inject]);
        assert!(
            out.status.success(),
            "renameat2 failing with {errno}: {}",
            common::stderr(&out)
        );
        assert!(
            calls.iter().any(|c| c.name == "renameat2" && c.injected),
            "{errno} was injected: {calls:?}"
        );
        setup.assert_kept_two_deleted_two();
    }
}

/// Runs manage-files with the first read of any staged file interrupted (EINTR), and
/// asserts it was interrupted once and the run kept and deleted as it should.
fn run_with_the_first_read_interrupted(setup: &Staged) {
    let mut options: Vec<&str> = Vec::new();
    for path in &setup.staged {
        options.extend(["-P", path.as_str()]);
    }
    options.extend(["-e", "trace=read", "-e", "inject=read:error=EINTR:when=1"]);
    let (out, calls) = setup.manage_files(&options);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(
        calls.iter().filter(|c| c.injected).count(),
        1,
        "one EINTR injected: {calls:?}"
    );
    setup.assert_kept_two_deleted_two();
}

#[test]
fn an_interrupted_read_is_retried() {
    // A fresh copy, whose first read of its source is interrupted.
    run_with_the_first_read_interrupted(&Staged::new());

    // Copies an interrupted run already renamed into place: each is compared with its source,
    // the first read of which is interrupted, and reused rather than copied again.
    let setup = Staged::new();
    let folder = setup.recordings.join("2026/06/01");
    std::fs::create_dir_all(&folder).expect("date folder");
    let mut placed = Vec::new();
    for path in &setup.staged {
        let copy = folder.join(path.file_name().expect("a name"));
        std::fs::copy(path, &copy).expect("copy in place");
        placed.push(copy);
    }
    run_with_the_first_read_interrupted(&setup);
    assert_eq!(
        common::files_under(&setup.recordings),
        placed,
        "the copies in place are reused, none copied twice"
    );
}

#[test]
fn a_part_file_vanishing_during_the_sweep_is_no_error_and_one_that_stays_stops_the_run() {
    for (errno, succeeds) in [("ENOENT", true), ("EACCES", false)] {
        let setup = Staged::new();
        let leftover = setup.recordings.join(".r9.wav.part");
        std::fs::create_dir_all(&setup.recordings).expect("storage");
        std::fs::write(&leftover, b"half a copy").expect("leftover");
        let inject = format!("inject=unlink,unlinkat:error={errno}");
        let (out, calls) = setup.manage_files(&[
            "-P",
            leftover.as_str(),
            "-e",
            "trace=unlink,unlinkat",
            "-e",
            &inject,
        ]);
        assert!(
            calls.iter().any(|c| c.injected),
            "{errno} injected: {calls:?}"
        );
        let stderr = common::stderr(&out);
        if succeeds {
            // Gone between the listing and the removal (another sweep, a user): the run goes on.
            assert!(out.status.success(), "{errno}: {stderr}");
            setup.assert_kept_two_deleted_two();
        } else {
            // It cannot be removed: the run stops before moving anything, and says why.
            assert!(!out.status.success(), "{errno}: the run fails");
            assert!(
                stderr.contains(".r9.wav.part"),
                "the error names the file: {stderr}"
            );
            let (kept, deleted, pending) = setup.outcome();
            assert_eq!(
                (kept.len(), deleted, pending),
                (4, 0, 4),
                "nothing moved: {kept:?}"
            );
        }
    }
}
