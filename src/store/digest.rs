//! A digest of the directory's state: every table that `apply` writes (records and their
//! indexes), none of the telemetry (usage counts, token last use) and not the change log itself,
//! all read in one read transaction together with the revision they reflect.
//!
//! Two stores that applied the same change log under the same policy hold byte-identical
//! tables, so they report the same digest at the same revision; any divergence, in a record or
//! in an index table apply keeps beside it, changes the digest of that table and of the whole.
//! Replicas compare digests to prove they converged; the per-table digests say where they did
//! not.

use super::tables;
use super::{Store, StoreError};
use redb::{ReadTransaction, ReadableTable, TableDefinition, TableHandle};
use sha2::{Digest as _, Sha256};

/// The digest of one table: its name, how many entries it holds, and hex SHA-256 over its
/// entries in key order (each key and value as stored, length-prefixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub name: String,
    pub entries: u64,
    pub sha256: String,
}

/// The directory's digest at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryDigest {
    /// The last committed revision, read in the same transaction as the tables.
    pub revision: u64,
    /// Hex SHA-256 over the per-table digests, in [`DIGESTED_TABLES`] order.
    pub sha256: String,
    pub tables: Vec<TableDigest>,
}

/// Every table of directory state, in digest order: the tables `store::tables` declares
/// `digested: true`, in their declaration order. Not digested: `meta` (the schema),
/// `changelog` and `audit_by_org` (the history, not the state: a store bootstrapped from a
/// snapshot may start its log later), `token_last_used` and `usage` (telemetry each sidecar
/// writes on its own), `cluster_state`, `cluster_outcomes` and `cluster_epoch` (cluster mode's
/// position in the log, its per-request answers and the policy epoch in force: bookkeeping of
/// the log, like the change log, not directory state).
pub use super::tables::DIGESTED_TABLES;

/// Digest one table; a table this file does not have yet digests as empty.
fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<TableDigest, StoreError> {
    let mut h = Sha256::new();
    let mut entries = 0u64;
    match txn.open_table(def) {
        Ok(t) => {
            for item in t.iter()? {
                let (k, v) = item?;
                let (k, v) = (k.value(), v.value());
                let (kb, vb) = (K::as_bytes(&k), V::as_bytes(&v));
                let (kb, vb): (&[u8], &[u8]) = (kb.as_ref(), vb.as_ref());
                h.update((kb.len() as u64).to_le_bytes());
                h.update(kb);
                h.update((vb.len() as u64).to_le_bytes());
                h.update(vb);
                entries += 1;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(TableDigest {
        name: def.name().to_string(),
        entries,
        sha256: hex::encode(h.finalize()),
    })
}

/// Digests each table [`tables::visit_digested`] hands it.
struct Digests<'a> {
    txn: &'a ReadTransaction,
    tables: Vec<TableDigest>,
}

impl tables::TableVisitor for Digests<'_> {
    type Error = StoreError;
    fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        self.tables.push(table(self.txn, def)?);
        Ok(())
    }
}

impl Store {
    /// The digest of the directory's state and the revision it reflects, from one read
    /// transaction (writes go on meanwhile; they are simply not in it).
    pub fn digest(&self) -> Result<DirectoryDigest, StoreError> {
        Self::digest_in(&self.db.begin_read()?)
    }

    /// The digest of what `txn` sees.
    pub(crate) fn digest_in(txn: &redb::ReadTransaction) -> Result<DirectoryDigest, StoreError> {
        let revision = match txn.open_table(tables::CHANGELOG) {
            Ok(log) => super::last_revision(&log)?,
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        let mut digests = Digests {
            txn,
            tables: Vec::with_capacity(DIGESTED_TABLES.len()),
        };
        tables::visit_digested(&mut digests)?;
        let tables = digests.tables;
        let mut h = Sha256::new();
        for t in &tables {
            h.update(t.name.as_bytes());
            h.update([0]);
            h.update(t.entries.to_le_bytes());
            h.update(t.sha256.as_bytes());
        }
        Ok(DirectoryDigest {
            revision,
            sha256: hex::encode(h.finalize()),
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_digested_or_named_as_not_directory_state() {
        let skipped = [
            "meta",
            "changelog",
            "audit_by_org",
            "token_last_used",
            "usage",
            "cluster_state",
            "cluster_outcomes",
            "cluster_epoch",
            "telemetry_state",
            "telemetry_outbox",
            "telemetry_seen",
        ];
        for name in tables::TABLE_NAMES {
            assert!(
                DIGESTED_TABLES.contains(&name) != skipped.contains(&name),
                "table `{name}` must be either digested or deliberately skipped"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.redb")).unwrap();
        let d = store.digest().unwrap();
        let names: Vec<&str> = d.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, DIGESTED_TABLES);
    }

    /// The one list in `store::tables` names each table once, and its digested tables are the
    /// digest's, in the same order (a table marked digested but missing from the digest, or the
    /// reverse, cannot happen by construction; this pins the derivation itself).
    #[test]
    fn the_table_lists_are_derived_from_one_declaration() {
        let mut seen = std::collections::HashSet::new();
        for name in tables::TABLE_NAMES {
            assert!(seen.insert(name), "table `{name}` declared twice");
        }
        assert_eq!(tables::TABLE_NAMES.len(), tables::TABLES.len());
        let digested: Vec<&str> = tables::TABLES
            .iter()
            .filter(|(_, d)| *d)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(digested, DIGESTED_TABLES);
        let mut visited = Vec::new();
        struct Names<'a>(&'a mut Vec<String>);
        impl tables::TableVisitor for Names<'_> {
            type Error = ();
            fn visit<K: redb::Key + 'static, V: redb::Value + 'static>(
                &mut self,
                def: TableDefinition<K, V>,
            ) -> Result<(), ()> {
                self.0.push(def.name().to_string());
                Ok(())
            }
        }
        tables::visit_digested(&mut Names(&mut visited)).unwrap();
        assert_eq!(visited, DIGESTED_TABLES);
    }
}
