//! The `manage-files` task through the built-in registry, with staging on a real tmpfs
//! (`/dev/shm`) and storage on disk, so every move crosses file systems: kept recordings land
//! in date folders with the store pointing at them, the rest are deleted with their rows
//! marked, recordings waiting for detection stay, failed ones are kept unanalysed, orphans are
//! adopted, and a move interrupted at either crash point is finished by the next run.

mod common;

use std::sync::Arc;

use acoupi::files::moving;
use acoupi::runtime::tasks::{Registry, Services, TaskContext};
use acoupi::spec::Program;
use acoupi::spec::payload::Recorded;
use acoupi::store::{Filter, Store, StoredRecording};
use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value as Json;

/// A staging directory on `/dev/shm`, removed when dropped.
struct Tmpfs(Utf8PathBuf);

impl Tmpfs {
    fn new() -> Tmpfs {
        let shm = Utf8Path::new("/dev/shm");
        assert!(shm.is_dir(), "/dev/shm (a tmpfs) is needed as staging");
        let dir = shm.join(format!("acoupi-test-{}", common::runtime::unique("mf")));
        std::fs::create_dir_all(&dir).expect("mkdir on /dev/shm");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The program: synthetic bat-like sweeps, a detector on `band`, and `saving`.
fn program(dir: &Utf8Path, staging: &Utf8Path, band: &str, saving: &str) -> Arc<Program> {
    program_with(dir, staging, band, saving, "")
}

/// [`program`] with more `recording` settings.
fn program_with(
    dir: &Utf8Path,
    staging: &Utf8Path,
    band: &str,
    saving: &str,
    recording: &str,
) -> Arc<Program> {
    let manifest = format!(
        r#"program "files"
microphone "m" {{
    synthetic "sweep" from="80kHz" to="40kHz" length="5ms" every="100ms" amplitude=0.5
    samplerate "192kHz"
}}
recording {{
    duration "300ms"
    interval "2s"
    {recording}
}}
detector "bats" kind="band-energy" {{
    band {band}
    threshold 0.3
}}
{saving}
"#
    );
    let mut program = common::runtime::program(&manifest);
    program.home = dir.join("home");
    program.paths.staging = staging.to_owned();
    program.paths.recordings = dir.join("recordings");
    program.paths.metadata = dir.join("metadata.db");
    program.paths.messages = dir.join("messages.db");
    program.paths.state = dir.join("home/state");
    Arc::new(program)
}

const BATS: &str = r#"low="30kHz" high="90kHz""#;
const NOTHING: &str = r#"low="5kHz" high="10kHz""#;
const KEEP_DETECTIONS: &str = "saving {\n    keep-if detection min-score=0.3\n    folder \"{date:%Y}/{date:%m}/{date:%d}\"\n}";

async fn run(services: &Arc<Services>, task: &str, task_id: &str, args: Vec<Json>) -> Json {
    try_run(services, task, task_id, args)
        .await
        .unwrap_or_else(|e| panic!("{task} failed: {e}"))
}

/// [`run`], returning the task's error.
async fn try_run(
    services: &Arc<Services>,
    task: &str,
    task_id: &str,
    args: Vec<Json>,
) -> Result<Json, acoupi::runtime::tasks::TaskError> {
    let handler = Registry::builtin().get(task).expect("a built-in handler");
    let ctx = TaskContext {
        services: Arc::clone(services),
        task_id: task_id.into(),
        retries: 0,
        worker: "test".into(),
    };
    handler(ctx, args, serde_json::Map::new()).await
}

async fn record(services: &Arc<Services>, id: &str) -> Recorded {
    serde_json::from_value(run(services, "record", id, Vec::new()).await).expect("a Recorded")
}

async fn record_and_detect(services: &Arc<Services>, id: &str) -> Recorded {
    let r = record(services, id).await;
    run(
        services,
        "detect",
        id,
        vec![serde_json::to_value(&r).expect("json")],
    )
    .await;
    r
}

async fn manage(services: &Arc<Services>) -> Json {
    run(services, "manage-files", "mf", Vec::new()).await
}

fn stored(program: &Program) -> Vec<StoredRecording> {
    Store::open_read_only(&program.paths.metadata)
        .expect("store")
        .recordings(&Filter::default())
        .expect("recordings")
}

/// The date folder a recording starting at `r.start` goes to (the program's timezone is UTC).
fn date_folder(r: &Recorded) -> String {
    r.start.strftime("%Y/%m/%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_with_detections_are_kept_in_date_folders_and_the_rest_deleted() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, BATS, KEEP_DETECTIONS));
    let r = record_and_detect(&services, "r1").await;
    let report = manage(&services).await;
    assert_eq!(report["kept"], 1, "{report}");
    let kept = dir
        .join("recordings")
        .join(date_folder(&r))
        .join(r.path.file_name().expect("a name"));
    assert_eq!(
        common::files_under(&dir.join("recordings")),
        std::slice::from_ref(&kept)
    );
    assert!(common::files_under(&shm.0).is_empty(), "staging is empty");
    let rows = stored(&services.program);
    assert_eq!(rows[0].recording.path.as_ref(), Some(&kept));
    assert_eq!(rows[0].staged_path.as_ref(), Some(&r.path));
    assert_eq!(
        std::fs::metadata(&kept).expect("kept").len(),
        (r.frames * 2) as u64 + 44 + {
            let guano = acoupi::audio::wav::read_guano(&kept)
                .expect("guano")
                .expect("some");
            (8 + guano.len() + guano.len() % 2) as u64
        },
        "the whole file was copied"
    );
    // A second run has nothing left to do.
    let again = manage(&services).await;
    assert_eq!(
        (again["kept"].as_u64(), again["deleted"].as_u64()),
        (Some(0), Some(0))
    );

    // A detector that hears nothing: the recording is deleted, its row marked.
    let (_d2, dir2) = common::tempdir();
    let shm2 = Tmpfs::new();
    let services = Services::new(program(&dir2, &shm2.0, NOTHING, KEEP_DETECTIONS));
    let r = record_and_detect(&services, "r2").await;
    let report = manage(&services).await;
    assert_eq!(report["deleted"], 1, "{report}");
    assert!(!r.path.exists() && common::files_under(&shm2.0).is_empty());
    assert!(common::files_under(&dir2.join("recordings")).is_empty());
    let rows = stored(&services.program);
    assert!(rows[0].deleted_on.is_some(), "{:?}", rows[0]);
}

/// Asserts the run kept `r` alone, in `unanalysed/` under its date folder, staging empty.
fn assert_kept_unanalysed(report: &Json, dir: &Utf8Path, shm: &Tmpfs, r: &Recorded) {
    assert_eq!(report["unanalysed"], 1, "{report}");
    assert_eq!(
        report["kept"], 0,
        "unanalysed ones are not counted as kept: {report}"
    );
    let kept = dir
        .join("recordings/unanalysed")
        .join(date_folder(r))
        .join(r.path.file_name().expect("name"));
    assert_eq!(common::files_under(&dir.join("recordings")), [kept]);
    assert!(common::files_under(&shm.0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_recordings_stay_and_failed_ones_are_kept_unanalysed() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, NOTHING, KEEP_DETECTIONS));
    let r = record(&services, "r1").await;
    let report = manage(&services).await;
    assert_eq!(report["waiting"], 1, "{report}");
    assert!(r.path.exists(), "still staged while detection is due");
    // Detection fails for good: the recording is never deleted unseen.
    let id = r.id.parse().expect("uuid");
    Store::open(&services.program.paths.metadata)
        .expect("store")
        .record_detection_failure(id, "bats", "the model crashed")
        .expect("recorded");
    let report = manage(&services).await;
    assert_kept_unanalysed(&report, &dir, &shm, &r);
}

/// A recording whose detection never reports (the detection task lost, say) waits while a
/// detect task could still run for it: its time limit times its runs, plus 15 minutes. Just
/// past that it is kept unanalysed, never deleted unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_never_analysed_is_kept_unanalysed_once_every_retry_is_past() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, NOTHING, KEEP_DETECTIONS));
    let r = record(&services, "r1").await;
    let detect = services
        .program
        .tasks
        .iter()
        .find(|t| t.name == "detect")
        .expect("a detect task");
    let runs = i64::from(detect.retries) + 1;
    let limit = jiff::SignedDuration::from_millis(detect.time_limit_ms as i64);
    assert!(limit.is_positive(), "the detect task has a time limit");
    let stale = limit * runs as i32 + jiff::SignedDuration::from_mins(15);
    let created = stored(&services.program)[0].recording.created_on;
    let at = |after: jiff::SignedDuration| {
        Services::with_clock(
            Arc::clone(&services.program),
            acoupi::runtime::tasks::Clock::Fixed(created + after),
        )
    };
    let report = manage(&at(stale)).await;
    assert_eq!(
        report["waiting"], 1,
        "at the limit it still waits: {report}"
    );
    assert!(r.path.exists(), "still staged");
    let report = manage(&at(stale + jiff::SignedDuration::from_millis(1))).await;
    assert_kept_unanalysed(&report, &dir, &shm, &r);
}

/// A recording made by another home's recorder, time-expanded ×10 (the header says 19.2 kHz,
/// GUANO's `TE` says how to read it): a WAV with GUANO, never stored here. The guards keep
/// that home alive while the recording is used.
async fn foreign_expanded_recording() -> (tempfile::TempDir, Tmpfs, Recorded) {
    let (guard, other) = common::tempdir();
    let other_shm = Tmpfs::new();
    let mut expanded = (*program(&other, &other_shm.0, BATS, KEEP_DETECTIONS)).clone();
    expanded.microphones[0].time_expansion = 10.0;
    let r = record(&Services::new(Arc::new(expanded)), "donor").await;
    (guard, other_shm, r)
}

/// Makes `path` look `secs` old (its modification time), as a file a recorder left long ago.
fn age(path: &Utf8Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
        .expect("age it");
}

/// How many recordings wait in staging for file management.
fn pending(program: &Program) -> u64 {
    Store::open_read_only(&program.paths.metadata)
        .expect("store")
        .pending_count()
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_file_nothing_stored_is_adopted_analysed_and_kept() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, BATS, KEEP_DETECTIONS));
    let (_o, _o_shm, r) = foreign_expanded_recording().await;
    let orphan = shm.0.join(r.path.file_name().expect("name"));
    std::fs::copy(&r.path, &orphan).expect("copy");
    // Young files may still be being stored by their recorder: left alone.
    let report = manage(&services).await;
    assert_eq!(report["adopted"], 0, "{report}");
    age(&orphan, 600);
    let report = manage(&services).await;
    assert_eq!(
        (report["adopted"].as_u64(), report["kept"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let rows = stored(&services.program);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].recording.id.to_string(),
        r.id,
        "the GUANO id is kept"
    );
    // Read back from the file as the recorder stored it: GUANO's time and time expansion,
    // the header's rate times the expansion, frames over that rate.
    let adopted = &rows[0].recording;
    // GUANO's timestamp holds milliseconds.
    let behind = r.start.duration_since(adopted.created_on);
    assert!(
        !behind.is_negative() && behind < jiff::SignedDuration::from_millis(1),
        "the GUANO timestamp {} for a recording started at {}",
        adopted.created_on,
        r.start
    );
    assert_eq!(adopted.time_expansion, 10.0);
    assert_eq!(adopted.samplerate, r.samplerate);
    assert_eq!(r.samplerate, 192_000);
    assert!(
        (adopted.duration - r.duration_s).abs() < 1e-9,
        "{} s, recorded {} s",
        adopted.duration,
        r.duration_s
    );
    let outputs = Store::open_read_only(&services.program.paths.metadata)
        .expect("store")
        .model_outputs(&Filter::default())
        .expect("outputs");
    assert_eq!(outputs.len(), 1);
    assert!(
        !outputs[0].detections.is_empty(),
        "the adopted file was analysed"
    );
    assert!(common::files_under(&shm.0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_at_either_crash_point_is_finished_by_the_next_run() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, BATS, KEEP_DETECTIONS));
    let a = record_and_detect(&services, "a").await;
    let b = record_and_detect(&services, "b").await;
    let folder = |r: &Recorded| dir.join("recordings").join(date_folder(r));
    // `a`: killed after the copy was renamed into place, before the store was updated.
    let placed =
        moving::place(&a.path, &folder(&a), a.path.file_name().expect("name")).expect("placed");
    // `b`: killed after the store was updated, before the staged file was removed.
    let b_placed =
        moving::place(&b.path, &folder(&b), b.path.file_name().expect("name")).expect("placed");
    Store::open(&services.program.paths.metadata)
        .expect("store")
        .set_recording_path(b.id.parse().expect("uuid"), &b_placed.path)
        .expect("updated");
    // And a partial copy of some third move.
    std::fs::write(folder(&a).join(".c.wav.part"), b"half a file").expect("partial");

    let report = manage(&services).await;
    assert_eq!(report["partials"], 1, "{report}");
    assert_eq!(report["leftovers"], 1, "{report}");
    assert_eq!(report["kept"], 1, "{report}");
    assert_eq!(common::files_under(&dir.join("recordings")), {
        let mut v = vec![placed.path.clone(), b_placed.path.clone()];
        v.sort();
        v
    });
    assert!(common::files_under(&shm.0).is_empty(), "no file left twice");
    for row in stored(&services.program) {
        let path = row.recording.path.expect("a path");
        assert!(
            path.exists() && path.starts_with(dir.join("recordings")),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_manage_each_recording_once() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, BATS, KEEP_DETECTIONS));
    for i in 0..4 {
        record_and_detect(&services, &format!("r{i}")).await;
    }
    let (x, y) = tokio::join!(manage(&services), manage(&services));
    let kept = x["kept"].as_u64().expect("n") + y["kept"].as_u64().expect("n");
    assert_eq!(kept, 4, "{x} {y}");
    assert_eq!(common::files_under(&dir.join("recordings")).len(), 4);
    assert!(common::files_under(&shm.0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_pauses_while_staging_is_over_its_budget_and_resumes_after() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    // One 300 ms recording at 192 kHz, 16-bit, is about 115 kB: two do not fit in 200 KiB.
    let services = Services::new(program_with(
        &dir,
        &shm.0,
        BATS,
        KEEP_DETECTIONS,
        "staging-budget \"200KiB\"",
    ));
    let first = run(&services, "record", "r1", Vec::new()).await;
    assert!(first.is_object(), "{first}");
    let skipped = run(&services, "record", "r2", Vec::new()).await;
    assert!(
        skipped.is_null(),
        "the second recording is skipped, not failed: {skipped}"
    );
    assert_eq!(common::files_under(&shm.0).len(), 1);
    // Detection and file management catch up: staging empties and recording resumes.
    run(&services, "detect", "r1", vec![first]).await;
    manage(&services).await;
    assert!(common::files_under(&shm.0).is_empty());
    let resumed = run(&services, "record", "r3", Vec::new()).await;
    assert!(resumed.is_object(), "{resumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_kept_recordings_past_the_age_limit_and_records_it() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let saving = format!("{KEEP_DETECTIONS}\nretention {{\n    max-age \"1h\"\n}}");
    let services = Services::new(program(&dir, &shm.0, BATS, &saving));
    let old = record_and_detect(&services, "old").await;
    let report = manage(&services).await;
    assert_eq!(report["kept"], 1, "{report}");
    assert_eq!(report["retention_deleted"], 0, "{report}");
    // Two hours later (the services' clock), the kept recording is past `max-age`.
    let later = Services::with_clock(
        Arc::clone(&services.program),
        acoupi::runtime::tasks::Clock::Fixed(old.start + jiff::SignedDuration::from_hours(2)),
    );
    let report = manage(&later).await;
    assert_eq!(report["retention_deleted"], 1, "{report}");
    assert!(common::files_under(&dir.join("recordings")).is_empty());
    let rows = stored(&services.program);
    assert!(
        rows[0].deleted_on.is_some(),
        "the row stays, marked deleted"
    );
}

/// With `message recording`, each kept recording goes to the outbox with the path it was
/// kept at (not its staging path), before the staged file is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_recording_is_reported_with_its_kept_path() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let saving = format!(
        "{KEEP_DETECTIONS}\nmessaging {{\n    mqtt host=\"127.0.0.1\" topic=\"{}\"\n    message recording\n}}",
        common::runtime::unique("mf")
    );
    let services = Services::new(program(&dir, &shm.0, BATS, &saving));
    let r = record_and_detect(&services, "r1").await;
    let report = manage(&services).await;
    assert_eq!(report["kept"], 1, "{report}");
    let kept = dir
        .join("recordings")
        .join(date_folder(&r))
        .join(r.path.file_name().expect("name"));
    let conn = rusqlite::Connection::open(&services.program.paths.messages).expect("outbox");
    let contents: Vec<String> = conn
        .prepare("SELECT CAST(content AS TEXT) FROM message WHERE message_type = 'recording'")
        .expect("query")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(contents.len(), 1, "one recording message: {contents:?}");
    let message: Json = serde_json::from_str(&contents[0]).expect("JSON");
    assert_eq!(message["id"], r.id.as_str(), "{message}");
    assert_eq!(message["path"], kept.as_str(), "{message}");
}

/// A staged file that vanished (removed by hand, a card swapped) leaves its recording marked
/// deleted and the run goes on; any other failure to place a recording (here a file stands
/// where its year's folder goes) leaves it pending with its staged file, and fails the run to be
/// retried: it is never marked deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_staged_file_is_marked_deleted_and_one_that_cannot_be_placed_stays() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, BATS, KEEP_DETECTIONS));
    let gone = record_and_detect(&services, "gone").await;
    std::fs::remove_file(&gone.path).expect("removed by hand");
    let report = manage(&services).await;
    assert_eq!(
        (report["kept"].as_u64(), report["deleted"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    let rows = stored(&services.program);
    assert!(
        rows[0].deleted_on.is_some(),
        "marked deleted: {:?}",
        rows[0]
    );

    let stays = record_and_detect(&services, "stays").await;
    let year = date_folder(&stays)[..4].to_owned();
    std::fs::create_dir_all(dir.join("recordings")).expect("storage");
    std::fs::write(dir.join("recordings").join(year), b"not a directory")
        .expect("a file where the year's folder goes");
    let err = try_run(&services, "manage-files", "mf2", Vec::new())
        .await
        .expect_err("the recording cannot be placed");
    assert!(
        matches!(err, acoupi::runtime::tasks::TaskError::Transient(_)),
        "retried: {err}"
    );
    assert!(stays.path.exists(), "still staged");
    let rows = stored(&services.program);
    let row = rows
        .iter()
        .find(|s| s.recording.id.to_string() == stays.id)
        .expect("stored");
    assert_eq!(row.deleted_on, None, "not marked deleted");
    assert_eq!(
        row.recording.path.as_ref(),
        Some(&stays.path),
        "still pointing at staging"
    );
    assert_eq!(pending(&services.program), 1, "still pending");
}

/// Staged files the store knows but does not list as pending, as a crash leaves them: one
/// whose recording was marked deleted (the run stopped before removing it) is removed as a
/// leftover; one whose recording still points at it (stored, its pending mark gone) is made
/// pending again and waits for its analysis: never removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_files_a_crash_left_are_removed_or_managed_again() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, NOTHING, KEEP_DETECTIONS));
    let deleted = record(&services, "deleted").await;
    let unmarked = record(&services, "unmarked").await;
    {
        let mut store = Store::open(&services.program.paths.metadata).expect("store");
        let id = |r: &Recorded| r.id.parse::<uuid::Uuid>().expect("uuid");
        store
            .mark_recording_deleted(id(&deleted), deleted.start)
            .expect("marked deleted");
        // The same path again: the row is unchanged but no longer pending.
        store
            .set_recording_path(id(&unmarked), &unmarked.path)
            .expect("unmarked");
        assert_eq!(store.pending_count().expect("count"), 0);
    }
    let report = manage(&services).await;
    assert_eq!(report["leftovers"], 1, "{report}");
    assert_eq!(report["waiting"], 1, "{report}");
    assert!(
        !deleted.path.exists(),
        "the deleted recording's file is removed"
    );
    assert!(
        unmarked.path.exists(),
        "the recording still in staging stays"
    );
    assert_eq!(pending(&services.program), 1, "pending again");
}

/// Staging as found: missing (nothing to manage, no error), a file instead of a directory (an
/// error, retried), and holding what is no finished recording: a hidden WAV (a recorder's
/// file being written) and a file that is not a WAV, both left alone however old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_missing_blocked_or_holding_other_files() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, BATS, KEEP_DETECTIONS));
    let r = record(&services, "r").await;
    let wav = std::fs::read(&r.path).expect("a WAV");
    std::fs::remove_dir_all(&shm.0).expect("staging removed");

    // No staging directory: the recording's file is gone with it; nothing else to do.
    let report = manage(&services).await;
    assert_eq!(report["adopted"], 0, "{report}");

    // A file where staging should be.
    std::fs::write(&shm.0, b"not a directory").expect("a file");
    let err = try_run(&services, "manage-files", "mf2", Vec::new())
        .await
        .expect_err("staging cannot be listed");
    assert!(
        matches!(err, acoupi::runtime::tasks::TaskError::Transient(_)),
        "{err}"
    );
    std::fs::remove_file(&shm.0).expect("removed");

    // Old enough to adopt, but a hidden WAV and a text file: left alone.
    std::fs::create_dir_all(&shm.0).expect("staging");
    for (name, bytes) in [
        (".being-written.wav", wav.as_slice()),
        ("notes.txt", b"field notes"),
    ] {
        let path = shm.0.join(name);
        std::fs::write(&path, bytes).expect("write");
        age(&path, 3600);
    }
    let report = manage(&services).await;
    assert_eq!(report["adopted"], 0, "{report}");
    assert_eq!(common::files_under(&shm.0).len(), 2);
}

/// An adopted file whose GUANO gives a time expansion of 0 (a damaged or hand-edited file) is
/// read as not time-expanded: its rate is the header's, never 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_file_with_a_time_expansion_of_zero_is_read_as_not_expanded() {
    let (_d, dir) = common::tempdir();
    let shm = Tmpfs::new();
    let services = Services::new(program(&dir, &shm.0, BATS, KEEP_DETECTIONS));
    let (_o, _o_shm, r) = foreign_expanded_recording().await;
    let mut bytes = std::fs::read(&r.path).expect("the WAV");
    let at = bytes
        .windows(7)
        .position(|w| w == b"TE: 10\n")
        .expect("GUANO's TE line");
    bytes[at..at + 7].copy_from_slice(b"TE: 00\n");
    let orphan = shm.0.join(r.path.file_name().expect("name"));
    std::fs::write(&orphan, &bytes).expect("write");
    age(&orphan, 600);
    let report = manage(&services).await;
    assert_eq!(report["adopted"], 1, "{report}");
    let rows = stored(&services.program);
    assert_eq!(rows[0].recording.time_expansion, 1.0);
    assert_eq!(rows[0].recording.samplerate, 19_200, "the header's rate");
}
