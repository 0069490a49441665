//! Envoy external authorization against the real daemon: a tonic client sends the
//! `CheckRequest` Envoy's ext_authz filter sends (HTTP attributes, peer addresses, the
//! JWT payload that `jwt_authn` put in the filter metadata, route context extensions)
//! to `warden serve --demo --ext-authz deploy/envoy/ext_authz.toml`, the mapping the
//! repository ships, and asserts what Envoy would do with the answer.
//!
//! Demo directory, org acme: alice admin, bob org contributor, carol team contributor
//! (team frontend, granted app web), dave org user; apps web and api.

use crate::common;

use common::*;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{Address, Metadata, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";

pub(crate) fn shipped_mapping() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/envoy/ext_authz.toml")
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn peer(ip: &str, port: u32) -> Peer {
    Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

/// One HTTP request as Envoy describes it, with an optional verified JWT subject.
pub(crate) struct Http<'a> {
    method: &'a str,
    path: &'a str,
    sub: Option<&'a str>,
    pub(crate) headers: &'a [(&'a str, &'a str)],
    context: &'a [(&'a str, &'a str)],
}

impl<'a> Http<'a> {
    pub(crate) fn new(method: &'a str, path: &'a str, sub: Option<&'a str>) -> Self {
        Self {
            method,
            path,
            sub,
            headers: &[],
            context: &[],
        }
    }

    fn envoy_request(&self) -> CheckRequest {
        let mut headers: HashMap<String, String> = [
            (":authority", "app.example.com"),
            (":method", self.method),
            (":path", self.path),
            (":scheme", "https"),
            ("user-agent", "curl/8.5.0"),
            ("x-request-id", "5b2a7c1e-6d0f-4a53-9f3e-2b8c1d0e9a71"),
            ("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.payload.signature"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in self.headers {
            headers.insert(k.to_string(), v.to_string());
        }
        let metadata_context = self.sub.map(|sub| {
            let payload = Struct {
                fields: [
                    ("sub", string(sub)),
                    ("iss", string("https://idp.example.com/")),
                    ("aud", string("app")),
                    (
                        "exp",
                        Value {
                            kind: Some(Kind::NumberValue(4_102_444_800.0)),
                        },
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            };
            let mut filter = Struct::default();
            filter.fields.insert(
                "jwt_payload".into(),
                Value {
                    kind: Some(Kind::StructValue(payload)),
                },
            );
            Metadata {
                filter_metadata: [(JWT_FILTER.to_string(), filter)].into_iter().collect(),
                ..Default::default()
            }
        });
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(peer("203.0.113.7", 51234)),
                destination: Some(peer("10.1.2.3", 8080)),
                request: Some(Request {
                    time: Some(envoy_types::pb::google::protobuf::Timestamp {
                        seconds: 1_764_600_000,
                        nanos: 0,
                    }),
                    http: Some(HttpRequest {
                        id: "5b2a7c1e-6d0f-4a53-9f3e-2b8c1d0e9a71".into(),
                        method: self.method.into(),
                        headers,
                        path: self.path.into(),
                        host: "app.example.com".into(),
                        scheme: "https".into(),
                        protocol: "HTTP/1.1".into(),
                        ..Default::default()
                    }),
                }),
                context_extensions: self
                    .context
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                metadata_context,
                ..Default::default()
            }),
        }
    }
}

/// What Envoy does with a response: the gRPC code, the HTTP status it sends a denied
/// client (None when the request goes upstream), and the headers it adds.
#[derive(Debug)]
pub(crate) struct Outcome {
    code: i32,
    http_status: Option<i32>,
    pub(crate) headers: HashMap<String, String>,
    body: String,
}

impl Outcome {
    fn of(resp: CheckResponse) -> Self {
        let code = resp.status.as_ref().map(|s| s.code).unwrap_or(-1);
        let (http_status, headers, body) = match resp.http_response {
            Some(HttpResponse::OkResponse(ok)) => (None, ok.headers, String::new()),
            Some(HttpResponse::DeniedResponse(d)) => (d.status.map(|s| s.code), d.headers, d.body),
            Some(HttpResponse::ErrorResponse(e)) => (e.status.map(|s| s.code), e.headers, e.body),
            None => (None, Vec::new(), String::new()),
        };
        let headers = headers
            .into_iter()
            .filter_map(|h| h.header)
            .map(|h| (h.key, h.value))
            .collect();
        Self {
            code,
            http_status,
            headers,
            body,
        }
    }

    fn allowed(&self) -> bool {
        self.code == tonic::Code::Ok as i32 && self.http_status.is_none()
    }

    fn reason(&self) -> &str {
        self.headers
            .get("x-warden-reason")
            .map(String::as_str)
            .unwrap_or("")
    }
}

pub(crate) async fn ask(target: &str, http: &Http<'_>) -> Outcome {
    let channel = warden::api::client::connect(target).await.expect("connect");
    let resp = AuthorizationClient::new(channel)
        .check(http.envoy_request())
        .await
        .expect("ext_authz Check answers");
    Outcome::of(resp.into_inner())
}

#[test]
fn envoy_check_maps_jwt_subject_path_and_method_to_warden_decisions() {
    let mapping = shipped_mapping();
    let mut daemon = Workdir::new().start_with(&["--demo", "--ext-authz", mapping.to_str().unwrap()]);
    let rt = runtime();
    let unix = daemon.work.unix_target();
    let tcp = daemon.work.tcp_target();

    // An admin writes an app: allowed, with the x-warden-* headers for the upstream.
    let o = rt.block_on(ask(
        &unix,
        &Http::new("PUT", "/orgs/acme/apps/web", Some("alice")),
    ));
    assert!(o.allowed(), "{o:?}");
    assert_eq!(
        o.headers.get("x-warden-subject").map(String::as_str),
        Some("alice")
    );
    assert_eq!(o.headers.get("x-warden-org").map(String::as_str), Some("acme"));
    assert_eq!(
        o.headers.get("x-warden-resource").map(String::as_str),
        Some("apps/web")
    );
    assert_eq!(
        o.headers.get("x-warden-action").map(String::as_str),
        Some("app:write")
    );
    let revision: u64 = o.headers["x-warden-revision"].parse().expect("a revision");
    assert!(revision > 0, "the demo directory has writes");

    // An org user may read (query string ignored) but not write a model: 403 + reason.
    let o = rt.block_on(ask(
        &tcp,
        &Http::new("GET", "/orgs/acme/apps/web/models/m1?v=2", Some("dave")),
    ));
    assert!(o.allowed(), "{o:?}");
    assert_eq!(o.headers["x-warden-resource"], "apps/web/models/m1");
    let o = rt.block_on(ask(
        &tcp,
        &Http::new("POST", "/orgs/acme/apps/web/models/m1", Some("dave")),
    ));
    assert!(!o.allowed());
    assert_eq!(o.code, tonic::Code::PermissionDenied as i32);
    assert_eq!(o.http_status, Some(403));
    assert_eq!(
        o.reason(),
        "policy denies app:write on apps/web/models/m1 in org acme"
    );
    assert!(o.body.contains("policy denies"), "{o:?}");

    // Team siloing reaches through: carol reads web (her team's), not api.
    assert!(
        rt.block_on(ask(
            &unix,
            &Http::new("GET", "/orgs/acme/apps/web/inputs", Some("carol"))
        ))
        .allowed()
    );
    let o = rt.block_on(ask(
        &unix,
        &Http::new("GET", "/orgs/acme/apps/api", Some("carol")),
    ));
    assert_eq!(o.http_status, Some(403), "{o:?}");

    // The explicit deny on secrets wins over the org contributor's read.
    let o = rt.block_on(ask(
        &unix,
        &Http::new("GET", "/orgs/acme/apps/web/secrets/k1", Some("bob")),
    ));
    assert_eq!(o.http_status, Some(403), "{o:?}");
    assert_eq!(
        o.reason(),
        "policy denies app:read on apps/web/secrets in org acme"
    );

    // A stranger to the org, an unmapped path, and no verified subject.
    let o = rt.block_on(ask(
        &unix,
        &Http::new("GET", "/orgs/acme/apps/web", Some("mallory")),
    ));
    assert_eq!(o.http_status, Some(403), "{o:?}");
    let o = rt.block_on(ask(&unix, &Http::new("GET", "/admin/export", Some("alice"))));
    assert_eq!(o.http_status, Some(403), "{o:?}");
    assert_eq!(o.reason(), "no route rule maps this method and path");
    let o = rt.block_on(ask(&unix, &Http::new("GET", "/orgs/acme/apps/web", None)));
    assert_eq!(o.http_status, Some(401), "{o:?}");
    assert_eq!(o.code, tonic::Code::Unauthenticated as i32);

    // A subject header is not a source in the shipped mapping: it cannot stand in for the JWT.
    let spoof = Http {
        headers: &[("x-user", "alice"), ("x-warden-subject", "alice")],
        ..Http::new("GET", "/orgs/acme/apps/web", None)
    };
    assert_eq!(rt.block_on(ask(&unix, &spoof)).http_status, Some(401));

    // The route's context extension pins the org over the path's.
    let pinned = Http {
        context: &[("warden_org", "acme")],
        ..Http::new("PUT", "/orgs/globex/apps/web", Some("alice"))
    };
    let o = rt.block_on(ask(&unix, &pinned));
    assert!(o.allowed(), "{o:?}");
    assert_eq!(o.headers["x-warden-org"], "acme");

    // Close the client connections first, so the daemon's drain has nothing to wait for.
    drop(rt);
    daemon.stop();
}

#[test]
fn header_and_context_sources_and_no_upstream_headers() {
    let work = Workdir::new();
    let mapping = work.dir.path().join("ext_authz.toml");
    std::fs::write(
        &mapping,
        r#"
subject = [{ header = "X-Auth-User" }]
org = [{ context_extension = "tenant" }]
app = [{ header = "x-app" }]

[[rule]]
path = "/**"
action = "app:write"
"#,
    )
    .unwrap();
    let daemon = work.start_with(&["--demo", "--ext-authz", mapping.to_str().unwrap()]);
    let rt = runtime();
    let target = daemon.work.unix_target();
    let req = |headers| Http {
        headers,
        context: &[("tenant", "acme")],
        ..Http::new("POST", "/anything/at/all", None)
    };
    let o = rt.block_on(ask(&target, &req(&[("X-Auth-User", "bob"), ("x-app", "api")])));
    assert!(o.allowed(), "{o:?}");
    assert_eq!(
        o.headers.keys().collect::<Vec<_>>(),
        ["x-warden-decision-id"],
        "upstream_headers is off: only the decision id goes upstream: {o:?}"
    );
    let o = rt.block_on(ask(&target, &req(&[("x-auth-user", "carol"), ("x-app", "api")])));
    assert_eq!(o.reason(), "policy denies app:write on apps/api in org acme");
    // No org source present: a deny that says so.
    let no_org = Http {
        headers: &[("x-auth-user", "bob")],
        ..Http::new("POST", "/x", None)
    };
    let o = rt.block_on(ask(&target, &no_org));
    assert_eq!(o.http_status, Some(403));
    assert!(o.reason().starts_with("no org"), "{o:?}");
}

#[test]
fn without_a_mapping_the_service_is_not_served() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    let err = rt
        .block_on(async {
            let channel = warden::api::client::connect(&daemon.work.unix_target())
                .await
                .unwrap();
            AuthorizationClient::new(channel)
                .check(Http::new("GET", "/orgs/acme", Some("alice")).envoy_request())
                .await
        })
        .expect_err("no ext_authz without --ext-authz");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

#[test]
fn a_broken_mapping_stops_startup_naming_the_rule() {
    let work = Workdir::new();
    let mapping = work.dir.path().join("ext_authz.toml");
    std::fs::write(
        &mapping,
        "subject = [{ header = \"x-user\" }]\norg = [{ path_param = \"org\" }]\n\n[[rule]]\npath = \"/ok\"\naction = \"a:b\"\n\n[[rule]]\npath = \"no-slash\"\naction = \"a:b\"\n",
    )
    .unwrap();
    let (status, stderr) = run_to_exit(
        work.serve_command()
            .args(["--ext-authz", mapping.to_str().unwrap()]),
    );
    assert!(!status.success());
    assert!(stderr.contains("ext_authz.toml"), "{stderr}");
    assert!(
        stderr.contains("rule 2: path `no-slash`: must start with `/`"),
        "{stderr}"
    );
    assert!(!work.socket().exists(), "no listener was bound");
}

/// Issue 11, item 2: a path the upstream would normalise into another (dot segments, `//`,
/// encoded dots or slashes, control characters) is answered 400 naming the path, never
/// routed as written: `/orgs/acme/apps/web/../api/models/1` would otherwise be checked as
/// app `web`, and `/orgs/acme/apps/web/./secrets/k` would miss the secrets rule.
#[test]
fn non_canonical_paths_are_refused_not_routed() {
    let mapping = shipped_mapping();
    let daemon = Workdir::new().start_with(&["--demo", "--ext-authz", mapping.to_str().unwrap()]);
    let rt = runtime();
    let unix = daemon.work.unix_target();
    // The canonical forms: carol writes web's models, not api's; dave reads no secrets.
    assert!(
        rt.block_on(ask(
            &unix,
            &Http::new("POST", "/orgs/acme/apps/web/models/1", Some("carol"))
        ))
        .allowed()
    );
    assert!(
        !rt.block_on(ask(
            &unix,
            &Http::new("GET", "/orgs/acme/apps/web/secrets/k", Some("dave"))
        ))
        .allowed()
    );
    for (method, path, who) in [
        ("POST", "/orgs/acme/apps/web/../api/models/1", "carol"),
        ("DELETE", "/orgs/acme/apps/web/../../globex/apps/ledger", "alice"),
        ("GET", "/orgs/acme/apps/web/./secrets/k", "dave"),
        ("GET", "/orgs/acme/apps/web//secrets/k", "dave"),
        ("GET", "/orgs/acme/apps/web/x/../secrets/k", "dave"),
        ("GET", "/orgs/acme/apps/web/%2e%2e/api/models/1", "dave"),
        ("GET", "/orgs/acme/apps/web%2Fsecrets/k", "dave"),
        ("GET", "/orgs/acme/apps/web/secrets\0", "dave"),
    ] {
        let o = rt.block_on(ask(&unix, &Http::new(method, path, Some(who))));
        assert!(!o.allowed(), "{path:?} was allowed: {o:?}");
        assert_eq!(o.http_status, Some(400), "{path:?}: {o:?}");
        assert_eq!(o.code, tonic::Code::InvalidArgument as i32, "{path:?}: {o:?}");
        assert!(o.reason().starts_with("path: "), "{path:?}: {o:?}");
    }
    // A trailing slash is not a trick: it routes as before.
    assert!(
        rt.block_on(ask(
            &unix,
            &Http::new("GET", "/orgs/acme/apps/web/", Some("dave"))
        ))
        .allowed()
    );
}

#[test]
fn decisions_carry_an_id_joined_to_the_decision_log_with_method_path_and_request_id() {
    let work = Workdir::new();
    let log = work.dir.path().join("decisions.jsonl");
    let mapping = shipped_mapping();
    let mut daemon = work.start_with(&[
        "--demo",
        "--ext-authz",
        mapping.to_str().unwrap(),
        "--decision-log",
        log.to_str().unwrap(),
    ]);
    let target = daemon.work.unix_target();
    let rt = runtime();
    let allow = rt.block_on(ask(
        &target,
        &Http::new("GET", "/orgs/acme/apps/web/models/m1?v=2", Some("alice")),
    ));
    assert!(allow.allowed(), "{allow:?}");
    let deny = rt.block_on(ask(
        &target,
        &Http::new("POST", "/orgs/acme/apps/web/models/m1", Some("dave")),
    ));
    assert_eq!(deny.http_status, Some(403), "{deny:?}");
    // Refused before the engine was asked: no decision, no id.
    let unmapped = rt.block_on(ask(&target, &Http::new("GET", "/nowhere", Some("alice"))));
    assert!(
        !unmapped.headers.contains_key("x-warden-decision-id"),
        "{unmapped:?}"
    );
    daemon.stop();

    let ids = [&allow, &deny].map(|o| o.headers["x-warden-decision-id"].clone());
    assert_ne!(ids[0], ids[1]);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for (line, (id, (method, allowed))) in lines.iter().zip(ids.iter().zip([("GET", true), ("POST", false)]))
    {
        assert_eq!(line["source"], "ext_authz");
        assert_eq!(line["decision_id"], id.as_str(), "{line}");
        assert_eq!(line["method"], method);
        assert_eq!(
            line["path"], "/orgs/acme/apps/web/models/m1",
            "without the query: {line}"
        );
        assert_eq!(line["request_id"], "5b2a7c1e-6d0f-4a53-9f3e-2b8c1d0e9a71");
        assert_eq!(line["allowed"], allowed);
        assert!(line["peer"].as_str().unwrap().starts_with("unix:uid="), "{line}");
    }
    assert!(
        lines[0]["rule"].as_str().unwrap().contains("policy.csv:"),
        "{}",
        lines[0]
    );
}
