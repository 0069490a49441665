//! Disk trouble under the real daemon: a truncated or corrupted database, one from a
//! newer schema, a read-only data directory, and a full disk. Each is a clear startup or
//! write error; none is ever served as an empty directory, and none destroys the file.
//!
//! The read-only and full-disk cases mount a small tmpfs when the test runs as root
//! (root ignores file modes) and use file modes otherwise; where neither is possible the
//! test says so and skips that case.

use crate::common;

use common::tmpfs::{Tmpfs, is_root};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tonic::Code;
use warden::api::pb;

/// Seed the demo directory into a store in `data`, as a daemon would have; its revision.
fn populate(data: &Path) -> u64 {
    let store = warden::store::Store::open(data.join("warden.redb")).unwrap();
    let scratch = warden::engine::index::DirectoryIndex::new();
    for env in warden::store::demo::demo_changes(1) {
        store
            .apply_and_index(env, &warden::directory::ApplyContext::trusted(), &scratch)
            .unwrap();
    }
    store.revision().unwrap()
}

/// `warden serve` on `work` must exit non-zero with every one of `words` in its stderr.
fn refuses_to_start(work: &Workdir, words: &[&str]) -> String {
    let (status, stderr) = run_to_exit(&mut work.serve_command());
    assert!(!status.success(), "warden served anyway; stderr:\n{stderr}");
    for w in words {
        assert!(stderr.contains(w), "stderr lacks {w:?}:\n{stderr}");
    }
    stderr
}

#[test]
fn damaged_database_files_stop_startup_and_stay_as_they_were() {
    type Damage = (&'static str, fn(&Path), &'static [&'static str]);
    let damages: [Damage; 4] = [
        (
            "truncated to half",
            |p| {
                let len = std::fs::metadata(p).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            },
            &["warden.redb"],
        ),
        (
            "truncated to 100 bytes",
            |p| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(100)
                    .unwrap();
            },
            &["warden.redb"],
        ),
        (
            "garbage header",
            |p| {
                use std::io::{Seek, Write};
                let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.seek(std::io::SeekFrom::Start(0)).unwrap();
                f.write_all(&[0xAB; 512]).unwrap();
            },
            &["warden.redb"],
        ),
        (
            "bytes flipped in the middle",
            |p| {
                let mut bytes = std::fs::read(p).unwrap();
                let mid = bytes.len() / 2;
                for b in &mut bytes[mid..mid + 4096] {
                    *b ^= 0x5A;
                }
                std::fs::write(p, bytes).unwrap();
            },
            &[],
        ),
    ];
    for (what, damage, words) in damages {
        let work = Workdir::new();
        populate(&work.data());
        let db = work.data().join("warden.redb");
        damage(&db);
        let before = std::fs::read(&db).unwrap();
        let (status, stderr) = run_to_exit(&mut work.serve_command());
        if status.success() {
            panic!("{what}: served a damaged file; stderr:\n{stderr}");
        }
        // A flipped page in free space may be harmless to redb's checks; then the daemon
        // must at least not have started on an empty directory, which `status` rules out.
        for w in words {
            assert!(stderr.contains(w), "{what}: stderr lacks {w:?}:\n{stderr}");
        }
        assert!(
            stderr.contains("not starting") || stderr.contains("store"),
            "{what}:\n{stderr}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "{what}: the file was changed"
        );
        println!("{what}: {}", stderr.lines().last().unwrap_or(""));
    }
}

#[test]
fn a_newer_schema_stops_startup() {
    let work = Workdir::new();
    populate(&work.data());
    let db = work.data().join("warden.redb");
    {
        // Write a schema version from the future with redb directly.
        let database = redb::Database::open(&db).unwrap();
        let txn = database.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("schema_version", 999).unwrap();
        }
        txn.commit().unwrap();
    }
    refuses_to_start(&work, &["999"]);
}

#[test]
fn a_read_only_data_directory_is_a_clear_startup_error() {
    let work = Workdir::new();
    let data = work.data();
    let mut mount = None;
    let rev;
    if is_root() {
        // Root ignores modes: the data directory is a tmpfs remounted read-only.
        let ro = work.dir.path().join("ro");
        let Some(m) = Tmpfs::mount(&ro, "8m") else {
            eprintln!("SKIPPED: running as root without permission to mount a tmpfs");
            return;
        };
        rev = populate(&ro);
        assert!(m.remount("ro"), "remount read-only");
        mount = Some(m);
        std::os::unix::fs::symlink(&ro, &data).unwrap();
    } else {
        rev = populate(&data);
        std::fs::set_permissions(data.join("warden.redb"), std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let (status, stderr) = run_to_exit(&mut work.serve_command());
    assert!(!status.success(), "served from a read-only directory:\n{stderr}");
    assert!(
        stderr.contains("Read-only") || stderr.contains("ermission denied"),
        "the error does not say why:\n{stderr}"
    );
    println!("read-only: {}", stderr.lines().last().unwrap_or(""));
    match &mount {
        Some(m) => assert!(m.remount("rw")),
        None => std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap(),
    }
    // Nothing was lost: the store still holds the directory.
    let store = warden::store::Store::open(data.join("warden.redb")).unwrap();
    assert_eq!(store.revision().unwrap(), rev);
}

#[test]
fn a_full_disk_fails_writes_clearly_and_writes_recover_when_space_returns() {
    if !is_root() {
        eprintln!("SKIPPED: filling a disk needs a small tmpfs, and mounting one needs root");
        return;
    }
    let work = Workdir::new();
    let data = work.dir.path().join("small");
    let Some(_mount) = Tmpfs::mount(&data, "4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    };
    // The harness passes --data <workdir>/data; point that at the tmpfs.
    std::os::unix::fs::symlink(&data, work.data()).unwrap();
    // The demo, and a part of the directory this daemon will never have read before the disk
    // fills (150 users and an org holding them), written before it starts.
    populate(&data);
    {
        use warden::directory::{Change, ChangeEnvelope};
        let store = warden::store::Store::open(data.join("warden.redb")).unwrap();
        let scratch = warden::engine::index::DirectoryIndex::new();
        let mut changes = vec![Change::CreateOrg {
            id: "late".into(),
            name: "Late".into(),
            billing_email: None,
            plan: "free".into(),
            logo_url: None,
            public_metadata: serde_json::Value::Null,
            private_metadata: serde_json::Value::Null,
            settings: Default::default(),
        }];
        for i in 0..150 {
            changes.push(Change::UpsertUser {
                id: format!("late{i}"),
                email: format!("late{i}@example.com"),
                username: Some(format!("Late user number {i} with a longer name")),
                email_verified: None,
            });
            changes.push(Change::AddMember {
                org: "late".into(),
                user: format!("late{i}"),
                role: "org_user".into(),
                terms_version: None,
            });
        }
        for change in changes {
            store
                .apply_and_index(
                    ChangeEnvelope::new("alice", 1, change),
                    &warden::directory::ApplyContext::trusted(),
                    &scratch,
                )
                .unwrap();
        }
    }
    let mut daemon = work.start();
    let rt = runtime();
    let unix = daemon.work.unix_target();
    let mut c = rt.block_on(common::directory::clients(&unix));
    let before = rt.block_on(c.stats()).revision;

    // Fill what is left of the tmpfs.
    let filler = data.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    // Writes fail with a clear, retryable status; nothing is half-applied.
    let mut failures = Vec::new();
    for i in 0..50 {
        let r = rt.block_on(c.user.upsert_user(pb::UpsertUserRequest {
            actor: format!("full{i}"),
            user_id: format!("full{i}"),
            email: format!("full{i}@example.com"),
            name: String::new(),
            email_verified: None,
            username: "x".repeat(200),
        }));
        if let Err(s) = r {
            failures.push(s);
        }
    }
    assert!(!failures.is_empty(), "every write fit on a full disk");
    for s in &failures {
        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
        assert!(s.message().contains("unavailable"), "{}", s.message());
    }
    // Checks keep being answered from memory.
    assert!(rt.block_on(c.check("alice", "acme", "apps/web", "app:write", 0)));
    let during = rt.block_on(c.stats()).revision;
    // Directory reads keep being answered from the store while writes are refused, every
    // one of them, again and again (issue 11, item 11).
    let reads = directory_reads_answered(&rt, &mut c, 5);
    assert_eq!(reads.0, reads.1, "directory reads failed during a full disk");
    // A write still refused after the reads: the disk is still full.
    let again = rt.block_on(c.user.upsert_user(pb::UpsertUserRequest {
        actor: "full-again".into(),
        user_id: "full-again".into(),
        email: "full-again@example.com".into(),
        username: "y".repeat(200),
        ..Default::default()
    }));
    if let Err(s) = &again {
        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
        let reads = directory_reads_answered(&rt, &mut c, 1);
        assert_eq!(
            reads.0, reads.1,
            "directory reads failed after a second refused write"
        );
    }

    // Space comes back. redb refuses every write after a failed one until the database is
    // reopened; the daemon reopens it on the next write, so writes work again without a
    // restart, and the write lands at the next revision.
    std::fs::remove_file(&filler).unwrap();
    let recovered = rt
        .block_on(c.user.upsert_user(pb::UpsertUserRequest {
            actor: "after".into(),
            user_id: "after".into(),
            email: "after@example.com".into(),
            ..Default::default()
        }))
        .expect("a write once the disk has room again")
        .into_inner()
        .revision;
    assert_eq!(
        recovered,
        during + 1,
        "the first write after recovery takes the next revision"
    );
    assert!(
        daemon.logs().contains("store reopened after an I/O error"),
        "{}",
        daemon.logs()
    );
    // The directory the daemon decides with is the one on disk.
    let index = rt
        .block_on(c.admin.check_index(pb::CheckIndexRequest {}))
        .expect("CheckIndex")
        .into_inner();
    assert!(
        index.consistent,
        "live index differs from the tables after the reopen: {index:?}"
    );
    assert_eq!(index.revision, recovered);
    assert!(rt.block_on(c.check("alice", "acme", "apps/web", "app:write", 0)));
    let during_after = rt.block_on(c.stats()).revision;
    daemon.stop();
    daemon.restart();
    let mut c = rt.block_on(common::directory::clients(&unix));
    let rev = rt.block_on(c.stats()).revision;
    assert_eq!(rev, during_after, "the restarted daemon lost or invented writes");
    // After the restart, writes work.
    let after = rt
        .block_on(c.user.upsert_user(pb::UpsertUserRequest {
            actor: "after2".into(),
            user_id: "after2".into(),
            email: "after2@example.com".into(),
            ..Default::default()
        }))
        .expect("a write after the restart")
        .into_inner()
        .revision;
    assert_eq!(after, rev + 1);
    println!(
        "disk full: {} of 50 writes refused with UNAVAILABLE, revision {before} -> {during} during, {after} after recovery; \
         directory reads during the full disk: {} of {} answered",
        failures.len(),
        reads.0,
        reads.1
    );
}

/// `rounds` of GetUser, GetOrg, ListMembers, ListTeams, GetApp, GetStats and CheckIndex on
/// the demo directory: (answered, asked). Every answer must be the demo's data.
fn directory_reads_answered(
    rt: &tokio::runtime::Runtime,
    c: &mut common::directory::Clients,
    rounds: usize,
) -> (usize, usize) {
    let mut answered = 0;
    let mut asked = 0;
    for _ in 0..rounds {
        let outcomes: Vec<(&str, Result<(), tonic::Status>)> = rt.block_on(async {
            let mut late_users = Ok(());
            for i in (0..150).step_by(7) {
                let id = format!("late{i}");
                if let Err(s) = c
                    .user
                    .get_user(pb::GetUserRequest {
                        min_revision: 0,
                        user_id: id.clone(),
                        actor: id.clone(),
                    })
                    .await
                {
                    late_users = Err(s);
                    break;
                }
            }
            vec![
                ("GetUser (never read before)", late_users),
                (
                    "ListMembers (never read before)",
                    c.member
                        .list_members(pb::ListMembersRequest {
                            order_by: String::new(),
                            org_id: "late".into(),
                            actor: "alice".into(),
                            page_size: 1000,
                            ..Default::default()
                        })
                        .await
                        .map(|m| assert_eq!(m.into_inner().members.len(), 151)),
                ),
                (
                    "GetUser",
                    c.user
                        .get_user(pb::GetUserRequest {
                            min_revision: 0,
                            user_id: "alice".into(),
                            actor: "alice".into(),
                        })
                        .await
                        .map(|u| assert_eq!(u.into_inner().user_id, "alice")),
                ),
                (
                    "GetOrg",
                    c.org
                        .get_org(pb::GetOrgRequest {
                            min_revision: 0,
                            org_id: "acme".into(),
                            actor: "alice".into(),
                        })
                        .await
                        .map(|o| assert!(o.into_inner().member_count > 0)),
                ),
                (
                    "ListMembers",
                    c.member
                        .list_members(pb::ListMembersRequest {
                            order_by: String::new(),
                            org_id: "acme".into(),
                            actor: "alice".into(),
                            ..Default::default()
                        })
                        .await
                        .map(|m| assert!(!m.into_inner().members.is_empty())),
                ),
                (
                    "ListTeams",
                    c.team
                        .list_teams(pb::ListTeamsRequest {
                            org_id: "acme".into(),
                            actor: "alice".into(),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                ),
                (
                    "GetApp",
                    c.app
                        .get_app(pb::GetAppRequest {
                            min_revision: 0,
                            app_id: "web".into(),
                            actor: "alice".into(),
                        })
                        .await
                        .map(|_| ()),
                ),
                (
                    "GetStats",
                    c.admin
                        .get_stats(pb::GetStatsRequest {})
                        .await
                        .map(|s| assert!(s.into_inner().revision > 0)),
                ),
                (
                    "CheckIndex",
                    c.admin
                        .check_index(pb::CheckIndexRequest {})
                        .await
                        .map(|i| assert!(i.into_inner().consistent)),
                ),
            ]
        });
        for (what, outcome) in outcomes {
            asked += 1;
            match outcome {
                Ok(()) => answered += 1,
                Err(s) => eprintln!("{what} during a full disk: {:?} {}", s.code(), s.message()),
            }
        }
    }
    (answered, asked)
}
