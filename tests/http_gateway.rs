//! The HTTP/JSON gateway (`serve --http`) against the real daemon on the demo directory:
//! the OpenAPI document lists every unary Warden RPC, and every reply — answers and
//! errors alike — validates against the schema that document gives it; decisions,
//! per-item batch errors, authorization of mutations, field-naming errors and malformed
//! requests come back as a curl user would expect; writes made over HTTP are the same
//! directory the gRPC listeners serve.

use crate::common;

use common::*;
use prost_reflect::DescriptorPool;
use serde_json::{Value, json};
use std::net::SocketAddr;

struct Http {
    agent: ureq::Agent,
    base: String,
    openapi: Value,
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let base = format!("http://{addr}");
        let mut resp = agent
            .get(&format!("{base}/openapi.json"))
            .call()
            .expect("GET /openapi.json");
        assert_eq!(resp.status(), 200);
        let openapi: Value =
            serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).expect("JSON document");
        Self { agent, base, openapi }
    }

    /// POST `body` to `path`; the status and the parsed reply.
    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.post_typed(path, "application/json", body)
    }

    fn post_typed(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let mut resp = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", content_type)
            .send(body)
            .expect("POST");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, value)
    }

    /// POST and check the reply against the document: the 200 schema of `path`, or the
    /// Error schema for any other status.
    fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, reply) = self.post(path, &body.to_string());
        let schema_ref = if status == 200 {
            self.openapi["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"))
                .to_string()
        } else {
            "#/components/schemas/Error".to_string()
        };
        self.assert_valid(&schema_ref, &reply, path);
        (status, reply)
    }

    fn assert_valid(&self, schema_ref: &str, instance: &Value, what: &str) {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": schema_ref,
            "components": self.openapi["components"],
        });
        let validator = jsonschema::validator_for(&schema).expect("the document's schemas compile");
        let errors: Vec<String> = validator.iter_errors(instance).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{what}: reply {instance} breaks {schema_ref}: {errors:?}"
        );
    }
}

fn start() -> (Daemon, Http) {
    let addr = free_port();
    let daemon = Workdir::new().start_with(&["--demo", "--http", &format!("tcp:{addr}")]);
    let http = Http::new(addr);
    (daemon, http)
}

#[test]
fn openapi_lists_every_unary_warden_rpc() {
    let (_daemon, http) = start();
    assert_eq!(http.openapi["openapi"], "3.1.0");
    let pool = DescriptorPool::decode(warden::api::FILE_DESCRIPTOR_SET).unwrap();
    let (mut expected, mut streams) = (0, 0);
    for svc in pool.services().filter(|s| s.package_name() == "warden.v1") {
        for m in svc.methods() {
            let path = format!("/{}/{}", svc.full_name(), m.name());
            if m.is_server_streaming() {
                // Streams (`WatchChanges`, `Snapshot`) are gRPC only: Connect's unary form
                // cannot carry them, and the gateway says so instead of half-serving them.
                assert!(http.openapi["paths"][&path].is_null(), "{path} listed");
                let (code, body) = http.post(&path, "{}");
                assert_eq!(code, 404, "{path}: {body}");
                assert!(
                    body["message"].as_str().unwrap_or("").contains("no unary method"),
                    "{body}"
                );
                streams += 1;
                continue;
            }
            assert!(
                http.openapi["paths"][&path]["post"].is_object(),
                "{path} missing from /openapi.json"
            );
            expected += 1;
        }
    }
    assert!(expected >= 20, "only {expected} warden.v1 methods found");
    assert_eq!(streams, 2, "WatchChanges and Snapshot");
    // warden.v1 plus grpc.health.v1's unary Check, and the AuthZEN endpoints.
    let paths = http.openapi["paths"].as_object().unwrap();
    let rpcs = paths
        .keys()
        .filter(|p| p.starts_with("/warden.v1.") || p.starts_with("/grpc."));
    assert_eq!(
        rpcs.count(),
        expected + 1,
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for path in [
        "/access/v1/evaluation",
        "/access/v1/evaluations",
        "/access/v1/search/subject",
        "/access/v1/search/resource",
    ] {
        assert!(paths[path]["post"].is_object(), "{path} missing");
    }
    assert!(paths["/.well-known/authzen-configuration"]["get"].is_object());

    // Descriptions come from the proto comments.
    let check = &paths["/warden.v1.AuthzService/Check"]["post"];
    assert_eq!(
        check["description"],
        "May `subject` perform `action` on `resource` in `org`?"
    );
    let schemas = &http.openapi["components"]["schemas"];
    assert!(
        schemas["warden.v1.CheckRequest"]["properties"]["subject"]["description"]
            .as_str()
            .unwrap()
            .starts_with("A user id, or `token:<secret>`"),
        "{}",
        schemas["warden.v1.CheckRequest"]
    );
    assert!(
        schemas["warden.v1.LookupResourcesResponse"]["properties"]["next_page_token"]["description"]
            .as_str()
            .unwrap()
            .contains("last page")
    );
    // A reply lists what it always carries; a request requires nothing.
    assert_eq!(
        schemas["warden.v1.CheckResponse"]["required"],
        json!(["allowed", "revision", "decision_id"])
    );
    assert!(schemas["warden.v1.CheckRequest"].get("required").is_none());
    // The bearer token scheme, optional (only a configured token makes it required).
    assert_eq!(
        http.openapi["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer",
               "description": "the TCP bearer token (--tcp-token-sha256); required only when one is configured"})
    );
    assert_eq!(http.openapi["security"], json!([{"bearer": []}, {}]));
    assert!(
        http.openapi["info"]["description"]
            .as_str()
            .unwrap()
            .contains("snake_case")
    );
}

#[test]
fn decisions_errors_and_writes_over_http() {
    let (daemon, http) = start();
    let check = "/warden.v1.AuthzService/Check";

    let (status, allow) = http.call(
        check,
        json!({"subject": "alice", "org": "acme", "resource": "apps/web", "action": "app:write", "explain": true}),
    );
    assert_eq!(status, 200, "{allow}");
    assert_eq!(allow["allowed"], true);
    assert!(
        allow["revision"].as_str().unwrap().parse::<u64>().unwrap() > 0,
        "{allow}"
    );
    assert!(
        allow["explanation"]["rule_file"]
            .as_str()
            .unwrap()
            .ends_with("policy.csv")
    );
    assert_eq!(
        allow["explanation"]["role_path"],
        "alice -[role:admin@acme]-> role:admin -> role:org_contributor"
    );

    // A deny says so explicitly: `allowed` is never left out for being false.
    let (status, deny) = http.call(
        check,
        json!({"subject": "dave", "org": "acme", "resource": "apps/web", "action": "app:write"}),
    );
    assert_eq!((status, &deny["allowed"]), (200, &json!(false)), "{deny}");

    // camelCase field names are accepted too (proto3 JSON).
    let (status, camel) = http.call(
        "/warden.v1.AuthzService/LookupResources",
        json!({"subject": "dave", "org": "acme", "action": "app:read", "pageSize": 1}),
    );
    assert_eq!(status, 200, "{camel}");
    assert_eq!(camel["resources"], json!(["apps/api"]));
    assert!(!camel["next_page_token"].as_str().unwrap().is_empty());

    let (status, batch) = http.call(
        "/warden.v1.AuthzService/BatchCheck",
        json!({"items": [
            {"subject": "carol", "org": "acme", "resource": "apps/web", "action": "app:write"},
            {"subject": "carol", "org": "acme", "resource": "", "action": "app:read"},
            {"subject": "carol", "org": "acme", "resource": "apps/api", "action": "app:write"},
        ]}),
    );
    assert_eq!(status, 200, "{batch}");
    let results = batch["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["decision"]["allowed"], true);
    // Per-item errors use the same code names as top-level errors.
    assert_eq!(results[1]["error"]["code"], "invalid_argument", "{batch}");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("items[1].resource")
    );
    assert_eq!(results[2]["decision"]["allowed"], false);

    // Mutations are authorized by Warden's own policy, exactly as over gRPC.
    let add = "/warden.v1.MemberService/AddMember";
    let members = |http: &Http| {
        let (status, list) = http.call(
            "/warden.v1.MemberService/ListMembers",
            json!({"actor": "alice", "org_id": "acme"}),
        );
        assert_eq!(status, 200, "{list}");
        list["members"].as_array().unwrap().len()
    };
    let before = members(&http);
    let (status, denied) = http.call(
        add,
        json!({"actor": "dave", "org_id": "acme", "user_id": "erin", "role": "org_user"}),
    );
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["code"], "permission_denied");
    assert!(
        denied["message"].as_str().unwrap().contains("member:manage"),
        "{denied}"
    );
    let (status, invalid) = http.call(
        add,
        json!({"actor": "alice", "org_id": "acme", "user_id": "bad user", "role": "org_user"}),
    );
    assert_eq!(status, 400, "{invalid}");
    assert_eq!(invalid["code"], "invalid_argument");
    assert!(
        invalid["message"].as_str().unwrap().starts_with("user_id"),
        "{invalid}"
    );
    assert_eq!(members(&http), before, "a refused write changed the directory");

    let (status, added) = http.call(
        add,
        json!({"actor": "alice", "org_id": "acme", "user_id": "erin", "role": "org_user"}),
    );
    assert_eq!(status, 200, "{added}");
    assert_eq!(members(&http), before + 1);
    let rev: u64 = added["revision"].as_str().unwrap().parse().unwrap();
    // The gRPC side sees the HTTP write.
    let rt = runtime();
    let client = rt
        .block_on(warden::client::Client::connect(&daemon.work.unix_target()))
        .unwrap();
    let seen = rt
        .block_on(
            client
                .at_revision(rev)
                .check("erin", "acme", "apps/web", "app:read"),
        )
        .unwrap();
    assert!(seen.allowed);

    // An org the actor is not in is refused before it is looked up: no existence leak.
    let (status, missing) = http.call(
        "/warden.v1.OrgService/GetOrg",
        json!({"actor": "alice", "org_id": "nope"}),
    );
    assert_eq!(
        (status, missing["code"].as_str()),
        (403, Some("permission_denied")),
        "{missing}"
    );
    let (status, missing) = http.call(
        "/warden.v1.UserService/GetUser",
        json!({"actor": "nobody", "user_id": "nobody"}),
    );
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("not_found")),
        "{missing}"
    );
}

#[test]
fn malformed_requests_get_a_clear_json_error() {
    let (_daemon, http) = start();
    let check = "/warden.v1.AuthzService/Check";
    let error_ref = "#/components/schemas/Error";

    let (status, e) = http.post(check, r#"{"subject": "alice", "bogus": 1}"#);
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("bogus"), "{e}");
    http.assert_valid(error_ref, &e, "unknown field");

    let (status, e) = http.post(check, r#"{"subject": "alice""#);
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_argument")),
        "{e}"
    );

    let (status, e) = http.post(check, r#"{"subject": 7}"#);
    assert_eq!(status, 400, "{e}");

    // An empty body is the empty message: the engine names the first missing field.
    let (status, e) = http.post(check, "");
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().starts_with("subject"), "{e}");

    let (status, e) = http.post_typed(check, "text/plain", r#"{"subject": "alice"}"#);
    assert_eq!(status, 415, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("unsupported media type"),
        "{e}"
    );
    http.assert_valid(error_ref, &e, "415");

    for path in [
        "/warden.v1.AuthzService/Nope",
        "/warden.v1.Nope/Check",
        // Streaming methods have no JSON form.
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/just-one-segment",
    ] {
        let (status, e) = http.post(path, "{}");
        assert_eq!(
            (status, e["code"].as_str()),
            (404, Some("not_found")),
            "{path}: {e}"
        );
        http.assert_valid(error_ref, &e, path);
    }

    // A body over the 4 MiB limit is refused once the limit is passed.
    use std::io::{Read, Write};
    let addr = http.base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let body = format!(r#"{{"subject": "{}"}}"#, "a".repeat(5 * 1024 * 1024));
    let sender = std::thread::spawn(move || {
        // The server may close before the whole body is sent; that is the point.
        let _ = write!(
            writer,
            "POST {check} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head));
    drop(conn);
    sender.join().unwrap();
}

/// With a bearer token configured for TCP callers, the gateway asks it too: its calls
/// go through the same authentication layer as the TCP listeners.
#[test]
fn the_gateway_requires_the_tcp_bearer_token_when_one_is_configured() {
    let token = "s3cret-token-for-the-gateway";
    let hash = warden::api::auth::token_sha256_hex(token);
    let addr = free_port();
    let _daemon = Workdir::new().start_with(&[
        "--demo",
        "--http",
        &format!("tcp:{addr}"),
        "--tcp-token-sha256",
        &hash,
    ]);
    let http = Http::new(addr);
    let check = "/warden.v1.AuthzService/Check";
    let body = r#"{"subject":"alice","org":"acme","resource":"apps/web","action":"app:write"}"#;
    let (status, e) = http.post(check, body);
    assert_eq!(
        (status, e["code"].as_str()),
        (401, Some("unauthenticated")),
        "{e}"
    );
    assert!(!e.to_string().contains(token));

    let send = |auth: &str| {
        let mut resp = http
            .agent
            .post(&format!("{}{check}", http.base))
            .header("content-type", "application/json")
            .header("authorization", auth)
            .send(body)
            .expect("POST");
        let status = resp.status().as_u16();
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        (status, v)
    };
    let (status, e) = send("Bearer not-the-token");
    assert_eq!(status, 401, "{e}");
    let (status, ok) = send(&format!("Bearer {token}"));
    assert_eq!((status, &ok["allowed"]), (200, &json!(true)), "{ok}");
}

/// The gateway speaks the Connect protocol's unary JSON form: a request shaped as a
/// Connect client sends it is answered, errors carry Connect's lowercase code, message and
/// details with Connect's HTTP status, GET is 405 with a JSON body, and a
/// `Connect-Protocol-Version` other than 1 is refused.
#[test]
fn connect_clients_get_connect_shaped_answers_and_errors() {
    let (_daemon, http) = start();
    let url = |path: &str| format!("{}{path}", http.base);
    let connect = |path: &str, version: &str, body: &str| {
        let mut resp = http
            .agent
            .post(&url(path))
            .header("content-type", "application/json")
            .header("connect-protocol-version", version)
            .header("connect-timeout-ms", "10000")
            .header("user-agent", "connect-es/2.0.0")
            .send(body)
            .expect("POST");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        (status, ct, v)
    };
    let check = "/warden.v1.AuthzService/Check";
    let (status, ct, ok) = connect(
        check,
        "1",
        r#"{"subject":"alice","org":"acme","resource":"apps/web","action":"app:write"}"#,
    );
    assert_eq!(
        (status, ct.as_str(), &ok["allowed"]),
        (200, "application/json", &json!(true)),
        "{ok}"
    );

    // Every error code Warden answers with, as Connect names and maps it.
    for (path, body, code, http_status) in [
        (
            check,
            r#"{"subject":"","org":"acme","resource":"apps/web","action":"app:write"}"#,
            "invalid_argument",
            400,
        ),
        (
            "/warden.v1.MemberService/AddMember",
            r#"{"actor":"dave","org_id":"acme","user_id":"erin","role":"org_user"}"#,
            "permission_denied",
            403,
        ),
        (
            "/warden.v1.UserService/GetUser",
            r#"{"actor":"nobody","user_id":"nobody"}"#,
            "not_found",
            404,
        ),
        ("/warden.v1.AuthzService/Nope", "{}", "not_found", 404),
    ] {
        let (status, ct, e) = connect(path, "1", body);
        assert_eq!(
            (status, ct.as_str()),
            (http_status, "application/json"),
            "{path}: {e}"
        );
        assert_eq!(e["code"], code, "{path}: {e}");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{path}: {e}");
        assert_eq!(e["details"], json!([]), "{path}: {e}");
        assert_eq!(e.as_object().unwrap().len(), 3, "{path}: {e}");
        http.assert_valid("#/components/schemas/Error", &e, path);
    }

    let (status, _, e) = connect(check, "2", "{}");
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_argument")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("connect-protocol-version"),
        "{e}"
    );

    // Connect's GET form is for idempotent methods only: none is, so 405 with a JSON body.
    let mut resp = http
        .agent
        .get(&url(&format!("{check}?encoding=json&message=%7B%7D&connect=v1")))
        .call()
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        resp.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let e: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert!(
        e["code"].is_string() && e["message"].as_str().unwrap().contains("POST"),
        "{e}"
    );
    http.assert_valid("#/components/schemas/Error", &e, "GET");
}
