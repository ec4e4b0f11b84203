//! Crash-safe moves of recordings (`acoupi::files::moving`) from a tmpfs staging directory
//! (`/dev/shm`) to storage on disk, so every move really crosses file systems.
//!
//! In: recordings of random bytes. Out: checks that a move copies bytes and modification time
//! and never touches the source; reuses an identical file left at the final name and never
//! overwrites a different one, even one that lands there during the move or lies on the
//! source's own file system; that a failure, or a crash, before any step leaves no half
//! file under the final name, its `.part` removed or swept, and a retry succeeds; that read,
//! remove and list errors are reported on their file, not taken for success; and, with a
//! mover process SIGKILLed at random moments, that recovery leaves every recording exactly
//! once with its bytes, the simulated store pointing at it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use acoupi::files::moving::{self, Action, MoveError, Placement, Step};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The statfs magic number of a tmpfs.
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// A staging directory on the tmpfs `/dev/shm`, removed on drop.
fn staging() -> (TempDir, Utf8PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("acoupi-move-")
        .tempdir_in("/dev/shm")
        .unwrap_or_else(|e| {
            panic!("these tests stage recordings on the tmpfs `/dev/shm`, which is unusable: {e}")
        });
    let path = utf8(&dir);
    let fs = rustix::fs::statfs(path.as_std_path()).expect("statfs /dev/shm");
    assert_eq!(fs.f_type as u64, TMPFS_MAGIC, "`/dev/shm` must be a tmpfs");
    (dir, path)
}

/// A storage directory on disk (the system temporary directory), removed on drop; asserts it
/// is on another file system than `staging`.
fn storage(staging: &Utf8Path) -> (TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = utf8(&dir);
    let dev = |p: &Utf8Path| std::fs::metadata(p).expect("metadata").dev();
    assert_ne!(
        dev(staging),
        dev(&path),
        "staging `{staging}` and storage `{path}` must be on different file systems"
    );
    (dir, path)
}

fn utf8(dir: &TempDir) -> Utf8PathBuf {
    Utf8PathBuf::try_from(dir.path().to_path_buf()).expect("utf-8 temp dir")
}

/// A small xorshift generator: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A recording's modification time, well in the past.
fn recorded_at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_521_600)
}

/// Writes a staged recording with the given bytes and an old modification time.
fn write_recording(path: &Utf8Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write recording");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open recording");
    f.set_modified(recorded_at()).expect("set mtime");
}

/// Every file under `root`, recursively.
fn files_under(root: &Utf8Path) -> BTreeSet<Utf8PathBuf> {
    let mut out = BTreeSet::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("list") {
            let entry = entry.expect("entry");
            let path = Utf8PathBuf::try_from(entry.path()).expect("utf-8 name");
            if entry.file_type().expect("type").is_dir() {
                pending.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

fn mtime(path: &Utf8Path) -> SystemTime {
    std::fs::metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime")
}

#[test]
fn a_move_copies_bytes_and_time_across_file_systems_and_leaves_the_source() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let src = stage.join("r1.wav");
    let bytes = Rng(7).bytes(700_000);
    write_recording(&src, &bytes);
    let dst_dir = store.join("2024/05/01");

    let placed = moving::place(&src, &dst_dir, "r1.wav").expect("place");
    assert_eq!(placed.path, dst_dir.join("r1.wav"));
    assert_eq!(placed.placement, Placement::Copied);
    assert_eq!(std::fs::read(&placed.path).expect("read placed"), bytes);
    assert_eq!(mtime(&placed.path), recorded_at(), "the mtime is kept");
    assert_eq!(std::fs::read(&src).expect("source kept"), bytes);
    assert_eq!(files_under(&store), BTreeSet::from([placed.path.clone()]));

    assert!(moving::remove_source(&src).expect("remove"));
    assert!(!src.exists());
    assert!(
        !moving::remove_source(&src).expect("removing twice is fine"),
        "a missing source was already removed"
    );
}

#[test]
fn an_identical_file_at_the_final_name_is_reused_without_a_copy() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let src = stage.join("r1.wav");
    write_recording(&src, &Rng(1).bytes(300_000));
    let first = moving::place(&src, &store, "r1.wav").expect("place");
    let inode = std::fs::metadata(&first.path).expect("meta").ino();

    let again = moving::place(&src, &store, "r1.wav").expect("place again");
    assert_eq!(again.path, first.path);
    assert_eq!(again.placement, Placement::Reused);
    assert_eq!(std::fs::metadata(&again.path).expect("meta").ino(), inode);
    assert_eq!(files_under(&store).len(), 1);
}

#[test]
fn a_different_file_at_the_final_name_is_never_overwritten() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let mut rng = Rng(3);
    let src = stage.join("r1.wav");
    let bytes = rng.bytes(300_000);
    write_recording(&src, &bytes);
    // Same length, one byte different (past the first comparison chunk), and shorter.
    let mut near = bytes.clone();
    near[299_999] ^= 1;
    std::fs::write(store.join("r1.wav"), &near).expect("write");
    std::fs::write(store.join("r1_1.wav"), &bytes[..1000]).expect("write");

    let placed = moving::place(&src, &store, "r1.wav").expect("place");
    assert_eq!(placed.path, store.join("r1_2.wav"));
    assert_eq!(placed.placement, Placement::Copied);
    assert_eq!(std::fs::read(&placed.path).expect("read"), bytes);
    assert_eq!(std::fs::read(store.join("r1.wav")).expect("read"), near);
    assert_eq!(
        std::fs::read(store.join("r1_1.wav")).expect("read"),
        &bytes[..1000]
    );

    let again = moving::place(&src, &store, "r1.wav").expect("place again");
    assert_eq!(
        (again.path, again.placement),
        (placed.path, Placement::Reused)
    );
}

#[test]
fn a_missing_source_is_told_apart_and_changes_nothing() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let src = stage.join("gone.wav");
    let e = moving::place(&src, &store.join("day"), "gone.wav").expect_err("no source");
    assert!(e.is_source_missing(), "{e:?}");
    assert!(e.to_string().contains("gone.wav"), "{e}");
    assert!(!store.join("day").exists(), "nothing is created");
}

#[test]
fn the_source_as_its_own_destination_is_refused() {
    let (_s, stage) = staging();
    let src = stage.join("r1.wav");
    write_recording(&src, b"RIFF");
    let e = moving::place(&src, &stage, "r1.wav").expect_err("same file");
    assert!(matches!(e, MoveError::SourceIsDestination { .. }), "{e:?}");
    assert_eq!(std::fs::read(&src).expect("kept"), b"RIFF");
    for bad in ["", ".", "..", "a/b.wav"] {
        let e = moving::place(&src, &stage, bad).expect_err("bad name");
        assert!(matches!(e, MoveError::InvalidName { .. }), "{bad}: {e:?}");
    }
}

/// The path a failure at `step` is reported on.
fn failing_path(step: Step, dst_dir: &Utf8Path, name: &str) -> Utf8PathBuf {
    match step {
        Step::CreateDir | Step::SyncDir => dst_dir.to_owned(),
        Step::CreatePart | Step::Write | Step::SyncFile => dst_dir.join(format!(".{name}.part")),
        Step::Rename => dst_dir.join(name),
    }
}

#[test]
fn a_failure_at_any_step_leaves_no_half_file_and_a_retry_succeeds() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let src = stage.join("r1.wav");
    let bytes = Rng(11).bytes(600_000);
    write_recording(&src, &bytes);
    for kind in [
        ErrorKind::StorageFull,
        ErrorKind::ReadOnlyFilesystem,
        ErrorKind::Other,
    ] {
        for step in Step::ALL {
            let dst_dir = store.join(format!("{kind:?}/{step:?}"));
            let final_path = dst_dir.join("r1.wav");
            let e = moving::place_with(&src, &dst_dir, "r1.wav", &mut |s| {
                if s == step { Err(kind.into()) } else { Ok(()) }
            })
            .expect_err("the injected failure");
            let expected_variant = matches!(
                (kind, &e),
                (ErrorKind::StorageFull, MoveError::DiskFull { .. })
                    | (ErrorKind::ReadOnlyFilesystem, MoveError::ReadOnly { .. })
                    | (ErrorKind::Other, MoveError::Io { .. })
            );
            assert!(expected_variant, "{kind:?} at {step:?}: {e:?}");
            let named = failing_path(step, &dst_dir, "r1.wav");
            assert!(e.to_string().contains(named.as_str()), "{step:?}: {e}");

            // The source is untouched; no `.part` remains; the final file, if any, is whole.
            assert_eq!(std::fs::read(&src).expect("source"), bytes, "{step:?}");
            assert_eq!(mtime(&src), recorded_at());
            let left = if dst_dir.exists() {
                files_under(&dst_dir)
            } else {
                BTreeSet::new()
            };
            if step == Step::SyncDir {
                assert_eq!(left, BTreeSet::from([final_path.clone()]), "{step:?}");
                assert_eq!(std::fs::read(&final_path).expect("final"), bytes);
            } else {
                assert!(left.is_empty(), "{kind:?} at {step:?} left {left:?}");
            }

            let retry = moving::place(&src, &dst_dir, "r1.wav").expect("the retry");
            assert_eq!(retry.path, final_path);
            let expected = if step == Step::SyncDir {
                Placement::Reused
            } else {
                Placement::Copied
            };
            assert_eq!(retry.placement, expected, "{step:?}");
            assert_eq!(std::fs::read(&final_path).expect("final"), bytes);
            assert_eq!(files_under(&dst_dir), BTreeSet::from([final_path]));
        }
    }
}

#[test]
fn a_crash_before_any_step_is_swept_and_a_retry_succeeds() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let src = stage.join("r1.wav");
    let bytes = Rng(13).bytes(600_000);
    write_recording(&src, &bytes);
    for step in Step::ALL {
        let dst_dir = store.join(format!("{step:?}"));
        let final_path = dst_dir.join("r1.wav");
        // A panic in the hook unwinds past the error-path cleanup, as a crash would.
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            moving::place_with(&src, &dst_dir, "r1.wav", &mut |s| {
                assert_ne!(s, step, "simulated crash before {step:?}");
                Ok(())
            })
        }));
        assert!(crashed.is_err(), "{step:?}: the hook crashed");
        assert_eq!(std::fs::read(&src).expect("source"), bytes, "{step:?}");
        if final_path.exists() {
            assert_eq!(step, Step::SyncDir, "renamed only after the file's fsync");
            assert_eq!(std::fs::read(&final_path).expect("final"), bytes);
        }

        let swept = moving::sweep_partials(&store, None).expect("sweep");
        let part = dst_dir.join(".r1.wav.part");
        let left_part = matches!(step, Step::Write | Step::SyncFile | Step::Rename);
        assert_eq!(
            swept,
            if left_part { vec![part] } else { vec![] },
            "{step:?}"
        );

        let retry = moving::place(&src, &dst_dir, "r1.wav").expect("the retry");
        assert_eq!(retry.path, final_path);
        assert_eq!(std::fs::read(&final_path).expect("final"), bytes);
        assert_eq!(files_under(&dst_dir), BTreeSet::from([final_path]));
    }
}

#[test]
fn sweep_removes_part_files_at_any_depth_and_nothing_else() {
    let (_d, root) = storage(&staging().1);
    std::fs::create_dir_all(root.join("2024/05/01")).expect("dirs");
    let parts = [
        root.join(".a.wav.part"),
        root.join("2024/05/01/.b.wav.part"),
    ];
    let kept = [
        root.join("a.wav"),
        root.join("2024/05/01/b.wav.part"),
        root.join("2024/05/01/.b.wav.123.0.tmp"),
        root.join("2024/.part"),
    ];
    for p in parts.iter().chain(&kept) {
        std::fs::write(p, b"x").expect("write");
    }

    let young = moving::sweep_partials(&root, Some(Duration::from_secs(3600))).expect("sweep");
    assert!(
        young.is_empty(),
        "fresh parts are kept with an age: {young:?}"
    );
    let swept = moving::sweep_partials(&root, Some(Duration::ZERO)).expect("sweep");
    assert_eq!(swept, parts.to_vec(), "every part is at least 0 s old");
    assert_eq!(files_under(&root), kept.iter().cloned().collect());
    std::fs::write(&parts[1], b"x").expect("write");
    let swept = moving::sweep_partials(&root, None).expect("sweep");
    assert_eq!(swept, [parts[1].clone()], "without an age, all are swept");
    assert_eq!(files_under(&root), kept.iter().cloned().collect());
    assert!(
        moving::sweep_partials(&root.join("missing"), None)
            .expect("a missing root")
            .is_empty()
    );
}

#[test]
fn same_content_compares_length_and_every_byte() {
    let (_d, dir) = storage(&staging().1);
    let bytes = Rng(5).bytes(1_000_000);
    let write = |name: &str, b: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, b).expect("write");
        p
    };
    let a = write("a", &bytes);
    let b = write("b", &bytes);
    let mut last = bytes.clone();
    last[999_999] ^= 0x80;
    let c = write("c", &last);
    let d = write("d", &bytes[..999_999]);
    let (e, f) = (write("e", b""), write("f", b""));
    assert!(moving::same_content(&a, &b).expect("compare"));
    assert!(!moving::same_content(&a, &c).expect("compare"));
    assert!(!moving::same_content(&a, &d).expect("compare"));
    assert!(!moving::same_content(&d, &a).expect("compare"));
    assert!(moving::same_content(&e, &f).expect("compare"));
    assert!(moving::same_content(&a, &dir.join("missing")).is_err());
}

#[test]
fn a_file_that_appears_at_the_final_name_during_the_move_is_never_overwritten() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let src = stage.join("r1.wav");
    let bytes = Rng(17).bytes(300_000);
    write_recording(&src, &bytes);

    // Another recording lands under the chosen name just before the rename (a move running
    // without the task's lock): the copy goes to the next free name instead.
    let other = Rng(19).bytes(300_000);
    let dst_dir = store.join("different");
    let final_path = dst_dir.join("r1.wav");
    let mut landed = false;
    let placed = moving::place_with(&src, &dst_dir, "r1.wav", &mut |s| {
        if s == Step::Rename && !landed {
            landed = true;
            std::fs::write(&final_path, &other)?;
        }
        Ok(())
    })
    .expect("place");
    assert_eq!(placed.path, dst_dir.join("r1_1.wav"));
    assert_eq!(placed.placement, Placement::Copied);
    assert_eq!(
        std::fs::read(&final_path).expect("read"),
        other,
        "not replaced"
    );
    assert_eq!(std::fs::read(&placed.path).expect("read"), bytes);
    assert_eq!(
        files_under(&dst_dir),
        BTreeSet::from([final_path, placed.path])
    );

    // An identical copy landing there is reused, and the `.part` removed.
    let dst_dir = store.join("identical");
    let final_path = dst_dir.join("r1.wav");
    let placed = moving::place_with(&src, &dst_dir, "r1.wav", &mut |s| {
        if s == Step::Rename && !final_path.exists() {
            std::fs::write(&final_path, &bytes)?;
        }
        Ok(())
    })
    .expect("place");
    assert_eq!(
        (placed.path, placed.placement),
        (final_path.clone(), Placement::Reused)
    );
    assert_eq!(files_under(&dst_dir), BTreeSet::from([final_path]));
}

#[test]
fn on_one_file_system_other_entries_at_the_final_name_are_told_from_the_source() {
    let (_s, stage) = staging();
    let src = stage.join("r1.wav");
    let bytes = Rng(23).bytes(300_000);
    write_recording(&src, &bytes);
    // A directory and another recording of the same length hold the first two names, on the
    // source's own file system.
    let dst_dir = stage.join("kept");
    std::fs::create_dir_all(dst_dir.join("r1.wav")).expect("a directory at the name");
    let other = Rng(29).bytes(300_000);
    std::fs::write(dst_dir.join("r1_1.wav"), &other).expect("another recording");

    let placed = moving::place(&src, &dst_dir, "r1.wav").expect("place");
    assert_eq!(placed.path, dst_dir.join("r1_2.wav"));
    assert_eq!(placed.placement, Placement::Copied);
    assert_eq!(std::fs::read(&placed.path).expect("read"), bytes);
    assert_eq!(
        std::fs::read(dst_dir.join("r1_1.wav")).expect("read"),
        other
    );
    assert!(dst_dir.join("r1.wav").is_dir());
    assert_eq!(std::fs::read(&src).expect("source kept"), bytes);
}

#[test]
fn a_source_whose_reads_fail_fails_the_move_and_leaves_nothing() {
    // `/proc/self/mem` is a regular file whose read at offset 0 fails (EIO: nothing is mapped
    // there), as a recording on a failing card would.
    let src = Utf8Path::new("/proc/self/mem");
    let (_d, store) = storage(&staging().1);
    let e = moving::place(src, &store, "mem.wav").expect_err("the read error");
    assert!(
        matches!(&e, MoveError::Io { action: Action::Read, path, .. } if path.as_path() == src),
        "{e:?}"
    );
    assert!(
        files_under(&store).is_empty(),
        "no `.part` and no final file"
    );

    let empty = store.join("empty.wav");
    std::fs::write(&empty, b"").expect("write");
    let e = moving::same_content(src, &empty).expect_err("the read error");
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::IO.raw_os_error()),
        "{e}"
    );
}

#[test]
fn a_source_that_cannot_be_removed_and_a_root_that_cannot_be_listed_are_errors() {
    let (_d, root) = storage(&staging().1);
    let dir = root.join("a.wav");
    std::fs::create_dir(&dir).expect("dir");
    let e = moving::remove_source(&dir).expect_err("a directory is not removed as a file");
    assert!(
        matches!(&e, MoveError::Io { action: Action::Remove, path, .. } if *path == dir),
        "{e:?}"
    );
    assert!(dir.is_dir());

    let file = root.join("b.wav");
    std::fs::write(&file, b"RIFF").expect("write");
    let e = moving::sweep_partials(&file, None).expect_err("a file has no entries to list");
    assert!(
        matches!(&e, MoveError::Io { action: Action::List, path, .. } if *path == file),
        "{e:?}"
    );
}

#[test]
fn a_name_too_long_for_the_file_system_is_reported_on_that_name() {
    let (_s, stage) = staging();
    let (_d, store) = storage(&stage);
    let src = stage.join("r1.wav");
    write_recording(&src, b"RIFF");
    let name = format!("{}.wav", "n".repeat(300));
    let e = moving::place(&src, &store, &name).expect_err("a name past 255 bytes");
    assert!(
        matches!(&e, MoveError::Io { action: Action::Read, path, .. } if *path == store.join(&name)),
        "{e:?}"
    );
    assert!(files_under(&store).is_empty());
}

// ---- A mover SIGKILLed at random moments. ----

/// Set in the child: the path of the simulated store it moves the recordings of.
const MOVER_ENV: &str = "ACOUPI_TEST_MOVER_STORE";
/// Reproduces a run: the seed it printed.
const SEED_ENV: &str = "ACOUPI_TEST_MOVER_SEED";
const KILLS: usize = 12;
const PER_ROUND: usize = 8;

/// The simulated metadata store: where each recording is, saved with `fsx::write_atomic`.
#[derive(Debug, Serialize, Deserialize)]
struct Store {
    staging: Utf8PathBuf,
    storage: Utf8PathBuf,
    recordings: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    id: String,
    /// The storage folder it belongs in.
    day: String,
    /// Where the store says it is.
    path: Utf8PathBuf,
}

impl Store {
    fn load(path: &Utf8Path) -> Store {
        serde_json::from_slice(&std::fs::read(path).expect("read store")).expect("parse store")
    }

    fn save(&self, path: &Utf8Path) {
        let json = serde_json::to_vec_pretty(self).expect("serialise store");
        acoupi::fsx::write_atomic(path, &json, None).expect("save store");
    }
}

/// One recording's move, as the manage-files task does it: place, update the store, remove.
fn move_one(store: &mut Store, i: usize, store_path: &Utf8Path) -> Placement {
    let name = format!("{}.wav", store.recordings[i].id);
    let src = store.staging.join(&name);
    let dst_dir = store.storage.join(&store.recordings[i].day);
    let placed = moving::place(&src, &dst_dir, &name).expect("place");
    store.recordings[i].path = placed.path;
    store.save(store_path);
    moving::remove_source(&src).expect("remove source");
    placed.placement
}

/// The child: moves every recording the store has in staging, announcing each.
fn mover(store_path: &Utf8Path) {
    let mut store = Store::load(store_path);
    println!("MOVER ready");
    for i in 0..store.recordings.len() {
        if store.recordings[i].path.starts_with(&store.staging) {
            println!("MOVER moving {}", store.recordings[i].id);
            move_one(&mut store, i, store_path);
        }
    }
    println!("MOVER done");
}

/// What recovery did, summed over the run.
#[derive(Debug, Default)]
struct Recovered {
    swept: usize,
    reused: usize,
    copied: usize,
    sources_removed: usize,
}

/// The task's start after a crash: sweep partial copies, remove the sources of recordings the
/// store has in storage, and move those it still has in staging.
fn recover(store_path: &Utf8Path, totals: &mut Recovered) {
    let mut store = Store::load(store_path);
    totals.swept += moving::sweep_partials(&store.storage, None)
        .expect("sweep")
        .len();
    for i in 0..store.recordings.len() {
        let src = store
            .staging
            .join(format!("{}.wav", store.recordings[i].id));
        if store.recordings[i].path.starts_with(&store.staging) {
            match move_one(&mut store, i, store_path) {
                Placement::Reused => totals.reused += 1,
                Placement::Copied => totals.copied += 1,
            }
        } else if moving::remove_source(&src).expect("remove source") {
            totals.sources_removed += 1;
        }
    }
}

/// The SHA-256 of a file, in hex (readable in a failed comparison).
fn digest(path: &Utf8Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read `{path}`: {e}"));
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_no_recording_and_leaves_none_twice() {
    if let Ok(store) = std::env::var(MOVER_ENV) {
        mover(Utf8Path::new(&store));
        return;
    }
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("clock after 1970")
                .subsec_nanos();
            u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1
        });
    eprintln!("seed {seed} (rerun with {SEED_ENV}={seed})");
    let mut rng = Rng(seed);
    let (_s, stage) = staging();
    let (_d, storage_dir) = storage(&stage);
    let state = tempfile::tempdir().expect("temp dir");
    let store_path = utf8(&state).join("store.json");
    let mut store = Store {
        staging: stage.clone(),
        storage: storage_dir.clone(),
        recordings: Vec::new(),
    };
    store.save(&store_path);
    // The bytes each recording must keep, and other files already in storage.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut foreign: BTreeMap<Utf8PathBuf, String> = BTreeMap::new();
    let mut totals = Recovered::default();
    let (mut kills, mut rounds) = (0, 0);

    while kills < KILLS {
        rounds += 1;
        assert!(rounds <= 5 * KILLS, "only {kills} kills in {rounds} rounds");
        // New recordings arrive in staging; some names already hold other files in storage.
        let day = format!("2024-05-{:02}", rounds % 4 + 1);
        for k in 0..PER_ROUND {
            let id = format!("r{rounds:03}_{k}");
            let src = stage.join(format!("{id}.wav"));
            let len = 32_768 + rng.below(480_000) as usize;
            write_recording(&src, &rng.bytes(len));
            expected.insert(id.clone(), digest(&src));
            if rng.below(4) == 0 {
                let other = storage_dir.join(&day).join(format!("{id}.wav"));
                std::fs::create_dir_all(storage_dir.join(&day)).expect("day dir");
                std::fs::write(&other, rng.bytes(1000)).expect("foreign file");
                foreign.insert(other.clone(), digest(&other));
            }
            store.recordings.push(Entry {
                id,
                day: day.clone(),
                path: src,
            });
        }
        store.save(&store_path);

        // The mover, killed after a random number of moves began plus a random delay.
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "sigkill_at_random_moments_loses_no_recording_and_leaves_none_twice",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MOVER_ENV, &store_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the mover");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("MOVER ") && tx.send(line).is_err() {
                    break;
                }
            }
        });
        let moves_before_kill = rng.below(PER_ROUND as u64 + 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut begun = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "MOVER ready" && moves_before_kill == 0 => break,
                Ok(line) if line.starts_with("MOVER moving") => {
                    begun += 1;
                    if begun == moves_before_kill {
                        break;
                    }
                }
                Ok(line) if line == "MOVER done" => break,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("the mover made no progress in 60 s");
                }
            }
        }
        // Lands the kill anywhere inside a move: copying, fsyncing, renaming, saving.
        std::thread::sleep(Duration::from_micros(rng.below(8_000)));
        let _ = child.kill();
        let status = child.wait().expect("reap the mover");
        if status.signal() == Some(sigkill()) {
            kills += 1;
        } else {
            assert!(status.success(), "the mover failed: {status}");
        }

        // At any instant, the store points at a whole copy of every recording.
        let now = Store::load(&store_path);
        for e in &now.recordings {
            assert_eq!(
                digest(&e.path),
                expected[&e.id],
                "`{}` after a kill",
                e.path
            );
        }

        recover(&store_path, &mut totals);

        // Every recording exactly once, in storage, where the store says; nothing else but
        // the other files, unchanged.
        store = Store::load(&store_path);
        assert!(files_under(&stage).is_empty(), "staging is emptied");
        let mut wanted: BTreeMap<Utf8PathBuf, String> = foreign.clone();
        for e in &store.recordings {
            assert!(e.path.starts_with(&storage_dir), "{e:?}");
            let previous = wanted.insert(e.path.clone(), expected[&e.id].clone());
            assert!(previous.is_none(), "two recordings at `{}`", e.path);
        }
        let found: BTreeMap<Utf8PathBuf, String> = files_under(&storage_dir)
            .into_iter()
            .map(|p| {
                let d = digest(&p);
                (p, d)
            })
            .collect();
        assert_eq!(found, wanted, "after round {rounds}");
    }
    eprintln!(
        "{kills} kills in {rounds} rounds, {} recordings, {} other files; recovery swept {} \
         partial copies, reused {} placed copies, copied {}, removed {} sources",
        expected.len(),
        foreign.len(),
        totals.swept,
        totals.reused,
        totals.copied,
        totals.sources_removed
    );
}

/// SIGKILL's number.
fn sigkill() -> i32 {
    rustix::process::Signal::KILL.as_raw()
}
