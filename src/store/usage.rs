//! Usage telemetry in the store: checks answered per member per day, and the active orgs.
//!
//! Counted in memory by the API (never by the engine) and added here in batches by the daemon's
//! flusher, outside the change log: usage is reporting data, not directory state, so it is not
//! replicated or audited. Days are UTC days since the Unix epoch.

use super::tables;
use super::{Store, StoreError};
use redb::ReadableTable;

impl Store {
    /// Add check counts for `day` (one transaction).
    pub fn record_usage(&self, day: u64, counts: &[(String, String, u64)]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            {
                let mut usage = txn.open_table(tables::USAGE)?;
                for (org, user, n) in counts {
                    let key = (org.as_str(), day, user.as_str());
                    let old = usage.get(key)?.map(|v| v.value()).unwrap_or(0);
                    usage.insert(key, old.saturating_add(*n))?;
                }
            }
            txn.commit()?;
            Ok(())
        })())
    }

    /// Every (day, user, checks) of `org` with `from_day <= day <= to_day`.
    pub fn org_usage(
        &self,
        org: &str,
        from_day: u64,
        to_day: u64,
    ) -> Result<Vec<(u64, String, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let usage = txn.open_table(tables::USAGE)?;
        let mut out = Vec::new();
        for item in usage.range((org, from_day, "")..)? {
            let (key, value) = item?;
            let (o, day, user) = key.value();
            if o != org || day > to_day {
                break;
            }
            out.push((day, user.to_string(), value.value()));
        }
        Ok(out)
    }

    /// How many orgs answered at least one check of a member between the two days (inclusive).
    pub fn active_orgs(&self, from_day: u64, to_day: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let orgs = txn.open_table(tables::ORGS)?;
        let usage = txn.open_table(tables::USAGE)?;
        let mut active = 0;
        for item in orgs.iter()? {
            let (key, _) = item?;
            let org = key.value();
            if let Some(hit) = usage.range((org, from_day, "")..)?.next() {
                let (k, _) = hit?;
                let (o, day, _) = k.value();
                if o == org && day <= to_day {
                    active += 1;
                }
            }
        }
        Ok(active)
    }
}
