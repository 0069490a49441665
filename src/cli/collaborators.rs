//! `warden collaborator add|remove|list`: users outside an org with a role on one of its apps.

use crate::api::pb;
use crate::cli::directory::{Common, channel, finish, print_revision};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CollaboratorArgs {
    #[command(subcommand)]
    pub command: CollaboratorCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum CollaboratorCommand {
    /// Give a user outside the app's org a role on this app only (needs `collaborator:manage`).
    Add {
        /// The app's id.
        app_id: String,
        /// The user's id.
        user_id: String,
        /// App role the collaborator gets on this app.
        #[arg(long)]
        role: String,
    },
    /// Take a collaborator's role on the app away.
    Remove {
        /// The app's id.
        app_id: String,
        /// The user's id.
        user_id: String,
    },
    /// List the app's collaborators and their roles.
    List {
        /// The app's id.
        app_id: String,
    },
}

fn print_collaborator(c: &pb::Collaborator) {
    println!(
        "collaborator: {} on {} as {} (added by {})",
        c.user_id, c.app_id, c.role, c.added_by
    );
    if c.added_at_unix_ms != 0 {
        println!("  added: {}", crate::cli::time::rfc3339(c.added_at_unix_ms));
    }
}

pub async fn run(args: CollaboratorArgs) -> ExitCode {
    finish(collaborator(args).await)
}

async fn collaborator(args: CollaboratorArgs) -> crate::cli::directory::Outcome {
    let mut c = pb::collaborator_service_client::CollaboratorServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        CollaboratorCommand::Add {
            app_id,
            user_id,
            role,
        } => {
            let r = c
                .add_collaborator(pb::AddCollaboratorRequest {
                    actor,
                    app_id,
                    user_id,
                    role,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.collaborator.iter().for_each(print_collaborator);
                print_revision(r.revision);
            })?;
        }
        CollaboratorCommand::Remove { app_id, user_id } => {
            let r = c
                .remove_collaborator(pb::RemoveCollaboratorRequest {
                    actor,
                    app_id,
                    user_id,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        CollaboratorCommand::List { app_id } => {
            let mut page_token = String::new();
            let mut all = pb::ListCollaboratorsResponse::default();
            loop {
                let r = c
                    .list_collaborators(pb::ListCollaboratorsRequest {
                        min_revision: 0,
                        actor: actor.clone(),
                        app_id: app_id.clone(),
                        page_size: 0,
                        page_token,
                    })
                    .await?
                    .into_inner();
                all.collaborators.extend(r.collaborators);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.collaborators.iter().for_each(print_collaborator);
                print_revision(all.revision);
            })?;
        }
    }
    Ok(())
}
