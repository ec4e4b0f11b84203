//! Every diagnostic code has an invalid manifest under `tests/ui/<stage>/<code>.kdl`; this
//! test renders each one's report (plain ASCII, no colour, 80 columns) and snapshots it, and
//! checks that the code the file is named after is among the reported ones. The checks of
//! the machine (`compile::check_on_host`) run too, as `acoupi check` runs them.

use std::collections::BTreeSet;

use acoupi::compile;
use acoupi::report::{self, Style};
use camino::Utf8PathBuf;

fn ui_files() -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    for stage in ["manifest", "model"] {
        let dir = Utf8PathBuf::from(format!("tests/ui/{stage}"));
        for entry in std::fs::read_dir(&dir).expect("tests/ui exists") {
            let path = Utf8PathBuf::from_path_buf(entry.expect("readable dir").path())
                .expect("utf-8 path");
            if path.extension() == Some("kdl") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn expected_code(path: &Utf8PathBuf) -> String {
    let stage = path
        .parent()
        .and_then(|p| p.file_name())
        .expect("stage dir");
    format!("{stage}::{}", path.file_stem().expect("file stem"))
}

#[test]
fn every_ui_manifest_reports_its_code_and_matches_its_snapshot() {
    for path in ui_files() {
        let source = compile::read_source(&path).expect("readable");
        let checked = compile::check_on_host(&source);
        let codes: Vec<String> = checked.issues.iter().map(|i| i.code_str()).collect();
        let want = expected_code(&path);
        assert!(
            codes.contains(&want),
            "{path}: expected `{want}` among {codes:?}"
        );
        let text = format!(
            "{}{}\n",
            report::human(&checked.issues, path.as_str(), &source.text, Style::PLAIN),
            report::summary(&checked.issues, path.as_str())
        );
        let name = format!(
            "{}__{}",
            path.parent().and_then(|p| p.file_name()).unwrap_or(""),
            path.file_stem().unwrap_or("")
        );
        insta::assert_snapshot!(name, text);
    }
}

/// Every code declared in `src/diagnostic.rs` has a UI manifest, and no UI manifest names a
/// code that does not exist.
#[test]
fn every_diagnostic_code_has_a_ui_manifest() {
    let src = std::fs::read_to_string("src/diagnostic.rs").expect("diagnostic source");
    let declared: BTreeSet<String> = src
        .split("code(")
        .skip(1)
        .filter_map(|rest| {
            let code: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            code.contains("::").then_some(code)
        })
        .collect();
    let covered: BTreeSet<String> = ui_files().iter().map(expected_code).collect();
    assert!(
        declared.len() >= 30,
        "found only {} codes: {declared:?}",
        declared.len()
    );
    assert_eq!(declared, covered, "codes and tests/ui files differ");
}
