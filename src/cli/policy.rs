//! `warden policy …`: working with policy directories offline, without a daemon (only
//! `policy diff` may read a running daemon's directory index, when the daemon holds the store),
//! and `policy publish`, which asks a cluster sidecar over its Unix socket to publish its
//! policy files as the cluster's policy epoch.

use crate::cli::config::DEFAULT_DATA;
use crate::cli::serve::STORE_FILE;
use crate::engine::index::DirectoryIndex;
use crate::policy::{self, PolicyError, PolicyErrors};
use crate::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Load a policy directory and report every error, as the daemon would at startup,
    /// then what it would load with but should not ship with: rules that can never match
    /// (a role nobody holds, a resource pattern checks refuse) are errors, likely typos
    /// (an action or role name close to a known one) warnings, each with `file:line` and a
    /// "did you mean" when a known name is close. Exit 0 when there are no errors
    /// (warnings are printed), 1 otherwise.
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
        /// List passing cases too (text format).
        #[arg(short, long)]
        verbose: bool,
        /// Run only the cases whose name contains SUBSTR, or matches GLOB when it has `*`,
        /// `?` or `[` (a case without a name is matched by its request line). Exit 2 when
        /// no case matches.
        #[arg(long, value_name = "SUBSTR|GLOB")]
        filter: Option<String>,
        /// Report format: `text` for people, `json` (one document) or `junit` (JUnit XML)
        /// for CI systems. Load errors go to stderr in every format.
        #[arg(long, value_enum, default_value = "text")]
        format: TestFormat,
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
    /// Blast radius of a policy edit: every request whose decision changes between OLD
    /// and NEW over the org directory (a data directory, a running daemon's index, or a
    /// policy test fixture), with each side's decisive rule. Exit 0 when nothing changes,
    /// 1 when something does, 2 on errors.
    Diff(DiffArgs),
    /// Cluster mode: publish this sidecar's policy files as the cluster's policy epoch
    /// (`AdminService.ReloadPolicy` on its Unix socket: the files are loaded and, when valid,
    /// written to the directory log as one `warden.policy` entry with message id
    /// `policy-<hash>`; every sidecar switches to it at that log position). Publishing the
    /// files the log already serves writes nothing and says so. Exit 0 when the log serves
    /// these files, 1 when they are invalid or the log refused them (another epoch was
    /// published since: the sidecar's files may be stale), 2 when the daemon cannot be
    /// reached or runs single-node (there is no cluster to publish to; `warden admin reload`
    /// loads the files there).
    Publish(PublishArgs),
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    connect: crate::cli::connect::ConnectArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Text,
    Json,
    Junit,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The policy directory as it is now.
    old: PathBuf,
    /// The edited policy directory.
    new: PathBuf,
    /// Data directory whose warden.redb supplies the directory. While a daemon serves it
    /// (redb allows one process per file), its index is read over the daemon's socket
    /// `DIR/warden.sock` instead. [default: ./data]
    #[arg(long, value_name = "DIR", conflicts_with_all = ["fixture", "connect"])]
    data: Option<PathBuf>,
    /// Read the directory from a running daemon's index (`unix:PATH`; an operator call,
    /// served on the Unix socket only) instead of a data directory.
    #[arg(long, value_name = "ADDR", conflicts_with = "fixture")]
    connect: Option<String>,
    /// A policy test file (`tests/*.yaml`) whose fixture supplies the directory instead.
    #[arg(long, value_name = "FILE.yaml")]
    fixture: Option<PathBuf>,
    /// Actions to compare besides those the rules name (e.g. ones only a `*` rule covers).
    #[arg(long, value_delimiter = ',', value_name = "A,B,…")]
    actions: Vec<String>,
    /// Refuse to compare more requests than this.
    #[arg(long, value_name = "N", default_value_t = policy::diff::DEFAULT_LIMIT)]
    limit: u64,
    /// One JSON object per change, then a summary object.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Validate { dir } => validate(&dir),
        PolicyCommand::Test {
            dir,
            verbose,
            filter,
            format,
        } => test(&dir, verbose, filter.as_deref(), format),
        PolicyCommand::Eval {
            model,
            policy,
            role_matching,
            domain_matching,
        } => eval(&model, &policy, &role_matching, &domain_matching),
        PolicyCommand::Diff(args) => diff(&args),
        PolicyCommand::Publish(args) => publish(&args),
    }
}

fn diff(args: &DiffArgs) -> ExitCode {
    let report = match run_diff(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("policy diff: nothing was compared");
            return ExitCode::from(2);
        }
    };
    if args.json {
        print!("{}", report.render_json());
    } else {
        print!("{}", report.render());
    }
    if report.changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_diff(args: &DiffArgs) -> Result<policy::diff::DiffReport, String> {
    let (old, new) = match (policy::load_dir(&args.old), policy::load_dir(&args.new)) {
        (Ok(old), Ok(new)) => (Arc::new(old), Arc::new(new)),
        (old, new) => {
            let errors: Vec<String> = [old.err(), new.err()]
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect();
            return Err(errors.join("\n"));
        }
    };
    let index = Arc::new(match &args.fixture {
        Some(file) => {
            // A fixture either policy could hold: its roles are checked against both.
            let mut roles = old.org_roles();
            roles.extend(new.org_roles());
            fixture_index(file, &roles).map_err(|e| e.to_string())?
        }
        None => match &args.connect {
            Some(target) => daemon_index(target)?,
            None => store_index(args.data.as_deref().unwrap_or(Path::new(DEFAULT_DATA)))?,
        },
    });
    let space = policy::diff::RequestSpace::new(&old, &new, &index, &args.actions);
    let requests = space.len();
    if requests > args.limit {
        return Err(format!(
            "{requests} requests to compare, more than the limit of {}; raise it with --limit {requests}, \
             or compare over a smaller directory with --fixture",
            args.limit
        ));
    }
    Ok(policy::diff::diff(old, new, index, &space))
}

fn fixture_index(
    file: &Path,
    roles: &std::collections::BTreeSet<String>,
) -> Result<DirectoryIndex, PolicyErrors> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        PolicyErrors(vec![PolicyError {
            file: name.clone(),
            line: 0,
            reason: format!("cannot read: {e}"),
        }])
    })?;
    let parsed = policy::suite::parse(&name, &text).map_err(|e| PolicyErrors(vec![e]))?;
    policy::suite::fixture_index(&parsed, roles)
}

/// The directory of `<data>/warden.redb`, read offline. A missing file is an error
/// rather than an empty directory (which would compare nothing and pass).
fn store_index(data: &Path) -> Result<DirectoryIndex, String> {
    let path = data.join(STORE_FILE);
    if !path.is_file() {
        return Err(format!(
            "{}: no directory store here; pass --data DIR (a daemon's data directory) or --fixture FILE.yaml",
            path.display()
        ));
    }
    let store = match Store::open(&path) {
        Ok(store) => store,
        Err(e @ StoreError::AlreadyOpen { .. }) => {
            // A daemon serves this store: its index is the same directory, over its socket.
            let socket = data.join(SOCKET_FILE);
            if !socket.exists() {
                return Err(format!(
                    "{e}, and there is no daemon socket at {}; pass the daemon's address with \
                     --connect unix:PATH, or compare over a policy test fixture with --fixture FILE.yaml",
                    socket.display()
                ));
            }
            let target = format!("unix:{}", socket.display());
            eprintln!(
                "{}: held by a running daemon; reading its index over {target}",
                path.display()
            );
            return daemon_index(&target);
        }
        Err(e) => return Err(e.to_string()),
    };
    let index = DirectoryIndex::new();
    store.load_index(&index).map_err(|e| e.to_string())?;
    Ok(index)
}

/// The socket a daemon serving `--data DIR` listens on by default.
const SOCKET_FILE: &str = "warden.sock";

/// The directory as a running daemon's decision index has it (`AdminService.ExportIndex`,
/// one revision).
fn daemon_index(target: &str) -> Result<DirectoryIndex, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;
    let (revision, facts) = runtime.block_on(async {
        let channel = crate::api::client::connect(target)
            .await
            .map_err(|e| e.to_string())?;
        // A large directory is a large message; the operator asked for all of it.
        let mut admin = crate::api::pb::admin_service_client::AdminServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX);
        let resp = admin
            .export_index(crate::api::pb::ExportIndexRequest {})
            .await
            .map_err(|s| format!("{target}: reading the daemon's index: {}", s.message()))?
            .into_inner();
        Ok::<_, String>((resp.revision, resp.facts))
    })?;
    let ops = crate::engine::index::ops_from_facts(&facts).map_err(|e| format!("{target}: {e}"))?;
    let index = DirectoryIndex::new();
    index.apply(revision, &ops);
    Ok(index)
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
            // The loader keeps every warning, lint findings included; the lint says which
            // of them are rules that can never match.
            let errors: Vec<PolicyError> = policy::lint::lint(&p)
                .into_iter()
                .filter(|f| f.severity == policy::lint::Severity::Error)
                .map(|f| f.error)
                .collect();
            for w in &p.warnings {
                let severity = if errors.contains(w) { "error" } else { "warning" };
                eprintln!("{}:{}: {severity}: {}", w.file, w.line, w.reason);
            }
            let warnings = p.warnings.len() - errors.len();
            if errors.is_empty() {
                println!(
                    "OK {} ({} files, sha256 {}){}",
                    dir.display(),
                    p.files.len(),
                    p.hash,
                    match warnings {
                        0 => String::new(),
                        1 => ", 1 warning".into(),
                        n => format!(", {n} warnings"),
                    }
                );
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "{}: {} error{} ({} warning{}): the daemon would load it, but these rules can never match",
                    dir.display(),
                    errors.len(),
                    plural(errors.len()),
                    warnings,
                    plural(warnings)
                );
                ExitCode::FAILURE
            }
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: {} error{}",
                dir.display(),
                errors.0.len(),
                plural(errors.0.len())
            );
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn test(dir: &std::path::Path, verbose: bool, filter: Option<&str>, format: TestFormat) -> ExitCode {
    let filter = match filter.map(policy::suite::CaseFilter::parse).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let loaded = policy::load_dir(dir).and_then(|p| {
        let p = std::sync::Arc::new(p);
        let mut files = policy::suite::load(dir)?;
        if files.is_empty() {
            eprintln!(
                "warning: no test files in {}",
                dir.join(policy::suite::TESTS_DIR).display()
            );
        }
        if let Some(f) = &filter
            && policy::suite::retain_cases(&mut files, f) == 0
        {
            return Err(PolicyErrors(vec![PolicyError {
                file: dir.join(policy::suite::TESTS_DIR).display().to_string(),
                line: 0,
                reason: "no test case matches --filter".into(),
            }]));
        }
        policy::suite::run(&p, &files)
    });
    match loaded {
        Ok(report) => {
            match format {
                TestFormat::Text => print!("{}", report.render(verbose)),
                TestFormat::Json => print!("{}", report.render_json()),
                TestFormat::Junit => print!("{}", report.render_junit()),
            }
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

/// `warden policy publish`.
fn publish(args: &PublishArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the client runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(publish_call(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn publish_call(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    use crate::api::pb;
    let mut admin = pb::admin_service_client::AdminServiceClient::new(args.connect.channel().await?);
    let before = admin
        .get_policy_status(pb::GetPolicyStatusRequest {})
        .await?
        .into_inner();
    let Some(was) = before.cluster else {
        anyhow::bail!(
            "no cluster: this daemon runs single-node (no --cluster), so there is no directory log \
             to publish a policy epoch to; `warden admin reload` loads its policy files"
        );
    };
    let after = match admin.reload_policy(pb::ReloadPolicyRequest {}).await {
        Ok(s) => s.into_inner(),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            eprintln!("{}", status.message());
            return Ok(ExitCode::FAILURE);
        }
        Err(status) => return Err(status.into()),
    };
    let now = after.cluster.unwrap_or_default();
    if now.epoch_hash != after.content_hash {
        // Published by someone else in the meantime, or not at all: say what serves.
        eprintln!(
            "the log serves policy epoch {} (entry {}), not these files (hash {})",
            now.epoch_hash, now.epoch_seq, after.content_hash
        );
        return Ok(ExitCode::FAILURE);
    }
    if (now.epoch_hash.as_str(), now.epoch_seq) == (was.epoch_hash.as_str(), was.epoch_seq) {
        println!(
            "already published: the log's policy epoch is these files (hash {}, entry {}); \
             nothing was written",
            now.epoch_hash, now.epoch_seq
        );
    } else {
        println!(
            "published policy epoch {} at log entry {} (message id policy-{}); every sidecar \
             switches to it there",
            now.epoch_hash, now.epoch_seq, now.epoch_hash
        );
    }
    Ok(ExitCode::SUCCESS)
}
