//! The HTTP/JSON gateway (`serve --http tcp:127.0.0.1:8080`): every unary method of
//! Warden's gRPC services as `POST /<package.Service>/<Method>` with a JSON body, for curl
//! and for languages without gRPC, and `GET /openapi.json` describing them.
//!
//! It owns no behaviour of its own. A JSON body is read with the protobuf descriptors the
//! build embeds (proto3 JSON mapping, unknown fields refused), encoded to protobuf and
//! sent **in-process through the same tonic routes** the gRPC listeners serve, so every
//! check, validation and authorization rule is the gRPC one; the reply (or the gRPC
//! status) is turned back into JSON. Adding an RPC to `proto/` adds it here and to the
//! OpenAPI document without a line of gateway code.
//!
//! Replies use the proto field names (`org_id`, not `orgId`) and include fields at their
//! default values (`"allowed": false` is never left out); 64-bit integers are strings, as
//! proto3 JSON says. Requests accept either field-name spelling. The wire form is the
//! Connect protocol's unary JSON form, so Connect clients work unchanged: errors are
//! `{"code": "permission_denied", "message": "...", "details": []}` with Connect's HTTP
//! status for the code, `Connect-Protocol-Version: 1` is accepted (not required; another
//! version is refused), GET is 405 and a body that is not JSON is 415, both with a JSON
//! error body. [`authzen`] serves the OpenID AuthZEN API through the same in-process
//! routes. Like the gRPC listeners, this listener is loopback-only
//! unless configured otherwise (see `cli::config`).

mod authzen;

use crate::api::FILE_DESCRIPTOR_SET;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, SerializeOptions,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

/// The gRPC services as the gateway calls them: a request with one framed message in,
/// the gRPC reply out.
pub type GrpcService = BoxCloneSyncService<
    axum::http::Request<Full<Bytes>>,
    axum::http::Response<tonic::body::Body>,
    Infallible,
>;

/// Largest request body accepted (the gRPC listeners' default message limit too).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Packages whose unary methods the gateway exposes.
const PACKAGES: &[&str] = &["warden.v1", "grpc.health.v1"];

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("reading the embedded protobuf descriptors: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
}

/// The gateway's state: descriptors, the in-process gRPC routes, the OpenAPI document.
#[derive(Clone)]
pub struct Gateway {
    pool: DescriptorPool,
    grpc: GrpcService,
    openapi: Bytes,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway in front of `grpc`: the gRPC server's routes, with the same layers
    /// (caller authentication, in-flight bound) the listeners put in front of them.
    pub fn new<S>(grpc: S) -> Result<Self, GatewayError>
    where
        S: tower::Service<
                axum::http::Request<Full<Bytes>>,
                Response = axum::http::Response<tonic::body::Body>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let mut pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET)?;
        pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)?;
        let openapi = Bytes::from(openapi(&pool).to_string());
        Ok(Self {
            pool,
            grpc: BoxCloneSyncService::new(grpc),
            openapi,
        })
    }

    /// The axum router serving the gateway.
    pub fn router(self) -> Router {
        Router::new()
            .route("/openapi.json", get(openapi_json))
            .route(authzen::METADATA, get(authzen::metadata))
            .route(authzen::EVALUATION, post(authzen::evaluation))
            .route(authzen::EVALUATIONS, post(authzen::evaluations))
            .route(authzen::SEARCH_SUBJECT, post(authzen::search_subject))
            .route(authzen::SEARCH_RESOURCE, post(authzen::search_resource))
            .route("/{service}/{method}", post(call).get(method_not_allowed))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::new(self))
    }

    fn method(&self, service: &str, method: &str) -> Option<MethodDescriptor> {
        let svc = self.pool.get_service_by_name(service)?;
        if !PACKAGES.contains(&svc.package_name()) {
            return None;
        }
        svc.methods()
            .find(|m| m.name() == method && !m.is_client_streaming() && !m.is_server_streaming())
    }
}

/// Serve the gateway on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    limits: crate::api::connections::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::api::connections::serve_http(listener, gateway.router(), limits, shutdown).await
}

async fn openapi_json(State(gw): State<Arc<Gateway>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], gw.openapi.clone()).into_response()
}

async fn not_found() -> Response {
    error(
        tonic::Code::NotFound,
        "no such route: POST /<package.Service>/<Method> (see GET /openapi.json)",
    )
}

async fn call(
    State(gw): State<Arc<Gateway>>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(m) = gw.method(&service, &method) else {
        return error(
            tonic::Code::NotFound,
            &format!("no unary method {service}/{method} (see GET /openapi.json)"),
        );
    };
    if let Some(refusal) = connect_headers(&headers) {
        return refusal;
    }
    if let Some(refusal) = json_content_type(&headers, &body) {
        return refusal;
    }
    let input = match parse(m.input(), &body) {
        Ok(msg) => msg,
        Err(e) => return error(tonic::Code::InvalidArgument, &format!("body: {e}")),
    };
    let data = match gw
        .invoke(&format!("/{service}/{method}"), &headers, input.encode_to_vec())
        .await
    {
        Ok(data) => data,
        Err(status) => return error(status.code(), status.message()),
    };
    let output = match DynamicMessage::decode(m.output(), data.as_ref()) {
        Ok(msg) => msg,
        Err(e) => return error(tonic::Code::Internal, &format!("decoding the reply: {e}")),
    };
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    let mut out = Vec::with_capacity(data.len() * 2 + 16);
    let mut ser = serde_json::Serializer::new(&mut out);
    if let Err(e) = output.serialize_with_options(&mut ser, &options) {
        return error(tonic::Code::Internal, &format!("encoding the reply: {e}"));
    }
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// `GET` on a method's path: Connect's unary GET form needs methods marked idempotent,
/// which none is, so the answer is 405 with a Connect error body.
async fn method_not_allowed() -> Response {
    let mut resp = error(
        tonic::Code::Unimplemented,
        "method not allowed: call the method with POST and a JSON body",
    );
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

/// A `Connect-Protocol-Version` header other than `1` is refused (the header itself is
/// optional: curl users need not send it).
fn connect_headers(headers: &HeaderMap) -> Option<Response> {
    let version = headers.get("connect-protocol-version")?;
    (version.as_bytes() != b"1").then(|| {
        error(
            tonic::Code::InvalidArgument,
            "connect-protocol-version: expected 1",
        )
    })
}

/// A body that is not `application/json` is refused with 415, as the Connect protocol
/// says; an empty body without a content type is the empty message.
fn json_content_type(headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let json_body = content_type.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if json_body || (content_type.is_none() && body.is_empty()) {
        return None;
    }
    let mut resp = error(
        tonic::Code::InvalidArgument,
        &format!(
            "unsupported media type {}: send application/json",
            content_type.unwrap_or("(none)")
        ),
    );
    *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    resp.headers_mut()
        .insert("accept-post", HeaderValue::from_static("application/json"));
    Some(resp)
}

impl Gateway {
    /// One unary call through the in-process gRPC routes: `request` is the encoded
    /// request message of the method at `path` (`/<package.Service>/<Method>`); the
    /// caller's `authorization` header goes along. The encoded reply, or its status.
    pub(crate) async fn invoke(
        &self,
        path: &str,
        headers: &HeaderMap,
        request: Vec<u8>,
    ) -> Result<Bytes, tonic::Status> {
        let mut frame = Vec::with_capacity(5 + request.len());
        frame.push(0);
        let len =
            u32::try_from(request.len()).map_err(|_| tonic::Status::invalid_argument("body: too large"))?;
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&request);
        let mut req = axum::http::Request::post(path)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers");
        // Whatever authenticates a gRPC caller authenticates an HTTP one the same way.
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        // A caller-chosen request id makes a retried write return its first outcome.
        if let Some(id) = headers.get(crate::api::request_id::HEADER) {
            req = req.header(crate::api::request_id::HEADER, id.clone());
        }
        // The caller's W3C trace context, so the call's span joins the caller's trace.
        for name in crate::api::otel::PROPAGATED_HEADERS {
            if let Some(v) = headers.get(name) {
                req = req.header(name, v.clone());
            }
        }
        let req = req
            .body(Full::new(Bytes::from(frame)))
            .map_err(|e| tonic::Status::internal(format!("building the call: {e}")))?;
        let resp = match self.grpc.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        if let Some(status) = tonic::Status::from_header_map(&parts.headers)
            && status.code() != tonic::Code::Ok
        {
            return Err(status);
        }
        let collected = body
            .collect()
            .await
            .map_err(|e| tonic::Status::internal(format!("reading the reply: {e}")))?;
        if let Some(status) = collected.trailers().and_then(tonic::Status::from_header_map)
            && status.code() != tonic::Code::Ok
        {
            return Err(status);
        }
        let data = collected.to_bytes();
        unframe(&data)
            .map(Bytes::copy_from_slice)
            .ok_or_else(|| tonic::Status::internal("the reply was not one gRPC message"))
    }
}

/// A request message from a JSON body; an empty body is the empty message.
fn parse(desc: MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(desc));
    }
    // The descriptor reader keeps the last of two values for one field; refuse the body
    // instead, so a caller and a proxy in front can never read different requests in it.
    refuse_duplicate_keys(keys::Shape::Message(desc.clone()), body)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let msg = DynamicMessage::deserialize_with_options(
        desc,
        &mut de,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )?;
    de.end()?;
    Ok(msg)
}

/// Refuse a JSON body in which one object gives a key twice (or, for a message, two
/// spellings of one field), at any depth, naming where.
fn refuse_duplicate_keys(shape: keys::Shape, body: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde::de::DeserializeSeed::deserialize(
        keys::Walk {
            shape,
            path: String::new(),
        },
        &mut de,
    )?;
    de.end()
}

/// Duplicate keys in a JSON request body: the same key twice in one object, or two
/// spellings of one field (`org_id` and `orgId`), at any depth.
mod keys {
    use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
    use std::collections::HashMap;
    use std::fmt;

    /// What a JSON value stands for, as far as keys are concerned.
    #[derive(Clone)]
    pub(super) enum Shape {
        /// A message: keys are field names in either spelling.
        Message(MessageDescriptor),
        /// A map field: keys are map keys, values have this shape.
        Map(Box<Shape>),
        /// Anything else (scalars, well-known types such as `Struct`): keys are compared
        /// as written.
        Any,
    }

    fn field_shape(f: &FieldDescriptor) -> Shape {
        let value_shape = |k: Kind| match k {
            Kind::Message(m) if !m.full_name().starts_with("google.protobuf.") => Shape::Message(m),
            _ => Shape::Any,
        };
        if f.is_map() {
            return match f.kind() {
                Kind::Message(entry) => {
                    Shape::Map(Box::new(value_shape(entry.map_entry_value_field().kind())))
                }
                _ => Shape::Any,
            };
        }
        value_shape(f.kind())
    }

    /// Walks one JSON value, refusing a repeated key; `path` names where it is
    /// (`items[1]`), empty at the top.
    pub(super) struct Walk {
        pub(super) shape: Shape,
        pub(super) path: String,
    }

    impl Walk {
        fn at(&self, key: &str) -> String {
            if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            }
        }
    }

    impl<'de> DeserializeSeed<'de> for Walk {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0usize;
            loop {
                let item = Walk {
                    shape: self.shape.clone(),
                    path: format!("{}[{i}]", self.path),
                };
                if seq.next_element_seed(item)?.is_none() {
                    return Ok(());
                }
                i += 1;
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            // Canonical name → the spelling met first.
            let mut seen: HashMap<String, String> = HashMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let (canonical, shape) = match &self.shape {
                    Shape::Message(m) => match m
                        .get_field_by_name(&key)
                        .or_else(|| m.get_field_by_json_name(&key))
                    {
                        Some(f) => (f.name().to_string(), field_shape(&f)),
                        // Unknown: refused by the reader that follows, naming it.
                        None => (key.clone(), Shape::Any),
                    },
                    Shape::Map(values) => (key.clone(), (**values).clone()),
                    Shape::Any => (key.clone(), Shape::Any),
                };
                if let Some(first) = seen.get(&canonical) {
                    let msg = if *first == key {
                        format!("{}: the key appears twice; give each field once", self.at(&key))
                    } else {
                        format!(
                            "{}: `{first}` and `{key}` both name the field `{canonical}`; give each field once",
                            self.at(&canonical)
                        )
                    };
                    return Err(A::Error::custom(msg));
                }
                let path = self.at(&canonical);
                seen.insert(canonical, key);
                map.next_value_seed(Walk { shape, path })?;
            }
            Ok(())
        }
    }
}

/// The one uncompressed message of a unary gRPC reply body.
fn unframe(data: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = data.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let msg = rest.get(4..4 + len)?;
    (flag == 0 && rest.len() == 4 + len).then_some(msg)
}

/// The HTTP status for a gRPC code (google.rpc.Code's documented mapping).
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code as C;
    match code {
        C::Ok => StatusCode::OK,
        C::InvalidArgument | C::FailedPrecondition | C::OutOfRange => StatusCode::BAD_REQUEST,
        C::Unauthenticated => StatusCode::UNAUTHORIZED,
        C::PermissionDenied => StatusCode::FORBIDDEN,
        C::NotFound => StatusCode::NOT_FOUND,
        C::AlreadyExists | C::Aborted => StatusCode::CONFLICT,
        C::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        C::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        C::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        C::Unknown | C::Internal | C::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

const ALL_CODES: [tonic::Code; 16] = {
    use tonic::Code as C;
    [
        C::Cancelled,
        C::Unknown,
        C::InvalidArgument,
        C::DeadlineExceeded,
        C::NotFound,
        C::AlreadyExists,
        C::PermissionDenied,
        C::ResourceExhausted,
        C::FailedPrecondition,
        C::Aborted,
        C::OutOfRange,
        C::Unimplemented,
        C::Internal,
        C::Unavailable,
        C::DataLoss,
        C::Unauthenticated,
    ]
};

/// The Connect protocol's name of a code (`invalid_argument`), as in every JSON error
/// body of the gateway and in per-item errors.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "ok",
        C::Cancelled => "canceled",
        C::Unknown => "unknown",
        C::InvalidArgument => "invalid_argument",
        C::DeadlineExceeded => "deadline_exceeded",
        C::NotFound => "not_found",
        C::AlreadyExists => "already_exists",
        C::PermissionDenied => "permission_denied",
        C::ResourceExhausted => "resource_exhausted",
        C::FailedPrecondition => "failed_precondition",
        C::Aborted => "aborted",
        C::OutOfRange => "out_of_range",
        C::Unimplemented => "unimplemented",
        C::Internal => "internal",
        C::Unavailable => "unavailable",
        C::DataLoss => "data_loss",
        C::Unauthenticated => "unauthenticated",
    }
}

fn error_body(code: tonic::Code, message: &str) -> ([(header::HeaderName, HeaderValue); 1], String) {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json!({ "code": code_name(code), "message": message, "details": [] }).to_string(),
    )
}

pub(crate) fn error(code: tonic::Code, message: &str) -> Response {
    (http_status(code), error_body(code, message)).into_response()
}

/// The leading comment the proto source gives the element at `path` of `file`, trimmed.
fn comment(file: &prost_reflect::FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let text = info
        .location
        .iter()
        .find(|l| l.path == path)?
        .leading_comments
        .as_deref()?;
    let text = text
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// Every message reachable from `roots` through message fields (map values included).
fn reachable(roots: impl IntoIterator<Item = MessageDescriptor>) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    let mut pending: Vec<MessageDescriptor> = roots.into_iter().collect();
    while let Some(msg) = pending.pop() {
        if !seen.insert(msg.full_name().to_string()) {
            continue;
        }
        for f in msg.fields() {
            if let Kind::Message(inner) = f.kind() {
                pending.push(inner);
            }
        }
    }
    seen
}

/// The OpenAPI 3.1 document for every exposed method, from the descriptors (with the
/// proto comments as descriptions), and for the AuthZEN endpoints.
fn openapi(pool: &DescriptorPool) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = BTreeMap::new();
    let mut pending = Vec::new();
    let mut inputs = Vec::new();
    for svc in pool.services().filter(|s| PACKAGES.contains(&s.package_name())) {
        for m in svc.methods() {
            if m.is_client_streaming() || m.is_server_streaming() {
                continue;
            }
            pending.push(m.input());
            pending.push(m.output());
            inputs.push(m.input());
            let mut op = json!({
                "operationId": format!("{}.{}", svc.name(), m.name()),
                "tags": [svc.full_name()],
                "summary": format!("{} (gRPC {}/{})", m.name(), svc.full_name(), m.name()),
                "requestBody": { "required": false, "content": { "application/json": {
                    "schema": { "$ref": schema_ref(&m.input()) } } } },
                "responses": {
                    "200": { "description": "the reply", "content": { "application/json": {
                        "schema": { "$ref": schema_ref(&m.output()) } } } },
                    "default": { "description": "a Connect error", "content": {
                        "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                }
            });
            if let Some(text) = comment(&m.parent_file(), m.path()) {
                op["description"] = Value::String(text);
            }
            paths.insert(
                format!("/{}/{}", svc.full_name(), m.name()),
                json!({ "post": op }),
            );
        }
    }
    // A reply includes every field without presence (defaults are written out), so those
    // are `required`; messages also used in requests get no `required` list, since a
    // request may leave any field out.
    let in_requests = reachable(inputs);
    while let Some(msg) = pending.pop() {
        if schemas.contains_key(msg.full_name()) || well_known(&msg).is_some() {
            continue;
        }
        let mut props = serde_json::Map::new();
        let mut required = Vec::new();
        for f in msg.fields() {
            if let Kind::Message(inner) = f.kind() {
                let inner = if f.is_map() {
                    value_message(&f)
                } else {
                    Some(inner)
                };
                pending.extend(inner);
            }
            let mut schema = field_schema(&f);
            if let Some(text) = comment(&msg.parent_file(), f.path())
                && let Some(obj) = schema.as_object_mut()
            {
                obj.insert("description".into(), Value::String(text));
            }
            if !f.supports_presence() {
                required.push(f.name().to_string());
            }
            props.insert(f.name().to_string(), schema);
        }
        let mut schema = json!({ "type": "object", "properties": props, "additionalProperties": false });
        if !in_requests.contains(msg.full_name()) && !required.is_empty() {
            schema["required"] = json!(required);
        }
        if let Some(text) = comment(&msg.parent_file(), msg.path()) {
            schema["description"] = Value::String(text);
        }
        schemas.insert(msg.full_name().to_string(), schema);
    }
    let mut components: serde_json::Map<String, Value> = schemas.into_iter().collect();
    components.insert(
        "Error".into(),
        json!({ "type": "object", "required": ["code", "message"], "properties": {
            "code": { "type": "string", "description": "the Connect error code, e.g. permission_denied",
                "enum": ALL_CODES.iter().map(|c| code_name(*c)).collect::<Vec<_>>() },
            "message": { "type": "string", "description": "names the field or the missing permission" },
            "details": { "type": "array", "description": "Connect error details (none today)",
                "items": { "type": "object" } } } }),
    );
    authzen::openapi(&mut paths, &mut components);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Warden HTTP/JSON API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every unary gRPC method of Warden as POST /<package.Service>/<Method> with \
                a proto3-JSON body (the Connect protocol's unary JSON form), and the OpenID AuthZEN \
                Authorization API 1.0 under /access/v1. Casing: field names are the proto names \
                (snake_case) in replies and in this document; requests may also use proto3 JSON's \
                lowerCamelCase. Replies include default values; 64-bit integers are strings. \
                Errors are Connect's: {code, message, details}. When the daemon is given a TCP \
                token, every call needs `Authorization: Bearer <token>`."
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "the TCP bearer token (--tcp-token-sha256); required only when one is configured" } },
        },
        "security": [ { "bearer": [] }, {} ],
    })
}

fn schema_ref(msg: &MessageDescriptor) -> String {
    format!("#/components/schemas/{}", msg.full_name())
}

fn value_message(map_field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match map_field.kind() {
        Kind::Message(entry) => match entry.map_entry_value_field().kind() {
            Kind::Message(v) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

fn well_known(msg: &MessageDescriptor) -> Option<Value> {
    Some(match msg.full_name() {
        "google.protobuf.Struct" => json!({ "type": "object" }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array" }),
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => json!({ "type": "string" }),
        "google.protobuf.Empty" => json!({ "type": "object" }),
        _ => return None,
    })
}

fn kind_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Double | Kind::Float => json!({ "type": "number" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
        Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "minimum": 0 }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({ "type": ["string", "integer"], "format": "int64" })
        }
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": ["string", "integer"], "format": "uint64" }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Enum(e) => json!({ "anyOf": [
            { "type": "string", "enum": e.values().map(|v| v.name().to_string()).collect::<Vec<_>>() },
            { "type": "integer" } ] }),
        Kind::Message(m) => well_known(m).unwrap_or_else(|| json!({ "$ref": schema_ref(m) })),
    }
}

fn field_schema(f: &FieldDescriptor) -> Value {
    if f.is_map() {
        let value = match f.kind() {
            Kind::Message(entry) => kind_schema(&entry.map_entry_value_field().kind()),
            other => kind_schema(&other),
        };
        return json!({ "type": "object", "additionalProperties": value });
    }
    let item = kind_schema(&f.kind());
    if f.is_list() {
        json!({ "type": "array", "items": item })
    } else if f.supports_presence() {
        // Unset optional fields and messages are left out or null.
        json!({ "anyOf": [item, { "type": "null" }] })
    } else {
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_connects() {
        assert_eq!(code_name(tonic::Code::PermissionDenied), "permission_denied");
        assert_eq!(code_name(tonic::Code::Cancelled), "canceled");
        assert_eq!(code_name(tonic::Code::InvalidArgument), "invalid_argument");
    }

    #[test]
    fn duplicate_keys_are_refused_naming_the_field() {
        let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("descriptors");
        let check = pool
            .get_message_by_name("warden.v1.CheckRequest")
            .expect("CheckRequest");
        let err = parse(check.clone(), br#"{"subject":"dave","subject":"alice"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("subject: the key appears twice"),
            "{err}"
        );
        let ok = parse(check.clone(), br#"{"subject":"dave","org":"acme"}"#).expect("parses");
        assert_eq!(
            ok.get_field_by_name("subject")
                .map(|v| v.as_str().map(str::to_string)),
            Some(Some("dave".to_string()))
        );
        let members = pool
            .get_message_by_name("warden.v1.AddMemberRequest")
            .expect("AddMemberRequest");
        let err = parse(members, br#"{"org_id":"acme","orgId":"globex"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("`org_id` and `orgId` both name the field `org_id`"),
            "{err}"
        );
        let batch = pool
            .get_message_by_name("warden.v1.BatchCheckRequest")
            .expect("BatchCheckRequest");
        let err = parse(
            batch,
            br#"{"items":[{"subject":"a"},{"subject":"dave","subject":"alice"}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("items[1].subject:"), "{err}");
    }

    #[test]
    fn unframe_takes_exactly_one_uncompressed_message() {
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 7, 8]), Some(&[7u8, 8][..]));
        assert_eq!(unframe(&[0, 0, 0, 0, 3, 7, 8]), None);
        assert_eq!(unframe(&[1, 0, 0, 0, 1, 7]), None);
        assert_eq!(unframe(&[0, 0, 0, 0, 1, 7, 9]), None);
        assert_eq!(unframe(&[]), None);
    }
}
