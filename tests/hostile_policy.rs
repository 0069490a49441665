//! Hostile policy files against the real daemon: a hot reload of a matcher nested 2,000
//! levels deep (in `model.conf`, or in an `eval()` rule of `policy.csv`) is refused with
//! `file:line: nesting deeper than 64` and the last good policy keeps answering, where it
//! used to overflow a tokio worker's stack and abort the process. A 20,000-term `&&`
//! chain is not nesting: it loads and answers.

use crate::common;

use common::*;
use std::time::{Duration, Instant};
use warden::api::client::connect;
use warden::api::pb;

const MODEL: &str = "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = sub, dom, obj, act\n\n\
[policy_effect]\ne = some(where (p.eft == allow))\n\n[matchers]\nm = r.sub == p.sub && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act\n";

/// The matcher's line in `MODEL`.
const MATCHER_LINE: usize = 11;

const EVAL_MODEL: &str = "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = rule, dom, obj, act\n\n\
[policy_effect]\ne = some(where (p.eft == allow))\n\n[matchers]\nm = eval(p.rule) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act\n";

async fn allowed(target: &str, sub: &str) -> bool {
    let mut c = pb::authz_service_client::AuthzServiceClient::new(connect(target).await.expect("connect"));
    c.check(pb::CheckRequest {
        subject: sub.into(),
        org: "acme".into(),
        resource: "apps/web".into(),
        action: "read".into(),
        ..Default::default()
    })
    .await
    .expect("check")
    .into_inner()
    .allowed
}

async fn status(target: &str) -> pb::PolicyStatus {
    let mut a = pb::admin_service_client::AdminServiceClient::new(connect(target).await.expect("connect"));
    a.get_policy_status(pb::GetPolicyStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// Wait until the daemon reports a reload error; the error.
async fn reload_error(target: &str) -> String {
    let start = Instant::now();
    loop {
        let s = status(target).await;
        if !s.last_reload_error.is_empty() {
            return s.last_reload_error;
        }
        assert!(start.elapsed() < PATIENCE, "the broken policy was never reported");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Wait until the last reload succeeded and its content hash is not `old`.
async fn reloaded(target: &str, old: &str) {
    let start = Instant::now();
    loop {
        let s = status(target).await;
        if s.last_reload_error.is_empty() && s.content_hash != old {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the edit never loaded: {}",
            s.last_reload_error
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn wrapped(inner: &str, open: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn a_2000_deep_matcher_is_refused_on_reload_and_the_last_good_policy_serves() {
    let work = Workdir::with_policy_files(&[
        ("model.conf", MODEL),
        ("policy.csv", "p, alice, acme, apps/:id, read\n"),
    ]);
    let model = work.policies().join("model.conf");
    let mut daemon = work.start();
    let target = daemon.work.unix_target();
    let rt = runtime();
    rt.block_on(async {
        assert!(allowed(&target, "alice").await);
        let good = status(&target).await.content_hash;
        let body = "r.sub == p.sub && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act";
        let hostile = [
            ("parentheses", wrapped(body, "(", ")", 2000)),
            ("negations", format!("{}({body})", "!".repeat(2000))),
            ("unary minus", format!("{} && {}1 == 1", body, "-".repeat(2000))),
            (
                "nested calls",
                format!(
                    "{body} && {} == \"\"",
                    wrapped("r.obj", "keyGet(", ", \"x\")", 2000)
                ),
            ),
            (
                "nested in",
                format!(
                    "{body} && r.act in ({})",
                    wrapped("'read'", "r.sub in (", ")", 2000)
                ),
            ),
        ];
        for (what, matcher) in hostile {
            std::fs::write(&model, MODEL.replace(body, &matcher)).unwrap();
            let err = reload_error(&target).await;
            assert!(
                err.contains(&format!("model.conf:{MATCHER_LINE}: nesting deeper than 64")),
                "{what}: {err}"
            );
            let s = status(&target).await;
            assert_eq!(
                s.content_hash, good,
                "{what}: the broken model replaced the good one"
            );
            assert!(
                allowed(&target, "alice").await,
                "{what}: the last good policy must keep serving"
            );
            assert!(!allowed(&target, "bob").await, "{what}");
            // Repair, so the next round's error is its own.
            std::fs::write(&model, MODEL).unwrap();
            let start = Instant::now();
            while !status(&target).await.last_reload_error.is_empty() {
                assert!(start.elapsed() < PATIENCE, "{what}: the repair never loaded");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    assert!(
        !daemon.logs().contains("overflowed its stack"),
        "the daemon overflowed a stack: {}",
        daemon.logs()
    );
    daemon.stop();
}

#[test]
fn a_2000_deep_eval_rule_is_refused_and_a_20000_term_chain_loads() {
    let work = Workdir::with_policy_files(&[
        ("model.conf", EVAL_MODEL),
        ("policy.csv", "p, r.sub == 'alice', acme, apps/:id, read\n"),
    ]);
    let policy = work.policies().join("policy.csv");
    let model = work.policies().join("model.conf");
    let mut daemon = work.start();
    let target = daemon.work.unix_target();
    let rt = runtime();
    rt.block_on(async {
        assert!(allowed(&target, "alice").await);
        let good = status(&target).await.content_hash;
        let deep = wrapped("r.sub == 'bob'", "(", ")", 2000);
        std::fs::write(
            &policy,
            format!("p, r.sub == 'alice', acme, apps/:id, read\np, {deep}, acme, apps/:id, read\n"),
        )
        .unwrap();
        let err = reload_error(&target).await;
        assert!(err.contains("policy.csv:2: nesting deeper than 64"), "{err}");
        assert_eq!(status(&target).await.content_hash, good);
        assert!(allowed(&target, "alice").await);
        assert!(!allowed(&target, "bob").await);

        // A flat chain of 20,000 terms is long, not deep: it loads and decides.
        std::fs::write(&policy, "p, r.sub == 'alice', acme, apps/:id, read\n").unwrap();
        let chain = vec!["r.act == p.act"; 20_000].join(" && ");
        std::fs::write(
            &model,
            EVAL_MODEL.replace("r.act == p.act\n", &format!("{chain}\n")),
        )
        .unwrap();
        reloaded(&target, &good).await;
        assert!(allowed(&target, "alice").await);
        assert!(!allowed(&target, "bob").await);
    });
    daemon.stop();
}
