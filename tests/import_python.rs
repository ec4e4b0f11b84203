//! `acoupi import` against homes written by the real Python acoupi 0.8.0.
//!
//! `tests/acoupi/python_home.py` writes each home with acoupi's own config schemas,
//! `write_config`, `start_deployment` and `install_services` (acoupi-batdetect2's config from
//! acoupi's sections plus its own fields, as its package needs torch). Each imported manifest
//! is checked and built by the real binary, and the compiled `config/program.json` is read
//! back to see that the schedule, paths, thresholds and messaging carried over. The metadata
//! store acoupi's own `SqliteStore` writes is then read by our `acoupi db` through the
//! imported home. The error cases run the CLI on broken homes.

mod common;

use camino::{Utf8Path, Utf8PathBuf};
use common::{acoupi, code, stderr, stdout, tempdir};
use serde_json::{Value, json};

/// A Python acoupi home written by acoupi 0.8.0 under `root/user/.acoupi`.
struct PythonHome {
    root: Utf8PathBuf,
    dir: Utf8PathBuf,
    user: Utf8PathBuf,
}

fn python_home(root: &Utf8Path, mut spec: Value) -> PythonHome {
    let user = root.join("user");
    std::fs::create_dir_all(&user).expect("user home");
    if let Some(units) = spec.get_mut("unit_dir") {
        *units = Value::from(user.join(units.as_str().expect("a path")).as_str());
    }
    let out = common::acoupi_script_env(
        "python_home.py",
        &[&spec.to_string()],
        &[("HOME", user.as_str())],
    );
    let dir = Utf8PathBuf::from(out["home"].as_str().expect("home"));
    assert_eq!(dir, user.join(".acoupi"));
    PythonHome {
        root: root.to_owned(),
        dir,
        user,
    }
}

/// `acoupi import DIR -o root/acoupi.kdl`, `check` and `build` into `root/home`; the output
/// of import and the compiled program.
fn import_and_build(h: &PythonHome) -> (std::process::Output, String, Value) {
    let manifest = h.root.join("acoupi.kdl");
    let out = acoupi()
        .args(["import", h.dir.as_str(), "--output", manifest.as_str()])
        .env("HOME", &h.user)
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("acoupi import runs");
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(&manifest).expect("manifest written");
    let check = acoupi()
        .args(["check", "--deny", "warnings", manifest.as_str()])
        .output()
        .expect("check runs");
    assert_eq!(code(&check), 0, "{}\n{text}", stderr(&check));
    let home = h.root.join("home");
    let build = acoupi()
        .args(["build", manifest.as_str(), "--home", home.as_str()])
        .output()
        .expect("build runs");
    assert_eq!(code(&build), 0, "{}", stderr(&build));
    let program = std::fs::read_to_string(home.join("config/program.json")).expect("program");
    (
        out,
        text,
        serde_json::from_str(&program).expect("program json"),
    )
}

fn task<'a>(program: &'a Value, name: &str) -> &'a Value {
    program["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task `{name}` in {program}"))
}

fn clock(seconds: u32) -> Value {
    json!({"kind": "clock", "seconds": seconds})
}

#[test]
fn a_default_home_keeps_its_schedule_paths_and_saving_rules_and_its_store_is_read() {
    let (_d, root) = tempdir();
    let storage = root.join("storage");
    let h = python_home(
        &root,
        json!({
            "program": "default",
            "config": {
                "timezone": "Europe/Berlin",
                "microphone": {"device_name": "UltraMic 250K", "samplerate": 256000,
                               "audio_channels": 1, "time_expansion": 10.0},
                "recording": {"duration": 5, "interval": 30,
                              "schedule_start": "21:00:00", "schedule_end": "05:30:00"},
                "paths": {"tmp_audio": storage.join("staging"),
                          "recordings": storage.join("recordings"),
                          "db_metadata": storage.join("metadata.db")},
                "recording_saving": {"starttime": "18:00:00", "endtime": "20:00:00",
                                     "before_dawndusk_duration": 10,
                                     "after_dawndusk_duration": 5,
                                     "frequency_duration": 5, "frequency_interval": 30},
            },
            "deployment": {"name": "north hedge", "latitude": 52.52, "longitude": 13.4},
        }),
    );
    let (out, text, program) = import_and_build(&h);

    assert_eq!(program["name"], "north hedge");
    assert_eq!(program["timezone"], "Europe/Berlin");
    assert_eq!(program["location"]["latitude"], 52.52);
    assert_eq!(program["location"]["longitude"], 13.4);
    let mic = &program["microphones"][0];
    assert_eq!(mic["source"]["device"], "UltraMic 250K");
    assert_eq!(mic["samplerate_hz"], 256000);
    assert_eq!(mic["time_expansion"], 10.0);
    assert_eq!(program["recording"]["duration_ms"], 5000);
    assert_eq!(program["recording"]["interval_ms"], 30000);
    let record = &task(&program, "record")["schedule"];
    assert_eq!(record["every_ms"], 30000);
    assert_eq!(
        record["windows"],
        json!([{"from": clock(21 * 3600), "to": clock(5 * 3600 + 1800)}])
    );
    let paths = &program["paths"];
    assert_eq!(paths["staging"], storage.join("staging").as_str());
    assert_eq!(paths["recordings"], storage.join("recordings").as_str());
    assert_eq!(paths["metadata"], storage.join("metadata.db").as_str());
    let sun = |event: &str, before: i64, after: i64| {
        json!({"rule": "window", "window": {
            "from": {"kind": "sun", "event": event, "offset_ms": before},
            "to": {"kind": "sun", "event": event, "offset_ms": after}}})
    };
    assert_eq!(
        program["saving"]["rules"],
        json!([
            {"rule": "window", "window": {"from": clock(18 * 3600), "to": clock(20 * 3600)}},
            {"rule": "every", "n": 6},
            sun("dawn", -600_000, 300_000),
            sun("dusk", -600_000, 300_000),
        ])
    );
    assert_eq!(program["saving"]["otherwise"], "delete");
    assert!(program["messaging"].is_null(), "{}", program["messaging"]);

    // Every setting without an equivalent is a warning and a comment.
    let err = stderr(&out);
    assert!(
        err.contains("warning: `recording.chunksize` = 8192 is not imported"),
        "{err}"
    );
    assert!(
        text.contains("// `recording.chunksize` = 8192 is not imported"),
        "{text}"
    );
    assert!(
        err.contains("ignoring the timezone `Europe/Berlin`"),
        "{err}"
    );
    assert!(!err.contains("unknown setting"), "{err}");

    // acoupi's own store writes the metadata database; our `db` reads it through the
    // imported home.
    std::fs::create_dir_all(&storage).expect("storage");
    let written =
        common::acoupi_script("store.py", &["write", storage.join("metadata.db").as_str()]);
    let listed = acoupi()
        .args([
            "--home",
            root.join("home").as_str(),
            "db",
            "recordings",
            "--format",
            "json",
        ])
        .output()
        .expect("db runs");
    assert_eq!(code(&listed), 0, "{}", stderr(&listed));
    let rows: Value = serde_json::from_slice(&listed.stdout).expect("json rows");
    let ids = |rows: &Value, at: &str| {
        let mut ids: Vec<String> = rows
            .as_array()
            .expect("an array")
            .iter()
            .map(|r| {
                r.pointer(at)
                    .and_then(Value::as_str)
                    .expect("id")
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids
    };
    let expected = ids(&written["model_outputs"], "/recording/id");
    assert!(!expected.is_empty());
    assert_eq!(ids(&rows, "/id"), expected, "{rows}");
}

#[test]
fn a_connected_home_keeps_its_mqtt_destination_without_its_password() {
    let (_d, root) = tempdir();
    let storage = root.join("storage");
    let h = python_home(
        &root,
        json!({
            "program": "connected",
            "config": {
                "timezone": "UTC",
                "microphone": {"device_name": "default"},
                "recording": {"schedule_start": "19:00:00", "schedule_end": "07:00:00"},
                "paths": {"tmp_audio": storage.join("staging"),
                          "recordings": storage.join("recordings"),
                          "db_metadata": storage.join("metadata.db")},
                "messaging": {
                    "messages_db": storage.join("messages.db"),
                    "message_send_interval": 300,
                    "max_messages": 50,
                    "message_order": "newest_first",
                    "heartbeat_interval": 1800,
                    "mqtt": {"host": "mqtt.example.org", "username": "pi",
                             "password": "hunter2-s3cret", "topic": "sensors/hedge",
                             "port": 8883, "use_tls": true, "use_message_type": true},
                },
                "recording_saving": {"starttime": "18:30:00", "endtime": "20:00:00",
                                     "before_dawndusk_duration": 0,
                                     "after_dawndusk_duration": 0,
                                     "frequency_duration": 0, "frequency_interval": 0},
            },
        }),
    );
    let (out, text, program) = import_and_build(&h);

    assert!(!text.contains("hunter2"), "{text}");
    assert!(!stdout(&out).contains("hunter2") && !stderr(&out).contains("hunter2"));
    assert!(
        stdout(&out).contains("ACOUPI_MQTT_PASSWORD=<the password>"),
        "{}",
        stdout(&out)
    );
    // No deployment yet: the program is named after its kind and has no location.
    assert_eq!(program["name"], "connected");
    assert!(program["location"].is_null());
    let m = &program["messaging"];
    assert_eq!(m["mqtt"]["host"], "mqtt.example.org");
    assert_eq!(m["mqtt"]["port"], 8883);
    assert_eq!(m["mqtt"]["topic"], "sensors/hedge");
    assert_eq!(m["mqtt"]["tls"], true);
    assert_eq!(m["mqtt"]["topic_per_type"], true);
    assert_eq!(m["mqtt"]["username"], json!({"value": "pi"}));
    assert_eq!(
        m["mqtt"]["password"],
        json!({"env": "ACOUPI_MQTT_PASSWORD"})
    );
    assert!(m["http"].is_null());
    assert_eq!(m["batch"], 50);
    assert_eq!(m["order"], "newest-first");
    assert_eq!(
        program["paths"]["messages"],
        storage.join("messages.db").as_str()
    );
    assert_eq!(
        task(&program, "send-messages")["schedule"]["every_ms"],
        300_000
    );
    assert_eq!(
        task(&program, "heartbeat")["schedule"]["every_ms"],
        1_800_000
    );
    assert_eq!(
        task(&program, "record")["schedule"]["windows"],
        json!([{"from": clock(19 * 3600), "to": clock(7 * 3600)}])
    );
    assert_eq!(
        program["saving"]["rules"],
        json!([{"rule": "window", "window": {"from": clock(18 * 3600 + 1800), "to": clock(20 * 3600)}}])
    );
}

#[test]
fn with_http_and_mqtt_only_http_is_used_as_the_python_acoupi_did() {
    let (_d, root) = tempdir();
    let h = python_home(
        &root,
        json!({
            "program": "connected",
            "config": {
                "microphone": {"device_name": "default"},
                "paths": {"tmp_audio": root.join("s"), "recordings": root.join("r"),
                          "db_metadata": root.join("m.db")},
                "messaging": {
                    "messages_db": root.join("msg.db"),
                    "http": {"base_url": "https://example.org/api/acoupi", "timeout": 7},
                    "mqtt": {"host": "127.0.0.1", "username": "pi", "transport": "websockets"},
                },
            },
        }),
    );
    let (out, text, program) = import_and_build(&h);
    let m = &program["messaging"];
    assert_eq!(m["http"]["url"], "https://example.org/api/acoupi");
    assert_eq!(m["http"]["timeout_ms"], 7000);
    assert!(m["mqtt"].is_null(), "{m}");
    assert!(
        text.contains("/-mqtt host=\"127.0.0.1\" port=1884"),
        "{text}"
    );
    let err = stderr(&out);
    assert!(err.contains("sent only over HTTP"), "{err}");
    assert!(
        err.contains("`messaging.mqtt.transport` = \"websockets\""),
        "{err}"
    );
}

#[test]
fn a_batdetect2_home_keeps_its_thresholds_detector_messages_and_summary() {
    let (_d, root) = tempdir();
    let storage = root.join("storages");
    let h = python_home(
        &root,
        json!({
            "program": "batdetect2",
            "config": {
                "microphone": {"device_name": "UltraMic 250K", "samplerate": 256000},
                "paths": {"tmp_audio": "/run/shm/", "recordings": storage.join("recordings"),
                          "db_metadata": storage.join("metadata.db")},
                "messaging": {
                    "messages_db": storage.join("messages.db"),
                    "mqtt": {"host": "127.0.0.1", "username": "pi", "topic": "bats"},
                },
                "detections": {"threshold": 0.25},
                "model": {"detection_threshold": 0.45},
                "saving_filters": {"saving_threshold": 0.3},
                "saving_managers": {"true_dir": "bats", "false_dir": "no_bats",
                                    "bat_threshold": 0.5},
                "summariser_config": {"interval": 3600.0, "low_band_threshold": 0.2,
                                      "mid_band_threshold": 0.5, "high_band_threshold": 0.8},
            },
            "deployment": {"name": "bat box 3", "latitude": 51.5, "longitude": -0.12},
        }),
    );
    let (_out, text, program) = import_and_build(&h);
    let detector = &program["detectors"][0];
    assert_eq!(detector["name"], "batdetect2");
    assert_eq!(detector["kind"]["threshold"], 0.25);
    let adapter = h.user.join(".local/share/acoupi/batdetect2");
    assert_eq!(
        detector["kind"]["argv"],
        json!([adapter.join("bin/python"), adapter.join("batdetect2.py")])
    );
    assert_eq!(program["recording"]["duration_ms"], 3000);
    assert_eq!(
        task(&program, "record")["schedule"]["windows"],
        json!([{"from": clock(19 * 3600), "to": clock(7 * 3600)}])
    );
    assert_eq!(program["paths"]["staging"], "/run/shm");
    // Kept: a detection at or above both the filter's 0.3 and the file manager's 0.45.
    assert_eq!(
        program["saving"]["rules"],
        json!([{"rule": "detection", "min_score": 0.45, "detector": "batdetect2"}])
    );
    assert_eq!(
        program["saving"]["folder"],
        "bats/{date:%Y}/{date:%m}/{date:%d}"
    );
    assert_eq!(
        program["messaging"]["messages"],
        json!([{"kind": "detection", "min_score": 0.45, "detector": "batdetect2"}])
    );
    assert_eq!(program["messaging"]["mqtt"]["topic"], "bats");
    assert_eq!(
        program["summary"],
        json!({"statistics": true, "thresholds": {"low": 0.2, "mid": 0.5, "high": 0.8}})
    );
    assert_eq!(task(&program, "summary")["schedule"]["every_ms"], 3_600_000);
    assert!(text.contains("`saving_managers.timeformat`"), "{text}");
}

/// Runs `acoupi import` on `dir` in `root`, returning its output.
fn import(root: &Utf8Path, args: &[&str]) -> std::process::Output {
    acoupi()
        .arg("import")
        .args(args)
        .current_dir(root)
        .env("HOME", root.join("user"))
        .output()
        .expect("acoupi import runs")
}

#[test]
fn broken_homes_are_refused_with_the_file_and_the_cause() {
    let (_d, root) = tempdir();
    // No home at the default place.
    let out = import(&root, &[]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "`{}` is not a Python acoupi home",
            root.join("user/.acoupi")
        )),
        "{err}"
    );

    let dir = root.join("py");
    std::fs::create_dir_all(dir.join("config")).expect("config");
    let out = import(&root, &[dir.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains(&format!("`{}` is missing", dir.join("config/name"))),
        "{}",
        stderr(&out)
    );

    std::fs::write(dir.join("config/name"), "acoupi.programs.test\n").expect("name");
    let out = import(&root, &[dir.as_str()]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("names the program `acoupi.programs.test`")
            && err.contains("`acoupi.programs.default`, `acoupi.programs.connected`, `acoupi_batdetect2.program`"),
        "{err}"
    );

    std::fs::write(dir.join("config/name"), "acoupi.programs.default\n").expect("name");
    let out = import(&root, &[dir.as_str()]);
    assert!(
        stderr(&out).contains(&format!("`{}` is missing", dir.join("config/program.json"))),
        "{}",
        stderr(&out)
    );

    std::fs::write(dir.join("config/program.json"), "{\"timezone\": ").expect("json");
    let out = import(&root, &[dir.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains(&format!(
            "`{}` is not valid JSON: EOF while parsing",
            dir.join("config/program.json")
        )),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        dir.join("config/program.json"),
        r#"{"microphone": {"device_name": "m"}, "recording": {"duration": "3s"}}"#,
    )
    .expect("json");
    let out = import(&root, &[dir.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("`recording.duration` should be a whole number, not \"3s\""),
        "{}",
        stderr(&out)
    );
    assert!(!root.join("acoupi.kdl").exists());
}

#[test]
fn an_existing_manifest_is_replaced_only_with_force_and_invalid_values_write_nothing() {
    let (_d, root) = tempdir();
    let dir = root.join("py");
    std::fs::create_dir_all(dir.join("config")).expect("config");
    std::fs::write(dir.join("config/name"), "acoupi.programs.default").expect("name");
    std::fs::write(
        dir.join("config/program.json"),
        r#"{"microphone": {"device_name": "m"},
            "paths": {"tmp_audio": "/tmp/acoupi-s", "db_metadata": "storages/metadata.db"}}"#,
    )
    .expect("json");
    let existing = common::write(&root, "acoupi.kdl", "// mine\n");
    let out = import(&root, &["py"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("already exists: pass `--force`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&existing).expect("kept"),
        "// mine\n"
    );
    // A relative home, and a relative path in it (the Python workers ran in the home).
    let out = import(&root, &["py", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&existing).expect("replaced");
    assert!(text.contains("staging \"/tmp/acoupi-s\""), "{text}");
    assert!(
        text.contains(&format!(
            "metadata \"{}\"",
            dir.join("storages/metadata.db")
        )),
        "{text}"
    );
    assert!(
        stderr(&out).contains("`paths.db_metadata` = \"storages/metadata.db\" is relative"),
        "{}",
        stderr(&out)
    );

    // A value the manifest cannot take: check's diagnostics, and nothing written.
    std::fs::write(
        dir.join("config/program.json"),
        r#"{"microphone": {"device_name": "m", "samplerate": 2000000}}"#,
    )
    .expect("json");
    let out = import(&root, &[dir.as_str(), "-o", "other.kdl"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("model::out_of_range") && err.contains("does not pass `acoupi check`"),
        "{err}"
    );
    assert!(!root.join("other.kdl").exists());
}
