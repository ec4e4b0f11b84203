//! The in-memory output tree: every file of a home, by relative path, with its bytes and
//! mode. Rendering produces one; `home` writes or compares one.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

/// One emitted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The file's bytes.
    pub contents: Vec<u8>,
    /// Unix permission bits (0o755 for scripts, 0o600 for anything that may hold a secret).
    pub mode: u32,
}

/// Every file of a home, sorted by path, so iteration (and everything derived from it) is
/// deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputTree {
    files: BTreeMap<Utf8PathBuf, OutputFile>,
}

impl OutputTree {
    /// Adds (or replaces) a file.
    pub fn insert(
        &mut self,
        path: impl Into<Utf8PathBuf>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) {
        self.files.insert(
            path.into(),
            OutputFile {
                contents: contents.into(),
                mode,
            },
        );
    }

    /// The file at `path`, if emitted.
    pub fn get(&self, path: impl AsRef<Utf8Path>) -> Option<&OutputFile> {
        self.files.get(path.as_ref())
    }

    /// The files in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&Utf8PathBuf, &OutputFile)> {
        self.files.iter()
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the tree has no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The whole tree as text: a header per file, then its contents.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (path, file) in &self.files {
            out.push_str(&format!("==> {path} (mode {:04o}) <==\n", file.mode));
            out.push_str(&String::from_utf8_lossy(&file.contents));
            if !file.contents.ends_with(b"\n") {
                out.push('\n');
            }
        }
        out
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
