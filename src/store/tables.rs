//! The redb tables, in one place, and the small typed helpers every other store file uses.
//!
//! Values are JSON (readable in a hex dump, no schema compiler, and the same encoding as the
//! change log and dumps); index tables whose key says everything store `()`. Composite keys are
//! tuples of `&str`, which redb orders element by element, so "everything of org X" is one range
//! scan starting at `(X, "")`.

use super::StoreError;
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, TableHandle, Value, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `schema_version` → u64. Absent in a file Warden never initialized.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// (lowercased email, user) → (). Several users may share an email (IdPs differ on uniqueness).
pub(crate) const USERS_BY_EMAIL: TableDefinition<(&str, &str), ()> = TableDefinition::new("users_by_email");
pub(crate) const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");
/// (org, user) → Membership.
pub(crate) const MEMBERSHIPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("memberships");
/// (user, org) → (): reverse of `memberships`, for "orgs of a user".
pub(crate) const USER_ORGS: TableDefinition<(&str, &str), ()> = TableDefinition::new("user_orgs");
/// (org, user) → () for every admin, so the last-admin rule never scans a big org.
pub(crate) const ORG_ADMINS: TableDefinition<(&str, &str), ()> = TableDefinition::new("org_admins");
/// (org, team) → Team.
pub(crate) const TEAMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("teams");
/// (org, team, user) → ().
pub(crate) const TEAM_MEMBERS: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("team_members");
/// app → App.
pub(crate) const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
/// (owner kind `user`|`org`, owner id, app) → ().
pub(crate) const APPS_BY_OWNER: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("apps_by_owner");
/// (org, team, app) → ().
pub(crate) const TEAM_GRANTS: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("team_grants");
/// revision → ChangeRecord. Gap-free from its first key.
pub(crate) const CHANGELOG: TableDefinition<u64, &[u8]> = TableDefinition::new("changelog");

/// invitation id → Invitation (ids are unique across orgs, so a code leads to one record).
pub(crate) const INVITATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("invitations");
/// (org, invitation id) → (): an org's invitations.
pub(crate) const ORG_INVITATIONS: TableDefinition<(&str, &str), ()> = TableDefinition::new("org_invitations");
/// (invitee key `email:<lowercased>` | `user:<id>`, invitation id) → (): a person's invitations.
pub(crate) const INVITEE_INVITATIONS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("invitee_invitations");
/// hex SHA-256 of the code → invitation id. Kept after the invitation is resolved, so a second
/// use of a code is refused with the reason rather than "not found".
pub(crate) const INVITATION_CODES: TableDefinition<&str, &str> = TableDefinition::new("invitation_codes");

/// (creator, org) → (): orgs by the user who created them (org creation limits).
pub(crate) const ORGS_BY_CREATOR: TableDefinition<(&str, &str), ()> = TableDefinition::new("orgs_by_creator");

/// (org, domain) → Domain.
pub(crate) const DOMAINS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("domains");
/// (domain, org) → (): the orgs claiming a domain, for users whose email is on it.
pub(crate) const DOMAIN_ORGS: TableDefinition<(&str, &str), ()> = TableDefinition::new("domain_orgs");
/// request id → MembershipRequest.
pub(crate) const MEMBERSHIP_REQUESTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("membership_requests");
/// (org, request id) → ().
pub(crate) const ORG_REQUESTS: TableDefinition<(&str, &str), ()> = TableDefinition::new("org_requests");
/// (user, request id) → ().
pub(crate) const USER_REQUESTS: TableDefinition<(&str, &str), ()> = TableDefinition::new("user_requests");

/// token id → Token (with the secret's hash, never the secret).
pub(crate) const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// (owner kind `user`|`org`, owner id, token id) → ().
pub(crate) const TOKENS_BY_OWNER: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("tokens_by_owner");
/// token id → last use (Unix ms). Telemetry flushed from memory now and then, outside the change
/// log: a check never writes to redb.
pub(crate) const TOKEN_LAST_USED: TableDefinition<&str, u64> = TableDefinition::new("token_last_used");

/// (org, revision) → (): the changes that concern each org, for the audit log.
pub(crate) const AUDIT_BY_ORG: TableDefinition<(&str, u64), ()> = TableDefinition::new("audit_by_org");

/// (app, user) → Collaborator.
pub(crate) const COLLABORATORS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("collaborators");

/// (app, version) → AppVersion.
pub(crate) const APP_VERSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("app_versions");

/// org → OrgSecurity.
pub(crate) const ORG_SECURITY: TableDefinition<&str, &[u8]> = TableDefinition::new("org_security");

/// (org, UTC day, user) → checks answered. Telemetry, outside the change log.
pub(crate) const USAGE: TableDefinition<(&str, u64, &str), u64> = TableDefinition::new("usage");

/// (scope, order, sort key, id) → (): orgs (scope `orgs`), an owner's apps (`apps/<kind>/<id>`)
/// and an org's members (`members/<org>`) in each order a list offers, so a sorted page is one
/// range scan from the last row shown (`store::sorted`).
pub(crate) const SORTED: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("sorted");
/// org → member count, kept by every membership write, so a list of orgs shows and sorts by
/// size without walking their members.
pub(crate) const MEMBER_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("member_counts");
/// Cluster mode: `last_applied_seq`, `last_apply_ms`, `refused_entries` → u64. Empty on a
/// single node.
pub(crate) const CLUSTER_STATE: TableDefinition<&str, u64> = TableDefinition::new("cluster_state");
/// Cluster mode: request id → Outcome (the revision or the refusal an entry of the directory
/// log got), so a retry with the same request id gets the original answer. Empty on a single
/// node.
pub(crate) const CLUSTER_OUTCOMES: TableDefinition<&str, &[u8]> = TableDefinition::new("cluster_outcomes");
/// Cluster mode: `current` → the policy epoch in force (hash, log position, the four files),
/// committed with `last_applied_seq`, so a restarted sidecar serves it before it resumes.
/// Empty on a single node and until the log's first epoch.
pub(crate) const CLUSTER_EPOCH: TableDefinition<&str, &[u8]> = TableDefinition::new("cluster_epoch");

/// Names of every table Warden owns, to tell a Warden file from another redb file.
pub(crate) const TABLE_NAMES: [&str; 36] = [
    "meta",
    "users",
    "users_by_email",
    "orgs",
    "memberships",
    "user_orgs",
    "org_admins",
    "teams",
    "team_members",
    "apps",
    "apps_by_owner",
    "team_grants",
    "changelog",
    "invitations",
    "org_invitations",
    "invitee_invitations",
    "invitation_codes",
    "orgs_by_creator",
    "domains",
    "domain_orgs",
    "membership_requests",
    "org_requests",
    "user_requests",
    "tokens",
    "tokens_by_owner",
    "token_last_used",
    "audit_by_org",
    "collaborators",
    "app_versions",
    "org_security",
    "usage",
    "sorted",
    "member_counts",
    "cluster_state",
    "cluster_outcomes",
    "cluster_epoch",
];

/// All tables of one write transaction, opened once so the apply logic reads like plain code.
pub(crate) struct WriteTables<'txn> {
    pub users: Table<'txn, &'static str, &'static [u8]>,
    pub users_by_email: Table<'txn, (&'static str, &'static str), ()>,
    pub orgs: Table<'txn, &'static str, &'static [u8]>,
    pub memberships: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    pub user_orgs: Table<'txn, (&'static str, &'static str), ()>,
    pub org_admins: Table<'txn, (&'static str, &'static str), ()>,
    pub teams: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    pub team_members: Table<'txn, (&'static str, &'static str, &'static str), ()>,
    pub apps: Table<'txn, &'static str, &'static [u8]>,
    pub apps_by_owner: Table<'txn, (&'static str, &'static str, &'static str), ()>,
    pub team_grants: Table<'txn, (&'static str, &'static str, &'static str), ()>,
    pub changelog: Table<'txn, u64, &'static [u8]>,
    pub invitations: Table<'txn, &'static str, &'static [u8]>,
    pub org_invitations: Table<'txn, (&'static str, &'static str), ()>,
    pub invitee_invitations: Table<'txn, (&'static str, &'static str), ()>,
    pub invitation_codes: Table<'txn, &'static str, &'static str>,
    pub orgs_by_creator: Table<'txn, (&'static str, &'static str), ()>,
    pub domains: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    pub domain_orgs: Table<'txn, (&'static str, &'static str), ()>,
    pub membership_requests: Table<'txn, &'static str, &'static [u8]>,
    pub org_requests: Table<'txn, (&'static str, &'static str), ()>,
    pub user_requests: Table<'txn, (&'static str, &'static str), ()>,
    pub tokens: Table<'txn, &'static str, &'static [u8]>,
    pub tokens_by_owner: Table<'txn, (&'static str, &'static str, &'static str), ()>,
    pub audit_by_org: Table<'txn, (&'static str, u64), ()>,
    pub collaborators: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    pub app_versions: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    pub org_security: Table<'txn, &'static str, &'static [u8]>,
    pub sorted: Table<'txn, (&'static str, &'static str, &'static str, &'static str), ()>,
    pub member_counts: Table<'txn, &'static str, u64>,
}

impl<'txn> WriteTables<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            users: txn.open_table(USERS)?,
            users_by_email: txn.open_table(USERS_BY_EMAIL)?,
            orgs: txn.open_table(ORGS)?,
            memberships: txn.open_table(MEMBERSHIPS)?,
            user_orgs: txn.open_table(USER_ORGS)?,
            org_admins: txn.open_table(ORG_ADMINS)?,
            teams: txn.open_table(TEAMS)?,
            team_members: txn.open_table(TEAM_MEMBERS)?,
            apps: txn.open_table(APPS)?,
            apps_by_owner: txn.open_table(APPS_BY_OWNER)?,
            team_grants: txn.open_table(TEAM_GRANTS)?,
            changelog: txn.open_table(CHANGELOG)?,
            invitations: txn.open_table(INVITATIONS)?,
            org_invitations: txn.open_table(ORG_INVITATIONS)?,
            invitee_invitations: txn.open_table(INVITEE_INVITATIONS)?,
            invitation_codes: txn.open_table(INVITATION_CODES)?,
            orgs_by_creator: txn.open_table(ORGS_BY_CREATOR)?,
            domains: txn.open_table(DOMAINS)?,
            domain_orgs: txn.open_table(DOMAIN_ORGS)?,
            membership_requests: txn.open_table(MEMBERSHIP_REQUESTS)?,
            org_requests: txn.open_table(ORG_REQUESTS)?,
            user_requests: txn.open_table(USER_REQUESTS)?,
            tokens: txn.open_table(TOKENS)?,
            tokens_by_owner: txn.open_table(TOKENS_BY_OWNER)?,
            audit_by_org: txn.open_table(AUDIT_BY_ORG)?,
            collaborators: txn.open_table(COLLABORATORS)?,
            app_versions: txn.open_table(APP_VERSIONS)?,
            org_security: txn.open_table(ORG_SECURITY)?,
            sorted: txn.open_table(SORTED)?,
            member_counts: txn.open_table(MEMBER_COUNTS)?,
        })
    }
}

/// Create every table but `meta` (a no-op for those that exist).
pub(crate) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    WriteTables::open(txn)?;
    txn.open_table(TOKEN_LAST_USED)?;
    txn.open_table(USAGE)?;
    txn.open_table(CLUSTER_STATE)?;
    txn.open_table(CLUSTER_OUTCOMES)?;
    txn.open_table(CLUSTER_EPOCH)?;
    Ok(())
}

/// Decode a stored JSON value. A failure means the file holds something this build did not write:
/// report the table and key rather than guess.
pub(crate) fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: table.to_string(),
        key: key.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode(e.to_string()))
}

/// Read and decode one JSON value by a string key.
pub(crate) fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key)? {
        Some(guard) => decode(name, key, guard.value()).map(Some),
        None => Ok(None),
    }
}

/// Read and decode one JSON value by a pair key.
pub(crate) fn get_json2<T: DeserializeOwned>(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    name: &str,
    key: (&str, &str),
) -> Result<Option<T>, StoreError> {
    match table.get(key)? {
        Some(guard) => decode(name, &format!("{}/{}", key.0, key.1), guard.value()).map(Some),
        None => Ok(None),
    }
}

/// Second elements of every pair key whose first element is `first`, in key order.
pub(crate) fn seconds<V: Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    first: &str,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for item in table.range((first, "")..)? {
        let (key, _) = item?;
        let (a, b) = key.value();
        if a != first {
            break;
        }
        out.push(b.to_string());
    }
    Ok(out)
}

/// Third elements of every triple key starting with `(a, b)`, in key order.
pub(crate) fn thirds(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), ()>,
    a: &str,
    b: &str,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for item in table.range((a, b, "")..)? {
        let (key, _) = item?;
        let (x, y, z) = key.value();
        if x != a || y != b {
            break;
        }
        out.push(z.to_string());
    }
    Ok(out)
}

/// Whether a read transaction sees any Warden table besides `meta` (a non-Warden redb file has
/// other names; an initialized Warden file has these).
pub(crate) fn foreign_tables(txn: &ReadTransaction) -> Result<Vec<String>, StoreError> {
    Ok(txn
        .list_tables()?
        .map(|t| t.name().to_string())
        .filter(|name| !TABLE_NAMES.contains(&name.as_str()))
        .collect())
}
