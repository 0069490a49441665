//! Reads: single records, paginated lists, the change log, counts.
//!
//! Every read runs in its own redb read transaction (a consistent snapshot that never blocks a
//! writer). Lists are paginated by an opaque token: the hex of the last key returned, so a page
//! boundary survives concurrent writes (the next page starts after that key) and clients cannot
//! mistake the token for an id. Page sizes follow AIP-158: 0 means the default, anything above
//! [`MAX_PAGE_SIZE`] is lowered to it.

use super::tables::{self, decode, get_json, get_json2};
use super::{ApplyError, Store, StoreError};
use crate::directory::{App, Change, ChangeEnvelope, Membership, Org, Owner, Refusal, Team, User};
use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Most change-log records returned by one `changes_since` call.
pub const MAX_CHANGES: u32 = 1000;

/// One page of a list. `next_page_token` is empty on the last page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// A member as listed: the membership and the user's profile (absent only if the user record was
/// never created, which `apply` prevents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub membership: Membership,
    pub user: Option<User>,
}

/// One committed change, as kept in the change log (the audit trail and the replication feed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub revision: u64,
    pub format: u32,
    pub actor: String,
    pub at_ms: u64,
    pub change: Change,
    /// Whether apply judged the change as the operator's (the caller was on the Unix socket).
    /// Records written before this field read as `false`: until then only operator tools
    /// (`--demo`, imports) wrote as the operator, and nothing replays those.
    #[serde(default, skip_serializing_if = "is_false")]
    pub operator: bool,
    /// The caller's request id, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The hash of the policy the change was judged under, when the writer had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Cluster mode: the entry's sequence in the directory log (the JetStream stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_seq: Option<u64>,
    /// Cluster mode: the time the submitter stamped (`at_ms` is the apply time, the same on
    /// every sidecar: the later of the previous entry's and the log's own timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at_ms: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ChangeRecord {
    /// The envelope this record was applied from, with the operator bit apply judged it with:
    /// replaying it under the policy named by `policy` reaches the same outcome.
    pub fn envelope(&self) -> ChangeEnvelope {
        ChangeEnvelope {
            format: self.format,
            actor: self.actor.clone(),
            at_ms: self.at_ms,
            change: self.change.clone(),
            operator: self.operator,
            request_id: self.request_id.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// Directory size, for status pages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub users: u64,
    pub orgs: u64,
    pub memberships: u64,
    pub teams: u64,
    pub apps: u64,
    pub revision: u64,
}

/// Decode a page token into the key it stands for. Empty means "from the start".
fn parse_token(token: &str) -> Result<Option<String>, Refusal> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Refusal::invalid(
            "page_token",
            "not a token returned by a previous page of this list",
        )
    };
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    if key.is_empty() || key.len() > 256 {
        return Err(bad());
    }
    Ok(Some(key))
}

fn make_token(key: &str) -> String {
    hex::encode(key.as_bytes())
}

pub(crate) fn page_size(size: u32) -> usize {
    match size {
        0 => DEFAULT_PAGE_SIZE as usize,
        n => n.min(MAX_PAGE_SIZE) as usize,
    }
}

/// Collects up to `size` items and notices whether there is one more.
struct Pager<T> {
    size: usize,
    items: Vec<T>,
    last_key: String,
    more: bool,
}

impl<T> Pager<T> {
    fn new(size: u32) -> Self {
        Self {
            size: page_size(size),
            items: Vec::new(),
            last_key: String::new(),
            more: false,
        }
    }

    /// Offer the next matching item; returns false once the page is full (stop scanning).
    fn push(&mut self, key: &str, item: T) -> bool {
        if self.items.len() == self.size {
            self.more = true;
            return false;
        }
        self.items.push(item);
        self.last_key.clear();
        self.last_key.push_str(key);
        true
    }

    fn finish(self) -> Page<T> {
        let next_page_token = if self.more {
            make_token(&self.last_key)
        } else {
            String::new()
        };
        Page {
            items: self.items,
            next_page_token,
        }
    }
}

/// Case-insensitive substring match of `query` (already lowercased) on a member.
pub(crate) fn member_matches(query: &str, user_id: &str, user: Option<&User>) -> bool {
    if user_id.to_lowercase().contains(query) {
        return true;
    }
    user.is_some_and(|u| {
        u.email.to_lowercase().contains(query)
            || u.username
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains(query))
    })
}

impl Store {
    pub fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json(&txn.open_table(tables::USERS)?, "users", id)
    }

    pub fn get_org(&self, id: &str) -> Result<Option<Org>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json(&txn.open_table(tables::ORGS)?, "orgs", id)
    }

    pub fn get_app(&self, id: &str) -> Result<Option<App>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json(&txn.open_table(tables::APPS)?, "apps", id)
    }

    pub fn get_team(&self, org: &str, team: &str) -> Result<Option<Team>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json2(&txn.open_table(tables::TEAMS)?, "teams", (org, team))
    }

    pub fn get_membership(&self, org: &str, user: &str) -> Result<Option<Membership>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json2(&txn.open_table(tables::MEMBERSHIPS)?, "memberships", (org, user))
    }

    /// Users whose email matches (case-insensitively) exactly.
    pub fn users_by_email(&self, email: &str) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        tables::seconds(
            &txn.open_table(tables::USERS_BY_EMAIL)?,
            &crate::directory::domain::email_key(email),
        )
    }

    /// Orgs in id order.
    pub fn list_orgs(&self, page_token: &str, page_size: u32) -> Result<Page<Org>, ApplyError> {
        let after = parse_token(page_token)?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::ORGS)?;
        let mut pager = Pager::new(page_size);
        let range = match &after {
            Some(key) => table.range::<&str>((
                std::ops::Bound::Excluded(key.as_str()),
                std::ops::Bound::Unbounded,
            ))?,
            None => table.range::<&str>(..)?,
        };
        for item in range {
            let (key, value) = item?;
            let org: Org = decode("orgs", key.value(), value.value())?;
            if !pager.push(key.value(), org) {
                break;
            }
        }
        Ok(pager.finish())
    }

    /// Members of `org` in user-id order. `query`, if not empty, keeps members whose user id,
    /// email or username contains it (case-insensitive).
    pub fn list_members(
        &self,
        org: &str,
        query: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<Member>, ApplyError> {
        let after = parse_token(page_token)?;
        let query = query.to_lowercase();
        let txn = self.db.begin_read()?;
        let memberships = txn.open_table(tables::MEMBERSHIPS)?;
        let users = txn.open_table(tables::USERS)?;
        let start = after.as_deref().unwrap_or("");
        let mut pager = Pager::new(page_size);
        for item in memberships.range((org, start)..)? {
            let (key, value) = item?;
            let (o, user_id) = key.value();
            if o != org {
                break;
            }
            if after.as_deref() == Some(user_id) {
                continue;
            }
            let user: Option<User> = get_json(&users, "users", user_id)?;
            if !query.is_empty() && !member_matches(&query, user_id, user.as_ref()) {
                continue;
            }
            let membership = decode("memberships", &format!("{org}/{user_id}"), value.value())?;
            if !pager.push(user_id, Member { membership, user }) {
                break;
            }
        }
        Ok(pager.finish())
    }

    /// Memberships of `user` (the orgs they belong to), in org-id order.
    pub fn list_user_orgs(
        &self,
        user: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<Membership>, ApplyError> {
        let after = parse_token(page_token)?;
        let txn = self.db.begin_read()?;
        let user_orgs = txn.open_table(tables::USER_ORGS)?;
        let memberships = txn.open_table(tables::MEMBERSHIPS)?;
        let mut pager = Pager::new(page_size);
        for item in user_orgs.range((user, after.as_deref().unwrap_or(""))..)? {
            let (key, _) = item?;
            let (u, org) = key.value();
            if u != user {
                break;
            }
            if after.as_deref() == Some(org) {
                continue;
            }
            let Some(m) = get_json2::<Membership>(&memberships, "memberships", (org, user))? else {
                continue;
            };
            if !pager.push(org, m) {
                break;
            }
        }
        Ok(pager.finish())
    }

    /// Teams of `org` in id order.
    pub fn list_teams(&self, org: &str, page_token: &str, page_size: u32) -> Result<Page<Team>, ApplyError> {
        let after = parse_token(page_token)?;
        let txn = self.db.begin_read()?;
        let teams = txn.open_table(tables::TEAMS)?;
        let mut pager = Pager::new(page_size);
        for item in teams.range((org, after.as_deref().unwrap_or(""))..)? {
            let (key, value) = item?;
            let (o, team) = key.value();
            if o != org {
                break;
            }
            if after.as_deref() == Some(team) {
                continue;
            }
            let record: Team = decode("teams", &format!("{org}/{team}"), value.value())?;
            if !pager.push(team, record) {
                break;
            }
        }
        Ok(pager.finish())
    }

    /// User ids in a team, in order.
    pub fn list_team_members(
        &self,
        org: &str,
        team: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<String>, ApplyError> {
        let txn = self.db.begin_read()?;
        page_thirds(
            &txn.open_table(tables::TEAM_MEMBERS)?,
            (org, team),
            page_token,
            page_size,
        )
    }

    /// How many members a team has: its rows counted in the store, so a caller can show the
    /// number without being sent every id.
    pub fn count_team_members(&self, org: &str, team: &str) -> Result<u32, ApplyError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::TEAM_MEMBERS)?;
        let mut n = 0u32;
        for item in table.range((org, team, "")..)? {
            let (key, _) = item?;
            let (o, t, _) = key.value();
            if o != org || t != team {
                break;
            }
            n = n.saturating_add(1);
        }
        Ok(n)
    }

    /// App ids granted to a team, in order.
    pub fn list_team_grants(
        &self,
        org: &str,
        team: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<String>, ApplyError> {
        let txn = self.db.begin_read()?;
        page_thirds(
            &txn.open_table(tables::TEAM_GRANTS)?,
            (org, team),
            page_token,
            page_size,
        )
    }

    /// Apps of a user or an org, in id order.
    pub fn list_apps(
        &self,
        owner: &Owner,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<App>, ApplyError> {
        let txn = self.db.begin_read()?;
        let ids = page_thirds(
            &txn.open_table(tables::APPS_BY_OWNER)?,
            (owner.kind(), owner.id()),
            page_token,
            page_size,
        )?;
        let apps = txn.open_table(tables::APPS)?;
        let mut items = Vec::with_capacity(ids.items.len());
        for id in &ids.items {
            if let Some(app) = get_json::<App>(&apps, "apps", id)? {
                items.push(app);
            }
        }
        Ok(Page {
            items,
            next_page_token: ids.next_page_token,
        })
    }

    /// Committed changes with a revision greater than `after`, oldest first, at most `limit`
    /// (0 or more than [`MAX_CHANGES`] means [`MAX_CHANGES`]).
    pub fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>, StoreError> {
        let limit = if limit == 0 {
            MAX_CHANGES
        } else {
            limit.min(MAX_CHANGES)
        } as usize;
        let txn = self.db.begin_read()?;
        let log = txn.open_table(tables::CHANGELOG)?;
        let mut out = Vec::new();
        let Some(start) = after.checked_add(1) else {
            return Ok(out);
        };
        for item in log.range(start..)?.take(limit) {
            let (key, value) = item?;
            out.push(decode("changelog", &key.value().to_string(), value.value())?);
        }
        Ok(out)
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(Stats {
            users: txn.open_table(tables::USERS)?.len()?,
            orgs: txn.open_table(tables::ORGS)?.len()?,
            memberships: txn.open_table(tables::MEMBERSHIPS)?.len()?,
            teams: txn.open_table(tables::TEAMS)?.len()?,
            apps: txn.open_table(tables::APPS)?.len()?,
            revision: super::last_revision(&txn.open_table(tables::CHANGELOG)?)?,
        })
    }
}

/// A page of the second key elements under `a` of a pair-keyed table.
pub(crate) fn page_seconds<V: redb::Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    a: &str,
    page_token: &str,
    page_size: u32,
) -> Result<Page<String>, ApplyError> {
    let after = parse_token(page_token)?;
    let mut pager = Pager::new(page_size);
    for item in table.range((a, after.as_deref().unwrap_or(""))..)? {
        let (key, _) = item?;
        let (x, y) = key.value();
        if x != a {
            break;
        }
        if after.as_deref() == Some(y) {
            continue;
        }
        if !pager.push(y, y.to_string()) {
            break;
        }
    }
    Ok(pager.finish())
}

/// A page of the third key elements under `(a, b)` of an index table.
pub(crate) fn page_thirds(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), ()>,
    (a, b): (&str, &str),
    page_token: &str,
    page_size: u32,
) -> Result<Page<String>, ApplyError> {
    let after = parse_token(page_token)?;
    let mut pager = Pager::new(page_size);
    for item in table.range((a, b, after.as_deref().unwrap_or(""))..)? {
        let (key, _) = item?;
        let (x, y, z) = key.value();
        if x != a || y != b {
            break;
        }
        if after.as_deref() == Some(z) {
            continue;
        }
        if !pager.push(z, z.to_string()) {
            break;
        }
    }
    Ok(pager.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = make_token("acme");
        assert_eq!(parse_token(&t).unwrap().as_deref(), Some("acme"));
        assert_eq!(parse_token("").unwrap(), None);
        for bad in ["zz", "ff", "0"] {
            match parse_token(bad) {
                Err(Refusal::InvalidArgument { field, .. }) => assert_eq!(field, "page_token"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn page_sizes_follow_aip_158() {
        assert_eq!(page_size(0), 100);
        assert_eq!(page_size(5), 5);
        assert_eq!(page_size(100_000), 1000);
    }
}
