//! Engine benchmarks on a generated directory (default 10,000 orgs × 100 members =
//! 1M memberships, 10 teams and 20 apps per org) with the default policies:
//! per-check latency (p50/p99/p99.9 over a mixed allowed/denied stream, one core),
//! casbin-rs 2.20 `Enforcer::enforce` on the same model and data in the same run,
//! index build time, policy swap time, and memory per membership.
//!
//! `cargo bench --bench engine` runs everything; `WARDEN_BENCH_ORGS=1000` shrinks the
//! directory. Criterion's own timings (`check/warden`, `check/casbin-rs`) are printed
//! too. See benches/README.md for figures.

mod support;

use criterion::Criterion;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use warden::engine::index::DirectoryIndex;
use warden::engine::{CheckInput, Engine};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn shape(orgs: usize) -> Shape {
    Shape {
        orgs,
        members: 100,
        teams: 10,
        apps: 20,
    }
}

/// Build an index org by org; returns it and the time spent applying (generation of
/// the operations excluded).
fn build_index(shape: &Shape) -> (Arc<DirectoryIndex>, Duration) {
    let index = Arc::new(DirectoryIndex::new());
    let mut spent = Duration::ZERO;
    for o in 0..shape.orgs {
        let ops = org_ops(shape, o);
        let t = Instant::now();
        index.apply(o as u64 + 1, &ops);
        spent += t.elapsed();
    }
    (index, spent)
}

fn pin_to_one_core() {
    // SAFETY: plain libc call on a zeroed cpu_set_t for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(env_usize("WARDEN_BENCH_CPU", 0), &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Child-process mode: build an index of `orgs` orgs and print bytes per membership.
fn memory_mode(orgs: usize) {
    let shape = shape(orgs);
    let policy = warden::policy::load_defaults().expect("default policies");
    let before = rss_bytes();
    let (index, _) = build_index(&shape);
    let after = rss_bytes();
    let engine = Engine::new(Arc::new(policy), index);
    let m = engine.index().read().membership_count();
    println!("{} {} {}", m, after.saturating_sub(before), after);
}

fn measure_memory(orgs: usize) -> Option<(usize, u64, u64)> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .env("WARDEN_BENCH_MEMORY", orgs.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last()?;
    let mut it = line.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
    Some((it.next()? as usize, it.next()?, it.next()?))
}

const CASBIN_MODEL: &str = warden::policy::DEFAULT_MODEL;

/// casbin-rs loaded with the same model, rules and directory (as g/g2 lines).
fn casbin_enforcer(shape: &Shape) -> (casbin::Enforcer, Duration) {
    use casbin::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t = Instant::now();
        let model = DefaultModel::from_str(CASBIN_MODEL)
            .await
            .expect("casbin-rs parses the default model");
        let mut e = Enforcer::new(model, MemoryAdapter::default())
            .await
            .expect("enforcer");
        e.get_role_manager()
            .write()
            .matching_fn(None, Some(casbin::function_map::key_match));
        let rules = warden::policy::csv::parse("policy.csv", warden::policy::DEFAULT_POLICY).expect("csv");
        let p: Vec<Vec<String>> = rules
            .iter()
            .filter(|r| r.ptype == "p")
            .map(|r| r.values.clone())
            .collect();
        let mut g: Vec<Vec<String>> = rules
            .iter()
            .filter(|r| r.ptype == "g")
            .map(|r| r.values.clone())
            .collect();
        let mut g2: Vec<Vec<String>> = Vec::new();
        for o in 0..shape.orgs {
            for op in org_ops(shape, o) {
                use warden::engine::index::IndexOp::*;
                match op {
                    SetMember { org, user, role } => g.push(vec![user, format!("role:{role}"), org]),
                    AddTeamMember { org, team, user } => g2.push(vec![user, format!("team:{team}"), org]),
                    GrantApp { org, team, app } => {
                        g2.push(vec![format!("team:{team}"), format!("app:{app}"), org])
                    }
                    _ => {}
                }
            }
        }
        e.add_policies(p).await.expect("p");
        e.add_named_grouping_policies("g", g).await.expect("g");
        e.add_named_grouping_policies("g2", g2).await.expect("g2");
        (e, t.elapsed())
    })
}

/// The daemon's allocator (see `src/main.rs`), so the index is laid out as it is in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Ok(orgs) = std::env::var("WARDEN_BENCH_MEMORY") {
        memory_mode(orgs.parse().unwrap_or(1000));
        return;
    }
    pin_to_one_core();
    let orgs = env_usize("WARDEN_BENCH_ORGS", 10_000);
    let casbin_orgs = env_usize("WARDEN_BENCH_CASBIN_ORGS", orgs);
    let shape = shape(orgs);
    println!(
        "== Warden engine bench: {} orgs x {} members = {} memberships, {} teams, {} apps per org",
        shape.orgs,
        shape.members,
        shape.orgs * shape.members,
        shape.teams,
        shape.apps
    );

    let (index, build) = build_index(&shape);
    println!("index build (apply only): {:.3} s", build.as_secs_f64());
    let policy = Arc::new(warden::policy::load_defaults().expect("default policies"));
    let engine = Engine::new(policy, index);

    // Policy swap at full size: parse + compile + atomic swap; the index is untouched.
    let mut swaps = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let p = warden::policy::load_defaults().expect("defaults");
        engine.swap_policy(Arc::new(p));
        swaps.push(t.elapsed().as_nanos() as u64);
    }
    swaps.sort_unstable();
    println!(
        "policy re-parse + swap: p50 {:.1} µs, max {:.1} µs",
        percentile(&swaps, 0.5) as f64 / 1e3,
        *swaps.last().unwrap_or(&0) as f64 / 1e3
    );

    let reqs = requests(&shape, 200_000, 42);
    let inputs: Vec<CheckInput<'_>> = reqs
        .iter()
        .map(|r| CheckInput {
            subject: &r[0],
            org: &r[1],
            resource: &r[2],
            action: &r[3],
        })
        .collect();
    if let Ok(secs) = std::env::var("WARDEN_BENCH_PROFILE") {
        // Only the check loop, for `perf record`.
        let until = Instant::now() + Duration::from_secs(secs.parse().unwrap_or(5));
        let mut n = 0u64;
        while Instant::now() < until {
            for q in &inputs {
                std::hint::black_box(engine.check(std::hint::black_box(q)).ok());
            }
            n += inputs.len() as u64;
        }
        println!("profiled {n} checks");
        return;
    }
    let allowed = inputs
        .iter()
        .filter(|q| engine.check(q).map(|d| d.allowed).unwrap_or(false))
        .count();
    println!(
        "request stream: {} requests, {:.1}% allowed",
        inputs.len(),
        100.0 * allowed as f64 / inputs.len() as f64
    );

    // Per-check latency: each check timed on its own (timer overhead included, reported).
    let overhead = {
        let mut v: Vec<u64> = (0..100_000)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(());
                t.elapsed().as_nanos() as u64
            })
            .collect();
        v.sort_unstable();
        percentile(&v, 0.5)
    };
    let mut lat: Vec<u64> = Vec::with_capacity(inputs.len() * 2);
    for _ in 0..2 {
        for q in &inputs {
            let t = Instant::now();
            let d = engine.check(std::hint::black_box(q));
            lat.push(t.elapsed().as_nanos() as u64);
            std::hint::black_box(d.ok());
        }
    }
    lat.sort_unstable();
    let total_start = Instant::now();
    for q in &inputs {
        std::hint::black_box(engine.check(std::hint::black_box(q)).ok());
    }
    let warden_mean = total_start.elapsed().as_nanos() as f64 / inputs.len() as f64;
    println!(
        "warden check: p50 {} ns, p99 {} ns, p99.9 {} ns, mean {:.0} ns (timer overhead ~{} ns per sample)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        warden_mean,
        overhead
    );

    // casbin-rs on the same model and data.
    let cshape = Shape {
        orgs: casbin_orgs,
        ..shape
    };
    let (enforcer, load) = casbin_enforcer(&cshape);
    println!(
        "casbin-rs load of {} memberships as g lines: {:.1} s",
        cshape.orgs * cshape.members,
        load.as_secs_f64()
    );
    let creqs = requests(&cshape, 20_000, 7);
    use casbin::CoreApi;
    let mut disagree = 0;
    let cinputs: Vec<CheckInput<'_>> = creqs
        .iter()
        .map(|r| CheckInput {
            subject: &r[0],
            org: &r[1],
            resource: &r[2],
            action: &r[3],
        })
        .collect();
    let t = Instant::now();
    let mut clat = Vec::with_capacity(creqs.len());
    for r in &creqs {
        let s = Instant::now();
        let a = enforcer.enforce((&r[0], &r[1], &r[2], &r[3])).unwrap_or(false);
        clat.push(s.elapsed().as_nanos() as u64);
        std::hint::black_box(a);
    }
    let casbin_mean = t.elapsed().as_nanos() as f64 / creqs.len() as f64;
    let t = Instant::now();
    for q in &cinputs {
        std::hint::black_box(engine.check(std::hint::black_box(q)).ok());
    }
    let warden_same = t.elapsed().as_nanos() as f64 / cinputs.len() as f64;
    if casbin_orgs <= orgs {
        for (r, q) in creqs.iter().zip(&cinputs) {
            let a = enforcer.enforce((&r[0], &r[1], &r[2], &r[3])).unwrap_or(false);
            if a != engine.check(q).map(|d| d.allowed).unwrap_or(false) {
                disagree += 1;
            }
        }
    }
    clat.sort_unstable();
    println!(
        "casbin-rs enforce: p50 {} ns, p99 {} ns, mean {:.0} ns; warden on the same 20k requests: mean {:.0} ns => warden is {:.0}x faster; decisions that differ: {}",
        percentile(&clat, 0.5),
        percentile(&clat, 0.99),
        casbin_mean,
        warden_same,
        casbin_mean / warden_same,
        disagree
    );

    // Memory, each size in a fresh child process.
    for o in [1_000, orgs] {
        if let Some((m, delta, total)) = measure_memory(o) {
            println!(
                "memory: {m} memberships -> index RSS +{:.1} MB ({:.0} B per membership, process RSS {:.1} MB)",
                delta as f64 / 1e6,
                delta as f64 / m.max(1) as f64,
                total as f64 / 1e6
            );
        }
    }

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let mut g = c.benchmark_group("check");
    let mut i = 0usize;
    g.bench_function("warden", |b| {
        b.iter(|| {
            i = (i + 1) % inputs.len();
            engine.check(&inputs[i]).ok()
        })
    });
    let mut j = 0usize;
    g.bench_function("casbin-rs", |b| {
        b.iter(|| {
            j = (j + 1) % creqs.len();
            let r = &creqs[j];
            enforcer.enforce((&r[0], &r[1], &r[2], &r[3])).ok()
        })
    });
    g.finish();
    c.final_summary();
}
