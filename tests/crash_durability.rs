//! Crash durability of the directory, round after round: concurrent clients on the Unix
//! socket and on TCP stream mixed directory writes (users, members, role changes, teams,
//! team members, apps, grants, revocations, removals) into the real daemon, which is
//! killed with SIGKILL at a random moment of the stream and started again.
//!
//! After every kill, before the restart, the store file is opened offline and checked:
//! - the change log holds revisions 1..=N without a gap;
//! - every acknowledged write is in the log at the revision it was acknowledged with;
//! - the tables are exactly what replaying the log through the one apply function gives
//!   (so no write, acknowledged or cut off by the kill, is half-present);
//! - a decision index built from the tables equals one built from the replay.
//!
//! Before every kill, while the writers run, `AdminService.CheckIndex` compares the live,
//! incrementally maintained index with one rebuilt from the tables.
//!
//! CI runs a few rounds; `scripts/crash-soak.sh` runs ≥ 20 rounds and ≥ 10,000 writes
//! (`WARDEN_CRASH_ROUNDS`, `WARDEN_CRASH_WRITES_PER_ROUND`).

use crate::common;

use common::Workdir;
use common::directory::{Clients, clients};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden::api::pb;
use warden::directory::{ApplyContext, Change};
use warden::engine::index::DirectoryIndex;
use warden::store::Store;

const ORG: &str = "crash";
const ROOT: &str = "root";
const CLIENTS: usize = 4;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The identity of a write in the change log: its kind and the ids it touches.
fn key_of(change: &Change) -> String {
    match change {
        Change::UpsertUser { id, .. } => format!("upsert_user {id}"),
        Change::AddMember { org, user, role, .. } => format!("add_member {org} {user} {role}"),
        Change::ChangeRole { org, user, role } => format!("change_role {org} {user} {role}"),
        Change::RemoveMember { org, user } => format!("remove_member {org} {user}"),
        Change::CreateTeam { org, team, .. } => format!("create_team {org} {team}"),
        Change::AddTeamMember { org, team, user } => format!("add_team_member {org} {team} {user}"),
        Change::RemoveTeamMember { org, team, user } => {
            format!("remove_team_member {org} {team} {user}")
        }
        Change::CreateApp { id, .. } => format!("create_app {id}"),
        Change::CreateOrg { id, .. } => format!("create_org {id}"),
        Change::GrantApp { org, team, app } => format!("grant_app {org} {team} {app}"),
        Change::RevokeApp { org, team, app } => format!("revoke_app {org} {team} {app}"),
        other => format!("{} (not written by this test)", other.kind()),
    }
}

/// What the writers report.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged writes: revision → key.
    acked: parking_lot::Mutex<BTreeMap<u64, String>>,
    /// Writes whose answer never came (cut off by the kill): their keys.
    uncertain: parking_lot::Mutex<Vec<String>>,
    acks_this_round: AtomicU64,
}

/// One unit of work for a client: a user's life in the org, eight writes, each needing
/// the ones before it.
async fn writer(target: String, prefix: String, out: Arc<Outcomes>) {
    let mut c = clients(&target).await;
    for j in 0.. {
        let u = format!("{prefix}u{j}");
        let t = format!("{prefix}t{j}");
        let a = format!("{prefix}a{j}");
        let last = match j % 3 {
            0 => format!("remove_team_member {ORG} {t} {u}"),
            1 => format!("revoke_app {ORG} {t} {a}"),
            _ => format!("remove_member {ORG} {u}"),
        };
        let steps = [
            format!("upsert_user {u}"),
            format!("add_member {ORG} {u} org_user"),
            format!("create_team {ORG} {t}"),
            format!("add_team_member {ORG} {t} {u}"),
            format!("create_app {a}"),
            format!("grant_app {ORG} {t} {a}"),
            format!("change_role {ORG} {u} team_contributor"),
            last,
        ];
        for (step, key) in steps.into_iter().enumerate() {
            let result = write(&mut c, step, j, &u, &t, &a).await;
            match result {
                Ok(revision) => {
                    out.acked.lock().insert(revision, key);
                    out.acks_this_round.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => {
                    out.uncertain.lock().push(key);
                    // A refusal would be a bug in this script, not a crash: say so.
                    use tonic::Code::*;
                    assert!(
                        !matches!(
                            status.code(),
                            InvalidArgument
                                | NotFound
                                | AlreadyExists
                                | PermissionDenied
                                | FailedPrecondition
                        ),
                        "write refused while the daemon was up: {status}"
                    );
                    return;
                }
            }
        }
    }
}

async fn write(
    c: &mut Clients,
    step: usize,
    j: usize,
    u: &str,
    t: &str,
    a: &str,
) -> Result<u64, tonic::Status> {
    let actor = || ROOT.to_string();
    let org = || ORG.to_string();
    Ok(match step {
        0 => {
            c.user
                .upsert_user(pb::UpsertUserRequest {
                    actor: u.into(),
                    user_id: u.into(),
                    email: format!("{u}@example.com"),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .revision
        }
        1 => c.add_member(ROOT, ORG, u, "org_user").await?,
        2 => {
            c.team
                .create_team(pb::CreateTeamRequest {
                    actor: actor(),
                    org_id: org(),
                    team_id: t.into(),
                    name: t.into(),
                })
                .await?
                .into_inner()
                .revision
        }
        3 => {
            c.team
                .add_team_member(pb::AddTeamMemberRequest {
                    actor: actor(),
                    org_id: org(),
                    team_id: t.into(),
                    user_id: u.into(),
                })
                .await?
                .into_inner()
                .revision
        }
        4 => {
            c.app
                .create_app(pb::CreateAppRequest {
                    actor: actor(),
                    app_id: a.into(),
                    owner: Some(pb::Owner {
                        owner: Some(pb::owner::Owner::OrgId(org())),
                    }),
                    name: a.into(),
                    labels: vec![],
                })
                .await?
                .into_inner()
                .revision
        }
        5 => {
            c.team
                .grant_app(pb::GrantAppRequest {
                    actor: actor(),
                    org_id: org(),
                    team_id: t.into(),
                    app_id: a.into(),
                    role: String::new(),
                })
                .await?
                .into_inner()
                .revision
        }
        6 => {
            c.member
                .update_member_role(pb::UpdateMemberRoleRequest {
                    actor: actor(),
                    org_id: org(),
                    user_id: u.into(),
                    role: "team_contributor".into(),
                })
                .await?
                .into_inner()
                .revision
        }
        _ => match j % 3 {
            0 => {
                c.team
                    .remove_team_member(pb::RemoveTeamMemberRequest {
                        actor: actor(),
                        org_id: org(),
                        team_id: t.into(),
                        user_id: u.into(),
                    })
                    .await?
                    .into_inner()
                    .revision
            }
            1 => {
                c.team
                    .revoke_app(pb::RevokeAppRequest {
                        actor: actor(),
                        org_id: org(),
                        team_id: t.into(),
                        app_id: a.into(),
                    })
                    .await?
                    .into_inner()
                    .revision
            }
            _ => {
                c.member
                    .remove_member(pb::RemoveMemberRequest {
                        actor: actor(),
                        org_id: org(),
                        user_id: u.into(),
                    })
                    .await?
                    .into_inner()
                    .revision
            }
        },
    })
}

/// The offline replay of the daemon's change log, kept across rounds so each round
/// replays only what is new.
struct Replay {
    _dir: tempfile::TempDir,
    store: Store,
    /// Revision → key of every replayed record, to prove the log's past never changes.
    keys: Vec<String>,
}

impl Replay {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("replay.redb")).unwrap();
        Self {
            _dir: dir,
            store,
            keys: Vec::new(),
        }
    }
}

/// Figures from one offline check.
struct Verified {
    revision: u64,
    uncertain_committed: usize,
}

/// The offline checks of one round (see the module doc); the daemon is not running.
fn verify_offline(path: &std::path::Path, out: &Outcomes, replay: &mut Replay) -> Verified {
    let store = Store::open(path).expect("the store opens after SIGKILL");
    let mut log = Vec::new();
    loop {
        let batch = store.changes_since(log.len() as u64, 0).expect("changes_since");
        if batch.is_empty() {
            break;
        }
        log.extend(batch);
    }
    for (i, record) in log.iter().enumerate() {
        assert_eq!(record.revision, i as u64 + 1, "gap in the change log");
    }
    let revision = store.revision().unwrap();
    assert_eq!(revision, log.len() as u64);

    // Every acknowledged write, at its revision.
    for (r, key) in out.acked.lock().iter() {
        let record = log
            .get((*r - 1) as usize)
            .unwrap_or_else(|| panic!("acknowledged revision {r} ({key}) lost: the log ends at {revision}"));
        assert_eq!(&key_of(&record.change), key, "revision {r}");
    }
    // The past of the log never changes; the new part is replayed.
    for (i, record) in log.iter().enumerate() {
        let key = key_of(&record.change);
        match replay.keys.get(i) {
            Some(old) => assert_eq!(old, &key, "revision {} changed after a restart", i + 1),
            None => {
                replay
                    .store
                    .apply(record.envelope(), &ApplyContext::trusted())
                    .unwrap_or_else(|e| panic!("revision {} does not replay: {e}", i + 1));
                replay.keys.push(key);
            }
        }
    }
    // The tables are the log's replay: nothing half-applied, nothing extra.
    let live = store.export().unwrap();
    let replayed = replay.store.export().unwrap();
    assert_eq!(
        live, replayed,
        "the tables differ from a replay of the change log"
    );
    // Indexes built from either agree.
    let (a, b) = (DirectoryIndex::new(), DirectoryIndex::new());
    store.load_index(&a).unwrap();
    replay.store.load_index(&b).unwrap();
    assert_eq!(a.read().digest(), b.read().digest());

    // Writes cut off by the kill: committed entirely or not at all (the replay equality
    // above); count which.
    let uncertain = std::mem::take(&mut *out.uncertain.lock());
    let acked_keys: std::collections::BTreeSet<String> = out.acked.lock().values().cloned().collect();
    let uncertain_committed = uncertain
        .iter()
        .filter(|k| !acked_keys.contains(*k) && replay.keys.contains(k))
        .count();
    Verified {
        revision,
        uncertain_committed,
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_round_after_round() {
    let rounds = env_or("WARDEN_CRASH_ROUNDS", 4);
    let per_round = env_or("WARDEN_CRASH_WRITES_PER_ROUND", 120);
    let mut daemon = Workdir::new().start();
    let store_path = daemon.work.data().join("warden.redb");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let unix = daemon.work.unix_target();
    let tcp = daemon.work.tcp_target();
    let out = Arc::new(Outcomes::default());
    rt.block_on(async {
        let mut c = clients(&unix).await;
        let r1 = c.upsert_user(ROOT, ROOT).await;
        out.acked.lock().insert(r1, format!("upsert_user {ROOT}"));
    });
    let created = rt.block_on(async {
        let mut c = clients(&unix).await;
        c.org
            .create_org(pb::CreateOrgRequest {
                actor: ROOT.into(),
                org_id: ORG.into(),
                name: "Crash".into(),
                ..Default::default()
            })
            .await
            .expect("CreateOrg")
            .into_inner()
            .revision
    });
    out.acked.lock().insert(created, format!("create_org {ORG}"));

    let mut replay = Replay::new();
    let mut uncertain_total = 0;
    let mut uncertain_committed = 0;
    let mut index_checks = 0;
    let started = Instant::now();
    for round in 0..rounds {
        out.acks_this_round.store(0, Ordering::Relaxed);
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let target = if client % 2 == 0 { &unix } else { &tcp };
                rt.spawn(writer(target.clone(), format!("r{round}c{client}"), out.clone()))
            })
            .collect();
        // Kill after a random share of the round's writes: half to one and a half times.
        let kill_after = (per_round / 2 + rand::random_range(0..=per_round)) as u64;
        let deadline = Instant::now() + common::PATIENCE * 5;
        let mut checked = false;
        while out.acks_this_round.load(Ordering::Relaxed) < kill_after {
            if !checked && out.acks_this_round.load(Ordering::Relaxed) >= kill_after / 2 {
                // The live index against the tables, mid-stream.
                let check = rt.block_on(async {
                    clients(&unix)
                        .await
                        .admin
                        .check_index(pb::CheckIndexRequest {})
                        .await
                        .expect("CheckIndex")
                        .into_inner()
                });
                assert!(check.consistent, "live index differs from the tables: {check:?}");
                assert!(check.live_facts > 0);
                index_checks += 1;
                checked = true;
            }
            assert!(
                Instant::now() < deadline,
                "writes stalled in round {round}; logs:\n{}",
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rand::random_range(0..20_000)));
        daemon.kill9();
        for t in tasks {
            rt.block_on(t).expect("writer task");
        }
        uncertain_total += out.uncertain.lock().len();
        let v = verify_offline(&store_path, &out, &mut replay);
        uncertain_committed += v.uncertain_committed;
        daemon.restart();
        let revision = rt.block_on(async { clients(&unix).await.stats().await.revision });
        assert_eq!(
            revision, v.revision,
            "the restarted daemon serves another revision"
        );
    }
    daemon.stop();
    let acked = out.acked.lock().len();
    println!(
        "{rounds} SIGKILL rounds survived in {:.1?}: {acked} acknowledged writes verified at their revisions, \
         {} log entries replayed and compared, {uncertain_total} writes cut off by a kill \
         ({uncertain_committed} of them committed whole, the rest absent), {index_checks} live index checks",
        started.elapsed(),
        replay.keys.len()
    );
    assert!(acked >= rounds * per_round / 2);
}
