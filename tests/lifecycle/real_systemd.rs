//! `acoupi build` → `deploy` → `status` → `stop` against a real systemd: a private user
//! manager started for the test (`user_manager.rs`), the units sandboxed as generated, the
//! workers consuming from the real RabbitMQ on 127.0.0.1:5672 under queue names unique to the
//! test. Fails, saying why and how to fix it, when the manager cannot start.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::user_manager::{Host, UserManager};
use super::{World, with_broker};
use crate::common::{acoupi, code, stderr, stdout};

/// A private user manager for this test, or a failure saying why there is none.
fn private_manager() -> UserManager {
    UserManager::start().unwrap_or_else(|why| {
        panic!("cannot start a private systemd user manager for this test: {why}")
    })
}

impl World {
    /// `acoupi ARGS --home HOME` against `manager`, with the real `systemctl`.
    fn real(&self, manager: &UserManager, args: &[&str]) -> Output {
        let mut c = acoupi();
        c.args(args)
            .args(["--home", self.home.as_str()])
            .env("ACOUPI_DEPLOY_SETTLE_SECS", "20")
            .env_remove("ACOUPI_SYSTEMCTL")
            .env_remove("ACOUPI_LOGINCTL")
            .env_remove("ACOUPI_TEST_BROKER_PASSWORD")
            .current_dir(&self.root);
        manager.env(&mut c).output().expect("acoupi runs")
    }

    fn queues(&self) -> Vec<String> {
        ["rec", "det", "def"]
            .iter()
            .map(|s| format!("{}-{s}", self.prefix))
            .collect()
    }
}

/// The entries of `dir`, sorted.
fn entries(dir: &camino::Utf8Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether `pid` runs in a user namespace other than this process's (`PrivateUsers=`).
fn own_user_namespace(pid: &str) -> bool {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/user")).ok();
    ns(pid).is_some() && ns(pid) != ns("self")
}

/// `acoupi deploy` of `w` under the manager `m`, which must succeed; the program's services
/// and its target.
fn deploy(w: &World, m: &UserManager) -> Vec<String> {
    let mut units = w.services();
    units.push("acoupi.target".to_owned());
    let out = w.real(m, &["deploy"]);
    assert_eq!(
        code(&out),
        0,
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        m.diagnose(&units)
    );
    units
}

#[test]
fn real_user_systemd_deploys_and_stops() {
    let m = private_manager();
    let runtime = std::fs::metadata(m.runtime_dir()).expect("runtime dir");
    assert_eq!(runtime.permissions().mode() & 0o7777, 0o700);
    let w = World::new();
    let services = w.services();
    // Deploy: the units are linked into the private unit directory, enabled and started.
    let units = deploy(&w, &m);
    let mut expected = units.clone();
    expected.push("default.target.wants".to_owned());
    expected.sort();
    assert_eq!(entries(&m.unit_dir()), expected);
    for u in &units {
        let target = std::fs::read_link(m.unit_dir().join(u)).expect("a link");
        assert_eq!(target, w.home.join("units").join(u).as_std_path());
    }
    assert_eq!(
        entries(&m.unit_dir().join("default.target.wants")),
        ["acoupi.target"]
    );
    // The real user unit directory is left alone.
    if let Some(home) = std::env::var_os("HOME") {
        let real = std::path::Path::new(&home).join(".config/systemd/user");
        for u in &units {
            let link = std::fs::read_link(real.join(u)).ok();
            assert!(
                link.is_none_or(|l| !l.starts_with(&w.home)),
                "{u} linked in {}",
                real.display()
            );
        }
    }
    assert_eq!(m.property("acoupi.target", "UnitFileState"), "enabled");
    assert_eq!(
        m.property("acoupi.target", "ActiveState"),
        "active",
        "{}",
        m.diagnose(&units)
    );
    for s in &services {
        let state = (m.property(s, "ActiveState"), m.property(s, "SubState"));
        assert_eq!(
            state,
            ("active".to_owned(), "running".to_owned()),
            "{s}\n{}",
            m.diagnose(&units)
        );
        // The full sandbox is in force: the main process has a user namespace of its own.
        assert_eq!(m.property(s, "PrivateUsers"), "yes", "{s}");
        assert_eq!(m.property(s, "ProtectSystem"), "strict", "{s}");
        let pid = m.property(s, "MainPID");
        assert!(own_user_namespace(&pid), "{s} (pid {pid}) is not sandboxed");
    }

    // Status: healthy once every worker consumes.
    let report = assert_healthy(&w, &m, &units);
    assert_eq!(report["sandbox"], "full");

    // Stop: the units stop, are disabled and unlinked; the deployment ends.
    let out = w.real(&m, &["stop", "--purge"]);
    assert_eq!(
        code(&out),
        0,
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        m.diagnose(&units)
    );
    for u in &units {
        assert_eq!(m.property(u, "ActiveState"), "inactive", "{u}");
        assert_eq!(m.property(u, "LoadState"), "not-found", "{u}");
    }
    let enabled = m.systemctl(&["is-enabled", "acoupi.target"]);
    assert!(!enabled.status.success(), "{enabled:?}");
    assert_eq!(entries(&m.unit_dir()), Vec::<String>::new());
    assert!(w.deployment().expect("ended")["ended_on"].is_string());
    assert_consumers_and_delete_queues(&w, 0);
    let out = w.real(&m, &["status", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["sandbox"], Value::Null);
}

/// Waits until `acoupi status` says healthy (every worker consuming), and checks each queue
/// has its consumer on the broker; returns the report.
fn assert_healthy(w: &World, m: &UserManager, units: &[String]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, report) = loop {
        let out = w.real(m, &["status", "--format", "json"]);
        let report: Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        if report["health"] == "healthy" || Instant::now() >= deadline {
            break (code(&out), report);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(status, 0, "{report:#}\n{}", m.diagnose(units));
    assert_eq!(report["health"], "healthy");
    for worker in report["workers"].as_array().expect("workers") {
        assert_eq!(worker["state"], "consuming", "{report:#}");
    }
    let queues = w.queues();
    with_broker(async |broker| {
        for q in &queues {
            assert_eq!(broker.consumers(q).await.expect("consumers"), 1, "{q}");
        }
        broker.close().await;
    });
    report
}

/// Checks each of the test's queues has `consumers` consumers, then deletes them.
fn assert_consumers_and_delete_queues(w: &World, consumers: u32) {
    let queues = w.queues();
    with_broker(async |broker| {
        for q in &queues {
            let n = broker.consumers(q).await.expect("consumers");
            assert_eq!(n, consumers, "{q}");
        }
        for q in &queues {
            let _ = broker.delete(q).await;
            let _ = broker.delete(&format!("{q}.dead-letter")).await;
        }
        broker.close().await;
    });
}

/// On a `host` that cannot set up the full sandbox, deploy fails at once naming the exit
/// status and the remedy, leaving nothing behind; `--sandbox reduced` then deploys, the
/// workers consume, and stop removes the drop-ins with the links.
fn full_fails_reduced_runs(host: Host, exit_status: &str) {
    let m = UserManager::start_on(host).unwrap_or_else(|why| {
        panic!("cannot start a private systemd user manager for this test: {why}")
    });
    let w = World::new();
    let services = w.services();
    let mut units = services.clone();
    units.push("acoupi.target".to_owned());

    let out = w.real(&m, &["deploy"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "failed to start, exit status {exit_status}: systemd could not set up its sandbox"
        )) && err.contains("`acoupi deploy --sandbox reduced`")
            && err.contains("undone: units stopped"),
        "{err}"
    );
    assert_eq!(entries(&m.unit_dir()), Vec::<String>::new());
    assert!(w.deployment().is_none());

    let out = w.real(&m, &["deploy", "--sandbox", "reduced"]);
    assert_eq!(
        code(&out),
        0,
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        m.diagnose(&units)
    );
    assert!(
        stdout(&out).contains("sandbox: reduced"),
        "{}",
        stdout(&out)
    );
    let manager_mounts = std::fs::read_link(format!("/proc/{}/ns/mnt", m.pid())).expect("ns");
    for s in &services {
        let drop_in = m.unit_dir().join(format!("{s}.d/acoupi-sandbox.conf"));
        assert!(drop_in.is_file(), "{drop_in}");
        for option in ["PrivateUsers", "ProtectSystem", "PrivateMounts"] {
            assert_eq!(m.property(s, option), "no", "{s} {option}");
        }
        assert_eq!(m.property(s, "ReadWritePaths"), "", "{s}");
        assert_eq!(m.property(s, "NoNewPrivileges"), "yes", "{s}");
        assert_eq!(
            m.property(s, "SubState"),
            "running",
            "{}",
            m.diagnose(&units)
        );
        // No mount namespace of its own: the reduced sandbox needs none.
        let pid = m.property(s, "MainPID");
        let mounts = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("ns");
        assert_eq!(mounts, manager_mounts, "{s}");
    }
    let report = assert_healthy(&w, &m, &units);
    assert_eq!(report["sandbox"], "reduced");
    let text = stdout(&w.real(&m, &["status"]));
    assert!(text.contains("sandbox      reduced: "), "{text}");

    let out = w.real(&m, &["stop", "--purge"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("removed 3 reduced-sandbox drop-ins"),
        "{}",
        stdout(&out)
    );
    assert_eq!(entries(&m.unit_dir()), Vec::<String>::new());
    assert_consumers_and_delete_queues(&w, 0);
}

#[test]
fn without_user_namespaces_deploy_explains_and_the_reduced_sandbox_runs() {
    full_fails_reduced_runs(
        Host {
            user_namespaces: false,
            inaccessible_nodes: true,
        },
        "217/USER",
    );
}

#[test]
fn without_a_mount_namespace_deploy_explains_and_the_reduced_sandbox_runs() {
    full_fails_reduced_runs(
        Host {
            user_namespaces: true,
            inaccessible_nodes: false,
        },
        "226/NAMESPACE",
    );
}

/// `acoupi config set` on a deployed home under a real systemd: the edit restarts only the
/// worker that reads what changed, which then runs the new build; an edit whose units cannot
/// start (a storage path under `/proc`, which their `ExecStartPre=` cannot create) is rolled
/// back to the previous build, and the old units run again.
#[test]
fn real_user_systemd_applies_an_edit_and_rolls_a_failing_one_back() {
    let m = private_manager();
    let w = World::new();
    let services = w.services();
    let units = deploy(&w, &m);
    assert_healthy(&w, &m, &units);
    let pids = |m: &UserManager| -> Vec<String> {
        services.iter().map(|s| m.property(s, "MainPID")).collect()
    };
    let current = |w: &World| {
        std::fs::read_link(w.home.join(".current"))
            .expect("link")
            .to_string_lossy()
            .into_owned()
    };
    let before = pids(&m);

    // Only `rest` runs the detector.
    let out = w.real(&m, &["config", "set", "detector.bats.threshold", "0.7"]);
    assert_eq!(
        code(&out),
        0,
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        m.diagnose(&units)
    );
    assert!(
        stderr(&out).contains("restarted `acoupi-worker-rest.service`"),
        "{}",
        stderr(&out)
    );
    // Shown with `--nocapture`: what the user sees.
    eprintln!(
        "$ acoupi config set detector.bats.threshold 0.7\n{}",
        stderr(&out)
    );
    let after = pids(&m);
    assert_eq!(after[0], before[0], "rec was restarted");
    assert_ne!(after[1], before[1], "rest was not restarted");
    assert_eq!(after[2], before[2], "beat was restarted");
    let report = assert_healthy(&w, &m, &units);
    // The restarted worker runs the new build, and so, in effect, do the others: nothing
    // they read changed, so their record moved on with the home and status is healthy.
    let built = current(&w);
    assert_eq!(report["built"], built.as_str());
    let builds = |report: &Value| -> Vec<Value> {
        report["units"]
            .as_array()
            .expect("units")
            .iter()
            .filter(|u| u["unit"] != "acoupi.target")
            .map(|u| u["build"].clone())
            .collect()
    };
    assert_eq!(builds(&report), vec![Value::from(built.as_str()); 3]);
    let out = w.real(&m, &["config", "show", "detectors.0.kind.threshold"]);
    assert_eq!(stdout(&out), "0.7\n");

    // A storage path no unit can create: every unit restarts, fails, and the home goes back.
    let manifest = std::fs::read(&w.manifest).expect("manifest");
    let before = pids(&m);
    let out = w.real(
        &m,
        &[
            "config",
            "set",
            "paths.metadata",
            "/proc/acoupi-test/metadata.db",
        ],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    eprintln!("$ acoupi config set paths.metadata /proc/acoupi-test/metadata.db\n{err}");
    assert!(
        err.contains("the home was switched back to its previous build")
            && !err.contains("part of the way back failed")
            && err.contains("was restored as it was before the edit"),
        "{err}\n{}",
        m.diagnose(&units)
    );
    assert_eq!(current(&w), built);
    assert_eq!(std::fs::read(&w.manifest).expect("manifest"), manifest);
    let report = assert_healthy(&w, &m, &units);
    assert_eq!(builds(&report), vec![Value::from(built.as_str()); 3]);
    for (s, pid) in services.iter().zip(before) {
        assert_ne!(m.property(s, "MainPID"), pid, "{s} was not restarted");
        assert_eq!(m.property(s, "SubState"), "running", "{s}");
    }
    let out = w.real(&m, &["stop", "--purge"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_consumers_and_delete_queues(&w, 0);
}
