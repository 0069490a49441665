//! Property tests: no input makes the engine panic — not a request, not a policy.

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};
use std::path::Path;
use std::sync::Arc;
use warden::engine::funcs::{Func, Pattern};
use warden::engine::index::{DirectoryIndex, IndexOp};
use warden::engine::{CheckInput, CompiledPolicy, Engine, ReqVal};
use warden::policy::{compile_texts, eval};

/// Where a failing case's seed is saved: `target/proptest-regressions/`, ignored by git,
/// and replayed from there by the next local run. Never `tests/*.proptest-regressions`
/// (proptest's default), which a failing run would leave in the tree: a seed replays
/// the same input only while the strategy stays the same, so a failure worth keeping
/// becomes a named, hand-written regression test instead.
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/proptest-regressions/no_panic.txt"
);

fn config(cases: u32, regressions: &'static str) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..ProptestConfig::default()
    }
}

#[test]
fn a_failing_property_saves_its_seed_under_target_not_in_the_tree() {
    const SELF_TEST: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/proptest-regressions/no_panic_self_test.txt"
    );
    let _ = std::fs::remove_file(SELF_TEST);
    let mut runner = TestRunner::new(config(8, SELF_TEST));
    let result = runner.run(&any::<u8>(), |_| Err(TestCaseError::fail("always fails")));
    assert!(result.is_err());
    let saved = std::fs::read_to_string(SELF_TEST).expect("the seed is saved under target/");
    assert!(saved.lines().any(|l| l.starts_with("cc ")), "{saved}");
    std::fs::remove_file(SELF_TEST).expect("remove the self-test seed");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let in_tree: Vec<_> = std::fs::read_dir(&tests)
        .expect("tests/")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".proptest-regressions"))
        .collect();
    assert!(in_tree.is_empty(), "regression files in tests/: {in_tree:?}");
}

fn corpus_policies() -> &'static [CompiledPolicy] {
    static CACHE: std::sync::OnceLock<Vec<CompiledPolicy>> = std::sync::OnceLock::new();
    CACHE.get_or_init(load_corpus_policies)
}

fn load_corpus_policies() -> Vec<CompiledPolicy> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance/cases");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("corpus") {
        let case = entry.expect("entry").path();
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).expect("case.json"))
                .expect("json");
        let pairs = |k: &str| -> Vec<String> {
            meta.get(k)
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(g, f)| format!("{g}={}", f.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default()
        };
        let cfg = eval::config_from_pairs(&pairs("role_matching"), &pairs("domain_matching")).expect("cfg");
        if let Ok(p) = eval::prepare(&case.join("model.conf"), &case.join("policy.csv"), &cfg) {
            out.push(p);
        }
    }
    out
}

/// Strings that tend to break matchers: path-ish, regex-ish, IP-ish, unicode, empty.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/:*{}().\\[\\]|^$?+-]{0,24}",
        Just(String::new()),
        Just("apps/web/secrets/k".to_string()),
        Just("192.168.2.1".to_string()),
        Just("::1".to_string()),
        Just("role:admin".to_string()),
        "\\PC{0,12}",
    ]
}

fn engine() -> Engine {
    let index = Arc::new(DirectoryIndex::new());
    index.apply(
        1,
        &[
            IndexOp::SetMember {
                org: "acme".into(),
                user: "alice".into(),
                role: "admin".into(),
            },
            IndexOp::AddTeamMember {
                org: "acme".into(),
                team: "t".into(),
                user: "alice".into(),
            },
            IndexOp::GrantApp {
                org: "acme".into(),
                team: "t".into(),
                app: "web".into(),
            },
        ],
    );
    Engine::new(
        Arc::new(warden::policy::load_defaults().expect("defaults")),
        index,
    )
}

proptest! {
    #![proptest_config(config(2000, REGRESSIONS))]

    #[test]
    fn daemon_checks_never_panic(s in nasty(), o in nasty(), r in nasty(), a in nasty()) {
        let e = engine();
        let q = CheckInput { subject: &s, org: &o, resource: &r, action: &a };
        let _ = e.check(&q);
        let _ = e.explain(&q);
        let _ = e.lookup_resources(&s, &o, &a, &r, 3);
        let _ = e.lookup_subjects(&o, &r, &a, &s, 3);
    }

    #[test]
    fn corpus_policies_never_panic_on_any_request(values in proptest::collection::vec(nasty(), 0..6), json in any::<bool>()) {
        let obj = serde_json::json!({"Name": "alice", "Owner": "alice", "Age": 30});
        for p in corpus_policies().iter().take(40) {
            let mut req: Vec<ReqVal<'_>> = values.iter().map(|v| ReqVal::Str(v)).collect();
            if json && !req.is_empty() {
                req[0] = ReqVal::Json(&obj);
            }
            let _ = p.enforce(&req);
        }
    }

    #[test]
    fn arbitrary_policy_text_never_panics(model in "[\\[\\]a-z_=,.() &|!\"'\\n]{0,200}", policy in "[a-z0-9_,*:/{}() \\n]{0,200}") {
        let _ = compile_texts("model.conf", &model, "policy.csv", &policy, &Default::default());
    }

    #[test]
    fn mutated_default_policies_never_panic(cut in 0usize..2000, junk in "[a-z0-9_,*:/{}()\\[\\]|&=!\" \\n]{0,16}") {
        let model = warden::policy::DEFAULT_MODEL;
        let policy = warden::policy::DEFAULT_POLICY;
        let at = cut % (model.len() + policy.len());
        let (m, p) = if at < model.len() {
            let mut m = model.to_string();
            let at = (0..=at).rev().find(|i| m.is_char_boundary(*i)).unwrap_or(0);
            m.insert_str(at, &junk);
            (m, policy.to_string())
        } else {
            let mut p = policy.to_string();
            let at = at - model.len();
            let at = (0..=at).rev().find(|i| p.is_char_boundary(*i)).unwrap_or(0);
            p.insert_str(at, &junk);
            (model.to_string(), p)
        };
        if let Ok(c) = compile_texts("model.conf", &m, "policy.csv", &p, &Default::default()) {
            let _ = c.enforce(&[ReqVal::Str("alice"), ReqVal::Str("acme"), ReqVal::Str("apps/web"), ReqVal::Str("app:read")]);
        }
    }
}

// Fewer cases: each builds values of kilobytes.
proptest! {
    #![proptest_config(config(32, REGRESSIONS))]

    /// Nesting of every kind, up to far past the bound, refused or answered but never a
    /// stack overflow (which aborts the process rather than panicking), in the matcher
    /// and in an `eval()` rule.
    #[test]
    fn deep_nesting_never_overflows(kinds in proptest::collection::vec(0usize..6, 1..4), depth in 0usize..3000) {
        let mut m = "r.sub == p.sub".to_string();
        for (i, k) in kinds.iter().cycle().take(depth).enumerate() {
            m = match (k + i) % 6 {
                0 => format!("({m})"),
                1 => format!("!{m}"),
                2 => format!("keyGet2({m}, p.obj, 'x') == ''"),
                3 => format!("r.act in ({m}, 'x')"),
                4 => format!("-{m}"),
                _ => format!("{m} + 1"),
            };
        }
        let model = format!(
            "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
             [policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = {m}\n"
        );
        if let Ok(c) = compile_texts("model.conf", &model, "policy.csv", "p, alice, data1, read\n", &Default::default()) {
            let _ = c.enforce(&[ReqVal::Str("alice"), ReqVal::Str("data1"), ReqVal::Str("read")]);
        }
        let eval_model = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = rule, obj, act\n\
             [policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = eval(p.rule) && r.obj == p.obj\n";
        let rule = m.replace("p.sub", "'alice'").replace("p.obj", "'x'");
        let policy = format!("p, \"{rule}\", data1, read\n");
        if let Ok(c) = compile_texts("model.conf", eval_model, "policy.csv", &policy, &Default::default()) {
            let _ = c.enforce(&[ReqVal::Str("alice"), ReqVal::Str("data1"), ReqVal::Str("read")]);
        }
    }

    /// Globs and keyMatch patterns built from the shapes that make backtracking matchers
    /// exponential, against long values: they answer (the time is the point; a hang
    /// would stall the suite).
    #[test]
    fn backtracking_shaped_patterns_answer(stars in 1usize..12, sep in "[-a/.]", tail in "[a-z.]{0,4}", len in 0usize..4096) {
        let pattern = format!("{}{tail}", format!("*{sep}").repeat(stars));
        let value = sep.repeat(len);
        for f in [Func::GlobMatch, Func::KeyMatch2, Func::KeyMatch3, Func::KeyMatch4, Func::KeyMatch5, Func::RegexMatch] {
            if let Ok(p) = Pattern::compile(f, &pattern) {
                let _ = p.matches(f, &value);
            }
        }
    }
}
