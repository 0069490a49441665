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
//! requests, and sees the last-admin refusal in place. Here, the policy preview's blast radius
//! is compared with `warden policy diff` over the same directory. Screenshots land in
//! `target/console-screenshots/`. A missing Chromium or Playwright fails with what to install;
//! this test never skips. CI makes the venv in `.ci/run` and passes it as
//! `WARDEN_CONSOLE_VENV`; without it the test makes its own under the target directory.

use crate::common;

use common::{WARDEN, Workdir, free_port};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    for page in ["organizations", "org", "check", "policy", "activity"] {
        assert!(shots.join(format!("{page}.png")).exists(), "screenshot of {page}");
    }
}
