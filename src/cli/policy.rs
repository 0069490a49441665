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
    /// Run the policy's test suite (`DIR/tests/*.yaml`): print which cases failed with
    /// expected vs got and the explanation, then `N passed, M failed`. Exit 0 when all
    /// pass, 1 when a case fails, 2 when the policy or a test file cannot be loaded.
    Test {
        /// Policy directory (model.conf, policy.csv, tests/).
        #[arg(default_value = "./policies")]
        dir: PathBuf,
        /// List passing cases too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Evaluate JSON-lines requests (`{"request": [v1, …]}`) from stdin against a model
    /// and policy file, printing one `{"allow": …}` or `{"error": …}` line per request.
    /// No directory, no daemon.
    Eval {
        /// Casbin model file.
        #[arg(long)]
        model: PathBuf,
        /// Casbin policy file.
        #[arg(long)]
        policy: PathBuf,
        /// Role matching function of one role definition, e.g. `g2=keyMatch2`.
        #[arg(long = "role-matching", value_name = "PTYPE=FN")]
        role_matching: Vec<String>,
        /// Domain matching function of one role definition, e.g. `g=keyMatch`.
        #[arg(long = "domain-matching", value_name = "PTYPE=FN")]
        domain_matching: Vec<String>,
    },
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Validate { dir } => validate(&dir),
        PolicyCommand::Test { dir, verbose } => test(&dir, verbose),
        PolicyCommand::Eval {
            model,
            policy,
            role_matching,
            domain_matching,
        } => eval(&model, &policy, &role_matching, &domain_matching),
    }
}

fn eval(model: &std::path::Path, policy_file: &std::path::Path, rm: &[String], dm: &[String]) -> ExitCode {
    // Everything that can be wrong with the model is reported before reading a request.
    let compiled = match policy::eval::config_from_pairs(rm, dm)
        .and_then(|cfg| policy::eval::prepare(model, policy_file, &cfg))
    {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("unsupported or invalid policy: nothing was evaluated");
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match policy::eval::run(&compiled, stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
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

fn test(dir: &std::path::Path, verbose: bool) -> ExitCode {
    let loaded = policy::load_dir(dir).and_then(|p| {
        let p = std::sync::Arc::new(p);
        let files = policy::suite::load(dir)?;
        if files.is_empty() {
            eprintln!(
                "warning: no test files in {}",
                dir.join(policy::suite::TESTS_DIR).display()
            );
        }
        policy::suite::run(&p, &files)
    });
    match loaded {
        Ok(report) => {
            print!("{}", report.render(verbose));
            if report.failed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: policy tests could not run", dir.display());
            ExitCode::from(2)
        }
    }
}
