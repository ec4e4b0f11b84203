//! `acoupi models install MODEL [--dir DIR]`: install a built-in detector's model file.
//!
//! In: the model's name and where to put it. Out: the file installed and verified, its path
//! on stdout, progress on stderr; exit 2 with the reason and advice when it cannot be done.

use crate::ExitStatus;
use crate::cli::{ModelName, ModelsCommand};
use crate::models;

/// Runs `acoupi models …`.
pub fn run(cmd: &ModelsCommand) -> ExitStatus {
    match cmd {
        ModelsCommand::Install(args) => match args.model {
            ModelName::Batdetect2 => {
                eprintln!(
                    "installing BatDetect2 {}'s model (from the `batdetect2` package on PyPI)",
                    models::BATDETECT2_VERSION
                );
                match models::install_batdetect2(args.dir.as_deref(), &args.python) {
                    Ok(installed) => {
                        if !installed.downloaded {
                            eprintln!("already installed and verified; nothing downloaded");
                        }
                        eprintln!(
                            "installed; its licence (CC BY-NC 4.0) is in `LICENSE` beside it, and `detector … kind=\"batdetect2\"` finds it with no `model`"
                        );
                        println!("{}", installed.path);
                        ExitStatus::Success
                    }
                    Err(e @ models::Error::NoPip { .. }) => {
                        eprintln!("error: {e}");
                        eprintln!(
                            "help: install pip (`sudo apt install python3-pip`), or name a Python that has it with `--python`"
                        );
                        ExitStatus::Error
                    }
                    Err(e) => super::fail(e),
                }
            }
        },
    }
}
