//! The audit log through a running daemon: every mutation of an org listed newest first with
//! who, what and when (including changes that name only an app or a token), filters by actor,
//! change type and time, stable pagination, `audit:read` enforced, the instance-wide log only on
//! the Unix socket, bad filters named; and a store written before the audit index existed is
//! indexed when opened.

use crate::common;

use common::directory::{assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::{Command, Stdio};
use tonic::Code;
use warden::api::pb;
use warden::api::pb::audit_service_client::AuditServiceClient;
use warden::api::pb::token_service_client::TokenServiceClient;

type Audit = AuditServiceClient<tonic::transport::Channel>;

fn q(actor: &str, org: &str) -> pb::ListAuditEntriesRequest {
    pb::ListAuditEntriesRequest {
        actor: actor.into(),
        org_id: org.into(),
        ..Default::default()
    }
}

/// Every entry, following pages of `page_size`.
async fn all(a: &mut Audit, mut r: pb::ListAuditEntriesRequest, page_size: u32) -> Vec<pb::AuditEntry> {
    r.page_size = page_size;
    let mut out = Vec::new();
    loop {
        let page = a
            .list_audit_entries(r.clone())
            .await
            .expect("ListAuditEntries")
            .into_inner();
        out.extend(page.entries);
        if page.next_page_token.is_empty() {
            return out;
        }
        r.page_token = page.next_page_token;
    }
}

#[test]
fn every_org_mutation_is_listed_filtered_and_paged() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let unix = daemon.work.unix_target();
        let mut c = clients(&unix).await;
        let ch = warden::api::client::connect(&unix).await.expect("connect");
        let (mut a, mut t) = (AuditServiceClient::new(ch.clone()), TokenServiceClient::new(ch));

        let demo = all(&mut a, q("alice", "acme"), 0).await;
        assert!(!demo.is_empty());
        assert!(demo.iter().all(|e| e.org_id == "acme"), "{demo:?}");
        assert!(
            demo.iter()
                .any(|e| e.change_type == "add_member" && e.actor == "alice")
        );
        let mark = demo[0].at_unix_ms + 1;
        while warden::api::directory::now_ms() <= mark {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }

        // New writes, some naming only an app or a token.
        c.upsert_user("frank", "frank").await;
        c.add_member("alice", "acme", "frank", "org_user")
            .await
            .expect("AddMember");
        let key = t
            .create_token(pb::CreateTokenRequest {
                actor: "alice".into(),
                owner: Some(pb::Owner {
                    owner: Some(pb::owner::Owner::OrgId("acme".into())),
                }),
                name: "ci".into(),
                role: "org_user".into(),
                scopes: vec!["app:read".into()],
                expires_at_unix_ms: 0,
            })
            .await
            .expect("CreateToken")
            .into_inner();
        t.revoke_token(pb::RevokeTokenRequest {
            actor: "alice".into(),
            token_id: key.token.expect("token").token_id,
        })
        .await
        .expect("RevokeToken");
        c.app
            .delete_app(pb::DeleteAppRequest {
                actor: "alice".into(),
                app_id: "api".into(),
            })
            .await
            .expect("DeleteApp");

        let now = all(&mut a, q("alice", "acme"), 0).await;
        let newest: Vec<&str> = now.iter().take(4).map(|e| e.change_type.as_str()).collect();
        assert_eq!(
            newest,
            ["delete_app", "revoke_token", "create_token", "add_member"]
        );
        assert_eq!(now.len(), demo.len() + 4, "frank's profile is not an acme change");
        assert!(
            now.windows(2).all(|w| w[0].revision > w[1].revision),
            "newest first"
        );
        assert!(
            now[0].change_json.contains(r#""id":"api""#),
            "{}",
            now[0].change_json
        );
        assert!(
            !now.iter().any(|e| e.change_json.contains("wdn_")),
            "a secret in the log"
        );

        // Filters: actor, type, time.
        let mut r = q("alice", "acme");
        r.change_type = "add_member".into();
        r.by = "alice".into();
        let adds = all(&mut a, r, 0).await;
        assert!(
            adds.iter()
                .all(|e| e.change_type == "add_member" && e.actor == "alice")
        );
        assert!(adds.iter().any(|e| e.change_json.contains("frank")));
        let mut r = q("alice", "acme");
        r.since_unix_ms = mark;
        assert_eq!(all(&mut a, r.clone(), 0).await.len(), 4);
        r.until_unix_ms = mark + 1;
        r.since_unix_ms = 0;
        assert_eq!(all(&mut a, r, 0).await.len(), demo.len());

        // Pages of 2 give the same list.
        assert_eq!(all(&mut a, q("alice", "acme"), 2).await, now);

        // The instance-wide log, on the Unix socket: globex's and user changes too.
        let every = all(&mut a, q("alice", ""), 0).await;
        assert!(every.iter().any(|e| e.org_id == "globex"));
        assert!(
            every
                .iter()
                .any(|e| e.change_type == "upsert_user" && e.org_id.is_empty())
        );

        // Denied: no audit:read; instance-wide over TCP.
        assert_refused(
            a.list_audit_entries(q("bob", "acme")).await,
            Code::PermissionDenied,
            &["bob", "audit:read"],
        );
        assert_refused(
            a.list_audit_entries(q("alice", "globex")).await,
            Code::PermissionDenied,
            &["audit:read", "globex"],
        );
        let tcp = warden::api::client::connect(&daemon.work.tcp_target())
            .await
            .expect("tcp");
        assert_refused(
            AuditServiceClient::new(tcp)
                .list_audit_entries(q("alice", ""))
                .await,
            Code::PermissionDenied,
            &["Unix socket"],
        );

        // Invalid filters name their field.
        let mut r = q("alice", "acme");
        r.change_type = "bogus".into();
        assert_refused(
            a.list_audit_entries(r).await,
            Code::InvalidArgument,
            &["change_type:"],
        );
        let mut r = q("alice", "acme");
        r.page_token = "nope".into();
        assert_refused(
            a.list_audit_entries(r).await,
            Code::InvalidArgument,
            &["page_token:"],
        );
        let mut r = q("alice", "acme");
        (r.since_unix_ms, r.until_unix_ms) = (10, 5);
        assert_refused(
            a.list_audit_entries(r).await,
            Code::InvalidArgument,
            &["until_unix_ms:"],
        );
        assert_refused(
            a.list_audit_entries(q("alice", "Not An Org")).await,
            Code::InvalidArgument,
            &["org_id:"],
        );
    });

    // The CLI prints one line per change.
    let out = Command::new(WARDEN)
        .args([
            "audit",
            "acme",
            "--type",
            "delete_app",
            "--actor",
            "alice",
            "--connect",
        ])
        .arg(daemon.work.unix_target())
        .stdin(Stdio::null())
        .output()
        .expect("warden audit");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.contains("\talice\tdelete_app\tacme\t")),
        "{text}"
    );
}

#[test]
fn a_store_without_the_audit_index_is_indexed_on_open() {
    use warden::store::audit::AuditQuery;
    use warden::store::{ApplyContext, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.redb");
    let acme = AuditQuery {
        org: "acme".into(),
        ..Default::default()
    };
    let expected = {
        let store = Store::open(&path).expect("open");
        for env in warden::store::demo::demo_changes(1) {
            store.apply(env, &ApplyContext::trusted()).expect("apply");
        }
        store.audit(&acme, "", 1000).expect("audit").entries.len()
    };
    assert!(expected > 0);
    {
        // What a store written before the index existed looks like.
        let db = redb::Database::create(&path).expect("redb");
        let txn = db.begin_write().expect("write");
        let gone = txn
            .delete_table(redb::TableDefinition::<(&str, u64), ()>::new("audit_by_org"))
            .expect("delete");
        assert!(gone);
        txn.commit().expect("commit");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(
        store.audit(&acme, "", 1000).expect("audit").entries.len(),
        expected
    );
}
