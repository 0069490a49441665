//! `warden invitation …` and `warden domain …`: the org lifecycle services from the command line.
//!
//! Same contract as the other directory commands (see [`super::directory`]): one call to a
//! running daemon, the result and the revision on stdout, exit 0 done, 1 refused, 2 anything
//! else. An invitation's secret code is printed once, by `create` / `bulk`, as `code: …`.

use super::directory::{Common, Outcome, channel, finish, print_member, print_revision};
use crate::api::pb;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct InvitationArgs {
    #[command(subcommand)]
    pub command: InvitationCommand,
    #[command(flatten)]
    pub common: Common,
}

/// The invitee: exactly one of `--email` and `--user`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct InviteeArgs {
    /// An email address (exactly one of --email and --user).
    #[arg(long)]
    email: Option<String>,
    /// An existing user id.
    #[arg(long)]
    user: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum InvitationCommand {
    /// Invite an email or an existing user; prints the secret code once.
    Create {
        /// The org's id.
        org_id: String,
        #[command(flatten)]
        invitee: InviteeArgs,
        /// Org role, as the policy defines them (the default policy: admin, org_contributor, team_contributor, org_user).
        #[arg(long)]
        role: String,
        /// Teams the invitee joins on accepting (repeatable).
        #[arg(long = "team")]
        teams: Vec<String>,
        /// 0: the instance default (`invitation_ttl_seconds` of limits.toml).
        #[arg(long, default_value_t = 0)]
        expires_in_seconds: u64,
    },
    /// Invite up to 100 people with one role; one result line per invitee.
    Bulk {
        /// The org's id.
        org_id: String,
        /// Repeatable.
        #[arg(long = "email")]
        emails: Vec<String>,
        /// Existing user ids (repeatable).
        #[arg(long = "user")]
        users: Vec<String>,
        /// Org role, as the policy defines them (the default policy: admin, org_contributor, team_contributor, org_user).
        #[arg(long)]
        role: String,
        /// Teams the invitees join on accepting (repeatable).
        #[arg(long = "team")]
        teams: Vec<String>,
        /// 0: the instance default (`invitation_ttl_seconds` of limits.toml).
        #[arg(long, default_value_t = 0)]
        expires_in_seconds: u64,
    },
    /// Revoke a pending invitation (needs `member:invite`).
    Revoke {
        /// The org's id.
        org_id: String,
        /// The invitation's id (from `invitation list`).
        invitation_id: String,
    },
    /// An org's invitations (needs `member:invite`).
    List {
        /// The org's id.
        org_id: String,
        /// pending, accepted, declined, revoked or expired; all when empty.
        #[arg(long, default_value = "")]
        status: String,
    },
    /// Invitations made out to a user (and their email) or to an email.
    Mine {
        /// Invitations to this user and to its email.
        #[arg(long, default_value = "")]
        user: String,
        /// Invitations to this email address.
        #[arg(long, default_value = "")]
        email: String,
        /// Default: pending.
        #[arg(long, default_value = "")]
        status: String,
    },
    /// Accept as the actor, with the code.
    Accept {
        /// The invitation's secret code.
        code: String,
        /// The org's terms-of-use version, when it has one.
        #[arg(long, default_value = "")]
        terms_version: String,
    },
    /// Decline as the actor, with the code.
    Decline {
        /// The invitation's secret code.
        code: String,
    },
}

fn print_invitation(i: &pb::Invitation) {
    let to = if i.email.is_empty() {
        format!("user {}", i.user_id)
    } else {
        format!("email {}", i.email)
    };
    println!(
        "invitation: {} to {} in {} as {} ({})",
        i.invitation_id, to, i.org_id, i.role, i.status
    );
    if !i.team_ids.is_empty() {
        println!("  teams: {}", i.team_ids.join(", "));
    }
    println!("  invited_by: {}", i.invited_by);
    if i.created_at_unix_ms != 0 {
        println!("  created: {}", crate::cli::time::rfc3339(i.created_at_unix_ms));
    }
    if i.resolved_at_unix_ms != 0 {
        println!("  resolved: {}", crate::cli::time::rfc3339(i.resolved_at_unix_ms));
    }
    println!("  expires: {}", crate::cli::time::rfc3339(i.expires_at_unix_ms));
}

pub async fn run_invitation(args: InvitationArgs) -> ExitCode {
    finish(invitation(args).await)
}

async fn invitation(args: InvitationArgs) -> Outcome {
    let mut c = pb::invitation_service_client::InvitationServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        InvitationCommand::Create {
            org_id,
            invitee,
            role,
            teams,
            expires_in_seconds,
        } => {
            let r = c
                .create_invitation(pb::CreateInvitationRequest {
                    actor,
                    org_id,
                    invitee: Some(pb::InvitationSpec {
                        email: invitee.email.unwrap_or_default(),
                        user_id: invitee.user.unwrap_or_default(),
                        role,
                        team_ids: teams,
                    }),
                    expires_in_seconds,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.invitation.iter().for_each(print_invitation);
                println!("code: {}", r.code);
                print_revision(r.revision);
            })?;
        }
        InvitationCommand::Bulk {
            org_id,
            emails,
            users,
            role,
            teams,
            expires_in_seconds,
        } => {
            let spec = |email: String, user_id: String| pb::InvitationSpec {
                email,
                user_id,
                role: role.clone(),
                team_ids: teams.clone(),
            };
            let invitees = emails
                .into_iter()
                .map(|e| spec(e, String::new()))
                .chain(users.into_iter().map(|u| spec(String::new(), u)))
                .collect();
            let r = c
                .bulk_create_invitations(pb::BulkCreateInvitationsRequest {
                    actor,
                    org_id,
                    invitees,
                    expires_in_seconds,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                for (i, res) in r.results.iter().enumerate() {
                    match &res.invitation {
                        Some(inv) => {
                            println!("[{i}] ok {} code: {}", inv.invitation_id, res.code);
                        }
                        None => println!("[{i}] refused {}: {}", res.error_code, res.error_message),
                    }
                }
                print_revision(r.revision);
            })?;
        }
        InvitationCommand::Revoke {
            org_id,
            invitation_id,
        } => {
            let r = c
                .revoke_invitation(pb::RevokeInvitationRequest {
                    actor,
                    org_id,
                    invitation_id,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        InvitationCommand::List { org_id, status } => {
            let mut page_token = String::new();
            let mut all = pb::ListInvitationsResponse::default();
            loop {
                let r = c
                    .list_org_invitations(pb::ListOrgInvitationsRequest {
                        min_revision: 0,
                        actor: actor.clone(),
                        org_id: org_id.clone(),
                        status: status.clone(),
                        page_size: 0,
                        page_token,
                    })
                    .await?
                    .into_inner();
                all.invitations.extend(r.invitations);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.invitations.iter().for_each(print_invitation);
                print_revision(all.revision);
            })?;
        }
        InvitationCommand::Mine { user, email, status } => {
            let r = c
                .list_user_invitations(pb::ListUserInvitationsRequest {
                    min_revision: 0,
                    actor,
                    user_id: user,
                    email,
                    status,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.invitations.iter().for_each(print_invitation);
                print_revision(r.revision);
            })?;
        }
        InvitationCommand::Accept { code, terms_version } => {
            let r = c
                .accept_invitation(pb::AcceptInvitationRequest {
                    actor,
                    code,
                    accepted_terms_version: terms_version,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.member.iter().for_each(print_member);
                print_revision(r.revision);
            })?;
        }
        InvitationCommand::Decline { code } => {
            let r = c
                .decline_invitation(pb::DeclineInvitationRequest { actor, code })
                .await?
                .into_inner();
            out.show(&r, || {
                r.invitation.iter().for_each(print_invitation);
                print_revision(r.revision);
            })?;
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DomainArgs {
    #[command(subcommand)]
    pub command: DomainCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum DomainCommand {
    /// Claim an email domain for an org; prints the token to publish.
    Add {
        /// The org's id.
        org_id: String,
        /// The email domain, e.g. example.com.
        domain: String,
        /// manual, automatic_invitation or automatic_suggestion [default: manual].
        #[arg(long, default_value = "")]
        mode: String,
        /// Role of users joining through it [default: org_user].
        #[arg(long, default_value = "")]
        role: String,
    },
    /// Mark a domain verified (on the Unix socket only), with its token.
    Verify {
        /// The org's id.
        org_id: String,
        /// The email domain, e.g. example.com.
        domain: String,
        /// The verification token `domain add` printed.
        token: String,
    },
    /// Change a domain's enrollment mode.
    Mode {
        /// The org's id.
        org_id: String,
        /// The email domain, e.g. example.com.
        domain: String,
        /// manual, automatic_invitation or automatic_suggestion.
        mode: String,
    },
    /// Remove a domain from the org.
    Remove {
        /// The org's id.
        org_id: String,
        /// The email domain, e.g. example.com.
        domain: String,
    },
    /// List the org's domains.
    List {
        /// The org's id.
        org_id: String,
    },
    /// What the user's email domain offers (invitations to join, suggestions to ask).
    Offers {
        /// The user whose email domain is looked up.
        #[arg(long)]
        user: String,
    },
    /// Join an org through an `automatic_invitation` domain, as the actor.
    Join {
        /// The org's id.
        org_id: String,
    },
    /// Ask to join an org through an `automatic_suggestion` domain, as the actor.
    Request {
        /// The org's id.
        org_id: String,
    },
    /// Membership requests of `--org` or of `--user`.
    Requests {
        /// Requests to join this org.
        #[arg(long, default_value = "")]
        org: String,
        /// Requests this user made.
        #[arg(long, default_value = "")]
        user: String,
        /// pending, approved or rejected; all when empty.
        #[arg(long, default_value = "")]
        status: String,
    },
    /// Approve a membership request; the user joins the org.
    Approve {
        /// The org's id.
        org_id: String,
        /// The membership request's id.
        request_id: String,
        /// Default: the domain's role.
        #[arg(long, default_value = "")]
        role: String,
    },
    /// Reject a membership request.
    Reject {
        /// The org's id.
        org_id: String,
        /// The membership request's id.
        request_id: String,
    },
}

fn print_domain(d: &pb::Domain) {
    println!(
        "domain: {} of {} ({}, {}, role {})",
        d.domain,
        d.org_id,
        if d.verified { "verified" } else { "unverified" },
        d.enrollment_mode,
        d.role
    );
    println!("  verification_token: {}", d.verification_token);
    if d.verified_at_unix_ms != 0 {
        println!("  verified: {}", crate::cli::time::rfc3339(d.verified_at_unix_ms));
    }
}

fn print_request(r: &pb::MembershipRequest) {
    println!(
        "request: {} from {} to {} via {} ({}{})",
        r.request_id,
        r.user_id,
        r.org_id,
        r.domain,
        r.status,
        if r.role.is_empty() {
            String::new()
        } else {
            format!(" as {}", r.role)
        }
    );
    if r.created_at_unix_ms != 0 {
        println!("  created: {}", crate::cli::time::rfc3339(r.created_at_unix_ms));
    }
}

pub async fn run_domain(args: DomainArgs) -> ExitCode {
    finish(domain(args).await)
}

async fn domain(args: DomainArgs) -> Outcome {
    let mut c = pb::domain_service_client::DomainServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        DomainCommand::Add {
            org_id,
            domain,
            mode,
            role,
        } => {
            let r = c
                .add_domain(pb::AddDomainRequest {
                    actor,
                    org_id,
                    domain,
                    enrollment_mode: mode,
                    role,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.domain.iter().for_each(print_domain);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Verify {
            org_id,
            domain,
            token,
        } => {
            let r = c
                .verify_domain(pb::VerifyDomainRequest {
                    actor,
                    org_id,
                    domain,
                    verification_token: token,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.domain.iter().for_each(print_domain);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Mode { org_id, domain, mode } => {
            let r = c
                .set_domain_enrollment(pb::SetDomainEnrollmentRequest {
                    actor,
                    org_id,
                    domain,
                    enrollment_mode: mode,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.domain.iter().for_each(print_domain);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Remove { org_id, domain } => {
            let r = c
                .remove_domain(pb::RemoveDomainRequest {
                    actor,
                    org_id,
                    domain,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        DomainCommand::List { org_id } => {
            let r = c
                .list_domains(pb::ListDomainsRequest {
                    min_revision: 0,
                    actor,
                    org_id,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.domains.iter().for_each(print_domain);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Offers { user } => {
            let r = c
                .list_domain_offers(pb::ListDomainOffersRequest {
                    min_revision: 0,
                    actor,
                    user_id: user,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                for o in &r.offers {
                    println!(
                        "offer: {} to {} via {} as {}{}",
                        o.kind,
                        o.org_id,
                        o.domain,
                        o.role,
                        if o.member { " (already a member)" } else { "" }
                    );
                }
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Join { org_id } => {
            let r = c
                .join_by_domain(pb::JoinByDomainRequest { actor, org_id })
                .await?
                .into_inner();
            out.show(&r, || {
                r.member.iter().for_each(print_member);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Request { org_id } => {
            let r = c
                .request_membership(pb::RequestMembershipRequest { actor, org_id })
                .await?
                .into_inner();
            out.show(&r, || {
                r.request.iter().for_each(print_request);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Requests { org, user, status } => {
            let r = c
                .list_membership_requests(pb::ListMembershipRequestsRequest {
                    min_revision: 0,
                    actor,
                    org_id: org,
                    user_id: user,
                    status,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.requests.iter().for_each(print_request);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Approve {
            org_id,
            request_id,
            role,
        } => {
            let r = c
                .approve_membership_request(pb::ApproveMembershipRequestRequest {
                    actor,
                    org_id,
                    request_id,
                    role,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.request.iter().for_each(print_request);
                print_revision(r.revision);
            })?;
        }
        DomainCommand::Reject { org_id, request_id } => {
            let r = c
                .reject_membership_request(pb::RejectMembershipRequestRequest {
                    actor,
                    org_id,
                    request_id,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.request.iter().for_each(print_request);
                print_revision(r.revision);
            })?;
        }
    }
    Ok(())
}
