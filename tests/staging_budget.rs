//! Continuous recording respects the staging budget: with detection stuck (a detector program
//! that never answers), `acoupi run` fills staging up to its budget, ends the stream and says
//! recording is paused, writes nothing more while staging stays full, and resumes by itself
//! once there is room again.

mod common;

use std::time::{Duration, Instant};

use common::sensor::Sensor;

/// The manifest's `staging-budget`.
const BUDGET: u64 = 100 * 1024;

fn staged(dir: &camino::Utf8Path) -> Vec<camino::Utf8PathBuf> {
    common::files_under(dir)
        .into_iter()
        .filter(|p| p.extension() == Some("wav"))
        .collect()
}

fn staged_bytes(dir: &camino::Utf8Path) -> u64 {
    staged(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn continuous_recording_pauses_at_the_staging_budget_and_resumes_with_room() {
    let (_d, dir) = common::tempdir();
    let staging = dir.join("staging");
    let manifest = format!(
        r#"acoupi version=1
program "budget" {{
    timezone "UTC"
}}
microphone "m" {{
    synthetic "noise"
    samplerate "48kHz"
}}
recording {{
    mode "continuous"
    duration "200ms"
    staging-budget "100KiB"
    min-free-disk "1MiB"
}}
paths {{
    staging "{staging}"
    recordings "{dir}/recordings"
}}
detector "stuck" kind="command" {{
    command "/bin/sleep" "3600"
    timeout "10m"
}}
"#
    );
    let path = common::write(&dir, "budget.kdl", manifest);
    let sensor = Sensor::start(&dir.join("home"), &path, dir.join("run.log"));
    sensor.wait_until("recording to pause", Duration::from_secs(30), || {
        sensor.log().contains("recording paused")
    });
    // Staging holds what fits in the budget (200 ms files of 19,244 bytes), never more.
    let at_pause = staged_bytes(&staging);
    assert!(
        at_pause > BUDGET - 2 * 19_244 && at_pause <= BUDGET,
        "{at_pause} bytes staged at the pause, budget {BUDGET}"
    );
    // Paused: over ten files' worth of time, staging does not grow.
    let watch = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch {
        let n = staged_bytes(&staging);
        assert!(
            n <= at_pause,
            "{n} bytes staged while paused, {at_pause} at the pause"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !sensor.log().contains("continuous recording resumes"),
        "resumed without room:\n{}",
        sensor.log()
    );
    // Room again (as file management makes it): recording resumes and writes new files.
    let before: Vec<_> = staged(&staging);
    for f in &before {
        std::fs::remove_file(f).expect("remove a staged file");
    }
    sensor.wait_until("recording to resume", Duration::from_secs(30), || {
        sensor.log().contains("continuous recording resumes") && !staged(&staging).is_empty()
    });
    let after = staged(&staging);
    assert!(
        after.iter().all(|f| !before.contains(f)),
        "new files after the resume"
    );
    // Not stopped with Ctrl-C: a worker drains its running task first, and this detector
    // never answers. The sensor's process group (the detector too) is killed on drop.
    drop(sensor);
}
