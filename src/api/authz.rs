//! `warden.v1.AuthzService`: validates requests, honours `min_revision`, asks the
//! engine, and turns its answers and errors into protobuf responses and statuses.
//!
//! Nothing here decides anything; the engine does. Spans record org, resource and
//! action but never the subject, which may be an API token.

use crate::api::limits::Admission;
use crate::api::logs::decisions::{Context, DecidingRule, DecisionId, DecisionLog, Source};
use crate::api::metrics::{Metrics, Outcome};
use crate::api::pb;
use crate::api::revision;
use crate::api::validate::{self, MAX_BATCH_ITEMS};
use crate::engine::{CheckInput, Decision, Engine, EngineError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The authorization service over the shared engine.
#[derive(Clone)]
pub struct Authz {
    engine: Arc<Engine>,
    /// Bound on the `min_revision` wait; a field so tests can shorten it.
    max_wait: Duration,
    /// Decision counters and the latency histogram; shared with the metrics listener.
    metrics: Arc<Metrics>,
    /// The sampled decision log, when `serve --decision-log` asks for one.
    decisions: Option<Arc<DecisionLog>>,
    /// Whether answered checks are counted per (org, member) for usage reports (in the
    /// index; `api::usage` flushes them).
    count_usage: bool,
}

impl Authz {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            max_wait: revision::MAX_WAIT,
            metrics: Metrics::new(),
            decisions: None,
            count_usage: false,
        }
    }

    /// Bound the `min_revision` wait (`serve --min-revision-wait`).
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Count answered checks of org members for usage reports (the daemon flushes them to
    /// the store, see `api::usage`).
    pub fn with_usage_counting(mut self) -> Self {
        self.count_usage = true;
        self
    }

    /// Count answered checks whose subject is a member of the org (tokens and strangers are
    /// not counted: they would let any caller grow the counters at will).
    /// (A batch's items are counted by the engine, which has their entries at hand.)
    fn count_usage(&self, org: &str, subject: &str) {
        if self.count_usage {
            self.engine.index().read().count_check(org, subject);
        }
    }

    /// Offer every decision to `log` (it samples and never blocks).
    pub fn with_decision_log(mut self, log: Option<Arc<DecisionLog>>) -> Self {
        self.decisions = log;
        self
    }

    /// Count decisions into `metrics` (the daemon's, scraped by `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn into_server(self) -> pb::authz_service_server::AuthzServiceServer<Self> {
        pb::authz_service_server::AuthzServiceServer::new(self)
    }

    /// Validate and answer one check whose `min_revision` has already been awaited,
    /// counting its outcome and the engine's time in the metrics, giving it an id and
    /// offering it to the decision log (`peer` is only looked up when there is one).
    fn decide(
        &self,
        req: &pb::CheckRequest,
        source: Source,
        peer: Option<&str>,
    ) -> Result<pb::CheckResponse, Status> {
        let input = match check_input(req) {
            Ok(input) => input,
            Err(status) => {
                self.metrics.record(Outcome::Invalid, None);
                return Err(status);
            }
        };
        let started = Instant::now();
        let answer = self.answer(req, input);
        let outcome = match &answer {
            Ok((r, _)) if r.allowed => Outcome::Allow,
            Ok(_) => Outcome::Deny,
            Err(s) => outcome_of(s),
        };
        self.metrics.record(outcome, Some(started.elapsed()));
        let (mut response, rule) = answer?;
        let id = DecisionId::next();
        if let Some(log) = &self.decisions {
            let decision = Decision {
                allowed: response.allowed,
                revision: response.revision,
                rule: None,
            };
            log.record_rule(source, id, &input, &decision, rule, || Context {
                peer: peer.map(str::to_string),
                ..Context::default()
            });
        }
        response.decision_id = id.to_string();
        Ok(response)
    }

    /// The engine call itself, with or without an explanation, and the rule that decided.
    fn answer(
        &self,
        req: &pb::CheckRequest,
        input: CheckInput<'_>,
    ) -> Result<(pb::CheckResponse, DecidingRule), Status> {
        if req.explain {
            let e = self.engine.explain(&input).map_err(engine_status)?;
            let (rule_file, rule_line, rule_text) = match e.rule {
                Some(r) => (r.file, r.line, r.text),
                None => (String::new(), 0, String::new()),
            };
            let rule = if rule_file.is_empty() {
                DecidingRule::None
            } else {
                DecidingRule::At(format!("{rule_file}:{rule_line}"))
            };
            let response = pb::CheckResponse {
                allowed: e.allowed,
                revision: e.revision,
                decision_id: String::new(),
                explanation: Some(pb::Explanation {
                    allowed: e.allowed,
                    effect: e.effect,
                    rule_file,
                    rule_line,
                    rule_text,
                    role_path: e.role_path,
                    near_misses: e
                        .near_misses
                        .into_iter()
                        .map(|m| pb::NearMiss {
                            rule_file: m.rule.file,
                            rule_line: m.rule.line,
                            rule_text: m.rule.text,
                            failed: m.failed,
                        })
                        .collect(),
                }),
            };
            Ok((response, rule))
        } else {
            let d = self.engine.check(&input).map_err(engine_status)?;
            let response = pb::CheckResponse {
                allowed: d.allowed,
                revision: d.revision,
                explanation: None,
                decision_id: String::new(),
            };
            Ok((response, d.rule.into()))
        }
    }
}

/// Who called, for the decision log: `tcp:IP:PORT` (also under TLS), `unix:uid=U,pid=P`
/// on the Unix socket; `None` in-process (the HTTP/JSON gateway's inner call).
pub(crate) fn peer_of<T>(request: &Request<T>) -> Option<String> {
    if let Some(addr) = request.remote_addr() {
        return Some(format!("tcp:{addr}"));
    }
    let uds = request
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()?;
    Some(match &uds.peer_cred {
        Some(cred) => match cred.pid() {
            Some(pid) => format!("unix:uid={},pid={pid}", cred.uid()),
            None => format!("unix:uid={}", cred.uid()),
        },
        None => "unix".to_string(),
    })
}

fn check_input(req: &pb::CheckRequest) -> Result<CheckInput<'_>, Status> {
    Ok(CheckInput {
        subject: validate::subject("subject", &req.subject)?,
        org: validate::required("org", &req.org)?,
        resource: validate::resource("resource", &req.resource)?,
        action: validate::required("action", &req.action)?,
    })
}

/// How a failed check counts in the metrics: the caller's mistake (INVALID_ARGUMENT) is
/// not a server error.
fn outcome_of(status: &Status) -> Outcome {
    match status.code() {
        tonic::Code::InvalidArgument => Outcome::Invalid,
        _ => Outcome::Error,
    }
}

/// Map an engine failure to a status whose message says what failed.
pub(crate) fn engine_status(err: EngineError) -> Status {
    match err {
        EngineError::InvalidPageToken => Status::invalid_argument(
            "page_token: not a token from this query; pass back next_page_token unchanged",
        ),
        EngineError::Invalid { field, reason } => Status::invalid_argument(format!("{field}: {reason}")),
        EngineError::Eval(reason) => Status::internal(format!("engine: evaluation failed: {reason}")),
    }
}

#[tonic::async_trait]
impl pb::authz_service_server::AuthzService for Authz {
    async fn check(
        &self,
        mut request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let admission = Admission::of(&mut request);
        let peer = self.decisions.as_ref().and_then(|_| peer_of(&request));
        let req = request.into_inner();
        let span = tracing::info_span!(
            "Check",
            org = %truncated(&req.org),
            resource = %truncated(&req.resource),
            action = %truncated(&req.action),
            explain = req.explain,
            decision_id = tracing::field::Empty,
        );
        traced(span, async {
            revision::wait_for(&self.engine, admission.as_ref(), req.min_revision, self.max_wait).await?;
            let answer = self.decide(&req, Source::Check, peer.as_deref())?;
            if crate::api::otel::enabled() {
                tracing::Span::current().record("decision_id", answer.decision_id.as_str());
            }
            self.count_usage(&req.org, &req.subject);
            Ok(Response::new(answer))
        })
        .await
    }

    async fn batch_check(
        &self,
        mut request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let admission = Admission::of(&mut request);
        let peer = self.decisions.as_ref().and_then(|_| peer_of(&request));
        let req = request.into_inner();
        let span = tracing::info_span!("BatchCheck", items = req.items.len());
        traced(span, async {
            if req.items.len() > MAX_BATCH_ITEMS {
                return Err(Status::invalid_argument(format!(
                    "items: {} items, at most {MAX_BATCH_ITEMS} per batch",
                    req.items.len()
                )));
            }
            let min_revision = req
                .items
                .iter()
                .map(|i| i.min_revision)
                .fold(req.min_revision, u64::max);
            let waited_at =
                revision::wait_for(&self.engine, admission.as_ref(), min_revision, self.max_wait).await?;

            // Valid, unexplained items are decided together: one policy snapshot, one
            // index read, and the engine overlaps their directory lookups. Items asking for
            // an explanation (rare) go one by one.
            let inputs: Vec<Result<CheckInput<'_>, Status>> = req.items.iter().map(check_input).collect();
            let batch: Vec<CheckInput<'_>> = inputs
                .iter()
                .zip(&req.items)
                .filter(|(input, item)| input.is_ok() && !item.explain)
                .filter_map(|(input, _)| input.as_ref().ok().copied())
                .collect();
            let started = Instant::now();
            let (decided, batch_revision) = self.engine.batch_outcomes(&batch, self.count_usage);
            let share = started.elapsed() / u32::try_from(batch.len().max(1)).unwrap_or(u32::MAX);
            let mut decided = decided.into_iter();
            let mut lowest: Option<u64> = None;
            // Counted here and added to the shared metrics once per batch.
            let (mut allows, mut denies, mut errors, mut invalid, mut timed) = (0u64, 0u64, 0u64, 0u64, 0u64);
            let results = inputs
                .into_iter()
                .zip(&req.items)
                .enumerate()
                .map(|(i, (input, item))| {
                    let answer = match input {
                        Err(status) => {
                            invalid += 1;
                            Err(status)
                        }
                        Ok(_) if item.explain => {
                            let answer = self.decide(item, Source::BatchCheck, peer.as_deref());
                            if answer.is_ok() {
                                self.count_usage(&item.org, &item.subject);
                            }
                            answer
                        }
                        Ok(input) => match decided.next() {
                            Some(Ok(outcome)) => {
                                let allowed = outcome.allowed;
                                if allowed {
                                    allows += 1;
                                } else {
                                    denies += 1;
                                }
                                timed += 1;
                                let id = DecisionId::next();
                                if let Some(log) = &self.decisions {
                                    let decision = Decision {
                                        allowed,
                                        revision: batch_revision,
                                        rule: outcome.rule,
                                    };
                                    log.record(Source::BatchCheck, id, &input, &decision, || Context {
                                        peer: peer.clone(),
                                        ..Context::default()
                                    });
                                }
                                Ok(pb::CheckResponse {
                                    allowed,
                                    revision: batch_revision,
                                    explanation: None,
                                    decision_id: id.to_string(),
                                })
                            }
                            Some(Err(e)) => {
                                let status = engine_status(e);
                                match outcome_of(&status) {
                                    Outcome::Invalid => invalid += 1,
                                    _ => errors += 1,
                                }
                                timed += 1;
                                Err(status)
                            }
                            None => Err(Status::internal("engine: batch answer missing")),
                        },
                    };
                    let result = match answer {
                        Ok(decision) => {
                            lowest = Some(lowest.map_or(decision.revision, |r| r.min(decision.revision)));
                            pb::batch_check_result::Result::Decision(decision)
                        }
                        Err(status) => pb::batch_check_result::Result::Error(pb::ItemError {
                            code: status.code() as i32,
                            message: format!("items[{i}].{}", status.message()),
                        }),
                    };
                    pb::BatchCheckResult { result: Some(result) }
                })
                .collect();
            self.metrics.record_batch(allows, denies, errors, share, timed);
            self.metrics.record_invalid(invalid);
            Ok(Response::new(pb::BatchCheckResponse {
                results,
                revision: lowest.unwrap_or(waited_at),
            }))
        })
        .await
    }

    async fn lookup_resources(
        &self,
        mut request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<pb::LookupResourcesResponse>, Status> {
        let admission = Admission::of(&mut request);
        let req = request.into_inner();
        let span = tracing::info_span!(
            "LookupResources",
            org = %truncated(&req.org),
            action = %truncated(&req.action),
        );
        traced(span, async {
            let subject = validate::subject("subject", &req.subject)?;
            let org = validate::required("org", &req.org)?;
            let action = validate::required("action", &req.action)?;
            let token = validate::bounded("page_token", &req.page_token)?;
            let size = validate::page_size(req.page_size);
            revision::wait_for(&self.engine, admission.as_ref(), req.min_revision, self.max_wait).await?;
            let page = self
                .engine
                .lookup_resources(subject, org, action, token, size)
                .map_err(engine_status)?;
            Ok(Response::new(pb::LookupResourcesResponse {
                resources: page.items,
                next_page_token: page.next_page_token,
                revision: page.revision,
            }))
        })
        .await
    }

    async fn lookup_subjects(
        &self,
        mut request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<pb::LookupSubjectsResponse>, Status> {
        let admission = Admission::of(&mut request);
        let req = request.into_inner();
        let span = tracing::info_span!(
            "LookupSubjects",
            org = %truncated(&req.org),
            resource = %truncated(&req.resource),
            action = %truncated(&req.action),
        );
        traced(span, async {
            let org = validate::required("org", &req.org)?;
            let resource = validate::resource("resource", &req.resource)?;
            let action = validate::required("action", &req.action)?;
            let token = validate::bounded("page_token", &req.page_token)?;
            let size = validate::page_size(req.page_size);
            revision::wait_for(&self.engine, admission.as_ref(), req.min_revision, self.max_wait).await?;
            let page = self
                .engine
                .lookup_subjects(org, resource, action, token, size)
                .map_err(engine_status)?;
            Ok(Response::new(pb::LookupSubjectsResponse {
                subjects: page.items,
                next_page_token: page.next_page_token,
                revision: page.revision,
            }))
        })
        .await
    }
}

/// Run an RPC body inside its span, logging its failure there too.
async fn traced<T>(span: tracing::Span, body: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    async { body.await.inspect_err(log_status) }
        .instrument(span)
        .await
}

/// At most the first 128 bytes of a field, cut on a char boundary, so an oversized
/// (and about to be rejected) field cannot flood the logs.
fn truncated(s: &str) -> &str {
    let mut end = s.len().min(128);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Client mistakes are routine (debug); server-side failures are worth a warning. The
/// status message is the `reason` field: a field named `message` would collide with the
/// event's own message in `--log-format json`.
fn log_status(status: &Status) {
    match status.code() {
        tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::Unknown => {
            tracing::warn!(code = ?status.code(), reason = status.message(), "request failed")
        }
        code => tracing::debug!(?code, reason = status.message(), "request rejected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pb::authz_service_server::AuthzService;
    use crate::engine::index::DirectoryIndex;

    fn authz() -> Authz {
        let policy = Arc::new(crate::policy::load_defaults().expect("default policies"));
        let mut a = Authz::new(Arc::new(Engine::new(policy, Arc::new(DirectoryIndex::new()))));
        a.max_wait = Duration::from_millis(10);
        a
    }

    fn item(subject: &str) -> pb::CheckRequest {
        pb::CheckRequest {
            subject: subject.into(),
            org: "acme".into(),
            resource: "apps/a".into(),
            action: "app:read".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn check_names_the_empty_field() {
        let mut req = item("alice");
        req.action.clear();
        let err = authz().check(Request::new(req)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("action:"), "{}", err.message());
    }

    #[tokio::test]
    async fn batch_keeps_order_and_isolates_bad_items() {
        let req = pb::BatchCheckRequest {
            items: vec![item("alice"), item(""), item("bob")],
            min_revision: 0,
        };
        let resp = authz().batch_check(Request::new(req)).await.unwrap().into_inner();
        assert_eq!(resp.results.len(), 3);
        match &resp.results[1].result {
            Some(pb::batch_check_result::Result::Error(e)) => {
                assert_eq!(e.code, tonic::Code::InvalidArgument as i32);
                assert!(e.message.starts_with("items[1].subject:"), "{}", e.message);
            }
            other => panic!("expected an item error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_batch_is_rejected() {
        let req = pb::BatchCheckRequest {
            items: vec![item("alice"); MAX_BATCH_ITEMS + 1],
            min_revision: 0,
        };
        let err = authz().batch_check(Request::new(req)).await.unwrap_err();
        assert!(err.message().starts_with("items:"), "{}", err.message());
    }

    #[tokio::test]
    async fn unreached_min_revision_is_failed_precondition() {
        let mut req = item("alice");
        req.min_revision = 5;
        let err = authz().check(Request::new(req)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().starts_with("min_revision:"), "{}", err.message());
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(100);
        assert!(truncated(&s).len() <= 128);
    }
}
