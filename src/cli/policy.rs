//! `warden policy …`: working with policy directories offline, without a daemon.

use crate::policy;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Load a policy directory and report every error, as the daemon would at startup.
    Validate {
        /// Policy directory (model.conf, policy.csv).
        dir: PathBuf,
    },
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Validate { dir } => validate(&dir),
    }
}

fn validate(dir: &std::path::Path) -> ExitCode {
    match policy::load_dir(dir) {
        Ok(p) => {
            println!(
                "OK {} ({} files, sha256 {})",
                dir.display(),
                p.files.len(),
                p.hash
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: {} error{}",
                dir.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}
