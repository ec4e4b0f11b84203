//! `acoupi deploy`, `status`, `stop`, `workers start|stop|restart`, `init` and `config show`
//! through the real binary.
//!
//! Most tests drive recording stubs of `systemctl` and `loginctl` (`ACOUPI_SYSTEMCTL`,
//! `ACOUPI_LOGINCTL`), so failures can be injected: each call's arguments are logged and the
//! exact command sequence is asserted, including the steps a failure undoes. The stub keeps
//! whether `acoupi.target` was started, answers `show` from that, and fails the subcommand
//! named in `ACOUPI_STUB_FAIL`; `ACOUPI_STUB_FAILING_UNIT` shows as failing, while the home's
//! program holds `ACOUPI_STUB_FAIL_IF` when that is set. The broker is the real RabbitMQ on 127.0.0.1:5672, with
//! queue names unique to each test. `real_systemd` runs the same sequence against a real
//! systemd: a private user manager each of its tests starts (`user_manager`).

#[path = "lifecycle/apply.rs"]
mod apply;
mod common;
#[path = "lifecycle/real_systemd.rs"]
mod real_systemd;
#[path = "lifecycle/replace_python.rs"]
mod replace_python;
#[path = "lifecycle/user_manager.rs"]
mod user_manager;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use acoupi::runtime::celery::TaskMessage;
use acoupi::runtime::transport::Broker;
use camino::{Utf8Path, Utf8PathBuf};
use common::{acoupi, code, stderr, stdout, tempdir};
use serde_json::Value;

const SHOW: &str =
    "LoadState,ActiveState,SubState,Result,NRestarts,Job,ExecMainCode,ExecMainStatus";
const AMQP_GUEST: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The systemctl stub: logs each call, keeps `active` while the target is started.
const SYSTEMCTL_STUB: &str = r#"#!/bin/sh
log="$ACOUPI_STUB_DIR/systemctl.log"
for a in "$@"; do printf '%s\0' "$a" >> "$log"; done
printf '\n\0' >> "$log"
if [ -n "$ACOUPI_STUB_DOWN" ]; then
  echo "Failed to connect to bus: No medium found" >&2; exit 1
fi
[ "$1" = "--user" ] || { echo "stub: expected --user first" >&2; exit 2; }
shift
if [ -n "$ACOUPI_STUB_FAIL" ] && [ "$1" = "$ACOUPI_STUB_FAIL" ]; then
  echo "Failed to $1 unit: injected failure" >&2; exit 1
fi
for unit; do :; done
case "$1" in
  start|restart) touch "$ACOUPI_STUB_DIR/active" ;;
  stop) rm -f "$ACOUPI_STUB_DIR/active" ;;
  show)
    if [ -f "$ACOUPI_STUB_DIR/active" ]; then
      if [ "$unit" = "$ACOUPI_STUB_FAILING_UNIT" ] && { [ -z "$ACOUPI_STUB_FAIL_IF" ] ||
          grep -qF -- "$ACOUPI_STUB_FAIL_IF" "$ACOUPI_STUB_HOME/config/program.json"; }; then
        printf 'LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=1\nJob=\n'
      else
        sub=running; case "$unit" in *.target) sub=active ;; esac
        printf 'LoadState=loaded\nActiveState=active\nSubState=%s\nResult=success\nNRestarts=0\nJob=\n' "$sub"
      fi
    else
      printf 'LoadState=loaded\nActiveState=inactive\nSubState=dead\nResult=success\nNRestarts=0\nJob=\n'
    fi ;;
esac
exit 0
"#;

const LOGINCTL_STUB: &str = r#"#!/bin/sh
log="$ACOUPI_STUB_DIR/loginctl.log"
for a in "$@"; do printf '%s\0' "$a" >> "$log"; done
printf '\n\0' >> "$log"
printf 'Linger=%s\n' "${ACOUPI_STUB_LINGER:-no}"
"#;

/// A temporary world: a home with hostile characters in its path, a manifest with unique
/// queue names, stubs, and an empty config directory.
struct World {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
    home: Utf8PathBuf,
    manifest: Utf8PathBuf,
    stubs: Utf8PathBuf,
    prefix: String,
    /// The program's queues on the shared RabbitMQ, deleted even when the test fails.
    _queues: common::runtime::Queues,
}

fn manifest_text(prefix: &str, broker: &str) -> String {
    format!(
        r#"acoupi version=1
program "lifecycle $(touch pwned) 'q' 100%" {{
    timezone "UTC"
    location latitude=51.5 longitude=-0.12
}}
broker "{broker}" {{
    username "guest"
    password env="ACOUPI_TEST_BROKER_PASSWORD"
}}
microphone "m" {{
    synthetic "sweep"
    samplerate "192kHz"
}}
detector "bats" kind="band-energy" {{
    band low="20kHz" high="90kHz"
}}
workers {{
    worker "rec" queues="{prefix}-rec"
    worker "rest" queues="{prefix}-det,{prefix}-def"
    task "record" queue="{prefix}-rec"
    task "detect" queue="{prefix}-det"
    task "manage-files" queue="{prefix}-def"
    task "heartbeat" queue="{prefix}-def"
}}
"#
    )
}

impl World {
    fn new() -> World {
        World::with_broker("amqp://127.0.0.1:5672/%2f")
    }

    fn with_broker(broker: &str) -> World {
        let (dir, root) = tempdir();
        let prefix = format!("lc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let manifest = common::write(&root, "acoupi.kdl", manifest_text(&prefix, broker));
        let home = root.join("a home 'q' \"dq\" 100% $HOME");
        let out = acoupi()
            .args(["build", manifest.as_str(), "--home", home.as_str()])
            .output()
            .expect("build runs");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        std::fs::write(
            home.join("config/secrets.env"),
            "ACOUPI_TEST_BROKER_PASSWORD=guest\n",
        )
        .expect("secrets");
        let stubs = root.join("stubs");
        std::fs::create_dir(&stubs).expect("stubs");
        for (name, text) in [("systemctl", SYSTEMCTL_STUB), ("loginctl", LOGINCTL_STUB)] {
            let p = stubs.join(name);
            std::fs::write(&p, text).expect("stub");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        World {
            _dir: dir,
            root,
            home,
            manifest,
            stubs,
            _queues: common::runtime::Queues::named(
                common::runtime::AMQP,
                ["rec", "det", "def"]
                    .iter()
                    .map(|s| format!("{prefix}-{s}"))
                    .collect(),
            ),
            prefix,
        }
    }

    fn config(&self) -> Utf8PathBuf {
        self.root.join("config home")
    }

    fn unit_dir(&self) -> Utf8PathBuf {
        self.config().join("systemd/user")
    }

    /// `acoupi ARGS --home HOME` with the stubs.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = acoupi();
        c.args(args)
            .args(["--home", self.home.as_str()])
            .env("ACOUPI_SYSTEMCTL", self.stubs.join("systemctl"))
            .env("ACOUPI_LOGINCTL", self.stubs.join("loginctl"))
            .env("ACOUPI_STUB_DIR", &self.stubs)
            .env("XDG_CONFIG_HOME", self.config())
            .env("USER", "tester")
            .env("ACOUPI_DEPLOY_SETTLE_SECS", "3")
            .env_remove("ACOUPI_TEST_BROKER_PASSWORD")
            .current_dir(&self.root);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("acoupi runs")
    }

    fn calls(&self, tool: &str) -> Vec<Vec<String>> {
        calls(&self.stubs.join(format!("{tool}.log")))
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.stubs.join("systemctl.log"));
        let _ = std::fs::remove_file(self.stubs.join("loginctl.log"));
    }

    fn services(&self) -> Vec<String> {
        [
            "acoupi-worker-rec.service",
            "acoupi-worker-rest.service",
            "acoupi-beat.service",
        ]
        .map(String::from)
        .to_vec()
    }

    fn deployment(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.home.join("config/deployment.json")).ok()?;
        Some(serde_json::from_str(&text).expect("deployment json"))
    }

    fn links(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.unit_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }
}

/// The argument lists a stub recorded, one per call.
fn calls(log: &Utf8Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = vec![Vec::new()];
    for part in text.split('\0').filter(|p| !p.is_empty()) {
        if part == "\n" {
            out.push(Vec::new());
        } else {
            out.last_mut().expect("non-empty").push(part.to_owned());
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

fn sc(args: &[&str]) -> Vec<String> {
    std::iter::once("--user")
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

fn show(unit: &str) -> Vec<String> {
    sc(&["show", "-p", SHOW, unit])
}

/// The one line of an error, checked to be one line.
fn one_line_error(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line of error:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

#[test]
fn deploy_links_reloads_enables_starts_and_records() {
    let w = World::new();
    let out = w.run(&[
        "deploy",
        "--name",
        "north hedge $x 'q'",
        "--latitude",
        "-33.9",
        "--longitude",
        "18.4",
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

    let mut expected = vec![
        show("acoupi.target"),
        sc(&["daemon-reload"]),
        sc(&["enable", "acoupi.target"]),
        sc(&["start", "--no-block", "acoupi.target"]),
    ];
    expected.extend(w.services().iter().map(|u| show(u)));
    assert_eq!(w.calls("systemctl"), expected);
    assert_eq!(
        w.calls("loginctl"),
        vec![
            ["show-user", "tester", "-p", "Linger"]
                .map(String::from)
                .to_vec()
        ]
    );
    assert!(
        stderr(&out).contains("lingering is off for `tester`")
            && stderr(&out).contains("sudo loginctl enable-linger tester"),
        "{}",
        stderr(&out)
    );

    // Every unit is a link to the home's own entry.
    let mut units = w.services();
    units.push("acoupi.target".into());
    units.sort();
    assert_eq!(w.links(), units);
    for u in &units {
        let target = std::fs::read_link(w.unit_dir().join(u)).expect("a link");
        assert_eq!(target, w.home.join("units").join(u).as_std_path());
    }

    let d = w.deployment().expect("deployment.json written");
    assert_eq!(d["name"], "north hedge $x 'q'");
    assert_eq!(d["latitude"], -33.9);
    assert_eq!(d["longitude"], 18.4);
    assert!(uuid::Uuid::parse_str(d["id"].as_str().expect("id")).is_ok());
    let started = d["started_on"].as_str().expect("started_on");
    assert!(started.ends_with('Z') && started.parse::<jiff::Timestamp>().is_ok());
    assert!(d.get("ended_on").is_none(), "{d}");

    // Deploying twice is refused before anything is touched.
    w.clear_calls();
    let again = w.run(&["deploy"]);
    assert_eq!(code(&again), 1);
    let line = one_line_error(&again);
    assert!(
        line.contains("is already deployed") && line.contains("acoupi stop"),
        "{line}"
    );
    assert!(
        w.calls("systemctl").is_empty(),
        "{:?}",
        w.calls("systemctl")
    );

    // Stop: stop (waiting), disable, unlink, reload; the deployment ends.
    let out = w.run(&["stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut all = w.services();
    all.push("acoupi.target".into());
    let mut expected: Vec<Vec<String>> = all.iter().map(|u| show(u)).collect();
    let mut stop = sc(&["stop"]);
    stop.extend(all.iter().cloned());
    expected.push(stop);
    expected.push(sc(&["disable", "acoupi.target"]));
    expected.push(sc(&["daemon-reload"]));
    assert_eq!(w.calls("systemctl"), expected);
    assert!(w.links().is_empty(), "{:?}", w.links());
    let d = w.deployment().expect("still there");
    assert!(
        d["ended_on"].as_str().is_some_and(|e| e.ends_with('Z')),
        "{d}"
    );
    assert!(
        stdout(&out).contains("deployment `north hedge $x 'q'`"),
        "{}",
        stdout(&out)
    );

    // Stopping again: not deployed.
    w.clear_calls();
    let out = w.run(&["stop"]);
    assert_eq!(code(&out), 1);
    assert!(one_line_error(&out).contains("is not deployed"));
    assert!(w.calls("systemctl").is_empty());

    // An ended deployment may be deployed again.
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let d = w.deployment().expect("new deployment");
    assert_eq!(d["name"], "lifecycle $(touch pwned) 'q' 100%");
    assert_eq!(d["latitude"], 51.5);
    for dir in [&w.root, &w.home] {
        assert!(!dir.join("pwned").exists());
    }
}

#[test]
fn a_failing_step_undoes_the_steps_before_it() {
    // (subcommand that fails, what must have been undone after the failing call)
    let cases: [(&str, Vec<Vec<String>>); 3] = [
        ("daemon-reload", vec![sc(&["daemon-reload"])]),
        ("enable", vec![sc(&["daemon-reload"])]),
        (
            "start",
            vec![sc(&["disable", "acoupi.target"]), sc(&["daemon-reload"])],
        ),
    ];
    for (failing, undo) in cases {
        let w = World::new();
        let out = w
            .cmd(&["deploy"])
            .env("ACOUPI_STUB_FAIL", failing)
            .output()
            .expect("runs");
        assert_eq!(code(&out), 1, "{failing}: {}", stdout(&out));
        let line = one_line_error(&out);
        assert!(line.contains("injected failure"), "{line}");
        assert!(line.contains("undone: "), "{line}");
        let calls = w.calls("systemctl");
        let at = calls
            .iter()
            .position(|c| c.get(1).map(String::as_str) == Some(failing))
            .unwrap_or_else(|| panic!("{failing} was called: {calls:?}"));
        assert_eq!(calls[at + 1..].to_vec(), undo, "{failing}: {calls:?}");
        assert!(w.links().is_empty(), "{failing}: {:?}", w.links());
        assert!(w.deployment().is_none(), "{failing}");
    }
}

#[test]
fn the_reduced_sandbox_is_written_beside_the_links_and_removed_with_them() {
    // A failing step removes the drop-ins it wrote.
    let w = World::new();
    let out = w
        .cmd(&["deploy", "--sandbox", "reduced"])
        .env("ACOUPI_STUB_FAIL", "enable")
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    assert!(one_line_error(&out).contains("sandbox drop-ins removed"));
    assert!(w.links().is_empty(), "{:?}", w.links());

    let out = w.run(&["deploy", "--sandbox", "reduced"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut expected = w.services();
    expected.push("acoupi.target".into());
    expected.extend(w.services().iter().map(|s| format!("{s}.d")));
    expected.sort();
    assert_eq!(w.links(), expected);
    for s in w.services() {
        let text = std::fs::read_to_string(w.unit_dir().join(format!("{s}.d/acoupi-sandbox.conf")))
            .expect("drop-in");
        assert!(text.contains("\nPrivateUsers=no\n"), "{text}");
    }
    let out = w.run(&["stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(w.links().is_empty(), "{:?}", w.links());

    // A full deployment removes drop-ins left from before.
    let dir = w.unit_dir().join("acoupi-beat.service.d");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("acoupi-sandbox.conf"), "[Service]\n").expect("stale");
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("sandbox: full"), "{}", stdout(&out));
    assert!(!dir.exists());
}

#[test]
fn a_unit_that_fails_to_start_undoes_the_deployment() {
    let w = World::new();
    // Without a journal, the failed unit's last 20 lines come from its log file.
    let log = w.home.join("log/acoupi-beat.log");
    let text: String = (1..=25).map(|i| format!("beat line {i}\n")).collect();
    std::fs::write(&log, text).expect("log file");
    let out = w
        .cmd(&["deploy"])
        .env("ACOUPI_STUB_FAILING_UNIT", "acoupi-beat.service")
        .env("ACOUPI_JOURNALCTL", w.root.join("no-journalctl"))
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    let mut lines = err.lines();
    let line = lines.next().expect("an error line").to_owned();
    assert_eq!(
        lines.next(),
        Some(format!("last 20 log lines of `acoupi-beat.service` (from `{log}`):").as_str())
    );
    let shown: Vec<String> = lines.map(str::to_owned).collect();
    let want: Vec<String> = (6..=25).map(|i| format!("    beat line {i}")).collect();
    assert_eq!(shown, want, "{err}");
    assert!(
        line.contains("`acoupi-beat.service` failed to start")
            && line.contains("acoupi logs acoupi-beat.service")
            && line.contains("units stopped"),
        "{line}"
    );
    let calls = w.calls("systemctl");
    let mut stop = sc(&["stop"]);
    stop.extend(w.services());
    stop.push("acoupi.target".into());
    assert_eq!(
        calls[calls.len() - 3..].to_vec(),
        vec![
            stop,
            sc(&["disable", "acoupi.target"]),
            sc(&["daemon-reload"])
        ]
    );
    assert!(w.links().is_empty());
    assert!(w.deployment().is_none());
}

#[test]
fn modified_and_foreign_homes_are_refused_before_any_step() {
    // A unit changed after the build.
    let w = World::new();
    let unit = w.home.join("units/acoupi-beat.service");
    let text = std::fs::read_to_string(&unit).expect("unit");
    std::fs::write(&unit, text.replace("Restart=always", "Restart=no")).expect("edit");
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 1);
    let line = one_line_error(&out);
    assert!(
        line.contains("does not match its build.lock (changed: units/acoupi-beat.service)")
            && line.contains("rebuild it with `acoupi build"),
        "{line}"
    );
    assert!(w.calls("systemctl").is_empty());

    // Built by another acoupi.
    let w = World::new();
    let lock = w.home.join("build.lock");
    let mut json: Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).expect("lock")).expect("json");
    json["acoupi_version"] = "0.0.1".into();
    std::fs::write(&lock, serde_json::to_string(&json).expect("json")).expect("write");
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 1);
    let line = one_line_error(&out);
    assert!(
        line.contains("was built by acoupi 0.0.1")
            && line.contains(&format!("rebuild it with `acoupi build {}", w.manifest)),
        "{line}"
    );
    assert!(w.calls("systemctl").is_empty());
    assert!(w.deployment().is_none());

    // Not a built home at all.
    let (_d, empty) = tempdir();
    let out = acoupi()
        .args(["deploy", "--home", empty.as_str()])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    assert!(
        one_line_error(&out).contains("acoupi build"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unwritable_unit_directory_fails_with_nothing_done() {
    let w = World::new();
    // `systemd` is a file: the unit directory cannot be created under it.
    std::fs::create_dir_all(w.config()).expect("config");
    std::fs::write(w.config().join("systemd"), "not a directory").expect("file");
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 1);
    let line = one_line_error(&out);
    assert!(
        line.contains("could not link the units into") && line.contains("nothing had been changed"),
        "{line}"
    );
    assert_eq!(w.calls("systemctl"), vec![show("acoupi.target")]);
    assert!(w.deployment().is_none());
}

#[test]
fn an_active_target_from_elsewhere_is_refused() {
    let w = World::new();
    std::fs::write(w.stubs.join("active"), "").expect("active");
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 1);
    assert!(one_line_error(&out).contains("`acoupi.target` is already active"));
    assert_eq!(w.calls("systemctl"), vec![show("acoupi.target")]);
    assert!(w.links().is_empty());
}

#[test]
fn an_unreachable_user_systemd_is_one_line() {
    let w = World::new();
    let out = w
        .cmd(&["deploy"])
        .env("ACOUPI_STUB_DOWN", "1")
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    let line = one_line_error(&out);
    assert!(
        line.contains("Failed to connect to bus") && line.contains("user's systemd"),
        "{line}"
    );
    assert!(w.links().is_empty());
    // Status cannot tell.
    let out = w
        .cmd(&["status"])
        .env("ACOUPI_STUB_DOWN", "1")
        .output()
        .expect("runs");
    assert_eq!(code(&out), 2, "{}", stdout(&out));
}

#[test]
fn workers_start_stop_restart_drive_the_worker_units() {
    let w = World::new();
    let workers = ["acoupi-worker-rec.service", "acoupi-worker-rest.service"];
    for (action, expected) in [
        ("start", vec!["start", "--no-block"]),
        ("stop", vec!["stop"]),
        ("restart", vec!["restart", "--no-block"]),
    ] {
        w.clear_calls();
        let out = w.run(&["workers", action]);
        assert_eq!(code(&out), 0, "{action}: {}", stderr(&out));
        let calls = w.calls("systemctl");
        let mut first = sc(&expected);
        first.extend(workers.map(String::from));
        assert_eq!(calls[0], first, "{action}");
        assert_eq!(
            calls[1..].to_vec(),
            workers.iter().map(|u| show(u)).collect::<Vec<_>>(),
            "{action}"
        );
    }
    let out = w
        .cmd(&["workers", "start"])
        .env("ACOUPI_STUB_FAIL", "start")
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    assert!(one_line_error(&out).contains("injected failure"));
}

/// Runs `f` with a connection to the test broker.
fn with_broker<T>(f: impl AsyncFnOnce(Broker) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let broker = Broker::connect_amqp(AMQP_GUEST, "acoupi lifecycle test", Some(Duration::from_secs(10)))
            .await
            .unwrap_or_else(|e| {
                panic!("RabbitMQ must run on 127.0.0.1:5672 (guest/guest) for this test; scripts/test starts it: {e}")
            });
        f(broker).await
    })
}

fn status_json(w: &World) -> (i32, Value) {
    let out = w.run(&["status", "--format", "json"]);
    let json = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (code(&out), json)
}

#[test]
fn status_reports_units_workers_queues_and_dead_letters() {
    let w = World::new();
    // Not deployed yet: degraded, and it says so.
    let (c, s) = status_json(&w);
    assert_eq!(c, 1);
    assert_eq!(s["health"], "degraded");
    assert!(
        s["problems"][0]
            .as_str()
            .expect("problem")
            .starts_with("not deployed"),
        "{s}"
    );

    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let p = w.prefix.clone();
    let (rec, det, def) = (format!("{p}-rec"), format!("{p}-det"), format!("{p}-def"));
    let w = &w;
    with_broker(async |broker| {
        for q in [&rec, &det, &def] {
            broker.declare(q).await.expect("declare");
        }
        // Only the `rec` worker consumes; a dead letter waits in `def`.
        let _deliveries = broker
            .consume(std::slice::from_ref(&rec), 1, "lc")
            .await
            .expect("consume");
        let dead = TaskMessage::new("noop", vec![], serde_json::Map::new()).encode();
        broker
            .publish(&format!("{def}.dead-letter"), &dead)
            .await
            .expect("publish");
        broker.publish(&det, &dead).await.expect("publish");

        let (c, s) = status_json(w);
        assert_eq!(c, 1, "{s:#}");
        assert_eq!(s["health"], "degraded");
        assert_eq!(s["broker"]["reachable"], true, "{s:#}");
        assert_eq!(s["deployment"]["name"], "lifecycle $(touch pwned) 'q' 100%");
        assert_eq!(s["workers"][0]["state"], "consuming", "{s:#}");
        assert_eq!(s["workers"][1]["state"], "not_consuming", "{s:#}");
        assert_eq!(s["queues"][0]["consumers"], 1);
        assert_eq!(s["queues"][1]["ready"], 1);
        assert_eq!(s["queues"][2]["dead_letters"], 1);
        assert_eq!(s["manifest"]["stale"], false);
        assert_eq!(s["last_heartbeat"], Value::Null);
        for u in s["units"].as_array().expect("units") {
            assert_eq!(u["state"]["active_state"], "active", "{u}");
        }
        let problems = s["problems"].to_string();
        assert!(
            problems.contains("worker `rest` is not consuming"),
            "{problems}"
        );
        assert!(
            problems.contains(&format!("1 dead letters in `{def}.dead-letter`")),
            "{problems}"
        );

        // Text says the same.
        let out = w.run(&["status"]);
        assert_eq!(code(&out), 1);
        let text = stdout(&out);
        assert!(text.contains("health       degraded"), "{text}");
        assert!(text.contains("last heartbeat  unknown"), "{text}");
        assert!(
            text.contains("rest                 not consuming"),
            "{text}"
        );

        // Every queue consumed, nothing dead: healthy.
        let _more = broker
            .consume(&[det.clone(), def.clone()], 1, "lc2")
            .await
            .expect("consume");
        broker
            .purge(&format!("{def}.dead-letter"))
            .await
            .expect("purge");
        // Consumers and purge are confirmed by the broker; poll status until it sees them.
        let start = std::time::Instant::now();
        let (c, s) = loop {
            let (c, s) = status_json(w);
            if c == 0 || start.elapsed() > Duration::from_secs(20) {
                break (c, s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(c, 0, "{s:#}");
        assert_eq!(s["health"], "healthy");
        for q in [&rec, &det, &def] {
            broker.delete(q).await.expect("delete");
        }
        broker.close().await;
    });

    // The manifest changed: stale, degraded.
    std::fs::write(
        &w.manifest,
        manifest_text(&w.prefix, "amqp://127.0.0.1:5672/%2f") + "\n",
    )
    .expect("edit");
    let (_, s) = status_json(w);
    assert_eq!(s["manifest"]["stale"], true);
    assert!(
        s["problems"].to_string().contains("the home is stale"),
        "{s}"
    );
}

#[test]
fn status_shows_a_missing_microphone() {
    let w = World::new();
    let state = w.home.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(
        state.join("microphone.json"),
        r#"{"microphone":"m","missing_since":"2026-06-01T20:00:10Z","error":"microphone `m`: no audio input device matches `UltraMic`"}"#,
    )
    .expect("microphone state");
    let (c, s) = status_json(&w);
    assert_eq!(c, 1, "{s:#}");
    assert_eq!(s["microphone"]["microphone"], "m", "{s:#}");
    assert_eq!(
        s["microphone"]["missing_since"], "2026-06-01T20:00:10Z",
        "{s:#}"
    );
    let problems = s["problems"].to_string();
    assert!(
        problems.contains("microphone `m` missing since 2026-06-01T20:00:10Z"),
        "{problems}"
    );
    let text = stdout(&w.run(&["status"]));
    assert!(
        text.contains("microphone      `m` missing since 2026-06-01T20:00:10Z ("),
        "{text}"
    );
    // Back: no field, no line.
    std::fs::remove_file(state.join("microphone.json")).expect("cleared");
    let (_, s) = status_json(&w);
    assert_eq!(s["microphone"], Value::Null, "{s:#}");
    assert!(!stdout(&w.run(&["status"])).contains("microphone "));
}

#[test]
fn a_missing_broker_leaves_deploy_working_and_workers_waiting() {
    let w = World::with_broker("amqp://127.0.0.1:1/%2f");
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (c, s) = status_json(&w);
    assert_eq!(c, 1, "{s:#}");
    assert_eq!(s["broker"]["reachable"], false);
    for worker in s["workers"].as_array().expect("workers") {
        assert_eq!(worker["state"], "waiting_for_the_broker", "{s:#}");
    }
    let out = w.run(&["status"]);
    assert!(
        stdout(&out).contains("waiting for the broker"),
        "{}",
        stdout(&out)
    );
    // Stop still works, and purging reports the broker as the reason it failed.
    let out = w.run(&["stop", "--purge"]);
    assert_eq!(code(&out), 1);
    assert!(
        one_line_error(&out).contains("the units are stopped, but purging the queues failed"),
        "{}",
        stderr(&out)
    );
    assert!(w.deployment().expect("ended")["ended_on"].is_string());
}

#[test]
fn stop_purge_empties_the_program_queues() {
    let w = World::new();
    assert_eq!(code(&w.run(&["deploy"])), 0);
    let q = format!("{}-def", w.prefix);
    with_broker(async |broker| {
        broker.declare(&q).await.expect("declare");
        let m = TaskMessage::new("noop", vec![], serde_json::Map::new()).encode();
        broker.publish(&q, &m).await.expect("publish");
        broker.close().await;
    });
    let out = w.run(&["stop", "--purge"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{q:<20} 1 purged")),
        "{}",
        stdout(&out)
    );
    with_broker(async |broker| {
        assert_eq!(broker.depth(&q).await.expect("depth"), 0);
        for suffix in ["rec", "det", "def"] {
            let _ = broker.delete(&format!("{}-{suffix}", w.prefix)).await;
        }
        broker.close().await;
    });
}

#[test]
fn config_show_masks_secrets_and_finds_dotted_keys() {
    let (_d, dir) = tempdir();
    let manifest = common::write(
        &dir,
        "m.kdl",
        r#"program "cfg"
broker "amqp://127.0.0.1:5672/%2f" {
    username "guest"
    password "s3cret-broker"
}
microphone "m" { synthetic "sweep"; samplerate "192kHz" }
messaging {
    mqtt host="127.0.0.1" { password "s3cret-mqtt"; username env="MQTT_USER" }
    http url="https://u:s3cret-url@example.org/in" { header "Authorization" "s3cret-header" }
}
"#,
    );
    let home = dir.join("home");
    let out = acoupi()
        .args(["build", manifest.as_str(), "--home", home.as_str()])
        .output()
        .expect("build");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let show = |args: &[&str]| {
        acoupi()
            .args(["config", "show"])
            .args(args)
            .args(["--home", home.as_str()])
            .output()
            .expect("runs")
    };
    let all = show(&["--format", "json"]);
    assert_eq!(code(&all), 0, "{}", stderr(&all));
    let text = stdout(&all);
    assert!(!text.contains("s3cret"), "{text}");
    let json: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["broker"]["password"]["value"], "***");
    assert_eq!(json["broker"]["username"]["value"], "***");
    assert_eq!(json["messaging"]["mqtt"]["username"]["env"], "MQTT_USER");
    assert_eq!(
        json["messaging"]["http"]["url"],
        "https://u:***@example.org/in"
    );
    let flat = stdout(&show(&[]));
    assert!(!flat.contains("s3cret"), "{flat}");
    assert!(flat.contains("recording.duration_ms = 3000\n"), "{flat}");
    assert_eq!(stdout(&show(&["recording.duration_ms"])), "3000\n");
    assert_eq!(stdout(&show(&["name"])), "cfg\n");
    assert_eq!(
        stdout(&show(&["workers.0.queues"])),
        "workers.0.queues.0 = \"recording\"\n"
    );
    assert_eq!(
        stdout(&show(&["workers.0.queues", "--format", "json"])),
        "[\n  \"recording\"\n]\n"
    );
    let bad = show(&["recording.duration"]);
    assert_eq!(code(&bad), 1);
    let line = one_line_error(&bad);
    assert!(
        line.contains("no `duration` in `recording`") && line.contains("duration_ms"),
        "{line}"
    );
}

#[test]
fn init_writes_templates_and_never_overwrites() {
    let (_d, dir) = tempdir();
    for name in ["default", "connected", "detection", "quickstart"] {
        let path = dir.join(format!("{name} 'x' $y.kdl"));
        let out = acoupi()
            .args(["init", path.as_str(), "--template", name, "--no-prompt"])
            .output()
            .expect("runs");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let written = std::fs::read_to_string(&path).expect("written");
        let example = std::fs::read_to_string(format!("examples/{name}.kdl")).expect("example");
        assert_eq!(written, example);
        let again = acoupi()
            .args(["init", path.as_str(), "--template", name, "--no-prompt"])
            .output()
            .expect("runs");
        assert_eq!(code(&again), 1);
        assert!(one_line_error(&again).contains("already exists"));
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), example);
    }
    let out = acoupi()
        .args([
            "init",
            dir.join("x.kdl").as_str(),
            "--template",
            "detektion",
            "--no-prompt",
        ])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    assert!(
        one_line_error(&out).contains("`detection`"),
        "{}",
        stderr(&out)
    );
    let out = acoupi()
        .args(["init", dir.join("x.kdl").as_str(), "--no-prompt"])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 2, "clap requires --template with --no-prompt");
}

/// Runs the wizard with `answers` on stdin.
fn wizard(path: &Utf8Path, answers: &str) -> Output {
    use std::io::Write;
    let mut child = acoupi()
        .args(["init", path.as_str()])
        .env("HOME", "/home/pi")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answers.as_bytes())
        .expect("answers");
    child.wait_with_output().expect("finishes")
}

#[test]
fn the_wizard_validates_each_answer_and_writes_a_manifest_that_checks() {
    let (_d, dir) = tempdir();
    let path = dir.join("wizard.kdl");
    let answers = [
        "9",                  // not a kind
        "detection",          //
        "Hedge \"north\" $x", // any name
        "Mars/Olympus",       // not a timezone
        "Europe/London",
        "UltraMic 250K",
        "44.1kHz", // too low for bats
        "384kHz",
        "sometimes", // not a mode
        "duty-cycle",
        "5 s",
        "2s", // shorter than the recording
        "1m",
        "sunset-30m",
        "sunset-30m", // same as the start
        "sunrise+30m",
        "", // the location is required for sun times
        "91",
        "51.5",
        "-0.12",
        "amqp://guest:pw@127.0.0.1/%2f", // password in the URL
        "",
        "ACOUPI BROKER", // not a variable name
        "ACOUPI_BROKER_PASSWORD",
        "",             // user name: default
        "relative/dir", // not absolute
        "/run/shm/acoupi",
        "",
        "none", // metadata inside the home
        "mqtt.example.org",
        "0", // not a port
        "8883",
        "acoupi/#", // wildcard
        "acoupi/hedge",
        "pi",
        "", // password variable: default
        "/srv/acoupi/messages.db",
    ]
    .join("\n")
        + "\n";
    let out = wizard(&path, &answers);
    let shown = stdout(&out);
    assert_eq!(code(&out), 0, "{shown}{}", stderr(&out));
    for expected in [
        "invalid: no template `9`",
        "invalid: `Mars/Olympus` is not a known timezone",
        "invalid: use 96kHz to 768kHz (bat calls reach above 40kHz)",
        "invalid: answer `duty-cycle`",
        "invalid: shorter than the 5s recordings",
        "invalid: the end equals the start",
        "Sun times need the sensor's location.",
        "invalid: the latitude must be between -90 and 90",
        "invalid: do not put the password in the URL",
        "invalid: `ACOUPI BROKER` is not an environment variable name",
        "invalid: `relative/dir` is not an absolute path",
        "invalid: `0` is not a port",
        "invalid: a topic to publish to cannot hold `+` or `#`",
        "The manifest checks.",
    ] {
        assert!(
            shown.contains(expected),
            "missing {expected:?} in:\n{shown}"
        );
    }
    let check = acoupi()
        .args(["check", path.as_str()])
        .output()
        .expect("check");
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    let text = std::fs::read_to_string(&path).expect("written");
    for expected in [
        "program \"Hedge \\\"north\\\" $x\"",
        "timezone \"Europe/London\"",
        "location latitude=51.5 longitude=-0.12",
        "device \"UltraMic 250K\"",
        "samplerate \"384kHz\"",
        "duration \"5s\"",
        "interval \"1m\"",
        "window from=\"sunset-30m\" to=\"sunrise+30m\"",
        "password env=\"ACOUPI_BROKER_PASSWORD\"",
        "username \"acoupi\"",
        "staging \"/run/shm/acoupi\"",
        "recordings \"/home/pi/acoupi-storage/recordings\"",
        "messages \"/srv/acoupi/messages.db\"",
        "band low=\"20kHz\" high=\"120kHz\"",
        "mqtt host=\"mqtt.example.org\" port=8883 topic=\"acoupi/hedge\" {",
        "password env=\"ACOUPI_MQTT_PASSWORD\"",
        "message detection min-score=0.5",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("metadata "), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("//"))
            .count()
            >= 5
    );
}

#[test]
fn the_wizard_writes_nothing_when_the_input_ends_early() {
    let (_d, dir) = tempdir();
    let path = dir.join("partial.kdl");
    let out = wizard(&path, "2\nmy sensor\n");
    assert_eq!(code(&out), 1);
    assert!(
        one_line_error(&out).contains("the input ended"),
        "{}",
        stderr(&out)
    );
    assert!(!path.exists());
    // All defaults, every kind: a manifest that checks.
    for kind in ["default", "connected", "detection", "quickstart"] {
        let path = dir.join(format!("{kind}.kdl"));
        let out = wizard(&path, &format!("{kind}\n{}", "\n".repeat(40)));
        assert_eq!(code(&out), 0, "{kind}: {}{}", stdout(&out), stderr(&out));
        let check = acoupi()
            .args(["check", path.as_str()])
            .output()
            .expect("check");
        assert_eq!(code(&check), 0, "{kind}: {}", stderr(&check));
    }
}
