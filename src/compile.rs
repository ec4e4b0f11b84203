//! Glue for the compiler pipeline: read the manifest, then parse -> validate -> lower ->
//! render.
//!
//! In: a manifest path (and, to build, a [`BuildContext`]). Out: the diagnostics, and the
//! model or rendered [`OutputTree`] when there were no errors. Reading is the only I/O here.

use std::io::Read;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use crate::diagnostic::{Diagnostics, Issue};
use crate::emit::{self, OutputTree};
use crate::model::{self, Model};
use crate::plan::{self, BuildContext};
use crate::{manifest, units};

/// Largest manifest read. A real one is a few KiB (the largest example is under 2 KiB);
/// 1 MiB is five hundred times that. The bound is on time and memory: the KDL parser's cost
/// is per node, and the worst file of this size (half a million one-letter unknown nodes,
/// as many diagnostics) is checked in about three seconds; a valid one in about half a
/// second.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// A manifest read from disk.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user gave it, for messages and diagnostics headers.
    pub name: String,
    /// The absolute path.
    pub path: Utf8PathBuf,
    /// The text (lossily decoded when the file is not UTF-8; see `not_utf8_at`).
    pub text: Arc<String>,
    /// Byte offset of the first invalid UTF-8 sequence, if any.
    pub not_utf8_at: Option<usize>,
}

/// Why a manifest could not be read at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Missing, unreadable, a directory…; `fs-err` names the path.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The path is a directory.
    #[error("`{0}` is a directory, not a manifest file")]
    Directory(String),
    /// The file is too large.
    #[error("`{path}` is {size} bytes; manifests are limited to {} ({max} bytes)", units::format_size(*max))]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A stream (a pipe, a device) that went on past the limit.
    #[error("`{path}` holds more than {max} bytes; manifests are limited to {}", units::format_size(*max))]
    TooLong {
        /// The path.
        path: String,
        /// The limit.
        max: u64,
    },
}

/// Reads a manifest. Non-UTF-8 content is not an error here: it becomes a diagnostic.
pub fn read_source(path: &Utf8Path) -> Result<Source, ReadError> {
    let meta = fs_err::metadata(path)?;
    if meta.is_dir() {
        return Err(ReadError::Directory(path.to_string()));
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(ReadError::TooLarge {
            path: path.to_string(),
            size: meta.len(),
            max: MAX_MANIFEST_BYTES,
        });
    }
    // The size is checked again while reading: a pipe or a device has no size up front,
    // and a file may grow after `metadata`.
    let mut bytes = Vec::new();
    std::io::Read::take(fs_err::File::open(path)?, MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ReadError::TooLong {
            path: path.to_string(),
            max: MAX_MANIFEST_BYTES,
        });
    }
    let abs = std::path::absolute(path.as_std_path())?;
    let abs = Utf8PathBuf::from_path_buf(abs).unwrap_or_else(|_| path.to_owned());
    Ok(from_bytes(path.as_str(), abs, bytes))
}

/// A source from bytes already in memory (tests, fuzzing).
pub fn from_bytes(name: &str, path: Utf8PathBuf, bytes: Vec<u8>) -> Source {
    let (text, not_utf8_at) = match String::from_utf8(bytes) {
        Ok(s) => (s, None),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            (String::from_utf8_lossy(e.as_bytes()).into_owned(), Some(at))
        }
    };
    Source {
        name: name.to_owned(),
        path,
        text: Arc::new(text),
        not_utf8_at,
    }
}

/// The result of checking a manifest.
#[derive(Debug)]
pub struct Checked {
    /// Every issue, sorted by position.
    pub issues: Vec<Issue>,
    /// The model, when there were no errors.
    pub model: Option<Model>,
}

/// Parses and validates; no I/O.
pub fn check(source: &Source) -> Checked {
    let mut diags = Diagnostics::default();
    if let Some(at) = source.not_utf8_at {
        diags.push(Issue::Syntax {
            message: "the manifest is not valid UTF-8".into(),
            span: (at, 1).into(),
            label: "invalid byte".into(),
            help: Some("save the file as UTF-8".into()),
        });
        return Checked {
            issues: diags.into_sorted(),
            model: None,
        };
    }
    let model =
        manifest::parse(&source.text, &mut diags).and_then(|ast| model::validate(&ast, &mut diags));
    Checked {
        issues: diags.into_sorted(),
        model,
    }
}

/// [`check`], then the checks of this machine ([`model::host::issues`]: model files that are
/// not installed), as `acoupi check` reports them.
pub fn check_on_host(source: &Source) -> Checked {
    let mut checked = check(source);
    if let Some(model) = &checked.model {
        let host = model::host::issues(model);
        if !host.is_empty() {
            let mut diags = Diagnostics::default();
            for issue in checked.issues.drain(..).chain(host) {
                diags.push(issue);
            }
            checked.issues = diags.into_sorted();
        }
    }
    checked
}

/// Why a build produced no tree.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The manifest has errors (the issues, warnings included).
    #[error("the manifest has errors")]
    Invalid(Vec<Issue>),
    /// Rendering failed.
    #[error(transparent)]
    Emit(#[from] emit::Error),
}

/// A successful build: the tree, and the warnings that came with it.
#[derive(Debug)]
pub struct Built {
    /// The rendered home.
    pub tree: OutputTree,
    /// Warnings (no errors, or there would be no tree).
    pub warnings: Vec<Issue>,
}

impl Built {
    /// The compiled program, as the home's `config/program.json` holds it.
    pub fn program(&self) -> Result<crate::spec::Program, String> {
        let file = self
            .tree
            .get(crate::spec::layout::PROGRAM_FILE)
            .ok_or("the build has no program file")?;
        serde_json::from_slice(&file.contents).map_err(|e| e.to_string())
    }
}

/// Checks, lowers and renders; no I/O.
pub fn build(source: &Source, ctx: &BuildContext) -> Result<Built, BuildError> {
    build_checked(check(source), source, ctx)
}

/// [`build`] with the checks of this machine among its warnings ([`check_on_host`]), as
/// `acoupi build` runs it.
pub fn build_on_host(source: &Source, ctx: &BuildContext) -> Result<Built, BuildError> {
    build_checked(check_on_host(source), source, ctx)
}

fn build_checked(
    checked: Checked,
    source: &Source,
    ctx: &BuildContext,
) -> Result<Built, BuildError> {
    let Some(model) = checked.model else {
        return Err(BuildError::Invalid(checked.issues));
    };
    let plan = plan::lower(model, ctx);
    let tree = emit::render(&plan, &source.text, ctx.source_path.as_str())?;
    Ok(Built {
        tree,
        warnings: checked.issues,
    })
}
