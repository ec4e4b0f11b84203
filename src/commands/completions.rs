//! `acoupi completions SHELL`: the shell's completion script for acoupi, on stdout.
//!
//! In: a shell (bash, zsh, fish, elvish, powershell). Out: the script clap_complete generates
//! from the command line's definition (`cli::Cli`), exit 0; exit 2 with `error: …` when stdout
//! cannot be written. The Debian package ships the bash, zsh and fish scripts committed under
//! `completions/` (see [`FILES`]), which a test keeps equal to this command's output.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::ExitStatus;
use crate::cli::{Cli, CompletionsArgs};

/// The scripts committed under `completions/` for packaging: shell, then file name (the name
/// each shell's completion directory expects).
pub const FILES: [(Shell, &str); 3] = [
    (Shell::Bash, "acoupi.bash"),
    (Shell::Zsh, "_acoupi"),
    (Shell::Fish, "acoupi.fish"),
];

/// Prints the completion script.
pub fn run(args: &CompletionsArgs) -> ExitStatus {
    let script = render(args.shell);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => ExitStatus::Success,
        Err(e) => super::fail(format!("cannot write the completion script to stdout: {e}")),
    }
}

/// The completion script for `shell`, completing the binary named `acoupi`.
pub fn render(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "acoupi", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_names_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(render(shell)).expect("clap_complete writes UTF-8");
            for word in ["check", "recordings", "completions", "home"] {
                assert!(script.contains(word), "{shell}: no `{word}`");
            }
        }
    }
}
