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
