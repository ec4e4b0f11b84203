//! Every manifest under `examples/` compiles without diagnostics, and its whole output tree
//! (every file, with its mode) is snapshotted. An example that stops compiling, or any change
//! to what a build emits, fails here.

use acoupi::compile;
use acoupi::plan::BuildContext;
use camino::Utf8PathBuf;

/// A fixed build context, so snapshots do not depend on where the test runs.
fn fixed_context(name: &str) -> BuildContext {
    BuildContext {
        home: "/home/pi/.acoupi".into(),
        exe: "/usr/local/bin/acoupi".into(),
        source_path: format!("/home/pi/{name}").into(),
    }
}

#[test]
fn examples_compile_and_match_their_snapshots() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("examples").expect("examples dir") {
        let path = Utf8PathBuf::from_path_buf(entry.expect("entry").path()).expect("utf-8");
        if path.extension() != Some("kdl") {
            continue;
        }
        let name = path.file_name().expect("name").to_owned();
        let source = compile::read_source(&path).expect("readable example");
        let built = match compile::build(&source, &fixed_context(&name)) {
            Ok(b) => b,
            Err(e) => panic!("{path} does not compile: {e:?}"),
        };
        assert!(
            built.warnings.is_empty(),
            "{path} has warnings: {:?}",
            built.warnings
        );
        insta::assert_snapshot!(
            path.file_stem().expect("stem").to_owned(),
            built.tree.to_text()
        );
        names.push(name);
    }
    names.sort();
    for required in [
        "batdetect2.kdl",
        "connected.kdl",
        "default.kdl",
        "detection.kdl",
        "quickstart.kdl",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "examples/{required} is missing"
        );
    }
}

#[test]
fn builds_are_reproducible() {
    let source = compile::read_source("examples/detection.kdl".into()).expect("readable");
    let a = compile::build(&source, &fixed_context("detection.kdl")).expect("builds");
    let b = compile::build(&source, &fixed_context("detection.kdl")).expect("builds");
    assert_eq!(a.tree, b.tree);
}

/// Every task an example compiles to is one the runtime handles with its built-in registry.
/// Together the examples emit every kind of task the compiler can emit.
#[test]
fn every_emitted_task_is_known_to_the_runtime() {
    use acoupi::runtime::tasks::Registry;
    use acoupi::spec::tasks::PROGRAM_TASKS;
    let registry = Registry::builtin();
    let mut emitted = std::collections::BTreeSet::new();
    for name in [
        "batdetect2.kdl",
        "connected.kdl",
        "default.kdl",
        "detection.kdl",
        "quickstart.kdl",
    ] {
        let source =
            compile::read_source(&Utf8PathBuf::from(format!("examples/{name}"))).expect("readable");
        let built = compile::build(&source, &fixed_context(name)).expect("builds");
        let program = built.program().expect("program.json parses");
        for task in &program.tasks {
            let name = task.name.as_str();
            assert!(
                PROGRAM_TASKS.contains(&name),
                "`{name}` is not in spec::tasks::PROGRAM_TASKS"
            );
            assert!(
                registry.get(name).is_some(),
                "the compiler emits `{name}` but the runtime has no handler for it"
            );
            emitted.insert(task.name.clone());
        }
    }
    let all: std::collections::BTreeSet<String> =
        PROGRAM_TASKS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(emitted, all, "some task kind is in no example");
}
