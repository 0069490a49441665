//! The README's five-minute tour, run as written: `serve --demo` started from a directory
//! holding a copy of `policies/` (its defaults: `./policies`, `./data`), then each `warden
//! check` line of the tour's block; the comment after a plain check (`# allow`/`# deny`)
//! must match its exit code, and the `#   ` lines under an `--explain` check must be its
//! output, line for line (rule lines `policy.csv:N`, role paths, revisions).

use crate::common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

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

#[test]
fn readme_tour_checks_and_explanations_match_the_demo_daemon() {
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
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        // Only the checks before the tour edits the policy.
        if line.starts_with("echo ") {
            break;
        }
        let Some(rest) = line.strip_prefix("warden check ") else {
            continue;
        };
        let (command, comment) = rest.split_once('#').unwrap_or((rest, ""));
        let args: Vec<&str> = command.split_whitespace().collect();
        let out = Command::new(WARDEN)
            .arg("check")
            .args(&args)
            .current_dir(dir)
            .env_remove("WARDEN_CONNECT")
            .output()
            .expect("run warden check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if args.contains(&"--explain") {
            let shown: Vec<&str> = lines[i + 1..]
                .iter()
                .map_while(|l| l.strip_prefix("#   "))
                .collect();
            let got: Vec<&str> = stdout.lines().collect();
            assert_eq!(got, shown, "README line `{line}`");
        } else {
            let expected = comment.split_whitespace().next().unwrap_or_default();
            let code = match expected.trim_end_matches(':') {
                "allow" => 0,
                "deny" => 1,
                other => panic!("`{line}`: comment starts with {other:?}"),
            };
            assert_eq!(out.status.code(), Some(code), "README line `{line}`: {stdout}");
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} tour checks found");
}
