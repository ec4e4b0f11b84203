//! `acoupi models install batdetect2`, with stand-in Pythons (so no download happens here;
//! `scripts/test` runs the real install) and with the real checkpoint already in place; and
//! `acoupi check` warning about a model that is not installed.

mod common;

use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};
use common::{acoupi, code, stderr, stdout, tempdir};

/// A stand-in `python` that logs its arguments to `log` and runs `body` (a shell `case` on
/// the arguments).
fn fake_python(dir: &Utf8Path, body: &str) -> Utf8PathBuf {
    let path = dir.join("python");
    let log = dir.join("python.log");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$*\" >> '{log}'\n{body}\n"),
    )
    .expect("write the stand-in python");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn install(data: &Utf8Path, python: &Utf8Path, dir: &Utf8Path) -> std::process::Output {
    acoupi()
        .env("XDG_DATA_HOME", data)
        .args(["models", "install", "batdetect2", "--dir", dir.as_str()])
        .args(["--python", python.as_str()])
        .output()
        .expect("acoupi runs")
}

#[test]
fn without_pip_the_install_says_how_to_get_it() {
    let (_t, dir) = tempdir();
    let python = fake_python(&dir, "echo 'No module named pip' >&2; exit 1");
    let out = install(&dir.join("data"), &python, &dir.join("models"));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("-m pip` is not available: No module named pip"),
        "{err}"
    );
    assert!(err.contains("help: install pip"), "{err}");
    assert!(!dir.join("models/Net2DFast_UK_same.pth.tar").exists());
}

#[test]
fn a_checkpoint_with_the_wrong_checksum_is_refused_and_nothing_is_installed() {
    let (_t, dir) = tempdir();
    // pip "downloads" a wheel; the extraction step writes the wrong bytes.
    let python = fake_python(
        &dir,
        r#"case "$1 $2 $3" in
"-m pip --version") exit 0 ;;
"-m pip download") while [ $# -gt 1 ]; do shift; done; touch "$1/batdetect2-1.3.1-py3-none-any.whl" ;;
-c*) echo 'not a model' > "$5" ;;
esac"#,
    );
    let models = dir.join("models");
    let out = install(&dir.join("data"), &python, &models);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the checkpoint's sha256 is"), "{err}");
    assert!(
        err.contains("c4e399122bb8d99b0ff635b73944709fdaf4fb3f2a69e7b558e6a25ae7e26356"),
        "{err}"
    );
    assert!(!models.join("Net2DFast_UK_same.pth.tar").exists());
    // The scratch folder is gone, and no location was recorded.
    let left: Vec<_> = std::fs::read_dir(&models)
        .expect("the folder was made")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!dir.join("data/acoupi/models/batdetect2.location").exists());
    let log = std::fs::read_to_string(dir.join("python.log")).expect("log");
    assert!(log.contains("-m pip download --no-deps"), "{log}");
    assert!(log.contains("batdetect2==1.3.1"), "{log}");
}

#[test]
fn a_verified_checkpoint_in_place_is_kept_without_a_download_and_recorded() {
    let (_t, dir) = tempdir();
    let models = dir.join("models");
    std::fs::create_dir_all(&models).expect("mkdir");
    std::fs::copy(
        common::batdetect2::model(),
        models.join("Net2DFast_UK_same.pth.tar"),
    )
    .expect("copy the checkpoint");
    // Any pip call would fail.
    let python = fake_python(&dir, "exit 1");
    let data = dir.join("data");
    let out = install(&data, &python, &models);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already installed and verified"),
        "{}",
        stderr(&out)
    );
    let installed = models.join("Net2DFast_UK_same.pth.tar");
    assert_eq!(stdout(&out).trim(), installed.as_str());
    assert!(!dir.join("python.log").exists(), "pip was called");
    let licence = std::fs::read_to_string(models.join("LICENSE")).expect("LICENSE");
    assert!(licence.contains("CC BY-NC 4.0"), "{licence}");
    let record =
        std::fs::read_to_string(data.join("acoupi/models/batdetect2.location")).expect("record");
    assert_eq!(record.trim(), installed.as_str());

    // A detector without `model` now finds it: `check` has nothing to say.
    let manifest = common::write(
        &dir,
        "bats.kdl",
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\"; samplerate \"256kHz\" }\ndetector \"bats\" kind=\"batdetect2\"\n",
    );
    let out = acoupi()
        .env("XDG_DATA_HOME", &data)
        .args(["check", manifest.as_str()])
        .output()
        .expect("acoupi runs");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("missing_model"), "{}", stderr(&out));

    // Elsewhere (another data folder, nothing installed) it warns, with the command.
    let out = acoupi()
        .env("XDG_DATA_HOME", dir.join("empty"))
        .args(["check", manifest.as_str()])
        .output()
        .expect("acoupi runs");
    assert_eq!(code(&out), 0, "a warning: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("model::missing_model"), "{err}");
    assert!(err.contains("acoupi models install batdetect2"), "{err}");
    let out = acoupi()
        .env("XDG_DATA_HOME", dir.join("empty"))
        .args(["check", "--deny", "warnings", manifest.as_str()])
        .output()
        .expect("acoupi runs");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}
