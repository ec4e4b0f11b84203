//! `acoupi build` → `deploy` → `status` → `stop` against a real systemd: a private user
//! manager started for the test (`user_manager.rs`), the units sandboxed as generated, the
//! workers consuming from the real RabbitMQ on 127.0.0.1:5672 under queue names unique to the
//! test. Fails, saying why and how to fix it, when the manager cannot start.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::user_manager::UserManager;
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

#[test]
fn real_user_systemd_deploys_and_stops() {
    let m = private_manager();
    let w = World::new();
    let services = w.services();
    let mut units = services.clone();
    units.push("acoupi.target".to_owned());

    // Deploy: the units are linked into the private unit directory, enabled and started.
    let out = w.real(&m, &["deploy"]);
    assert_eq!(
        code(&out),
        0,
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        m.diagnose(&units)
    );
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
    assert_eq!(m.property("acoupi.target", "UnitFileState"), "enabled");
    assert_eq!(
        m.property("acoupi.target", "ActiveState"),
        "active",
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
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
        let pid = m.property(s, "MainPID");
        assert!(own_user_namespace(&pid), "{s} (pid {pid}) is not sandboxed");
    }

    // Status: healthy once every worker consumes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, report) = loop {
        let out = w.real(&m, &["status", "--format", "json"]);
        let report: Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        if report["health"] == "healthy" || Instant::now() >= deadline {
            break (code(&out), report);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(status, 0, "{report:#}\n{}", m.diagnose(&units));
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
    with_broker(async |broker| {
        for q in &queues {
            assert_eq!(broker.consumers(q).await.expect("consumers"), 0, "{q}");
        }
        for q in &queues {
            let _ = broker.delete(q).await;
            let _ = broker.delete(&format!("{q}.dead-letter")).await;
        }
        broker.close().await;
    });
    let out = w.real(&m, &["status", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
}
