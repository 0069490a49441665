//! Durability under SIGKILL: concurrent clients stream writes, the daemon is killed at a
//! random moment, and after a restart every acknowledged write is there, the change log
//! has no gaps, and nothing is half-applied (every stored member has its index links).

use crate::common;

use common::Workdir;
use common::directory::{Clients, clients};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden::api::pb;
use warden::directory::Change;
use warden::store::Store;

const ORG: &str = "crash";
const ROOT: &str = "root";
const CLIENTS: usize = 4;
const ROUNDS: usize = 3;

/// A write the daemon acknowledged, with the revision it answered.
#[derive(Debug, Clone)]
enum Ack {
    User(u64, String),
    Member(u64, String),
}

impl Ack {
    fn revision(&self) -> u64 {
        match self {
            Ack::User(r, _) | Ack::Member(r, _) => *r,
        }
    }
}

/// One client's stream of writes: a new user, then its membership, until a call fails.
async fn writer(target: String, prefix: String, acked: Arc<parking_lot::Mutex<Vec<Ack>>>) {
    let mut c = clients(&target).await;
    for i in 0.. {
        let user = format!("{prefix}n{i}");
        let upsert = c
            .user
            .upsert_user(pb::UpsertUserRequest {
                actor: user.clone(),
                user_id: user.clone(),
                email: format!("{user}@example.com"),
                ..Default::default()
            })
            .await;
        match upsert {
            Ok(r) => acked
                .lock()
                .push(Ack::User(r.into_inner().revision, user.clone())),
            Err(_) => return,
        }
        match c.add_member(ROOT, ORG, &user, "org_user").await {
            Ok(r) => acked.lock().push(Ack::Member(r, user)),
            Err(_) => return,
        }
    }
}

/// Every member of the org, page after page.
async fn all_members(c: &mut Clients) -> Vec<String> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = c
            .member
            .list_members(pb::ListMembersRequest {
                order_by: String::new(),
                org_id: ORG.into(),
                actor: ROOT.into(),
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .expect("ListMembers")
            .into_inner();
        out.extend(page.members.into_iter().map(|m| m.user_id));
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut daemon = Workdir::new().start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let unix = daemon.work.unix_target();
    let tcp = daemon.work.tcp_target();
    rt.block_on(async {
        let mut c = clients(&unix).await;
        c.upsert_user(ROOT, ROOT).await;
        c.org
            .create_org(pb::CreateOrgRequest {
                actor: ROOT.into(),
                org_id: ORG.into(),
                name: "Crash".into(),
                ..Default::default()
            })
            .await
            .expect("CreateOrg");
    });

    let acked = Arc::new(parking_lot::Mutex::new(Vec::<Ack>::new()));
    for round in 0..ROUNDS {
        let before = acked.lock().len();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let target = if client % 2 == 0 {
                    unix.clone()
                } else {
                    tcp.clone()
                };
                rt.spawn(writer(target, format!("r{round}c{client}"), acked.clone()))
            })
            .collect();
        // Let some writes through, then kill at a random moment of the stream.
        let deadline = Instant::now() + common::PATIENCE;
        while acked.lock().len() < before + 10 {
            assert!(
                Instant::now() < deadline,
                "no writes acknowledged; logs:\n{}",
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rand::random_range(0..250)));
        daemon.kill9();
        for t in tasks {
            rt.block_on(t).expect("writer task");
        }
        daemon.restart();

        let acked_now = acked.lock().clone();
        rt.block_on(async {
            let mut c = clients(&unix).await;
            let stats = c.stats().await;
            let newest = acked_now.iter().map(Ack::revision).max().unwrap_or(0);
            assert!(
                stats.revision >= newest,
                "revision {} < acknowledged {newest}",
                stats.revision
            );
            for ack in &acked_now {
                match ack {
                    Ack::User(_, user) => {
                        c.user
                            .get_user(pb::GetUserRequest {
                                min_revision: 0,
                                user_id: user.clone(),
                                actor: ROOT.into(),
                            })
                            .await
                            .unwrap_or_else(|e| panic!("acknowledged user {user} lost: {e}"));
                    }
                    Ack::Member(..) => {}
                }
            }
            // Every stored member, acknowledged or not, is whole: the membership row, the
            // user's org list and the decision index all know it.
            let members: BTreeSet<String> = all_members(&mut c).await.into_iter().collect();
            for ack in &acked_now {
                if let Ack::Member(r, user) = ack {
                    assert!(
                        members.contains(user),
                        "acknowledged member {user} (revision {r}) lost"
                    );
                }
            }
            for user in &members {
                assert!(
                    c.check(user, ORG, "org", "org:read", 0).await,
                    "{user} has no index link"
                );
                let orgs = c
                    .org
                    .list_orgs(pb::ListOrgsRequest {
                        order_by: String::new(),
                        user_id: user.clone(),
                        actor: user.clone(),
                        ..Default::default()
                    })
                    .await
                    .expect("ListOrgs")
                    .into_inner()
                    .orgs;
                assert!(
                    orgs.iter().any(|o| o.org_id == ORG),
                    "{user}'s org list lacks {ORG}"
                );
            }
        });
    }
    daemon.stop();

    // The change log, read offline: revisions 1..=N without gaps, and each acknowledged
    // revision holds exactly the acknowledged change.
    let store = Store::open(daemon.work.data().join("warden.redb")).expect("open store");
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
    assert_eq!(store.revision().expect("revision"), log.len() as u64);
    let acked = acked.lock();
    assert!(acked.len() >= ROUNDS * 10);
    for ack in acked.iter() {
        let record = &log[(ack.revision() - 1) as usize];
        match (ack, &record.change) {
            (Ack::User(_, user), Change::UpsertUser { id, .. }) if id == user => {}
            (Ack::Member(_, user), Change::AddMember { user: u, .. }) if u == user => {}
            _ => panic!(
                "revision {} acknowledged {ack:?} but the log holds {:?}",
                ack.revision(),
                record.change
            ),
        }
    }
}
