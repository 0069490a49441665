//! The AuthZEN Authorization API 1.0 endpoints of the HTTP listener against the real
//! daemon on the demo directory (acme: alice admin, bob org_contributor, carol
//! team_contributor whose team is granted app `web`, dave org_user): the metadata
//! document, single and batched evaluations with each evaluation semantic, subject and
//! resource search, the field-naming errors of the mapping, and the bearer-token layer.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;

struct Pdp {
    agent: ureq::Agent,
    base: String,
    /// `GET /openapi.json`: every reply is checked against the schema it gives.
    openapi: Value,
}

impl Pdp {
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
        let openapi = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        Self { agent, base, openapi }
    }

    fn assert_valid(&self, path: &str, method: &str, status: u16, reply: &Value) {
        let schema_ref = if status == 200 {
            self.openapi["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
                ["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"))
                .to_string()
        } else {
            "#/components/schemas/Error".to_string()
        };
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": schema_ref,
            "components": self.openapi["components"],
        });
        let validator = jsonschema::validator_for(&schema).expect("the document's schemas compile");
        let errors: Vec<String> = validator.iter_errors(reply).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{path}: reply {reply} breaks {schema_ref}: {errors:?}"
        );
    }

    fn post_with(&self, path: &str, body: &Value, auth: Option<&str>) -> (u16, Value) {
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let mut resp = req.send(body.to_string()).expect("POST");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, value)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_with(path, &body, None)
    }

    /// An evaluation's decision, asserting a 200.
    fn decide(&self, body: Value) -> bool {
        let (status, reply) = self.post("/access/v1/evaluation", body.clone());
        assert_eq!(status, 200, "{body} -> {reply}");
        reply["decision"]
            .as_bool()
            .unwrap_or_else(|| panic!("{body}: no boolean decision in {reply}"))
    }
}

fn user(id: &str) -> Value {
    json!({"type": "user", "id": id})
}

fn app(id: &str) -> Value {
    json!({"type": "app", "id": id, "properties": {"org": "acme"}})
}

fn decisions(reply: &Value) -> Vec<Value> {
    reply["evaluations"]
        .as_array()
        .unwrap_or_else(|| panic!("no evaluations in {reply}"))
        .iter()
        .map(|e| e["decision"].clone())
        .collect()
}

#[test]
fn authzen_evaluation_search_and_metadata_on_the_demo_directory() {
    let addr = free_port();
    let _daemon = Workdir::new().start_with(&["--demo", "--http", &format!("tcp:{addr}")]);
    let pdp = Pdp::new(addr);

    // The metadata names this PDP and its endpoints; action search is not offered.
    let mut resp = pdp
        .agent
        .get(&format!("{}/.well-known/authzen-configuration", pdp.base))
        .call()
        .expect("GET metadata");
    assert_eq!(resp.status(), 200);
    let meta: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    pdp.assert_valid("/.well-known/authzen-configuration", "get", 200, &meta);
    assert_eq!(meta["policy_decision_point"], pdp.base.as_str());
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
    ] {
        assert_eq!(meta[key], format!("{}{path}", pdp.base), "{meta}");
    }
    assert!(meta.get("search_action_endpoint").is_none(), "{meta}");

    // Access evaluation, in the shape of the specification's example request.
    let request = |subject: &str, action: &str, resource: Value| {
        json!({"subject": user(subject), "action": {"name": action}, "resource": resource,
               "context": {"time": "1985-10-26T01:22-07:00"}})
    };
    assert!(pdp.decide(request("alice", "app:write", app("web"))));
    assert!(!pdp.decide(request("dave", "app:write", app("web"))));
    // carol writes `web` through her team's grant, not `api`.
    assert!(pdp.decide(request("carol", "app:write", app("web"))));
    assert!(!pdp.decide(request("carol", "app:write", app("api"))));
    // The org from the context; an `org` resource; a full Warden path.
    assert!(
        pdp.decide(json!({"subject": user("alice"), "action": {"name": "app:write"},
        "resource": {"type": "app", "id": "web"}, "context": {"org": "acme"}}))
    );
    assert!(
        !pdp.decide(json!({"subject": user("alice"), "action": {"name": "app:write"},
        "resource": {"type": "app", "id": "web"}, "context": {"org": "globex"}}))
    );
    assert!(pdp.decide(request(
        "alice",
        "app:write",
        json!({"type": "path", "id": "apps/web", "properties": {"org": "acme"}})
    )));
    let (status, reply) = pdp.post("/access/v1/evaluation", request("alice", "app:write", app("web")));
    assert_eq!(status, 200);
    assert!(
        reply["context"]["revision"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0,
        "{reply}"
    );

    // Requests the mapping cannot read name the field.
    for (body, field) in [
        (
            json!({"subject": user("alice"), "action": {"name": "app:write"},
                "resource": {"type": "app", "id": "web"}}),
            "resource.properties.org",
        ),
        (request("alice", "app:write", app("web/../api")), "resource.id"),
        (
            request(
                "alice",
                "app:write",
                json!({"type": "doc", "id": "1", "properties": {"org": "acme"}}),
            ),
            "resource.properties.app",
        ),
        (
            json!({"subject": {"type": "group", "id": "x"}, "action": {"name": "app:write"}, "resource": app("web")}),
            "subject.type",
        ),
        (
            json!({"subject": user("alice"), "resource": app("web")}),
            "action.name",
        ),
        // Warden's own validation, through the same gRPC route.
        (request("role:admin", "app:write", app("web")), "subject"),
    ] {
        let (status, e) = pdp.post("/access/v1/evaluation", body.clone());
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("invalid_argument")),
            "{body}: {e}"
        );
        assert!(e["message"].as_str().unwrap().starts_with(field), "{body}: {e}");
    }

    // Evaluations: top-level defaults, one result per item in order, an item that cannot
    // be mapped is a deny carrying its error.
    let batch = |semantic: Option<&str>, items: Value| {
        let mut body = json!({"subject": user("carol"), "action": {"name": "app:write"},
                              "evaluations": items});
        if let Some(s) = semantic {
            body["options"] = json!({"evaluations_semantic": s});
        }
        let (status, reply) = pdp.post("/access/v1/evaluations", body.clone());
        assert_eq!(status, 200, "{body} -> {reply}");
        reply
    };
    let items = json!([{"resource": app("web")}, {"resource": app("api")},
                       {"resource": app("a/b")}, {"subject": user("alice"), "resource": app("api")}]);
    let all = batch(None, items.clone());
    assert_eq!(
        decisions(&all),
        [json!(true), json!(false), json!(false), json!(true)],
        "{all}"
    );
    let err = &all["evaluations"][2]["context"]["error"];
    assert_eq!(
        (err["status"].as_u64(), err["code"].as_str()),
        (Some(400), Some("invalid_argument")),
        "{all}"
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("evaluations[2].resource.id"),
        "{all}"
    );
    assert_eq!(decisions(&batch(Some("execute_all"), items.clone())).len(), 4);
    assert_eq!(
        decisions(&batch(Some("deny_on_first_deny"), items.clone())),
        [json!(true), json!(false)]
    );
    let permit = batch(
        Some("permit_on_first_permit"),
        json!([{"resource": app("api")}, {"resource": app("web")}, {"resource": app("api")}]),
    );
    assert_eq!(decisions(&permit), [json!(false), json!(true)], "{permit}");
    let (status, e) = pdp.post(
        "/access/v1/evaluations",
        json!({"evaluations": [], "options": {"evaluations_semantic": "first"}}),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_argument")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("options.evaluations_semantic"),
        "{e}"
    );
    // Without evaluations the request is one access evaluation.
    let (status, single) = pdp.post(
        "/access/v1/evaluations",
        json!({"subject": user("carol"), "action": {"name": "app:write"}, "resource": app("web")}),
    );
    assert_eq!((status, &single["decision"]), (200, &json!(true)), "{single}");

    // Subject search: who may write `web`.
    let (status, found) = pdp.post(
        "/access/v1/search/subject",
        json!({"subject": {"type": "user"}, "action": {"name": "app:write"}, "resource": app("web")}),
    );
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["type"], "user", "{found}");
            r["id"].as_str().unwrap()
        })
        .collect();
    assert!(ids.contains(&"alice") && ids.contains(&"carol"), "{found}");
    assert!(!ids.contains(&"dave"), "{found}");
    assert_eq!(found["page"]["next_token"], "", "{found}");
    // Each subject found is allowed by an evaluation.
    for id in ids {
        assert!(pdp.decide(request(id, "app:write", app("web"))), "{id}");
    }

    // Resource search: which apps carol may write, in AuthZEN's shape.
    let (status, found) = pdp.post(
        "/access/v1/search/resource",
        json!({"subject": user("carol"), "action": {"name": "app:write"},
               "resource": {"type": "app", "properties": {"org": "acme"}}}),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["results"],
        json!([{"type": "app", "id": "web", "properties": {"org": "acme"}}]),
        "{found}"
    );
    // Paging follows the lookup's tokens.
    let (status, first) = pdp.post(
        "/access/v1/search/resource",
        json!({"subject": user("alice"), "action": {"name": "app:read"},
               "resource": {"type": "path", "properties": {"org": "acme"}}, "page": {"limit": 1}}),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["results"].as_array().unwrap().len(), 1, "{first}");
    let token = first["page"]["next_token"].as_str().unwrap().to_string();
    assert!(!token.is_empty(), "{first}");
    let (status, second) = pdp.post(
        "/access/v1/search/resource",
        json!({"subject": user("alice"), "action": {"name": "app:read"},
               "resource": {"type": "path", "properties": {"org": "acme"}},
               "page": {"limit": 1, "token": token}}),
    );
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["results"], second["results"]);

    // A key given twice (the org, under `properties`) is refused naming it, as on the rest
    // of the gateway: a proxy that reads the first and Warden the last would disagree.
    let mut resp = pdp
        .agent
        .post(&format!("{}/access/v1/evaluation", pdp.base))
        .header("content-type", "application/json")
        .send(
            r#"{"subject": {"type": "user", "id": "dave"}, "action": {"name": "app:delete"},
                "resource": {"type": "app", "id": "web", "properties": {"org": "globex", "org": "acme"}}}"#,
        )
        .expect("POST");
    assert_eq!(resp.status(), 400);
    let e: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(e["code"], "invalid_argument", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("resource.properties.org: the key appears twice"),
        "{e}"
    );

    // Not JSON: 415, as on the rest of the gateway.
    let mut resp = pdp
        .agent
        .post(&format!("{}/access/v1/evaluation", pdp.base))
        .header("content-type", "text/plain")
        .send("{}")
        .expect("POST");
    assert_eq!(resp.status(), 415);
    let e: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("unsupported media type"),
        "{e}"
    );
}

/// AuthZEN calls go through the gateway's bearer-token layer like every other call.
#[test]
fn authzen_requires_the_tcp_bearer_token_when_one_is_configured() {
    let token = "s3cret-token-for-authzen";
    let hash = warden::api::auth::token_sha256_hex(token);
    let addr = free_port();
    let _daemon = Workdir::new().start_with(&[
        "--demo",
        "--http",
        &format!("tcp:{addr}"),
        "--tcp-token-sha256",
        &hash,
    ]);
    let pdp = Pdp::new(addr);
    let evaluation =
        json!({"subject": user("alice"), "action": {"name": "app:write"}, "resource": app("web")});
    let search =
        json!({"subject": {"type": "user"}, "action": {"name": "app:write"}, "resource": app("web")});
    for (path, body) in [
        ("/access/v1/evaluation", &evaluation),
        ("/access/v1/evaluations", &evaluation),
        ("/access/v1/search/subject", &search),
    ] {
        let (status, e) = pdp.post_with(path, body, None);
        assert_eq!(
            (status, e["code"].as_str()),
            (401, Some("unauthenticated")),
            "{path}: {e}"
        );
        assert!(!e.to_string().contains(token));
        let (status, e) = pdp.post_with(path, body, Some("Bearer wrong"));
        assert_eq!(status, 401, "{path}: {e}");
        let (status, ok) = pdp.post_with(path, body, Some(&format!("Bearer {token}")));
        assert_eq!(status, 200, "{path}: {ok}");
    }
    let (_, ok) = pdp.post_with(
        "/access/v1/evaluation",
        &evaluation,
        Some(&format!("Bearer {token}")),
    );
    assert_eq!(ok["decision"], true, "{ok}");
}
