//! `warden token create|list|revoke`: API tokens from the command line.
//!
//! `create` prints the secret once, on its own line (`secret: wdn_…`), so a script can capture
//! it; Warden cannot show it again. Exit codes are those of the directory commands.

use crate::api::pb;
use crate::cli::directory::{Common, OwnerArgs, channel, finish, owner_text, print_revision};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a personal token (--user, the actor itself) or an org key (--org, needs
    /// `token:manage`); prints the secret once.
    Create {
        #[command(flatten)]
        owner: OwnerArgs,
        /// A name to tell the token apart in `token list`.
        #[arg(long)]
        name: String,
        /// Org keys: the org role the key acts with.
        #[arg(long, default_value = "")]
        role: String,
        /// An action the token may be used for. Repeatable; at least one.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime in seconds from now [default: never expires].
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List the tokens of a user or an org (revoked ones included).
    List {
        #[command(flatten)]
        owner: OwnerArgs,
    },
    /// Revoke a token; it stops working at once.
    Revoke {
        /// The token's id (from `token list`), not its secret.
        token_id: String,
    },
}

fn when(ms: u64) -> String {
    if ms == 0 {
        "never".into()
    } else {
        crate::cli::time::rfc3339(ms)
    }
}

fn print_token(t: &pb::Token) {
    println!(
        "token: {} ({}) owned by {}",
        t.token_id,
        t.name,
        owner_text(t.owner.as_ref())
    );
    if !t.role.is_empty() {
        println!("  role: {}", t.role);
    }
    println!("  scopes: {}", t.scopes.join(", "));
    println!("  expires: {}", when(t.expires_at_unix_ms));
    if t.revoked_at_unix_ms != 0 {
        println!("  revoked: {}", when(t.revoked_at_unix_ms));
    }
    println!("  last used: {}", when(t.last_used_at_unix_ms));
}

pub async fn run(args: TokenArgs) -> ExitCode {
    finish(token(args).await)
}

async fn token(args: TokenArgs) -> crate::cli::directory::Outcome {
    let mut c = pb::token_service_client::TokenServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        TokenCommand::Create {
            owner,
            name,
            role,
            scopes,
            expires_in,
        } => {
            let expires_at_unix_ms = match expires_in {
                Some(secs) => crate::api::directory::now_ms().saturating_add(secs.saturating_mul(1000)),
                None => 0,
            };
            let r = c
                .create_token(pb::CreateTokenRequest {
                    actor,
                    owner: Some(owner.to_pb()),
                    name,
                    role,
                    scopes,
                    expires_at_unix_ms,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.token.iter().for_each(print_token);
                println!("secret: {}", r.secret);
                print_revision(r.revision);
            })?;
        }
        TokenCommand::List { owner } => {
            let mut page_token = String::new();
            let mut all = pb::ListTokensResponse::default();
            loop {
                let r = c
                    .list_tokens(pb::ListTokensRequest {
                        min_revision: 0,
                        actor: actor.clone(),
                        owner: Some(owner.to_pb()),
                        page_size: 0,
                        page_token,
                    })
                    .await?
                    .into_inner();
                all.tokens.extend(r.tokens);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.tokens.iter().for_each(print_token);
                print_revision(all.revision);
            })?;
        }
        TokenCommand::Revoke { token_id } => {
            let r = c
                .revoke_token(pb::RevokeTokenRequest { actor, token_id })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
    }
    Ok(())
}
