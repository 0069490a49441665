//! Export and import of the whole directory.
//!
//! A [`Dump`] is the directory's *state* at one revision (every record, in key order), not its
//! history: the change log is not exported. Importing writes everything in one transaction and a
//! single change-log record, `Change::Import { counts }`, at the dump's revision, so the imported
//! store continues numbering where the exported one stopped and export → import → export gives
//! the same bytes. Derived index tables (`user_orgs`, `org_admins`, `users_by_email`,
//! `apps_by_owner`) are rebuilt, not exported.
//!
//! An online snapshot (`snapshot.rs`) carries a dump *and* the change log, for a copy whose
//! history answers the same as the source's.

use super::apply::{put_app, put_membership};
use super::domains::{put_domain, put_request};
use super::invitations::put_invitation;
use super::tables::{self, WriteTables, decode, encode};
use super::tokens::put_token;
use super::{ApplyError, ChangeRecord, Store, StoreError, is_empty};
use crate::directory::domain::{validate_domain, validate_token};
use crate::directory::ids::{validate_role, validate_slug, validate_user_id};
use crate::directory::invitation::validate_code_hash;
use crate::directory::security::OrgSecurity;
use crate::directory::tokens::{validate_scopes, validate_secret_hash, validate_token_id};
use crate::directory::{
    ADMIN_ROLE, App, AppVersion, CHANGE_FORMAT, Change, Collaborator, Domain, ImportCounts, Invitation,
    InvitationStatus, Invitee, Membership, MembershipRequest, Org, Owner, Refusal, Team, TeamGrant,
    TeamMember, Token, User,
};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// The dump format this build writes and reads.
pub const DUMP_FORMAT: u32 = 1;

/// Every record of the directory at `revision`, each list in key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    pub format: u32,
    pub revision: u64,
    pub users: Vec<User>,
    pub orgs: Vec<Org>,
    pub memberships: Vec<Membership>,
    pub teams: Vec<Team>,
    pub team_members: Vec<TeamMember>,
    pub apps: Vec<App>,
    pub team_grants: Vec<TeamGrant>,
    /// Every invitation, with its code hash (never the code) and its status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invitations: Vec<Invitation>,
    /// Claimed email domains (verified or not) with their tokens and enrollment modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<Domain>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub membership_requests: Vec<MembershipRequest>,
    /// API tokens (hashes only) with their last use. Absent in dumps from builds without tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<Token>,
    /// App collaborators. Absent in dumps from builds without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collaborators: Vec<Collaborator>,
    /// App versions submitted for publishing, with their review.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_versions: Vec<AppVersion>,
    /// Org security settings (password policy, identity providers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security: Vec<OrgSecurity>,
}

fn refuse(field: &str, reason: String) -> ApplyError {
    Refusal::invalid(field, reason).into()
}

impl Dump {
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string_pretty(self).map_err(|e| StoreError::Encode(e.to_string()))
    }

    pub fn to_yaml(&self) -> Result<String, StoreError> {
        serde_norway::to_string(self).map_err(|e| StoreError::Encode(e.to_string()))
    }

    /// Parse a JSON dump; a malformed one is refused naming `dump` and the parser's position.
    pub fn from_json(text: &str) -> Result<Dump, Refusal> {
        serde_json::from_str(text).map_err(|e| Refusal::invalid("dump", e.to_string()))
    }

    pub fn from_yaml(text: &str) -> Result<Dump, Refusal> {
        serde_norway::from_str(text).map_err(|e| Refusal::invalid("dump", e.to_string()))
    }

    pub fn counts(&self) -> ImportCounts {
        let n = |len: usize| len as u64;
        ImportCounts {
            users: n(self.users.len()),
            orgs: n(self.orgs.len()),
            memberships: n(self.memberships.len()),
            teams: n(self.teams.len()),
            team_members: n(self.team_members.len()),
            apps: n(self.apps.len()),
            team_grants: n(self.team_grants.len()),
            invitations: n(self.invitations.len()),
            domains: n(self.domains.len()),
            membership_requests: n(self.membership_requests.len()),
            tokens: n(self.tokens.len()),
            collaborators: n(self.collaborators.len()),
            app_versions: n(self.app_versions.len()),
            security: n(self.security.len()),
        }
    }

    fn is_empty(&self) -> bool {
        self.counts() == ImportCounts::default()
    }
}

/// Decode every value of a JSON table, in key order.
fn all_values<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
    name: &str,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for item in table.iter()? {
        let (_, value) = item?;
        out.push(decode(name, "(export)", value.value())?);
    }
    Ok(out)
}

fn all_triples(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), ()>,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut out = Vec::new();
    for item in table.iter()? {
        let (key, _) = item?;
        let (a, b, c) = key.value();
        out.push((a.to_string(), b.to_string(), c.to_string()));
    }
    Ok(out)
}

impl Store {
    /// The whole directory from one read snapshot.
    pub fn export(&self) -> Result<Dump, StoreError> {
        Self::export_in(&self.db.begin_read()?)
    }

    /// The whole directory as `txn` sees it.
    pub(crate) fn export_in(txn: &redb::ReadTransaction) -> Result<Dump, StoreError> {
        let (domains, membership_requests) = Store::all_domains_and_requests(txn)?;
        Ok(Dump {
            format: DUMP_FORMAT,
            revision: super::last_revision(&txn.open_table(tables::CHANGELOG)?)?,
            users: all_values(&txn.open_table(tables::USERS)?, "users")?,
            orgs: all_values(&txn.open_table(tables::ORGS)?, "orgs")?,
            memberships: all_values(&txn.open_table(tables::MEMBERSHIPS)?, "memberships")?,
            teams: all_values(&txn.open_table(tables::TEAMS)?, "teams")?,
            team_members: all_triples(&txn.open_table(tables::TEAM_MEMBERS)?)?
                .into_iter()
                .map(|(org, team, user)| TeamMember { org, team, user })
                .collect(),
            apps: all_values(&txn.open_table(tables::APPS)?, "apps")?,
            team_grants: all_triples(&txn.open_table(tables::TEAM_GRANTS)?)?
                .into_iter()
                .map(|(org, team, app)| TeamGrant { org, team, app })
                .collect(),
            invitations: Store::all_invitations(txn)?,
            domains,
            membership_requests,
            tokens: Store::all_tokens(txn)?,
            collaborators: Store::all_collaborators(txn)?,
            app_versions: Store::all_app_versions(txn)?,
            security: Store::all_security(txn)?,
        })
    }

    /// Load `dump` into this store, which must be empty, in one transaction. The directory's
    /// invariants are checked on the way in (ids, references, one admin per org, team members are
    /// org members, grants name the org's own apps); role names are checked for shape only, since
    /// the dump may come from an instance with custom roles. `actor` and `at_ms` are recorded on
    /// the `Import` change-log record. Returns the revision after the import; call
    /// [`Store::load_index`] afterwards.
    pub fn import(&self, dump: &Dump, actor: &str, at_ms: u64) -> Result<u64, ApplyError> {
        if dump.format != DUMP_FORMAT {
            return Err(refuse(
                "format",
                format!(
                    "dump format {} is not supported (this build reads format {DUMP_FORMAT})",
                    dump.format
                ),
            ));
        }
        validate_user_id("actor", actor)?;
        let _serialized = self.write_lock.lock();
        let txn = self.db.begin_write()?;
        let outcome = (|| {
            let mut t = WriteTables::open(&txn)?;
            if !is_empty(&t)? {
                return Err(Refusal::precondition(
                    "the store is not empty; import only into a new store (move the data file aside first)",
                )
                .into());
            }
            if dump.is_empty() && dump.revision == 0 {
                return Ok(0);
            }
            write_dump(&mut t, dump)?;
            drop(t);
            let mut used = txn.open_table(tables::TOKEN_LAST_USED)?;
            for token in &dump.tokens {
                if let Some(at) = token.last_used_ms {
                    used.insert(token.id.as_str(), at)?;
                }
            }
            drop(used);
            let mut t = WriteTables::open(&txn)?;
            let revision = dump.revision.max(1);
            let record = ChangeRecord {
                revision,
                format: CHANGE_FORMAT,
                actor: actor.to_string(),
                at_ms,
                change: Change::Import {
                    counts: dump.counts(),
                },
                operator: true,
                request_id: None,
                policy: None,
                stream_seq: None,
                requested_at_ms: None,
            };
            t.changelog.insert(revision, encode(&record)?.as_slice())?;
            Ok::<_, ApplyError>(revision)
        })();
        match outcome {
            Ok(revision) => {
                txn.commit()?;
                self.committed.send_replace(revision);
                Ok(revision)
            }
            Err(err) => {
                txn.abort()?;
                Err(err)
            }
        }
    }
}

pub(crate) fn write_dump(t: &mut WriteTables<'_>, dump: &Dump) -> Result<(), ApplyError> {
    let dup = |what: String| -> ApplyError {
        Refusal::already_exists(format!("{what} (twice in the dump)")).into()
    };
    for (i, u) in dump.users.iter().enumerate() {
        validate_user_id(&format!("users[{i}].id"), &u.id)?;
        if t.users.insert(u.id.as_str(), encode(u)?.as_slice())?.is_some() {
            return Err(dup(format!("user `{}`", u.id)));
        }
        t.users_by_email.insert(
            (
                crate::directory::domain::email_key(&u.email).as_str(),
                u.id.as_str(),
            ),
            (),
        )?;
    }
    for (i, o) in dump.orgs.iter().enumerate() {
        validate_slug(&format!("orgs[{i}].id"), &o.id)?;
        if super::sorted::put_org(t, o)?.is_some() {
            return Err(dup(format!("org `{}`", o.id)));
        }
        super::limits::remember_org(t, o)?;
    }
    for (i, m) in dump.memberships.iter().enumerate() {
        validate_role(&format!("memberships[{i}].role"), &m.role)?;
        if t.orgs.get(m.org.as_str())?.is_none() {
            return Err(refuse(
                &format!("memberships[{i}].org"),
                format!("unknown org `{}`", m.org),
            ));
        }
        if t.users.get(m.user.as_str())?.is_none() {
            return Err(refuse(
                &format!("memberships[{i}].user"),
                format!("unknown user `{}`", m.user),
            ));
        }
        if t.memberships.get((m.org.as_str(), m.user.as_str()))?.is_some() {
            return Err(dup(format!("membership of `{}` in org `{}`", m.user, m.org)));
        }
        put_membership(t, m)?;
    }
    for o in &dump.orgs {
        let has_admin = match t.org_admins.range((o.id.as_str(), "")..)?.next() {
            Some(item) => item?.0.value().0 == o.id,
            None => false,
        };
        if !has_admin {
            return Err(
                Refusal::precondition(format!("org `{}` in the dump has no `{ADMIN_ROLE}`", o.id)).into(),
            );
        }
    }
    for (i, team) in dump.teams.iter().enumerate() {
        validate_slug(&format!("teams[{i}].id"), &team.id)?;
        if t.orgs.get(team.org.as_str())?.is_none() {
            return Err(refuse(
                &format!("teams[{i}].org"),
                format!("unknown org `{}`", team.org),
            ));
        }
        if t.teams
            .insert((team.org.as_str(), team.id.as_str()), encode(team)?.as_slice())?
            .is_some()
        {
            return Err(dup(format!("team `{}` in org `{}`", team.id, team.org)));
        }
    }
    for (i, m) in dump.team_members.iter().enumerate() {
        if t.teams.get((m.org.as_str(), m.team.as_str()))?.is_none() {
            return Err(refuse(
                &format!("team_members[{i}].team"),
                format!("unknown team `{}`", m.team),
            ));
        }
        if t.memberships.get((m.org.as_str(), m.user.as_str()))?.is_none() {
            return Err(refuse(
                &format!("team_members[{i}].user"),
                format!("`{}` is not a member of org `{}`", m.user, m.org),
            ));
        }
        t.team_members
            .insert((m.org.as_str(), m.team.as_str(), m.user.as_str()), ())?;
    }
    for (i, app) in dump.apps.iter().enumerate() {
        validate_slug(&format!("apps[{i}].id"), &app.id)?;
        let owner_exists = match &app.owner {
            Owner::User(u) => t.users.get(u.as_str())?.is_some(),
            Owner::Org(o) => t.orgs.get(o.as_str())?.is_some(),
        };
        if !owner_exists {
            return Err(refuse(
                &format!("apps[{i}].owner"),
                format!("unknown {}", app.owner),
            ));
        }
        if t.apps.get(app.id.as_str())?.is_some() {
            return Err(dup(format!("app `{}`", app.id)));
        }
        put_app(t, app)?;
    }
    for (i, g) in dump.team_grants.iter().enumerate() {
        if t.teams.get((g.org.as_str(), g.team.as_str()))?.is_none() {
            return Err(refuse(
                &format!("team_grants[{i}].team"),
                format!("unknown team `{}`", g.team),
            ));
        }
        let owned = match t.apps.get(g.app.as_str())? {
            Some(v) => decode::<App>("apps", &g.app, v.value())?.owner == Owner::Org(g.org.clone()),
            None => false,
        };
        if !owned {
            return Err(refuse(
                &format!("team_grants[{i}].app"),
                format!("app `{}` is not an app of org `{}`", g.app, g.org),
            ));
        }
        t.team_grants
            .insert((g.org.as_str(), g.team.as_str(), g.app.as_str()), ())?;
    }
    for (i, inv) in dump.invitations.iter().enumerate() {
        let field = |name: &str| format!("invitations[{i}].{name}");
        validate_slug(&field("id"), &inv.id)?;
        validate_role(&field("role"), &inv.role)?;
        validate_code_hash(&field("code_sha256"), &inv.code_sha256)?;
        inv.invitee.validate().map_err(|r| match r {
            Refusal::InvalidArgument { reason, .. } => refuse(&field("invitee"), reason),
            other => other.into(),
        })?;
        if inv.status == InvitationStatus::Expired {
            return Err(refuse(
                &field("status"),
                "`expired` is derived, never stored".into(),
            ));
        }
        if t.orgs.get(inv.org.as_str())?.is_none() {
            return Err(refuse(&field("org"), format!("unknown org `{}`", inv.org)));
        }
        if let Invitee::User(u) = &inv.invitee
            && t.users.get(u.as_str())?.is_none()
        {
            return Err(refuse(&field("invitee"), format!("unknown user `{u}`")));
        }
        if t.invitations.get(inv.id.as_str())?.is_some() {
            return Err(dup(format!("invitation `{}`", inv.id)));
        }
        if t.invitation_codes.get(inv.code_sha256.as_str())?.is_some() {
            return Err(dup(format!("code hash of invitation `{}`", inv.id)));
        }
        put_invitation(t, inv)?;
    }
    for (i, d) in dump.domains.iter().enumerate() {
        let field = |name: &str| format!("domains[{i}].{name}");
        validate_domain(&field("domain"), &d.domain)?;
        validate_role(&field("role"), &d.role)?;
        validate_token(&field("verification_token"), &d.verification_token)?;
        if t.orgs.get(d.org.as_str())?.is_none() {
            return Err(refuse(&field("org"), format!("unknown org `{}`", d.org)));
        }
        if t.domains.get((d.org.as_str(), d.domain.as_str()))?.is_some() {
            return Err(dup(format!("domain `{}` of org `{}`", d.domain, d.org)));
        }
        put_domain(t, d)?;
    }
    for (i, r) in dump.membership_requests.iter().enumerate() {
        let field = |name: &str| format!("membership_requests[{i}].{name}");
        validate_slug(&field("id"), &r.id)?;
        if t.orgs.get(r.org.as_str())?.is_none() {
            return Err(refuse(&field("org"), format!("unknown org `{}`", r.org)));
        }
        if t.users.get(r.user.as_str())?.is_none() {
            return Err(refuse(&field("user"), format!("unknown user `{}`", r.user)));
        }
        if t.membership_requests.get(r.id.as_str())?.is_some() {
            return Err(dup(format!("membership request `{}`", r.id)));
        }
        put_request(t, r)?;
    }
    for (i, token) in dump.tokens.iter().enumerate() {
        let field = |name: &str| format!("tokens[{i}].{name}");
        validate_token_id(&field("id"), &token.id)?;
        validate_secret_hash(&field("secret_hash"), &token.secret_hash)?;
        validate_scopes(&field("scopes"), &token.scopes)?;
        let owner_exists = match &token.owner {
            Owner::User(u) => t.users.get(u.as_str())?.is_some(),
            Owner::Org(o) => t.orgs.get(o.as_str())?.is_some() && token.role.is_some(),
        };
        if !owner_exists {
            return Err(refuse(
                &field("owner"),
                format!("unknown {} (or an org key without a role)", token.owner),
            ));
        }
        if t.tokens.get(token.id.as_str())?.is_some() {
            return Err(dup(format!("token `{}`", token.id)));
        }
        put_token(t, token)?;
    }
    for (i, c) in dump.collaborators.iter().enumerate() {
        let field = |name: &str| format!("collaborators[{i}].{name}");
        validate_role(&field("role"), &c.role)?;
        let org = match t.apps.get(c.app.as_str())? {
            Some(v) => decode::<App>("apps", &c.app, v.value())?
                .owner
                .org()
                .map(str::to_string),
            None => None,
        };
        let Some(org) = org else {
            return Err(refuse(&field("app"), format!("`{}` is not an org app", c.app)));
        };
        if t.users.get(c.user.as_str())?.is_none() {
            return Err(refuse(&field("user"), format!("unknown user `{}`", c.user)));
        }
        // Collaborators are users outside the app's org, as `AddCollaborator` keeps them.
        if t.memberships.get((org.as_str(), c.user.as_str()))?.is_some() {
            return Err(refuse(
                &field("user"),
                format!(
                    "`{}` is a member of org `{org}`; collaborators are for users outside the app's org",
                    c.user
                ),
            ));
        }
        crate::store::collaborators::put(t, c)?;
    }
    for (i, v) in dump.app_versions.iter().enumerate() {
        let field = |name: &str| format!("app_versions[{i}].{name}");
        validate_slug(&field("version"), &v.version)?;
        let org_app = match t.apps.get(v.app.as_str())? {
            Some(a) => decode::<App>("apps", &v.app, a.value())?.owner.org().is_some(),
            None => false,
        };
        if !org_app {
            return Err(refuse(&field("app"), format!("`{}` is not an org app", v.app)));
        }
        if t.app_versions
            .get((v.app.as_str(), v.version.as_str()))?
            .is_some()
        {
            return Err(dup(format!("version `{}` of app `{}`", v.version, v.app)));
        }
        crate::store::publishing::put(t, v)?;
    }
    for (i, s) in dump.security.iter().enumerate() {
        if t.orgs.get(s.org.as_str())?.is_none() {
            return Err(refuse(
                &format!("security[{i}].org"),
                format!("unknown org `{}`", s.org),
            ));
        }
        s.settings.validate().map_err(|r| match r {
            Refusal::InvalidArgument { field, reason } => refuse(&format!("security[{i}].{field}"), reason),
            other => other.into(),
        })?;
        crate::store::security::put(t, s)?;
    }
    Ok(())
}
