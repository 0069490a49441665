//! The Casbin conformance corpus (`tests/data/conformance/cases`): Warden must give the
//! reference answer for every scored request of every case it supports, refuse the
//! models it does not support with a clear error, and answer contested requests on the
//! side documented in `policies/README.md`.
//!
//! The corpus is the repository's own copy (CI checks it still holds every case of the
//! workplace's reference corpus unchanged); it is read through the same path as
//! `warden policy eval` (`warden::policy::eval`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use warden::policy::eval;

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance/cases");
    assert!(
        dir.is_dir(),
        "conformance corpus not found at {}: it is part of the repository (tests/data/conformance); is the clone complete?",
        dir.display()
    );
    dir
}

/// Models Warden refuses on purpose, with the start of the error they give.
const UNSUPPORTED: &[(&str, &str)] = &[
    // A matcher in 2,000 parentheses: refused with its line instead of overflowing the
    // stack (Go casbin answers it; pycasbin hits Python's recursion limit).
    ("warden_deep_nesting", "nesting deeper than 64 in matcher `m`"),
];

/// For each contested behaviour, the implementation whose answer Warden gives.
const CONTESTED_SIDE: &[(&str, &str)] = &[
    // regexMatch searches anywhere in the string, as Go casbin, casbin-rs and node do.
    ("keymatch", "go"),
    // No implicit domain wildcard (`*` is a domain pattern only with a domain matching
    // function), and regexMatch searching anywhere: exactly node-casbin's answers here.
    ("keymatch_with_rbac_in_domain", "node"),
    // A role pattern is not matched directly against the requested role name.
    ("rbac_with_pattern", "pycasbin"),
    // A matcher that reads no policy field is still evaluated once per rule, and each
    // matching rule contributes its own effect.
    ("abac_not_using_policy", "pycasbin"),
    // String literals in matchers are taken literally (no `.p.` rewriting).
    ("syntax_matcher", "go"),
    // Role cycles load; every name is visited once.
    ("rbac_with_cycle", "pycasbin"),
    // Role paths are followed up to `max_role_depth` (default 10,000) links, not 10 (Go)
    // or 9 (pycasbin): Warden's own side, the `warden` answers of the case.
    ("warden_role_hierarchy_depth", "warden"),
    // regexMatch's `\d`/`\w` are Unicode classes, as in Python (Go's RE2: ASCII).
    ("warden_contested_regex_unicode_digits", "pycasbin"),
    // globMatch's `**` path segment crosses `/` (Go casbin's doublestar).
    ("warden_contested_glob_doublestar", "go"),
    // subjectPriority ranks a rule subject outside `g` with the leaves (pycasbin).
    ("warden_contested_subject_priority_outside_g", "pycasbin"),
];

fn config_for(case: &Path) -> (Vec<String>, Vec<String>) {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    let pairs = |key: &str| -> Vec<String> {
        meta.get(key)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    };
    (pairs("role_matching"), pairs("domain_matching"))
}

fn lines(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn engine_agrees_with_the_reference_corpus() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 32,
        "expected the 32-case corpus, found {}",
        cases.len()
    );
    let mut scored = 0usize;
    let mut failures = Vec::new();
    let mut unsupported = Vec::new();
    let mut contested_checked = 0usize;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let (rm, dm) = config_for(case);
        let config = eval::config_from_pairs(&rm, &dm).expect("case config");
        let policy = match eval::prepare(&case.join("model.conf"), &case.join("policy.csv"), &config) {
            Ok(p) => p,
            Err(e) => {
                unsupported.push((name.clone(), e.to_string()));
                continue;
            }
        };
        for exp in lines(&case.join("expected.jsonl")) {
            scored += 1;
            let got = eval::answer(
                &policy,
                &serde_json::json!({ "request": exp["request"] }).to_string(),
            );
            // `"error": true`: the reference reports an error for this request (Warden: a
            // deny with `{"error": …}`).
            if exp.get("error") == Some(&Value::Bool(true)) {
                if got.get("error").is_none() {
                    failures.push(format!(
                        "{name}: {} → expected an error, got {got}",
                        exp["request"]
                    ));
                }
                continue;
            }
            if got.get("allow") != Some(&exp["allow"]) {
                failures.push(format!(
                    "{name}: {} → expected {}, got {got}",
                    exp["request"], exp["allow"]
                ));
            }
        }
        let side = CONTESTED_SIDE.iter().find(|(c, _)| *c == name).map(|(_, s)| *s);
        for c in lines(&case.join("contested.jsonl")) {
            let side = side.unwrap_or_else(|| panic!("{name} has contested requests but no documented side"));
            let want = &c[side];
            let got = eval::answer(
                &policy,
                &serde_json::json!({ "request": c["request"] }).to_string(),
            );
            contested_checked += 1;
            if got.get("allow") != Some(want) {
                failures.push(format!(
                    "{name} (contested, {side}'s side): {} → expected {want}, got {got}",
                    c["request"]
                ));
            }
        }
    }
    println!(
        "conformance: {} cases, {scored} scored requests, {contested_checked} contested requests",
        cases.len()
    );
    for (name, err) in &unsupported {
        println!("unsupported model: {name}: {err}");
    }
    for (name, err) in &unsupported {
        assert!(
            UNSUPPORTED
                .iter()
                .any(|(n, start)| n == name && err.contains(start)),
            "{name} was refused but is not documented as unsupported: {err}"
        );
    }
    assert!(scored > 10_000, "only {scored} scored requests were run");
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}
