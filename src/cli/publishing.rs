//! `warden publish submit|approve|reject|list`: the publishing review of org apps.

use crate::api::pb;
use crate::cli::directory::{Common, channel, finish, print_revision};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(subcommand)]
    pub command: PublishCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum PublishCommand {
    /// Submit a version of an org app for review (needs `app:publish`).
    Submit {
        /// The app's id.
        app_id: String,
        /// The version string, e.g. 1.2.0.
        version: String,
        /// A note for the reviewers.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Approve a pending version (needs `app:approve`).
    Approve {
        /// The app's id.
        app_id: String,
        /// The version string, e.g. 1.2.0.
        version: String,
        /// Why, kept with the decision.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reject a pending version (needs `app:approve`).
    Reject {
        /// The app's id.
        app_id: String,
        /// The version string, e.g. 1.2.0.
        version: String,
        /// Why, kept with the decision.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List an app's versions, optionally only `--state pending|approved|rejected`.
    List {
        /// The app's id.
        app_id: String,
        /// pending, approved or rejected; all when empty.
        #[arg(long, default_value = "")]
        state: String,
    },
}

fn print_version(v: &pb::AppVersion) {
    println!(
        "version: {} of {} is {} (submitted by {})",
        v.version, v.app_id, v.state, v.submitted_by
    );
    if v.submitted_at_unix_ms != 0 {
        println!(
            "  submitted: {}",
            crate::cli::time::rfc3339(v.submitted_at_unix_ms)
        );
    }
    if !v.reviewed_by.is_empty() {
        println!("  reviewed by: {}", v.reviewed_by);
    }
    if v.reviewed_at_unix_ms != 0 {
        println!("  reviewed: {}", crate::cli::time::rfc3339(v.reviewed_at_unix_ms));
    }
    if !v.reason.is_empty() {
        println!("  reason: {}", v.reason);
    }
}

pub async fn run(args: PublishArgs) -> ExitCode {
    finish(publish(args).await)
}

async fn publish(args: PublishArgs) -> crate::cli::directory::Outcome {
    let mut c = pb::publishing_service_client::PublishingServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    let review = |app_id, version, approve, reason| pb::ReviewAppVersionRequest {
        actor: actor.clone(),
        app_id,
        version,
        approve,
        reason,
    };
    match args.command {
        PublishCommand::Submit {
            app_id,
            version,
            note,
        } => {
            let r = c
                .submit_app_version(pb::SubmitAppVersionRequest {
                    actor: actor.clone(),
                    app_id,
                    version,
                    note,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.version.iter().for_each(print_version);
                print_revision(r.revision);
            })?;
        }
        PublishCommand::Approve {
            app_id,
            version,
            reason,
        } => {
            let r = c
                .review_app_version(review(app_id, version, true, reason))
                .await?
                .into_inner();
            out.show(&r, || {
                r.version.iter().for_each(print_version);
                print_revision(r.revision);
            })?;
        }
        PublishCommand::Reject {
            app_id,
            version,
            reason,
        } => {
            let r = c
                .review_app_version(review(app_id, version, false, reason))
                .await?
                .into_inner();
            out.show(&r, || {
                r.version.iter().for_each(print_version);
                print_revision(r.revision);
            })?;
        }
        PublishCommand::List { app_id, state } => {
            let mut page_token = String::new();
            let mut all = pb::ListAppVersionsResponse::default();
            loop {
                let r = c
                    .list_app_versions(pb::ListAppVersionsRequest {
                        min_revision: 0,
                        actor: actor.clone(),
                        app_id: app_id.clone(),
                        state: state.clone(),
                        page_size: 0,
                        page_token,
                    })
                    .await?
                    .into_inner();
                all.versions.extend(r.versions);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.versions.iter().for_each(print_version);
                print_revision(all.revision);
            })?;
        }
    }
    Ok(())
}
