//! Publishing review through a running daemon: contributors submit app versions, admins
//! approve or reject each one once; who may do which, bad input named, the list by state, the
//! CLI, and an export carrying the reviews. Against `serve --demo` (acme: alice admin, bob
//! org_contributor, carol team_contributor granted `web`, dave org_user).

use crate::common;

use common::directory::{assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::{Command, Stdio};
use tonic::Code;
use warden::api::pb;
use warden::api::pb::publishing_service_client::PublishingServiceClient;

fn submit(actor: &str, app: &str, version: &str) -> pb::SubmitAppVersionRequest {
    pb::SubmitAppVersionRequest {
        actor: actor.into(),
        app_id: app.into(),
        version: version.into(),
        note: "first cut".into(),
    }
}

fn review(actor: &str, app: &str, version: &str, approve: bool) -> pb::ReviewAppVersionRequest {
    pb::ReviewAppVersionRequest {
        actor: actor.into(),
        app_id: app.into(),
        version: version.into(),
        approve,
        reason: if approve {
            String::new()
        } else {
            "needs tests".into()
        },
    }
}

#[test]
fn members_submit_and_admins_review_each_version_once() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        let mut p =
            PublishingServiceClient::new(warden::api::client::connect(&target).await.expect("connect"));

        let s = p
            .submit_app_version(submit("bob", "web", "1.0.0"))
            .await
            .expect("submit")
            .into_inner();
        let v = s.version.expect("version");
        assert_eq!(
            (v.state.as_str(), v.submitted_by.as_str(), v.note.as_str()),
            ("pending", "bob", "first cut")
        );
        // carol may submit for her team's app, not for another.
        p.submit_app_version(submit("carol", "web", "1.1.0"))
            .await
            .expect("carol on web");
        assert_refused(
            p.submit_app_version(submit("carol", "api", "1.0.0")).await,
            Code::PermissionDenied,
            &["carol", "app:publish", "apps/api"],
        );
        assert_refused(
            p.submit_app_version(submit("dave", "web", "9.0.0")).await,
            Code::PermissionDenied,
            &["dave", "app:publish"],
        );
        // Only admins review.
        assert_refused(
            p.review_app_version(review("bob", "web", "1.0.0", true)).await,
            Code::PermissionDenied,
            &["bob", "app:approve"],
        );
        let ok = p
            .review_app_version(review("alice", "web", "1.0.0", true))
            .await
            .expect("approve")
            .into_inner();
        let v = ok.version.expect("version");
        assert_eq!((v.state.as_str(), v.reviewed_by.as_str()), ("approved", "alice"));
        let no = p
            .review_app_version(review("alice", "web", "1.1.0", false))
            .await
            .expect("reject")
            .into_inner();
        assert_eq!(no.version.expect("version").reason, "needs tests");

        // Once reviewed, a version stays decided; ids are not reused.
        let before = c.stats().await.revision;
        assert_refused(
            p.review_app_version(review("alice", "web", "1.1.0", true)).await,
            Code::FailedPrecondition,
            &["already rejected"],
        );
        assert_refused(
            p.submit_app_version(submit("bob", "web", "1.0.0")).await,
            Code::AlreadyExists,
            &["1.0.0"],
        );
        assert_refused(
            p.submit_app_version(submit("bob", "web", "Version One")).await,
            Code::InvalidArgument,
            &["version:"],
        );
        assert_refused(
            p.review_app_version(review("alice", "web", "7.0.0", true)).await,
            Code::NotFound,
            &["7.0.0"],
        );
        assert_refused(
            p.submit_app_version(submit("alice", "alice-sandbox", "1.0.0"))
                .await,
            Code::FailedPrecondition,
            &["personal app"],
        );
        assert_eq!(c.stats().await.revision, before, "refusals wrote nothing");

        // Listing by state; readers of the app may list, outsiders not.
        p.submit_app_version(submit("bob", "web", "2.0.0"))
            .await
            .expect("submit");
        let list = |actor: &str, state: &str| pb::ListAppVersionsRequest {
            actor: actor.into(),
            app_id: "web".into(),
            state: state.into(),
            ..Default::default()
        };
        let pending = p
            .list_app_versions(list("dave", "pending"))
            .await
            .expect("list")
            .into_inner();
        let ids: Vec<&str> = pending.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(ids, ["2.0.0"]);
        let every = p
            .list_app_versions(list("dave", ""))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(every.versions.len(), 3);
        assert_refused(
            p.list_app_versions(list("erin", "")).await,
            Code::PermissionDenied,
            &["app:read"],
        );
        assert_refused(
            p.list_app_versions(list("alice", "done")).await,
            Code::InvalidArgument,
            &["state:"],
        );
    });

    // The CLI drives the same calls.
    let warden = |args: &[&str]| {
        Command::new(WARDEN)
            .args(args)
            .args(["--connect", &target])
            .env_remove("WARDEN_ACTOR")
            .stdin(Stdio::null())
            .output()
            .expect("warden")
    };
    let out = warden(&["publish", "approve", "web", "2.0.0", "--actor", "alice"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("version: 2.0.0 of web is approved"));
    let out = warden(&["publish", "submit", "web", "3.0.0", "--actor", "dave"]);
    assert_eq!(out.status.code(), Some(1));

    // The reviews are in the export.
    daemon.stop();
    let out = Command::new(WARDEN)
        .args(["export", "--data"])
        .arg(daemon.work.data())
        .stdin(Stdio::null())
        .output()
        .expect("export");
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.contains(r#""app_versions""#) && dump.contains(r#""state": "rejected""#),
        "{dump}"
    );
    let fresh = daemon.work.dir.path().join("fresh");
    let file = daemon.work.dir.path().join("dump.json");
    std::fs::write(&file, dump.as_bytes()).expect("write dump");
    let import = Command::new(WARDEN)
        .arg("import")
        .arg(&file)
        .arg("--data")
        .arg(&fresh)
        .stdin(Stdio::null())
        .output()
        .expect("import");
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let again = Command::new(WARDEN)
        .args(["export", "--data"])
        .arg(&fresh)
        .stdin(Stdio::null())
        .output()
        .expect("export");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        dump,
        "export → import → export"
    );
}
