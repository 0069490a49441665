//! Issue 11, item 2: a resource that is not canonical (`.`/`..` or empty segments, NUL or
//! other control characters) is refused with INVALID_ARGUMENT naming the field at every
//! entry point, instead of being decided as the app its second segment names. The issue's
//! own inputs, against `serve --demo` (acme: alice admin, carol team contributor granted
//! only `web`, dave org user; apps web, api; globex owns `ledger`), over gRPC (Check,
//! BatchCheck items, LookupSubjects) and the HTTP/JSON gateway. Envoy's ext_authz is in
//! `envoy_ext_authz`, policy test suites in `policy_test_cli`.

use crate::common;

use common::directory::{assert_refused, clients};
use common::*;
use serde_json::{Value, json};
use tonic::Code;
use warden::api::pb;

/// (subject, resource, action): each was allowed, or escaped a deny rule, before.
const ATTACKS: &[(&str, &str, &str)] = &[
    ("carol", "apps/web/../api/models/1", "app:write"),
    ("alice", "apps/web/../ledger", "app:delete"),
    ("dave", "apps/web/./secrets", "app:read"),
    ("dave", "apps/web//secrets", "app:read"),
    ("dave", "apps/web/x/../secrets", "app:read"),
    ("dave", "apps/web/secrets\0", "app:read"),
];

fn check(subject: &str, resource: &str, action: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        subject: subject.into(),
        org: "acme".into(),
        resource: resource.into(),
        action: action.into(),
        ..Default::default()
    }
}

#[test]
fn non_canonical_resources_are_refused_over_grpc_and_http() {
    let addr = free_port();
    let daemon = Workdir::new().start_with(&["--demo", "--http", &format!("tcp:{addr}")]);
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        // The canonical spellings decide as before: carol may not write to api.
        assert!(
            !c.check("carol", "acme", "apps/api/models/1", "app:write", 0)
                .await
        );
        assert!(
            c.check("carol", "acme", "apps/web/models/1", "app:write", 0)
                .await
        );

        for (subject, resource, action) in ATTACKS {
            for explain in [false, true] {
                let mut req = check(subject, resource, action);
                req.explain = explain;
                match c.authz.check(req).await {
                    Err(s) => {
                        assert_eq!(s.code(), Code::InvalidArgument, "{resource:?}: {}", s.message());
                        assert!(
                            s.message().starts_with("resource: "),
                            "{resource:?}: {}",
                            s.message()
                        );
                        assert!(!s.message().contains('\0'), "the reason echoes a NUL");
                    }
                    Ok(r) => panic!("{resource:?} was decided: {:?}", r.into_inner()),
                }
            }
        }

        // Batch items: each bad one is its own INVALID_ARGUMENT; good ones still decide.
        let mut items: Vec<pb::CheckRequest> = ATTACKS.iter().map(|(s, r, a)| check(s, r, a)).collect();
        items.push(check("carol", "apps/web/models/1", "app:write"));
        let results = c
            .authz
            .batch_check(pb::BatchCheckRequest {
                items,
                min_revision: 0,
            })
            .await
            .expect("BatchCheck")
            .into_inner()
            .results;
        for (i, r) in results.iter().enumerate().take(ATTACKS.len()) {
            match &r.result {
                Some(pb::batch_check_result::Result::Error(e)) => {
                    assert_eq!(e.code, Code::InvalidArgument as i32, "{e:?}");
                    assert!(e.message.starts_with(&format!("items[{i}].resource: ")), "{e:?}");
                }
                other => panic!("item {i} ({:?}) was decided: {other:?}", ATTACKS[i].1),
            }
        }
        assert!(matches!(
            &results[ATTACKS.len()].result,
            Some(pb::batch_check_result::Result::Decision(d)) if d.allowed
        ));

        let lookup = c
            .authz
            .lookup_subjects(pb::LookupSubjectsRequest {
                org: "acme".into(),
                resource: "apps/web/../api".into(),
                action: "app:write".into(),
                ..Default::default()
            })
            .await;
        assert_refused(lookup, Code::InvalidArgument, &["resource:", "segment 3 is `..`"]);
    });

    // The HTTP/JSON gateway: 400 with the (Connect) code name and the field.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for (subject, resource, action) in ATTACKS {
        let body = json!({"subject": subject, "org": "acme", "resource": resource, "action": action});
        let mut resp = agent
            .post(&format!("http://{addr}/warden.v1.AuthzService/Check"))
            .header("content-type", "application/json")
            .send(body.to_string())
            .expect("POST");
        let status = resp.status().as_u16();
        let reply: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(status, 400, "{resource:?}: {reply}");
        assert_eq!(reply["code"], "invalid_argument", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().starts_with("resource: "),
            "{reply}"
        );
    }
}
