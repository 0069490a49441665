//! `warden usage org|instance`: checks answered per member, and monthly active orgs.

use crate::api::pb;
use crate::cli::directory::{Common, channel, finish};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: UsageCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum UsageCommand {
    /// Checks answered per member of an org over the last days (needs `usage:read`).
    Org {
        /// The org's id.
        org_id: String,
        /// How many days back, ending today.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Monthly active orgs of the instance (Unix socket only).
    Instance {
        /// YYYY-MM [default: this month].
        #[arg(long, default_value = "")]
        month: String,
    },
}

pub async fn run(args: UsageArgs) -> ExitCode {
    finish(usage(args).await)
}

async fn usage(args: UsageArgs) -> crate::cli::directory::Outcome {
    let mut c = pb::usage_service_client::UsageServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    match args.command {
        UsageCommand::Org { org_id, days } => {
            let r = c
                .get_org_usage(pb::GetOrgUsageRequest {
                    actor: args.common.actor,
                    org_id,
                    days,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                println!(
                    "usage: {} days {}..{}: {} checks",
                    r.org_id, r.from_day, r.to_day, r.total_checks
                );
                for m in &r.members {
                    println!("  member: {} {}", m.user_id, m.checks);
                }
                for d in &r.days {
                    println!(
                        "  day: {} {} checks, {} active members",
                        d.day, d.checks, d.active_members
                    );
                }
            })?;
        }
        UsageCommand::Instance { month } => {
            let r = c
                .get_instance_usage(pb::GetInstanceUsageRequest { month })
                .await?
                .into_inner();
            out.show(&r, || {
                println!("month: {}", r.month);
                println!("monthly active orgs: {}", r.monthly_active_orgs);
            })?;
        }
    }
    Ok(())
}
