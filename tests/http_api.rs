//! `serve --http`: the HTTP/JSON API against its OpenAPI document. The daemon serves
//! `docs/openapi.yaml`; every operation in it is called on the demo directory, and every
//! response (successes and errors) is validated against the schema the document gives
//! for its status code — types, required fields, no undocumented fields, enums, oneOf.
//! The answers themselves are checked too: the same decisions as over gRPC.

mod common;

use common::*;
use serde_json::{Value as Json, json};
use serde_norway::Value as Yaml;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange; the server closes the connection because we ask it to.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Json>) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect http");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("send");
    s.write_all(body.as_bytes()).await.expect("send body");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_string())
}

/// Resolve a `$ref` (`#/components/...`) in the document.
fn resolve<'a>(doc: &'a Yaml, v: &'a Yaml) -> &'a Yaml {
    match v.get("$ref").and_then(Yaml::as_str) {
        Some(r) => {
            let mut at = doc;
            for seg in r.trim_start_matches("#/").split('/') {
                at = &at[seg];
            }
            assert!(!at.is_null(), "dangling $ref {r}");
            resolve(doc, at)
        }
        None => v,
    }
}

/// Validate `value` against the OpenAPI schema `schema`; errors name the JSON path.
fn validate(doc: &Yaml, schema: &Yaml, value: &Json, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema["nullable"].as_bool() != Some(true) {
            errors.push(format!("{at}: null, but not nullable"));
        }
        return;
    }
    if let Some(all) = schema["allOf"].as_sequence() {
        for s in all {
            validate(doc, s, value, at, errors);
        }
    }
    if let Some(any) = schema["oneOf"].as_sequence() {
        let fits = any
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                validate(doc, s, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if fits != 1 {
            errors.push(format!("{at}: fits {fits} of the oneOf schemas: {value}"));
        }
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_u64() || value.is_i64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("schema type {other} not handled"),
    };
    if !ok {
        errors.push(format!(
            "{at}: {value} is not of type {:?}",
            schema["type"].as_str()
        ));
        return;
    }
    if let Some(min) = schema["minimum"].as_f64()
        && value.as_f64().is_some_and(|v| v < min)
    {
        errors.push(format!("{at}: {value} < {min}"));
    }
    if let Some(allowed) = schema["enum"].as_sequence()
        && !allowed.iter().any(|a| a.as_str() == value.as_str())
    {
        errors.push(format!("{at}: {value} not in the enum"));
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(obj) = value.as_object() {
        let props = schema["properties"].as_mapping();
        for req in schema["required"].as_sequence().into_iter().flatten() {
            let name = req.as_str().unwrap();
            if !obj.contains_key(name) {
                errors.push(format!("{at}: missing required `{name}`"));
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k.as_str())) {
                Some(s) => validate(doc, s, v, &format!("{at}.{k}"), errors),
                None if schema["additionalProperties"].as_bool() == Some(false) => {
                    errors.push(format!("{at}: `{k}` is not in the document"))
                }
                None => {}
            }
        }
    }
}

struct Api {
    addr: SocketAddr,
    doc: Yaml,
    /// (path template, method, status) triples exercised.
    seen: BTreeSet<(String, String, u16)>,
}

impl Api {
    /// Call `path` (concrete) as the operation `template` and validate the response
    /// against the document; returns the status and the JSON body.
    async fn op(&mut self, method: &str, template: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let (status, text) = call(self.addr, method, path, body.as_ref()).await;
        let operation = &self.doc["paths"][template][method.to_ascii_lowercase().as_str()];
        assert!(!operation.is_null(), "{method} {template} is not in the document");
        if let Some(body) = &body {
            let schema =
                &resolve(&self.doc, &operation["requestBody"])["content"]["application/json"]["schema"];
            let mut errors = Vec::new();
            validate(&self.doc, schema, body, "request", &mut errors);
            assert!(
                errors.is_empty(),
                "{method} {path}: our request breaks the document: {errors:?}"
            );
        }
        let response = resolve(&self.doc, &operation["responses"][status.to_string().as_str()]);
        assert!(
            !response.is_null(),
            "{method} {path}: status {status} is not documented: {text}"
        );
        let schema = &response["content"]["application/json"]["schema"];
        let json: Json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let mut errors = Vec::new();
        validate(&self.doc, schema, &json, "response", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {path} ({status}): {errors:#?}\n{text}"
        );
        self.seen
            .insert((template.to_string(), method.to_string(), status));
        (status, json)
    }
}

fn check_body(subject: &str, resource: &str, action: &str) -> Json {
    json!({"subject": subject, "org": "acme", "resource": resource, "action": action})
}

#[test]
fn the_http_api_serves_what_its_openapi_document_says() {
    let http = free_port();
    let daemon = Workdir::new().start_with(&["--demo", "--http", &format!("tcp:{http}")]);
    let rt = runtime();
    rt.block_on(async {
        let (status, served) = call(http, "GET", "/openapi.yaml", None).await;
        assert_eq!(status, 200);
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml")).unwrap();
        assert_eq!(served, shipped, "the daemon serves docs/openapi.yaml");
        let doc: Yaml = serde_norway::from_str(&served).expect("the document parses");
        assert_eq!(doc["openapi"].as_str(), Some("3.0.3"));
        let mut api = Api {
            addr: http,
            doc,
            seen: BTreeSet::new(),
        };
        api.seen.insert(("/openapi.yaml".into(), "GET".into(), 200));

        // Check: allow with an explanation, deny, and a field error.
        let (_, r) = api
            .op("POST", "/v1/check", "/v1/check", Some(json!({"subject": "alice", "org": "acme", "resource": "apps/web", "action": "app:write", "explain": true})))
            .await;
        assert_eq!(r["allowed"], true);
        assert!(r["explanation"]["rule_text"].as_str().unwrap().contains("app:write"));
        let (_, r) = api.op("POST", "/v1/check", "/v1/check", Some(check_body("dave", "apps/web", "app:write"))).await;
        assert_eq!((&r["allowed"], &r["explanation"]), (&json!(false), &Json::Null));
        let (status, r) = api.op("POST", "/v1/check", "/v1/check", Some(check_body("", "apps/web", "app:write"))).await;
        assert_eq!((status, r["code"].as_str(), r["message"].as_str()), (400, Some("INVALID_ARGUMENT"), Some("subject: must not be empty")));
        let (status, r) = api
            .op("POST", "/v1/check", "/v1/check", Some(json!({"subject": "alice", "org": "acme", "resource": "apps/web", "action": "app:read", "min_revision": 1_000_000u64})))
            .await;
        assert_eq!((status, r["code"].as_str()), (412, Some("FAILED_PRECONDITION")));
        // A typo in a field name is refused, not ignored.
        let (status, text) = call(http, "POST", "/v1/check", Some(&json!({"subjet": "alice"}))).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("subjet"), "{text}");

        // BatchCheck: a decision and an item error side by side.
        let (_, r) = api
            .op("POST", "/v1/batch-check", "/v1/batch-check", Some(json!({"items": [check_body("carol", "apps/web", "app:read"), check_body("carol", "", "app:read")]})))
            .await;
        assert_eq!(r["results"][0]["result"]["decision"]["allowed"], true);
        assert_eq!(r["results"][1]["result"]["error"]["message"], "items[1].resource: must not be empty");
        let many: Vec<Json> = (0..1001).map(|_| check_body("alice", "apps/web", "app:read")).collect();
        let (status, _) = api.op("POST", "/v1/batch-check", "/v1/batch-check", Some(json!({"items": many}))).await;
        assert_eq!(status, 400);

        // Lookups, paged through.
        let (_, r) = api
            .op("GET", "/v1/orgs/{org}/resources", "/v1/orgs/acme/resources?subject=carol&action=app:read", None)
            .await;
        assert_eq!(r["resources"], json!(["apps/web"]));
        let (_, r) = api
            .op("GET", "/v1/orgs/{org}/resources", "/v1/orgs/acme/resources?subject=dave&action=app:read&page_size=1", None)
            .await;
        assert_eq!(r["resources"], json!(["apps/api"]));
        let token = r["next_page_token"].as_str().unwrap().to_string();
        let (_, r) = api
            .op("GET", "/v1/orgs/{org}/resources", &format!("/v1/orgs/acme/resources?subject=dave&action=app:read&page_size=1&page_token={token}"), None)
            .await;
        assert_eq!(r["resources"], json!(["apps/web"]));
        let (status, _) = api.op("GET", "/v1/orgs/{org}/resources", "/v1/orgs/acme/resources?action=app:read", None).await;
        assert_eq!(status, 400);
        let (_, r) = api
            .op("GET", "/v1/orgs/{org}/subjects", "/v1/orgs/acme/subjects?resource=apps/web&action=app:write", None)
            .await;
        assert_eq!(r["subjects"], json!(["alice", "bob", "carol"]));
        let (status, _) = api.op("GET", "/v1/orgs/{org}/subjects", "/v1/orgs/acme/subjects?resource=apps/web", None).await;
        assert_eq!(status, 400);

        // Directory reads, authorized as the actor.
        let (_, r) = api.op("GET", "/v1/orgs/{org}", "/v1/orgs/acme?actor=dave", None).await;
        assert_eq!((r["org_id"].as_str(), r["name"].as_str()), (Some("acme"), Some("Acme Corp")));
        let (status, r) = api.op("GET", "/v1/orgs/{org}", "/v1/orgs/acme?actor=mallory", None).await;
        assert_eq!((status, r["code"].as_str()), (403, Some("PERMISSION_DENIED")));
        let (status, _) = api.op("GET", "/v1/orgs/{org}", "/v1/orgs/acme", None).await;
        assert_eq!(status, 400, "the actor is required");
        let (status, _) = api.op("GET", "/v1/orgs/{org}", "/v1/orgs/nosuch?actor=alice", None).await;
        assert!(status == 404 || status == 403, "{status}");
        let (_, r) = api.op("GET", "/v1/orgs/{org}/members", "/v1/orgs/acme/members?actor=alice&role=team_contributor", None).await;
        assert_eq!(r["members"][0]["user_id"], "carol");
        assert_eq!(r["members"][0]["team_ids"], json!(["frontend"]));
        let (status, _) = api.op("GET", "/v1/orgs/{org}/members", "/v1/orgs/acme/members?actor=mallory", None).await;
        assert_eq!(status, 403);
        let (status, _) = api.op("GET", "/v1/orgs/{org}/members", "/v1/orgs/acme/members?actor=alice&page_size=x", None).await;
        assert_eq!(status, 400);

        // Every documented operation was called, and an unknown route is a JSON 404.
        for (path, ops) in api.doc["paths"].as_mapping().unwrap() {
            for method in ops.as_mapping().unwrap().keys() {
                let (path, method) = (path.as_str().unwrap(), method.as_str().unwrap().to_ascii_uppercase());
                assert!(
                    api.seen.iter().any(|(p, m, s)| p == path && *m == method && *s == 200),
                    "{method} {path} is documented but the test never got a 200 from it"
                );
            }
        }
        let (status, text) = call(http, "GET", "/v1/nope", None).await;
        assert_eq!(status, 404);
        let body: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(body["code"], "NOT_FOUND");
    });
    drop(rt);
    let mut daemon = daemon;
    daemon.stop();
}

#[test]
fn http_on_a_non_loopback_address_is_refused() {
    let work = Workdir::new();
    let (status, stderr) = run_to_exit(
        Command::new(WARDEN)
            .args(["serve", "--http", "tcp:0.0.0.0:8181"])
            .current_dir(work.dir.path()),
    );
    assert!(!status.success());
    assert!(stderr.contains("loopback"), "{stderr}");
}
