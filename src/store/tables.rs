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

/// Declares every table once: its definition, its name in [`TABLE_NAMES`], and whether the
/// directory digest covers it (`digested`, see `store::digest` for why the others are left
/// out). [`DIGESTED_TABLES`] and [`visit_digested`] are derived from the same list, so a table
/// cannot be added to one and forgotten in the other.
macro_rules! tables {
    ($($(#[$doc:meta])* $def:ident: $k:ty => $v:ty = $name:literal, digested: $digested:literal;)*) => {
        $($(#[$doc])* pub(crate) const $def: TableDefinition<$k, $v> = TableDefinition::new($name);)*

        /// Every table Warden owns, in declaration order, with whether the digest covers it.
        pub(crate) const TABLES: &[(&str, bool)] = &[$(($name, $digested)),*];

        /// Call `visitor` with each digested table's definition, in declaration order.
        pub(crate) fn visit_digested<T: TableVisitor>(visitor: &mut T) -> Result<(), T::Error> {
            $(if $digested {
                visitor.visit($def)?;
            })*
            Ok(())
        }
    };
}

/// What [`visit_digested`] hands each digested table to (its key and value types differ).
pub(crate) trait TableVisitor {
    type Error;
    fn visit<K: redb::Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), Self::Error>;
}

tables! {
    /// `schema_version` → u64. Absent in a file Warden never initialized.
    META: &str => u64 = "meta", digested: false;
    USERS: &str => &[u8] = "users", digested: true;
    /// (lowercased email, user) → (). Several users may share an email (IdPs differ on uniqueness).
    USERS_BY_EMAIL: (&str, &str) => () = "users_by_email", digested: true;
    ORGS: &str => &[u8] = "orgs", digested: true;
    /// (org, user) → Membership.
    MEMBERSHIPS: (&str, &str) => &[u8] = "memberships", digested: true;
    /// (user, org) → (): reverse of `memberships`, for "orgs of a user".
    USER_ORGS: (&str, &str) => () = "user_orgs", digested: true;
    /// (org, user) → () for every admin, so the last-admin rule never scans a big org.
    ORG_ADMINS: (&str, &str) => () = "org_admins", digested: true;
    /// (org, team) → Team.
    TEAMS: (&str, &str) => &[u8] = "teams", digested: true;
    /// (org, team, user) → ().
    TEAM_MEMBERS: (&str, &str, &str) => () = "team_members", digested: true;
    /// app → App.
    APPS: &str => &[u8] = "apps", digested: true;
    /// (owner kind `user`|`org`, owner id, app) → ().
    APPS_BY_OWNER: (&str, &str, &str) => () = "apps_by_owner", digested: true;
    /// (org, team, app) → ().
    TEAM_GRANTS: (&str, &str, &str) => () = "team_grants", digested: true;
    /// revision → ChangeRecord. Gap-free from its first key.
    CHANGELOG: u64 => &[u8] = "changelog", digested: false;

    /// invitation id → Invitation (ids are unique across orgs, so a code leads to one record).
    INVITATIONS: &str => &[u8] = "invitations", digested: true;
    /// (org, invitation id) → (): an org's invitations.
    ORG_INVITATIONS: (&str, &str) => () = "org_invitations", digested: true;
    /// (invitee key `email:<lowercased>` | `user:<id>`, invitation id) → (): a person's invitations.
    INVITEE_INVITATIONS: (&str, &str) => () = "invitee_invitations", digested: true;
    /// hex SHA-256 of the code → invitation id. Kept after the invitation is resolved, so a second
    /// use of a code is refused with the reason rather than "not found".
    INVITATION_CODES: &str => &str = "invitation_codes", digested: true;

    /// (creator, org) → (): orgs by the user who created them (org creation limits).
    ORGS_BY_CREATOR: (&str, &str) => () = "orgs_by_creator", digested: true;

    /// (org, domain) → Domain.
    DOMAINS: (&str, &str) => &[u8] = "domains", digested: true;
    /// (domain, org) → (): the orgs claiming a domain, for users whose email is on it.
    DOMAIN_ORGS: (&str, &str) => () = "domain_orgs", digested: true;
    /// request id → MembershipRequest.
    MEMBERSHIP_REQUESTS: &str => &[u8] = "membership_requests", digested: true;
    /// (org, request id) → ().
    ORG_REQUESTS: (&str, &str) => () = "org_requests", digested: true;
    /// (user, request id) → ().
    USER_REQUESTS: (&str, &str) => () = "user_requests", digested: true;

    /// token id → Token (with the secret's hash, never the secret).
    TOKENS: &str => &[u8] = "tokens", digested: true;
    /// (owner kind `user`|`org`, owner id, token id) → ().
    TOKENS_BY_OWNER: (&str, &str, &str) => () = "tokens_by_owner", digested: true;
    /// token id → last use (Unix ms). Telemetry flushed from memory now and then, outside the change
    /// log: a check never writes to redb.
    TOKEN_LAST_USED: &str => u64 = "token_last_used", digested: false;

    /// (org, revision) → (): the changes that concern each org, for the audit log.
    AUDIT_BY_ORG: (&str, u64) => () = "audit_by_org", digested: false;

    /// (app, user) → Collaborator.
    COLLABORATORS: (&str, &str) => &[u8] = "collaborators", digested: true;

    /// (app, version) → AppVersion.
    APP_VERSIONS: (&str, &str) => &[u8] = "app_versions", digested: true;

    /// org → OrgSecurity.
    ORG_SECURITY: &str => &[u8] = "org_security", digested: true;

    /// (org, UTC day, user) → checks answered. Telemetry, outside the change log.
    USAGE: (&str, u64, &str) => u64 = "usage", digested: false;

    /// (scope, order, sort key, id) → (): orgs (scope `orgs`), an owner's apps (`apps/<kind>/<id>`)
    /// and an org's members (`members/<org>`) in each order a list offers, so a sorted page is one
    /// range scan from the last row shown (`store::sorted`).
    SORTED: (&str, &str, &str, &str) => () = "sorted", digested: true;
    /// org → member count, kept by every membership write, so a list of orgs shows and sorts by
    /// size without walking their members.
    MEMBER_COUNTS: &str => u64 = "member_counts", digested: true;
    /// Cluster mode: `last_applied_seq`, `last_apply_ms`, `refused_entries` → u64. Empty on a
    /// single node.
    CLUSTER_STATE: &str => u64 = "cluster_state", digested: false;
    /// Cluster mode: request id → Outcome (the revision or the refusal an entry of the directory
    /// log got), so a retry with the same request id gets the original answer. Empty on a single
    /// node.
    CLUSTER_OUTCOMES: &str => &[u8] = "cluster_outcomes", digested: false;
    /// Cluster mode: `current` → the policy epoch in force (hash, log position, the four files),
    /// committed with `last_applied_seq`, so a restarted sidecar serves it before it resumes.
    /// Empty on a single node and until the log's first epoch.
    CLUSTER_EPOCH: &str => &[u8] = "cluster_epoch", digested: false;
    /// Cluster mode, telemetry (`store::usage`): `sidecar` (this file's sidecar id, drawn once),
    /// `next_flush` (the next flush number) and `position` (the telemetry stream's last merged
    /// sequence) → u64. Not in snapshots: a bootstrapped store starts at position 0.
    TELEMETRY_STATE: &str => u64 = "telemetry_state", digested: false;
    /// Cluster mode: flush number → an encoded `TelemetryBatch` flushed here and not yet
    /// acknowledged by the telemetry stream.
    TELEMETRY_OUTBOX: u64 => &[u8] = "telemetry_outbox", digested: false;
    /// Cluster mode: sidecar id → the highest flush number of that sidecar merged here.
    TELEMETRY_SEEN: &str => u64 = "telemetry_seen", digested: false;
}

/// Names of every table Warden owns, to tell a Warden file from another redb file.
pub(crate) const TABLE_NAMES: [&str; TABLES.len()] = names(false);

/// The tables of directory state, in digest order (declaration order).
pub const DIGESTED_TABLES: [&str; digested_count()] = names(true);

const fn digested_count() -> usize {
    let (mut i, mut n) = (0, 0);
    while i < TABLES.len() {
        if TABLES[i].1 {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The names of [`TABLES`] (only the digested ones if `digested_only`), as an array of `N`.
const fn names<const N: usize>(digested_only: bool) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut j) = (0, 0);
    while i < TABLES.len() {
        if !digested_only || TABLES[i].1 {
            out[j] = TABLES[i].0;
            j += 1;
        }
        i += 1;
    }
    assert!(j == N, "the array length does not match the table list");
    out
}

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
    txn.open_table(TELEMETRY_STATE)?;
    txn.open_table(TELEMETRY_OUTBOX)?;
    txn.open_table(TELEMETRY_SEEN)?;
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
