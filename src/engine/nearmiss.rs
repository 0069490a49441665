//! Near misses: for a denied request, the rules that came closest to matching and the
//! parts of the matcher each one failed.
//!
//! The matcher is split into its top-level conjuncts (`g(r.sub, p.sub, r.dom)`,
//! `keyMatch2(r.obj, p.obj)`, …); every rule is tried against each conjunct on its own,
//! and the rules failing the fewest come first (allow rules before deny rules, since a
//! deny asks "what would have allowed this?"; then file order). Each failed conjunct is
//! shown with the request's and the rule's values in place, e.g.
//! `g("dave", "role:org_contributor", "acme")`, which reads as the reason.
//!
//! Explanations only: this scans every rule, so it never runs on the check path.

use super::RuleRef;
use super::compile::{Eft, Row};
use super::eval::{self, Cx};
use super::expr::{ArithOp, CmpOp, Expr};

/// A rule that did not match, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMiss {
    pub rule: RuleRef,
    /// Each failed conjunct with the values it saw, e.g. `keyMatch2("apps/web", "org")`.
    pub failed: Vec<String>,
}

/// Up to `limit` rules closest to matching this request, closest first. Rules that
/// match (every conjunct holds) are not near misses and are left out.
pub fn near_misses<'a>(cx: &mut Cx<'a>, limit: usize) -> Vec<NearMiss> {
    let policy = cx.policy;
    let mut conjuncts = Vec::new();
    split(&policy.matcher, &mut conjuncts);
    let mut scored: Vec<(bool, usize, usize, Vec<String>)> = Vec::new();
    for (i, row) in policy.rows.iter().enumerate() {
        let mut failed = Vec::new();
        for c in &conjuncts {
            match eval::holds(c, cx, row) {
                Ok(true) => {}
                Ok(false) => failed.push(show(c, cx, row)),
                Err(e) => failed.push(format!("{} (error: {e})", show(c, cx, row))),
            }
        }
        if !failed.is_empty() {
            scored.push((row.eft != Eft::Allow, failed.len(), i, failed));
        }
    }
    scored.sort_by_key(|s| (s.0, s.1, s.2));
    scored
        .into_iter()
        .take(limit)
        .map(|(_, _, i, failed)| {
            let row = &policy.rows[i];
            NearMiss {
                rule: RuleRef {
                    file: row.source.file.to_string(),
                    line: row.source.line,
                    text: row.source.text.to_string(),
                },
                failed,
            }
        })
        .collect()
}

fn split<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::And(a, b) => {
            split(a, out);
            split(b, out);
        }
        other => out.push(other),
    }
}

/// The expression as text, request and rule values substituted.
fn show(e: &Expr, cx: &Cx<'_>, row: &Row) -> String {
    let s = |x: &Expr| show(x, cx, row);
    let list = |xs: &[Expr]| xs.iter().map(|x| show(x, cx, row)).collect::<Vec<_>>().join(", ");
    match e {
        Expr::Str(v) => format!("{v:?}"),
        Expr::Num(n) => format!("{n}"),
        Expr::Bool(b) => format!("{b}"),
        Expr::Req { idx, path } => {
            let base = match cx.req_str(*idx) {
                Some(v) => format!("{v:?}"),
                None => format!(
                    "r.{}",
                    cx.policy.r_tokens.get(*idx).map(String::as_str).unwrap_or("?")
                ),
            };
            with_path(base, path)
        }
        Expr::Pol { idx, path } => {
            let base = row.values.get(*idx).map(|v| format!("{v:?}")).unwrap_or_else(|| {
                format!(
                    "p.{}",
                    cx.policy.p_tokens.get(*idx).map(String::as_str).unwrap_or("?")
                )
            });
            with_path(base, path)
        }
        Expr::Not(x) => format!("!{}", s(x)),
        Expr::Neg(x) => format!("-{}", s(x)),
        Expr::And(a, b) => format!("({} && {})", s(a), s(b)),
        Expr::Or(a, b) => format!("({} || {})", s(a), s(b)),
        Expr::Cmp(op, a, b) => format!("{} {} {}", s(a), cmp(*op), s(b)),
        Expr::Arith(op, a, b) => format!("{} {} {}", s(a), arith(*op), s(b)),
        Expr::In(a, xs) => format!("{} in ({})", s(a), list(xs)),
        Expr::Call { func, args, .. } => format!("{}({})", func.name(), list(args)),
        Expr::Role { g, args } => format!(
            "{}({})",
            cx.policy.roles.get(*g).map(|r| r.name.as_str()).unwrap_or("g"),
            list(args)
        ),
        Expr::Eval { field, .. } => format!(
            "eval({})",
            row.values
                .get(*field)
                .map(|v| format!("{v:?}"))
                .unwrap_or_default()
        ),
    }
}

fn with_path(base: String, path: &[Box<str>]) -> String {
    path.iter().fold(base, |acc, seg| format!("{acc}.{seg}"))
}

fn cmp(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

fn arith(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
        ArithOp::Mod => "%",
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::index::DirectoryIndex;
    use crate::engine::{CheckInput, Engine, NEAR_MISSES};
    use std::sync::Arc;

    fn demo_engine() -> (Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path().join("w.redb")).unwrap();
        let index = Arc::new(DirectoryIndex::new());
        let ctx = crate::store::ApplyContext::trusted();
        for env in crate::store::demo::demo_changes(1) {
            store.apply_and_index(env, &ctx, &index).unwrap();
        }
        let policy = crate::policy::load_defaults().unwrap();
        (Engine::new(Arc::new(policy), index), dir)
    }

    fn q<'a>(subject: &'a str, resource: &'a str, action: &'a str) -> CheckInput<'a> {
        CheckInput {
            subject,
            org: "acme",
            resource,
            action,
        }
    }

    #[test]
    fn a_deny_lists_the_closest_allow_rules_with_their_failed_conjuncts() {
        let (engine, _dir) = demo_engine();
        let e = engine.explain(&q("dave", "apps/web", "app:write")).unwrap();
        assert!(!e.allowed);
        assert_eq!(e.near_misses.len(), NEAR_MISSES);
        // Every listed rule fails exactly one conjunct, and they are allow rules in file order.
        assert!(
            e.near_misses.iter().all(|m| m.failed.len() == 1),
            "{:#?}",
            e.near_misses
        );
        assert!(e.near_misses.iter().all(|m| m.rule.text.ends_with("allow")));
        let lines: Vec<u32> = e.near_misses.iter().map(|m| m.rule.line).collect();
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
        let contributor = e
            .near_misses
            .iter()
            .find(|m| m.rule.text == "p, role:org_contributor, apps/:app, app:write, org, allow")
            .expect("the org contributor's write rule is a near miss");
        assert_eq!(
            contributor.failed,
            vec![r#"g("dave", "role:org_contributor", "acme")"#]
        );
        let read = e
            .near_misses
            .iter()
            .find(|m| m.rule.text == "p, role:org_user, apps/:app, app:read, org, allow")
            .expect("dave's own read rule is a near miss");
        assert_eq!(
            read.failed,
            vec![r#"("app:write" == "app:read" || "app:read" == "*")"#]
        );
    }

    #[test]
    fn an_allow_has_no_near_misses_and_a_matching_rule_is_never_one() {
        let (engine, _dir) = demo_engine();
        assert!(
            engine
                .explain(&q("alice", "apps/web", "app:write"))
                .unwrap()
                .near_misses
                .is_empty()
        );
        // bob's read of a secret is denied by an explicit deny, though his allow rule
        // matches: that allow rule is not a "near miss".
        let e = engine
            .explain(&q("bob", "apps/web/secrets/k", "app:read"))
            .unwrap();
        assert!(!e.allowed);
        assert_eq!(e.effect, "deny");
        assert!(
            e.near_misses.iter().all(|m| !m.failed.is_empty()
                && m.rule.text != "p, role:org_user, apps/:app/*, app:read, org, allow"),
            "{:#?}",
            e.near_misses
        );
    }
}
