//! Issue 11, items 15 and 16: the caller's mistakes are INVALID_ARGUMENT naming the field,
//! not INTERNAL; logged below WARN; counted as `result="invalid"`, not `result="error"`.
//! A subject spelled like a role-graph node (`role:admin`, `team:x`, `label:x`) in Check,
//! BatchCheck items and LookupResources (also for an org without apps, which used to answer
//! OK); a body that is not a protobuf message of the method; duplicate JSON keys on the
//! HTTP gateway. Against `serve --demo`.

use crate::common;

use common::directory::{assert_refused, clients};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use warden::api::pb;

const RESERVED: &[&str] = &["role:admin", "team:frontend", "label:hipaa"];

/// `/metrics` body from the metrics listener.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    raw.split_once("\r\n\r\n")
        .expect("an HTTP response")
        .1
        .to_string()
}

fn series(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
        .parse()
        .expect("a number")
}

#[test]
fn reserved_subjects_and_undecodable_bodies_are_invalid_argument() {
    let metrics = free_port();
    let daemon = Workdir::new().start_with(&["--demo", "--metrics", &format!("tcp:{metrics}")]);
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        // An org without apps: LookupResources has nothing to try the subject on.
        c.org
            .create_org(pb::CreateOrgRequest {
                actor: "erin".into(),
                org_id: "empty".into(),
                name: "Empty".into(),
                ..Default::default()
            })
            .await
            .expect("CreateOrg");
        for subject in RESERVED {
            let req = pb::CheckRequest {
                subject: subject.to_string(),
                org: "acme".into(),
                resource: "apps/web".into(),
                action: "app:read".into(),
                ..Default::default()
            };
            assert_refused(
                c.authz.check(req.clone()).await,
                Code::InvalidArgument,
                &["subject: ", subject, "reserved prefix"],
            );
            let batch = c
                .authz
                .batch_check(pb::BatchCheckRequest {
                    items: vec![req],
                    min_revision: 0,
                })
                .await
                .expect("BatchCheck")
                .into_inner();
            match &batch.results[0].result {
                Some(pb::batch_check_result::Result::Error(e)) => {
                    assert_eq!(e.code, Code::InvalidArgument as i32, "{e:?}");
                    assert!(e.message.starts_with("items[0].subject: "), "{e:?}");
                }
                other => panic!("{subject}: {other:?}"),
            }
            for org in ["acme", "empty"] {
                assert_refused(
                    c.authz
                        .lookup_resources(pb::LookupResourcesRequest {
                            subject: subject.to_string(),
                            org: org.into(),
                            action: "app:read".into(),
                            ..Default::default()
                        })
                        .await,
                    Code::InvalidArgument,
                    &["subject: ", "reserved prefix"],
                );
            }
        }

        // A body that is not a CheckRequest (field 1 a varint where a string belongs).
        let channel = warden::api::client::connect(&target).await.expect("connect");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let wrong = pb::GetStatsResponse {
            users: Some(5),
            ..Default::default()
        };
        let answer = grpc
            .unary(
                tonic::Request::new(wrong),
                tonic::codegen::http::uri::PathAndQuery::from_static("/warden.v1.AuthzService/Check"),
                tonic_prost::ProstCodec::<pb::GetStatsResponse, pb::CheckResponse>::default(),
            )
            .await;
        assert_refused(answer, Code::InvalidArgument, &["request: ", "protobuf"]);

        let body = scrape(metrics).await;
        assert_eq!(
            series(&body, "warden_decisions_total{result=\"error\"}"),
            0.0,
            "{body}"
        );
        assert_eq!(
            series(&body, "warden_decisions_total{result=\"invalid\"}"),
            (RESERVED.len() * 2) as f64,
            "one Check and one batch item per subject: {body}"
        );
    });
    let logs = daemon.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("WARN") && l.contains("reserved prefix")),
        "a caller's mistake logged as a warning:\n{logs}"
    );
    assert!(logs.contains("reserved prefix"), "logged at debug: {logs}");
}

#[test]
fn duplicate_json_keys_are_refused_naming_the_key() {
    let addr = free_port();
    let _daemon = Workdir::new().start_with(&["--demo", "--http", &format!("tcp:{addr}")]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |path: &str, body: &str| {
        let mut resp = agent
            .post(&format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .send(body)
            .expect("POST");
        let status = resp.status().as_u16();
        let reply: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        (status, reply)
    };
    let check = "/warden.v1.AuthzService/Check";
    // dave may not write; alice may. Which one was asked must never be ambiguous.
    let (status, reply) = post(
        check,
        r#"{"subject":"dave","subject":"alice","org":"acme","resource":"apps/web","action":"app:write"}"#,
    );
    assert_eq!(
        (status, reply["code"].as_str()),
        (400, Some("invalid_argument")),
        "{reply}"
    );
    let msg = reply["message"].as_str().unwrap();
    assert!(msg.starts_with("body: subject: the key appears twice"), "{msg}");

    let (status, reply) = post(
        "/warden.v1.OrgService/GetOrg",
        r#"{"actor":"alice","org_id":"acme","orgId":"globex"}"#,
    );
    assert_eq!(status, 400, "{reply}");
    let msg = reply["message"].as_str().unwrap();
    assert!(
        msg.contains("`org_id` and `orgId` both name the field `org_id`"),
        "{msg}"
    );

    let (status, reply) = post(
        "/warden.v1.AuthzService/BatchCheck",
        &json!({"items": [{"subject": "dave", "org": "acme", "resource": "apps/web", "action": "app:read"}]})
            .to_string()
            .replace(r#""org":"acme""#, r#""org":"acme","org":"globex""#),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("body: items[0].org: "),
        "{reply}"
    );

    // One spelling once is fine, either spelling.
    let (status, reply) = post(
        check,
        r#"{"subject":"alice","org":"acme","resource":"apps/web","action":"app:write","minRevision":"0"}"#,
    );
    assert_eq!((status, &reply["allowed"]), (200, &json!(true)), "{reply}");
}
