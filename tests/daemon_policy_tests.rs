//! `warden serve --require-policy-tests` against the real daemon: a policy edit that
//! breaks the shipped suite is refused on reload like a broken file — the old policy
//! keeps answering checks and the admin status lists the failing case.

use crate::common;

use common::*;
use warden::api::client::connect;
use warden::api::pb;

async fn allowed(target: &str, sub: &str, resource: &str, act: &str) -> bool {
    let mut c = pb::authz_service_client::AuthzServiceClient::new(connect(target).await.expect("connect"));
    c.check(pb::CheckRequest {
        subject: sub.into(),
        org: "acme".into(),
        resource: resource.into(),
        action: act.into(),
        ..Default::default()
    })
    .await
    .expect("check")
    .into_inner()
    .allowed
}

#[test]
fn reload_refuses_a_policy_whose_tests_fail_and_the_old_one_keeps_serving() {
    let work = Workdir::new();
    let policy = work.policies().join("policy.csv");
    let daemon = work.start_with(&["--demo", "--require-policy-tests"]);
    let target = daemon.work.unix_target();
    let rt = runtime();
    rt.block_on(async {
        let mut admin = pb::admin_service_client::AdminServiceClient::new(connect(&target).await.unwrap());
        let good = admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .content_hash;
        assert!(!allowed(&target, "dave", "org", "org:update").await);

        // Valid Casbin, but every member may now update the org: the suite says no.
        let text = std::fs::read_to_string(&policy).unwrap();
        std::fs::write(
            &policy,
            format!("{text}p, role:member, org, org:update, org, allow\n"),
        )
        .unwrap();
        // The watcher may reload first; either way the explicit reload is refused.
        let err = admin
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect_err("a policy failing its tests must be refused");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
        assert!(err.message().contains("policy test failed"), "{err}");

        let status = admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.content_hash, good, "the refused policy is serving");
        assert!(
            status
                .last_reload_error
                .contains("dave org:update org in acme: expected deny, got allow"),
            "{}",
            status.last_reload_error
        );
        assert!(!allowed(&target, "dave", "org", "org:update").await);

        // Put the file back: the reload goes through again.
        std::fs::write(&policy, &text).unwrap();
        let status = admin
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect("the original policy passes its tests")
            .into_inner();
        assert!(
            status.last_reload_error.is_empty(),
            "{}",
            status.last_reload_error
        );
        assert_eq!(status.content_hash, good);
        assert!(allowed(&target, "dave", "apps/web", "app:read").await);
    });
}
