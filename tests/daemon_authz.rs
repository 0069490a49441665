//! AuthzService against the real daemon on the demo directory, over the Unix socket and
//! TCP: check, explain, batch (order kept, per-item errors), lookups (complete, paged),
//! and `min_revision`.

use crate::common;

use common::*;
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::authz_service_client::AuthzServiceClient;

fn req(subject: &str, resource: &str, action: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        subject: subject.into(),
        org: "acme".into(),
        resource: resource.into(),
        action: action.into(),
        ..Default::default()
    }
}

#[test]
fn authz_calls_on_the_demo_directory_over_both_transports() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        rt.block_on(async {
            let mut c = AuthzServiceClient::new(connect(&target).await.expect("connect"));
            let check = |r: pb::CheckRequest| {
                let mut c = c.clone();
                async move { c.check(r).await.expect("check").into_inner() }
            };
            assert!(
                check(req("alice", "apps/web", "app:delete")).await.allowed,
                "{target}"
            );
            assert!(check(req("bob", "apps/api/models/m1", "app:write")).await.allowed);
            assert!(!check(req("dave", "apps/web", "app:write")).await.allowed);
            assert!(check(req("carol", "apps/web", "app:write")).await.allowed);
            assert!(!check(req("carol", "apps/api", "app:read")).await.allowed);
            assert!(
                !check(req("erin", "apps/web", "app:read")).await.allowed,
                "globex admin in acme"
            );
            assert!(!check(req("nobody", "org", "org:read")).await.allowed);

            // Explain.
            let mut r = req("alice", "apps/web", "app:write");
            r.explain = true;
            let x = check(r).await.explanation.expect("explanation");
            assert_eq!(x.effect, "allow");
            assert!(x.rule_file.ends_with("policy.csv"), "{x:?}");
            assert!(x.rule_line > 0);
            assert!(x.rule_text.contains("role:org_contributor"), "{x:?}");
            assert_eq!(
                x.role_path,
                "alice -[role:admin@acme]-> role:admin -> role:org_contributor"
            );
            let mut r = req("alice", "apps/web/secrets/db", "app:read");
            r.explain = true;
            let x = check(r).await;
            assert!(!x.allowed);
            assert_eq!(x.explanation.expect("explanation").effect, "deny");

            // Batch: order kept, one bad item fails alone.
            let items = vec![
                req("alice", "org", "org:delete"),
                req("dave", "org", "org:delete"),
                req("", "org", "org:read"),
                req("dave", "apps/web", "app:read"),
            ];
            let out = c
                .batch_check(pb::BatchCheckRequest {
                    items,
                    min_revision: 0,
                })
                .await
                .expect("batch")
                .into_inner();
            let got: Vec<String> = out
                .results
                .iter()
                .map(|r| match &r.result {
                    Some(pb::batch_check_result::Result::Decision(d)) => d.allowed.to_string(),
                    Some(pb::batch_check_result::Result::Error(e)) => format!("error {}", e.code),
                    None => "none".into(),
                })
                .collect();
            assert_eq!(got, vec!["true", "false", "error 3", "true"]);

            // Lookups: complete and paged.
            let mut seen = Vec::new();
            let mut token = String::new();
            loop {
                let page = c
                    .lookup_resources(pb::LookupResourcesRequest {
                        subject: "dave".into(),
                        org: "acme".into(),
                        action: "app:read".into(),
                        page_size: 1,
                        page_token: token.clone(),
                        min_revision: 0,
                    })
                    .await
                    .expect("lookup")
                    .into_inner();
                seen.extend(page.resources);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            assert_eq!(seen, vec!["apps/api", "apps/web"]);
            let subjects = c
                .lookup_subjects(pb::LookupSubjectsRequest {
                    org: "acme".into(),
                    resource: "apps/web".into(),
                    action: "app:write".into(),
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .expect("subjects")
                .into_inner();
            assert_eq!(subjects.subjects, vec!["alice", "bob", "carol"]);
            let bad = c
                .lookup_subjects(pb::LookupSubjectsRequest {
                    org: "acme".into(),
                    resource: "apps/web".into(),
                    action: "app:write".into(),
                    page_token: "forged".into(),
                    ..Default::default()
                })
                .await
                .expect_err("forged token");
            assert_eq!(bad.code(), tonic::Code::InvalidArgument);
            assert!(bad.message().contains("page_token"), "{}", bad.message());

            // min_revision beyond what exists: FAILED_PRECONDITION naming the field.
            let mut r = req("alice", "org", "org:read");
            r.min_revision = 1_000_000;
            let err = c.check(r).await.expect_err("future revision");
            assert_eq!(err.code(), tonic::Code::FailedPrecondition);
            assert!(err.message().contains("min_revision"), "{}", err.message());
        });
    }
}
