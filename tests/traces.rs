//! `serve --otlp-endpoint`: OpenTelemetry traces against a real OTLP/gRPC receiver (a tonic
//! `TraceService` in this test that records what it is sent). A check over gRPC and one over
//! the HTTP gateway join the caller's W3C trace; a directory write has its transaction span;
//! an Envoy ext_authz check joins the checked request's trace; `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is honoured; without an endpoint nothing is exported.

use crate::common;

use common::directory::clients;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use warden::api::pb;

/// What the receiver was sent: every span, and the number of Export calls.
#[derive(Clone, Default)]
struct Recorded {
    spans: Arc<Mutex<Vec<Span>>>,
    exports: Arc<AtomicUsize>,
    /// Answer every export with INVALID_ARGUMENT (a collector that rejects what it gets).
    refuse: bool,
}

#[tonic::async_trait]
impl TraceService for Recorded {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.exports.fetch_add(1, Ordering::SeqCst);
        if self.refuse {
            return Err(tonic::Status::invalid_argument("refused by the test"));
        }
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on a loopback port, on a runtime of its own (the test's calls may
/// block), stopped when dropped.
struct Receiver {
    addr: SocketAddr,
    recorded: Recorded,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        Self::start_with(Recorded::default())
    }

    fn start_with(recorded: Recorded) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(recorded.clone());
        runtime.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Receiver {
            addr,
            recorded,
            _runtime: runtime,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Span> {
        self.recorded.spans.lock().unwrap().clone()
    }

    fn exports(&self) -> usize {
        self.recorded.exports.load(Ordering::SeqCst)
    }

    /// Wait until a recorded span satisfies `want`, and return it.
    fn wait_for(&self, what: &str, want: impl Fn(&Span) -> bool) -> Span {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.spans().into_iter().find(|s| want(s)) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no span {what}; received: {:#?}",
                self.spans()
                    .iter()
                    .map(|s| (&s.name, hex::encode(&s.trace_id)))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// A span attribute as text (strings as they are, integers in decimal).
fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Any::StringValue(s) => s.clone(),
            Any::IntValue(i) => i.to_string(),
            Any::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
}

fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

/// A workdir whose daemon hands spans to the exporter every 100 ms instead of every 5 s.
fn quick_batches() -> Workdir {
    let mut work = Workdir::new();
    work.env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
    work
}

#[test]
fn checks_over_grpc_and_http_join_the_callers_trace_and_writes_have_a_transaction_span() {
    let receiver = Receiver::start();
    let http = free_port();
    let mapping = crate::envoy_ext_authz::shipped_mapping();
    let daemon = quick_batches().start_with(&[
        "--demo",
        "--http",
        &format!("tcp:{http}"),
        "--ext-authz",
        mapping.to_str().unwrap(),
        "--otlp-endpoint",
        &receiver.endpoint(),
    ]);
    assert!(
        daemon.logs().contains("exporting traces over OTLP"),
        "{}",
        daemon.logs()
    );
    let (grpc_trace, grpc_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let (http_trace, http_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let (write_trace, write_parent) = ("a3ce929d0e0e47364bf92f3577b34da6", "53995c3f42cd8ad8");
    let (envoy_trace, envoy_parent) = ("d0e0e47364bf92f3577b34da6a3ce929", "2cd8ad853995c3f4");

    let (grpc_decision, write_revision) = runtime().block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        let mut check = tonic::Request::new(pb::CheckRequest {
            subject: "alice".into(),
            org: "acme".into(),
            resource: "apps/web".into(),
            action: "app:write".into(),
            ..Default::default()
        });
        check.metadata_mut().insert(
            "traceparent",
            traceparent(grpc_trace, grpc_parent).parse().unwrap(),
        );
        let answer = c.authz.check(check).await.expect("Check").into_inner();
        assert!(answer.allowed);
        let mut write = tonic::Request::new(pb::CreateTeamRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            team_id: "traced".into(),
            name: "Traced".into(),
        });
        write.metadata_mut().insert(
            "traceparent",
            traceparent(write_trace, write_parent).parse().unwrap(),
        );
        let revision = c
            .team
            .create_team(write)
            .await
            .expect("CreateTeam")
            .into_inner()
            .revision;
        (answer.decision_id, revision)
    });

    // Envoy's call carries no trace of its own here; the checked request's header does.
    let app_traceparent = traceparent(envoy_trace, envoy_parent);
    let app_headers = [("traceparent", app_traceparent.as_str())];
    let mut checked = crate::envoy_ext_authz::Http::new("PUT", "/orgs/acme/apps/web", Some("alice"));
    checked.headers = &app_headers;
    let envoy = runtime().block_on(crate::envoy_ext_authz::ask(&daemon.work.unix_target(), &checked));
    assert!(envoy.headers.contains_key("x-warden-decision-id"), "{envoy:?}");

    // The same check over the HTTP/JSON gateway, with the trace in an HTTP header.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(&format!("http://{http}/warden.v1.AuthzService/Check"))
        .header("content-type", "application/json")
        .header("traceparent", &traceparent(http_trace, http_parent))
        .send(r#"{"subject":"bob","org":"acme","resource":"apps/web","action":"app:read"}"#)
        .expect("POST Check");
    let text = resp.body_mut().read_to_string().unwrap();
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["allowed"], true, "{text}");
    let http_decision = reply["decision_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no decision_id: {text}"))
        .to_string();

    for (via, trace, parent, decision) in [
        ("gRPC", grpc_trace, grpc_parent, &grpc_decision),
        ("HTTP", http_trace, http_parent, &http_decision),
    ] {
        // The RPC's span is the caller's span's child, in the caller's trace.
        let rpc = receiver.wait_for(&format!("Check over {via} in trace {trace}"), |s| {
            s.name == "warden.v1.AuthzService/Check" && hex::encode(&s.trace_id) == trace
        });
        assert_eq!(hex::encode(&rpc.parent_span_id), parent, "{via}: {rpc:?}");
        assert_eq!(attr(&rpc, "rpc.system").as_deref(), Some("grpc"), "{rpc:?}");
        assert_eq!(attr(&rpc, "rpc.method").as_deref(), Some("Check"), "{rpc:?}");
        assert_eq!(
            attr(&rpc, "rpc.grpc.status_code").as_deref(),
            Some("0"),
            "{rpc:?}"
        );
        // Under it, the handler's span names the decision the caller got back.
        let handler = receiver.wait_for(&format!("the Check handler over {via}"), |s| {
            s.name == "Check" && s.parent_span_id == rpc.span_id
        });
        assert_eq!(handler.trace_id, rpc.trace_id);
        assert_eq!(
            attr(&handler, "decision_id").as_ref(),
            Some(decision),
            "{handler:?}"
        );
    }

    // The write: its RPC span in the caller's trace, and the transaction's span in it too.
    let rpc = receiver.wait_for("CreateTeam", |s| {
        s.name == "warden.v1.TeamService/CreateTeam" && hex::encode(&s.trace_id) == write_trace
    });
    assert_eq!(hex::encode(&rpc.parent_span_id), write_parent);
    let txn = receiver.wait_for("the write transaction", |s| {
        s.name == "store.write" && hex::encode(&s.trace_id) == write_trace
    });
    assert_eq!(attr(&txn, "outcome").as_deref(), Some("committed"), "{txn:?}");
    assert_eq!(
        attr(&txn, "revision"),
        Some(write_revision.to_string()),
        "{txn:?}"
    );
    let ext = receiver.wait_for("the ext_authz check in the application's trace", |s| {
        s.name == "ext_authz.Check" && hex::encode(&s.trace_id) == envoy_trace
    });
    assert_eq!(hex::encode(&ext.parent_span_id), envoy_parent, "{ext:?}");
    assert_eq!(attr(&ext, "method").as_deref(), Some("PUT"), "{ext:?}");

    // Every span the daemon sent came from the tracer this build set up.
    assert!(
        receiver
            .spans()
            .iter()
            .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8),
        "malformed ids"
    );
}

#[test]
fn the_standard_endpoint_variable_turns_export_on_and_nothing_is_exported_without_one() {
    let receiver = Receiver::start();
    let mut work = quick_batches();
    work.env
        .push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint()));
    let mut daemon = work.start_with(&["--demo"]);
    let trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let check = |target: String| {
        runtime().block_on(async move {
            let mut c = clients(&target).await;
            let mut req = tonic::Request::new(pb::CheckRequest {
                subject: "alice".into(),
                org: "acme".into(),
                resource: "apps/web".into(),
                action: "app:read".into(),
                ..Default::default()
            });
            req.metadata_mut().insert(
                "traceparent",
                traceparent(trace, "00f067aa0ba902b7").parse().unwrap(),
            );
            assert!(c.authz.check(req).await.expect("Check").into_inner().allowed);
        })
    };
    check(daemon.work.unix_target());
    receiver.wait_for("the check's span", |s| hex::encode(&s.trace_id) == trace);
    // Stopping flushes whatever is queued; after that this receiver hears from nobody.
    daemon.stop();
    let before = (receiver.exports(), receiver.spans().len());

    let mut plain = Workdir::new();
    plain
        .env
        .push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), String::new()));
    let mut daemon = plain.start_with(&["--demo"]);
    check(daemon.work.unix_target());
    daemon.stop();
    assert!(!daemon.logs().contains("exporting traces"), "{}", daemon.logs());
    assert_eq!((receiver.exports(), receiver.spans().len()), before);
}

#[test]
fn a_failing_collector_is_logged_once_a_minute_and_never_fails_a_check() {
    let receiver = Receiver::start_with(Recorded {
        refuse: true,
        ..Recorded::default()
    });
    let daemon = quick_batches().start_with(&["--demo", "--otlp-endpoint", &receiver.endpoint()]);
    runtime().block_on(async {
        let client = warden::client::Client::connect(&daemon.work.unix_target())
            .await
            .expect("connect");
        // Keep spans coming until the collector has refused three batches.
        let deadline = Instant::now() + PATIENCE;
        while receiver.exports() < 3 {
            assert!(
                client.can("alice", "acme", "apps/web", "app:read").await.unwrap(),
                "a check failed while export failed"
            );
            assert!(Instant::now() < deadline, "only {} exports", receiver.exports());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let logs = daemon.logs();
    let lines = logs.matches("OTLP trace export failed").count();
    assert_eq!(lines, 1, "three failed batches, one line:\n{logs}");
    assert!(
        logs.contains("InvalidArgument"),
        "the line names the failure: {logs}"
    );
}
