//! Sorted, searchable lists of orgs, apps and members.
//!
//! A list in another order than the primary key's would otherwise read the whole scope and sort
//! it per page. Instead every write of an org, app or membership record goes through this file,
//! which keeps one row per order in `sorted`: `(scope, order, sort key, id)`. A page in any order
//! is then one range scan, forwards or backwards, starting after the last row the previous page
//! showed; the page token carries that row's order, sort key and id, so pages stay complete and
//! stable while records move (a record whose key changed between two pages shows where its new
//! key falls, never twice on one page, and nothing that kept its key is skipped).
//!
//! Scopes: `orgs`; `apps/<owner kind>/<owner id>`; `members/<org>`. Orders: `id` (orgs and apps;
//! members use the memberships table itself), `name` (lowercased name; members: the user id),
//! `created_at`, `updated_at` (zero-padded milliseconds) and, for orgs, `member_count` (from
//! `member_counts`, kept here by every membership write).
//!
//! A `query` filters the rows of the chosen order (a substring of id or name): a selective query
//! on a big scope reads the scope once, not once per page, because the scan stops as soon as a
//! page is full and resumes from the token. `updated_at` is stamped centrally by [`touch`] from
//! the change being applied, so every change the audit log files under an org moves that org.

use super::read::{Member, Page, page_size};
use super::tables::{self, WriteTables, decode, encode, get_json};
use super::{ApplyError, Store, StoreError};
use crate::directory::{App, Change, Membership, Org, Owner, Refusal, User};
use redb::{ReadableTable, Table};
use std::ops::Bound;

/// What a list may be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    MemberCount,
}

impl SortField {
    pub fn as_str(self) -> &'static str {
        match self {
            SortField::Id => "id",
            SortField::Name => "name",
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::MemberCount => "member_count",
        }
    }
}

/// An `order_by` as AIP-132 writes it: a field, then optionally ` asc` or ` desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOrder {
    pub field: SortField,
    pub descending: bool,
}

impl Default for ListOrder {
    fn default() -> Self {
        ListOrder {
            field: SortField::Id,
            descending: false,
        }
    }
}

impl ListOrder {
    /// Parse `text` (empty: id ascending), accepting only the fields in `allowed`.
    pub fn parse(text: &str, allowed: &[SortField]) -> Result<ListOrder, Refusal> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let names = || allowed.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ");
        let (field, descending) = match words.as_slice() {
            [] => return Ok(ListOrder::default()),
            [f] => (*f, false),
            [f, dir] if dir.eq_ignore_ascii_case("asc") => (*f, false),
            [f, dir] if dir.eq_ignore_ascii_case("desc") => (*f, true),
            _ => {
                return Err(Refusal::invalid(
                    "order_by",
                    format!(
                        "`{text}` is not `<field>`, `<field> asc` or `<field> desc`; fields: {}",
                        names()
                    ),
                ));
            }
        };
        let field = allowed
            .iter()
            .copied()
            .find(|f| f.as_str() == field)
            .ok_or_else(|| {
                Refusal::invalid(
                    "order_by",
                    format!("unknown field `{field}`; fields: {}", names()),
                )
            })?;
        Ok(ListOrder { field, descending })
    }
}

/// What a list keeps: a case-insensitive substring of id or name, and labels an app must carry.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub query: String,
    pub labels: Vec<String>,
}

impl ListFilter {
    fn text(&self, id: &str, name: &str) -> bool {
        self.query.is_empty() || {
            let q = self.query.to_lowercase();
            id.to_lowercase().contains(&q) || name.to_lowercase().contains(&q)
        }
    }
}

fn millis(ms: u64) -> String {
    format!("{ms:020}")
}

fn org_rows(org: &Org, members: u64) -> [(&'static str, String); 5] {
    [
        ("id", String::new()),
        ("name", org.name.to_lowercase()),
        ("created_at", millis(org.created_at_ms)),
        (
            "updated_at",
            millis(org.updated_at_ms.unwrap_or(org.created_at_ms)),
        ),
        ("member_count", millis(members)),
    ]
}

fn app_scope(owner: &Owner) -> String {
    format!("apps/{}/{}", owner.kind(), owner.id())
}

fn app_rows(app: &App) -> [(&'static str, String); 4] {
    [
        ("id", String::new()),
        ("name", app.name.to_lowercase()),
        ("created_at", millis(app.created_at_ms)),
        (
            "updated_at",
            millis(app.updated_at_ms.unwrap_or(app.created_at_ms)),
        ),
    ]
}

fn member_scope(org: &str) -> String {
    format!("members/{org}")
}

fn member_rows(m: &Membership) -> [(&'static str, String); 2] {
    [
        ("created_at", millis(m.joined_at_ms)),
        ("updated_at", millis(m.updated_at_ms.unwrap_or(m.joined_at_ms))),
    ]
}

/// Rows `(sort key, id)` of a list, in list order.
type Rows<'a> = Box<dyn Iterator<Item = Result<(String, String), StoreError>> + 'a>;
type SortedKey = (&'static str, &'static str, &'static str, &'static str);
type SortedItem<'a> =
    Result<(redb::AccessGuard<'a, SortedKey>, redb::AccessGuard<'a, ()>), redb::StorageError>;
type MembershipItem<'a> = Result<
    (
        redb::AccessGuard<'a, (&'static str, &'static str)>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

type SortedTable<'txn> = Table<'txn, (&'static str, &'static str, &'static str, &'static str), ()>;

fn put_rows(
    t: &mut SortedTable<'_>,
    scope: &str,
    id: &str,
    rows: &[(&'static str, String)],
) -> Result<(), StoreError> {
    for (order, key) in rows {
        t.insert((scope, *order, key.as_str(), id), ())?;
    }
    Ok(())
}

fn drop_rows(
    t: &mut SortedTable<'_>,
    scope: &str,
    id: &str,
    rows: &[(&'static str, String)],
) -> Result<(), StoreError> {
    for (order, key) in rows {
        t.remove((scope, *order, key.as_str(), id))?;
    }
    Ok(())
}

fn member_count(t: &WriteTables<'_>, org: &str) -> Result<u64, StoreError> {
    Ok(t.member_counts.get(org)?.map_or(0, |v| v.value()))
}

/// Write an org record with its sorted rows; returns the record it replaced.
pub(crate) fn put_org(t: &mut WriteTables<'_>, org: &Org) -> Result<Option<Org>, StoreError> {
    let old = t
        .orgs
        .insert(org.id.as_str(), encode(org)?.as_slice())?
        .map(|old| decode::<Org>("orgs", &org.id, old.value()))
        .transpose()?;
    let count = member_count(t, &org.id)?;
    if let Some(old) = &old {
        drop_rows(&mut t.sorted, "orgs", &org.id, &org_rows(old, count))?;
    }
    put_rows(&mut t.sorted, "orgs", &org.id, &org_rows(org, count))?;
    Ok(old)
}

/// Drop a deleted org's sorted rows and member count (the caller removes the record).
pub(crate) fn unindex_org(t: &mut WriteTables<'_>, org: &Org) -> Result<(), StoreError> {
    let count = member_count(t, &org.id)?;
    drop_rows(&mut t.sorted, "orgs", &org.id, &org_rows(org, count))?;
    t.member_counts.remove(org.id.as_str())?;
    Ok(())
}

/// Keep an app's sorted rows after its record changed (`old` → `new`; either may be absent).
pub(crate) fn app_written(
    t: &mut WriteTables<'_>,
    old: Option<&App>,
    new: Option<&App>,
) -> Result<(), StoreError> {
    if let Some(old) = old {
        drop_rows(&mut t.sorted, &app_scope(&old.owner), &old.id, &app_rows(old))?;
    }
    if let Some(new) = new {
        put_rows(&mut t.sorted, &app_scope(&new.owner), &new.id, &app_rows(new))?;
    }
    Ok(())
}

/// Drop a deleted app's sorted rows (the caller removes the record).
pub(crate) fn unindex_app(t: &mut WriteTables<'_>, app: &App) -> Result<(), StoreError> {
    app_written(t, Some(app), None)
}

/// Keep a membership's sorted rows, its org's member count and the org's `member_count` row
/// after the record changed (`old` → `new`; either may be absent).
pub(crate) fn member_written(
    t: &mut WriteTables<'_>,
    old: Option<&Membership>,
    new: Option<&Membership>,
) -> Result<(), StoreError> {
    let Some(org) = new.or(old).map(|m| m.org.clone()) else {
        return Ok(());
    };
    let scope = member_scope(&org);
    if let Some(old) = old {
        drop_rows(&mut t.sorted, &scope, &old.user, &member_rows(old))?;
    }
    if let Some(new) = new {
        put_rows(&mut t.sorted, &scope, &new.user, &member_rows(new))?;
    }
    let delta: i64 = match (old.is_some(), new.is_some()) {
        (false, true) => 1,
        (true, false) => -1,
        _ => 0,
    };
    if delta != 0 {
        let before = member_count(t, &org)?;
        let after = before.saturating_add_signed(delta);
        t.member_counts.insert(org.as_str(), after)?;
        t.sorted
            .remove(("orgs", "member_count", millis(before).as_str(), org.as_str()))?;
        // The org record may not be written yet (an import writes orgs first; CreateOrg does
        // too), but the row is only meaningful beside it: `put_org` keeps it from then on.
        if t.orgs.get(org.as_str())?.is_some() {
            t.sorted
                .insert(("orgs", "member_count", millis(after).as_str(), org.as_str()), ())?;
        }
    }
    Ok(())
}

/// Drop every member row of a deleted org (the caller removes the memberships).
pub(crate) fn drop_members(t: &mut WriteTables<'_>, org: &str) -> Result<(), StoreError> {
    let scope = member_scope(org);
    let end = format!("{scope}\u{0}");
    let mut keys = Vec::new();
    for item in t
        .sorted
        .range((scope.as_str(), "", "", "")..(end.as_str(), "", "", ""))?
    {
        let (key, _) = item?;
        let (_, order, sort, id) = key.value();
        keys.push((order.to_string(), sort.to_string(), id.to_string()));
    }
    for (order, sort, id) in keys {
        t.sorted
            .remove((scope.as_str(), order.as_str(), sort.as_str(), id.as_str()))?;
    }
    Ok(())
}

/// Stamp `updated_at` on what `change` touched: the org it concerns (`org`, as the audit log
/// files it), the app it names, the membership whose role or teams it changed. Runs in the
/// change's transaction after apply, with the change's time.
pub(crate) fn touch(
    t: &mut WriteTables<'_>,
    change: &Change,
    org: Option<&str>,
    at_ms: u64,
) -> Result<(), StoreError> {
    if let Some(id) = org
        && let Some(mut record) = get_json::<Org>(&t.orgs, "orgs", id)?
        && record.updated_at_ms.unwrap_or(record.created_at_ms) != at_ms
    {
        record.updated_at_ms = Some(at_ms);
        put_org(t, &record)?;
    }
    let app = match change {
        Change::SetAppLabels { app, .. }
        | Change::TransferApp { app, .. }
        | Change::GrantApp { app, .. }
        | Change::RevokeApp { app, .. }
        | Change::AddCollaborator { app, .. }
        | Change::RemoveCollaborator { app, .. }
        | Change::SubmitAppVersion { app, .. }
        | Change::ReviewAppVersion { app, .. } => Some(app),
        _ => None,
    };
    if let Some(id) = app
        && let Some(mut record) = get_json::<App>(&t.apps, "apps", id)?
        && record.updated_at_ms.unwrap_or(record.created_at_ms) != at_ms
    {
        record.updated_at_ms = Some(at_ms);
        super::apply::put_app(t, &record)?;
    }
    let member = match change {
        Change::ChangeRole { org, user, .. }
        | Change::AddTeamMember { org, user, .. }
        | Change::RemoveTeamMember { org, user, .. } => Some((org, user)),
        _ => None,
    };
    if let Some((org, user)) = member
        && let Some(mut m) = tables::get_json2::<Membership>(&t.memberships, "memberships", (org, user))?
        && m.updated_at_ms.unwrap_or(m.joined_at_ms) != at_ms
    {
        m.updated_at_ms = Some(at_ms);
        super::apply::put_membership(t, &m)?;
    }
    Ok(())
}

/// Rebuild `sorted` and `member_counts` from the records (a store written before they existed).
pub(crate) fn backfill(t: &mut WriteTables<'_>) -> Result<(), StoreError> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut members = Vec::new();
    for item in t.memberships.iter()? {
        let (key, value) = item?;
        let (org, user) = key.value();
        *counts.entry(org.to_string()).or_default() += 1;
        members.push(decode::<Membership>(
            "memberships",
            &format!("{org}/{user}"),
            value.value(),
        )?);
    }
    for m in &members {
        put_rows(&mut t.sorted, &member_scope(&m.org), &m.user, &member_rows(m))?;
    }
    for (org, n) in &counts {
        t.member_counts.insert(org.as_str(), *n)?;
    }
    let mut orgs = Vec::new();
    for item in t.orgs.iter()? {
        let (key, value) = item?;
        orgs.push(decode::<Org>("orgs", key.value(), value.value())?);
    }
    for org in &orgs {
        let n = counts.get(&org.id).copied().unwrap_or(0);
        put_rows(&mut t.sorted, "orgs", &org.id, &org_rows(org, n))?;
    }
    let mut apps = Vec::new();
    for item in t.apps.iter()? {
        let (key, value) = item?;
        apps.push(decode::<App>("apps", key.value(), value.value())?);
    }
    for app in &apps {
        put_rows(&mut t.sorted, &app_scope(&app.owner), &app.id, &app_rows(app))?;
    }
    Ok(())
}

/// The page token of a sorted list: the order, then the last row's sort key and id.
fn make_token(order: ListOrder, key: &str, id: &str) -> String {
    let dir = if order.descending { "desc" } else { "asc" };
    hex::encode(format!("{}\u{0}{dir}\u{0}{key}\u{0}{id}", order.field.as_str()).as_bytes())
}

fn parse_token(token: &str, order: ListOrder) -> Result<Option<(String, String)>, Refusal> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| Refusal::invalid("page_token", why.to_string());
    let text = hex::decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|t| t.len() <= 1024)
        .ok_or_else(|| bad("not a token returned by a previous page of this list"))?;
    let parts: Vec<&str> = text.split('\u{0}').collect();
    let [field, dir, key, id] = parts.as_slice() else {
        return Err(bad("not a token returned by a previous page of this list"));
    };
    let want_dir = if order.descending { "desc" } else { "asc" };
    if *field != order.field.as_str() || *dir != want_dir || id.is_empty() {
        return Err(bad(
            "a token from a list in another order; keep `order_by` the same across pages",
        ));
    }
    Ok(Some((key.to_string(), id.to_string())))
}

/// Fills a page from rows in list order, keeping those `load` returns, and notes whether one
/// more kept row follows.
fn fill<T>(
    rows: impl Iterator<Item = Result<(String, String), StoreError>>,
    order: ListOrder,
    size: u32,
    mut load: impl FnMut(&str) -> Result<Option<T>, ApplyError>,
) -> Result<Page<T>, ApplyError> {
    let size = page_size(size);
    let mut items = Vec::new();
    let mut last: Option<(String, String)> = None;
    let mut more = false;
    for row in rows {
        let (key, id) = row?;
        let Some(item) = load(&id)? else { continue };
        if items.len() == size {
            more = true;
            break;
        }
        items.push(item);
        last = Some((key, id));
    }
    let next_page_token = match (more, last) {
        (true, Some((key, id))) => make_token(order, &key, &id),
        _ => String::new(),
    };
    Ok(Page {
        items,
        next_page_token,
    })
}

/// Rows `(sort key, id)` of one scope and order, after `after`, in the list's direction.
fn scan<'a>(
    table: &'a impl ReadableTable<(&'static str, &'static str, &'static str, &'static str), ()>,
    scope: &'a str,
    order: ListOrder,
    after: Option<&'a (String, String)>,
) -> Result<Rows<'a>, StoreError> {
    let field = order.field.as_str();
    let end = format!("{field}\u{0}");
    let lo = (scope, field, "", "");
    let hi = (scope, end.as_str(), "", "");
    let range = match (after, order.descending) {
        (None, _) => table.range(lo..hi)?,
        (Some((k, i)), false) => table.range::<(&str, &str, &str, &str)>((
            Bound::Excluded((scope, field, k.as_str(), i.as_str())),
            Bound::Excluded(hi),
        ))?,
        (Some((k, i)), true) => table.range(lo..(scope, field, k.as_str(), i.as_str()))?,
    };
    let map = |item: SortedItem<'_>| {
        let (key, _) = item?;
        let (_, _, k, i) = key.value();
        Ok((k.to_string(), i.to_string()))
    };
    Ok(if order.descending {
        Box::new(range.rev().map(map))
    } else {
        Box::new(range.map(map))
    })
}

impl Store {
    /// Build `sorted` and `member_counts` for a file written before they existed.
    pub(crate) fn backfill_sorted(&self) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock();
        let txn = self.db.begin_write()?;
        {
            let mut t = WriteTables::open(&txn)?;
            backfill(&mut t)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// How many members `org` has (one read of `member_counts`).
    pub fn member_count(&self, org: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(tables::MEMBER_COUNTS)?
            .get(org)?
            .map_or(0, |v| v.value()))
    }

    /// The teams of `org` each of `users` belongs to: one lookup per (team, user), so a page
    /// of members costs its own size times the org's teams, never a walk of every team member.
    pub fn member_teams(
        &self,
        org: &str,
        users: &[&str],
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        let txn = self.db.begin_read()?;
        let teams = tables::seconds(&txn.open_table(tables::TEAMS)?, org)?;
        let team_members = txn.open_table(tables::TEAM_MEMBERS)?;
        let mut out = std::collections::BTreeMap::new();
        for user in users {
            let mut of_user = Vec::new();
            for team in &teams {
                if team_members.get((org, team.as_str(), *user))?.is_some() {
                    of_user.push(team.clone());
                }
            }
            out.insert(user.to_string(), of_user);
        }
        Ok(out)
    }

    /// Every org, in `order`, keeping those `filter` matches, with their member counts.
    pub fn list_orgs_sorted(
        &self,
        filter: &ListFilter,
        order: ListOrder,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<(Org, u64)>, ApplyError> {
        let after = parse_token(page_token, order)?;
        let txn = self.db.begin_read()?;
        let sorted = txn.open_table(tables::SORTED)?;
        let orgs = txn.open_table(tables::ORGS)?;
        let counts = txn.open_table(tables::MEMBER_COUNTS)?;
        let rows = scan(&sorted, "orgs", order, after.as_ref())?;
        fill(rows, order, page_size, |id| {
            let Some(org) = get_json::<Org>(&orgs, "orgs", id)? else {
                return Ok(None);
            };
            if !filter.text(&org.id, &org.name) {
                return Ok(None);
            }
            let n = counts.get(id)?.map_or(0, |v| v.value());
            Ok(Some((org, n)))
        })
    }

    /// The orgs `user` belongs to, in `order`. A user's orgs are few (bounded by the
    /// membership limits), so they are read whole and sorted here.
    pub fn list_user_orgs_sorted(
        &self,
        user: &str,
        filter: &ListFilter,
        order: ListOrder,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<(Org, u64)>, ApplyError> {
        let after = parse_token(page_token, order)?;
        let txn = self.db.begin_read()?;
        let orgs = txn.open_table(tables::ORGS)?;
        let counts = txn.open_table(tables::MEMBER_COUNTS)?;
        let mut rows = Vec::new();
        for id in tables::seconds(&txn.open_table(tables::USER_ORGS)?, user)? {
            let Some(org) = get_json::<Org>(&orgs, "orgs", &id)? else {
                continue;
            };
            let n = counts.get(id.as_str())?.map_or(0, |v| v.value());
            let key = org_rows(&org, n)
                .into_iter()
                .find(|(o, _)| *o == order.field.as_str())
                .map(|(_, k)| k)
                .unwrap_or_default();
            rows.push(((key, id), (org, n)));
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if order.descending {
            rows.reverse();
        }
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|(k, _)| match &after {
                None => true,
                Some(a) if order.descending => k < a,
                Some(a) => k > a,
            })
            .collect();
        let mut by_id: std::collections::HashMap<String, (Org, u64)> =
            rows.iter().map(|((_, id), v)| (id.clone(), v.clone())).collect();
        let keys = rows.into_iter().map(|(k, _)| Ok(k));
        fill(keys, order, page_size, |id| {
            Ok(by_id
                .remove(id)
                .filter(|(org, _)| filter.text(&org.id, &org.name)))
        })
    }

    /// Apps of `owner` in `order`, keeping those whose id or name contains the query and that
    /// carry every label of the filter.
    pub fn list_apps_sorted(
        &self,
        owner: &Owner,
        filter: &ListFilter,
        order: ListOrder,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<App>, ApplyError> {
        let after = parse_token(page_token, order)?;
        let txn = self.db.begin_read()?;
        let sorted = txn.open_table(tables::SORTED)?;
        let apps = txn.open_table(tables::APPS)?;
        let scope = app_scope(owner);
        let rows = scan(&sorted, &scope, order, after.as_ref())?;
        fill(rows, order, page_size, |id| {
            Ok(get_json::<App>(&apps, "apps", id)?.filter(|app| {
                filter.text(&app.id, &app.name) && filter.labels.iter().all(|l| app.labels.contains(l))
            }))
        })
    }

    /// Members of `org` in `order` (`id` and `name` are the user id), keeping those whose user
    /// id, email or username contains the query and, if given, holding `role`.
    pub fn list_members_sorted(
        &self,
        org: &str,
        filter: &ListFilter,
        role: &str,
        order: ListOrder,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<Member>, ApplyError> {
        let after = parse_token(page_token, order)?;
        let txn = self.db.begin_read()?;
        let sorted = txn.open_table(tables::SORTED)?;
        let memberships = txn.open_table(tables::MEMBERSHIPS)?;
        let users = txn.open_table(tables::USERS)?;
        let scope = member_scope(org);
        let end = format!("{org}\u{0}");
        let rows: Rows<'_> = match order.field {
            SortField::Id | SortField::Name => {
                let lo = (org, "");
                let hi = (end.as_str(), "");
                let range = match (&after, order.descending) {
                    (None, _) => memberships.range(lo..hi)?,
                    (Some((_, i)), false) => memberships
                        .range::<(&str, &str)>((Bound::Excluded((org, i.as_str())), Bound::Excluded(hi)))?,
                    (Some((_, i)), true) => memberships.range(lo..(org, i.as_str()))?,
                };
                let map = |item: MembershipItem<'_>| {
                    let (key, _) = item?;
                    Ok((String::new(), key.value().1.to_string()))
                };
                if order.descending {
                    Box::new(range.rev().map(map))
                } else {
                    Box::new(range.map(map))
                }
            }
            _ => scan(&sorted, &scope, order, after.as_ref())?,
        };
        let query = filter.query.to_lowercase();
        fill(rows, order, page_size, |user_id| {
            let Some(membership) =
                tables::get_json2::<Membership>(&memberships, "memberships", (org, user_id))?
            else {
                return Ok(None);
            };
            if !role.is_empty() && membership.role != role {
                return Ok(None);
            }
            let user: Option<User> = get_json(&users, "users", user_id)?;
            if !query.is_empty() && !super::read::member_matches(&query, user_id, user.as_ref()) {
                return Ok(None);
            }
            Ok(Some(Member { membership, user }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_follows_aip_132_and_names_the_field() {
        let all = [SortField::Name, SortField::UpdatedAt];
        assert_eq!(ListOrder::parse("", &all).unwrap(), ListOrder::default());
        let o = ListOrder::parse("updated_at desc", &all).unwrap();
        assert_eq!((o.field, o.descending), (SortField::UpdatedAt, true));
        for bad in ["size", "name up", "name asc extra", "member_count"] {
            match ListOrder::parse(bad, &all) {
                Err(Refusal::InvalidArgument { field, .. }) => assert_eq!(field, "order_by"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn tokens_are_bound_to_their_order() {
        let asc = ListOrder {
            field: SortField::Name,
            descending: false,
        };
        let desc = ListOrder {
            descending: true,
            ..asc
        };
        let t = make_token(asc, "acme", "acme-1");
        assert_eq!(
            parse_token(&t, asc).unwrap(),
            Some(("acme".into(), "acme-1".into()))
        );
        assert!(parse_token(&t, desc).is_err());
        assert!(parse_token("zz", asc).is_err());
        assert!(parse_token(&hex::encode("name\0asc\0k"), asc).is_err());
    }
}
