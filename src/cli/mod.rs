//! The `warden` command line: `serve` runs the daemon; `check`, `admin` and the
//! directory commands (`org`, `member`, `team`, `app`, `user`, `invitation`, `domain`) talk to a running one over
//! gRPC; `policy`, `export` and `import` work offline on files. `gen-directory` writes a
//! synthetic directory for `import`, and `bench` drives a running daemon with load.
//!
//! Owns argument parsing, configuration layering and exit codes. It starts the daemon
//! through [`serve::serve`] and reaches daemons only through [`crate::api::client`] (the
//! `warden-client` crate), at the address [`connect`] resolves.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod bench_writes;
pub mod check;
pub mod cluster;
pub mod collaborators;
pub mod config;
pub mod connect;
pub mod directory;
pub mod dump;
pub mod gen_directory;
pub mod json;
pub mod lifecycle;
pub mod policy;
pub mod publishing;
pub mod security;
pub mod serve;
pub mod time;
pub mod tokens;
pub mod usage;
pub mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Authorization sidecar: Casbin rules over an org directory, served over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The whole command tree, for tests that walk it (help texts, flags).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(Box<config::ServeArgs>),
    /// Ask a running daemon whether a subject may perform an action.
    Check(check::CheckArgs),
    /// Work with policy directories.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Inspect or reload a running daemon.
    Admin(admin::AdminArgs),
    /// Create, change and list orgs.
    Org(directory::OrgArgs),
    /// Add, re-role, remove and list an org's members.
    Member(directory::MemberArgs),
    /// Manage teams, their members and their app grants.
    Team(directory::TeamArgs),
    /// Create, list, delete and transfer apps.
    App(directory::AppArgs),
    /// Create or read user profiles.
    User(directory::UserArgs),
    /// Write the whole directory to a file (offline: no daemon may hold the store).
    Export(dump::ExportArgs),
    /// Load a directory written by `export` into a new store (offline).
    Import(dump::ImportArgs),
    /// Write a synthetic directory (orgs × members, teams, apps) as a dump for `import`.
    GenDirectory(gen_directory::GenArgs),
    /// Drive a running daemon with concurrent Check or BatchCheck calls (loopback only).
    Bench(bench::BenchArgs),
    /// Invite people to an org; accept, decline, revoke and list invitations.
    Invitation(lifecycle::InvitationArgs),
    /// Verified email domains of an org, and membership requests through them.
    Domain(lifecycle::DomainArgs),
    /// Issue, list and revoke API tokens (personal tokens and org keys).
    Token(tokens::TokenArgs),
    /// List the audit log: directory changes by org, actor, type and time, newest first.
    Audit(audit::AuditArgs),
    /// Give users outside an org a role on one of its apps.
    Collaborator(collaborators::CollaboratorArgs),
    /// Submit app versions for publishing; approve or reject them.
    Publish(publishing::PublishArgs),
    /// Per-org password policy and identity providers; SSO auto-join.
    Security(security::SecurityArgs),
    /// Usage reports: checks per member of an org, monthly active orgs.
    Usage(usage::UsageArgs),
    /// Follow the directory's changes as they commit (from a revision, for one org or all).
    Watch(watch::WatchArgs),
    /// Cluster mode: start a directory log from a single-node data directory.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_when_stdout_fails();
    }
    match cli.command {
        Command::Serve(args) => {
            let config = match (*args).resolve() {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            // Held until the daemon returns: dropping it flushes the spans still queued.
            let _otel = match init_logging(config.log_format, config.otlp_endpoint.as_deref()) {
                Ok(otel) => otel,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match serve::serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check(args) => block_on(check::run(args)),
        Command::Admin(args) => block_on(admin::run(args)),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Org(args) => block_on(directory::run_org(args)),
        Command::Member(args) => block_on(directory::run_member(args)),
        Command::Team(args) => block_on(directory::run_team(args)),
        Command::App(args) => block_on(directory::run_app(args)),
        Command::User(args) => block_on(directory::run_user(args)),
        Command::Export(args) => dump::export(args),
        Command::Import(args) => dump::import(args),
        Command::Cluster(cmd) => cluster::run(cmd),
        Command::GenDirectory(args) => gen_directory::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Invitation(args) => block_on(lifecycle::run_invitation(args)),
        Command::Domain(args) => block_on(lifecycle::run_domain(args)),
        Command::Token(args) => block_on(tokens::run(args)),
        Command::Audit(args) => block_on(audit::run(args)),
        Command::Collaborator(args) => block_on(collaborators::run(args)),
        Command::Publish(args) => block_on(publishing::run(args)),
        Command::Security(args) => block_on(security::run(args)),
        Command::Usage(args) => block_on(usage::run(args)),
        Command::Watch(args) => block_on(watch::run(args)),
    }
}

/// Client commands make one call; a current-thread runtime is plenty.
/// A command whose standard output fails ends like other Unix tools instead of with a panic
/// and a backtrace: `warden … | head` (a closed pipe) exits 141, the status a shell shows for
/// a command stopped by SIGPIPE, silently; any other write error (a full disk) says so on
/// stderr and exits 2. `println!` panics on a write error, so this is the panic hook, and only
/// that one panic of the standard library is turned into an exit; every other panic is
/// reported as before. Not for `serve`: the daemon writes its output through `tracing` and
/// has no stdout to lose.
fn end_quietly_when_stdout_fails() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        if let Some(error) = message.and_then(|m| m.strip_prefix("failed printing to stdout: ")) {
            if error.starts_with("Broken pipe") {
                std::process::exit(141);
            }
            eprintln!("error: writing to standard output: {error}");
            std::process::exit(2);
        }
        report(info);
    }));
}

fn block_on(fut: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}

/// The daemon's log on stderr, in `format`. The filter is `WARDEN_LOG` when set (it wins,
/// so an operator can narrow Warden's log without touching the rest of an environment
/// that sets `RUST_LOG`), else `RUST_LOG`, else `info`. Colour only when stderr is a
/// terminal and `NO_COLOR` is unset; JSON lines carry timestamp, level, target, the
/// event's fields, the current span and the span list.
///
/// With `otlp` set, Warden's spans are also exported over OTLP (`api::otel`); the log filter
/// does not apply to them.
fn init_logging(
    format: config::LogFormat,
    otlp: Option<&str>,
) -> Result<Option<crate::api::otel::Otel>, crate::api::otel::OtelError> {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // An empty variable counts as unset; an invalid one is reported and skipped.
    let filter = ["WARDEN_LOG", "RUST_LOG"]
        .into_iter()
        .filter_map(|var| Some((var, std::env::var(var).ok().filter(|v| !v.trim().is_empty())?)))
        .find_map(
            |(var, directives)| match tracing_subscriber::EnvFilter::try_new(&directives) {
                Ok(filter) => Some(filter),
                Err(e) => {
                    eprintln!("warning: {var}={directives:?} is not a log filter ({e}); ignoring it");
                    None
                }
            },
        )
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .with_filter(filter)
            .boxed(),
        config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
    };
    let (otel, layer) = match otlp {
        Some(endpoint) => {
            let (otel, tracer) = crate::api::otel::Otel::start(endpoint)?;
            (Some(otel), Some(crate::api::otel::layer(tracer)))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry().with(log).with(layer).try_init();
    if let Some(endpoint) = otlp {
        tracing::info!(endpoint, "exporting traces over OTLP");
    }
    Ok(otel)
}
