//! A rebuild of a deployed home (`acoupi build`, `acoupi config set`) against the recording
//! `systemctl` stub: only the units whose spec changed are restarted, `--no-apply` leaves
//! them, an unchanged rebuild restarts nothing, a unit that fails to come up switches the
//! home back to its previous build, restarts the old units and restores the manifest, and
//! `acoupi status` says when a unit runs another build than the one built.

use super::{World, sc, show, status_json};
use crate::common::{code, stderr};

impl World {
    /// The build `.current` points at.
    fn current(&self) -> String {
        std::fs::read_link(self.home.join(".current"))
            .expect(".current is a link")
            .to_string_lossy()
            .into_owned()
    }

    fn threshold(&self) -> String {
        let out = self.run(&["config", "show", "detectors.0.kind.threshold"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

#[test]
fn a_rebuild_restarts_only_the_units_whose_spec_changed() {
    let w = World::new();
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // The detector is read by `rest` (detect, manage-files) only.
    w.clear_calls();
    let out = w.run(&["config", "set", "detector.bats.threshold", "0.7"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("restarted `acoupi-worker-rest.service`: its spec changed (`detectors`)"),
        "{err}"
    );
    assert_eq!(
        w.calls("systemctl"),
        vec![
            sc(&["restart", "--no-block", "acoupi-worker-rest.service"]),
            show("acoupi-worker-rest.service"),
        ]
    );
    assert_eq!(w.threshold(), "0.7");

    // The same build again: nothing to restart.
    w.clear_calls();
    let out = w.run(&["build", w.manifest.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing to restart"),
        "{}",
        stderr(&out)
    );
    assert!(
        w.calls("systemctl").is_empty(),
        "{:?}",
        w.calls("systemctl")
    );

    // `--no-apply`: rebuilt, the units left alone, and told so.
    let out = w.run(&[
        "config",
        "set",
        "detector.bats.threshold",
        "0.8",
        "--no-apply",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("still run the previous build (`--no-apply`)"),
        "{}",
        stderr(&out)
    );
    assert!(
        w.calls("systemctl").is_empty(),
        "{:?}",
        w.calls("systemctl")
    );
    assert_eq!(w.threshold(), "0.8");

    // A change every unit reads (the timezone) restarts every service in one job.
    let out = w.run(&["config", "set", "program.timezone", "Europe/Paris"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut restart = sc(&["restart", "--no-block"]);
    restart.extend(w.services());
    let mut expected = vec![restart];
    expected.extend(w.services().iter().map(|u| show(u)));
    assert_eq!(w.calls("systemctl"), expected);
}

#[test]
fn a_unit_that_fails_after_a_rebuild_switches_the_home_back() {
    let w = World::new();
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let before = w.current();
    let manifest = std::fs::read(&w.manifest).expect("manifest");
    let threshold = w.threshold();

    w.clear_calls();
    let out = w
        .cmd(&["config", "set", "detector.bats.threshold", "0.77"])
        .env("ACOUPI_STUB_FAILING_UNIT", "acoupi-worker-rest.service")
        .env("ACOUPI_STUB_FAIL_IF", "0.77")
        .env("ACOUPI_STUB_HOME", &w.home)
        .output()
        .expect("acoupi runs");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: could not start the changed units: `acoupi-worker-rest.service`"),
        "{err}"
    );
    assert!(
        err.contains("the home was switched back to its previous build")
            && err.contains("and the old units restarted"),
        "{err}"
    );
    assert!(!err.contains("part of the way back failed"), "{err}");
    assert!(
        err.contains("was restored as it was before the edit"),
        "{err}"
    );
    // Restarted on the new build, failed, restarted on the old one, up.
    assert_eq!(
        w.calls("systemctl"),
        vec![
            sc(&["restart", "--no-block", "acoupi-worker-rest.service"]),
            show("acoupi-worker-rest.service"),
            sc(&["restart", "--no-block", "acoupi-worker-rest.service"]),
            show("acoupi-worker-rest.service"),
        ]
    );
    assert_eq!(w.current(), before);
    assert_eq!(w.threshold(), threshold);
    assert_eq!(std::fs::read(&w.manifest).expect("manifest"), manifest);
    // The home is whole: deploy's own check passes, and it is up to date with the manifest.
    let out = w.run(&["build", w.manifest.as_str(), "--check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn status_tells_a_unit_that_runs_another_build() {
    let w = World::new();
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let built = w.current();
    for unit in w.services() {
        std::fs::write(w.home.join("run").join(format!("{unit}.build")), &built).expect("record");
    }
    let (_, report) = status_json(&w);
    assert_eq!(report["built"], built.as_str());
    let problems = report["problems"].to_string();
    assert!(!problems.contains("runs the spec"), "{problems}");

    std::fs::write(
        w.home.join("run/acoupi-worker-rec.service.build"),
        ".build-0123456789abcdef\n",
    )
    .expect("record");
    let (_, report) = status_json(&w);
    let rec = report["units"]
        .as_array()
        .expect("units")
        .iter()
        .find(|u| u["unit"] == "acoupi-worker-rec.service")
        .expect("rec unit")
        .clone();
    assert_eq!(rec["build"], ".build-0123456789abcdef");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(
            "`acoupi-worker-rec.service` runs the spec of build `.build-0123456789abcdef`, not the one built"
        ),
        "{problems}"
    );
}
