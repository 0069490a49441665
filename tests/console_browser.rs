//! The web console (`serve --ui`, issue 15) against the real daemon on the demo directory.
//!
//! Over plain HTTP: the page and its assets are served with a strict CSP beside the gateway on
//! the same origin, and requests from another origin or a rebinding host are refused.
//!
//! In a real browser: headless Chromium from the system's packages (`apt-get install chromium`)
//! driven by Playwright for Python (`tests/console/requirements.txt`, pinned) runs
//! `tests/console/console_browser.py`, which renders every page without console errors,
//! changes a role through the page and finds it in `warden member list` and the activity page,
//! compares the playground with `warden check --explain` for every demo user × a set of
//! requests, sees the last-admin refusal in place, opens a team to load its members (the org
//! page shows counts only), and finds the playground's checks in the activity charts' first
//! paint (the daemon's counter history). Here, the policy preview's blast radius and its groups
//! by role and action are compared with `warden policy diff` over the same directory, and the
//! counter history is read over gRPC. Screenshots land in
//! `target/console-screenshots/`. A missing Chromium or Playwright fails with what to install;
//! this test never skips. CI makes the venv in `.ci/run` and passes it as
//! `WARDEN_CONSOLE_VENV`; without it the test makes its own under the target directory.

use crate::common;

use common::{WARDEN, Workdir, free_port};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use warden::api::pb;

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[track_caller]
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}; python3 with venv and pip is required"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A venv with Playwright: `WARDEN_CONSOLE_VENV`, or one made here once per requirements.
fn venv() -> PathBuf {
    crate::python_client::requirements_venv(
        "WARDEN_CONSOLE_VENV",
        "tests/console/requirements.txt",
        "console-venv",
    )
}

fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(&format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().expect("GET");
    let status = resp.status().as_u16();
    let hs = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, hs, resp.body_mut().read_to_string().unwrap())
}

#[test]
fn the_console_is_served_with_the_gateway_on_its_origin() {
    let addr = free_port().to_string();
    let _daemon = Workdir::new().start_with(&["--demo", "--ui", &format!("tcp:{addr}")]);
    let (status, headers, body) = get(&addr, "/", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("<script src=\"/console.js\""), "{body}");
    let csp = headers
        .iter()
        .find(|(k, _)| k == "content-security-policy")
        .map(|(_, v)| v.clone())
        .expect("a CSP header");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    for asset in ["/console.js", "/console.css", "/catalog.json"] {
        assert_eq!(get(&addr, asset, &[]).0, 200, "{asset}");
    }
    assert!(get(&addr, "/catalog.json", &[]).2.contains("member:manage"));

    // The gateway answers on the same origin, as it does on --http.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |origin: Option<&str>| {
        let mut req = agent
            .post(&format!("http://{addr}/warden.v1.MemberService/ListMembers"))
            .header("content-type", "application/json");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let mut resp = req.send(r#"{"actor":"alice","org_id":"acme"}"#).expect("POST");
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
    };
    let own = format!("http://{addr}");
    let (status, body) = post(Some(&own));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("carol"), "{body}");
    // The activity charts read the daemon's own decision counters.
    let call = |path: &str, body: &str| {
        let mut resp = agent
            .post(&format!("http://{addr}/warden.v1.{path}"))
            .header("content-type", "application/json")
            .send(body.to_string())
            .expect("POST");
        let text = resp.body_mut().read_to_string().unwrap();
        (
            resp.status().as_u16(),
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    let counters = |v: &serde_json::Value| v["decisions"].as_str().unwrap().parse::<u64>().unwrap();
    let (status, before) = call("AdminService/GetDecisionCounters", "{}");
    assert_eq!(status, 200, "{before}");
    let (status, _) = call(
        "AuthzService/Check",
        r#"{"subject":"bob","org":"acme","resource":"apps/web","action":"app:read"}"#,
    );
    assert_eq!(status, 200);
    let (_, after) = call("AdminService/GetDecisionCounters", "{}");
    assert_eq!(counters(&after), counters(&before) + 1, "{before} → {after}");
    let (status, body) = post(Some("https://evil.example"));
    assert_eq!(
        status, 403,
        "another site's page may not call the console's gateway: {body}"
    );
    assert!(body.contains("origin"), "{body}");
    // DNS rebinding: the browser sends the attacker's name as Host.
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    let port = addr.rsplit(':').next().unwrap();
    let body = r#"{"actor":"alice","org_id":"acme"}"#;
    write!(
        raw,
        "POST /warden.v1.MemberService/ListMembers HTTP/1.1\r\nhost: evil.example:{port}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    raw.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 403"),
        "a rebinding host name is refused: {reply}"
    );
}

/// The activity charts' history: the daemon samples its decision counters in the background,
/// so checks made before anyone asked are in the answer of the first `GetDecisionCounters`
/// (what a page opened afterwards draws), oldest first, and `history_after_unix_ms` returns
/// only what is newer.
#[test]
fn the_decision_counters_remember_the_last_minutes() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    common::runtime().block_on(async {
        let mut c = common::directory::clients(&daemon.work.unix_target()).await;
        let counters = |after: u64| pb::GetDecisionCountersRequest {
            history_after_unix_ms: after,
        };
        // Wait for a sample (outcome, not time), then decide a few checks.
        let before = wait_for_sample(&mut c, |_| true).await;
        for _ in 0..5 {
            c.check("bob", "acme", "apps/web", "app:read", 0).await;
        }
        let after = wait_for_sample(&mut c, |s| s.decisions >= before.decisions + 5).await;

        // A page opened now asks once and gets both: before the checks, and after them.
        let r = c
            .admin
            .get_decision_counters(counters(0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.history_interval_ms, 1000);
        assert!(r.history.len() <= 300, "{}", r.history.len());
        assert!(r.history.contains(&before) && r.history.contains(&after), "{r:?}");
        assert!(
            r.history
                .windows(2)
                .all(|w| w[0].at_unix_ms < w[1].at_unix_ms && w[0].decisions <= w[1].decisions),
            "{r:?}"
        );
        assert!(r.decisions >= after.decisions, "{r:?}");
        let newer = c
            .admin
            .get_decision_counters(counters(before.at_unix_ms))
            .await
            .unwrap()
            .into_inner()
            .history;
        assert!(!newer.contains(&before) && newer.contains(&after), "{newer:?}");
    });
}

/// The first history sample `pred` holds for, waiting up to a minute for the sampler.
async fn wait_for_sample(
    c: &mut common::directory::Clients,
    pred: impl Fn(&pb::DecisionSample) -> bool,
) -> pb::DecisionSample {
    for _ in 0..600 {
        let r = c
            .admin
            .get_decision_counters(pb::GetDecisionCountersRequest::default())
            .await
            .expect("GetDecisionCounters")
            .into_inner();
        if let Some(s) = r.history.into_iter().find(|s| pred(s)) {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no history sample as wanted within a minute");
}

#[test]
fn the_ui_listener_follows_the_remote_rules_of_the_others() {
    let out = Command::new(WARDEN)
        .args(["serve", "--ui", "tcp:0.0.0.0:0", "--data"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .expect("run warden serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--ui tcp:0.0.0.0:0") && err.contains("--tcp-token-sha256"),
        "{err}"
    );
}

/// The policy preview groups the decisions an edit flips by the subject's org role, the action
/// and the direction, with examples; the groups add up to `warden policy diff`'s flips over the
/// same directory.
#[test]
fn the_policy_preview_groups_flips_by_role_and_action() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let policies = daemon.work.policies();
    let csv = std::fs::read_to_string(policies.join("policy.csv")).unwrap();
    // Org users (and, through them, org contributors) stop reading inside apps; every member
    // may now read usage (new for org users and team contributors).
    let removed = "p, role:org_user, apps/:app/*, app:read, org, allow";
    assert!(
        csv.contains(removed),
        "the default policy changed; pick another edit"
    );
    let mut edited: String = csv
        .lines()
        .filter(|l| l.trim() != removed)
        .map(|l| format!("{l}\n"))
        .collect();
    edited.push_str("p, role:member, org, usage:read, org, allow\n");
    let r = common::runtime().block_on(async {
        let mut c = common::directory::clients(&daemon.work.unix_target()).await;
        c.admin
            .preview_policy(pb::PreviewPolicyRequest {
                policy_csv: edited.clone(),
                actions: Vec::new(),
            })
            .await
            .expect("PreviewPolicy")
            .into_inner()
    });
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let keys: std::collections::BTreeSet<(&str, &str, &str)> = r
        .groups
        .iter()
        .map(|g| (g.role.as_str(), g.action.as_str(), g.direction.as_str()))
        .collect();
    let want: std::collections::BTreeSet<(&str, &str, &str)> = [
        ("org_contributor", "app:read", "ALLOW→DENY"),
        ("org_user", "app:read", "ALLOW→DENY"),
        ("org_user", "usage:read", "DENY→ALLOW"),
        ("team_contributor", "usage:read", "DENY→ALLOW"),
    ]
    .into();
    assert_eq!(keys, want, "{:#?}", r.groups);
    // Each example's subject holds the group's role in the demo directory.
    let role_of = |user: &str| match user {
        "alice" | "erin" => "admin",
        "bob" => "org_contributor",
        "carol" => "team_contributor",
        "dave" => "org_user",
        _ => "(not a member)",
    };
    for g in &r.groups {
        assert!(!g.examples.is_empty() && g.examples.len() <= 3, "{g:?}");
        for e in &g.examples {
            let subject = e.split(' ').next().unwrap();
            assert_eq!(role_of(subject), g.role, "{g:?}");
            assert!(e.contains(&g.action), "{g:?}");
        }
    }
    assert!(
        r.groups.windows(2).all(|w| w[0].count >= w[1].count),
        "{:#?}",
        r.groups
    );
    let total: u64 = r.groups.iter().map(|g| g.count).sum();
    assert_eq!(total, r.newly_allowed + r.newly_denied);

    // The same flips as `warden policy diff` over the same directory.
    daemon.stop();
    let edited_dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&policies).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), edited_dir.path().join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(edited_dir.path().join("policy.csv"), &edited).unwrap();
    // Exit status 1: decisions change (as `diff`).
    let out = Command::new(WARDEN)
        .args(["policy", "diff"])
        .arg(&policies)
        .arg(edited_dir.path())
        .arg("--data")
        .arg(daemon.work.data())
        .output()
        .expect("warden policy diff");
    let diff = String::from_utf8_lossy(&out.stdout);
    let flips = diff
        .lines()
        .filter(|l| l.contains("DENY→ALLOW") || l.contains("ALLOW→DENY"))
        .count();
    assert_eq!(total, flips as u64, "{diff}");
    assert_eq!(diff.lines().last().unwrap_or("").trim(), r.summary, "{diff}");
}

/// The system Chromium, installed from Debian's packages when it is missing and this test
/// may (root, or passwordless sudo), so a fresh machine needs no step beyond `cargo test`;
/// otherwise the test fails saying what to install. Never a skip, never a browser download.
fn ensure_chromium() {
    if Path::new(CHROMIUM).exists() {
        return;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| -> bool {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    eprintln!("{CHROMIUM} is missing: installing Debian's chromium package");
    let installed = apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium"]);
    assert!(
        installed && Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found and it could not be installed here: the console's browser test \
         drives the system Chromium; install it with `apt-get install chromium` (Debian), as \
         .ci/run does"
    );
}

#[test]
fn the_console_works_in_a_real_browser() {
    ensure_chromium();
    let venv = venv();
    run(
        "importing playwright",
        Command::new(venv.join("bin/python")).args(["-c", "import playwright.sync_api"]),
    );

    let addr = free_port();
    let mut daemon = Workdir::new().start_with(&["--demo", "--ui", &format!("tcp:{addr}")]);
    let work = tempfile::tempdir().unwrap();
    // The edit to preview: org users no longer read inside apps (`apps/:app/*`).
    let policies = daemon.work.policies();
    let edited_dir = work.path().join("edited");
    std::fs::create_dir(&edited_dir).unwrap();
    for entry in std::fs::read_dir(&policies).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), edited_dir.join(entry.file_name())).unwrap();
        }
    }
    let csv = std::fs::read_to_string(policies.join("policy.csv")).unwrap();
    let removed = "p, role:org_user, apps/:app/*, app:read, org, allow";
    assert!(
        csv.contains(removed),
        "the default policy changed; pick another edit"
    );
    let edited: String = csv
        .lines()
        .filter(|l| l.trim() != removed)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(edited_dir.join("policy.csv"), &edited).unwrap();
    let edited_file = work.path().join("edited.csv");
    std::fs::write(&edited_file, &edited).unwrap();

    let shots = repo().join("target/console-screenshots");
    let result = work.path().join("result.json");
    let out = Command::new(venv.join("bin/python"))
        .arg(repo().join("tests/console/console_browser.py"))
        .env("WARDEN_UI", format!("http://{addr}"))
        .env("WARDEN_BIN", WARDEN)
        .env("WARDEN_CONNECT", daemon.work.unix_target())
        .env("SCREENSHOTS", &shots)
        .env("EDITED_CSV", &edited_file)
        .env("RESULT_JSON", &result)
        .env("PROFILE_DIR", work.path().join("chromium-profile"))
        .env("POLICY_DIR", &policies)
        .output()
        .expect("run tests/console/console_browser.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}\n(if Chromium did not start: `apt-get install chromium`; \
         if playwright is missing: pip install -r tests/console/requirements.txt)",
        out.status
    );
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();

    // The preview's blast radius is `warden policy diff` over the same directory.
    daemon.stop();
    let diff = Command::new(WARDEN)
        .args(["policy", "diff"])
        .arg(&policies)
        .arg(&edited_dir)
        .arg("--data")
        .arg(daemon.work.data())
        .output()
        .expect("warden policy diff");
    let text = String::from_utf8_lossy(&diff.stdout);
    let summary = text.lines().last().unwrap_or("").trim();
    assert_eq!(
        result["summary"].as_str(),
        Some(summary),
        "preview vs policy diff:\n{text}"
    );
    let flips = text
        .lines()
        .filter(|l| l.contains("DENY→ALLOW") || l.contains("ALLOW→DENY"))
        .count();
    assert_eq!(result["flips"].as_u64(), Some(flips as u64), "{text}");
    assert!(flips > 0, "the edit must flip something to be a test: {text}");
    // The page groups the same flips by role and action, with the roles of the live directory:
    // bob and dave (an org_contributor since the page changed his role) lose reading inside
    // apps, in one group.
    let groups = result["groups"].as_array().expect("preview groups");
    let total: u64 = groups
        .iter()
        .map(|g| g[3].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, flips as u64, "{groups:?}");
    assert!(
        groups
            .iter()
            .all(|g| g[0] == "org_contributor" && g[1] == "app:read"),
        "{groups:?}"
    );
    for page in ["organizations", "org", "check", "policy", "activity"] {
        assert!(shots.join(format!("{page}.png")).exists(), "screenshot of {page}");
    }
}
