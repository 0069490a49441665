//! Reading the change log forward, for followers of it (`WatchChanges`).
//!
//! One call reads one page of committed changes after a revision, from one read transaction,
//! together with the log's bounds at that moment: the oldest revision still in the log (a
//! store imported from a dump starts its log at the dump's revision) and the last one. With an
//! org, the page walks that org's entries of the audit index (`audit_by_org`, written in the
//! same transaction as the change), so a follower of one org never reads the others' changes.

use super::audit::change_org;
use super::read::ChangeRecord;
use super::tables::{self, decode};
use super::{Store, StoreError};
use redb::ReadableTable;

/// One change for a follower: the record and the org it concerns (for an instance-wide page,
/// as far as the record alone tells, like the instance-wide audit log).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEntry {
    pub record: ChangeRecord,
    pub org: Option<String>,
}

/// A page of the change log after some revision, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WatchPage {
    /// The oldest revision in the log (0 when it is empty).
    pub oldest: u64,
    /// The last committed revision.
    pub last: u64,
    pub entries: Vec<WatchEntry>,
    /// Every revision up to this one has been looked at (delivered, or filtered out by the
    /// org): the next page starts after it.
    pub scanned_to: u64,
}

impl Store {
    /// Up to `limit` committed changes with a revision greater than `after` (concerning `org`
    /// when it is not empty), from one read snapshot.
    pub fn watch_page(&self, after: u64, org: &str, limit: usize) -> Result<WatchPage, StoreError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(tables::CHANGELOG)?;
        let oldest = log.first()?.map_or(0, |(k, _)| k.value());
        let last = log.last()?.map_or(0, |(k, _)| k.value());
        let mut page = WatchPage {
            oldest,
            last,
            entries: Vec::new(),
            scanned_to: last.max(after),
        };
        let Some(start) = after.checked_add(1) else {
            return Ok(page);
        };
        let record = |rev: u64, bytes: &[u8]| -> Result<ChangeRecord, StoreError> {
            decode("changelog", &rev.to_string(), bytes)
        };
        if org.is_empty() {
            for item in log.range(start..)?.take(limit) {
                let (key, value) = item?;
                let record = record(key.value(), value.value())?;
                let org = change_org(&record.change, |_| Ok(None), |_| Ok(None), |_| Ok(None))?;
                page.entries.push(WatchEntry { record, org });
            }
        } else {
            let index = txn.open_table(tables::AUDIT_BY_ORG)?;
            for item in index.range((org, start)..)?.take(limit) {
                let (key, _) = item?;
                let (o, rev) = key.value();
                if o != org {
                    break;
                }
                let Some(value) = log.get(rev)? else {
                    return Err(StoreError::Corrupt {
                        table: "audit_by_org".into(),
                        key: format!("{org}/{rev}"),
                        reason: "names a revision the change log does not hold".into(),
                    });
                };
                page.entries.push(WatchEntry {
                    record: record(rev, value.value())?,
                    org: Some(org.to_string()),
                });
            }
        }
        if page.entries.len() >= limit
            && let Some(e) = page.entries.last()
        {
            page.scanned_to = e.record.revision;
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use crate::directory::ApplyContext;
    use crate::store::Store;

    #[test]
    fn pages_follow_the_log_with_bounds_and_the_org_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.redb")).unwrap();
        let empty = store.watch_page(0, "", 10).unwrap();
        assert_eq!((empty.oldest, empty.last, empty.entries.len()), (0, 0, 0));
        for env in crate::store::demo::demo_changes(1_000) {
            store.apply(env, &ApplyContext::trusted()).unwrap();
        }
        let last = store.revision().unwrap();

        let all = store.watch_page(0, "", 1000).unwrap();
        assert_eq!((all.oldest, all.last, all.scanned_to), (1, last, last));
        let revs: Vec<u64> = all.entries.iter().map(|e| e.record.revision).collect();
        assert_eq!(revs, (1..=last).collect::<Vec<_>>());

        // A short page says how far it looked.
        let first = store.watch_page(2, "", 3).unwrap();
        let revs: Vec<u64> = first.entries.iter().map(|e| e.record.revision).collect();
        assert_eq!((revs, first.scanned_to), (vec![3, 4, 5], 5));

        let acme = store.watch_page(0, "acme", 1000).unwrap();
        assert!(!acme.entries.is_empty());
        assert!(acme.entries.iter().all(|e| e.org.as_deref() == Some("acme")));
        assert_eq!(acme.scanned_to, last);
        let globex = store.watch_page(0, "globex", 1000).unwrap();
        assert!(globex.entries.iter().all(|e| !acme.entries.contains(e)));
        assert!(store.watch_page(0, "nobody", 10).unwrap().entries.is_empty());
        // Past the end.
        assert!(store.watch_page(last, "", 10).unwrap().entries.is_empty());
        assert!(store.watch_page(u64::MAX, "", 10).unwrap().entries.is_empty());
    }
}
