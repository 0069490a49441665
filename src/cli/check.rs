//! `warden check`: ask a running daemon one question. Exit 0 allow, 1 deny, 2 error,
//! so scripts can branch on the answer without parsing output.

use crate::api::pb;
use crate::cli::connect::ConnectArg;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// User id or API token.
    #[arg(long)]
    pub subject: String,
    /// Organization id.
    #[arg(long)]
    pub org: String,
    /// Resource path, e.g. apps/my-app.
    #[arg(long)]
    pub resource: String,
    /// Action, e.g. app:read.
    #[arg(long)]
    pub action: String,
    /// Also print the deciding rule and role path; for a deny, the closest rules that
    /// did not match and the part of the matcher each failed.
    #[arg(long)]
    pub explain: bool,
    /// Wait until the daemon's directory reaches this revision.
    #[arg(long, default_value_t = 0)]
    pub min_revision: u64,
    #[command(flatten)]
    pub connect: ConnectArg,
}

pub const EXIT_ALLOW: u8 = 0;
pub const EXIT_DENY: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

pub async fn run(args: CheckArgs) -> ExitCode {
    match ask(&args).await {
        Ok(resp) => {
            println!("{}", if resp.allowed { "allow" } else { "deny" });
            if let Some(e) = &resp.explanation {
                println!("  effect:    {}", e.effect);
                if e.rule_file.is_empty() {
                    println!("  rule:      (none matched)");
                } else {
                    println!("  rule:      {}:{}: {}", e.rule_file, e.rule_line, e.rule_text);
                }
                if !e.role_path.is_empty() {
                    println!("  role path: {}", e.role_path);
                }
                if !e.near_misses.is_empty() {
                    println!("  closest rules that did not match:");
                    for m in &e.near_misses {
                        println!("    {}:{}: {}", m.rule_file, m.rule_line, m.rule_text);
                        for f in &m.failed {
                            println!("      failed: {f}");
                        }
                    }
                }
            }
            if args.explain {
                println!("  revision:  {}", resp.revision);
            }
            ExitCode::from(if resp.allowed { EXIT_ALLOW } else { EXIT_DENY })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn ask(args: &CheckArgs) -> anyhow::Result<pb::CheckResponse> {
    let channel = args.connect.channel().await?;
    let mut authz = pb::authz_service_client::AuthzServiceClient::new(channel);
    let resp = authz
        .check(pb::CheckRequest {
            subject: args.subject.clone(),
            org: args.org.clone(),
            resource: args.resource.clone(),
            action: args.action.clone(),
            min_revision: args.min_revision,
            explain: args.explain,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?;
    Ok(resp.into_inner())
}
