//! The README's five-minute tour, run as written: `serve --demo` started from a directory
//! holding a copy of `policies/` (its defaults: `./policies`, `./data`), then every command of
//! the tour's block in order, from that directory: the `warden …` commands (several on a line
//! when separated by `;`), and the `echo … >> policies/policy.csv` edits, after each of which
//! the test waits until the daemon has taken the edit in (its policy hash or its last reload
//! error changed). What the README shows is compared with what the commands do:
//!
//! - `#   ` lines under a command are its output, line for line; a line that is only `…`
//!   stands for any number of lines, a `…` inside a line for any text;
//! - `# allow` / `# deny` (also `# now allow`, `# deny: why`) after a check is its exit code;
//! - `# error: …` is the command's whole stderr, with exit code 1 (refused);
//! - `# a / b` with a `revision: N` part lists output lines (`a`, then `b`) in order;
//! - any other comment describes the command, which must succeed.

use crate::common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use warden::api::pb;
use warden::api::pb::admin_service_client::AdminServiceClient;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tour_block() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let tour = &readme[readme.find("## A five-minute tour").expect("tour section")..];
    let start = tour.find("```sh\n").expect("tour block") + 6;
    let end = start + tour[start..].find("```").expect("block end");
    tour[start..end].lines().map(String::from).collect()
}

/// Whether `got` matches the `shown` pattern line (`…` inside it matches any text).
fn line_matches(shown: &str, got: &str) -> bool {
    let mut parts = shown.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = got.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (k, part) in parts.iter().enumerate() {
        if k + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether the output lines `got` match the shown lines, where a line `…` matches any
/// number of lines.
fn block_matches(shown: &[&str], got: &[&str]) -> bool {
    match shown.split_first() {
        None => got.is_empty(),
        Some((&"…", rest)) => (0..=got.len()).any(|skip| block_matches(rest, &got[skip..])),
        Some((first, rest)) => got
            .split_first()
            .is_some_and(|(g, got_rest)| line_matches(first, g) && block_matches(rest, got_rest)),
    }
}

/// The policy's hash and last reload error, as the daemon reports them.
fn policy_state(rt: &tokio::runtime::Runtime, target: &str) -> (String, String) {
    rt.block_on(async {
        let ch = warden::api::client::connect(target).await.expect("connect");
        let s = AdminServiceClient::new(ch)
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .expect("policy status")
            .into_inner();
        (s.content_hash, s.last_reload_error)
    })
}

fn run_warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(WARDEN)
        .args(args)
        .current_dir(dir)
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .stdin(Stdio::null())
        .output()
        .expect("run warden")
}

#[test]
fn readme_tour_runs_as_written_against_the_demo_daemon() {
    let work = Workdir::new();
    let dir = work.dir.path();
    let _daemon = Kill(
        Command::new(WARDEN)
            .args(["serve", "--demo", "--no-tcp"])
            .current_dir(dir)
            .env_remove("WARDEN_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn warden serve --demo"),
    );
    let target = format!("unix:{}", dir.join("data/warden.sock").display());
    let rt = runtime();
    let deadline = Instant::now() + PATIENCE;
    while rt.block_on(health(&target, "")) != Some(ServingStatus::Serving) {
        assert!(Instant::now() < deadline, "the demo daemon never served");
        std::thread::sleep(Duration::from_millis(50));
    }

    let lines = tour_block();
    let (mut checks, mut shown_blocks, mut edits, mut others) = (0, 0, 0, 0);
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (command, comment) = line.split_once(" #").unwrap_or((line, ""));
        let comment = comment.trim();
        let shown: Vec<&str> = lines[i + 1..]
            .iter()
            .map_while(|l| l.strip_prefix("#   "))
            .collect();
        let commands: Vec<&str> = command
            .split(';')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        for (k, cmd) in commands.iter().enumerate() {
            let last = k + 1 == commands.len();
            if cmd.starts_with("alias ") {
                // The tour's alias names the binary the test runs.
                assert_eq!(
                    *cmd, "alias warden=./target/release/warden",
                    "README line `{line}`"
                );
                continue;
            }
            if cmd.starts_with("echo ") {
                let before = policy_state(&rt, &target);
                let status = Command::new("sh")
                    .args(["-c", cmd])
                    .current_dir(dir)
                    .status()
                    .expect("run sh");
                assert!(status.success(), "README line `{line}`");
                let deadline = Instant::now() + PATIENCE;
                while policy_state(&rt, &target) == before {
                    assert!(
                        Instant::now() < deadline,
                        "README line `{line}`: the daemon never took the edit in"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                edits += 1;
                continue;
            }
            let args: Vec<&str> = cmd
                .strip_prefix("warden ")
                .unwrap_or_else(|| panic!("README line `{line}`: not a command the tour test knows"))
                .split_whitespace()
                .collect();
            let out = run_warden(dir, &args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let context = format!("README line `{line}`:\nstdout:\n{stdout}stderr:\n{stderr}");
            if !last {
                assert!(out.status.success(), "{context}");
                others += 1;
                continue;
            }
            if !shown.is_empty() {
                let got: Vec<&str> = stdout.lines().collect();
                assert!(
                    block_matches(&shown, &got),
                    "shown:\n{}\n{context}",
                    shown.join("\n")
                );
                shown_blocks += 1;
            }
            // An explained check's verdict is its output's first line.
            let verdict = match shown.first() {
                Some(first) if args.contains(&"--explain") => first,
                _ => comment.strip_prefix("now ").unwrap_or(comment),
            };
            let verdict = verdict
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches(':');
            if args.first() == Some(&"check") && matches!(verdict, "allow" | "deny") {
                let code = if verdict == "allow" { 0 } else { 1 };
                assert_eq!(out.status.code(), Some(code), "{context}");
                checks += 1;
            } else if comment.starts_with("error:") {
                assert_eq!(out.status.code(), Some(1), "{context}");
                assert_eq!(stderr.trim_end(), comment, "{context}");
                others += 1;
            } else if comment.contains("revision: ") {
                assert!(out.status.success(), "{context}");
                let mut got = stdout.lines();
                for part in comment.split(" / ") {
                    assert!(
                        got.any(|l| l == part),
                        "`{part}` missing or out of order; {context}"
                    );
                }
                others += 1;
            } else {
                assert!(out.status.success(), "{context}");
                others += 1;
            }
        }
    }
    assert!(checks >= 7, "only {checks} tour checks found");
    assert!(shown_blocks >= 3, "only {shown_blocks} output blocks found");
    assert_eq!(edits, 2, "the tour edits the policy twice");
    assert!(others >= 7, "only {others} other commands found");
}

#[test]
fn output_patterns_match_as_the_tour_test_reads_them() {
    assert!(line_matches(
        "last reload failed at …:",
        "last reload failed at 2026-12-04T00:00:00.000Z:"
    ));
    assert!(!line_matches(
        "last reload failed at …:",
        "last reload failed at x"
    ));
    assert!(line_matches("a", "a") && !line_matches("a", "ab"));
    assert!(block_matches(&["…", "x", "…"], &["a", "x"]));
    assert!(block_matches(&["…", "x", "…"], &["x"]));
    assert!(!block_matches(&["…", "x", "…"], &["a", "b"]));
    assert!(!block_matches(&["x"], &["x", "y"]));
}
