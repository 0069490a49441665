//! Prometheus metrics and probes on an optional, separate HTTP listener
//! (`serve --metrics tcp:127.0.0.1:9090`): `GET /metrics`, `GET /livez` (200 while the
//! process answers at all), `GET /readyz` and its older name `GET /healthz` (200 once
//! every gRPC listener serves, 503 before).
//!
//! Two kinds of numbers, kept apart on purpose:
//! - **Counted on the check path** ([`Metrics`]): decisions by result and the check
//!   latency histogram. Plain relaxed atomics — one `Instant::now()` pair and two
//!   `fetch_add`s per decision, no lock, no allocation, no formatting.
//! - **Read at scrape time** ([`Scrape`]): reload counters and times from
//!   [`PolicyState`], directory sizes from [`DirectoryStats`], the revision from the
//!   index, per-RPC calls by method and code with latency, in flight and refused
//!   (`api::rpc_metrics`, a tower layer), `process_*` (RSS, open and maximum fds, CPU seconds) from `/proc/self` and
//!   `getrusage`, `warden_build_info`. Nothing on the reload or write paths changes for
//!   metrics.
//!
//! The body is encoded by the `prometheus-client` crate in the Prometheus text exposition
//! format (0.0.4): each scrape builds a registry of three collectors (this module's
//! [`Scrape`], [`RpcMetrics`], the `process_*` reader) that read the atomics and states
//! above and encode them; nothing is copied into the crate's own metric types, so the
//! check path keeps its plain atomics. The listener is plain HTTP/1.1 with
//! no authentication, so the daemon refuses a non-loopback address unless
//! `--metrics-allow-remote` says so (see `cli::config`).

use crate::api::admin::DirectoryStats;
use crate::api::connections::{self, ConnectionLimits, Framing};
use crate::api::policy_state::{PolicyState, WatcherState};
use crate::api::rpc_metrics::RpcMetrics;
use crate::api::shutdown::Shutdown;
use crate::engine::Engine;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Upper bounds of the check latency buckets, in nanoseconds: 1 µs to 100 ms in
/// 1-2.5-5 steps. An in-process check takes well under a microsecond; anything past
/// 100 ms is an incident, and lands in `+Inf`.
pub const BUCKETS_NS: [u64; 16] = [
    1_000,
    2_500,
    5_000,
    10_000,
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
];

/// How a check came out, as counted in `warden_decisions_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    /// An engine evaluation failure: no decision was made, and the fault is not the
    /// caller's (`result="error"`).
    Error,
    /// The caller's request was malformed (an empty field, a reserved subject, a
    /// non-canonical resource): refused with INVALID_ARGUMENT (`result="invalid"`).
    Invalid,
}

/// Counters written on the check path and read by the scraper.
///
/// Every field is an independent relaxed atomic: a scrape may see a decision in
/// `decisions` a moment before it shows in the histogram, which Prometheus tolerates,
/// and in exchange a check never waits on a scrape or on another check.
#[derive(Debug, Default)]
pub struct Metrics {
    allow: AtomicU64,
    deny: AtomicU64,
    error: AtomicU64,
    invalid: AtomicU64,
    /// Non-cumulative per-bucket counts (index `BUCKETS_NS.len()` is `+Inf`); made
    /// cumulative when rendered, so an observation touches one bucket, not sixteen.
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
    /// Set once every gRPC listener serves; `/healthz` answers 200 only then.
    serving: AtomicBool,
    /// Decision-log records dropped because the writer fell behind (`api::logs`).
    decision_log_dropped: AtomicU64,
    /// Per-RPC counters, fed by [`crate::api::rpc_metrics::RpcMetricsLayer`].
    rpc: Arc<RpcMetrics>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Count one check and, when the engine ran, its latency.
    pub fn record(&self, outcome: Outcome, engine_time: Option<Duration>) {
        match outcome {
            Outcome::Allow => &self.allow,
            Outcome::Deny => &self.deny,
            Outcome::Error => &self.error,
            Outcome::Invalid => &self.invalid,
        }
        .fetch_add(1, Ordering::Relaxed);
        if let Some(t) = engine_time {
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let bucket = BUCKETS_NS.partition_point(|&upper| upper < ns);
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// Decisions made (allowed, denied or failed), how many of them were timed, and their
    /// summed engine time in nanoseconds: what `AdminService.GetDecisionCounters` returns for
    /// the console's charts (rates and mean latency are differences between two reads).
    pub fn decision_totals(&self) -> (u64, u64, u64) {
        let decisions = [&self.allow, &self.deny, &self.error]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let timed = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        (decisions, timed, self.sum_ns.load(Ordering::Relaxed))
    }

    /// Count a batch's decisions at once: one add per counter instead of one per item (the
    /// counters are shared by every worker thread, and an add on a contended cache line costs
    /// more than a decision). `timed` of them spent `share` each in the engine.
    pub fn record_batch(&self, allow: u64, deny: u64, error: u64, share: Duration, timed: u64) {
        for (counter, n) in [(&self.allow, allow), (&self.deny, deny), (&self.error, error)] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        if timed > 0 {
            let ns = u64::try_from(share.as_nanos()).unwrap_or(u64::MAX);
            let bucket = BUCKETS_NS.partition_point(|&upper| upper < ns);
            self.buckets[bucket].fetch_add(timed, Ordering::Relaxed);
            self.sum_ns.fetch_add(ns.saturating_mul(timed), Ordering::Relaxed);
        }
    }

    /// Count `n` refused batch items (caller mistakes) at once.
    pub fn record_invalid(&self, n: u64) {
        if n > 0 {
            self.invalid.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Relaxed);
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    pub fn count_decision_log_drop(&self) {
        self.decision_log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The per-RPC counters, for the server's metrics layer.
    pub fn rpc(&self) -> Arc<RpcMetrics> {
        self.rpc.clone()
    }

    pub fn decision_log_dropped(&self) -> u64 {
        self.decision_log_dropped.load(Ordering::Relaxed)
    }
}

/// Everything a scrape reads.
#[derive(Clone)]
pub struct Scrape {
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    pub policy: Arc<PolicyState>,
    pub stats: Option<Arc<dyn DirectoryStats>>,
    /// Cluster mode: the sidecar's position in the directory log.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Scrape {
    /// The whole `/metrics` body. Directory counts read the store, so call this off
    /// the async threads (the server does, with `spawn_blocking`).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        registry.register_collector(Box::new(self.metrics.rpc()));
        registry.register_collector(Box::new(Process));
        let mut out = String::with_capacity(8192);
        prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.metrics;
        {
            let mut family = enc.encode_descriptor(
                "warden_decisions",
                "Checks answered, by result (`invalid`: refused as the caller's mistake, INVALID_ARGUMENT; `error`: the engine failed).",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in [
                ("allow", &m.allow),
                ("deny", &m.deny),
                ("error", &m.error),
                ("invalid", &m.invalid),
            ] {
                family
                    .encode_family(&[("result", result)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&n.load(Ordering::Relaxed), None)?;
            }
        }
        let counts: Vec<u64> = m.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        histogram(
            enc.encode_descriptor(
                "warden_check_duration_seconds",
                "Time the engine spent on one check (excludes transport and min_revision waits).",
                None,
                MetricType::Histogram,
            )?,
            &BUCKETS_NS,
            &counts,
            m.sum_ns.load(Ordering::Relaxed),
        )?;

        let p = self.policy.snapshot();
        counter(
            &mut enc,
            "warden_policy_reloads_succeeded",
            "Policy reloads that swapped in a new policy (the startup load excluded).",
            p.reloads_succeeded,
        )?;
        counter(
            &mut enc,
            "warden_policy_reloads_failed",
            "Policy reloads refused; the previous policy kept serving.",
            p.reloads_failed,
        )?;
        gauge(
            &mut enc,
            "warden_policy_last_success_timestamp_seconds",
            "Unix time the serving policy was loaded.",
            p.loaded_at_unix_ms as f64 / 1e3,
        )?;
        gauge(
            &mut enc,
            "warden_policy_last_reload_failed",
            "1 while the latest reload failed (the previous policy keeps serving); see warden_policy_reload_error_info.",
            u64::from(p.last_error.is_some()),
        )?;
        if let Some(e) = &p.last_error {
            enc.encode_descriptor(
                "warden_policy_reload_error",
                "The latest reload's errors (`file:line: reason`, `; `-separated), while it failed.",
                None,
                MetricType::Info,
            )?
            .encode_info(&[("error", e.replace('\n', "; "))])?;
        }
        gauge(
            &mut enc,
            "warden_policy_watcher_up",
            "1 while the policy directory is watched; 0 when the watch is lost or cannot be set up (edits then load only through the periodic content check).",
            u64::from(matches!(p.watcher, WatcherState::Watching(_))),
        )?;
        counter(
            &mut enc,
            "warden_policy_watch_restarts",
            "Times the watch was re-established after the policy directory was replaced or its symlink swapped.",
            p.watch_restarts,
        )?;

        gauge(
            &mut enc,
            "warden_directory_revision",
            "Revision of the directory the decision index reflects.",
            self.engine.index().revision(),
        )?;
        if let Some(stats) = &self.stats {
            // A store failure is already logged by the store; the other series still serve.
            if let Ok(c) = stats.counts() {
                let mut family = enc.encode_descriptor(
                    "warden_directory_entries",
                    "Records in the directory store, by kind.",
                    None,
                    MetricType::Gauge,
                )?;
                for (kind, n) in [
                    ("users", c.users),
                    ("orgs", c.orgs),
                    ("memberships", c.memberships),
                    ("teams", c.teams),
                    ("apps", c.apps),
                ] {
                    family.encode_family(&[("kind", kind)])?.encode_gauge(&n)?;
                }
            }
            if let Some(writes) = stats.write_times() {
                let mut family = enc.encode_descriptor(
                    "warden_store_write_duration_seconds",
                    "One directory write transaction, begin to durable commit (or abort), by outcome (`committed`; `refused`: validation, authorization or an invariant said no; `error`: storage failed).",
                    None,
                    MetricType::Histogram,
                )?;
                for w in writes {
                    histogram(
                        family.encode_family(&[("outcome", w.outcome)])?,
                        &crate::store::WRITE_BUCKETS_NS,
                        &w.buckets,
                        w.sum_ns,
                    )?;
                }
            }
        }
        counter(
            &mut enc,
            "warden_decision_log_dropped",
            "Decision-log records dropped because the log writer fell behind.",
            m.decision_log_dropped(),
        )?;
        enc.encode_descriptor(
            "warden_build",
            "Always 1; the labels name the running build.",
            None,
            MetricType::Info,
        )?
        .encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        if let Some(c) = &self.cluster {
            for (name, help, value) in crate::cluster::metric_values(&c.status()) {
                gauge(&mut enc, name, help, value)?;
            }
            for (name, help, value) in c.telemetry_metrics() {
                gauge(&mut enc, name, help, value)?;
            }
        }
        Ok(())
    }
}

/// The standard `process_*` series for this process, read at scrape time. A number the
/// platform cannot give (no `/proc`) is left out rather than reported as 0.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // SAFETY: getrusage and getrlimit only write the structs they are given.
        let usage = unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            (libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0).then_some(u)
        };
        if let Some(u) = usage {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, f64, f64>(&(secs(u.ru_utime) + secs(u.ru_stime)), None)?;
        }
        // statm: size resident shared … in pages.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let resident = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok());
        if let (Some(pages), Ok(page)) = (resident, u64::try_from(page)) {
            gauge(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                pages.saturating_mul(page),
            )?;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut enc,
                "process_open_fds",
                "Open file descriptors (sockets, the store, log files).",
                dir.count() as u64,
            )?;
        }
        let limit = unsafe {
            let mut l: libc::rlimit = std::mem::zeroed();
            (libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0).then_some(l.rlim_cur)
        };
        if let Some(n) = limit {
            gauge(
                &mut enc,
                "process_max_fds",
                "The open file descriptor limit (RLIMIT_NOFILE).",
                n,
            )?;
        }
        Ok(())
    }
}

/// A counter named `name` (the encoder adds `_total`).
fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> Result<(), std::fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One histogram series from per-bucket (non-cumulative) counts over `bounds_ns`, the last
/// count being `+Inf`'s, and the sum in nanoseconds. The count is the buckets' total, so
/// `_count` and the `+Inf` bucket always agree even while observations land.
pub(crate) fn histogram(
    mut series: MetricEncoder,
    bounds_ns: &[u64],
    counts: &[u64],
    sum_ns: u64,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = bounds_ns
        .iter()
        .map(|&ns| ns as f64 / 1e9)
        .chain(std::iter::once(f64::INFINITY))
        .zip(counts.iter().copied())
        .collect();
    let count = counts.iter().sum();
    series.encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &buckets, None)
}

/// Serve `/metrics` and `/healthz` on `listener` until `shutdown` fires, under the same
/// connection cap, timeouts and accept backoff as every listener
/// ([`crate::api::connections`]). Connections in progress are dropped at shutdown: a
/// scrape is cheap to repeat.
pub async fn serve(listener: TcpListener, scrape: Scrape, limits: ConnectionLimits, shutdown: Shutdown) {
    use tokio_stream::StreamExt as _;
    let name = match listener.local_addr() {
        Ok(a) => format!("metrics:{a}"),
        Err(_) => "metrics".into(),
    };
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    let mut conns = connections::incoming(listener, limits, Framing::Opaque, name, shutdown.wait());
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            c = conns.next() => match c {
                Some(Ok(c)) => c,
                Some(Err(_)) => continue,
                None => break,
            },
        };
        let scrape = scrape.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| respond(req, scrape.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
    tracing::debug!("metrics listener stopped");
}

async fn respond(
    req: Request<Incoming>,
    scrape: Scrape,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        Ok(resp)
    };
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => match tokio::task::spawn_blocking(move || scrape.render()).await {
            Ok(Ok(body)) => reply(StatusCode::OK, prometheus_text::CONTENT_TYPE, body),
            Ok(Err(e)) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("encoding the metrics failed: {e}\n"),
            ),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("scrape failed: {e}\n"),
            ),
        },
        // Still 200 with a failed reload or a lost watch: the last good policy serves, and
        // a probe failing would take every replica out over one bad edit. The body names
        // the problem for whoever looks.
        "/livez" => reply(StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" | "/healthz" if scrape.metrics.is_serving() => {
            let mut problems = scrape.policy.problems();
            // Checks keep serving from the last applied state: still ready, named degraded.
            if let Some(c) = &scrape.cluster {
                problems.extend(crate::cluster::problems(&c.status()));
            }
            let mut body = String::from(if problems.is_empty() {
                "ok\n"
            } else {
                "ok, degraded\n"
            });
            for p in problems {
                body.push_str(&p);
                body.push('\n');
            }
            reply(StatusCode::OK, TEXT, body)
        }
        "/readyz" | "/healthz" => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "not serving\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "try /metrics, /livez or /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let m = Metrics::default();
        m.record(Outcome::Allow, Some(Duration::from_nanos(1_000)));
        m.record(Outcome::Deny, Some(Duration::from_micros(3)));
        m.record(Outcome::Deny, Some(Duration::from_secs(1)));
        m.record(Outcome::Error, None);
        assert_eq!(m.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(m.buckets[2].load(Ordering::Relaxed), 1);
        assert_eq!(m.buckets[BUCKETS_NS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(m.deny.load(Ordering::Relaxed), 2);
        assert_eq!(m.error.load(Ordering::Relaxed), 1);
    }
}
