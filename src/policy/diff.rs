//! Blast radius of a policy edit: the decisions that change between two compiled policies
//! over one directory index (`warden policy diff`).
//!
//! The request space is enumerated, not sampled, so "no change" means no change for every
//! request in it:
//!
//! - **subjects**: per org, every member, plus one user who is a member of no org there
//!   (a stranger; a member of another org answers the same way under a domain-scoped model);
//! - **resources**: `org` and `apps/<app>` for every app of the org, plus every object
//!   pattern of either policy's rules instantiated per app: `apps/:app/secrets/*` becomes
//!   `apps/<app>/secrets/x` (a named parameter `:id`/`{id}` becomes its name, a `*`
//!   becomes `x`). Patterns with regex syntax cannot be instantiated and only get the
//!   base shapes;
//! - **actions**: every action either policy's rules name (not `*`), plus any the caller
//!   adds (the actions a `*` rule covers are unbounded).
//!
//! Both engines share one `Arc<DirectoryIndex>`, so the only difference between the two
//! answers is the policy. Decisions come from `Engine::check`; `Engine::explain` runs only
//! for requests whose decision changed. Never touches redb or files.

use crate::engine::index::DirectoryIndex;
use crate::engine::{CheckInput, CompiledPolicy, Engine, RuleRef};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

/// Default bound on the number of requests compared; `--limit` raises it.
pub const DEFAULT_LIMIT: u64 = 10_000_000;

/// One resource shape: literal segments, `None` where the app id goes.
type Shape = Vec<Option<String>>;

/// The requests to compare, with the directory materialized per org (sorted, so the
/// output is deterministic) and resources kept as shapes until evaluation.
#[derive(Debug, Default)]
pub struct RequestSpace {
    pub orgs: Vec<OrgSpace>,
    pub actions: Vec<String>,
    /// Shapes without an app (`org`), compared once per org.
    org_shapes: BTreeSet<Shape>,
    /// Shapes naming an app, compared once per app of the org.
    app_shapes: BTreeSet<Shape>,
}

#[derive(Debug, Default)]
pub struct OrgSpace {
    pub org: String,
    /// Members in id order, then the stranger.
    pub subjects: Vec<String>,
    pub apps: Vec<String>,
}

impl RequestSpace {
    /// Build the space over `index` from both policies' rules plus `extra_actions`.
    pub fn new(
        old: &CompiledPolicy,
        new: &CompiledPolicy,
        index: &DirectoryIndex,
        extra_actions: &[String],
    ) -> Self {
        let mut space = RequestSpace::default();
        space.org_shapes.insert(vec![Some("org".into())]);
        space.app_shapes.insert(vec![Some("apps".into()), None]);
        let mut actions: BTreeSet<String> = extra_actions
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        for policy in [old, new] {
            let obj = column(policy, "obj");
            let act = column(policy, "act");
            for row in &policy.rows {
                if let Some(pattern) = obj.and_then(|i| row.values.get(i)) {
                    match shape(pattern) {
                        Some(s) if s.contains(&None) => space.app_shapes.insert(s),
                        Some(s) => space.org_shapes.insert(s),
                        None => false,
                    };
                }
                if let Some(a) = act.and_then(|i| row.values.get(i))
                    && &**a != "*"
                {
                    actions.insert(a.to_string());
                }
            }
        }
        space.actions = actions.into_iter().collect();

        let dir = index.read();
        let mut orgs: Vec<_> = dir.orgs.iter().collect();
        orgs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (org, entry) in orgs {
            let mut subjects: Vec<String> = entry.members.keys().map(|u| u.to_string()).collect();
            subjects.sort_unstable();
            subjects.push(stranger(&subjects));
            let mut apps: Vec<String> = entry.apps.iter().map(|a| a.to_string()).collect();
            apps.sort_unstable();
            space.orgs.push(OrgSpace {
                org: org.to_string(),
                subjects,
                apps,
            });
        }
        space
    }

    /// How many requests a diff over this space compares, at most: a literal pattern that
    /// spells out an app's resource (`apps/web`) is compared once, not twice.
    pub fn len(&self) -> u64 {
        let per_action = self.actions.len() as u64;
        self.orgs
            .iter()
            .map(|o| {
                let resources =
                    self.org_shapes.len() as u64 + o.apps.len() as u64 * self.app_shapes.len() as u64;
                o.subjects.len() as u64 * resources * per_action
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resources of one org, sorted and without duplicates.
    fn resources(&self, org: &OrgSpace) -> Vec<String> {
        let mut out: BTreeSet<String> = self.org_shapes.iter().map(|s| fill(s, "")).collect();
        for app in &org.apps {
            out.extend(self.app_shapes.iter().map(|s| fill(s, app)));
        }
        out.into_iter().collect()
    }
}

/// The position of a `p` column by name (`obj`, `act`), as the model declares it.
fn column(policy: &CompiledPolicy, name: &str) -> Option<usize> {
    policy.p_tokens.iter().position(|t| t == name)
}

/// A user id that is not a member of the org: `nonmember`, or `nonmember-<n>` if taken.
fn stranger(members: &[String]) -> String {
    let taken = |name: &str| members.binary_search_by(|m| m.as_str().cmp(name)).is_ok();
    let mut name = "nonmember".to_string();
    let mut n = 1;
    while taken(&name) {
        name = format!("nonmember-{n}");
        n += 1;
    }
    name
}

/// An object pattern as a concrete resource shape. The app id goes where the pattern
/// names `:app`/`{app}`, or in the second segment of an `apps/…` pattern that is a
/// parameter or `*`. `None` for patterns with regex syntax.
fn shape(pattern: &str) -> Option<Shape> {
    if pattern.is_empty() || pattern.contains(['(', ')', '[', ']', '^', '$', '|', '\\', '+', '?']) {
        return None;
    }
    let segments: Vec<&str> = pattern.split('/').collect();
    let under_apps = segments.first() == Some(&"apps");
    let out = segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let param = seg
                .strip_prefix(':')
                .or_else(|| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')));
            match param {
                Some("app") => None,
                _ if i == 1 && under_apps && (param.is_some() || *seg == "*") => None,
                Some(name) => Some(name.to_string()),
                None => Some(seg.replace('*', "x")),
            }
        })
        .collect();
    Some(out)
}

fn fill(shape: &Shape, app: &str) -> String {
    shape
        .iter()
        .map(|s| s.as_deref().unwrap_or(app))
        .collect::<Vec<_>>()
        .join("/")
}

/// One policy's answer to a changed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub allowed: bool,
    /// `allow`, `deny`, `default deny`, or `error` when the engine refused the request
    /// (a deny, as it is for a daemon client).
    pub effect: String,
    /// The decisive rule, `file:line` and text.
    pub rule: Option<RuleRef>,
    pub error: Option<String>,
}

impl Side {
    fn of(engine: &Engine, q: &CheckInput<'_>) -> Side {
        match engine.explain(q) {
            Ok(x) => Side {
                allowed: x.allowed,
                effect: x.effect,
                rule: x.rule,
                error: None,
            },
            Err(e) => Side {
                allowed: false,
                effect: "error".into(),
                rule: None,
                error: Some(e.to_string()),
            },
        }
    }

    fn describe(&self) -> String {
        let mut out = self.effect.clone();
        if let Some(r) = &self.rule {
            let _ = write!(out, ", rule {}:{} `{}`", r.file, r.line, r.text);
        } else if let Some(e) = &self.error {
            let _ = write!(out, ": {e}");
        } else {
            out.push_str(", no rule matched");
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "allow": self.allowed,
            "effect": self.effect,
            "rule": self.rule.as_ref().map(|r| serde_json::json!({"file": r.file, "line": r.line, "text": r.text})),
            "error": self.error,
        })
    }
}

/// A request whose decision differs between the two policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub subject: String,
    pub org: String,
    pub resource: String,
    pub action: String,
    pub old: Side,
    pub new: Side,
}

impl Change {
    /// `true` when the new policy allows what the old one denied.
    pub fn newly_allowed(&self) -> bool {
        self.new.allowed
    }

    fn arrow(&self) -> &'static str {
        if self.newly_allowed() {
            "DENY→ALLOW"
        } else {
            "ALLOW→DENY"
        }
    }
}

/// Every change, in request order, and how many requests were compared.
#[derive(Debug, Default)]
pub struct DiffReport {
    pub compared: u64,
    pub changes: Vec<Change>,
}

impl DiffReport {
    pub fn newly_allowed(&self) -> usize {
        self.changes.iter().filter(|c| c.newly_allowed()).count()
    }

    pub fn newly_denied(&self) -> usize {
        self.changes.len() - self.newly_allowed()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests compared, {} newly allowed, {} newly denied",
            self.compared,
            self.newly_allowed(),
            self.newly_denied()
        )
    }

    /// One block per change (the request, then each policy's effect and decisive rule),
    /// then the summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let _ = writeln!(
                out,
                "{} {} {} {} in {}",
                c.arrow(),
                c.subject,
                c.action,
                c.resource,
                c.org
            );
            let _ = writeln!(out, "    old: {}", c.old.describe());
            let _ = writeln!(out, "    new: {}", c.new.describe());
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// One JSON object per line per change, then a summary object.
    pub fn render_json(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let v = serde_json::json!({
                "change": c.arrow(),
                "subject": c.subject,
                "org": c.org,
                "resource": c.resource,
                "action": c.action,
                "old": c.old.json(),
                "new": c.new.json(),
            });
            let _ = writeln!(out, "{v}");
        }
        let summary = serde_json::json!({"summary": {
            "compared": self.compared,
            "newly_allowed": self.newly_allowed(),
            "newly_denied": self.newly_denied(),
        }});
        let _ = writeln!(out, "{summary}");
        out
    }
}

/// Decide every request of `space` under both policies over the same `index`, and
/// explain each one whose decision changed. A request the engine refuses is a deny.
pub fn diff(
    old: Arc<CompiledPolicy>,
    new: Arc<CompiledPolicy>,
    index: Arc<DirectoryIndex>,
    space: &RequestSpace,
) -> DiffReport {
    let before = Engine::new(old, index.clone());
    let after = Engine::new(new, index);
    let allowed = |e: &Engine, q: &CheckInput<'_>| e.check(q).is_ok_and(|d| d.allowed);
    let mut report = DiffReport::default();
    for org in &space.orgs {
        let resources = space.resources(org);
        for subject in &org.subjects {
            for resource in &resources {
                for action in &space.actions {
                    let q = CheckInput {
                        subject,
                        org: &org.org,
                        resource,
                        action,
                    };
                    report.compared += 1;
                    if allowed(&before, &q) == allowed(&after, &q) {
                        continue;
                    }
                    report.changes.push(Change {
                        subject: subject.clone(),
                        org: org.org.clone(),
                        resource: resource.clone(),
                        action: action.clone(),
                        old: Side::of(&before, &q),
                        new: Side::of(&after, &q),
                    });
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::IndexOp;
    use crate::policy::{
        DEFAULT_ENGINE, DEFAULT_MODEL, DEFAULT_POLICY, ENGINE_FILE, MODEL_FILE, POLICY_FILE, compile_texts,
        parse_engine_config,
    };

    fn policy(csv: &str) -> Arc<CompiledPolicy> {
        let config = parse_engine_config(ENGINE_FILE, DEFAULT_ENGINE).unwrap();
        Arc::new(compile_texts(MODEL_FILE, DEFAULT_MODEL, POLICY_FILE, csv, &config).unwrap())
    }

    /// The directory of `policies/tests/default_roles.yaml`'s acme.
    fn acme() -> Arc<DirectoryIndex> {
        let s = |x: &str| x.to_string();
        let mut ops = vec![];
        for (user, role) in [
            ("alice", "admin"),
            ("bob", "org_contributor"),
            ("carol", "team_contributor"),
            ("dave", "org_user"),
        ] {
            ops.push(IndexOp::SetMember {
                org: s("acme"),
                user: s(user),
                role: s(role),
            });
        }
        for app in ["web", "api"] {
            ops.push(IndexOp::AddApp {
                org: s("acme"),
                app: s(app),
                labels: vec![],
            });
        }
        ops.push(IndexOp::AddTeamMember {
            org: s("acme"),
            team: s("frontend"),
            user: s("carol"),
        });
        ops.push(IndexOp::GrantApp {
            org: s("acme"),
            team: s("frontend"),
            app: s("web"),
        });
        let index = DirectoryIndex::new();
        index.apply(1, &ops);
        Arc::new(index)
    }

    fn run(old: &str, new: &str) -> DiffReport {
        let (old, new, index) = (policy(old), policy(new), acme());
        let space = RequestSpace::new(&old, &new, &index, &[]);
        let report = diff(old, new, index, &space);
        assert_eq!(report.compared, space.len());
        report
    }

    fn requests(report: &DiffReport) -> Vec<(bool, String, String, String)> {
        report
            .changes
            .iter()
            .map(|c| {
                (
                    c.newly_allowed(),
                    c.subject.clone(),
                    c.resource.clone(),
                    c.action.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn identical_policies_change_nothing() {
        let report = run(DEFAULT_POLICY, DEFAULT_POLICY);
        // 4 members and a stranger × 9 resources (`org`, 4 shapes per app) × the 10
        // actions the rules name.
        assert_eq!(report.compared, 5 * 9 * 10, "{}", report.summary());
        assert!(report.changes.is_empty(), "{}", report.render());
    }

    #[test]
    fn added_allow_rule_shows_exactly_the_newly_allowed_requests() {
        let new = format!("{DEFAULT_POLICY}p, role:org_user, org, usage:read, org, allow\n");
        let report = run(DEFAULT_POLICY, &new);
        // bob (org_contributor) and alice (admin) could already; carol is no org_user.
        assert_eq!(
            requests(&report),
            vec![(true, "dave".into(), "org".into(), "usage:read".into())]
        );
        let c = &report.changes[0];
        assert_eq!(
            (c.old.effect.as_str(), c.old.rule.as_ref()),
            ("default deny", None)
        );
        let rule = c.new.rule.as_ref().unwrap();
        assert_eq!(
            (rule.file.as_str(), rule.line),
            (POLICY_FILE, new.lines().count() as u32)
        );
        assert_eq!(
            report.summary().split_once(", ").unwrap().1,
            "1 newly allowed, 0 newly denied"
        );
    }

    #[test]
    fn removed_deny_rule_shows_the_reads_it_was_blocking() {
        let deny = "p, role:member, apps/:app/secrets, app:read, org, deny\n";
        assert!(DEFAULT_POLICY.contains(deny));
        let report = run(DEFAULT_POLICY, &DEFAULT_POLICY.replace(deny, ""));
        let mut expected: Vec<_> = [
            ("alice", "api"),
            ("alice", "web"),
            ("bob", "api"),
            ("bob", "web"),
            ("carol", "web"),
            ("dave", "api"),
            ("dave", "web"),
        ]
        .iter()
        .map(|(u, app)| {
            (
                true,
                u.to_string(),
                format!("apps/{app}/secrets"),
                "app:read".to_string(),
            )
        })
        .collect();
        expected.sort();
        let mut got = requests(&report);
        got.sort();
        assert_eq!(got, expected, "{}", report.render());
        let old_rule = report.changes[0].old.rule.as_ref().unwrap();
        assert_eq!(old_rule.text, deny.trim_end());
        assert_eq!(report.newly_denied(), 0);
    }

    #[test]
    fn removed_allow_rule_shows_newly_denied_requests_with_both_rules() {
        let allow = "p, role:org_contributor, org, app:create, org, allow\n";
        let report = run(DEFAULT_POLICY, &DEFAULT_POLICY.replace(allow, ""));
        assert_eq!(
            requests(&report),
            vec![(false, "bob".into(), "org".into(), "app:create".into())]
        );
        let text = report.render();
        assert!(
            text.starts_with("ALLOW→DENY bob app:create org in acme\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("old: allow, rule {POLICY_FILE}:")),
            "{text}"
        );
        assert!(text.contains("new: default deny, no rule matched"), "{text}");
        assert!(text.ends_with(", 0 newly allowed, 1 newly denied\n"), "{text}");
        let json = report.render_json();
        let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["change"], "ALLOW→DENY");
        assert_eq!(lines[1]["summary"]["newly_denied"], 1);
    }

    #[test]
    fn resource_shapes_come_from_the_rules_object_patterns() {
        let p = policy(DEFAULT_POLICY);
        let space = RequestSpace::new(&p, &p, &acme(), &["webhook:manage".into()]);
        let acme = &space.orgs[0];
        assert_eq!(acme.subjects.last().map(String::as_str), Some("nonmember"));
        assert_eq!(
            space.resources(acme),
            [
                "apps/api",
                "apps/api/secrets",
                "apps/api/secrets/x",
                "apps/api/x",
                "apps/web",
                "apps/web/secrets",
                "apps/web/secrets/x",
                "apps/web/x",
                "org"
            ]
        );
        assert!(space.actions.contains(&"webhook:manage".to_string()));
        assert!(!space.actions.contains(&"*".to_string()));
        assert_eq!(
            shape("files/{id}/*"),
            Some(vec![Some("files".into()), Some("id".into()), Some("x".into())])
        );
        assert_eq!(shape("^apps/.*$"), None);
    }
}
