//! `warden audit [ORG]`: the audit log from the command line, newest first, one change a line
//! (`revision  time  actor  type  org  change-json`). Follows every page up to `--limit`;
//! with `--json`, one `ListAuditEntriesResponse` holding them all (see [`crate::cli::json`]).

use crate::api::pb;
use crate::cli::directory::{Common, channel, finish, print_revision};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The org whose changes to list (needs `audit:read`); omit for the whole instance
    /// (Unix socket only).
    #[arg(default_value = "")]
    pub org_id: String,
    /// Only changes made by this user.
    #[arg(long, default_value = "")]
    pub by: String,
    /// Only changes of this type (`add_member`, `create_token`, …).
    #[arg(long = "type", default_value = "")]
    pub change_type: String,
    /// Only changes at or after this time (RFC 3339 in UTC, or Unix ms).
    #[arg(long, default_value = "0", value_name = "TIME", value_parser = crate::cli::time::parse_time)]
    pub since: u64,
    /// Only changes before this time (RFC 3339 in UTC, or Unix ms).
    #[arg(long, default_value = "0", value_name = "TIME", value_parser = crate::cli::time::parse_time)]
    pub until: u64,
    /// Stop after this many entries.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: AuditArgs) -> ExitCode {
    finish(audit(args).await)
}

async fn audit(args: AuditArgs) -> crate::cli::directory::Outcome {
    let mut c = pb::audit_service_client::AuditServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let mut page_token = String::new();
    let mut all = pb::ListAuditEntriesResponse::default();
    loop {
        let r = c
            .list_audit_entries(pb::ListAuditEntriesRequest {
                actor: args.common.actor.clone(),
                org_id: args.org_id.clone(),
                by: args.by.clone(),
                change_type: args.change_type.clone(),
                since_unix_ms: args.since,
                until_unix_ms: args.until,
                page_size: u32::try_from(args.limit.saturating_sub(all.entries.len()).min(1000))
                    .unwrap_or(1000),
                page_token,
            })
            .await?
            .into_inner();
        all.revision = all.revision.max(r.revision);
        all.entries.extend(r.entries);
        if r.next_page_token.is_empty() || all.entries.len() >= args.limit {
            break;
        }
        page_token = r.next_page_token;
    }
    out.show(&all, || {
        for e in &all.entries {
            let org = if e.org_id.is_empty() {
                "-"
            } else {
                e.org_id.as_str()
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                e.revision,
                crate::cli::time::rfc3339(e.at_unix_ms),
                e.actor,
                e.change_type,
                org,
                e.change_json
            );
        }
        print_revision(all.revision);
    })?;
    Ok(())
}
