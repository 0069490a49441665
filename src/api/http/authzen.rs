//! The OpenID AuthZEN Authorization API 1.0 on the HTTP listener: access evaluation
//! (`POST /access/v1/evaluation`), evaluations (`POST /access/v1/evaluations`), subject
//! and resource search (`POST /access/v1/search/{subject,resource}`) and the PDP metadata
//! (`GET /.well-known/authzen-configuration`).
//!
//! Nothing is decided here: a request is mapped to a `warden.v1` `Check`, `BatchCheck`,
//! `LookupSubjects` or `LookupResources` request and sent through the same in-process
//! tonic routes as the rest of the gateway ([`Gateway::invoke`]), with the caller's
//! `authorization` header, so the bearer-token layer, validation and the engine are the
//! gRPC ones. The mapping (README "AuthZEN"):
//!
//! - `subject`: `type` `user` → the Warden subject `id`; `type` `token` → `token:<id>`.
//! - `action.name` → the Warden action verbatim (`app:read`).
//! - `resource`: `type` `org` → `org`; `app` → `apps/<id>`; `path` → `id` as a Warden
//!   resource path; any other type `<kind>` with `properties.app` → `apps/<app>/<kind>/<id>`.
//!   An `id`, `app` or kind holding `/` is refused (it would name another resource).
//! - the org: `resource.properties.org`, else `context.org`, else the `id` of an `org`
//!   resource.
//!
//! Action search has no Warden lookup behind it, so it is not offered (and not in the
//! metadata).

use super::{Gateway, code_name, error, http_status};
use crate::api::pb;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) const EVALUATION: &str = "/access/v1/evaluation";
pub(super) const EVALUATIONS: &str = "/access/v1/evaluations";
pub(super) const SEARCH_SUBJECT: &str = "/access/v1/search/subject";
pub(super) const SEARCH_RESOURCE: &str = "/access/v1/search/resource";
pub(super) const METADATA: &str = "/.well-known/authzen-configuration";

/// A subject or resource as AuthZEN writes it.
#[derive(Debug, Clone, Default, Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    properties: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Action {
    name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Evaluation {
    subject: Option<Entity>,
    action: Option<Action>,
    resource: Option<Entity>,
    context: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    evaluations_semantic: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Evaluations {
    #[serde(flatten)]
    defaults: Evaluation,
    evaluations: Option<Vec<Evaluation>>,
    options: Option<Options>,
}

#[derive(Debug, Default, Deserialize)]
struct Page {
    token: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct Search {
    #[serde(flatten)]
    query: Evaluation,
    page: Option<Page>,
}

/// A request that cannot be mapped: INVALID_ARGUMENT naming the field.
fn invalid(message: impl Into<String>) -> tonic::Status {
    tonic::Status::invalid_argument(message)
}

fn status_response(status: &tonic::Status) -> Response {
    error(status.code(), status.message())
}

fn json_response(value: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// The JSON body of an AuthZEN request, or the 415/400 answer.
fn body<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &[u8]) -> Result<T, Box<Response>> {
    if let Some(refusal) = super::json_content_type(headers, body) {
        return Err(Box::new(refusal));
    }
    // As on the gateway: a key given twice (`properties.org` twice) is refused, so a caller
    // and a proxy in front can never read different requests in one body.
    super::refuse_duplicate_keys(super::keys::Shape::Any, body)
        .and_then(|()| serde_json::from_slice(body))
        .map_err(|e| Box::new(error(tonic::Code::InvalidArgument, &format!("body: {e}"))))
}

fn non_empty<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, tonic::Status> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(invalid(format!("{field}: required"))),
    }
}

/// One path segment: no `/`, so an id cannot name another resource.
fn segment<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, tonic::Status> {
    let v = non_empty(value, field)?;
    if v.contains('/') {
        return Err(invalid(format!("{field}: must not contain `/`")));
    }
    Ok(v)
}

fn subject(entity: Option<&Entity>, field: &str) -> Result<String, tonic::Status> {
    let e = entity.ok_or_else(|| invalid(format!("{field}: required")))?;
    let id = non_empty(e.id.as_deref(), &format!("{field}.id"))?;
    match e.kind.as_deref() {
        Some("user") => Ok(id.to_string()),
        Some("token") => Ok(format!("token:{id}")),
        _ => Err(invalid(format!("{field}.type: expected `user` or `token`"))),
    }
}

fn string_property<'a>(
    props: Option<&'a Map<String, Value>>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, tonic::Status> {
    match props.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{field}.{key}: expected a string"))),
    }
}

/// The org: `resource.properties.org`, else `context.org`, else an `org` resource's id.
fn org(resource: &Entity, context: Option<&Map<String, Value>>) -> Result<String, tonic::Status> {
    if let Some(org) = string_property(resource.properties.as_ref(), "org", "resource.properties")? {
        return Ok(org.to_string());
    }
    if let Some(org) = string_property(context, "org", "context")? {
        return Ok(org.to_string());
    }
    if resource.kind.as_deref() == Some("org")
        && let Some(id) = resource.id.as_deref()
    {
        return Ok(id.to_string());
    }
    Err(invalid(
        "resource.properties.org: required (or context.org): the organization the resource is in",
    ))
}

/// The Warden resource path of an AuthZEN resource.
fn resource_path(resource: &Entity) -> Result<String, tonic::Status> {
    let kind = non_empty(resource.kind.as_deref(), "resource.type")?;
    match kind {
        "org" => Ok("org".to_string()),
        "app" => Ok(format!(
            "apps/{}",
            segment(resource.id.as_deref(), "resource.id")?
        )),
        "path" => Ok(non_empty(resource.id.as_deref(), "resource.id")?.to_string()),
        other => {
            let kind = segment(Some(other), "resource.type")?;
            let id = segment(resource.id.as_deref(), "resource.id")?;
            let app = string_property(resource.properties.as_ref(), "app", "resource.properties")?;
            let app = segment(app, "resource.properties.app").map_err(|_| {
                invalid(format!(
                    "resource.properties.app: required for resource type `{kind}` (the app it \
                     belongs to; use type `path` for a full Warden resource path)"
                ))
            })?;
            Ok(format!("apps/{app}/{kind}/{id}"))
        }
    }
}

/// The AuthZEN resource for a Warden resource path, in the shape `resource_path` reads.
fn resource_entity(path: &str, org: &str) -> Value {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["org"] => json!({ "type": "org", "id": org }),
        ["apps", app] => json!({ "type": "app", "id": app, "properties": { "org": org } }),
        ["apps", app, kind, id] => {
            json!({ "type": kind, "id": id, "properties": { "org": org, "app": app } })
        }
        _ => json!({ "type": "path", "id": path, "properties": { "org": org } }),
    }
}

fn check_request(e: &Evaluation) -> Result<pb::CheckRequest, tonic::Status> {
    let subject = subject(e.subject.as_ref(), "subject")?;
    let action = non_empty(e.action.as_ref().and_then(|a| a.name.as_deref()), "action.name")?;
    let resource = e.resource.as_ref().ok_or_else(|| invalid("resource: required"))?;
    Ok(pb::CheckRequest {
        subject,
        org: org(resource, e.context.as_ref())?,
        resource: resource_path(resource)?,
        action: action.to_string(),
        ..Default::default()
    })
}

fn decode<M: prost::Message + Default>(data: &Bytes) -> Result<M, tonic::Status> {
    M::decode(data.as_ref()).map_err(|e| tonic::Status::internal(format!("decoding the reply: {e}")))
}

fn decision(reply: &pb::CheckResponse) -> Value {
    json!({ "decision": reply.allowed, "context": { "revision": reply.revision.to_string() } })
}

/// A failed item of an evaluations request: a deny carrying the error.
fn item_error(code: tonic::Code, message: &str) -> Value {
    json!({ "decision": false, "context": { "error": {
        "status": http_status(code).as_u16(), "code": code_name(code), "message": message } } })
}

pub(super) async fn evaluation(State(gw): State<Arc<Gateway>>, headers: HeaderMap, raw: Bytes) -> Response {
    let req: Evaluation = match body(&headers, &raw) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match evaluate(&gw, &headers, &req).await {
        Ok(v) => json_response(&v),
        Err(status) => status_response(&status),
    }
}

async fn evaluate(gw: &Gateway, headers: &HeaderMap, req: &Evaluation) -> Result<Value, tonic::Status> {
    let check = check_request(req)?;
    let data = gw
        .invoke("/warden.v1.AuthzService/Check", headers, check.encode_to_vec())
        .await?;
    Ok(decision(&decode(&data)?))
}

/// Where an evaluations request stops (AuthZEN `options.evaluations_semantic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

impl Semantic {
    fn parse(options: Option<&Options>) -> Result<Self, tonic::Status> {
        match options.and_then(|o| o.evaluations_semantic.as_deref()) {
            None | Some("execute_all") => Ok(Self::ExecuteAll),
            Some("deny_on_first_deny") => Ok(Self::DenyOnFirstDeny),
            Some("permit_on_first_permit") => Ok(Self::PermitOnFirstPermit),
            Some(_) => Err(invalid(
                "options.evaluations_semantic: expected execute_all, deny_on_first_deny or \
                 permit_on_first_permit",
            )),
        }
    }

    /// Whether the evaluations stop after one with this decision.
    fn stops_at(self, decision: bool) -> bool {
        match self {
            Self::ExecuteAll => false,
            Self::DenyOnFirstDeny => !decision,
            Self::PermitOnFirstPermit => decision,
        }
    }
}

pub(super) async fn evaluations(State(gw): State<Arc<Gateway>>, headers: HeaderMap, raw: Bytes) -> Response {
    let req: Evaluations = match body(&headers, &raw) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let semantic = match Semantic::parse(req.options.as_ref()) {
        Ok(s) => s,
        Err(status) => return status_response(&status),
    };
    let items = match req.evaluations.as_deref() {
        // Without evaluations the request is one access evaluation (AuthZEN 1.0 §7.1).
        None | Some([]) => {
            return match evaluate(&gw, &headers, &req.defaults).await {
                Ok(v) => json_response(&v),
                Err(status) => status_response(&status),
            };
        }
        Some(items) => items,
    };
    match evaluate_all(&gw, &headers, &req.defaults, items, semantic).await {
        Ok(results) => json_response(&json!({ "evaluations": results })),
        Err(status) => status_response(&status),
    }
}

/// Each item with the request's top-level values as defaults, one `BatchCheck` for
/// those that map, then the results in request order up to where `semantic` stops.
async fn evaluate_all(
    gw: &Gateway,
    headers: &HeaderMap,
    defaults: &Evaluation,
    items: &[Evaluation],
    semantic: Semantic,
) -> Result<Vec<Value>, tonic::Status> {
    let mut mapped = Vec::with_capacity(items.len());
    let mut batch = pb::BatchCheckRequest::default();
    for item in items {
        let merged = Evaluation {
            subject: item.subject.clone().or_else(|| defaults.subject.clone()),
            action: item.action.clone().or_else(|| defaults.action.clone()),
            resource: item.resource.clone().or_else(|| defaults.resource.clone()),
            context: item.context.clone().or_else(|| defaults.context.clone()),
        };
        match check_request(&merged) {
            Ok(check) => {
                mapped.push(Ok(batch.items.len()));
                batch.items.push(check);
            }
            Err(status) => mapped.push(Err(status)),
        }
    }
    let results = if batch.items.is_empty() {
        Vec::new()
    } else {
        let data = gw
            .invoke(
                "/warden.v1.AuthzService/BatchCheck",
                headers,
                batch.encode_to_vec(),
            )
            .await?;
        decode::<pb::BatchCheckResponse>(&data)?.results
    };
    let mut out = Vec::with_capacity(mapped.len());
    for (i, m) in mapped.into_iter().enumerate() {
        let (value, allowed) = match m {
            Err(status) => (
                item_error(status.code(), &format!("evaluations[{i}].{}", status.message())),
                false,
            ),
            Ok(at) => match results.get(at).and_then(|r| r.result.as_ref()) {
                Some(pb::batch_check_result::Result::Decision(d)) => (decision(d), d.allowed),
                Some(pb::batch_check_result::Result::Error(e)) => {
                    (item_error(tonic::Code::from_i32(e.code), &e.message), false)
                }
                None => (
                    item_error(tonic::Code::Internal, "no result for this evaluation"),
                    false,
                ),
            },
        };
        out.push(value);
        if semantic.stops_at(allowed) {
            break;
        }
    }
    Ok(out)
}

fn page_fields(page: Option<&Page>) -> (u32, String) {
    (
        page.and_then(|p| p.limit).unwrap_or(0),
        page.and_then(|p| p.token.clone()).unwrap_or_default(),
    )
}

pub(super) async fn search_subject(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req: Search = match body(&headers, &raw) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let run = async {
        let q = &req.query;
        match q.subject.as_ref().and_then(|s| s.kind.as_deref()) {
            Some("user") => {}
            _ => return Err(invalid("subject.type: expected `user`")),
        }
        let resource = q.resource.as_ref().ok_or_else(|| invalid("resource: required"))?;
        let (page_size, page_token) = page_fields(req.page.as_ref());
        let lookup = pb::LookupSubjectsRequest {
            org: org(resource, q.context.as_ref())?,
            resource: resource_path(resource)?,
            action: non_empty(q.action.as_ref().and_then(|a| a.name.as_deref()), "action.name")?.to_string(),
            page_size,
            page_token,
            ..Default::default()
        };
        let data = gw
            .invoke(
                "/warden.v1.AuthzService/LookupSubjects",
                &headers,
                lookup.encode_to_vec(),
            )
            .await?;
        let reply: pb::LookupSubjectsResponse = decode(&data)?;
        let results: Vec<Value> = reply
            .subjects
            .iter()
            .map(|s| json!({ "type": "user", "id": s }))
            .collect();
        Ok(json!({
            "results": results,
            "page": { "next_token": reply.next_page_token, "count": results.len() },
            "context": { "revision": reply.revision.to_string() },
        }))
    };
    match run.await {
        Ok(v) => json_response(&v),
        Err(status) => status_response(&status),
    }
}

pub(super) async fn search_resource(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req: Search = match body(&headers, &raw) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let run = async {
        let q = &req.query;
        let subject = subject(q.subject.as_ref(), "subject")?;
        let resource = q.resource.as_ref().ok_or_else(|| invalid("resource: required"))?;
        let wanted = non_empty(resource.kind.as_deref(), "resource.type")?;
        let org = org(resource, q.context.as_ref())?;
        let (page_size, page_token) = page_fields(req.page.as_ref());
        let lookup = pb::LookupResourcesRequest {
            subject,
            org: org.clone(),
            action: non_empty(q.action.as_ref().and_then(|a| a.name.as_deref()), "action.name")?.to_string(),
            page_size,
            page_token,
            ..Default::default()
        };
        let data = gw
            .invoke(
                "/warden.v1.AuthzService/LookupResources",
                &headers,
                lookup.encode_to_vec(),
            )
            .await?;
        let reply: pb::LookupResourcesResponse = decode(&data)?;
        // Only resources of the type asked for; `path` asks for all of them.
        let results: Vec<Value> = reply
            .resources
            .iter()
            .map(|p| {
                if wanted == "path" {
                    json!({ "type": "path", "id": p, "properties": { "org": org } })
                } else {
                    resource_entity(p, &org)
                }
            })
            .filter(|r| r["type"] == wanted)
            .collect();
        Ok(json!({
            "results": results,
            "page": { "next_token": reply.next_page_token, "count": results.len() },
            "context": { "revision": reply.revision.to_string() },
        }))
    };
    match run.await {
        Ok(v) => json_response(&v),
        Err(status) => status_response(&status),
    }
}

/// The PDP metadata: absolute endpoint URLs on the host the caller used.
pub(super) async fn metadata(headers: HeaderMap) -> Response {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '"', '\\', ' ']))
    else {
        return error(
            tonic::Code::InvalidArgument,
            "host: required to name the PDP's endpoints",
        );
    };
    let base = format!("http://{host}");
    json_response(&json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS}"),
        "search_subject_endpoint": format!("{base}{SEARCH_SUBJECT}"),
        "search_resource_endpoint": format!("{base}{SEARCH_RESOURCE}"),
    }))
}

/// The AuthZEN endpoints and their schemas, for the gateway's OpenAPI document.
pub(super) fn openapi(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    let r = |name: &str| json!({ "$ref": format!("#/components/schemas/authzen.{name}") });
    let entity = |what: &str| {
        json!({ "type": "object", "required": ["type"], "description": what, "properties": {
            "type": { "type": "string" }, "id": { "type": "string" },
            "properties": { "type": "object", "description": "`org` (and `app` for a typed resource)" } } })
    };
    let defs = [
        (
            "Subject",
            entity("`user` (the Warden subject id) or `token` (`token:<id>`)"),
        ),
        (
            "Resource",
            entity("`org`, `app`, `path` (a Warden resource path) or a kind with `properties.app`"),
        ),
        (
            "Action",
            json!({ "type": "object", "required": ["name"], "properties": {
                "name": { "type": "string", "description": "the Warden action, e.g. app:read" },
                "properties": { "type": "object" } } }),
        ),
        (
            "EvaluationRequest",
            json!({ "type": "object", "required": ["subject", "action", "resource"], "properties": {
                "subject": r("Subject"), "action": r("Action"), "resource": r("Resource"),
                "context": { "type": "object", "description": "`org` when the resource has none" } } }),
        ),
        (
            "EvaluationsRequest",
            json!({ "type": "object", "properties": {
                "subject": r("Subject"), "action": r("Action"), "resource": r("Resource"),
                "context": { "type": "object" },
                "evaluations": { "type": "array", "items": { "type": "object", "properties": {
                    "subject": r("Subject"), "action": r("Action"), "resource": r("Resource"),
                    "context": { "type": "object" } } } },
                "options": { "type": "object", "properties": { "evaluations_semantic": {
                    "enum": ["execute_all", "deny_on_first_deny", "permit_on_first_permit"] } } } } }),
        ),
        (
            "Decision",
            json!({ "type": "object", "required": ["decision"], "properties": {
                "decision": { "type": "boolean" },
                "context": { "type": "object", "properties": {
                    "revision": { "type": "string", "description": "the directory revision" },
                    "error": { "type": "object", "description": "why a batch item failed",
                        "properties": { "status": { "type": "integer" }, "code": { "type": "string" },
                            "message": { "type": "string" } } } } } } }),
        ),
        (
            "EvaluationsResponse",
            json!({ "anyOf": [
                { "type": "object", "required": ["evaluations"], "properties": {
                    "evaluations": { "type": "array", "items": r("Decision") } } },
                r("Decision") ] }),
        ),
        (
            "SearchRequest",
            json!({ "type": "object", "required": ["subject", "action", "resource"], "properties": {
                "subject": r("Subject"), "action": r("Action"), "resource": r("Resource"),
                "context": { "type": "object" },
                "page": { "type": "object", "properties": {
                    "token": { "type": "string" }, "limit": { "type": "integer", "minimum": 0 } } } } }),
        ),
        (
            "SearchResponse",
            json!({ "type": "object", "required": ["results", "page"], "properties": {
                "results": { "type": "array", "items": { "type": "object", "required": ["type", "id"] } },
                "page": { "type": "object", "required": ["next_token"], "properties": {
                    "next_token": { "type": "string", "description": "empty on the last page" },
                    "count": { "type": "integer" } } },
                "context": { "type": "object" } } }),
        ),
        (
            "Metadata",
            json!({ "type": "object", "required": ["policy_decision_point", "access_evaluation_endpoint"],
                "properties": {
                    "policy_decision_point": { "type": "string" },
                    "access_evaluation_endpoint": { "type": "string" },
                    "access_evaluations_endpoint": { "type": "string" },
                    "search_subject_endpoint": { "type": "string" },
                    "search_resource_endpoint": { "type": "string" } } }),
        ),
    ];
    for (name, schema) in defs {
        schemas.insert(format!("authzen.{name}"), schema);
    }
    let op = |summary: &str, request: &str, response: &str| {
        json!({ "post": {
            "operationId": format!("authzen.{}", summary.replace(' ', "_")),
            "tags": ["AuthZEN"],
            "summary": format!("AuthZEN {summary}"),
            "requestBody": { "required": true, "content": { "application/json": { "schema": r(request) } } },
            "responses": {
                "200": { "description": "the answer", "content": { "application/json": { "schema": r(response) } } },
                "default": { "description": "a Connect error", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Error" } } } } } } })
    };
    paths.insert(
        EVALUATION.into(),
        op("access evaluation", "EvaluationRequest", "Decision"),
    );
    paths.insert(
        EVALUATIONS.into(),
        op("access evaluations", "EvaluationsRequest", "EvaluationsResponse"),
    );
    paths.insert(
        SEARCH_SUBJECT.into(),
        op("subject search", "SearchRequest", "SearchResponse"),
    );
    paths.insert(
        SEARCH_RESOURCE.into(),
        op("resource search", "SearchRequest", "SearchResponse"),
    );
    paths.insert(
        METADATA.into(),
        json!({ "get": { "operationId": "authzen.metadata", "tags": ["AuthZEN"],
            "summary": "AuthZEN PDP metadata", "security": [],
            "responses": { "200": { "description": "the metadata", "content": {
                "application/json": { "schema": r("Metadata") } } } } } }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(v: Value) -> Entity {
        serde_json::from_value(v).expect("entity")
    }

    #[test]
    fn resources_map_to_warden_paths_and_back() {
        for (v, path) in [
            (json!({"type": "org", "id": "acme"}), "org"),
            (json!({"type": "app", "id": "web"}), "apps/web"),
            (json!({"type": "path", "id": "apps/web/doc/1"}), "apps/web/doc/1"),
            (
                json!({"type": "doc", "id": "1", "properties": {"app": "web"}}),
                "apps/web/doc/1",
            ),
        ] {
            let e = entity(v.clone());
            assert_eq!(resource_path(&e).expect("maps"), path, "{v}");
            if e.kind.as_deref() != Some("path") {
                let back = entity(resource_entity(path, "acme"));
                assert_eq!(resource_path(&back).expect("maps back"), path);
            }
        }
    }

    #[test]
    fn an_id_cannot_name_another_resource() {
        for (v, field) in [
            (json!({"type": "app", "id": "web/secrets/1"}), "resource.id"),
            (
                json!({"type": "doc", "id": "1", "properties": {"app": "web/x"}}),
                "resource.properties.app",
            ),
            (json!({"type": "doc", "id": "1"}), "resource.properties.app"),
            (json!({"id": "1"}), "resource.type"),
        ] {
            let err = resource_path(&entity(v.clone())).expect_err("refused");
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().starts_with(field), "{v}: {}", err.message());
        }
    }

    #[test]
    fn the_org_comes_from_properties_then_context_then_an_org_resource() {
        let ctx: Map<String, Value> = serde_json::from_value(json!({"org": "globex"})).unwrap();
        let r = entity(json!({"type": "app", "id": "web", "properties": {"org": "acme"}}));
        assert_eq!(org(&r, Some(&ctx)).unwrap(), "acme");
        let r = entity(json!({"type": "app", "id": "web"}));
        assert_eq!(org(&r, Some(&ctx)).unwrap(), "globex");
        assert!(
            org(&r, None)
                .unwrap_err()
                .message()
                .starts_with("resource.properties.org")
        );
        let r = entity(json!({"type": "org", "id": "acme"}));
        assert_eq!(org(&r, None).unwrap(), "acme");
    }

    #[test]
    fn semantics_stop_where_the_spec_says() {
        assert!(!Semantic::ExecuteAll.stops_at(false));
        assert!(Semantic::DenyOnFirstDeny.stops_at(false));
        assert!(!Semantic::DenyOnFirstDeny.stops_at(true));
        assert!(Semantic::PermitOnFirstPermit.stops_at(true));
        assert!(
            Semantic::parse(Some(&Options {
                evaluations_semantic: Some("nope".into())
            }))
            .is_err()
        );
    }
}
