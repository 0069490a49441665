//! App labels usable by policies, through a running daemon with the siloed-apps example
//! policy (`examples/policies/hipaa`): an app created with the `hipaa` label is kept out of
//! org-wide roles and team grants, the clinical team (named as a rule subject) reaches it,
//! a personal hipaa app transferred into the org joins the silo, a restart rebuilds the
//! labels from the store, and deleting the app takes them away.
//! Against `serve --demo` (acme: alice admin, bob org_contributor, carol team_contributor in
//! team frontend, dave org_user; apps web, api; alice owns the personal app alice-sandbox).

use crate::common;

use common::directory::{clients, org_owner, user_owner};
use common::{Workdir, runtime};
use warden::api::pb;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/hipaa");

fn example_policies() -> Workdir {
    let read = |name: &str| std::fs::read_to_string(format!("{EXAMPLE}/{name}")).expect("example file");
    let (model, policy, engine) = (read("model.conf"), read("policy.csv"), read("engine.toml"));
    Workdir::with_policy_files(&[
        ("model.conf", model.as_str()),
        ("policy.csv", policy.as_str()),
        ("engine.toml", engine.as_str()),
    ])
}

#[test]
fn labelled_apps_are_siloed_by_policy_and_the_labels_survive_a_restart() {
    let mut daemon = example_policies().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    let rev = runtime().block_on(async {
        let mut c = clients(&target).await;
        // A clinical team with one team contributor (hana) and one org user (ivan).
        let mut rev = 0;
        for (user, role) in [("hana", "team_contributor"), ("ivan", "org_user")] {
            c.upsert_user(user, user).await;
            rev = c
                .add_member("alice", "acme", user, role)
                .await
                .expect("AddMember");
        }
        c.team
            .create_team(pb::CreateTeamRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "clinical".into(),
                name: "Clinical".into(),
            })
            .await
            .expect("CreateTeam");
        for user in ["hana", "ivan"] {
            rev = c
                .team
                .add_team_member(pb::AddTeamMemberRequest {
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    team_id: "clinical".into(),
                    user_id: user.into(),
                })
                .await
                .expect("AddTeamMember")
                .into_inner()
                .revision;
        }
        // Before any hipaa app: dave reads every app, hana none of them.
        assert!(c.check("dave", "acme", "apps/web", "app:read", rev).await);
        assert!(!c.check("hana", "acme", "apps/web", "app:read", rev).await);

        let made = c
            .app
            .create_app(pb::CreateAppRequest {
                actor: "alice".into(),
                app_id: "ehr".into(),
                owner: org_owner("acme"),
                name: "Health records".into(),
                labels: vec!["hipaa".into()],
            })
            .await
            .expect("CreateApp")
            .into_inner();
        assert_eq!(made.app.expect("app").labels, ["hipaa"]);
        // Granting ehr to carol's team does not open the silo.
        let rev = c
            .team
            .grant_app(pb::GrantAppRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                app_id: "ehr".into(),
                role: String::new(),
            })
            .await
            .expect("GrantApp")
            .into_inner()
            .revision;

        assert!(
            !c.check("dave", "acme", "apps/ehr", "app:read", rev).await,
            "org user"
        );
        assert!(
            !c.check("bob", "acme", "apps/ehr", "app:write", rev).await,
            "org contributor"
        );
        assert!(
            !c.check("carol", "acme", "apps/ehr", "app:read", rev).await,
            "team grant"
        );
        assert!(
            c.check("carol", "acme", "apps/web", "app:read", rev).await,
            "unlabelled grant"
        );
        assert!(
            c.check("hana", "acme", "apps/ehr", "app:write", rev).await,
            "clinical"
        );
        assert!(
            c.check("ivan", "acme", "apps/ehr/models/m1", "app:read", rev)
                .await,
            "clinical"
        );
        assert!(!c.check("hana", "acme", "apps/ehr", "app:delete", rev).await);
        assert!(
            !c.check("hana", "acme", "apps/ehr/exports/e1", "app:read", rev)
                .await,
            "deny"
        );
        assert!(
            c.check("alice", "acme", "apps/ehr", "app:delete", rev).await,
            "admin"
        );
        assert!(
            !c.check("hana", "globex", "apps/ehr", "app:read", rev).await,
            "other org"
        );

        // The explanation names the label rule and the team on the role path.
        let e = c
            .authz
            .check(pb::CheckRequest {
                subject: "hana".into(),
                org: "acme".into(),
                resource: "apps/ehr".into(),
                action: "app:read".into(),
                min_revision: rev,
                explain: true,
            })
            .await
            .expect("Check")
            .into_inner();
        let text = format!("{:?}", e.explanation.expect("explanation"));
        assert!(
            text.contains("label:hipaa") && text.contains("team:clinical"),
            "{text}"
        );

        // A personal app carries its labels into the org on transfer.
        c.app
            .create_app(pb::CreateAppRequest {
                actor: "bob".into(),
                app_id: "trial".into(),
                owner: user_owner("bob"),
                name: "Trial".into(),
                labels: vec!["hipaa".into()],
            })
            .await
            .expect("CreateApp personal");
        let rev = c
            .app
            .transfer_app(pb::TransferAppRequest {
                actor: "bob".into(),
                app_id: "trial".into(),
                to_org_id: "acme".into(),
                ..Default::default()
            })
            .await
            .expect("TransferApp")
            .into_inner()
            .revision;
        assert!(
            !c.check("bob", "acme", "apps/trial", "app:write", rev).await,
            "siloed"
        );
        assert!(
            c.check("hana", "acme", "apps/trial", "app:read", rev).await,
            "clinical"
        );
        rev
    });

    // The index is rebuilt from the store on start: the labels come back.
    daemon.stop();
    daemon.restart();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        assert!(!c.check("dave", "acme", "apps/ehr", "app:read", rev).await);
        assert!(!c.check("bob", "acme", "apps/trial", "app:write", rev).await);
        assert!(c.check("hana", "acme", "apps/ehr", "app:read", rev).await);
        assert!(c.check("hana", "acme", "apps/trial", "app:read", rev).await);
        assert!(c.check("dave", "acme", "apps/web", "app:read", rev).await);

        // Deleting the app drops its labels with it.
        let rev = c
            .app
            .delete_app(pb::DeleteAppRequest {
                actor: "alice".into(),
                app_id: "ehr".into(),
            })
            .await
            .expect("DeleteApp")
            .into_inner()
            .revision;
        assert!(!c.check("hana", "acme", "apps/ehr", "app:read", rev).await);
        assert!(
            !c.check("alice", "acme", "apps/ehr", "app:read", rev).await,
            "gone"
        );
    });
}

/// `SetAppLabels` (issue 11, item 21): relabelling keeps the app's grants, needs `app:label`,
/// is in the audit log, and label-scoped rules follow at the write's revision; the same through
/// the CLI (`warden app labels`) and the HTTP/JSON gateway; the labels survive a restart.
#[test]
fn relabelling_an_app_flips_label_rules_at_its_revision_and_keeps_its_grants() {
    let http = common::free_port();
    let mut daemon = example_policies().start_with(&["--demo", "--http", &format!("tcp:{http}")]);
    let target = daemon.work.unix_target();
    let rt = runtime();
    let labelled = rt.block_on(async {
        let mut c = clients(&target).await;
        c.upsert_user("hana", "hana").await;
        c.add_member("alice", "acme", "hana", "team_contributor")
            .await
            .expect("AddMember");
        c.team
            .create_team(pb::CreateTeamRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "clinical".into(),
                name: "Clinical".into(),
            })
            .await
            .expect("CreateTeam");
        let rev = c
            .team
            .add_team_member(pb::AddTeamMemberRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "clinical".into(),
                user_id: "hana".into(),
            })
            .await
            .expect("AddTeamMember")
            .into_inner()
            .revision;
        // `web` has no label: the clinical team's hipaa rules do not reach it, dave's
        // org-wide read reaches its exports.
        assert!(!c.check("hana", "acme", "apps/web", "app:read", rev).await);
        assert!(
            c.check("dave", "acme", "apps/web/exports/1", "app:read", rev)
                .await
        );
        let grants_before = frontend_grants(&mut c).await;
        assert!(grants_before.contains(&"web".to_string()), "{grants_before:?}");

        // bob (org_contributor) may write the app but not relabel it.
        common::directory::assert_refused(
            c.app
                .set_app_labels(pb::SetAppLabelsRequest {
                    actor: "bob".into(),
                    app_id: "web".into(),
                    labels: vec!["hipaa".into()],
                })
                .await,
            tonic::Code::PermissionDenied,
            &["bob", "app:label", "apps/web"],
        );
        common::directory::assert_refused(
            c.app
                .set_app_labels(pb::SetAppLabelsRequest {
                    actor: "alice".into(),
                    app_id: "web".into(),
                    labels: vec!["Not A Label".into()],
                })
                .await,
            tonic::Code::InvalidArgument,
            &["labels"],
        );
        common::directory::assert_refused(
            c.app
                .set_app_labels(pb::SetAppLabelsRequest {
                    actor: "alice".into(),
                    app_id: "nope".into(),
                    labels: vec![],
                })
                .await,
            tonic::Code::NotFound,
            &["nope"],
        );

        let set = c
            .app
            .set_app_labels(pb::SetAppLabelsRequest {
                actor: "alice".into(),
                app_id: "web".into(),
                labels: vec!["hipaa".into()],
            })
            .await
            .expect("SetAppLabels")
            .into_inner();
        assert_eq!(set.app.expect("app").labels, ["hipaa"]);
        assert_eq!(set.revision, rev + 1, "the refusals wrote nothing");
        // From the write's revision on, the label rules apply.
        assert!(
            c.check("hana", "acme", "apps/web", "app:read", set.revision)
                .await
        );
        assert!(
            !c.check("dave", "acme", "apps/web/exports/1", "app:read", set.revision)
                .await
        );
        // Grants, the app's id and owner stay.
        assert_eq!(frontend_grants(&mut c).await, grants_before);

        // In the audit log of acme, with the labels.
        let mut audit = pb::audit_service_client::AuditServiceClient::new(
            warden::api::client::connect(&target).await.expect("connect"),
        );
        let entries = audit
            .list_audit_entries(pb::ListAuditEntriesRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                ..Default::default()
            })
            .await
            .expect("ListAuditEntries")
            .into_inner()
            .entries;
        let newest = entries.first().expect("an entry");
        assert_eq!(
            (newest.change_type.as_str(), newest.revision),
            ("set_app_labels", set.revision)
        );
        assert!(newest.change_json.contains("hipaa"), "{}", newest.change_json);
        set.revision
    });

    // The CLI clears the labels; the rules follow.
    let out = std::process::Command::new(common::WARDEN)
        .args([
            "app",
            "labels",
            "web",
            "--clear",
            "--actor",
            "alice",
            "--connect",
            &target,
        ])
        .output()
        .expect("run warden");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("labels: (none)"));
    let out = std::process::Command::new(common::WARDEN)
        .args(["app", "labels", "web", "--actor", "alice", "--connect", &target])
        .output()
        .expect("run warden");
    assert!(!out.status.success(), "no labels and no --clear must be refused");
    rt.block_on(async {
        let mut c = clients(&target).await;
        // The CLI's write is the next revision.
        assert!(
            !c.check("hana", "acme", "apps/web", "app:read", labelled + 1)
                .await
        );
    });

    // The HTTP/JSON gateway maps the call like every unary RPC.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(&format!("http://{http}/warden.v1.AppService/SetAppLabels"))
        .header("content-type", "application/json")
        .send(r#"{"actor":"alice","appId":"web","labels":["hipaa","audited"]}"#)
        .expect("POST");
    let text = resp.body_mut().read_to_string().expect("body");
    assert_eq!(resp.status().as_u16(), 200, "{text}");
    let reply: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(reply["app"]["labels"], serde_json::json!(["hipaa", "audited"]));

    // A restart rebuilds the labels from the store.
    daemon.stop();
    daemon.restart();
    rt.block_on(async {
        let mut c = clients(&target).await;
        let now = c.stats().await.revision;
        assert!(now > labelled + 1);
        assert!(c.check("hana", "acme", "apps/web", "app:read", now).await);
        assert!(
            !c.check("dave", "acme", "apps/web/exports/1", "app:read", now)
                .await
        );
    });
}

/// The apps granted to the demo's `frontend` team.
async fn frontend_grants(c: &mut common::directory::Clients) -> Vec<String> {
    let teams = c
        .team
        .list_teams(pb::ListTeamsRequest {
            org_id: "acme".into(),
            actor: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("ListTeams")
        .into_inner()
        .teams;
    let frontend = teams
        .into_iter()
        .find(|t| t.team_id == "frontend")
        .expect("team frontend");
    frontend.app_grants.into_iter().map(|g| g.app_id).collect()
}
