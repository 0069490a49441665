//! `warden gen-directory` and `warden bench` against the real binary: the generated directory
//! imports cleanly with the counts it promises, and the load generator drives a daemon over UDS
//! and TCP, counting every request and reporting no errors. No timing is asserted.

use crate::common;

use common::{WARDEN, Workdir};
use serde_json::Value;
use std::process::Command;

fn warden(args: &[&str]) -> String {
    let out = Command::new(WARDEN)
        .args(args)
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_DATA")
        .output()
        .expect("run warden");
    assert!(
        out.status.success(),
        "warden {args:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&warden(&all)).expect("bench --json prints JSON")
}

fn assert_clean_run(report: &Value, requests: u64, checks_per_request: u64) {
    for field in [
        "requests_per_s",
        "decisions_per_s",
        "seconds",
        "latency",
        "errors_by_code",
        "concurrency",
    ] {
        assert!(report.get(field).is_some(), "missing {field} in {report}");
    }
    for p in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us"] {
        assert!(
            report["latency"][p].as_f64().is_some(),
            "missing latency.{p} in {report}"
        );
    }
    assert_eq!(report["requests"], requests, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["decisions"], requests * checks_per_request, "{report}");
}

#[test]
fn bench_counts_every_request_over_uds_and_tcp_without_errors() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let pid = daemon.pid().to_string();
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        let report = bench_json(&[
            "--connect",
            &target,
            "--requests",
            "500",
            "--concurrency",
            "4",
            "--pid",
            &pid,
        ]);
        assert_clean_run(&report, 500, 1);
        assert_eq!(report["concurrency"], 4);
        assert!(
            report["server_after"]["rss_bytes"].as_u64().unwrap() > 0,
            "{report}"
        );
    }
}

#[test]
fn bench_batches_and_plots() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let svg = daemon.work.dir.path().join("latency.svg");
    let report = bench_json(&[
        "--connect",
        &daemon.work.unix_target(),
        "--requests",
        "50",
        "--concurrency",
        "2",
        "--connections",
        "2",
        "--batch",
        "10x3",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_clean_run(&report, 50, 30);
    let text = std::fs::read_to_string(&svg).expect("plot written");
    assert!(
        text.starts_with("<svg"),
        "not an SVG: {}",
        &text[..text.len().min(80)]
    );
}

#[test]
fn bench_refuses_targets_off_this_host() {
    let out = Command::new(WARDEN)
        .args(["bench", "--connect", "tcp:192.0.2.1:50051", "--requests", "1"])
        .output()
        .expect("run warden");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn generated_directory_imports_with_its_counts_and_serves_allows() {
    let work = Workdir::new();
    let dump = work.dir.path().join("dir.json");
    let shape = ["--orgs", "3", "--members", "20", "--teams", "2", "--apps", "4"];
    let mut gen_args = vec!["gen-directory", "--out", dump.to_str().unwrap()];
    gen_args.extend_from_slice(&shape);
    warden(&gen_args);

    std::fs::create_dir_all(work.data()).unwrap();
    let data = work.data();
    let data = data.to_str().unwrap();
    let imported = warden(&["import", dump.to_str().unwrap(), "--data", data]);
    assert!(
        imported.contains("imported 60 users, 3 orgs, 60 memberships"),
        "{imported}"
    );

    let export: Value = serde_json::from_str(&warden(&["export", "--data", data])).unwrap();
    let len = |field: &str| export[field].as_array().map_or(0, Vec::len);
    assert_eq!(len("users"), 60);
    assert_eq!(len("orgs"), 3);
    assert_eq!(len("memberships"), 60);
    assert_eq!(len("teams"), 6);
    // 8 team contributors in every 20 members, one team each.
    assert_eq!(len("team_members"), 24);
    assert_eq!(len("apps"), 12);
    assert_eq!(len("team_grants"), 12);

    // The daemon serves it, and requests drawn for this shape are sometimes allowed.
    let daemon = work.start();
    let mut args = vec![
        "--connect".to_string(),
        daemon.work.unix_target(),
        "--requests".into(),
        "200".into(),
    ];
    args.extend(shape.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = bench_json(&args);
    assert_clean_run(&report, 200, 1);
    assert!(report["allowed"].as_u64().unwrap() > 0, "{report}");
}
