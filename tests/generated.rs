//! The man pages in `man/` and the shell completion scripts in `completions/` are generated
//! from the command line's clap definitions and committed, so the Debian package (and a
//! cross-build, whose binary cannot run here) ships them without running acoupi. These tests
//! fail when a committed file is stale, missing or left over; regenerate them all with
//! `ACOUPI_UPDATE_GENERATED=1 cargo test --test generated` and commit the result.
//!
//! They also check that the generated files work: every page a page refers to exists, and
//! bash completes acoupi's subcommands from the committed script.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{code, run, stderr, stdout};

const REGENERATE: &str = "ACOUPI_UPDATE_GENERATED=1 cargo test --test generated";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn updating() -> bool {
    std::env::var_os("ACOUPI_UPDATE_GENERATED").is_some()
}

/// Makes `dir` hold exactly `files` (file name to contents) among the files `managed` selects:
/// in update mode by writing them and deleting the others, else by listing every difference.
fn sync_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>, managed: impl Fn(&str) -> bool) {
    let on_disk: BTreeMap<String, Vec<u8>> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("readable directory entry"))
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    managed(&name).then(|| (name, std::fs::read(e.path()).expect("read file")))
                })
                .collect()
        })
        .unwrap_or_default();
    if updating() {
        std::fs::create_dir_all(dir).expect("create the directory");
        for name in on_disk.keys().filter(|n| !files.contains_key(*n)) {
            std::fs::remove_file(dir.join(name)).expect("remove a left-over file");
        }
        for (name, contents) in files {
            if on_disk.get(name) != Some(contents) {
                std::fs::write(dir.join(name), contents).expect("write a generated file");
            }
        }
        return;
    }
    let mut problems = Vec::new();
    for (name, contents) in files {
        match on_disk.get(name) {
            None => problems.push(format!("{name} is missing")),
            Some(c) if c != contents => problems.push(format!("{name} is stale")),
            Some(_) => {}
        }
    }
    for name in on_disk.keys().filter(|n| !files.contains_key(*n)) {
        problems.push(format!("{name} is left over (no command generates it)"));
    }
    assert!(
        problems.is_empty(),
        "{}: {}; regenerate with `{REGENERATE}` and commit",
        dir.display(),
        problems.join(", ")
    );
}

#[test]
fn man_pages_are_current() {
    let pages: BTreeMap<String, Vec<u8>> = acoupi::manpages::render()
        .into_iter()
        .map(|p| (p.file_name, p.roff))
        .collect();
    sync_dir(&repo("man"), &pages, |name| name.ends_with(".1"));
}

#[test]
fn completion_scripts_are_current_and_printed_by_the_command() {
    let mut scripts = BTreeMap::new();
    for (shell, file) in acoupi::commands::completions::FILES {
        let out = run(&["completions", &shell.to_string()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(!out.stdout.is_empty(), "{shell}: empty script");
        scripts.insert(file.to_owned(), out.stdout);
    }
    sync_dir(&repo("completions"), &scripts, |_| true);
}

#[test]
fn an_unknown_shell_is_refused_with_the_known_ones() {
    let out = run(&["completions", "tcsh"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

/// Every `acoupi-…(1)` a page names (its subcommands) is itself a page, and every subcommand
/// page is named by its parent's.
#[test]
fn every_page_a_page_refers_to_exists() {
    let pages = acoupi::manpages::render();
    let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
    let mut referred = vec!["acoupi.1".to_owned()];
    for page in &pages {
        let text = String::from_utf8(page.roff.clone()).expect("roff is UTF-8");
        // roff escapes the hyphens of a name: `acoupi\-db\-recordings(1)`.
        for (at, _) in text.match_indices("(1)") {
            let start = text[..at]
                .rfind(|c: char| c.is_whitespace())
                .map_or(0, |i| i + 1);
            let name = text[start..at].replace("\\-", "-");
            if name.starts_with("acoupi") {
                assert!(
                    names.contains(&format!("{name}.1").as_str()),
                    "{} refers to {name}(1), which has no page",
                    page.file_name
                );
                referred.push(format!("{name}.1"));
            }
        }
    }
    for name in names {
        assert!(
            referred.iter().any(|r| r == name),
            "{name} is referred to by no page"
        );
    }
}

/// Sources the committed bash script and asks it to complete `acoupi WORDS…`; returns the
/// candidates.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = repo("completions/acoupi.bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = words.join(" ");
    let program = format!(
        "source '{}'\n\
         COMP_WORDS=(acoupi {})\n\
         COMP_CWORD={}\n\
         COMP_LINE='acoupi {line}'\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         _acoupi acoupi '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.len(),
        words.last().copied().unwrap_or(""),
        words.len().checked_sub(2).map_or("acoupi", |i| words[i]),
    );
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(&program)
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "bash: {}", stderr(&out));
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_subcommands_and_values() {
    let top = bash_complete(&[""]);
    for sub in ["check", "build", "db", "completions"] {
        assert!(top.iter().any(|c| c == sub), "no `{sub}` in {top:?}");
    }
    let db = bash_complete(&["db", ""]);
    for sub in ["recordings", "outputs", "detections", "info"] {
        assert!(db.iter().any(|c| c == sub), "no `{sub}` in {db:?}");
    }
    assert_eq!(bash_complete(&["db", "rec"]), ["recordings"]);
    let shells = bash_complete(&["completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            shells.iter().any(|c| c == shell),
            "no `{shell}` in {shells:?}"
        );
    }
}
