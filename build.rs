//! Release builds of the `acoupi` binary on x86-64 Linux are linked lean, so that an idle
//! worker keeps little of the binary resident (`scripts/bench-worker-rss` measures it):
//!
//! - in the order of `link/<target>.order`, when that file exists: the functions an idle
//!   worker runs, placed together at the start of the code, instead of spread over all of it
//!   (`scripts/link-order` writes the file and explains why that matters);
//! - with packed relative relocations (`-z pack-relative-relocs`): the dynamic loader reads a
//!   few kilobytes of relocations at start instead of 650 KB. The binary then needs glibc
//!   2.36 or later (Debian 12, Raspberry Pi OS 12), which the Debian package's dependencies
//!   say.
//!
//! Both need rust-lld, the default linker there. `ACOUPI_LEAN_LINK=0` links the plain way.

use std::env;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=link");
    println!("cargo::rerun-if-env-changed=ACOUPI_LEAN_LINK");
    let var = |name| env::var(name).unwrap_or_default();
    let off = var("ACOUPI_LEAN_LINK") == "0";
    if off || var("PROFILE") != "release" || var("TARGET") != "x86_64-unknown-linux-gnu" {
        return;
    }
    println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    let order: PathBuf = [
        var("CARGO_MANIFEST_DIR"),
        "link".into(),
        format!("{}.order", var("TARGET")),
    ]
    .iter()
    .collect();
    let Ok(symbols) = fs::read(&order) else {
        return;
    };
    // The linker reads a copy named after its content, so that a new order changes the link
    // arguments and the binary is linked again.
    let mut hasher = DefaultHasher::new();
    hasher.write(&symbols);
    let copy: PathBuf = [var("OUT_DIR"), format!("order-{:016x}", hasher.finish())]
        .iter()
        .collect();
    if let Err(e) = fs::write(&copy, &symbols) {
        println!("cargo::warning=linking in the default order: cannot write {copy:?}: {e}");
        return;
    }
    println!(
        "cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        copy.display()
    );
    // Names the binary does not define (a function inlined away, or renamed since the file
    // was written) are skipped without a warning each.
    println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
