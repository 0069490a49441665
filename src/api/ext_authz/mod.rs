//! `envoy.service.auth.v3.Authorization/Check`: Envoy's (and Istio's CUSTOM provider's)
//! external authorization, served on the same listeners as the Warden services.
//!
//! Envoy sends the HTTP request's attributes; the operator's [`mapping::Mapping`] turns
//! them into one check — subject from a header or JWT claims in the filter metadata, org
//! and app from the route's `context_extensions` or the path template, action and
//! resource from the first route rule matching method + path — and the engine decides.
//! A deny answers `403` (`401` when no subject could be found) with an
//! `x-warden-reason` header; an allow may add `x-warden-*` headers to the upstream
//! request. A request the engine decided carries its decision id in
//! `x-warden-decision-id` (to the upstream on an allow, to the client on a deny), and the
//! decision log line has it with the method, path and `x-request-id`. Anything that is not
//! a clear allow is a deny: a request no rule maps, a missing org, an oversized field, an
//! engine failure. A path that is not canonical (`.`/`..` or empty segments, control
//! characters, percent-encoded `.`, `/` or `\`), a resource outside the resource grammar or
//! a reserved subject is answered `400` (INVALID_ARGUMENT) naming the field, never routed as
//! written.
//!
//! Nothing here decides anything; the engine does. Spans and reasons name the org,
//! action and resource, never the subject (which may be derived from a token).

pub mod mapping;

use crate::api::logs::decisions::{Context as LogContext, DecisionId, DecisionLog, Source as LogSource};
use crate::api::metrics::{Metrics, Outcome};
use crate::api::validate;
use crate::engine::{CheckInput, Engine, EngineError};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, HttpStatusCode, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::rpc;
pub use mapping::Mapping;
use mapping::Source;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// Encoded `FileDescriptorSet` of `envoy/service/auth/v3/external_auth.proto` and the
/// files it imports, for reflection: taken from the `envoy-types` crate's descriptors
/// (without source info) by `scripts/envoy-descriptor.sh`; a test checks it against the
/// crate's types.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("envoy_descriptor.bin");

/// The header that carries a deny's reason to the client (and Envoy's access log).
pub const REASON_HEADER: &str = "x-warden-reason";
/// The id of the decision, as in the decision log.
pub const DECISION_ID_HEADER: &str = "x-warden-decision-id";

/// The Envoy external authorization service over the shared engine.
#[derive(Clone)]
pub struct ExtAuthz {
    engine: Arc<Engine>,
    /// Loaded and validated at startup; read-only afterwards.
    mapping: Arc<Mapping>,
    /// Shared with the gRPC Check so `/metrics` counts every decision the daemon makes.
    metrics: Arc<Metrics>,
    /// The sampled decision log, when configured.
    decisions: Option<Arc<DecisionLog>>,
}

/// What the service answers, before it is dressed as Envoy's `CheckResponse`.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allow {
        subject: String,
        org: String,
        resource: String,
        action: String,
        revision: u64,
    },
    /// 401: nobody to ask about.
    Unauthenticated(String),
    /// 403 with the reason.
    Denied(String),
    /// 400 with the reason: the request cannot be asked about as it stands (a
    /// non-canonical path or resource, a reserved subject). Still a deny.
    Invalid(String),
}

impl ExtAuthz {
    pub fn new(engine: Arc<Engine>, mapping: Arc<Mapping>, metrics: Arc<Metrics>) -> Self {
        Self {
            engine,
            mapping,
            metrics,
            decisions: None,
        }
    }

    /// Offer every decision to `log` (it samples and never blocks).
    pub fn with_decision_log(mut self, log: Option<Arc<DecisionLog>>) -> Self {
        self.decisions = log;
        self
    }

    pub fn into_server(self) -> AuthorizationServer<Self> {
        AuthorizationServer::new(self)
    }

    /// The answer; `decided` gets the decision's id when the engine was asked.
    fn verdict(&self, req: &CheckRequest, peer: Option<&str>, decided: &mut Option<DecisionId>) -> Verdict {
        let Some(attrs) = req.attributes.as_ref() else {
            self.metrics.record(Outcome::Error, None);
            return Verdict::Denied("the request carries no attributes".into());
        };
        let Some(http) = attrs.request.as_ref().and_then(|r| r.http.as_ref()) else {
            self.metrics.record(Outcome::Error, None);
            return Verdict::Denied("the request carries no HTTP attributes".into());
        };
        // A path the upstream would normalise into another one must not be routed as
        // written (`/apps/web/../api` would be checked as app `web`).
        if let Some(why) = mapping::path_problem(&http.path) {
            self.metrics.record(Outcome::Invalid, None);
            return Verdict::Invalid(format!("path: {why}"));
        }
        let Some(route) = self.mapping.route(&http.method, &http.path) else {
            self.metrics.record(Outcome::Deny, None);
            return Verdict::Denied("no route rule maps this method and path".into());
        };
        let param = |name: &str| route.params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let resolve = |sources: &[Source]| sources.iter().find_map(|s| read_source(s, attrs, &param));
        let Some(subject) = resolve(&self.mapping.subject) else {
            self.metrics.record(Outcome::Deny, None);
            return Verdict::Unauthenticated(
                "no subject: none of the mapping's subject sources is present".into(),
            );
        };
        let Some(org) = resolve(&self.mapping.org) else {
            self.metrics.record(Outcome::Deny, None);
            return Verdict::Denied("no org: none of the mapping's org sources is present".into());
        };
        let app = resolve(&self.mapping.app);
        let resource = route.rule.resource(app.as_deref(), |name| match name {
            "org" => Some(org.clone()),
            "app" => app.clone(),
            other => param(other).map(str::to_string),
        });
        let Some(resource) = resource else {
            self.metrics.record(Outcome::Deny, None);
            return Verdict::Denied("the rule's resource names a value this request does not carry".into());
        };
        let action = route.rule.action.as_str();
        let input = match (|| {
            Ok::<_, Status>(CheckInput {
                subject: validate::subject("subject", &subject)?,
                org: validate::required("org", &org)?,
                resource: validate::resource("resource", &resource)?,
                action: validate::required("action", action)?,
            })
        })() {
            Ok(input) => input,
            Err(status) => {
                self.metrics.record(Outcome::Invalid, None);
                return Verdict::Invalid(status.message().to_string());
            }
        };
        let started = Instant::now();
        let answer = self.engine.check(&input);
        let elapsed = started.elapsed();
        if let Ok(d) = &answer {
            let id = DecisionId::next();
            *decided = Some(id);
            if let Some(log) = &self.decisions {
                log.record(LogSource::ExtAuthz, id, &input, d, || LogContext {
                    peer: peer.map(str::to_string),
                    method: Some(http.method.clone()),
                    path: Some(http.path.split('?').next().unwrap_or("").to_string()),
                    request_id: if http.id.is_empty() {
                        mapping::header(&http.headers, "x-request-id").map(str::to_string)
                    } else {
                        Some(http.id.clone())
                    },
                });
            }
        }
        match answer {
            Ok(d) if d.allowed => {
                self.metrics.record(Outcome::Allow, Some(elapsed));
                Verdict::Allow {
                    action: action.to_string(),
                    subject,
                    org,
                    resource,
                    revision: d.revision,
                }
            }
            Ok(_) => {
                self.metrics.record(Outcome::Deny, Some(elapsed));
                Verdict::Denied(format!("policy denies {action} on {resource} in org {org}"))
            }
            Err(e @ EngineError::Invalid { .. }) => {
                self.metrics.record(Outcome::Invalid, Some(elapsed));
                Verdict::Invalid(e.to_string())
            }
            Err(e) => {
                self.metrics.record(Outcome::Error, Some(elapsed));
                tracing::warn!(error = %e, "ext_authz: evaluation failed; denying");
                Verdict::Denied("evaluation failed".into())
            }
        }
    }

    fn respond(&self, verdict: Verdict, decided: Option<DecisionId>) -> CheckResponse {
        let mut response = self.dress(verdict);
        let Some(id) = decided else {
            return response;
        };
        let id = header(DECISION_ID_HEADER, id.to_string());
        match &mut response.http_response {
            Some(HttpResponse::OkResponse(ok)) => ok.headers.push(id),
            Some(HttpResponse::DeniedResponse(denied)) => denied.headers.push(id),
            _ => {}
        }
        response
    }

    fn dress(&self, verdict: Verdict) -> CheckResponse {
        match verdict {
            Verdict::Allow {
                subject,
                org,
                resource,
                action,
                revision,
            } => {
                let headers = if self.mapping.upstream_headers {
                    vec![
                        header("x-warden-subject", subject),
                        header("x-warden-org", org),
                        header("x-warden-resource", resource),
                        header("x-warden-action", action),
                        header("x-warden-revision", revision.to_string()),
                    ]
                } else {
                    Vec::new()
                };
                CheckResponse {
                    status: Some(rpc::Status {
                        code: tonic::Code::Ok as i32,
                        ..Default::default()
                    }),
                    http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                        headers,
                        ..Default::default()
                    })),
                    ..Default::default()
                }
            }
            Verdict::Unauthenticated(reason) => {
                denied(tonic::Code::Unauthenticated, HttpStatusCode::Unauthorized, reason)
            }
            Verdict::Denied(reason) => {
                denied(tonic::Code::PermissionDenied, HttpStatusCode::Forbidden, reason)
            }
            Verdict::Invalid(reason) => {
                denied(tonic::Code::InvalidArgument, HttpStatusCode::BadRequest, reason)
            }
        }
    }
}

/// Read one source from the request; empty values count as absent.
fn read_source<'p>(
    source: &Source,
    attrs: &AttributeContext,
    param: &impl Fn(&str) -> Option<&'p str>,
) -> Option<String> {
    let value = match source {
        Source::Header(name) => {
            let http = attrs.request.as_ref()?.http.as_ref()?;
            match mapping::header(&http.headers, name) {
                Some(v) => v.to_string(),
                // `encode_raw_headers: true` sends `header_map` instead, uncombined.
                None => raw_header(http.header_map.as_ref()?, name)?,
            }
        }
        Source::ContextExtension(key) => attrs.context_extensions.get(key)?.clone(),
        Source::PathParam(name) => param(name)?.to_string(),
        Source::Metadata { filter, path } => {
            let root = attrs.metadata_context.as_ref()?.filter_metadata.get(filter)?;
            let (last, walk) = path.split_last()?;
            let mut at = root;
            for key in walk {
                match at.fields.get(key)?.kind.as_ref()? {
                    Kind::StructValue(s) => at = s,
                    _ => return None,
                }
            }
            match at.fields.get(last)?.kind.as_ref()? {
                Kind::StringValue(s) => s.clone(),
                // Numeric subject claims (some IdPs) are whole numbers.
                Kind::NumberValue(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => format!("{}", *n as i64),
                _ => return None,
            }
        }
    };
    (!value.is_empty()).then_some(value)
}

/// A header from Envoy's raw `header_map`: its one value, or `None` when it is absent,
/// not UTF-8, or sent more than once with different values (a subject must not be
/// ambiguous).
fn raw_header(map: &envoy_types::pb::envoy::config::core::v3::HeaderMap, name: &str) -> Option<String> {
    let mut found: Option<&[u8]> = None;
    for h in map.headers.iter().filter(|h| h.key.eq_ignore_ascii_case(name)) {
        let v = if h.raw_value.is_empty() {
            h.value.as_bytes()
        } else {
            &h.raw_value[..]
        };
        match found {
            Some(prev) if prev != v => return None,
            _ => found = Some(v),
        }
    }
    std::str::from_utf8(found?).ok().map(str::to_string)
}

fn header(key: &str, value: String) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value,
            raw_value: Vec::new(),
        }),
        append: None,
        // Overwrite: a client must not be able to pre-set what the upstream trusts.
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        keep_empty_value: false,
    }
}

fn denied(code: tonic::Code, http: HttpStatusCode, reason: String) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: code as i32,
            message: reason.clone(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: http as i32 }),
            headers: vec![header(REASON_HEADER, reason.clone())],
            body: format!("{reason}\n"),
        })),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let peer = self
            .decisions
            .as_ref()
            .and_then(|_| crate::api::authz::peer_of(&request));
        let req = request.into_inner();
        let (method, path) = req
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .map(|h| (h.method.as_str(), h.path.split('?').next().unwrap_or("")))
            .unwrap_or_default();
        let span =
            tracing::info_span!("ext_authz.Check", method = %truncated(method), path = %truncated(path));
        if let Some(h) = req
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
        {
            // The application's trace, when Envoy's own call did not carry one.
            crate::api::otel::join_from_map(&span, &h.headers);
        }
        let _entered = span.enter();
        let mut decided = None;
        let verdict = self.verdict(&req, peer.as_deref(), &mut decided);
        match &verdict {
            Verdict::Allow {
                org,
                resource,
                action,
                ..
            } => {
                tracing::debug!(org = %org, resource = %resource, action = %action, "allow")
            }
            Verdict::Unauthenticated(reason) | Verdict::Denied(reason) | Verdict::Invalid(reason) => {
                tracing::debug!(reason = %reason, "deny")
            }
        }
        Ok(Response::new(self.respond(verdict, decided)))
    }
}

/// At most 128 bytes of a client-supplied value for a span.
fn truncated(s: &str) -> &str {
    let mut end = s.len().min(128);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::raw_header;
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap {
            headers: pairs
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: k.to_string(),
                    raw_value: v.as_bytes().to_vec(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn raw_headers_must_be_unambiguous() {
        assert_eq!(
            raw_header(&map(&[("x-user", "alice")]), "X-User").as_deref(),
            Some("alice")
        );
        assert_eq!(
            raw_header(&map(&[("x-user", "alice"), ("x-user", "alice")]), "x-user").as_deref(),
            Some("alice")
        );
        assert_eq!(
            raw_header(&map(&[("x-user", "alice"), ("x-user", "mallory")]), "x-user"),
            None
        );
        assert_eq!(raw_header(&map(&[("x-other", "alice")]), "x-user"), None);
    }
}

#[cfg(test)]
mod descriptor_tests {
    use super::FILE_DESCRIPTOR_SET;
    use envoy_types::ext_authz::v3::pb::CheckRequest;
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
    use prost::Message;
    use prost_reflect::{DescriptorPool, DynamicMessage};

    /// The shipped descriptor is complete (every import is in it) and describes the
    /// messages `envoy-types` encodes: a request Envoy sends decodes with no unknown
    /// field and encodes back to the same bytes.
    #[test]
    fn envoy_descriptor_matches_the_crate_types() {
        let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("a complete descriptor set");
        let service = pool
            .get_service_by_name("envoy.service.auth.v3.Authorization")
            .expect("the service");
        let check = service.methods().find(|m| m.name() == "Check").expect("Check");
        assert_eq!(check.input().full_name(), "envoy.service.auth.v3.CheckRequest");
        assert_eq!(check.output().full_name(), "envoy.service.auth.v3.CheckResponse");

        let req = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(attribute_context::Request {
                    http: Some(attribute_context::HttpRequest {
                        method: "GET".into(),
                        path: "/apps/web".into(),
                        headers: [("x-request-id".to_string(), "r1".to_string())].into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: [("org".to_string(), "acme".to_string())].into(),
                ..Default::default()
            }),
        };
        let bytes = req.encode_to_vec();
        let dynamic = DynamicMessage::decode(check.input(), bytes.as_slice()).expect("decodes");
        assert_eq!(dynamic.unknown_fields().count(), 0);
        let attributes = dynamic.get_field_by_name("attributes").expect("attributes");
        let attributes = attributes.as_message().expect("a message");
        assert_eq!(attributes.unknown_fields().count(), 0);
        assert_eq!(dynamic.encode_to_vec().len(), bytes.len());
    }
}
