//! `warden bench --writes`: a closed-loop write load against one daemon or the sidecars of one
//! cluster, on loopback only (the same bounds as the check bench).
//!
//! `--concurrency` writers, spread round-robin over the targets (`--target` repeated, or
//! `--connect`), each send one `AddMember` and wait for its answer: a member of org `o+1+seed`
//! joins org `o` as `org_user`, added by the org's admin (member 0 of a `gen-directory` org),
//! so every accepted write is a fresh membership; 10% are sent by an `org_user` of the org
//! (refused: PERMISSION_DENIED) and 5% re-add an existing member (refused: ALREADY_EXISTS), as
//! a real directory sees some refusals. Use another `--seed` for each run on one directory.
//!
//! With `--watch` (and more than one target), each target is also followed through
//! `AuditService.WatchChanges`; the replication lag of a write is the time from its request
//! being sent to its revision appearing on each other sidecar's stream. A target following
//! its own writes is not counted.
//!
//! The report: write latency (p50/p99), accepted/s and refused/s (by code), the longest gap
//! between two acknowledged writes (a pause, e.g. while the log elects a leader), and the lag.

use crate::api::client;
use crate::api::pb;
use crate::cli::bench::{BenchArgs, MAX_REQUESTS, MAX_SECS, check_loopback};
use crate::cli::gen_directory::{Shape, org, user};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;

/// How long the watchers may take, after the last write, to see it.
const DRAIN: Duration = Duration::from_secs(30);

/// The `k`-th write of a run: (actor, org, user, what it should come to).
fn draw_write(s: &Shape, seed: u64, k: u64) -> pb::AddMemberRequest {
    let orgs = s.orgs as u64;
    let o = (k % orgs) as usize;
    let round = (k / orgs) as usize;
    let (actor, member) = match k % 20 {
        // Not an admin of the org: refused.
        0 | 1 => (user(o, 13 % s.members), user((o + 1) % s.orgs, round % s.members)),
        // Already a member: refused.
        2 => (user(o, 0), user(o, 1 % s.members)),
        _ => {
            let from = (o + 1 + seed as usize % (s.orgs - 1).max(1)) % s.orgs;
            (user(o, 0), user(from, round % s.members))
        }
    };
    pb::AddMemberRequest {
        actor,
        org_id: org(o),
        user_id: member,
        role: "org_user".into(),
    }
}

struct Writer {
    latency_ns: Histogram<u64>,
    accepted: u64,
    refused: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    /// (revision, request sent, target) of each accepted write.
    sent: Vec<(u64, Instant, usize)>,
    /// When each accepted write was acknowledged.
    acks: Vec<Instant>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

async fn writer(
    channel: Channel,
    target: usize,
    shape: Shape,
    seed: u64,
    deadline: Instant,
    max: Option<u64>,
    next: Arc<AtomicU64>,
) -> Writer {
    let mut c = pb::member_service_client::MemberServiceClient::new(channel);
    let mut w = Writer {
        latency_ns: histogram(),
        accepted: 0,
        refused: BTreeMap::new(),
        errors: BTreeMap::new(),
        sent: Vec::new(),
        acks: Vec::new(),
    };
    while Instant::now() < deadline {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if max.is_some_and(|m| k >= m) {
            break;
        }
        let req = draw_write(&shape, seed, k);
        let t0 = Instant::now();
        let r = c.add_member(req).await;
        let done = Instant::now();
        w.latency_ns
            .saturating_record(done.duration_since(t0).as_nanos().max(1) as u64);
        match r {
            Ok(r) => {
                w.accepted += 1;
                w.sent.push((r.into_inner().revision, t0, target));
                w.acks.push(done);
            }
            Err(s) => {
                let bucket = match s.code() {
                    Code::PermissionDenied
                    | Code::AlreadyExists
                    | Code::FailedPrecondition
                    | Code::NotFound => &mut w.refused,
                    _ => &mut w.errors,
                };
                *bucket.entry(format!("{:?}", s.code())).or_default() += 1;
            }
        }
    }
    w
}

/// Follow `channel`'s change log from `from`; the arrival time of each revision, until
/// `until` says the last write's revision (then every revision up to it) or the drain
/// deadline passes.
async fn watcher(
    channel: Channel,
    from: u64,
    until: tokio::sync::watch::Receiver<Option<(u64, Instant)>>,
) -> anyhow::Result<Vec<(u64, Instant)>> {
    let mut c = pb::audit_service_client::AuditServiceClient::new(channel);
    let mut stream = c
        .watch_changes(pb::WatchChangesRequest {
            actor: String::new(),
            org_id: String::new(),
            from_revision: from,
        })
        .await
        .context("WatchChanges (--watch needs unix: targets, where the operator may follow every org)")?
        .into_inner();
    let mut seen = Vec::new();
    loop {
        let end = *until.borrow();
        if let Some((last, by)) = end
            && (seen.last().is_some_and(|&(r, _)| r >= last) || Instant::now() >= by)
        {
            return Ok(seen);
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
            Ok(Ok(Some(e))) => seen.push((e.revision, Instant::now())),
            Ok(Ok(None)) => return Ok(seen),
            Ok(Err(s)) => bail!("WatchChanges: {s}"),
            Err(_) => {}
        }
    }
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    samples: u64,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |ns: u64| ns as f64 / 1e6;
    Percentiles {
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
        samples: h.len(),
    }
}

#[derive(Debug, Serialize)]
struct WriteReport {
    targets: Vec<String>,
    concurrency: usize,
    seconds: f64,
    writes: u64,
    accepted: u64,
    refused: u64,
    refused_by_code: BTreeMap<String, u64>,
    errors: u64,
    errors_by_code: BTreeMap<String, u64>,
    accepted_per_s: f64,
    refused_per_s: f64,
    latency: Percentiles,
    /// The longest time between two acknowledged writes (all writers together).
    longest_gap_ms: f64,
    /// Request sent → revision on each other sidecar's WatchChanges (with --watch).
    replication_lag: Option<Percentiles>,
}

/// Run the write bench (`warden bench --writes`).
pub fn bench_writes(args: &BenchArgs) -> anyhow::Result<()> {
    let targets: Vec<String> = if args.targets.is_empty() {
        vec![args.connect.resolve()?.addr]
    } else {
        args.targets.clone()
    };
    for t in &targets {
        check_loopback(t)?;
    }
    args.shape.validate()?;
    if args.shape.orgs < 2 || args.shape.members < 14 {
        bail!("--writes needs --orgs ≥ 2 and --members ≥ 14 (a gen-directory directory of that shape)");
    }
    if !(1..=1024).contains(&args.concurrency) {
        bail!("--concurrency must be 1 to 1024");
    }
    let secs_ok = |s: f64| s.is_finite() && (0.0..=MAX_SECS).contains(&s);
    let duration = args.duration.unwrap_or(10.0);
    if !secs_ok(duration) {
        bail!("--duration must be 0 to {MAX_SECS} seconds");
    }
    if let Some(n) = args.requests
        && !(1..=MAX_REQUESTS).contains(&n)
    {
        bail!("--requests must be 1 to {MAX_REQUESTS}");
    }
    let watch = args.watch && targets.len() > 1;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.clamp(1, 64))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(async {
        let mut channels = Vec::new();
        for t in &targets {
            channels.push(
                client::connect(t)
                    .await
                    .with_context(|| format!("connecting to {t}"))?,
            );
        }
        // Where each sidecar's change log stands now: the watchers start there.
        let (end_tx, end_rx) = tokio::sync::watch::channel(None);
        let mut watchers = Vec::new();
        if watch {
            for ch in &channels {
                let mut admin = pb::admin_service_client::AdminServiceClient::new(ch.clone());
                let from = admin
                    .directory_digest(pb::DirectoryDigestRequest {})
                    .await
                    .context("DirectoryDigest (the current revision)")?
                    .into_inner()
                    .revision;
                watchers.push(tokio::spawn(watcher(ch.clone(), from + 1, end_rx.clone())));
            }
        }
        let limit = if args.requests.is_some() {
            MAX_SECS
        } else {
            duration
        };
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(limit);
        let mut handles = Vec::new();
        for c in 0..args.concurrency {
            let t = c % targets.len();
            handles.push(tokio::spawn(writer(
                channels[t].clone(),
                t,
                args.shape,
                args.seed,
                deadline,
                args.requests,
                next.clone(),
            )));
        }
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await.context("a writer task panicked")?);
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let sent: Arc<Mutex<HashMap<u64, (Instant, usize)>>> = Arc::new(Mutex::new(
            all.iter()
                .flat_map(|w| w.sent.iter().map(|&(r, t0, t)| (r, (t0, t))))
                .collect(),
        ));
        let top = sent.lock().keys().copied().max().unwrap_or(0);
        let _ = end_tx.send(Some((top, Instant::now() + DRAIN)));
        let mut lag = histogram();
        for (j, w) in watchers.into_iter().enumerate() {
            let seen = w.await.context("a watcher task panicked")??;
            let sent = sent.lock();
            for (rev, at) in seen {
                if let Some(&(t0, t)) = sent.get(&rev)
                    && t != j
                {
                    lag.saturating_record(at.saturating_duration_since(t0).as_nanos().max(1) as u64);
                }
            }
        }
        let mut latency = histogram();
        let mut acks = Vec::new();
        let (mut accepted, mut refused, mut errors) = (0, BTreeMap::new(), BTreeMap::new());
        for w in all {
            latency.add(&w.latency_ns).expect("same bounds");
            accepted += w.accepted;
            acks.extend(w.acks);
            for (k, v) in w.refused {
                *refused.entry(k).or_default() += v;
            }
            for (k, v) in w.errors {
                *errors.entry(k).or_default() += v;
            }
        }
        acks.sort();
        let mut gap = acks
            .first()
            .map_or(Duration::ZERO, |first| first.duration_since(started));
        for pair in acks.windows(2) {
            gap = gap.max(pair[1].duration_since(pair[0]));
        }
        let refused_n: u64 = refused.values().sum();
        let errors_n: u64 = errors.values().sum();
        anyhow::Ok(WriteReport {
            targets: targets.clone(),
            concurrency: args.concurrency,
            seconds: elapsed,
            writes: accepted + refused_n + errors_n,
            accepted,
            refused: refused_n,
            refused_by_code: refused,
            errors: errors_n,
            errors_by_code: errors,
            accepted_per_s: accepted as f64 / elapsed,
            refused_per_s: refused_n as f64 / elapsed,
            latency: percentiles(&latency),
            longest_gap_ms: gap.as_secs_f64() * 1e3,
            replication_lag: watch.then(|| percentiles(&lag)),
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &WriteReport) {
    println!(
        "AddMember writes over {} target(s) ({}), c={}, {:.2} s",
        r.targets.len(),
        r.targets.join(", "),
        r.concurrency,
        r.seconds
    );
    println!(
        "| writes | accepted/s | refused/s | errors | p50 ms | p99 ms | max ms | longest gap ms | lag p50 ms | lag p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (lp50, lp99) = r
        .replication_lag
        .as_ref()
        .map_or(("-".to_string(), "-".to_string()), |l| {
            (format!("{:.2}", l.p50_ms), format!("{:.2}", l.p99_ms))
        });
    println!(
        "| {} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} |",
        r.writes,
        r.accepted_per_s,
        r.refused_per_s,
        r.errors,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.latency.max_ms,
        r.longest_gap_ms,
        lp50,
        lp99
    );
    for (code, n) in &r.refused_by_code {
        println!("refused {code}: {n}");
    }
    for (code, n) in &r.errors_by_code {
        println!("errors {code}: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_mix_adds_fresh_members_with_some_refusals() {
        let shape = Shape {
            orgs: 50,
            members: 20,
            teams: 2,
            apps: 2,
        };
        let writes: Vec<_> = (0..1000).map(|k| draw_write(&shape, 1, k)).collect();
        let by_admin: Vec<_> = writes.iter().filter(|w| w.actor.ends_with("x0")).collect();
        let fresh: Vec<_> = by_admin
            .iter()
            .filter(|w| !w.user_id.starts_with(&format!("user{}x", &w.org_id[3..])))
            .collect();
        // 10% by a non-admin, 5% re-adds, 85% fresh members, never the same one twice.
        assert_eq!(writes.len() - by_admin.len(), 100);
        assert_eq!(by_admin.len() - fresh.len(), 50);
        let pairs: std::collections::HashSet<_> = fresh.iter().map(|w| (&w.org_id, &w.user_id)).collect();
        assert_eq!(pairs.len(), fresh.len(), "a fresh member is added once");
        // Another seed draws other members.
        let other = draw_write(&shape, 2, 3);
        assert_ne!(other.user_id, draw_write(&shape, 1, 3).user_id);
    }
}
