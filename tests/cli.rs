//! The `check` and `build` commands as a user runs them: exit codes, output formats, the home
//! they write, and what happens on bad input.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{code, run, snapshot_dir, stderr, stdout, tempdir, write};

const VALID: &str =
    "program \"p\"\nmicrophone \"m\" { synthetic \"sweep\"; samplerate \"192kHz\" }\n";

#[test]
fn check_exit_codes() {
    let (_d, dir) = tempdir();
    let valid = write(&dir, "valid.kdl", VALID);
    let invalid = write(
        &dir,
        "invalid.kdl",
        "program \"p\"\nmicrophone \"m\" { device \"x\"; channels 0 }\n",
    );
    let empty = write(&dir, "empty.kdl", "");
    let binary = write(&dir, "binary.kdl", b"program \"p\xff\xfe\"\n");
    assert_eq!(code(&run(&["check", valid.as_str()])), 0);
    let out = run(&["check", invalid.as_str()]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("model::out_of_range"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("invalid.kdl:2:"), "{}", stderr(&out));
    let out = run(&["check", empty.as_str()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("manifest::missing_node"));
    let out = run(&["check", binary.as_str()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not valid UTF-8"), "{}", stderr(&out));
    let out = run(&["check", dir.join("missing.kdl").as_str()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing.kdl"), "{}", stderr(&out));
    let out = run(&["check", dir.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

#[test]
fn check_reports_every_problem_at_once() {
    let (_d, dir) = tempdir();
    let path = write(
        &dir,
        "many.kdl",
        "program \"p\" { timezone \"Mars/Base\" }\nmicrophone \"m\" { device \"x\"; samplerte \"48kHz\" }\nrecording { duration \"20s\"; interval \"10s\" }\n",
    );
    let out = run(&["check", "--format", "json", path.as_str()]);
    assert_eq!(code(&out), 1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let codes: Vec<&str> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "model::unknown_timezone",
            "manifest::unknown_node",
            "model::duration_exceeds_interval"
        ]
    );
    let typo = &doc["diagnostics"][1];
    assert_eq!(
        (typo["line"].as_u64(), typo["column"].as_u64()),
        (Some(2), Some(30))
    );
    assert_eq!(
        typo["help"]
            .as_str()
            .map(|h| h.starts_with("did you mean `samplerate`?")),
        Some(true)
    );
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["errors"], 3);
}

#[test]
fn github_annotations() {
    let (_d, dir) = tempdir();
    let path = write(
        &dir,
        "gh.kdl",
        "program \"p\"\nmicrophone \"m\" { device \"x\"; channels 0 }\n",
    );
    let out = run(&["check", "--format", "github", path.as_str()]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "::error file={},line=2,col=",
            path.as_str().replace(':', "%3A")
        )),
        "{text}"
    );
    assert!(text.contains("title=model%3A%3Aout_of_range::"), "{text}");
}

#[test]
fn deny_warnings_fails_on_plaintext_secrets() {
    let (_d, dir) = tempdir();
    let path = write(
        &dir,
        "secret.kdl",
        format!("{VALID}broker \"amqp://u:pw@127.0.0.1/%2f\"\n"),
    );
    let out = run(&["check", path.as_str()]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("model::plaintext_secret"));
    assert_eq!(
        code(&run(&["check", "--deny", "warnings", path.as_str()])),
        1
    );
}

#[test]
fn build_writes_a_private_home_and_is_reproducible() {
    let (_d, dir) = tempdir();
    let manifest = write(&dir, "acoupi.kdl", VALID);
    let home = dir.join("home");
    let out = run(&["build", manifest.as_str(), "--home", home.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mode = |p: &str| {
        std::fs::metadata(home.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("."), 0o700);
    assert_eq!(mode("config/env"), 0o600);
    assert_eq!(mode("config/program.json"), 0o600);
    assert_eq!(mode("acoupi.kdl"), 0o600);
    assert_eq!(mode("bin/acoupi"), 0o755);
    let first = snapshot_dir(home.as_std_path());
    let out = run(&["build", manifest.as_str(), "--home", home.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        first,
        snapshot_dir(home.as_std_path()),
        "a rebuild changed the home"
    );
    // The lock records every file's hash.
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("build.lock")).unwrap()).unwrap();
    assert_eq!(lock["files"].as_object().unwrap().len(), first.len() - 1);
    // No staging directory is left next to the home.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("acoupi-stage"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn runtime_state_survives_a_rebuild() {
    let (_d, dir) = tempdir();
    let manifest = write(&dir, "acoupi.kdl", VALID);
    let home = dir.join("home");
    assert_eq!(
        code(&run(&["build", manifest.as_str(), "--home", home.as_str()])),
        0
    );
    write(&home, "log/recording.log", "line 1\n");
    write(&home, "state/beat.json", "{\"record\": 42}");
    write(&home, "config/deployment.json", "{\"id\": \"x\"}");
    write(&home, "config/secrets.env", "ACOUPI_BROKER_PASSWORD=pw\n");
    std::fs::create_dir_all(home.join("run/nested")).unwrap();
    write(&home, "run/nested/worker.pid", "123");
    std::fs::write(
        &manifest,
        format!("{VALID}recording {{ duration \"5s\" }}\n"),
    )
    .unwrap();
    assert_eq!(
        code(&run(&["build", manifest.as_str(), "--home", home.as_str()])),
        0
    );
    let read = |p: &str| std::fs::read_to_string(home.join(p)).unwrap();
    assert_eq!(read("log/recording.log"), "line 1\n");
    assert_eq!(read("state/beat.json"), "{\"record\": 42}");
    assert_eq!(read("config/deployment.json"), "{\"id\": \"x\"}");
    assert_eq!(read("config/secrets.env"), "ACOUPI_BROKER_PASSWORD=pw\n");
    assert_eq!(read("run/nested/worker.pid"), "123");
    assert!(read("config/program.json").contains("\"duration_ms\": 5000"));
}

#[test]
fn failed_build_leaves_the_previous_home_intact() {
    let (_d, dir) = tempdir();
    let manifest = write(&dir, "acoupi.kdl", VALID);
    let home = dir.join("home");
    assert_eq!(
        code(&run(&["build", manifest.as_str(), "--home", home.as_str()])),
        0
    );
    let before = snapshot_dir(home.as_std_path());
    std::fs::write(
        &manifest,
        "program \"p\"\nmicrophone \"m\" { channels 99 }\n",
    )
    .unwrap();
    assert_eq!(
        code(&run(&["build", manifest.as_str(), "--home", home.as_str()])),
        1
    );
    assert_eq!(before, snapshot_dir(home.as_std_path()));
}

#[test]
fn build_refuses_a_directory_that_is_not_a_home() {
    let (_d, dir) = tempdir();
    let manifest = write(&dir, "acoupi.kdl", VALID);
    let other = dir.join("photos");
    std::fs::create_dir(&other).unwrap();
    write(&other, "cat.jpg", "meow");
    let out = run(&["build", manifest.as_str(), "--home", other.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("not an acoupi home"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(other.join("cat.jpg")).unwrap(),
        "meow"
    );
}

#[test]
fn build_check_and_stdout() {
    let (_d, dir) = tempdir();
    let manifest = write(&dir, "acoupi.kdl", VALID);
    let home = dir.join("home");
    let out = run(&[
        "build",
        manifest.as_str(),
        "--home",
        home.as_str(),
        "--stdout",
    ]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("==> config/program.json (mode 0600) <=="));
    assert!(!home.exists(), "--stdout must not write");
    let out = run(&[
        "build",
        manifest.as_str(),
        "--home",
        home.as_str(),
        "--check",
    ]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("missing: config/program.json"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        code(&run(&["build", manifest.as_str(), "--home", home.as_str()])),
        0
    );
    assert_eq!(
        code(&run(&[
            "build",
            manifest.as_str(),
            "--home",
            home.as_str(),
            "--check"
        ])),
        0
    );
    write(&home, "units/acoupi.target", "tampered");
    let out = run(&[
        "build",
        manifest.as_str(),
        "--home",
        home.as_str(),
        "--check",
    ]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("changed: units/acoupi.target"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn home_defaults_to_acoupi_home_then_home() {
    let (_d, dir) = tempdir();
    let manifest = write(&dir, "acoupi.kdl", VALID);
    let out = common::acoupi()
        .args(["build", manifest.as_str()])
        .env("ACOUPI_HOME", dir.join("from-env"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(dir.join("from-env/config/program.json").exists());
    let out = common::acoupi()
        .args(["build", manifest.as_str()])
        .env("HOME", dir.join("user"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let program = std::fs::read_to_string(dir.join("user/.acoupi/config/program.json")).unwrap();
    assert!(program.contains(&format!("\"home\": \"{}\"", dir.join("user/.acoupi"))));
}

#[test]
fn huge_manifests_are_answered_not_crashed() {
    let (_d, dir) = tempdir();
    // Just under the 1 MiB limit, valid KDL: many comment lines and windows.
    let mut text = String::from(VALID);
    text.push_str("recording {\n");
    let line =
        "    window from=\"21:00\" to=\"06:00\" // a comment that pads the line to a decent size\n";
    while text.len() + line.len() < 1024 * 1024 - 2 {
        text.push_str(line);
    }
    text.push_str("}\n");
    let big = write(&dir, "big.kdl", &text);
    let out = run(&["check", big.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let too_big = write(&dir, "too-big.kdl", vec![b'/'; 1024 * 1024 + 1]);
    let out = run(&["check", too_big.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("is 1048577 bytes; manifests are limited to 1MiB"),
        "{}",
        stderr(&out)
    );
    // A device has no size up front: reading stops at the limit.
    let out = run(&["check", "/dev/zero"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("holds more than 1048576 bytes"),
        "{}",
        stderr(&out)
    );
}
