//! `warden security get|set|sso-join`: per-org password policy and identity providers.
//!
//! `set` reads the whole settings from a JSON file, e.g.
//! `{"password": {"min_length": 12, "require_digit": true, "rotation_days": 90},
//!   "identity_providers": [{"id": "okta", "kind": "oidc", "issuer": "https://acme.okta.com",
//!   "client_id": "0oa1", "auto_join_role": "org_user"}]}`
//! (SAML: `"kind": "saml"` with `metadata_url` or `metadata_xml`).

use crate::api::pb;
use crate::cli::directory::{Common, Failure, channel, finish, print_revision};
use crate::directory::security::{IdpConfig, SecuritySettings};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SecurityArgs {
    #[command(subcommand)]
    pub command: SecurityCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecurityCommand {
    /// Show the org's password policy and identity providers.
    Get {
        /// The org's id.
        org_id: String,
    },
    /// Replace the settings with those of a JSON file (needs `security:manage`).
    Set {
        /// The org's id.
        org_id: String,
        /// A JSON file with the whole settings (password policy, identity providers).
        #[arg(long)]
        file: PathBuf,
    },
    /// As the login layer: the actor was authenticated by the org's provider; join with its
    /// auto-join role (Unix socket only).
    SsoJoin {
        /// The org's id.
        org_id: String,
        /// Id of the org's identity provider that authenticated the actor.
        #[arg(long)]
        idp: String,
    },
}

fn print_settings(s: &pb::SecuritySettings) {
    println!("security: {}", s.org_id);
    if let Some(p) = &s.password {
        println!(
            "  password: min_length {}, uppercase {}, lowercase {}, digit {}, symbol {}, rotation_days {}",
            p.min_length,
            p.require_uppercase,
            p.require_lowercase,
            p.require_digit,
            p.require_symbol,
            p.rotation_days
        );
    }
    for i in &s.identity_providers {
        let what = match &i.config {
            Some(pb::identity_provider::Config::Saml(s)) if !s.metadata_url.is_empty() => {
                format!("saml {}", s.metadata_url)
            }
            Some(pb::identity_provider::Config::Saml(_)) => "saml (inline metadata)".to_string(),
            Some(pb::identity_provider::Config::Oidc(o)) => {
                format!("oidc {} client {}", o.issuer, o.client_id)
            }
            None => "?".to_string(),
        };
        let join = if i.auto_join_role.is_empty() {
            String::new()
        } else {
            format!(", auto-join as {}", i.auto_join_role)
        };
        println!("  idp: {} {what}{join}", i.idp_id);
    }
}

fn to_pb(actor: String, org_id: String, s: SecuritySettings) -> pb::SetSecuritySettingsRequest {
    let p = s.password;
    pb::SetSecuritySettingsRequest {
        actor,
        org_id,
        password: Some(pb::PasswordPolicy {
            min_length: p.min_length,
            require_uppercase: p.require_uppercase,
            require_lowercase: p.require_lowercase,
            require_digit: p.require_digit,
            require_symbol: p.require_symbol,
            rotation_days: p.rotation_days,
        }),
        identity_providers: s
            .identity_providers
            .into_iter()
            .map(|i| pb::IdentityProvider {
                idp_id: i.id,
                config: Some(match i.config {
                    IdpConfig::Saml {
                        metadata_url,
                        metadata_xml,
                    } => pb::identity_provider::Config::Saml(pb::SamlProvider {
                        metadata_url: metadata_url.unwrap_or_default(),
                        metadata_xml: metadata_xml.unwrap_or_default(),
                    }),
                    IdpConfig::Oidc { issuer, client_id } => {
                        pb::identity_provider::Config::Oidc(pb::OidcProvider { issuer, client_id })
                    }
                }),
                auto_join_role: i.auto_join_role.unwrap_or_default(),
            })
            .collect(),
    }
}

pub async fn run(args: SecurityArgs) -> ExitCode {
    finish(security(args).await)
}

async fn security(args: SecurityArgs) -> crate::cli::directory::Outcome {
    let mut c = pb::security_service_client::SecurityServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        SecurityCommand::Get { org_id } => {
            let s = c
                .get_security_settings(pb::GetSecuritySettingsRequest {
                    min_revision: 0,
                    actor,
                    org_id,
                })
                .await?
                .into_inner();
            out.show(&s, || print_settings(&s))?;
        }
        SecurityCommand::Set { org_id, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::Other(anyhow::anyhow!("reading {}: {e}", file.display())))?;
            let settings: SecuritySettings = serde_json::from_str(&text)
                .map_err(|e| Failure::Other(anyhow::anyhow!("{}: {e}", file.display())))?;
            let r = c
                .set_security_settings(to_pb(actor, org_id, settings))
                .await?
                .into_inner();
            out.show(&r, || {
                r.settings.iter().for_each(print_settings);
                print_revision(r.revision);
            })?;
        }
        SecurityCommand::SsoJoin { org_id, idp } => {
            let r = c
                .sso_join(pb::SsoJoinRequest {
                    actor,
                    org_id,
                    idp_id: idp,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                println!("joined as {}", r.role);
                print_revision(r.revision);
            })?;
        }
    }
    Ok(())
}
