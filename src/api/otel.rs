//! OpenTelemetry traces, optional (`serve --otlp-endpoint URL`, `WARDEN_OTLP_ENDPOINT`, or the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT`): a span per RPC (`api::rpc_metrics` opens it, named
//! by the method, with the gRPC code and, under it, the handler's span with the decision id of
//! a check), a span per write transaction (`store.write`, opened by the store), exported over
//! OTLP/gRPC.
//!
//! - **Joining the caller's trace**: the RPC span's parent is the W3C `traceparent` (and
//!   `tracestate`) of the call's metadata; the HTTP gateway and AuthZEN pass their request's
//!   headers on to the in-process call, and ext_authz takes the checked request's headers when
//!   Envoy's own call carries none.
//! - **Off the request path**: spans end into the SDK's batch processor (a bounded queue, its
//!   own thread); the OTLP client runs on a one-thread runtime of its own, so an export never
//!   takes a request worker. A full queue drops spans, never blocks a request.
//! - **Failures**: an export that fails is logged at most once a minute with the count since the
//!   last line; no request ever fails for it.
//! - **Off by default, no cost when off**: without an endpoint no layer is installed, no
//!   exporter exists, and the RPC layer skips span creation after one relaxed load
//!   ([`enabled`]).
//!
//! Must not decide or change anything: it only observes.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (an endpoint was configured and the exporter started).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why trace export could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("--otlp-endpoint {endpoint:?}: must be an http:// URL with a host (e.g. http://127.0.0.1:4317)")]
    BadEndpoint { endpoint: String },
    #[error(
        "--otlp-endpoint {endpoint:?}: https is not supported; export to a collector on loopback \
         or in the same pod over http:// and let it forward over TLS"
    )]
    Https { endpoint: String },
    #[error("starting the OTLP export runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("building the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// The running exporter. Dropping it flushes the spans still queued (bounded by the export
/// timeout) and stops the export thread and runtime.
pub struct Otel {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel").finish_non_exhaustive()
    }
}

/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

impl Otel {
    /// Start exporting to `endpoint` (an OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`).
    /// Returns the tracer for the `tracing` layer ([`layer`]).
    pub fn start(endpoint: &str) -> Result<(Otel, opentelemetry_sdk::trace::Tracer), OtelError> {
        let uri: http::Uri = endpoint.parse().map_err(|_| OtelError::BadEndpoint {
            endpoint: endpoint.to_string(),
        })?;
        if uri.scheme_str() == Some("https") {
            return Err(OtelError::Https {
                endpoint: endpoint.to_string(),
            });
        }
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(OtelError::BadEndpoint {
                endpoint: endpoint.to_string(),
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(OtelError::Runtime)?;
        // The client's connection task lives on that runtime: build it inside.
        let exporter = {
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| OtelError::Exporter {
                    endpoint: endpoint.to_string(),
                    reason: e.to_string(),
                })?
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("warden")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Quiet::new(exporter, endpoint))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("warden");
        ENABLED.store(true, Ordering::Relaxed);
        Ok((
            Otel {
                provider,
                runtime: Some(runtime),
            },
            tracer,
        ))
    }
}

impl Drop for Otel {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "OTLP exporter shutdown");
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The `tracing` layer that turns Warden's spans (targets `warden…`; events stay in the log)
/// into OpenTelemetry spans for `tracer`.
pub fn layer<S>(tracer: opentelemetry_sdk::trace::Tracer) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use tracing_subscriber::Layer as _;
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && m.target().starts_with("warden")
        }))
}

/// Wraps the OTLP exporter so that failures are logged sparingly: the first at once, then at
/// most one line a minute with the number of failed batches since the last line.
#[derive(Debug)]
struct Quiet<E> {
    inner: E,
    endpoint: String,
    failed: AtomicU64,
    last_logged: parking_lot::Mutex<Option<Instant>>,
}

const LOG_EVERY: Duration = Duration::from_secs(60);

impl<E> Quiet<E> {
    fn new(inner: E, endpoint: &str) -> Self {
        Quiet {
            inner,
            endpoint: endpoint.to_string(),
            failed: AtomicU64::new(0),
            last_logged: parking_lot::Mutex::new(None),
        }
    }

    fn note_failure(&self, error: &dyn std::fmt::Display, spans: usize) {
        let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_logged.lock();
        if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            self.failed.store(0, Ordering::Relaxed);
            tracing::warn!(
                endpoint = %self.endpoint,
                error = %error,
                spans,
                failed_batches = failed,
                "OTLP trace export failed; spans dropped (logged at most once a minute)"
            );
        }
    }
}

impl<E: SpanExporter> SpanExporter for Quiet<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            self.note_failure(e, spans);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Reads W3C trace context from HTTP headers or gRPC metadata (same map type).
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Reads W3C trace context from a plain string map (ext_authz's checked request headers,
/// whose keys Envoy lower-cases).
struct Map<'a>(&'a std::collections::HashMap<String, String>);

impl Extractor for Map<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The header names of W3C trace context, which the HTTP gateway passes on.
pub const PROPAGATED_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The span of one RPC, its parent taken from `headers`' `traceparent` when there is a valid
/// one. Call only when [`enabled`].
pub fn rpc_span(path: &str, headers: &http::HeaderMap) -> tracing::Span {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        target: "warden::rpc",
        "rpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    join(&span, parent);
    span
}

/// Record how an RPC ended on its span.
pub fn rpc_end(span: &tracing::Span, code: usize) {
    span.record("rpc.grpc.status_code", code as u64);
    if code != 0 {
        span.record("otel.status_code", "ERROR");
    }
}

/// Parent `span` on the caller's trace in `headers` (a string map), unless the span already
/// has a remote parent or tracing is off. For ext_authz: Envoy's checked request carries the
/// application's `traceparent` even when Envoy's own call does not.
pub fn join_from_map(span: &tracing::Span, headers: &std::collections::HashMap<String, String>) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    use opentelemetry::trace::TraceContextExt as _;
    let parent = TraceContextPropagator::new().extract(&Map(headers));
    if parent.span().span_context().is_valid() {
        join(span, parent);
    }
}

fn join(span: &tracing::Span, parent: opentelemetry::Context) {
    use opentelemetry::trace::TraceContextExt as _;
    if parent.span().span_context().is_valid() {
        // Fails only when the span is already started or disabled; either way it stays where it is.
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_must_be_an_http_url() {
        for bad in ["127.0.0.1:4317", "unix:/x", "", "http://"] {
            assert!(
                matches!(Otel::start(bad), Err(OtelError::BadEndpoint { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Otel::start("https://collector:4317"),
            Err(OtelError::Https { .. })
        ));
    }
}
