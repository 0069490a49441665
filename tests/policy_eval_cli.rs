//! `warden policy eval`, the offline evaluator operators and the conformance test share.

use std::io::Write;
use std::process::{Command, Stdio};

fn case(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/conformance/cases")
        .join(name)
}

fn eval(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["policy", "eval"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warden");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn answers_each_line_in_order_with_errors_per_line() {
    let dir = case("rbac_with_pattern");
    let model = dir.join("model.conf");
    let policy = dir.join("policy.csv");
    let input = concat!(
        "{\"request\": [\"alice\", \"/book/1\", \"GET\"]}\n",
        "{\"request\": [\"bob\", \"/book/1\", \"GET\"]}\n",
        "not json\n",
        "{\"request\": [\"too\", \"short\"]}\n",
    );
    let (code, out, err) = eval(
        &[
            "--model",
            model.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--role-matching",
            "g=keyMatch2",
            "--role-matching",
            "g2=keyMatch2",
        ],
        input,
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["allow"], true);
    assert_eq!(lines[1]["allow"], false);
    assert!(lines[2]["error"].as_str().unwrap().contains("invalid JSON"));
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("request has 2 values")
    );
}

#[test]
fn an_unsupported_model_fails_before_reading_requests() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.conf");
    std::fs::write(
        &model,
        "[request_definition]\nr = sub, obj\n[policy_definition]\np = sub, obj\n[policy_effect]\ne = max(p.eft)\n[matchers]\nm = unknownFn(r.sub)\n",
    )
    .unwrap();
    let policy = dir.path().join("policy.csv");
    std::fs::write(&policy, "p, alice, data1\n").unwrap();
    let (code, out, err) = eval(
        &[
            "--model",
            model.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        "{\"request\": [\"a\", \"b\"]}\n",
    );
    assert_eq!(code, 2);
    assert!(out.is_empty(), "no request may be answered: {out}");
    assert!(err.contains("model.conf:6: unsupported policy effect"), "{err}");
    assert!(
        err.contains("model.conf:8: matcher `m`: unknown function `unknownFn`"),
        "{err}"
    );
}
