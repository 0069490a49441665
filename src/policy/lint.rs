//! Mistakes a policy can load with but should not ship with (`warden policy validate`).
//!
//! A compiled policy is read for what can be proved without a directory:
//!
//! - **errors** (`policy validate` exits non-zero): a rule that can never match.
//!   - a `p` rule whose subject is `role:X` that nobody can hold: `X` is not an org role of
//!     `engine.toml [directory] roles`, and no `g` line gives it to a holder (a user, or a
//!     role somebody holds);
//!   - a `g` link from such a role (it never applies);
//!   - a resource pattern no resource can fit: a literal segment that is empty, `.` or `..`,
//!     or a control character (the resource grammar of checks refuses every such resource,
//!     see `directory::resource`), under `keyMatch`/`keyMatch2`.
//! - **warnings**: a role name that is held but is one or two edits away from an assignable
//!   role (`g, role:admin, role:biling_viewer`), and an action outside the action catalog
//!   that is one or two edits away from one in it (a new action is legitimate: checks that
//!   name it match).
//!
//! Every finding says "did you mean …?" when a known name is close (Damerau–Levenshtein
//! distance of at most 2, and small for the name's length).
//!
//! Role findings need to know which role definition the directory feeds with members
//! (`[directory] members`) and which roles it may assign (`[directory] roles`); a plain
//! Casbin policy without them is not judged on roles. The daemon's loader reports the same
//! findings as warnings (log and policy status) and never refuses a policy for them: a
//! rule that cannot match changes no decision, and a reload must keep accepting the
//! policies that loaded before. `policy validate` is the gate.

use super::PolicyError;
use crate::engine::CompiledPolicy;
use crate::engine::compile::Key1;
use crate::engine::funcs::Func;
use crate::engine::roles::DirectorySource;
use std::collections::BTreeSet;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A rule that can never match: `policy validate` fails.
    Error,
    /// Probably a mistake, but the policy means something as written.
    Warning,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding, `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub error: PolicyError,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.error.file,
            self.error.line,
            self.severity.name(),
            self.error.reason
        )
    }
}

const ROLE_PREFIX: &str = "role:";

/// Every finding in `policy`, in file and line order.
pub fn lint(policy: &CompiledPolicy) -> Vec<Finding> {
    let mut out = Vec::new();
    roles(policy, &mut out);
    actions(policy, &mut out);
    resources(policy, &mut out);
    out.sort_by(|a, b| {
        (&a.error.file, a.error.line, &a.error.reason).cmp(&(&b.error.file, b.error.line, &b.error.reason))
    });
    out.dedup();
    out
}

/// The closest of `candidates` to `name`, when it is close enough to be a typo of it.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2 && *d * 4 <= name.chars().count().min(c.chars().count()))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

fn did_you_mean(s: Option<&str>) -> String {
    s.map(|s| format!(" Did you mean `{s}`?")).unwrap_or_default()
}

fn finding(severity: Severity, file: &str, line: u32, reason: String) -> Finding {
    Finding {
        severity,
        error: PolicyError {
            file: file.into(),
            line,
            reason,
        },
    }
}

fn roles(policy: &CompiledPolicy, out: &mut Vec<Finding>) {
    let Some(assignable) = &policy.config.assignable_roles else {
        return;
    };
    let Some(gi) = policy
        .roles
        .iter()
        .position(|g| g.source == Some(DirectorySource::Members))
    else {
        return;
    };
    let g = &policy.roles[gi];
    let sub_field = match &policy.index.key1 {
        Some((field, Key1::Role { g, .. })) if *g == gi => Some(*field),
        _ => policy.p_tokens.iter().position(|t| t == "sub"),
    };

    // Who can hold a role: the assignable ones, then whatever a `g` line links a holder to
    // (a user named in a static link holds its parent too). A walk over the links, so a
    // long chain costs one visit per link.
    let mut links: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    let mut queue: Vec<&str> = Vec::new();
    for dl in g.domains.values() {
        for (child, parents) in &dl.parents {
            links
                .entry(child)
                .or_default()
                .extend(parents.iter().map(|p| &*p.name));
            if !child.starts_with(ROLE_PREFIX) {
                queue.push(child);
            }
        }
    }
    let assignable_names: Vec<String> = assignable.iter().map(|r| format!("{ROLE_PREFIX}{r}")).collect();
    queue.extend(assignable_names.iter().map(String::as_str));
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    while let Some(name) = queue.pop() {
        if !reached.insert(name) {
            continue;
        }
        if let Some(parents) = links.get(name) {
            queue.extend(parents.iter().copied());
        }
    }
    let held: BTreeSet<String> = reached
        .iter()
        .filter(|n| n.starts_with(ROLE_PREFIX))
        .map(|n| n.to_string())
        .collect();

    let unheld = |role: &str| {
        let short = role.strip_prefix(ROLE_PREFIX).unwrap_or(role);
        let hint = suggest(role, held.iter().map(String::as_str));
        format!(
            "`{role}` is a role nobody holds: it is not in engine.toml [directory] roles and no \
             `g` line gives it.{} If it is a new role, add \"{short}\" to engine.toml [directory] roles",
            did_you_mean(hint)
        )
    };

    if let Some(field) = sub_field {
        for row in &policy.rows {
            let Some(sub) = row.values.get(field) else {
                continue;
            };
            if sub.starts_with(ROLE_PREFIX) && !held.contains(&**sub) {
                out.push(finding(
                    Severity::Error,
                    &row.source.file,
                    row.source.line,
                    format!("this rule never matches: {}", unheld(sub)),
                ));
            }
        }
    }
    let mut warned: BTreeSet<(&str, u32)> = BTreeSet::new();
    for dl in g.domains.values() {
        for (child, parents) in &dl.parents {
            if child.starts_with(ROLE_PREFIX) && !held.contains(&**child) {
                for p in parents {
                    out.push(finding(
                        Severity::Error,
                        &g.file,
                        p.line,
                        format!("this `{}` link never applies: {}", g.name, unheld(child)),
                    ));
                }
            }
            // A held role that is not assignable but looks like one that is: a typo on the
            // parent side of a link (`g, role:admin, role:biling_viewer`).
            for p in parents {
                let name = &*p.name;
                if !name.starts_with(ROLE_PREFIX) || assignable_names.iter().any(|a| a == name) {
                    continue;
                }
                if let Some(close) = suggest(name, assignable_names.iter().map(String::as_str))
                    && warned.insert((name, p.line))
                {
                    out.push(finding(
                        Severity::Warning,
                        &g.file,
                        p.line,
                        format!(
                            "`{name}` is not an org role of engine.toml [directory] roles; did you mean `{close}`?"
                        ),
                    ));
                }
            }
        }
    }
}

fn actions(policy: &CompiledPolicy, out: &mut Vec<Finding>) {
    // Only a policy the directory feeds speaks the catalog's `<feature>:<verb>` actions.
    if !policy
        .roles
        .iter()
        .any(|g| g.source == Some(DirectorySource::Members))
    {
        return;
    }
    let Some(field) = policy.p_tokens.iter().position(|t| t == "act") else {
        return;
    };
    let catalog = crate::directory::catalog::ACTIONS;
    let mut seen: std::collections::HashMap<&str, Option<&str>> = std::collections::HashMap::new();
    for row in &policy.rows {
        let Some(act) = row.values.get(field) else {
            continue;
        };
        if &**act == "*" || catalog.contains(&&**act) {
            continue;
        }
        // Large generated policies repeat their actions: one suggestion per action.
        let close = *seen
            .entry(act)
            .or_insert_with(|| suggest(act, catalog.iter().copied()));
        if let Some(close) = close {
            out.push(finding(
                Severity::Warning,
                &row.source.file,
                row.source.line,
                format!(
                    "action `{act}` is not in the action catalog; did you mean `{close}`? (a new \
                     action is fine: only checks that name it exactly match this rule)"
                ),
            ));
        }
    }
}

fn resources(policy: &CompiledPolicy, out: &mut Vec<Finding>) {
    let Some(field) = policy.p_tokens.iter().position(|t| t == "obj") else {
        return;
    };
    let Some(func) = policy
        .sites
        .patterns
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, func)| *func)
    else {
        return;
    };
    if !matches!(func, Func::KeyMatch | Func::KeyMatch2) {
        return;
    }
    for row in &policy.rows {
        let Some(pattern) = row.values.get(field) else {
            continue;
        };
        if let Some(why) = unmatchable(pattern) {
            out.push(finding(
                Severity::Error,
                &row.source.file,
                row.source.line,
                format!(
                    "this rule never matches: resource pattern `{}` {why}, and checks refuse \
                     every resource that would fit it (a resource is non-empty segments joined \
                     by `/`, without `.` or `..`, e.g. `apps/web/models/1`)",
                    pattern.escape_default()
                ),
            ));
        }
    }
}

/// Why no resource of the grammar fits a `keyMatch`/`keyMatch2` pattern, or `None` when
/// one may. Wildcards (`*`, `:name`) only add characters, so a literal segment the
/// grammar refuses is in every resource the pattern matches.
fn unmatchable(pattern: &str) -> Option<String> {
    if pattern.chars().any(char::is_control) {
        return Some("contains a control character".into());
    }
    let segments: Vec<&str> = pattern.split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        let why = match *s {
            "" if segments.len() == 1 => "is empty",
            "" if i == 0 => "starts with `/`",
            "" if i + 1 == segments.len() => "ends with `/`",
            "" => "has an empty segment (`//`)",
            "." => "has a `.` segment",
            ".." => "has a `..` segment",
            _ => continue,
        };
        return Some(why.into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{DEFAULT_ENGINE, DEFAULT_MODEL, DEFAULT_POLICY, compile_texts, parse_engine_config};

    fn lint_of(policy_text: &str) -> Vec<Finding> {
        let config = parse_engine_config("engine.toml", DEFAULT_ENGINE).unwrap();
        let p = compile_texts("model.conf", DEFAULT_MODEL, "policy.csv", policy_text, &config).unwrap();
        lint(&p)
    }

    #[test]
    fn the_shipped_policy_has_no_findings() {
        assert_eq!(lint_of(DEFAULT_POLICY), vec![]);
    }

    #[test]
    fn a_rule_for_a_misspelt_role_is_an_error_with_a_suggestion() {
        let text = format!(
            "{DEFAULT_POLICY}g, role:org_user, role:billing_viewer, *\n\
             p, role:biling_viewer, org, billing:manage, org, allow\n"
        );
        let line = text.lines().count() as u32;
        let f = lint_of(&text);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!((f[0].error.file.as_str(), f[0].error.line), ("policy.csv", line));
        assert!(
            f[0].error.reason.contains("Did you mean `role:billing_viewer`?"),
            "{}",
            f[0]
        );
    }

    #[test]
    fn a_new_role_that_is_not_registered_is_named_as_such() {
        let text = format!("{DEFAULT_POLICY}p, role:auditor, org, audit:read, org, allow\n");
        let f = lint_of(&text);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(
            f[0].error
                .reason
                .contains("add \"auditor\" to engine.toml [directory] roles"),
            "{}",
            f[0]
        );
        assert!(!f[0].error.reason.contains("Did you mean"), "{}", f[0]);
        // A link from it never applies either; a link *to* it makes it held.
        let linked = format!("{text}g, role:admin, role:auditor, *\n");
        assert_eq!(lint_of(&linked), vec![]);
        let dangling = format!("{text}g, role:auditor, role:member, *\n");
        assert_eq!(
            lint_of(&dangling)
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count(),
            2
        );
    }

    #[test]
    fn a_misspelt_link_target_and_a_close_action_are_warnings() {
        let text = format!(
            "{DEFAULT_POLICY}g, role:admin, role:org_contributer, *\n\
             p, role:org_user, apps/:app, app:raed, org, allow\n"
        );
        let f = lint_of(&text);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f.iter().all(|f| f.severity == Severity::Warning));
        assert!(
            f[0].error.reason.contains("did you mean `role:org_contributor`?"),
            "{}",
            f[0]
        );
        assert!(f[1].error.reason.contains("did you mean `app:read`?"), "{}", f[1]);
        // A new action nothing resembles is no finding.
        let new = format!("{DEFAULT_POLICY}p, role:org_user, apps/:app, dataset:export, org, allow\n");
        assert_eq!(lint_of(&new), vec![]);
    }

    #[test]
    fn a_pattern_the_resource_grammar_refuses_is_an_error() {
        for bad in ["apps//x", "/apps/:app", "apps/:app/", "apps/../x", "apps/./x"] {
            let text = format!("{DEFAULT_POLICY}p, role:admin, {bad}, app:read, org, allow\n");
            let f = lint_of(&text);
            assert_eq!(f.len(), 1, "{bad}: {f:#?}");
            assert_eq!(f[0].severity, Severity::Error);
            assert!(f[0].error.reason.contains("never matches"), "{}", f[0]);
        }
        for ok in ["apps/*", "apps/:app/x*", "a.b/..c", "org"] {
            assert_eq!(unmatchable(ok), None, "{ok}");
        }
    }

    #[test]
    fn a_role_at_the_end_of_a_long_chain_is_held() {
        // Links listed against the walk's order (the BTreeMap puts `role:c00000` first).
        let mut text = String::from(DEFAULT_POLICY);
        let n = 5000;
        text.push_str("g, role:admin, role:c04999, *\n");
        for i in (1..n).rev() {
            text.push_str(&format!("g, role:c{i:05}, role:c{:05}, *\n", i - 1));
        }
        text.push_str("p, role:c00000, org, audit:read, org, allow\n");
        assert_eq!(lint_of(&text), vec![]);
    }

    #[test]
    fn suggestions_only_for_small_distances() {
        assert_eq!(
            suggest("role:biling_viewer", ["role:billing_viewer", "role:admin"]),
            Some("role:billing_viewer")
        );
        assert_eq!(suggest("role:auditor", ["role:admin", "role:org_user"]), None);
        assert_eq!(suggest("ab", ["ac"]), None);
    }
}
