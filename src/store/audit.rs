//! The audit log: the change log, queried by org, actor, change type and time.
//!
//! Every committed change is already in the change log with its actor and time. What the log
//! cannot say by itself is which org a change concerns when the change names only an app or a
//! token (`DeleteApp`, `RevokeToken`): that is known from the state *before* the change, so
//! [`change_org`] runs inside the write transaction, ahead of `apply`, and the write adds
//! `(org, revision)` to `audit_by_org` in the same transaction. A query by org then walks that
//! index newest first; a query across orgs (Unix socket only) walks the change log itself.
//!
//! Scans are bounded: one call reads at most [`MAX_SCANNED`] change-log records, so a
//! selective filter over a long history returns a short (possibly empty) page with a
//! `next_page_token` to continue, instead of holding a read transaction for seconds.

use super::read::ChangeRecord;
use super::tables::{self, WriteTables, decode, get_json};
use super::{ApplyError, Store, StoreError};
use crate::directory::{App, Change, Owner, Refusal, Token};
use redb::ReadableTable;

/// Most change-log records one audit query reads.
pub const MAX_SCANNED: usize = 10_000;

/// What to look for. Empty strings and zero times mean "any".
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only changes concerning this org; empty: every change (instance-wide).
    pub org: String,
    /// Only changes made by this actor.
    pub actor: String,
    /// Only changes of this type (`add_member`, `create_token`, … as in the change's `type`).
    pub change_type: String,
    /// Only changes at or after this time (Unix ms).
    pub since_ms: u64,
    /// Only changes before this time (Unix ms); 0: no bound.
    pub until_ms: u64,
}

/// One audit entry: the change-log record and the org it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub record: ChangeRecord,
    pub org: Option<String>,
}

/// A page of entries, newest first. `next_page_token` is empty when the history is exhausted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_page_token: String,
}

/// The org a change concerns, from the change itself or, for changes that name only an app or
/// a token, from the state before the change. `None` for instance-level changes (users, personal
/// apps and tokens, imports).
pub(crate) fn change_org(
    change: &Change,
    app_owner: impl Fn(&str) -> Result<Option<Owner>, StoreError>,
    token_owner: impl Fn(&str) -> Result<Option<Owner>, StoreError>,
    invitation_org: impl Fn(&str) -> Result<Option<String>, StoreError>,
) -> Result<Option<String>, StoreError> {
    let org = |o: &Owner| o.org().map(str::to_string);
    Ok(match change {
        Change::UpsertUser { .. } | Change::Import { .. } => None,
        Change::CreateOrg { id, .. } | Change::UpdateOrg { id, .. } | Change::DeleteOrg { id } => {
            Some(id.clone())
        }
        Change::AddMember { org, .. }
        | Change::ChangeRole { org, .. }
        | Change::RemoveMember { org, .. }
        | Change::CreateTeam { org, .. }
        | Change::RenameTeam { org, .. }
        | Change::DeleteTeam { org, .. }
        | Change::AddTeamMember { org, .. }
        | Change::RemoveTeamMember { org, .. }
        | Change::GrantApp { org, .. }
        | Change::RevokeApp { org, .. }
        | Change::SetSecuritySettings { org, .. }
        | Change::SsoJoin { org, .. } => Some(org.clone()),
        Change::CreateApp { owner, .. } | Change::CreateToken { owner, .. } => org(owner),
        Change::DeleteApp { id }
        | Change::SetAppLabels { app: id, .. }
        | Change::AddCollaborator { app: id, .. }
        | Change::RemoveCollaborator { app: id, .. }
        | Change::SubmitAppVersion { app: id, .. }
        | Change::ReviewAppVersion { app: id, .. } => app_owner(id)?.as_ref().and_then(org),
        Change::TransferApp { to_org, .. } => Some(to_org.clone()),
        Change::RevokeToken { id } => token_owner(id)?.as_ref().and_then(org),
        Change::CreateInvitation { org, .. }
        | Change::RevokeInvitation { org, .. }
        | Change::LeaveOrg { org }
        | Change::AddDomain { org, .. }
        | Change::VerifyDomain { org, .. }
        | Change::SetDomainEnrollment { org, .. }
        | Change::RemoveDomain { org, .. }
        | Change::JoinByDomain { org }
        | Change::RequestMembership { org, .. }
        | Change::ApproveMembershipRequest { org, .. }
        | Change::RejectMembershipRequest { org, .. } => Some(org.clone()),
        Change::ForceDeleteOrg { id } => Some(id.clone()),
        Change::AcceptInvitation { code_sha256, .. } | Change::DeclineInvitation { code_sha256 } => {
            invitation_org(code_sha256)?
        }
    })
}

/// [`change_org`] against the tables of a write transaction.
pub(crate) fn org_in_txn(t: &WriteTables<'_>, change: &Change) -> Result<Option<String>, StoreError> {
    change_org(
        change,
        |id| Ok(get_json::<App>(&t.apps, "apps", id)?.map(|a| a.owner)),
        |id| Ok(get_json::<Token>(&t.tokens, "tokens", id)?.map(|t| t.owner)),
        |code| {
            let Some(id) = t.invitation_codes.get(code)? else {
                return Ok(None);
            };
            let id = id.value().to_string();
            Ok(get_json::<crate::directory::Invitation>(&t.invitations, "invitations", &id)?.map(|i| i.org))
        },
    )
}

fn parse_cursor(token: &str) -> Result<Option<u64>, Refusal> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix("before:")
        .and_then(|r| r.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Refusal::invalid(
                "page_token",
                "not a token returned by a previous page of this list",
            )
        })
}

impl AuditQuery {
    fn keeps(&self, r: &ChangeRecord) -> bool {
        (self.actor.is_empty() || r.actor == self.actor)
            && (self.change_type.is_empty() || r.change.kind() == self.change_type)
            && r.at_ms >= self.since_ms
            && (self.until_ms == 0 || r.at_ms < self.until_ms)
    }
}

impl Store {
    /// Audit entries matching `q`, newest first, at most `page_size` (0: 100, at most 1000).
    pub fn audit(&self, q: &AuditQuery, page_token: &str, page_size: u32) -> Result<AuditPage, ApplyError> {
        let before = parse_cursor(page_token)?;
        let size = match page_size {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let txn = self.db.begin_read()?;
        let log = txn.open_table(tables::CHANGELOG)?;
        let mut page = AuditPage::default();
        let mut scanned = 0usize;
        let mut last_seen = None;
        let end = before.unwrap_or(u64::MAX);
        // Revisions to read, newest first: from the org index, or the whole log.
        let mut visit = |rev: u64, page: &mut AuditPage| -> Result<bool, StoreError> {
            if page.entries.len() == size || scanned == MAX_SCANNED {
                return Ok(false);
            }
            scanned += 1;
            last_seen = Some(rev);
            let Some(value) = log.get(rev)? else {
                return Ok(true);
            };
            let record: ChangeRecord = decode("changelog", &rev.to_string(), value.value())?;
            if q.keeps(&record) {
                let org = if q.org.is_empty() {
                    None
                } else {
                    Some(q.org.clone())
                };
                page.entries.push(AuditEntry { record, org });
            }
            Ok(true)
        };
        let mut exhausted = true;
        if q.org.is_empty() {
            for item in log.range(..end)?.rev() {
                let (key, _) = item?;
                if !visit(key.value(), &mut page)? {
                    exhausted = false;
                    break;
                }
            }
        } else {
            let by_org = txn.open_table(tables::AUDIT_BY_ORG)?;
            for item in by_org.range((q.org.as_str(), 0)..(q.org.as_str(), end))?.rev() {
                let (key, _) = item?;
                if !visit(key.value().1, &mut page)? {
                    exhausted = false;
                    break;
                }
            }
        }
        if !exhausted && let Some(rev) = last_seen {
            // Continue below the last revision that was looked at (added or filtered out).
            let resume = if page.entries.len() == size {
                page.entries.last().map_or(rev, |e| e.record.revision)
            } else {
                rev
            };
            page.next_page_token = format!("before:{resume}");
        }
        if q.org.is_empty() {
            // Instance-wide: say which org each change concerns, where the log alone tells.
            for e in &mut page.entries {
                e.org = change_org(&e.record.change, |_| Ok(None), |_| Ok(None), |_| Ok(None))?;
            }
        }
        Ok(page)
    }

    /// Index every change-log record by org (a store written before the audit index existed).
    /// Changes naming only an app or token are attributed from the current state.
    pub(crate) fn backfill_audit(&self) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock();
        let txn = self.db.begin_write()?;
        {
            let t = WriteTables::open(&txn)?;
            let mut rows = Vec::new();
            for item in t.changelog.iter()? {
                let (key, value) = item?;
                let record: ChangeRecord = decode("changelog", &key.value().to_string(), value.value())?;
                if let Some(org) = org_in_txn(&t, &record.change)? {
                    rows.push((org, key.value()));
                }
            }
            let mut t = t;
            for (org, rev) in rows {
                t.audit_by_org.insert((org.as_str(), rev), ())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
