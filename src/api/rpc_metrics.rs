//! Per-RPC metrics as a tower layer in front of every gRPC route (both listeners and the
//! HTTP/JSON gateway's in-process calls): calls by method and gRPC code with a latency
//! histogram, calls in flight, and calls refused at capacity. No handler counts anything.
//!
//! The code is the response's `grpc-status` header when the call ended without a body
//! (tonic answers every error that way, including the auth and in-flight layers'); a
//! response with a body is counted as `OK` when its headers arrive, which for the unary
//! calls Warden serves is when the answer is complete. Latency is from the request to the
//! response headers.
//!
//! Counting costs a shared read lock and one hash lookup by method path, then relaxed
//! atomics; a method seen for the first time takes the write lock once. Method paths come
//! from callers, so at most [`MAX_METHODS`] distinct ones are kept and any further path
//! is counted as `other` (a client probing random paths cannot grow the registry).
//!
//! With trace export on (`api::otel`), each call also runs in its own span (method, code, the
//! caller's `traceparent` as parent); with it off that costs one relaxed load.
//!
//! Must not decide or change anything: it only observes requests and responses.

use crate::api::metrics::histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::http;
use tracing::Instrument as _;

/// Distinct method paths kept; beyond this they count as `other`.
pub const MAX_METHODS: usize = 128;

/// gRPC codes 0 (`OK`) to 16 (`UNAUTHENTICATED`).
const CODES: usize = 17;

/// Latency bucket bounds in nanoseconds: 25 µs to 10 s (a call includes decoding, any
/// `min_revision` wait and, for writes, the durable commit).
pub const RPC_BUCKETS_NS: [u64; 16] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

#[derive(Default)]
struct CodeSeries {
    /// Non-cumulative; index `RPC_BUCKETS_NS.len()` is `+Inf`.
    buckets: [AtomicU64; RPC_BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
}

#[derive(Default)]
struct MethodSeries {
    by_code: [CodeSeries; CODES],
}

/// The counters, shared by the layer and the scraper.
#[derive(Default)]
pub struct RpcMetrics {
    in_flight: AtomicI64,
    rejected: AtomicU64,
    methods: parking_lot::RwLock<HashMap<Box<str>, Arc<MethodSeries>>>,
}

impl std::fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcMetrics")
            .field("in_flight", &self.in_flight)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl RpcMetrics {
    fn series(&self, method: &str) -> Arc<MethodSeries> {
        {
            let map = self.methods.read();
            if let Some(s) = map.get(method) {
                return s.clone();
            }
            if map.len() >= MAX_METHODS
                && let Some(s) = map.get("other")
            {
                return s.clone();
            }
        }
        let mut map = self.methods.write();
        let key = if map.len() >= MAX_METHODS && !map.contains_key(method) {
            "other"
        } else {
            method
        };
        map.entry(key.into()).or_default().clone()
    }

    /// Count one finished call.
    pub fn observe(&self, method: &str, code: usize, elapsed_ns: u64) {
        let code = code.min(CODES - 1);
        if code == tonic::Code::ResourceExhausted as usize {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        let series = self.series(method);
        let s = &series.by_code[code];
        let bucket = RPC_BUCKETS_NS.partition_point(|&upper| upper < elapsed_ns);
        s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        s.sum_ns.fetch_add(elapsed_ns, Ordering::Relaxed);
    }
}

impl Collector for RpcMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        enc.encode_descriptor(
            "warden_grpc_in_flight",
            "gRPC calls being served now.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&self.in_flight.load(Ordering::Relaxed).max(0))?;
        enc.encode_descriptor(
            "warden_grpc_rejected",
            "gRPC calls refused with RESOURCE_EXHAUSTED (in-flight or min_revision waiter bound).",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, u64, u64>(&self.rejected.load(Ordering::Relaxed), None)?;
        let mut methods: Vec<(String, Arc<MethodSeries>)> = self
            .methods
            .read()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        methods.sort_by(|a, b| a.0.cmp(&b.0));
        // One read of each series' buckets serves both families, so a call's count and its
        // histogram agree within a scrape.
        let mut seen = Vec::new();
        for (method, series) in &methods {
            for (code, s) in series.by_code.iter().enumerate() {
                let counts: Vec<u64> = s.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
                if counts.iter().sum::<u64>() > 0 {
                    seen.push((
                        method.as_str(),
                        code_name(code),
                        counts,
                        s.sum_ns.load(Ordering::Relaxed),
                    ));
                }
            }
        }
        {
            let mut family = enc.encode_descriptor(
                "warden_grpc_requests",
                "gRPC calls by method and code.",
                None,
                MetricType::Counter,
            )?;
            for (method, code, counts, _) in &seen {
                family
                    .encode_family(&[("method", *method), ("code", *code)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&counts.iter().sum(), None)?;
            }
        }
        let mut family = enc.encode_descriptor(
            "warden_grpc_request_duration_seconds",
            "gRPC call latency, request to response headers, by method and code.",
            None,
            MetricType::Histogram,
        )?;
        for (method, code, counts, sum_ns) in &seen {
            histogram(
                family.encode_family(&[("method", *method), ("code", *code)])?,
                &RPC_BUCKETS_NS,
                counts,
                *sum_ns,
            )?;
        }
        Ok(())
    }
}

/// The gRPC code's canonical name, as grpc-go and Envoy label it.
fn code_name(code: usize) -> &'static str {
    const NAMES: [&str; CODES] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES[code.min(CODES - 1)]
}

/// The layer; put it outermost so refusals by the auth and in-flight layers are counted.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    metrics: Arc<RpcMetrics>,
}

impl RpcMetricsLayer {
    pub fn new(metrics: Arc<RpcMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Takes the in-flight count back when the call ends, even if it is cancelled.
struct InFlightGuard(Arc<RpcMetrics>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method: Box<str> = req.uri().path().into();
        self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlightGuard(self.metrics.clone());
        if crate::api::otel::enabled() {
            // Tracing on: the call runs in its span (the caller's trace when it sent one).
            let span = crate::api::otel::rpc_span(&method, req.headers());
            let fut = span.in_scope(|| self.inner.call(req));
            return Box::pin(
                async move {
                    let out = fut.await;
                    let code = code_of(&out);
                    crate::api::otel::rpc_end(&tracing::Span::current(), code);
                    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    guard.0.observe(&method, code, elapsed);
                    drop(guard);
                    out
                }
                .instrument(span),
            );
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            let code = code_of(&out);
            let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            guard.0.observe(&method, code, elapsed);
            drop(guard);
            out
        })
    }
}

/// The gRPC code of a call's outcome: `grpc-status` of a response without a body, else OK.
fn code_of<R, E>(out: &Result<http::Response<R>, E>) -> usize {
    match out {
        Ok(resp) => resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(0),
        Err(_) => tonic::Code::Unknown as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_beyond_the_cap_count_as_other() {
        let m = Arc::new(RpcMetrics::default());
        for i in 0..MAX_METHODS + 10 {
            m.observe(&format!("/x.Y/M{i}"), 0, 1_000);
        }
        m.observe("/x.Y/M0", 8, 1_000);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(m.clone()));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("warden_grpc_requests_total{method=\"other\",code=\"OK\"} 10"),
            "{out}"
        );
        assert!(out.contains("warden_grpc_requests_total{method=\"/x.Y/M0\",code=\"RESOURCE_EXHAUSTED\"} 1"));
        assert!(out.contains("warden_grpc_rejected_total 1"));
        assert_eq!(m.methods.read().len(), MAX_METHODS + 1);
    }
}
