//! `warden org|member|team|app|user …`: the directory services from the command line.
//!
//! Each command makes one call (lists follow every page) to a running daemon and prints the
//! result and the directory revision it was read or written at. Exit codes let scripts branch
//! without parsing: 0 done, 1 refused by the directory (permission, precondition, not found,
//! already exists), 2 anything else (bad arguments, daemon unreachable, storage failure).

use crate::api::client;
use crate::api::pb;
use crate::cli::connect::ConnectArg;
use crate::cli::json::Output;
use std::process::ExitCode;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub const EXIT_OK: u8 = 0;
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Flags every directory command takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The user on whose behalf the change or read is made; the daemon authorizes it.
    /// Required.
    #[arg(
        long,
        global = true,
        env = "WARDEN_ACTOR",
        default_value = "",
        hide_default_value = true
    )]
    pub actor: String,
    /// Print the daemon's answer as one JSON document (proto field names, times as Unix
    /// milliseconds in the `*_ms` fields; a list: every page in one answer).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArg,
}

impl Common {
    pub(crate) fn output(&self) -> Output {
        Output { json: self.json }
    }
}

#[derive(Debug, clap::Args)]
pub struct OrgArgs {
    #[command(subcommand)]
    pub command: OrgCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// Create an org; the actor becomes its first admin.
    Create {
        /// The org's id.
        org_id: String,
        /// Display name of the org.
        #[arg(long)]
        name: String,
        /// Where billing mail goes.
        #[arg(long, default_value = "")]
        billing_email: String,
        /// Plan id of limits.toml [default: its default_plan, `free`]; another plan only
        /// on the Unix socket (the operator).
        #[arg(long, default_value = "")]
        plan: String,
        /// URL of the org's logo.
        #[arg(long, default_value = "")]
        logo_url: String,
    },
    /// Show an org.
    Get {
        /// The org's id.
        org_id: String,
    },
    /// Change the given fields; the others keep their value.
    Update {
        /// The org's id.
        org_id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New billing email.
        #[arg(long)]
        billing_email: Option<String>,
        /// Needs `billing:manage` in the org, or the Unix socket.
        #[arg(long)]
        plan: Option<String>,
        /// New logo URL.
        #[arg(long)]
        logo_url: Option<String>,
        /// Membership limit of this org (pending invitations count); 0 = the instance's
        /// `default_membership_limit`.
        #[arg(long)]
        max_memberships: Option<u32>,
        /// Whether admins may delete the org.
        #[arg(long)]
        deletable: Option<bool>,
        /// Terms-of-use version joining members must accept ("" for none).
        #[arg(long)]
        terms_version: Option<String>,
    },
    /// Refused while the org owns apps, unless `--force` (needs `org:force_delete`).
    Delete {
        /// The org's id.
        org_id: String,
        /// Delete the org's apps with it.
        #[arg(long)]
        force: bool,
    },
    /// List the orgs of `--user` (or every org, on the Unix socket).
    List {
        /// The orgs this user is a member of.
        #[arg(long, default_value = "")]
        user: String,
        /// Substring of the org id or name.
        #[arg(long, default_value = "")]
        query: String,
        /// `id`, `name`, `created_at`, `updated_at` or `member_count`, then optionally ` desc`.
        #[arg(long, default_value = "")]
        order_by: String,
    },
    /// The actor leaves the org (and its teams); the last admin cannot.
    Leave {
        /// The org's id.
        org_id: String,
    },
    /// The instance limits and plans in force (policies/limits.toml).
    Limits,
}

#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: MemberCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum MemberCommand {
    /// Add a user to an org with a role (needs `member:manage`).
    Add {
        /// The org's id.
        org_id: String,
        /// The user's id.
        user_id: String,
        /// Org role, as the policy defines them (the default policy: admin, org_contributor, team_contributor, org_user).
        #[arg(long)]
        role: String,
    },
    /// Change a member's role.
    Role {
        /// The org's id.
        org_id: String,
        /// The user's id.
        user_id: String,
        /// The new role. Org role, as the policy defines them (the default policy: admin, org_contributor, team_contributor, org_user).
        role: String,
    },
    /// Remove a member from the org (and its teams); the last admin stays.
    Remove {
        /// The org's id.
        org_id: String,
        /// The user's id.
        user_id: String,
    },
    /// List an org's members with their roles.
    List {
        /// The org's id.
        org_id: String,
        /// Substring of the user id, username or email.
        #[arg(long, default_value = "")]
        query: String,
        /// Only members with this role; all when empty.
        #[arg(long, default_value = "")]
        role: String,
        /// `id`, `created_at` or `updated_at`, then optionally ` desc`.
        #[arg(long, default_value = "")]
        order_by: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct TeamArgs {
    #[command(subcommand)]
    pub command: TeamCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum TeamCommand {
    /// Create a team in an org.
    Create {
        /// The org's id.
        org_id: String,
        /// The team's id (unique within the org).
        team_id: String,
        /// Display name of the team.
        #[arg(long)]
        name: String,
    },
    /// Change a team's display name.
    Rename {
        /// The org's id.
        org_id: String,
        /// The team's id (unique within the org).
        team_id: String,
        /// The new display name.
        name: String,
    },
    /// Delete a team (its members stay in the org).
    Delete {
        /// The org's id.
        org_id: String,
        /// The team's id (unique within the org).
        team_id: String,
    },
    /// List an org's teams.
    List {
        /// The org's id.
        org_id: String,
    },
    /// Add an org member to a team.
    AddMember {
        /// The org's id.
        org_id: String,
        /// The team's id (unique within the org).
        team_id: String,
        /// The user's id.
        user_id: String,
    },
    /// Remove a member from a team.
    RemoveMember {
        /// The org's id.
        org_id: String,
        /// The team's id (unique within the org).
        team_id: String,
        /// The user's id.
        user_id: String,
    },
    /// Give a team access to one app of its org.
    Grant {
        /// The org's id.
        org_id: String,
        /// The team's id (unique within the org).
        team_id: String,
        /// The app's id.
        app_id: String,
    },
    /// Take a team's access to an app away.
    Revoke {
        /// The org's id.
        org_id: String,
        /// The team's id (unique within the org).
        team_id: String,
        /// The app's id.
        app_id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct AppArgs {
    #[command(subcommand)]
    pub command: AppCommand,
    #[command(flatten)]
    pub common: Common,
}

/// An app's owner: exactly one of `--org` and `--user`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct OwnerArgs {
    /// The owner is this org (exactly one of --org and --user).
    #[arg(long)]
    pub org: Option<String>,
    /// The owner is this user (exactly one of --org and --user).
    #[arg(long)]
    pub user: Option<String>,
}

impl OwnerArgs {
    pub(crate) fn to_pb(&self) -> pb::Owner {
        let owner = match (&self.org, &self.user) {
            (Some(org), _) => pb::owner::Owner::OrgId(org.clone()),
            (None, Some(user)) => pb::owner::Owner::UserId(user.clone()),
            (None, None) => return pb::Owner { owner: None },
        };
        pb::Owner { owner: Some(owner) }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    Create {
        /// The app's id.
        app_id: String,
        #[command(flatten)]
        owner: OwnerArgs,
        /// Display name of the app.
        #[arg(long)]
        name: String,
        /// Repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Show an app: owner, name, labels.
    Get {
        /// The app's id.
        app_id: String,
    },
    /// Delete an app.
    Delete {
        /// The app's id.
        app_id: String,
    },
    List {
        #[command(flatten)]
        owner: OwnerArgs,
        /// Substring of the app id or name.
        #[arg(long, default_value = "")]
        query: String,
        /// Only apps carrying this label (repeat for several: all must be carried).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// `id`, `name`, `created_at` or `updated_at`, then optionally ` desc`.
        #[arg(long, default_value = "")]
        order_by: String,
    },
    /// Move a personal app into an org (the id stays).
    Transfer {
        /// The app's id.
        app_id: String,
        /// The org that receives the app.
        #[arg(long)]
        to_org: String,
        /// A new display name [default: keep the current one].
        #[arg(long, default_value = "")]
        new_name: String,
    },
    /// Replace an app's labels (grants, collaborators and versions stay).
    Labels {
        /// The app's id.
        app_id: String,
        /// The new labels, repeatable; they replace all current ones.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Remove every label (instead of giving `--label`).
        #[arg(long, conflicts_with = "labels")]
        clear: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create the user or replace its profile.
    Upsert {
        /// The user's id.
        user_id: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The user's display username.
        #[arg(long, default_value = "")]
        username: String,
        /// The login layer verified the email (only on the Unix socket); `false` drops a
        /// verification. Without it a verification is kept while the email stays the same.
        #[arg(long)]
        email_verified: Option<bool>,
    },
    /// Show a user's profile.
    Get {
        /// The user's id.
        user_id: String,
    },
}

/// What went wrong, sorted by exit code.
pub(crate) enum Failure {
    Status(Status),
    Other(anyhow::Error),
}

impl From<Status> for Failure {
    fn from(s: Status) -> Self {
        Failure::Status(s)
    }
}

impl From<client::ConnectError> for Failure {
    fn from(e: client::ConnectError) -> Self {
        Failure::Other(e.into())
    }
}

pub(crate) type Outcome = Result<(), Failure>;

/// Run a directory command and turn its outcome into the exit code.
pub(crate) fn finish(result: Outcome) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(Failure::Status(s)) => {
            // The message names the field or the missing permission; the exit code carries
            // the class (refused vs. error), so no gRPC code name in front of it.
            eprintln!("error: {}", s.message());
            ExitCode::from(match s.code() {
                Code::PermissionDenied | Code::FailedPrecondition | Code::NotFound | Code::AlreadyExists => {
                    EXIT_REFUSED
                }
                _ => EXIT_ERROR,
            })
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Connect to the daemon, once the flags every directory call needs are present: without
/// an actor the daemon could only refuse the call, in terms of its wire field.
pub(crate) async fn channel(common: &Common) -> Result<Channel, Failure> {
    if common.actor.is_empty() {
        return Err(Failure::Other(anyhow::anyhow!(
            "--actor is required (or set WARDEN_ACTOR): the user on whose behalf the call is made"
        )));
    }
    common.connect.channel().await.map_err(Failure::Other)
}

pub(crate) fn print_revision(revision: u64) {
    println!("revision: {revision}");
}

fn print_org(o: &pb::Org) {
    println!("org: {}", o.org_id);
    println!("  name: {}", o.name);
    println!("  plan: {}", o.plan);
    if !o.billing_email.is_empty() {
        println!("  billing_email: {}", o.billing_email);
    }
    if !o.logo_url.is_empty() {
        println!("  logo_url: {}", o.logo_url);
    }
    println!("  created_by: {}", o.created_by);
    if o.created_at_unix_ms != 0 {
        println!("  created: {}", crate::cli::time::rfc3339(o.created_at_unix_ms));
    }
    println!("  members: {}", o.member_count);
    if let Some(st) = &o.settings {
        let limit = match st.max_memberships.unwrap_or(0) {
            0 => "the instance default".to_string(),
            n => n.to_string(),
        };
        println!("  max_memberships: {limit}");
        println!("  deletable: {}", st.deletable.unwrap_or(true));
        if let Some(v) = st.terms_version.as_deref().filter(|v| !v.is_empty()) {
            println!("  terms_version: {v}");
        }
    }
}

pub(crate) fn print_member(m: &pb::Member) {
    println!(
        "member: {} in {} as {}{}{}",
        m.user_id,
        m.org_id,
        m.role,
        if m.team_ids.is_empty() {
            String::new()
        } else {
            format!(" (teams: {})", m.team_ids.join(", "))
        },
        if m.terms_version.is_empty() {
            String::new()
        } else {
            format!(" (accepted terms {})", m.terms_version)
        },
    );
    if m.created_at_unix_ms != 0 {
        println!("  joined: {}", crate::cli::time::rfc3339(m.created_at_unix_ms));
    }
}

fn print_team(t: &pb::Team) {
    println!("team: {} in {} ({})", t.team_id, t.org_id, t.name);
    println!("  members: {}", t.member_ids.join(", "));
    let apps: Vec<&str> = t.app_grants.iter().map(|g| g.app_id.as_str()).collect();
    println!("  apps: {}", apps.join(", "));
}

pub(crate) fn owner_text(o: Option<&pb::Owner>) -> String {
    match o.and_then(|o| o.owner.as_ref()) {
        Some(pb::owner::Owner::UserId(u)) => format!("user {u}"),
        Some(pb::owner::Owner::OrgId(o)) => format!("org {o}"),
        None => "nobody".into(),
    }
}

fn print_app(a: &pb::App) {
    println!(
        "app: {} ({}) owned by {}",
        a.app_id,
        a.name,
        owner_text(a.owner.as_ref())
    );
    if !a.labels.is_empty() {
        println!("  labels: {}", a.labels.join(", "));
    }
}

fn print_user(u: &pb::User) {
    println!("user: {}", u.user_id);
    println!(
        "  email: {}{}",
        u.email,
        if u.email_verified { " (verified)" } else { "" }
    );
    if !u.username.is_empty() {
        println!("  username: {}", u.username);
    }
}

pub async fn run_org(args: OrgArgs) -> ExitCode {
    finish(org(args).await)
}

async fn org(args: OrgArgs) -> Outcome {
    let ch = channel(&args.common).await?;
    let mut c = pb::org_service_client::OrgServiceClient::new(ch.clone());
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        OrgCommand::Create {
            org_id,
            name,
            billing_email,
            plan,
            logo_url,
        } => {
            let r = c
                .create_org(pb::CreateOrgRequest {
                    actor,
                    org_id,
                    name,
                    billing_email,
                    plan,
                    logo_url,
                    ..Default::default()
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.org.iter().for_each(print_org);
                print_revision(r.revision);
            })?;
        }
        OrgCommand::Get { org_id } => {
            let o = c
                .get_org(pb::GetOrgRequest {
                    min_revision: 0,
                    org_id,
                    actor,
                })
                .await?
                .into_inner();
            out.show(&o, || print_org(&o))?;
        }
        OrgCommand::Update {
            org_id,
            name,
            billing_email,
            plan,
            logo_url,
            max_memberships,
            deletable,
            terms_version,
        } => {
            // Only the settings given are sent; the others keep their value on the server.
            let settings = (max_memberships.is_some() || deletable.is_some() || terms_version.is_some())
                .then_some(pb::OrgSettings {
                    max_memberships,
                    deletable,
                    terms_version,
                });
            let r = c
                .update_org(pb::UpdateOrgRequest {
                    actor,
                    org_id,
                    name,
                    billing_email,
                    plan,
                    logo_url,
                    settings,
                    ..Default::default()
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.org.iter().for_each(print_org);
                print_revision(r.revision);
            })?;
        }
        OrgCommand::Delete { org_id, force } => {
            let r = c
                .delete_org(pb::DeleteOrgRequest { actor, org_id, force })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        OrgCommand::Leave { org_id } => {
            let mut l = pb::org_lifecycle_service_client::OrgLifecycleServiceClient::new(ch.clone());
            let r = l
                .leave_org(pb::LeaveOrgRequest { actor, org_id })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        OrgCommand::Limits => {
            let mut l = pb::org_lifecycle_service_client::OrgLifecycleServiceClient::new(ch.clone());
            let x = l.get_limits(pb::GetLimitsRequest {}).await?.into_inner();
            if out.json {
                return out.show(&x, || ());
            }
            let n = |v: u32| if v == 0 { "none".to_string() } else { v.to_string() };
            println!("users_can_create_orgs: {}", x.users_can_create_orgs);
            println!("max_orgs_created_per_user: {}", n(x.max_orgs_created_per_user));
            println!("max_admin_orgs_per_user: {}", n(x.max_admin_orgs_per_user));
            println!("one_org_per_user: {}", x.one_org_per_user);
            println!("default_membership_limit: {}", n(x.default_membership_limit));
            println!("invitation_ttl_seconds: {}", x.invitation_ttl_seconds);
            if !x.default_plan.is_empty() {
                println!("default_plan: {}", x.default_plan);
            }
            for p in &x.plans {
                println!(
                    "plan: {} roles: [{}] max_orgs_per_user: {} teams: {}",
                    p.plan_id,
                    p.roles.join(", "),
                    n(p.max_orgs_per_user),
                    p.teams
                );
            }
        }
        OrgCommand::List {
            user,
            query,
            order_by,
        } => {
            let mut page_token = String::new();
            let mut all = pb::ListOrgsResponse::default();
            loop {
                let r = c
                    .list_orgs(pb::ListOrgsRequest {
                        all: false,
                        min_revision: 0,
                        user_id: user.clone(),
                        query: query.clone(),
                        order_by: order_by.clone(),
                        page_size: 0,
                        page_token,
                        actor: actor.clone(),
                    })
                    .await?
                    .into_inner();
                all.orgs.extend(r.orgs);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.orgs.iter().for_each(print_org);
                print_revision(all.revision);
            })?;
        }
    }
    Ok(())
}

pub async fn run_member(args: MemberArgs) -> ExitCode {
    finish(member(args).await)
}

async fn member(args: MemberArgs) -> Outcome {
    let mut c = pb::member_service_client::MemberServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        MemberCommand::Add {
            org_id,
            user_id,
            role,
        } => {
            let r = c
                .add_member(pb::AddMemberRequest {
                    actor,
                    org_id,
                    user_id,
                    role,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.member.iter().for_each(print_member);
                print_revision(r.revision);
            })?;
        }
        MemberCommand::Role {
            org_id,
            user_id,
            role,
        } => {
            let r = c
                .update_member_role(pb::UpdateMemberRoleRequest {
                    actor,
                    org_id,
                    user_id,
                    role,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.member.iter().for_each(print_member);
                print_revision(r.revision);
            })?;
        }
        MemberCommand::Remove { org_id, user_id } => {
            let r = c
                .remove_member(pb::RemoveMemberRequest {
                    actor,
                    org_id,
                    user_id,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        MemberCommand::List {
            org_id,
            query,
            role,
            order_by,
        } => {
            let mut page_token = String::new();
            let mut all = pb::ListMembersResponse::default();
            loop {
                let r = c
                    .list_members(pb::ListMembersRequest {
                        min_revision: 0,
                        org_id: org_id.clone(),
                        query: query.clone(),
                        role: role.clone(),
                        order_by: order_by.clone(),
                        page_size: 0,
                        page_token,
                        actor: actor.clone(),
                    })
                    .await?
                    .into_inner();
                all.members.extend(r.members);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.members.iter().for_each(print_member);
                print_revision(all.revision);
            })?;
        }
    }
    Ok(())
}

pub async fn run_team(args: TeamArgs) -> ExitCode {
    finish(team(args).await)
}

async fn team(args: TeamArgs) -> Outcome {
    let mut c = pb::team_service_client::TeamServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        TeamCommand::Create {
            org_id,
            team_id,
            name,
        } => {
            let r = c
                .create_team(pb::CreateTeamRequest {
                    actor,
                    org_id,
                    team_id,
                    name,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.team.iter().for_each(print_team);
                print_revision(r.revision);
            })?;
        }
        TeamCommand::Rename {
            org_id,
            team_id,
            name,
        } => {
            let r = c
                .rename_team(pb::RenameTeamRequest {
                    actor,
                    org_id,
                    team_id,
                    name,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.team.iter().for_each(print_team);
                print_revision(r.revision);
            })?;
        }
        TeamCommand::Delete { org_id, team_id } => {
            let r = c
                .delete_team(pb::DeleteTeamRequest {
                    actor,
                    org_id,
                    team_id,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        TeamCommand::List { org_id } => {
            let mut page_token = String::new();
            let mut all = pb::ListTeamsResponse::default();
            loop {
                let r = c
                    .list_teams(pb::ListTeamsRequest {
                        omit_member_ids: false,
                        min_revision: 0,
                        org_id: org_id.clone(),
                        page_size: 0,
                        page_token,
                        actor: actor.clone(),
                    })
                    .await?
                    .into_inner();
                all.teams.extend(r.teams);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.teams.iter().for_each(print_team);
                print_revision(all.revision);
            })?;
        }
        TeamCommand::AddMember {
            org_id,
            team_id,
            user_id,
        } => {
            let r = c
                .add_team_member(pb::AddTeamMemberRequest {
                    actor,
                    org_id,
                    team_id,
                    user_id,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        TeamCommand::RemoveMember {
            org_id,
            team_id,
            user_id,
        } => {
            let r = c
                .remove_team_member(pb::RemoveTeamMemberRequest {
                    actor,
                    org_id,
                    team_id,
                    user_id,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        TeamCommand::Grant {
            org_id,
            team_id,
            app_id,
        } => {
            let r = c
                .grant_app(pb::GrantAppRequest {
                    actor,
                    org_id,
                    team_id,
                    app_id,
                    role: String::new(),
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        TeamCommand::Revoke {
            org_id,
            team_id,
            app_id,
        } => {
            let r = c
                .revoke_app(pb::RevokeAppRequest {
                    actor,
                    org_id,
                    team_id,
                    app_id,
                })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
    }
    Ok(())
}

pub async fn run_app(args: AppArgs) -> ExitCode {
    finish(app(args).await)
}

async fn app(args: AppArgs) -> Outcome {
    let mut c = pb::app_service_client::AppServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        AppCommand::Create {
            app_id,
            owner,
            name,
            labels,
        } => {
            let r = c
                .create_app(pb::CreateAppRequest {
                    actor,
                    app_id,
                    owner: Some(owner.to_pb()),
                    name,
                    labels,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.app.iter().for_each(print_app);
                print_revision(r.revision);
            })?;
        }
        AppCommand::Get { app_id } => {
            let a = c
                .get_app(pb::GetAppRequest {
                    min_revision: 0,
                    app_id,
                    actor,
                })
                .await?
                .into_inner();
            out.show(&a, || print_app(&a))?;
        }
        AppCommand::Delete { app_id } => {
            let r = c
                .delete_app(pb::DeleteAppRequest { actor, app_id })
                .await?
                .into_inner();
            out.show(&r, || print_revision(r.revision))?;
        }
        AppCommand::List {
            owner,
            query,
            labels,
            order_by,
        } => {
            let mut page_token = String::new();
            let mut all = pb::ListAppsResponse::default();
            loop {
                let r = c
                    .list_apps(pb::ListAppsRequest {
                        min_revision: 0,
                        owner: Some(owner.to_pb()),
                        query: query.clone(),
                        labels: labels.clone(),
                        order_by: order_by.clone(),
                        page_size: 0,
                        page_token,
                        actor: actor.clone(),
                    })
                    .await?
                    .into_inner();
                all.apps.extend(r.apps);
                all.revision = all.revision.max(r.revision);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            out.show(&all, || {
                all.apps.iter().for_each(print_app);
                print_revision(all.revision);
            })?;
        }
        AppCommand::Transfer {
            app_id,
            to_org,
            new_name,
        } => {
            let r = c
                .transfer_app(pb::TransferAppRequest {
                    actor,
                    app_id,
                    to_org_id: to_org,
                    new_app_id: String::new(),
                    new_name,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.app.iter().for_each(print_app);
                print_revision(r.revision);
            })?;
        }
        AppCommand::Labels {
            app_id,
            labels,
            clear,
        } => {
            if labels.is_empty() && !clear {
                return Err(Failure::Other(anyhow::anyhow!(
                    "give the new labels with --label (repeatable), or --clear to remove them all"
                )));
            }
            let r = c
                .set_app_labels(pb::SetAppLabelsRequest {
                    actor,
                    app_id,
                    labels,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.app.iter().for_each(print_app);
                if r.app.as_ref().is_some_and(|a| a.labels.is_empty()) {
                    println!("  labels: (none)");
                }
                print_revision(r.revision);
            })?;
        }
    }
    Ok(())
}

pub async fn run_user(args: UserArgs) -> ExitCode {
    finish(user(args).await)
}

async fn user(args: UserArgs) -> Outcome {
    let mut c = pb::user_service_client::UserServiceClient::new(channel(&args.common).await?);
    let out = args.common.output();
    let actor = args.common.actor;
    match args.command {
        UserCommand::Upsert {
            user_id,
            email,
            username,
            email_verified,
        } => {
            let r = c
                .upsert_user(pb::UpsertUserRequest {
                    actor,
                    user_id,
                    username,
                    email,
                    name: String::new(),
                    email_verified,
                })
                .await?
                .into_inner();
            out.show(&r, || {
                r.user.iter().for_each(print_user);
                print_revision(r.revision);
            })?;
        }
        UserCommand::Get { user_id } => {
            let u = c
                .get_user(pb::GetUserRequest {
                    min_revision: 0,
                    user_id,
                    actor,
                })
                .await?
                .into_inner();
            out.show(&u, || print_user(&u))?;
        }
    }
    Ok(())
}
