//! Opening the data file: first start, reopen, and files Warden must refuse.

use crate::store_support;

use store_support::*;
use warden::store::{SCHEMA_VERSION, Store, StoreError};

#[test]
fn first_start_creates_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/warden.redb");
    let store = Store::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(store.stats().unwrap(), Default::default());
}

#[test]
fn reopen_keeps_everything() {
    let f = Fixture::with_demo();
    let before = f.store.export().unwrap().to_json().unwrap();
    let stats = f.store.stats().unwrap();
    let path = f.path();
    let Fixture { dir, store, .. } = f;
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.export().unwrap().to_json().unwrap(), before);
    assert_eq!(reopened.stats().unwrap(), stats);
    assert_eq!(reopened.changes_since(0, 0).unwrap().len() as u64, stats.revision);
    drop(dir);
}

#[test]
fn newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("schema_version", SCHEMA_VERSION + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Store::open(&path).err().expect("newer schema must be refused");
    assert!(
        matches!(
            err,
            StoreError::NewerSchema { found, supported, .. }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("version {}", SCHEMA_VERSION + 1)) && msg.contains(&SCHEMA_VERSION.to_string()),
        "{msg}"
    );
}

#[test]
fn garbage_file_is_refused_not_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.redb");
    let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path).err().expect("garbage must be refused");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("w.redb"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file must not be touched"
    );
}

#[test]
fn corrupted_store_is_refused() {
    let f = Fixture::with_demo();
    let path = f.path();
    drop(f.store);
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip bytes past the header, where the tables' pages live: the second half of the
    // file, so the damage reaches live pages whatever the tables' layout.
    let len = bytes.len();
    for b in &mut bytes[len / 2..] {
        *b ^= 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let opened = std::panic::catch_unwind(|| Store::open(&path).map(|_| ()));
    match opened {
        Ok(Err(err @ StoreError::Open { .. })) => assert!(err.to_string().contains("warden.redb"), "{err}"),
        Ok(other) => panic!("a corrupted file must be refused, got {other:?}"),
        Err(_) => panic!("opening a corrupted file panicked instead of returning an error"),
    }
}

#[test]
fn foreign_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<&str, &str>::new("sessions"))
                .unwrap();
            t.insert("k", "v").unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Store::open(&path).err().expect("foreign file must be refused");
    assert!(matches!(err, StoreError::NotWarden { .. }), "{err}");
    assert!(err.to_string().contains("sessions"), "{err}");
}

#[test]
fn second_open_of_the_same_file_is_refused_clearly() {
    let f = Fixture::new();
    let err = Store::open(f.path())
        .err()
        .expect("a second open must be refused");
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err}");
}

/// A file written by schema 1 (before invitations) opens, keeps its records, and gains the
/// new tables: the upgrade only adds.
#[test]
fn schema_1_files_are_upgraded_in_place() {
    let f = Fixture::with_demo();
    let before = f.store.export().unwrap().to_json().unwrap();
    let path = f.path();
    let Fixture { dir, store, .. } = f;
    drop(store);
    {
        // Make it look exactly like a schema-1 file: version 1, no invitation tables.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for name in [
            "invitations",
            "org_invitations",
            "invitee_invitations",
            "invitation_codes",
        ] {
            let gone = match name {
                "invitations" => txn.delete_table(redb::TableDefinition::<&str, &[u8]>::new(name)),
                "invitation_codes" => txn.delete_table(redb::TableDefinition::<&str, &str>::new(name)),
                _ => txn.delete_table(redb::TableDefinition::<(&str, &str), ()>::new(name)),
            };
            assert!(gone.unwrap(), "{name} existed before the downgrade");
        }
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("schema_version", 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path).expect("a schema-1 store must open");
    assert_eq!(store.export().unwrap().to_json().unwrap(), before);
    assert!(store.get_invitation("anything").unwrap().is_none());
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn
        .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .unwrap();
    assert_eq!(
        meta.get("schema_version").unwrap().unwrap().value(),
        SCHEMA_VERSION
    );
    drop(dir);
}
