//! `acoupi deploy --replace-python-acoupi` with the recording `systemctl` stub: the Python
//! acoupi's units, written by acoupi 0.8.0's own `install_services`, are stopped, disabled and
//! set aside after confirmation, then ours are deployed; a failed deploy puts them back.

use std::io::Write as _;
use std::process::Stdio;

use super::*;

const PYTHON_UNITS: [&str; 2] = ["acoupi.service", "acoupi-beat.service"];

/// Writes a Python acoupi home and its units (into the world's unit directory) with acoupi's
/// own code.
fn install_python_acoupi(w: &World) {
    let user = w.root.join("python user");
    std::fs::create_dir_all(&user).expect("python user");
    let spec = serde_json::json!({
        "program": "default",
        "config": {"microphone": {"device_name": "default"}},
        "unit_dir": w.unit_dir(),
    });
    common::acoupi_script_env(
        "python_home.py",
        &[&spec.to_string()],
        &[("HOME", user.as_str())],
    );
    for unit in PYTHON_UNITS {
        assert!(w.unit_dir().join(unit).is_file(), "acoupi wrote {unit}");
    }
}

fn set_aside(w: &World) -> Utf8PathBuf {
    w.unit_dir().join("python-acoupi")
}

#[test]
fn the_python_units_are_stopped_disabled_and_set_aside_then_ours_deploy() {
    let w = World::new();
    install_python_acoupi(&w);
    let beat = std::fs::read_to_string(w.unit_dir().join("acoupi-beat.service")).expect("unit");

    // Without the flag, the original's beat unit holds our unit's name: refused.
    let out = w.run(&["deploy"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("acoupi-beat.service` exists and is not a link to this home's unit")
            && stderr(&out).contains(
                "it is the Python acoupi's unit; `acoupi deploy --replace-python-acoupi` stops it"
            ),
        "{}",
        stderr(&out)
    );

    w.clear_calls();
    let out = w.run(&["deploy", "--replace-python-acoupi", "--yes"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("will be stopped, disabled and moved to")
            && text.contains("  acoupi.service           inactive")
            && text.contains("stopped and disabled the Python acoupi"),
        "{text}"
    );
    let calls = w.calls("systemctl");
    let mut expected = vec![
        show("acoupi.service"),
        show("acoupi-beat.service"),
        // The deploy's own refusals run before anything is touched, and again in deploy.
        show("acoupi.target"),
        sc(&["stop", "acoupi.service", "acoupi-beat.service"]),
        sc(&["disable", "acoupi.service"]),
        sc(&["disable", "acoupi-beat.service"]),
        sc(&["daemon-reload"]),
        show("acoupi.target"),
        sc(&["daemon-reload"]),
        sc(&["enable", "acoupi.target"]),
        sc(&["start", "--no-block", "acoupi.target"]),
    ];
    expected.extend(w.services().iter().map(|u| show(u)));
    assert_eq!(calls, expected);
    // The original's files are kept, byte for byte, where systemd does not read them.
    assert_eq!(
        std::fs::read_to_string(set_aside(&w).join("acoupi-beat.service")).expect("kept"),
        beat
    );
    assert!(set_aside(&w).join("acoupi.service").is_file());
    let link = std::fs::read_link(w.unit_dir().join("acoupi-beat.service")).expect("ours");
    assert_eq!(link, w.home.join("units/acoupi-beat.service").as_std_path());
    assert!(!w.unit_dir().join("acoupi.service").exists());
    assert!(w.deployment().is_some());
}

#[test]
fn declining_or_a_closed_stdin_changes_nothing() {
    let w = World::new();
    install_python_acoupi(&w);
    let mut child = w
        .cmd(&["deploy", "--replace-python-acoupi"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"n\n")
        .expect("answer");
    let out = child.wait_with_output().expect("ends");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("[y/N]") && stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );

    let out = w
        .cmd(&["deploy", "--replace-python-acoupi"])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("pass `--yes`"), "{}", stderr(&out));

    // Only looked at: nothing stopped, disabled or moved.
    for call in w.calls("systemctl") {
        assert_eq!(call[1], "show", "{call:?}");
    }
    for unit in PYTHON_UNITS {
        assert!(w.unit_dir().join(unit).is_file());
    }
    assert!(!set_aside(&w).exists());
}

#[test]
fn a_failed_deploy_puts_the_python_units_back() {
    let w = World::new();
    install_python_acoupi(&w);
    let out = w
        .cmd(&["deploy", "--replace-python-acoupi", "--yes"])
        .env("ACOUPI_STUB_FAILING_UNIT", "acoupi-beat.service")
        .env("ACOUPI_JOURNALCTL", w.root.join("no-journalctl"))
        .output()
        .expect("runs");
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("failed to start")
            && err
                .contains("the Python acoupi's units were put back, enabled and started as before"),
        "{err}"
    );
    let calls = w.calls("systemctl");
    // After our deploy is undone: the originals are reloaded and enabled again (they were
    // not running, so not started).
    assert_eq!(
        calls[calls.len() - 3..].to_vec(),
        vec![
            sc(&["daemon-reload"]),
            sc(&["enable", "acoupi.service"]),
            sc(&["enable", "acoupi-beat.service"]),
        ]
    );
    for unit in PYTHON_UNITS {
        assert!(w.unit_dir().join(unit).is_file(), "{unit} is back");
    }
    assert!(!set_aside(&w).exists());
    assert!(w.deployment().is_none());
}
