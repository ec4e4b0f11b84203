//! The Debian package, end to end: cargo-deb packages the debug binary the tests already built
//! (no release build: the suite's time matters), dpkg installs the `.deb` into a throwaway root
//! of its own (its own database, lock and log, so the real system is never touched and
//! parallel runs cannot collide), the installed binary runs and checks the installed
//! examples, and a purge leaves nothing behind.
//!
//! Needs cargo-deb (`scripts/test` installs it), dpkg and dpkg-dev (`dpkg-shlibdeps`, for the
//! `Depends` field); it fails, saying so, without them. Not root: dpkg runs with
//! `--force-not-root` into a root the test owns.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};
use common::{code, files_under, stderr, stdout};

/// The cargo-deb `scripts/test` installs.
const INSTALL_CARGO_DEB: &str = "cargo install --locked cargo-deb --version 3.8.0";

/// Runs `cmd`; fails the test with its output when it cannot start or exits non-zero.
fn ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The tests' debug binary, placed where cargo-deb looks for a release build, in a target
/// directory of this test's own (under `target/`, so a hard link usually does): cargo-deb
/// refuses to package `target/debug`, and its scratch files stay out of the shared target.
fn staged_target_dir() -> (tempfile::TempDir, Utf8PathBuf) {
    let exe = Path::new(env!("CARGO_BIN_EXE_acoupi"));
    let target = exe
        .parent()
        .and_then(Path::parent)
        .expect("the binary is at TARGET/debug/acoupi");
    let dir = tempfile::Builder::new()
        .prefix("package-test.")
        .tempdir_in(target)
        .expect("a temporary target directory");
    let release = dir.path().join("release");
    std::fs::create_dir(&release).expect("create release/");
    let staged = release.join("acoupi");
    if std::fs::hard_link(exe, &staged).is_err() {
        std::fs::copy(exe, &staged).expect("copy the binary");
    }
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("utf-8 target dir");
    (dir, path)
}

/// Builds the `.deb` with cargo-deb into `target_dir` and returns its path.
fn build_deb(target_dir: &Utf8Path) -> Utf8PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let probe = Command::new(&cargo).args(["deb", "--version"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-deb is not installed: install it with `{INSTALL_CARGO_DEB}` (scripts/test does)"
    );
    let out = ok(
        Command::new(&cargo)
            .args(["deb", "--no-build", "--fast", "--locked", "--output"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", target_dir),
        "cargo deb",
    );
    let deb = Utf8PathBuf::from(stdout(&out).trim().lines().last().unwrap_or_default());
    assert!(
        deb.extension() == Some("deb") && deb.is_file(),
        "cargo deb printed no .deb path: {}",
        stdout(&out)
    );
    deb
}

/// A control field of the `.deb`.
fn field(deb: &Utf8Path, name: &str) -> String {
    let out = ok(
        Command::new("dpkg-deb").arg("--field").arg(deb).arg(name),
        "dpkg-deb --field",
    );
    stdout(&out).trim().to_owned()
}

/// `dpkg` acting on the root `root` only: its database, lock and log inside it, and no path
/// filter of the host's dpkg configuration (minimal images drop man pages) applied.
fn dpkg(root: &Utf8Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={root}"))
        .arg(format!("--log={root}/var/log/dpkg.log"))
        .arg("--force-not-root")
        .arg("--path-include=*");
    cmd
}

#[test]
fn the_deb_installs_into_a_throwaway_root_runs_and_purges_cleanly() {
    let (_target_guard, target_dir) = staged_target_dir();
    let deb = build_deb(&target_dir);

    // Control fields.
    assert_eq!(field(&deb, "Package"), "acoupi");
    assert_eq!(
        field(&deb, "Version"),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    let arch = ok(
        Command::new("dpkg").arg("--print-architecture"),
        "dpkg --print-architecture",
    );
    assert_eq!(field(&deb, "Architecture"), stdout(&arch).trim());
    let depends = field(&deb, "Depends");
    assert!(
        depends
            .split(',')
            .any(|d| d.trim().starts_with("libasound2")),
        "Depends has no libasound2 (is dpkg-dev, with dpkg-shlibdeps, installed?): {depends}"
    );
    assert_eq!(field(&deb, "Section"), "science");
    assert_eq!(field(&deb, "Priority"), "optional");
    assert!(field(&deb, "Maintainer").contains('<'));

    // File list: what the package must hold.
    let listing = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb), "list");
    let files: Vec<String> = stdout(&listing)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    let mut expected = vec![
        "/usr/bin/acoupi".to_owned(),
        "/usr/share/bash-completion/completions/acoupi".to_owned(),
        "/usr/share/zsh/vendor-completions/_acoupi".to_owned(),
        "/usr/share/fish/vendor_completions.d/acoupi.fish".to_owned(),
        "/usr/share/acoupi/scripts/install-batdetect2".to_owned(),
        "/usr/share/acoupi/examples/detectors/batdetect2.py".to_owned(),
        "/usr/share/doc/acoupi/copyright".to_owned(),
    ];
    let pages = acoupi::manpages::render();
    expected.extend(
        pages
            .iter()
            .map(|p| format!("/usr/share/man/man1/{}.gz", p.file_name)),
    );
    let examples: Vec<Utf8PathBuf> = files_under(Utf8Path::new("examples"))
        .into_iter()
        .filter(|p| p.extension() == Some("kdl"))
        .collect();
    assert!(!examples.is_empty(), "no examples/*.kdl");
    expected.extend(examples.iter().map(|p| format!("/usr/share/acoupi/{p}")));
    for path in &expected {
        assert!(files.contains(path), "the package lacks {path}: {files:#?}");
    }

    // Install into an empty root with a database of its own. Nothing of the package's
    // dependencies is in that database, hence --force-depends; the host provides the libraries.
    let (_root_guard, root) = common::tempdir();
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        std::fs::create_dir_all(root.join(dir)).expect("admin dir");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("empty status");
    ok(
        dpkg(&root)
            .arg("--force-depends")
            .arg("--install")
            .arg(&deb),
        "dpkg --install",
    );
    let status = ok(dpkg(&root).args(["--status", "acoupi"]), "dpkg --status");
    assert!(
        stdout(&status).contains("Status: install ok installed"),
        "{}",
        stdout(&status)
    );

    // The installed binary runs and checks every installed example.
    let exe = root.join("usr/bin/acoupi");
    let version = ok(Command::new(&exe).arg("--version"), "acoupi --version");
    assert_eq!(
        stdout(&version).trim(),
        format!("acoupi {}", env!("CARGO_PKG_VERSION"))
    );
    for example in &examples {
        let installed = root.join("usr/share/acoupi").join(example);
        let out = Command::new(&exe)
            .arg("check")
            .arg(&installed)
            .env("NO_COLOR", "1")
            .output()
            .expect("acoupi check runs");
        assert_eq!(code(&out), 0, "{installed}: {}", stderr(&out));
    }

    // The man pages are the committed ones, gzipped; the completions are the committed ones.
    for page in &pages {
        let installed = root
            .join("usr/share/man/man1")
            .join(format!("{}.gz", page.file_name));
        let out = ok(Command::new("gzip").arg("-dc").arg(&installed), "gunzip");
        assert!(out.stdout == page.roff, "{installed} differs from its page");
    }
    assert_eq!(
        std::fs::read(root.join("usr/share/bash-completion/completions/acoupi")).expect("bash"),
        std::fs::read("completions/acoupi.bash").expect("committed bash script")
    );

    // The installed BatDetect2 installer finds the installed adapter (a dry run changes
    // nothing).
    let venv = root.join("opt/batdetect2");
    let dry = ok(
        Command::new(root.join("usr/share/acoupi/scripts/install-batdetect2"))
            .arg("--dry-run")
            .arg(&venv),
        "install-batdetect2 --dry-run",
    );
    let adapter = root.join("usr/share/acoupi/examples/detectors/batdetect2.py");
    assert!(stderr(&dry).contains(adapter.as_str()), "{}", stderr(&dry));
    assert!(!venv.exists(), "the dry run created {venv}");

    // Purge: everything the package installed is gone, directories included; only dpkg's own
    // database and log remain.
    ok(dpkg(&root).args(["--purge", "acoupi"]), "dpkg --purge");
    let status = dpkg(&root)
        .args(["--status", "acoupi"])
        .output()
        .expect("dpkg runs");
    assert_ne!(code(&status), 0, "still known: {}", stdout(&status));
    let left: Vec<PathBuf> = walk(root.as_std_path())
        .into_iter()
        .filter(|p| {
            !p.starts_with(root.join("var/lib/dpkg")) && !p.starts_with(root.join("var/log"))
        })
        .filter(|p| !["var", "var/lib"].iter().any(|d| *p == root.join(d)))
        .collect();
    assert!(
        left.is_empty(),
        "left in the root after the purge: {left:#?}"
    );
}

/// Every file and directory under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("readable dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}
