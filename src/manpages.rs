//! Man pages generated from the command line's definition (`cli::Cli`) with clap_mangen.
//!
//! In: nothing but the clap types. Out: one roff page per command, section 1: `acoupi.1`, then
//! one per subcommand at every depth, named after its path (`acoupi-db.1`,
//! `acoupi-db-recordings.1`), each listing its subcommands by those names. Pure: `man/` holds
//! the committed pages and `tests/generated.rs` writes them and fails when one is stale.

use clap::CommandFactory;

use crate::cli::Cli;

/// One rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManPage {
    /// File name, e.g. `acoupi-db-recordings.1`.
    pub file_name: String,
    /// The roff source.
    pub roff: Vec<u8>,
}

/// Every page, parents before their subcommands, in the order the subcommands are declared.
pub fn render() -> Vec<ManPage> {
    // Without the implicit `help` subcommand: it would get a page of its own, and its `--help`
    // flag is documented on every page already.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building sets each subcommand's display name to its path (`acoupi-db-recordings`),
    // which names its page and the references to it.
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, &mut pages);
    pages
}

/// Renders `cmd`'s page, then its visible subcommands' pages.
fn collect(cmd: &clap::Command, pages: &mut Vec<ManPage>) {
    // Subcommands have no version of their own: without these, their footer would name the
    // subcommand alone.
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("acoupi {}", env!("CARGO_PKG_VERSION")))
        .manual("acoupi manual");
    let mut roff = Vec::new();
    man.render(&mut roff)
        .expect("rendering into a Vec cannot fail: writing to memory has no I/O errors");
    pages.push(ManPage {
        file_name: man.get_filename(),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_subcommands_get_pages_named_after_their_path() {
        let names: Vec<String> = render().into_iter().map(|p| p.file_name).collect();
        assert_eq!(names[0], "acoupi.1");
        for name in ["acoupi-check.1", "acoupi-db.1", "acoupi-db-recordings.1"] {
            assert!(names.iter().any(|n| n == name), "no {name} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.contains("help")),
            "a page for `help`: {names:?}"
        );
    }
}
