//! What `acoupi build` emits is safe and valid for the tools that read it: the scripts pass
//! `shellcheck`, the units pass `systemd-analyze verify` with no output, and hostile strings
//! in the manifest or the home path stay literal when the scripts and env file are run (a
//! stub binary and a stub `systemctl` record the argv they receive).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use acoupi::compile;
use acoupi::plan::BuildContext;
use camino::{Utf8Path, Utf8PathBuf};
use common::tempdir;

/// Builds `manifest` into `home` with `exe` as the launcher's target.
fn build(manifest: &str, home: &Utf8Path, exe: &Utf8Path) {
    let source = compile::from_bytes(
        "acoupi.kdl",
        "/src/acoupi.kdl".into(),
        manifest.as_bytes().to_vec(),
    );
    let ctx = BuildContext {
        home: home.to_owned(),
        exe: exe.to_owned(),
        source_path: "/src/acoupi.kdl".into(),
    };
    let built = compile::build(&source, &ctx).unwrap_or_else(|e| panic!("build failed: {e:?}"));
    acoupi::home::write(&built.tree, home).expect("home written");
}

fn files_in(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out: Vec<Utf8PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| Utf8PathBuf::from_path_buf(e.expect("entry").path()).expect("utf-8"))
        .collect();
    out.sort();
    out
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .expect("sh runs");
    assert!(
        found.status.success(),
        "`{tool}` is required by this test and is not installed; scripts/test installs it (apt-get install {tool})"
    );
}

/// A stub executable that appends each argument, NUL-separated, to `log`.
fn stub(dir: &Utf8Path, name: &str, log: &Utf8Path) -> Utf8PathBuf {
    let path = dir.join(name);
    let q = log.as_str().replace('\'', r"'\''");
    std::fs::write(&path, format!("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\" >> '{q}'; done\nprintf '\\n\\0' >> '{q}'\n"))
        .expect("write stub");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod stub");
    path
}

/// The argv lists a stub recorded, one per call.
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

const HOSTILE_NAME: &str = r#"$(touch pwned) `touch pwned2` 'q' "dq" 100% \ end
second line"#;

fn hostile_manifest() -> String {
    let escaped = HOSTILE_NAME
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!(
        "program \"{escaped}\"\nmicrophone \"m\" {{ synthetic \"sweep\"; samplerate \"192kHz\" }}\ndetector \"bats\" kind=\"band-energy\" {{ band low=\"20kHz\" high=\"90kHz\" }}\n"
    )
}

#[test]
fn scripts_pass_shellcheck() {
    require("shellcheck");
    for example in ["default", "connected", "detection", "quickstart"] {
        let (_d, dir) = tempdir();
        let home = dir.join("home");
        let text = std::fs::read_to_string(format!("examples/{example}.kdl")).expect("example");
        build(&text, &home, "/usr/local/bin/acoupi".into());
        let scripts = files_in(&home.join("bin"));
        assert_eq!(scripts.len(), 5);
        let out = Command::new("shellcheck")
            .args(&scripts)
            .output()
            .expect("shellcheck runs");
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn verify_units(home: &Utf8Path) {
    require("systemd-analyze");
    let runtime = tempfile::tempdir().expect("runtime dir");
    let units = files_in(&home.join("units"));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--user")
        .args(&units)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("HOME", home.as_str())
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty() && out.stdout.is_empty(),
        "{home}: {stderr}"
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    for example in ["default", "connected", "detection", "quickstart"] {
        let (_d, dir) = tempdir();
        let home = dir.join("home");
        let text = std::fs::read_to_string(format!("examples/{example}.kdl")).expect("example");
        build(&text, &home, "/usr/local/bin/acoupi".into());
        verify_units(&home);
    }
}

/// The `systemd-analyze security --user --offline=true` exposure of each service unit of
/// `home`: unit name and score (0 safe to 10 exposed).
fn exposure(home: &Utf8Path) -> Vec<(String, f64)> {
    require("systemd-analyze");
    let runtime = tempfile::tempdir().expect("runtime dir");
    let mut out = Vec::new();
    for unit in files_in(&home.join("units")) {
        if unit.extension() != Some("service") {
            continue;
        }
        let run = Command::new("systemd-analyze")
            .args(["security", "--user", "--offline=true", "--no-pager"])
            .arg(&unit)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HOME", home.as_str())
            .output()
            .expect("systemd-analyze runs");
        let stdout = String::from_utf8_lossy(&run.stdout);
        let line = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level for"))
            .unwrap_or_else(|| {
                panic!(
                    "{unit}: no exposure level in\n{stdout}{}",
                    String::from_utf8_lossy(&run.stderr)
                )
            });
        let score: f64 = line
            .rsplit(": ")
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: cannot read the score in {line:?}"));
        out.push((unit.file_name().expect("name").to_owned(), score));
    }
    out
}

#[test]
fn units_score_ok_in_systemd_analyze_security() {
    // The examples' storage paths (outside the home, /run/shm staging) and a home under
    // /tmp, which turns PrivateTmp= off.
    for example in ["default", "connected", "detection", "quickstart"] {
        let (_d, dir) = tempdir();
        let home = dir.join("home");
        let text = std::fs::read_to_string(format!("examples/{example}.kdl")).expect("example");
        build(&text, &home, "/usr/local/bin/acoupi".into());
        let scores = exposure(&home);
        assert!(!scores.is_empty());
        for (unit, score) in scores {
            println!("{example}: {unit} exposure {score}");
            assert!(
                score <= 3.0,
                "{example}: {unit} scores {score}, above 3.0 (\"OK\")"
            );
        }
    }
}

#[test]
fn the_recording_unit_keeps_the_sound_devices_and_the_others_do_not() {
    let (_d, dir) = tempdir();
    let home = dir.join("home");
    let text = std::fs::read_to_string("examples/detection.kdl").expect("example");
    build(&text, &home, "/usr/local/bin/acoupi".into());
    let unit = |name: &str| std::fs::read_to_string(home.join("units").join(name)).expect("unit");
    let recording = unit("acoupi-worker-recording.service");
    assert!(
        recording.contains("\nDeviceAllow=char-alsa rw\n"),
        "{recording}"
    );
    assert!(!recording.contains("PrivateDevices=yes"), "{recording}");
    for other in ["acoupi-worker-detection.service", "acoupi-beat.service"] {
        let text = unit(other);
        assert!(text.contains("\nPrivateDevices=yes\n"), "{other}: {text}");
        assert!(!text.contains("char-alsa"), "{other}: {text}");
    }
    // Exactly the home and the storage directories are writable; they exist before the
    // sandbox is set up.
    let rw = format!(
        "\nReadWritePaths=\"{home}\" \"/run/shm/acoupi\" \"/home/pi/storage/recordings\" \"/home/pi/storage\"\n"
    );
    assert!(recording.contains(&rw), "{recording}");
    assert!(recording.contains(
        "\nExecStartPre=+/bin/mkdir -p -- \"/run/shm/acoupi\" \"/home/pi/storage/recordings\" \"/home/pi/storage\"\n"
    ), "{recording}");
    // A home under /tmp: a private /tmp would hide it.
    assert!(recording.contains("\nPrivateTmp=no\n"), "{recording}");
}

#[test]
fn hostile_strings_stay_literal() {
    let (_d, dir) = tempdir();
    let home = dir.join("a home with 'quotes' \"dq\" $HOME %h $(touch pwned)");
    let log = dir.join("argv.log");
    let exe = stub(&dir, "fake acoupi $(touch pwned)", &log);
    build(&hostile_manifest(), &home, &exe);
    let work = dir.join("cwd");
    std::fs::create_dir(&work).expect("cwd");

    // The launcher passes the home and every argument through untouched.
    let status = Command::new(home.join("bin/acoupi"))
        .args(["check", "x y", "$(touch pwned)"])
        .current_dir(&work)
        .status()
        .expect("launcher runs");
    assert!(status.success());
    let beat = Command::new(home.join("bin/acoupi-beat.sh"))
        .current_dir(&work)
        .status()
        .expect("beat script runs");
    assert!(beat.success());
    assert_eq!(
        calls(&log),
        vec![
            vec![
                "--home".to_owned(),
                home.to_string(),
                "check".into(),
                "x y".into(),
                "$(touch pwned)".into()
            ],
            vec!["--home".to_owned(), home.to_string(), "beat".into()],
        ]
    );

    // The worker scripts drive systemctl with exactly the unit names.
    let bin = dir.join("stub-bin");
    std::fs::create_dir(&bin).expect("stub bin");
    let sysctl_log = dir.join("systemctl.log");
    stub(&bin, "systemctl", &sysctl_log);
    for action in ["start", "stop", "restart"] {
        let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
        let ok = Command::new(home.join(format!("bin/acoupi-workers-{action}.sh")))
            .env("PATH", path)
            .current_dir(&work)
            .status()
            .expect("worker script runs");
        assert!(ok.success());
    }
    let expected = |action: &str| {
        let mut argv = vec!["--user".to_owned()];
        if action != "stop" {
            argv.push("--no-block".to_owned());
        }
        argv.push(action.to_owned());
        for w in ["recording", "detection", "default"] {
            argv.push(format!("acoupi-worker-{w}.service"));
        }
        argv
    };
    assert_eq!(
        calls(&sysctl_log),
        vec![expected("start"), expected("stop"), expected("restart")]
    );

    // The env file reads back exactly, in sh as in systemd.
    let out = Command::new("sh")
        .args([
            "-c",
            "set -a; . \"$1\"; printf '%s' \"$ACOUPI_HOME\"",
            "sh",
            home.join("config/env").as_str(),
        ])
        .current_dir(&work)
        .output()
        .expect("sh runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), home.as_str());

    // The program name sits in the units' descriptions without breaking them.
    let unit = std::fs::read_to_string(home.join("units/acoupi-beat.service")).expect("unit");
    assert_eq!(
        unit.lines()
            .filter(|l| l.starts_with("Description="))
            .count(),
        1
    );
    assert!(unit.contains("100%% \\\\ end\\nsecond line"), "{unit}");
    verify_units(&home);
    for (unit, score) in exposure(&home) {
        assert!(score <= 3.0, "{unit} scores {score}");
    }

    // Nothing was executed along the way.
    for d in [&dir, &work, &home] {
        for f in ["pwned", "pwned2"] {
            assert!(!d.join(f).exists(), "{f} created in {d}");
        }
    }
}
