//! The change log is the whole input of the write path: a log recorded by the real daemon
//! (real policy files with `limits.toml`, operator and ordinary callers, refusals among the
//! writes) replayed through `store::apply` with the real compiled policy and each record's
//! operator bit — not `ApplyContext::trusted()` — gives the same directory, the same
//! revisions, and the same refusals at the same points.

use crate::common;

use common::directory::{Clients, clients};
use common::{Workdir, runtime};
use std::sync::Arc;
use tonic::{Code, Status};
use warden::api::pb;
use warden::directory::{Change, OrgSettings, Refusal};
use warden::engine::Engine;
use warden::engine::index::DirectoryIndex;
use warden::store::{ApplyError, Store, with_policy_context};

/// Users may not create orgs (the operator may), three members per org, and a plan without
/// teams: every rule that needs the policy, the limits or the operator bit to decide.
const LIMITS: &str = r#"
users_can_create_orgs = false
default_membership_limit = 3
[plans.free]
[plans.community]
roles = ["admin"]
teams = false
"#;

/// A write the daemon refused: the change it stands for, who asked (and whether on the Unix
/// socket), the revision it was refused at, and the daemon's answer.
struct Refused {
    at_revision: u64,
    actor: &'static str,
    operator: bool,
    change: Change,
    status: Status,
}

fn create_org_change(id: &str, plan: &str) -> Change {
    Change::CreateOrg {
        id: id.into(),
        name: id.into(),
        billing_email: None,
        plan: plan.into(),
        logo_url: None,
        public_metadata: Default::default(),
        private_metadata: Default::default(),
        settings: OrgSettings::default(),
    }
}

async fn create_org(c: &mut Clients, actor: &str, id: &str, plan: &str) -> Result<u64, Status> {
    c.org
        .create_org(pb::CreateOrgRequest {
            actor: actor.into(),
            org_id: id.into(),
            name: id.into(),
            plan: plan.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().revision)
}

/// The gRPC code the API answers a refusal with.
fn code_of(r: &Refusal) -> Code {
    match r {
        Refusal::InvalidArgument { .. } => Code::InvalidArgument,
        Refusal::NotFound { .. } => Code::NotFound,
        Refusal::AlreadyExists { .. } => Code::AlreadyExists,
        Refusal::FailedPrecondition { .. } => Code::FailedPrecondition,
        Refusal::PermissionDenied { .. } => Code::PermissionDenied,
    }
}

/// The words of a refusal that the API's message repeats verbatim.
fn words_of(r: &Refusal) -> &str {
    match r {
        Refusal::InvalidArgument { reason, .. } | Refusal::FailedPrecondition { reason } => reason,
        Refusal::NotFound { what } | Refusal::AlreadyExists { what } => what,
        Refusal::PermissionDenied { permission, .. } => permission,
    }
}

#[test]
fn replaying_the_daemons_log_with_the_real_policy_gives_the_same_directory_and_refusals() {
    let work = Workdir::new();
    std::fs::write(work.policies().join("limits.toml"), LIMITS).expect("write limits.toml");
    let mut daemon = work.start();
    let mut refused: Vec<Refused> = Vec::new();
    let rt = runtime();
    rt.block_on(async {
        let mut tcp = clients(&daemon.work.tcp_target()).await;
        let mut unix = clients(&daemon.work.unix_target()).await;
        let mut rev = 0;
        for id in ["alice", "bob", "carol", "dave", "erin"] {
            rev = tcp.upsert_user(id, id).await;
        }
        let mut refuse = |rev: u64, actor, operator, change, result: Result<u64, Status>| {
            let status = result.expect_err("the daemon refuses this write");
            refused.push(Refused {
                at_revision: rev,
                actor,
                operator,
                change,
                status,
            });
        };

        // Only the operator may vouch for an email address.
        let verified = |id: &str| pb::UpsertUserRequest {
            actor: id.into(),
            user_id: id.into(),
            email: format!("{id}@example.com"),
            email_verified: Some(true),
            ..Default::default()
        };
        refuse(
            rev,
            "dave",
            false,
            Change::UpsertUser {
                id: "dave".into(),
                email: "dave@example.com".into(),
                username: None,
                email_verified: Some(true),
            },
            tcp.user
                .upsert_user(verified("dave"))
                .await
                .map(|r| r.into_inner().revision),
        );
        rev = unix
            .user
            .upsert_user(verified("dave"))
            .await
            .expect("the operator verifies dave's email")
            .into_inner()
            .revision;

        // Users may not create orgs; the operator may create one for them.
        refuse(
            rev,
            "alice",
            false,
            create_org_change("acme", "free"),
            create_org(&mut tcp, "alice", "acme", "free").await,
        );
        create_org(&mut unix, "alice", "acme", "free")
            .await
            .expect("operator creates acme");
        rev = tcp
            .add_member("alice", "acme", "bob", "org_contributor")
            .await
            .expect("alice adds bob");
        // A contributor may not manage members.
        refuse(
            rev,
            "bob",
            false,
            Change::AddMember {
                org: "acme".into(),
                user: "dave".into(),
                role: "org_user".into(),
                terms_version: None,
            },
            tcp.add_member("bob", "acme", "dave", "org_user").await,
        );
        rev = tcp
            .add_member("alice", "acme", "carol", "org_user")
            .await
            .expect("alice adds carol");
        // Three members is the instance's default limit.
        refuse(
            rev,
            "alice",
            false,
            Change::AddMember {
                org: "acme".into(),
                user: "erin".into(),
                role: "org_user".into(),
                terms_version: None,
            },
            tcp.add_member("alice", "acme", "erin", "org_user").await,
        );
        // The last admin stays.
        refuse(
            rev,
            "alice",
            false,
            Change::ChangeRole {
                org: "acme".into(),
                user: "alice".into(),
                role: "org_user".into(),
            },
            tcp.member
                .update_member_role(pb::UpdateMemberRoleRequest {
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    user_id: "alice".into(),
                    role: "org_user".into(),
                })
                .await
                .map(|r| r.into_inner().revision),
        );
        tcp.team
            .create_team(pb::CreateTeamRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "core".into(),
                name: "Core".into(),
            })
            .await
            .expect("alice creates a team");
        tcp.app
            .create_app(pb::CreateAppRequest {
                actor: "bob".into(),
                app_id: "shop".into(),
                owner: common::directory::org_owner("acme"),
                name: "Shop".into(),
                labels: vec![],
            })
            .await
            .expect("a contributor creates an app");
        // A community org has no teams.
        rev = create_org(&mut unix, "erin", "solo", "community")
            .await
            .expect("operator creates erin's community org");
        refuse(
            rev,
            "erin",
            false,
            Change::CreateTeam {
                org: "solo".into(),
                team: "t".into(),
                name: "T".into(),
            },
            tcp.team
                .create_team(pb::CreateTeamRequest {
                    actor: "erin".into(),
                    org_id: "solo".into(),
                    team_id: "t".into(),
                    name: "T".into(),
                })
                .await
                .map(|r| r.into_inner().revision),
        );
        assert_eq!(tcp.stats().await.revision, rev);
    });
    daemon.stop();

    // The log, the directory and the policy the daemon judged with.
    let recorded = Store::open(daemon.work.data().join("warden.redb")).expect("open the daemon's store");
    let log = recorded.changes_since(0, 0).expect("read the change log");
    let policy = Arc::new(warden::policy::load_dir(&daemon.work.policies()).expect("load the policy"));
    assert!(
        log.iter().any(|r| r.operator),
        "some writes came from the operator"
    );
    assert!(log.iter().any(|r| !r.operator), "and some from ordinary callers");
    assert_eq!(refused.len(), 6);

    // Replay into a fresh store, judged like a replica would: the record's operator bit and the
    // policy the record names, pinned for each write.
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let fresh = Store::open(fresh_dir.path().join("replay.redb")).expect("open a fresh store");
    let engine = Engine::new(policy.clone(), Arc::new(DirectoryIndex::new()));
    let check_refusals_at = |revision: u64| {
        for r in refused.iter().filter(|r| r.at_revision == revision) {
            let env =
                warden::directory::ChangeEnvelope::new(r.actor, 1, r.change.clone()).as_operator(r.operator);
            let outcome = with_policy_context(&engine, &policy, r.operator, |ctx| {
                fresh.apply_and_index(env, ctx, engine.index())
            });
            match outcome {
                Err(ApplyError::Refused(refusal)) => {
                    assert_eq!(code_of(&refusal), r.status.code(), "{refusal}");
                    assert!(
                        r.status.message().contains(words_of(&refusal)),
                        "the replica refuses `{}` for the daemon's reason: {refusal} vs {}",
                        r.change.kind(),
                        r.status.message()
                    );
                }
                other => panic!("the replica must refuse `{}` too, got {other:?}", r.change.kind()),
            }
        }
    };
    for record in &log {
        check_refusals_at(record.revision - 1);
        assert_eq!(
            record.policy.as_deref(),
            Some(policy.hash.as_str()),
            "the record names its policy"
        );
        let applied = with_policy_context(&engine, &policy, record.operator, |ctx| {
            fresh.apply_and_index(record.envelope(), ctx, engine.index())
        })
        .unwrap_or_else(|e| panic!("revision {} must replay: {e}", record.revision));
        assert_eq!(applied.revision, record.revision);
    }
    check_refusals_at(log.len() as u64);
    assert_eq!(
        recorded.export().unwrap().to_json().unwrap(),
        fresh.export().unwrap().to_json().unwrap(),
        "the replica's directory is the daemon's"
    );
    assert_eq!(
        fresh.changes_since(0, 0).unwrap(),
        log,
        "and so is its change log"
    );
}
