//! Per-check times of the engine on the hostile inputs of issue 12: globMatch patterns
//! that make a backtracking matcher exponential, and role hierarchies 10,000 to 100,000
//! links long. Prints one line per input; nothing is asserted (the tests check answers,
//! not times).
//!
//! `cargo run --example engine_timings` (a debug build is slower than the daemon's
//! release build; add `--release` for the daemon's figures).

use std::time::Instant;
use warden::engine::{CompiledPolicy, EngineConfig, ReqVal};
use warden::policy::compile_texts;

const GLOB_MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
    [policy_effect]\ne = some(where (p.eft == allow))\n\
    [matchers]\nm = r.sub == p.sub && globMatch(r.obj, p.obj) && r.act == p.act\n";

const ROLE_MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
    [role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n\
    [matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";

fn compile(model: &str, policy: &str, config: &EngineConfig) -> CompiledPolicy {
    match compile_texts("model.conf", model, "policy.csv", policy, config) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Mean time of one check over `n` checks, and the answer.
fn time(p: &CompiledPolicy, req: [&str; 3], n: u32) -> (f64, String) {
    let req = req.map(ReqVal::Str);
    let mut answer = String::new();
    let start = Instant::now();
    for _ in 0..n {
        answer = match p.enforce(&req) {
            Ok(a) => a.to_string(),
            Err(e) => format!("error: {e}"),
        };
    }
    (start.elapsed().as_secs_f64() * 1e6 / f64::from(n), answer)
}

fn main() {
    let cfg = EngineConfig::default();
    let globs = compile(
        GLOB_MODEL,
        "p, alice, *-*-*-*.log, read\np, bob, *a*a*b, read\n",
        &cfg,
    );
    for (sub, value, what) in [
        ("alice", "-".repeat(1024), "globMatch `*-*-*-*.log`, 1 KiB of `-`"),
        ("bob", "a".repeat(1024), "globMatch `*a*a*b`, 1 KiB of `a`"),
        ("bob", "a".repeat(4096), "globMatch `*a*a*b`, 4 KiB of `a`"),
    ] {
        let (us, answer) = time(&globs, [sub, &value, "read"], 200);
        println!("{what}: {us:.1} µs per check ({answer})");
    }

    let chain = |n: usize, ring: bool| {
        let mut s = String::from("p, r0, data, read\n");
        for i in 0..n {
            s.push_str(&format!("g, r{}, r{i}\n", i + 1));
        }
        if ring {
            s.push_str(&format!("g, r0, r{n}\n"));
        }
        s
    };
    let deep = EngineConfig {
        max_role_depth: 200_000,
        ..EngineConfig::default()
    };
    for (n, ring, config, what) in [
        (10_000, false, &cfg, "10,000-link chain, subject at the far end"),
        (
            30_000,
            false,
            &deep,
            "30,000-link chain, subject at the far end (max_role_depth 200000)",
        ),
        (
            30_000,
            false,
            &cfg,
            "30,000-link chain, subject at the far end (default bound 10000)",
        ),
        (
            100_000,
            true,
            &deep,
            "100,000-node ring, target one link behind (max_role_depth 200000)",
        ),
        (
            100_000,
            true,
            &cfg,
            "100,000-node ring, target one link behind (default bound 10000)",
        ),
    ] {
        let p = compile(ROLE_MODEL, &chain(n, ring), config);
        let sub = if ring { "r1".to_string() } else { format!("r{n}") };
        let obj = "data";
        let (us, answer) = time(&p, [&sub, obj, "read"], 20);
        println!("{what}: {:.3} ms per check ({answer})", us / 1000.0);
    }
}
