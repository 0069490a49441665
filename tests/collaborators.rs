//! App collaborators through a running daemon: a user outside the org gets its role on one app
//! and nothing else (Check, explain, LookupResources), who may add them, bad input, removal and
//! app deletion taking the access away, and a restart and an export/import keeping them.
//! Against `serve --demo` (acme: alice admin, bob org_contributor, dave org_user; apps web, api).

use crate::common;

use common::directory::{Clients, assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::{Command, Stdio};
use tonic::Code;
use warden::api::pb;
use warden::api::pb::collaborator_service_client::CollaboratorServiceClient;

type Collab = CollaboratorServiceClient<tonic::transport::Channel>;

fn add(actor: &str, app: &str, user: &str, role: &str) -> pb::AddCollaboratorRequest {
    pb::AddCollaboratorRequest {
        actor: actor.into(),
        app_id: app.into(),
        user_id: user.into(),
        role: role.into(),
    }
}

async fn frank_can(c: &mut Clients, resource: &str, action: &str, rev: u64) -> bool {
    c.check("frank", "acme", resource, action, rev).await
}

#[test]
fn a_collaborator_gets_its_role_on_one_app_only() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    // A runtime per phase: dropping it closes its connections, so a stop drains at once.
    runtime().block_on(async {
        let mut c = clients(&target).await;
        let mut k: Collab =
            CollaboratorServiceClient::new(warden::api::client::connect(&target).await.expect("connect"));
        c.upsert_user("frank", "frank").await;
        assert!(!frank_can(&mut c, "apps/web", "app:read", 0).await);

        let added = k
            .add_collaborator(add("alice", "web", "frank", "org_contributor"))
            .await
            .expect("AddCollaborator")
            .into_inner();
        let rev = added.revision;
        let got = added.collaborator.expect("collaborator");
        assert_eq!(
            (got.role.as_str(), got.added_by.as_str()),
            ("org_contributor", "alice")
        );
        assert!(frank_can(&mut c, "apps/web", "app:read", rev).await);
        assert!(frank_can(&mut c, "apps/web/models/m1", "app:write", rev).await);
        assert!(
            !frank_can(&mut c, "apps/web", "app:delete", rev).await,
            "only the role's rights"
        );
        assert!(
            !frank_can(&mut c, "apps/web/secrets", "app:read", rev).await,
            "deny rules still apply"
        );
        assert!(
            !frank_can(&mut c, "apps/api", "app:read", rev).await,
            "one app only"
        );
        assert!(!frank_can(&mut c, "org", "org:read", rev).await, "not a member");
        assert!(
            !c.check("frank", "globex", "apps/web", "app:read", rev).await,
            "only in the app's org"
        );

        let e = c
            .authz
            .check(pb::CheckRequest {
                subject: "frank".into(),
                org: "acme".into(),
                resource: "apps/web".into(),
                action: "app:write".into(),
                explain: true,
                ..Default::default()
            })
            .await
            .expect("Check")
            .into_inner();
        let path = e.explanation.expect("explanation").role_path;
        assert!(
            path.starts_with("frank -[collaborator on apps/web]-> role:org_contributor"),
            "{path}"
        );
        let apps = c
            .authz
            .lookup_resources(pb::LookupResourcesRequest {
                subject: "frank".into(),
                org: "acme".into(),
                action: "app:read".into(),
                ..Default::default()
            })
            .await
            .expect("LookupResources")
            .into_inner();
        assert_eq!(apps.resources, ["apps/web"]);

        // Listing: whoever may read the app (frank too); not an outsider.
        let list = |actor: &str| pb::ListCollaboratorsRequest {
            actor: actor.into(),
            app_id: "web".into(),
            ..Default::default()
        };
        let l = k
            .list_collaborators(list("frank"))
            .await
            .expect("List")
            .into_inner();
        assert_eq!(l.collaborators.len(), 1);
        assert_refused(
            k.list_collaborators(list("erin")).await,
            Code::PermissionDenied,
            &["erin", "app:read"],
        );

        // Denied and invalid requests change nothing.
        let before = c.stats().await.revision;
        assert_refused(
            k.add_collaborator(add("bob", "api", "frank", "org_user")).await,
            Code::PermissionDenied,
            &["bob", "collaborator:manage", "apps/api"],
        );
        assert_refused(
            k.add_collaborator(add("alice", "api", "frank", "overlord")).await,
            Code::InvalidArgument,
            &["role:", "overlord"],
        );
        assert_refused(
            k.add_collaborator(add("alice", "api", "bad user", "org_user"))
                .await,
            Code::InvalidArgument,
            &["user_id:"],
        );
        assert_refused(
            k.add_collaborator(add("alice", "api", "dave", "org_user")).await,
            Code::FailedPrecondition,
            &["dave", "member"],
        );
        assert_refused(
            k.add_collaborator(add("alice", "alice-sandbox", "frank", "org_user"))
                .await,
            Code::FailedPrecondition,
            &["personal app"],
        );
        assert_refused(
            k.add_collaborator(add("alice", "web", "frank", "org_user")).await,
            Code::AlreadyExists,
            &["frank"],
        );
        assert_eq!(c.stats().await.revision, before);

        // A collaborator on an app that is deleted loses access with it.
        let r = k
            .add_collaborator(add("alice", "api", "frank", "org_user"))
            .await
            .expect("add")
            .into_inner();
        assert!(frank_can(&mut c, "apps/api", "app:read", r.revision).await);
        let del = c
            .app
            .delete_app(pb::DeleteAppRequest {
                actor: "alice".into(),
                app_id: "api".into(),
            })
            .await
            .expect("DeleteApp")
            .into_inner();
        assert!(!frank_can(&mut c, "apps/api", "app:read", del.revision).await);
    });

    // A restart keeps the collaborator; so does export → import.
    daemon.stop();
    daemon.restart();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        assert!(frank_can(&mut c, "apps/web", "app:read", 0).await);
    });
    daemon.stop();
    let export = |data: &std::path::Path| {
        let out = Command::new(WARDEN)
            .args(["export", "--data"])
            .arg(data)
            .stdin(Stdio::null())
            .output()
            .expect("export");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let dump = export(&daemon.work.data());
    assert!(
        dump.contains(r#""collaborators""#) && dump.contains("frank"),
        "{dump}"
    );
    let work = Workdir::new();
    let file = work.dir.path().join("dump.json");
    std::fs::write(&file, &dump).expect("write dump");
    let out = Command::new(WARDEN)
        .arg("import")
        .arg(&file)
        .arg("--data")
        .arg(work.data())
        .stdin(Stdio::null())
        .output()
        .expect("import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(export(&work.data()), dump);
    let imported = work.start();
    runtime().block_on(async {
        let mut c = clients(&imported.work.unix_target()).await;
        assert!(frank_can(&mut c, "apps/web", "app:read", 0).await);
        // And removal takes the access away.
        let mut k: Collab = CollaboratorServiceClient::new(
            warden::api::client::connect(&imported.work.unix_target())
                .await
                .expect("connect"),
        );
        let r = k
            .remove_collaborator(pb::RemoveCollaboratorRequest {
                actor: "alice".into(),
                app_id: "web".into(),
                user_id: "frank".into(),
            })
            .await
            .expect("RemoveCollaborator")
            .into_inner();
        assert!(!frank_can(&mut c, "apps/web", "app:read", r.revision).await);
    });
}

#[test]
fn collaborators_from_the_cli() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    let warden = |args: &[&str]| {
        Command::new(WARDEN)
            .args(args)
            .args(["--connect", &target])
            .env_remove("WARDEN_ACTOR")
            .stdin(Stdio::null())
            .output()
            .expect("warden")
    };
    assert!(
        warden(&[
            "user",
            "upsert",
            "frank",
            "--email",
            "f@example.com",
            "--actor",
            "frank"
        ])
        .status
        .success()
    );
    let added = warden(&[
        "collaborator",
        "add",
        "web",
        "frank",
        "--role",
        "org_user",
        "--actor",
        "alice",
    ]);
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let denied = warden(&[
        "collaborator",
        "add",
        "api",
        "frank",
        "--role",
        "org_user",
        "--actor",
        "dave",
    ]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("collaborator:manage"));
    let list = warden(&["collaborator", "list", "web", "--actor", "alice"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("collaborator: frank on web as org_user"));
    let check = |action: &str| {
        warden(&[
            "check",
            "--subject",
            "frank",
            "--org",
            "acme",
            "--resource",
            "apps/web",
            "--action",
            action,
        ])
        .status
        .code()
    };
    assert_eq!(check("app:read"), Some(0));
    assert_eq!(check("app:write"), Some(1));
}

/// The live index against the tables, through the Unix socket (an operator call).
async fn assert_index_consistent(c: &mut Clients) {
    let check = c
        .admin
        .check_index(pb::CheckIndexRequest {})
        .await
        .expect("CheckIndex")
        .into_inner();
    assert!(
        check.consistent && check.differences.is_empty(),
        "live index differs from the tables: {check:?}"
    );
}

/// Issue 11, item 1: a force-deleted org's collaborators must not keep their role on a later
/// app of the same id in another org, and `CheckIndex` compares collaborators too.
#[test]
fn a_force_deleted_orgs_collaborators_lose_their_role_everywhere() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    let tcp = daemon.work.tcp_target();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        let mut k: Collab =
            CollaboratorServiceClient::new(warden::api::client::connect(&target).await.expect("connect"));
        c.upsert_user("frank", "frank").await;
        c.org
            .create_org(pb::CreateOrgRequest {
                actor: "erin".into(),
                org_id: "initech".into(),
                name: "Initech".into(),
                ..Default::default()
            })
            .await
            .expect("CreateOrg");
        c.app
            .create_app(pb::CreateAppRequest {
                actor: "erin".into(),
                app_id: "billing".into(),
                owner: common::directory::org_owner("initech"),
                name: "Billing".into(),
                labels: vec![],
            })
            .await
            .expect("CreateApp");
        let rev = k
            .add_collaborator(add("erin", "billing", "frank", "admin"))
            .await
            .expect("AddCollaborator")
            .into_inner()
            .revision;
        assert!(
            c.check("frank", "initech", "apps/billing", "app:delete", rev)
                .await
        );

        c.org
            .delete_org(pb::DeleteOrgRequest {
                actor: "erin".into(),
                org_id: "initech".into(),
                force: true,
            })
            .await
            .expect("DeleteOrg force");
        let rev = c
            .app
            .create_app(pb::CreateAppRequest {
                actor: "alice".into(),
                app_id: "billing".into(),
                owner: common::directory::org_owner("acme"),
                name: "Billing".into(),
                labels: vec![],
            })
            .await
            .expect("CreateApp in acme")
            .into_inner()
            .revision;
        assert!(
            !c.check("frank", "acme", "apps/billing", "app:delete", rev).await,
            "the deleted org's collaborator acts on another org's app of the same id"
        );
        assert!(!c.check("frank", "acme", "apps/billing", "app:read", rev).await);
        assert_index_consistent(&mut c).await;

        // CheckIndex is an operator call: refused over TCP.
        let mut tcp_admin = clients(&tcp).await.admin;
        assert_refused(
            tcp_admin.check_index(pb::CheckIndexRequest {}).await,
            Code::PermissionDenied,
            &["CheckIndex", "Unix socket"],
        );
    });
}

/// Issue 11, item 5: collaborators are users outside the org. A collaborator who becomes a
/// member loses the collaboration in the same write (gina, `admin` collaborator on `api`,
/// joins acme as `org_user` and may no longer delete it), and a member cannot be added as a
/// collaborator.
#[test]
fn a_member_never_keeps_a_collaborator_role() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        let mut k: Collab =
            CollaboratorServiceClient::new(warden::api::client::connect(&target).await.expect("connect"));
        c.upsert_user("gina", "gina").await;
        let rev = k
            .add_collaborator(add("alice", "api", "gina", "admin"))
            .await
            .expect("AddCollaborator")
            .into_inner()
            .revision;
        assert!(c.check("gina", "acme", "apps/api", "app:delete", rev).await);

        let rev = c
            .add_member("alice", "acme", "gina", "org_user")
            .await
            .expect("AddMember");
        assert!(
            !c.check("gina", "acme", "apps/api", "app:delete", rev).await,
            "a member keeps a collaborator's larger role"
        );
        assert!(
            c.check("gina", "acme", "apps/api", "app:read", rev).await,
            "the membership's own rights"
        );
        let listed = k
            .list_collaborators(pb::ListCollaboratorsRequest {
                actor: "alice".into(),
                app_id: "api".into(),
                ..Default::default()
            })
            .await
            .expect("ListCollaborators")
            .into_inner();
        assert!(listed.collaborators.is_empty(), "{listed:?}");
        assert_refused(
            k.add_collaborator(add("alice", "api", "gina", "admin")).await,
            Code::FailedPrecondition,
            &["gina", "member of org `acme`"],
        );
        assert_index_consistent(&mut c).await;
    });
    // The tables say the same after a restart.
    daemon.stop();
    daemon.restart();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        assert!(!c.check("gina", "acme", "apps/api", "app:delete", 0).await);
        assert_index_consistent(&mut c).await;
    });
}
