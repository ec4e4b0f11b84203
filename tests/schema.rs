//! The JSON Schemas in `schema/` are generated from the `spec` types; this test fails when the
//! checked-in copies are stale. Regenerate with `ACOUPI_UPDATE_SCHEMA=1 cargo test --test schema`.
//! It also checks that what `acoupi build` writes reads back into the same `spec` types.

use acoupi::spec;

fn check_schema(path: &str, schema: schemars::Schema) {
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    if std::env::var_os("ACOUPI_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &text).expect("write schema");
        return;
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == text,
        "{path} is stale: regenerate it with `ACOUPI_UPDATE_SCHEMA=1 cargo test --test schema` and commit it"
    );
}

#[test]
fn program_schema_is_current() {
    check_schema("schema/program.schema.json", spec::program_schema());
}

#[test]
fn workers_schema_is_current() {
    check_schema("schema/workers.schema.json", spec::workers_schema());
}

#[test]
fn emitted_program_json_reads_back_into_the_spec() {
    for example in ["default", "connected", "detection", "quickstart"] {
        let source =
            acoupi::compile::read_source(format!("examples/{example}.kdl").as_str().into())
                .expect("example");
        let ctx = acoupi::plan::BuildContext {
            home: "/home/pi/.acoupi".into(),
            exe: "/usr/local/bin/acoupi".into(),
            source_path: "/home/pi/acoupi.kdl".into(),
        };
        let built = acoupi::compile::build(&source, &ctx).expect("builds");
        let json = &built
            .tree
            .get("config/program.json")
            .expect("program.json")
            .contents;
        let program: spec::Program =
            serde_json::from_slice(json).expect("program.json matches the spec types");
        assert_eq!(program.schema_version, spec::SCHEMA_VERSION);
        assert!(program.paths.staging.is_absolute() && program.paths.metadata.is_absolute());
        for task in &program.tasks {
            assert!(
                program.queues.iter().any(|q| q.name == task.queue),
                "{example}: {} has no queue",
                task.name
            );
            assert!(
                program
                    .workers
                    .iter()
                    .any(|w| w.queues.contains(&task.queue)),
                "{example}: nobody consumes {}",
                task.queue
            );
            for next in &task.follow_ups {
                assert!(
                    program.task(next).is_some(),
                    "{example}: follow-up {next} is not a task"
                );
            }
        }
        let workers: spec::WorkersFile = serde_json::from_slice(
            &built
                .tree
                .get("config/workers.json")
                .expect("workers.json")
                .contents,
        )
        .expect("workers.json");
        assert_eq!(workers.workers, program.workers);
    }
}

/// A `program.json` built before the device id, the expiry limits and the MQTT timeout
/// existed reads back with their defaults, so a home built by an earlier acoupi still runs.
#[test]
fn program_json_without_the_later_settings_reads_with_their_defaults() {
    let source = acoupi::compile::read_source("examples/connected.kdl".into()).expect("example");
    let ctx = acoupi::plan::BuildContext {
        home: "/home/pi/.acoupi".into(),
        exe: "/usr/local/bin/acoupi".into(),
        source_path: "/home/pi/acoupi.kdl".into(),
    };
    let built = acoupi::compile::build(&source, &ctx).expect("builds");
    let json = &built
        .tree
        .get("config/program.json")
        .expect("program.json")
        .contents;
    let mut value: serde_json::Value = serde_json::from_slice(json).expect("json");
    let removed = [
        value.as_object_mut().and_then(|p| p.remove("device_id")),
        value["messaging"]
            .as_object_mut()
            .and_then(|m| m.remove("max_attempts")),
        value["messaging"]
            .as_object_mut()
            .and_then(|m| m.remove("max_age_ms")),
        value["messaging"]["mqtt"]
            .as_object_mut()
            .and_then(|m| m.remove("timeout_ms")),
    ];
    assert!(
        removed.iter().all(Option::is_some),
        "the example writes every field: {removed:?}"
    );
    let program: spec::Program = serde_json::from_value(value).expect("reads without them");
    assert_eq!(program.device_id, None);
    let messaging = program.messaging.expect("messaging");
    assert_eq!(messaging.max_attempts, spec::DEFAULT_MAX_ATTEMPTS);
    assert_eq!(messaging.max_age_ms, spec::DEFAULT_MAX_AGE_MS);
    assert_eq!(
        messaging.mqtt.expect("mqtt").timeout_ms,
        spec::DEFAULT_MQTT_TIMEOUT_MS
    );
}
