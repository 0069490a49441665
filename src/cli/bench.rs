//! `warden bench`: a closed-loop load generator for a running daemon, on loopback only.
//!
//! `--concurrency` clients each send one request, wait for the answer and send the next, for a
//! fixed time or a fixed number of requests, against a directory written by `gen-directory`
//! (the request mix is the engine bench's: 80% members of the org, 10% members of another
//! org, 10% strangers; app actions on apps and their sub-resources, org actions on `org`).
//! Requests are drawn once into a pool before the run, so the client spends its time on gRPC,
//! not on formatting ids. Each call's latency goes into an HDR histogram.
//!
//! Clients share `--connections` HTTP/2 connections round-robin (default 1, as Cerbos's
//! `grpcbench` does, so the two are driven the same way); `--connections` equal to
//! `--concurrency` gives every client its own connection, as separate processes would have.
//!
//! Bounded by construction: only `unix:` or loopback TCP targets, at most [`MAX_SECS`] of
//! load and [`MAX_REQUESTS`] requests.
//!
//! `--writes` runs the write load of `bench_writes` instead (same bounds).

use crate::api::client;
use crate::api::pb;
use crate::api::pb::authz_service_client::AuthzServiceClient;
use crate::api::validate::MAX_BATCH_ITEMS;
use crate::cli::connect::{ConnectArg, unreachable};
use crate::cli::gen_directory::{Shape, app, org, user};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Longest load phase (warm-up and measurement each).
pub(crate) const MAX_SECS: f64 = 600.0;
/// Most requests one run may send.
pub(crate) const MAX_REQUESTS: u64 = 100_000_000;
const MAX_CONCURRENCY: usize = 1024;
/// Distinct requests drawn before the run; clients cycle through them.
const POOL: usize = 4096;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The daemon, on unix:PATH or tcp:IP:PORT on a loopback address.
    #[command(flatten)]
    pub connect: ConnectArg,
    /// Clients, each with one request in flight.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,
    /// HTTP/2 connections the clients share round-robin (1..=concurrency).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Measure for this many seconds (default 10 when --requests is not given).
    #[arg(long, conflicts_with = "requests")]
    pub duration: Option<f64>,
    /// Measure exactly this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seconds of load before measuring, not counted.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// `1` for single Check calls; `N` for BatchCheck of N independent draws; `RxA` for
    /// BatchCheck of one subject on R apps of its org × A app actions (read, write, delete),
    /// the shape of Cerbos's 10×3 payload.
    #[arg(long, default_value = "1")]
    pub batch: String,
    /// Sizes of the directory the daemon serves (as given to gen-directory).
    #[command(flatten)]
    pub shape: Shape,
    /// Seed of the request draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The daemon's pid, to report its resident memory (VmRSS) before and after.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write an SVG latency-by-percentile plot here.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write load instead of checks: closed-loop AddMember writers (see `bench_writes`).
    #[arg(long)]
    pub writes: bool,
    /// With --writes: a daemon to write to (repeat it for the sidecars of one cluster; the
    /// writers are spread over them round-robin). Without it, --connect.
    #[arg(long = "target", value_name = "ADDR", requires = "writes")]
    pub targets: Vec<String>,
    /// With --writes and several targets: follow each one's WatchChanges and report the
    /// replication lag (request sent → revision seen on each other sidecar).
    #[arg(long, requires = "writes")]
    pub watch: bool,
}

/// What one call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    Single,
    /// N independent draws in one BatchCheck.
    Batch(usize),
    /// One subject, R apps × A actions.
    Grid(usize, usize),
}

impl Payload {
    fn parse(s: &str) -> anyhow::Result<Payload> {
        let n = |t: &str| t.trim().parse::<usize>().ok().filter(|&n| n >= 1);
        let p = match s.split_once(['x', 'X']) {
            Some((r, a)) => match (n(r), n(a)) {
                (Some(r), Some(a)) if a <= APP_ACTIONS.len() => Payload::Grid(r, a),
                _ => bail!("--batch {s:?}: RxA needs R ≥ 1 and 1 ≤ A ≤ {}", APP_ACTIONS.len()),
            },
            None => match n(s) {
                Some(1) => Payload::Single,
                Some(b) => Payload::Batch(b),
                None => bail!("--batch {s:?}: expected a count ≥ 1 or RxA"),
            },
        };
        if p.items() > MAX_BATCH_ITEMS {
            bail!("--batch {s:?}: a BatchCheck takes at most {MAX_BATCH_ITEMS} items");
        }
        Ok(p)
    }

    fn items(self) -> usize {
        match self {
            Payload::Single => 1,
            Payload::Batch(n) => n,
            Payload::Grid(r, a) => r * a,
        }
    }

    fn label(self) -> String {
        match self {
            Payload::Single => "check".into(),
            Payload::Batch(n) => format!("batch {n}"),
            Payload::Grid(r, a) => format!("batch {r}x{a}"),
        }
    }
}

/// Actions of the engine bench's mix.
const ACTIONS: &[&str] = &[
    "app:read",
    "app:write",
    "app:delete",
    "org:read",
    "org:update",
    "member:invite",
    "team:manage",
    "billing:manage",
];
/// Actions of an `RxA` grid, as Cerbos's read / write / delete.
const APP_ACTIONS: &[&str] = &["app:read", "app:write", "app:delete"];

/// A small deterministic PRNG (xorshift64), so a seed gives the same requests every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n.max(1) as u64) as usize
    }
}

/// A subject for org `o`: usually a member, sometimes a member of the next org or a stranger.
fn subject(s: &Shape, rng: &mut Rng, o: usize) -> String {
    match rng.below(10) {
        0 => user((o + 1) % s.orgs, rng.below(s.members)),
        1 => format!("stranger{}", rng.below(1000)),
        _ => user(o, rng.below(s.members)),
    }
}

fn draw_check(s: &Shape, rng: &mut Rng) -> pb::CheckRequest {
    let o = rng.below(s.orgs);
    let subject = subject(s, rng, o);
    let action = ACTIONS[rng.below(ACTIONS.len())];
    let resource = if action.starts_with("app:") {
        let a = app(o, rng.below(s.apps));
        match rng.below(3) {
            0 => format!("apps/{a}"),
            1 => format!("apps/{a}/models/m{}", rng.below(100)),
            _ => format!("apps/{a}/workflows/w{}", rng.below(100)),
        }
    } else {
        "org".to_string()
    };
    pb::CheckRequest {
        subject,
        org: org(o),
        resource,
        action: action.to_string(),
        ..Default::default()
    }
}

fn draw_grid(s: &Shape, rng: &mut Rng, apps: usize, actions: usize) -> Vec<pb::CheckRequest> {
    let o = rng.below(s.orgs);
    let subject = subject(s, rng, o);
    let first = rng.below(s.apps);
    let mut items = Vec::with_capacity(apps * actions);
    for r in 0..apps {
        let resource = format!("apps/{}", app(o, (first + r) % s.apps.max(1)));
        for action in &APP_ACTIONS[..actions] {
            items.push(pb::CheckRequest {
                subject: subject.clone(),
                org: org(o),
                resource: resource.clone(),
                action: action.to_string(),
                ..Default::default()
            });
        }
    }
    items
}

#[derive(Clone)]
enum Call {
    Check(pb::CheckRequest),
    Batch(pb::BatchCheckRequest),
}

fn draw_pool(s: &Shape, payload: Payload, seed: u64) -> Vec<Call> {
    let mut rng = Rng::new(seed);
    (0..POOL)
        .map(|_| match payload {
            Payload::Single => Call::Check(draw_check(s, &mut rng)),
            Payload::Batch(n) => Call::Batch(pb::BatchCheckRequest {
                items: (0..n).map(|_| draw_check(s, &mut rng)).collect(),
                min_revision: 0,
            }),
            Payload::Grid(r, a) => Call::Batch(pb::BatchCheckRequest {
                items: draw_grid(s, &mut rng, r, a),
                min_revision: 0,
            }),
        })
        .collect()
}

/// Refuse anything but a Unix socket or a loopback TCP address: this tool generates load and
/// must not be pointed at someone else's server.
pub(crate) fn check_loopback(target: &str) -> anyhow::Result<&'static str> {
    if target.strip_prefix("unix:").is_some_and(|p| !p.is_empty()) {
        return Ok("uds");
    }
    if let Some(addr) = target.strip_prefix("tcp:") {
        let loopback = match addr.parse::<SocketAddr>() {
            Ok(sa) => sa.ip().is_loopback(),
            Err(_) => addr
                .strip_prefix("localhost:")
                .is_some_and(|p| p.parse::<u16>().is_ok()),
        };
        if loopback {
            return Ok("tcp");
        }
        bail!(
            "{target}: warden bench only drives loopback targets (127.0.0.0/8, ::1, localhost) or unix:PATH"
        );
    }
    bail!("{target:?}: expected unix:PATH or tcp:IP:PORT");
}

/// When a load phase stops.
#[derive(Clone, Copy)]
struct Stop {
    deadline: Instant,
    /// Stop once this many calls were started (None: time only).
    requests: Option<u64>,
}

/// What one client saw in one phase.
struct Tally {
    latency_ns: Histogram<u64>,
    requests: u64,
    decisions: u64,
    allowed: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // 1 ns .. 60 s at 3 significant digits.
            latency_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"),
            requests: 0,
            decisions: 0,
            allowed: 0,
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency_ns.add(&other.latency_ns).expect("same bounds");
        self.requests += other.requests;
        self.decisions += other.decisions;
        self.allowed += other.allowed;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

async fn client_loop(
    channel: Channel,
    pool: Arc<Vec<Call>>,
    start: usize,
    stop: Stop,
    issued: Arc<AtomicU64>,
) -> Tally {
    let mut authz = AuthzServiceClient::new(channel);
    let mut tally = Tally::new();
    let mut next = start;
    loop {
        if Instant::now() >= stop.deadline {
            break;
        }
        if let Some(max) = stop.requests
            && issued.fetch_add(1, Ordering::Relaxed) >= max
        {
            break;
        }
        let call = pool[next % pool.len()].clone();
        next += 1;
        let t0 = Instant::now();
        let outcome = match call {
            Call::Check(req) => authz.check(req).await.map(|r| {
                let allowed = r.into_inner().allowed;
                (1, u64::from(allowed), Vec::new())
            }),
            Call::Batch(req) => authz.batch_check(req).await.map(|r| {
                let (mut ok, mut allowed, mut item_errors) = (0, 0, Vec::new());
                for result in r.into_inner().results {
                    match result.result {
                        Some(pb::batch_check_result::Result::Decision(d)) => {
                            ok += 1;
                            allowed += u64::from(d.allowed);
                        }
                        Some(pb::batch_check_result::Result::Error(e)) => {
                            item_errors.push(format!("item {:?}", tonic::Code::from_i32(e.code)));
                        }
                        None => item_errors.push("item without result".to_string()),
                    }
                }
                (ok, allowed, item_errors)
            }),
        };
        let elapsed = t0.elapsed().as_nanos().clamp(1, 60_000_000_000) as u64;
        tally.latency_ns.saturating_record(elapsed);
        tally.requests += 1;
        match outcome {
            Ok((ok, allowed, item_errors)) => {
                tally.decisions += ok;
                tally.allowed += allowed;
                for e in item_errors {
                    *tally.errors.entry(e).or_default() += 1;
                }
            }
            Err(status) => *tally.errors.entry(format!("{:?}", status.code())).or_default() += 1,
        }
    }
    tally
}

/// Run one phase with every client and merge what they saw.
async fn drive(
    channels: &[Channel],
    pool: &Arc<Vec<Call>>,
    concurrency: usize,
    stop: Stop,
) -> anyhow::Result<(Tally, Duration)> {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(concurrency);
    for c in 0..concurrency {
        let channel = channels[c % channels.len()].clone();
        // Clients start at different points of the pool so they do not ask the same thing.
        let start = c * pool.len() / concurrency;
        handles.push(tokio::spawn(client_loop(
            channel,
            pool.clone(),
            start,
            stop,
            issued.clone(),
        )));
    }
    let mut total = Tally::new();
    for h in handles {
        total.merge(h.await.context("a client task panicked")?);
    }
    Ok((total, started.elapsed()))
}

/// VmRSS and VmHWM of `pid`, in bytes.
fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path} (--pid)"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    Ok(Memory {
        rss_bytes: field("VmRSS:"),
        peak_rss_bytes: field("VmHWM:"),
    })
}

#[derive(Debug, Serialize)]
struct Memory {
    rss_bytes: u64,
    peak_rss_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Latency {
    mean_us: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

/// The report, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Report {
    target: String,
    transport: &'static str,
    payload: String,
    checks_per_request: usize,
    concurrency: usize,
    connections: usize,
    threads: usize,
    seconds: f64,
    requests: u64,
    decisions: u64,
    allowed: u64,
    errors: u64,
    errors_by_code: BTreeMap<String, u64>,
    requests_per_s: f64,
    decisions_per_s: f64,
    latency: Latency,
    server_before: Option<Memory>,
    server_after: Option<Memory>,
}

pub fn run(args: BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.writes {
        return crate::cli::bench_writes::bench_writes(&args);
    }
    let target = args.connect.resolve()?;
    let transport = check_loopback(&target.addr)?;
    let payload = Payload::parse(&args.batch)?;
    args.shape.validate()?;
    if args.shape.apps == 0 {
        bail!("--apps must be at least 1: app actions need an app");
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        bail!("--concurrency must be 1 to {MAX_CONCURRENCY}");
    }
    if !(1..=args.concurrency).contains(&args.connections) {
        bail!("--connections must be 1 to --concurrency ({})", args.concurrency);
    }
    if !(1..=64).contains(&args.threads) {
        bail!("--threads must be 1 to 64");
    }
    let secs_ok = |s: f64| s.is_finite() && (0.0..=MAX_SECS).contains(&s);
    let duration = args.duration.unwrap_or(10.0);
    if !secs_ok(duration) || !secs_ok(args.warmup) {
        bail!("--duration and --warmup must be 0 to {MAX_SECS} seconds");
    }
    if let Some(n) = args.requests
        && !(1..=MAX_REQUESTS).contains(&n)
    {
        bail!("--requests must be 1 to {MAX_REQUESTS}");
    }

    let pool = Arc::new(draw_pool(&args.shape, payload, args.seed));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (tally, elapsed, before, after) = rt.block_on(async {
        let mut channels = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            channels.push(
                client::connect(&target.addr)
                    .await
                    .map_err(|e| unreachable(&target, &e))?,
            );
        }
        if args.warmup > 0.0 {
            let stop = Stop {
                deadline: Instant::now() + Duration::from_secs_f64(args.warmup),
                requests: None,
            };
            drive(&channels, &pool, args.concurrency, stop).await?;
        }
        let before = args.pid.map(memory_of).transpose()?;
        // With --requests the time limit is only the safety bound.
        let limit = if args.requests.is_some() {
            MAX_SECS
        } else {
            duration
        };
        let stop = Stop {
            deadline: Instant::now() + Duration::from_secs_f64(limit),
            requests: args.requests,
        };
        let (tally, elapsed) = drive(&channels, &pool, args.concurrency, stop).await?;
        let after = args.pid.map(memory_of).transpose()?;
        anyhow::Ok((tally, elapsed, before, after))
    })?;

    let secs = elapsed.as_secs_f64().max(1e-9);
    let h = &tally.latency_ns;
    let us = |ns: u64| ns as f64 / 1000.0;
    let report = Report {
        target: target.addr.clone(),
        transport,
        payload: payload.label(),
        checks_per_request: payload.items(),
        concurrency: args.concurrency,
        connections: args.connections,
        threads: args.threads,
        seconds: secs,
        requests: tally.requests,
        decisions: tally.decisions,
        allowed: tally.allowed,
        errors: tally.errors.values().sum(),
        errors_by_code: tally.errors.clone(),
        requests_per_s: tally.requests as f64 / secs,
        decisions_per_s: tally.decisions as f64 / secs,
        latency: Latency {
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        },
        server_before: before,
        server_after: after,
    };
    if let Some(path) = &args.plot {
        plot(path, h, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{} over {} ({}), c={} on {} connection(s), {} client thread(s), {:.2} s",
        r.payload, r.transport, r.target, r.concurrency, r.connections, r.threads, r.seconds
    );
    println!(
        "| requests | req/s | decisions/s | allowed | errors | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.0} | {:.0} | {:.1}% | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        r.requests,
        r.requests_per_s,
        r.decisions_per_s,
        100.0 * r.allowed as f64 / r.decisions.max(1) as f64,
        r.errors,
        r.latency.p50_us,
        r.latency.p90_us,
        r.latency.p99_us,
        r.latency.p999_us,
        r.latency.max_us
    );
    for (code, n) in &r.errors_by_code {
        println!("errors {code}: {n}");
    }
    if let (Some(b), Some(a)) = (&r.server_before, &r.server_after) {
        println!(
            "server RSS: {:.1} MiB before, {:.1} MiB after (peak {:.1} MiB)",
            mib(b.rss_bytes),
            mib(a.rss_bytes),
            mib(a.peak_rss_bytes)
        );
    }
}

/// Latency against percentile on a "nines" axis (x = 1 / (1 - q), log scale), as HDR
/// histogram plots are usually drawn. The SVG backend writes text as `<text>` elements, so no
/// font is loaded here.
fn plot(path: &std::path::Path, h: &Histogram<u64>, r: &Report) -> anyhow::Result<()> {
    use plotters::prelude::*;
    if h.is_empty() {
        bail!("no latencies were recorded");
    }
    let points: Vec<(f64, f64)> = (0..=400)
        .map(|k| {
            let nines = 10f64.powf(k as f64 / 100.0);
            let q = 1.0 - 1.0 / nines;
            (nines, (h.value_at_quantile(q) as f64 / 1000.0).max(0.001))
        })
        .collect();
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!(
            "warden {} over {}, c={}: {:.0} req/s",
            r.payload, r.transport, r.concurrency, r.requests_per_s
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((1f64..10_000f64).log_scale(), (lo * 0.8..hi * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (µs)")
            .x_label_formatter(&|x| format!("p{}", 100.0 - 100.0 / x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        chart.draw_series(LineSeries::new(points.iter().copied(), &BLUE))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert_eq!(check_loopback("unix:/tmp/w.sock").unwrap(), "uds");
        assert_eq!(check_loopback("tcp:127.0.0.1:50051").unwrap(), "tcp");
        assert_eq!(check_loopback("tcp:127.3.4.5:1").unwrap(), "tcp");
        assert_eq!(check_loopback("tcp:[::1]:50051").unwrap(), "tcp");
        assert_eq!(check_loopback("tcp:localhost:50051").unwrap(), "tcp");
        for bad in [
            "tcp:10.0.0.1:50051",
            "tcp:example.com:443",
            "tcp:0.0.0.0:1",
            "unix:",
            "http://127.0.0.1:1",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn batch_shapes_parse() {
        assert_eq!(Payload::parse("1").unwrap(), Payload::Single);
        assert_eq!(Payload::parse("100").unwrap(), Payload::Batch(100));
        assert_eq!(Payload::parse("10x3").unwrap(), Payload::Grid(10, 3));
        assert_eq!(Payload::parse("10x3").unwrap().items(), 30);
        for bad in ["0", "x", "10x4", "2000", "abc"] {
            assert!(Payload::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn grid_is_one_subject_on_its_orgs_apps() {
        let shape = Shape {
            orgs: 5,
            members: 10,
            teams: 2,
            apps: 4,
        };
        let pool = draw_pool(&shape, Payload::Grid(10, 3), 7);
        let Call::Batch(batch) = &pool[0] else {
            panic!("a grid is a batch")
        };
        assert_eq!(batch.items.len(), 30);
        assert!(
            batch
                .items
                .iter()
                .all(|i| i.subject == batch.items[0].subject && i.org == batch.items[0].org)
        );
        assert!(
            batch
                .items
                .iter()
                .all(|i| i.resource.starts_with(&format!("apps/{}-app", i.org)))
        );
    }
}
