//! The decision engine: a compiled policy snapshot plus the directory index.
//!
//! Owns `check`, `batch_check`, `explain` and the lookups. It never touches redb or the
//! file system: the `policy` module reads the files and calls [`compile`], and the
//! `store` feeds the [`index::DirectoryIndex`].
//!
//! Check path: one atomic load of the policy snapshot, one shared lock on the index,
//! candidate rows from the rule index, matcher evaluation, effect. No I/O, no lock held
//! across `.await`, no allocation on the common path.

pub mod compile;
pub mod eval;
pub mod expr;
pub mod funcs;
pub mod index;
pub mod nearmiss;
pub mod roles;
pub mod token;

use arc_swap::ArcSwap;
pub use compile::{CompiledPolicy, EngineConfig};
pub use eval::ReqVal;
use index::DirectoryIndex;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The request could not be evaluated (a value a function cannot take, a request
    /// of the wrong shape). The answer is a deny.
    #[error("{0}")]
    Eval(String),
    #[error("invalid page token")]
    InvalidPageToken,
    /// The caller's request is malformed (a reserved subject, a non-canonical resource):
    /// nothing was evaluated. `field` names the request field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// One authorization question in the daemon's shape.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub subject: &'a str,
    pub org: &'a str,
    pub resource: &'a str,
    pub action: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Directory revision the decision was made at.
    pub revision: u64,
    /// The rule that decided, if one did (index into the deciding policy's `rows`).
    pub rule: Option<u32>,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub allowed: bool,
    /// `allow`, `deny`, or `default deny` when no rule matched.
    pub effect: String,
    /// The decisive rule, if any: `file:line` and its text.
    pub rule: Option<RuleRef>,
    /// Role path from the subject to the rule's subject, e.g.
    /// `alice -[admin@acme]-> admin -> org_contributor`; an allow that used a team grant
    /// adds the teams and the grant (`; app:web granted to team:frontend (carol -[member]->
    /// team:frontend -[grant]-> app:web)`).
    pub role_path: String,
    pub revision: u64,
    /// For a deny: the rules closest to matching and what each failed (closest first,
    /// at most [`NEAR_MISSES`]); empty for an allow.
    pub near_misses: Vec<nearmiss::NearMiss>,
}

/// How many near misses an explained deny lists.
pub const NEAR_MISSES: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub file: String,
    pub line: u32,
    pub text: String,
}

/// One page of a lookup. `next_page_token` is empty on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub items: Vec<String>,
    pub next_page_token: String,
    pub revision: u64,
}

impl CompiledPolicy {
    /// Decide a request of any shape (offline evaluation, conformance). No directory.
    pub fn enforce(&self, req: &[ReqVal<'_>]) -> Result<bool, EngineError> {
        let scratch = eval::Scratch::new();
        let mut cx = eval::Cx::new(self, req, None, &scratch);
        eval::decide(&mut cx)
            .map(|o| o.allowed)
            .map_err(EngineError::Eval)
    }

    /// Org roles a membership may hold: `[directory] roles` of `engine.toml` when set
    /// (so abstract roles such as `member` stay internal), else every `role:<name>` that
    /// appears as a rule subject or in a static role link.
    pub fn org_roles(&self) -> std::collections::BTreeSet<String> {
        if let Some(roles) = &self.config.assignable_roles {
            return roles.iter().cloned().collect();
        }
        let mut out = std::collections::BTreeSet::new();
        let mut add = |name: &str| {
            if let Some(r) = name.strip_prefix("role:") {
                out.insert(r.to_string());
            }
        };
        for row in &self.rows {
            if let Some(sub) = row.values.first() {
                add(sub);
            }
        }
        for g in &self.roles {
            for dl in g.domains.values() {
                for (child, parents) in &dl.parents {
                    add(child);
                    for p in parents {
                        add(&p.name);
                    }
                }
            }
        }
        out
    }

    fn require_daemon_shape(&self) -> Result<(), EngineError> {
        if self.r_tokens.len() != 4 {
            return Err(EngineError::Eval(format!(
                "the model's request definition has {} fields ({}); the daemon asks (subject, org, resource, action)",
                self.r_tokens.len(),
                self.r_tokens.join(", ")
            )));
        }
        Ok(())
    }
}

/// The engine: the current policy snapshot behind an atomic pointer, and the index.
pub struct Engine {
    /// `ArcSwap` so that a reload is one pointer store and a check one pointer load;
    /// in-flight checks keep the snapshot they loaded.
    policy: ArcSwap<CompiledPolicy>,
    index: Arc<DirectoryIndex>,
}

const PAGE_PREFIX: &str = "after:";

/// Prefixes of the names the directory puts into role graphs. A subject spelled like
/// one would reach that node through Casbin's `g(x, x)`; it is refused instead.
/// `token:` marks a subject that is an API token's secret (see [`token`]).
pub const RESERVED_PREFIXES: [&str; 5] = ["role:", "team:", "app:", "label:", "token:"];

/// Why `subject` may not be a check's subject (a reserved prefix other than `token:`), if so.
pub fn subject_problem(subject: &str) -> Option<String> {
    RESERVED_PREFIXES
        .iter()
        .filter(|p| **p != token::TOKEN_PREFIX)
        .find(|p| subject.starts_with(**p))
        .map(|p| {
            let shown: String = subject.chars().take(64).collect();
            format!("`{shown}` uses the reserved prefix `{p}`; a subject is a user id or `token:<secret>`")
        })
}

fn check_subject(subject: &str) -> Result<(), EngineError> {
    match subject_problem(subject) {
        Some(reason) => Err(EngineError::Invalid {
            field: "subject",
            reason,
        }),
        None => Ok(()),
    }
}

/// The resource grammar (`directory::resource`), enforced here too so that no entry point
/// can decide a name the service behind Warden would read differently.
fn check_resource(resource: &str) -> Result<(), EngineError> {
    match crate::directory::resource::resource_problem(resource) {
        Some(reason) => Err(EngineError::Invalid {
            field: "resource",
            reason,
        }),
        None => Ok(()),
    }
}

/// Stands for a refused token's secret in explanations.
const REDACTED_TOKEN: &str = "token:<refused>";

fn page_after(token: &str) -> Result<Option<&str>, EngineError> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(PAGE_PREFIX)
        .filter(|s| !s.is_empty())
        .map(Some)
        .ok_or(EngineError::InvalidPageToken)
}

/// Decide one request in the daemon's shape against a snapshot and an index guard, then
/// hand the evaluation context and outcome to `then` (explanations read more from it).
fn with_decision<R>(
    policy: &CompiledPolicy,
    dir: &index::IndexData,
    q: &CheckInput<'_>,
    then: impl FnOnce(&mut eval::Cx<'_>, eval::Outcome) -> R,
) -> Result<R, EngineError> {
    check_resource(q.resource)?;
    // A token decides as its owner, if it is usable for this action here; otherwise the
    // answer is a deny without evaluation (the secret never reaches the evaluator).
    let subject = match q.subject.strip_prefix(token::TOKEN_PREFIX) {
        Some(secret) => match dir.resolve_token(secret, q.org, q.action, token::now_ms()) {
            Ok(entry) => &*entry.subject,
            Err(_) => {
                policy.require_daemon_shape()?;
                let req = [
                    ReqVal::Str(REDACTED_TOKEN),
                    ReqVal::Str(q.org),
                    ReqVal::Str(q.resource),
                    ReqVal::Str(q.action),
                ];
                let scratch = eval::Scratch::new();
                let mut cx = eval::Cx::new(policy, &req, Some(dir), &scratch);
                let denied = eval::Outcome {
                    allowed: false,
                    rule: None,
                };
                return Ok(then(&mut cx, denied));
            }
        },
        None => {
            check_subject(q.subject)?;
            q.subject
        }
    };
    policy.require_daemon_shape()?;
    let req = [
        ReqVal::Str(subject),
        ReqVal::Str(q.org),
        ReqVal::Str(q.resource),
        ReqVal::Str(q.action),
    ];
    let scratch = eval::Scratch::new();
    let mut cx = eval::Cx::new(policy, &req, Some(dir), &scratch);
    let out = if outside_org(policy, dir, q) {
        eval::Outcome {
            allowed: false,
            rule: None,
        }
    } else {
        eval::decide(&mut cx).map_err(EngineError::Eval)?
    };
    // A collaborator on this app (a user outside the org) decides as its collaborator role,
    // for this app only. Tried only after a deny, so allowed checks pay nothing.
    if !out.allowed
        && dir.has_collaborators()
        && let Some(role) = dir.collaborator_role(q.org, q.resource, subject)
    {
        let req = [
            ReqVal::Str(role),
            ReqVal::Str(q.org),
            ReqVal::Str(q.resource),
            ReqVal::Str(q.action),
        ];
        let scratch = eval::Scratch::new();
        let mut cx = eval::Cx::new(policy, &req, Some(dir), &scratch);
        let out = eval::decide(&mut cx).map_err(EngineError::Eval)?;
        return Ok(then(&mut cx, out));
    }
    Ok(then(&mut cx, out))
}

/// Whether `q` names an app (`apps/<id>`, `apps/<id>/…`) that the directory does not list
/// under `q.org`: another org's app, a personal app, or no app at all. Such a request is
/// a deny before any rule is read, because rules scoped to "every app of the org"
/// (`apps/:app`, `apps/*`) match by shape and would otherwise let an admin of one org
/// act on another org's app by naming it with their own org. Only for policies that
/// read the directory; a plain Casbin model decides by its rules alone.
fn outside_org(policy: &CompiledPolicy, dir: &index::IndexData, q: &CheckInput<'_>) -> bool {
    if policy.config.directory.is_empty() {
        return false;
    }
    if !q.resource.starts_with("apps/") {
        return false;
    }
    !dir.org(q.org)
        .is_some_and(|o| o.apps.contains(index::app_of(q.resource)))
}

/// The role path of a decision: from the subject to the decisive rule's subject through
/// the role definition the matcher indexes on; without a decisive rule, the names the
/// subject reaches.
fn role_path(cx: &mut eval::Cx<'_>, out: eval::Outcome) -> String {
    let policy = cx.policy;
    let Some((field, compile::Key1::Role { g, .. })) = &policy.index.key1 else {
        return String::new();
    };
    let (sub, org) = (cx.req_str(0).unwrap_or(""), cx.req_str(1).unwrap_or(""));
    let Some(reach) = cx.reach(*g, sub, org) else {
        return String::new();
    };
    match out.rule.and_then(|i| policy.rows.get(i as usize)) {
        Some(row) => reach.path_to(&row.values[*field], org).unwrap_or_default(),
        None => {
            let names: Vec<&str> = reach.nodes.iter().skip(1).map(|(n, _, _)| *n).collect();
            if names.is_empty() {
                sub.to_string()
            } else {
                format!("{sub} -> {}", names.join(", "))
            }
        }
    }
}

/// Whether the allow of `row` went through a call of the role definition `g` (the
/// directory's teams: user → team → app): walking the matcher the way evaluation
/// short-circuits, a call counts when it sits in a conjunction that held or in the first
/// disjunct that held. `e` holds for `row`.
fn used_role<'a>(e: &'a expr::Expr, g: usize, cx: &mut eval::Cx<'a>, row: &'a compile::Row) -> bool {
    match e {
        expr::Expr::And(a, b) => used_role(a, g, cx, row) || used_role(b, g, cx, row),
        expr::Expr::Or(a, b) => {
            if eval::holds(a, cx, row).unwrap_or(false) {
                used_role(a, g, cx, row)
            } else {
                used_role(b, g, cx, row)
            }
        }
        expr::Expr::Role { g: x, .. } => *x == g,
        _ => false,
    }
}

/// For an allow that used a team grant: `; app:<app> granted to team:<t> (<subject>
/// -[member]-> team:<t> -[grant]-> app:<app>)`, naming every team of the subject that holds
/// the grant. Empty otherwise.
fn team_grant_note<'a>(cx: &mut eval::Cx<'a>, out: eval::Outcome, resource: &str) -> String {
    let policy = cx.policy;
    let (Some(dir), Some(row)) = (cx.dir, out.rule.and_then(|i| policy.rows.get(i as usize))) else {
        return String::new();
    };
    if !out.allowed {
        return String::new();
    }
    let Some(g) = policy
        .roles
        .iter()
        .position(|r| r.source == Some(roles::DirectorySource::Teams))
    else {
        return String::new();
    };
    let app = index::app_of(resource);
    let (Some(sub), Some(org)) = (cx.req_str(0), cx.req_str(1)) else {
        return String::new();
    };
    if app.is_empty() || !used_role(&policy.matcher, g, cx, row) {
        return String::new();
    }
    let teams = dir.granting_teams(org, sub, app);
    if teams.is_empty() {
        return String::new();
    }
    let paths: Vec<String> = teams
        .iter()
        .map(|t| format!("{sub} -[member]-> {t} -[grant]-> app:{app}"))
        .collect();
    format!(
        "; app:{app} granted to {} ({})",
        teams.join(", "),
        paths.join("; ")
    )
}

impl Engine {
    pub fn new(policy: Arc<CompiledPolicy>, index: Arc<DirectoryIndex>) -> Self {
        Self {
            policy: ArcSwap::new(policy),
            index,
        }
    }

    pub fn index(&self) -> &Arc<DirectoryIndex> {
        &self.index
    }

    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.policy.load_full()
    }

    /// Swap in a new policy; in-flight checks finish on the old one.
    pub fn swap_policy(&self, policy: Arc<CompiledPolicy>) {
        self.policy.store(policy);
    }

    pub fn check(&self, q: &CheckInput<'_>) -> Result<Decision, EngineError> {
        self.check_with(&self.policy.load(), q)
    }

    /// [`Engine::check`] judged by `policy` instead of the policy current at this instant. The
    /// write path pins one snapshot per write, so its authorization, role predicate and limits
    /// all come from one version even when a reload lands mid-write.
    pub fn check_with(&self, policy: &CompiledPolicy, q: &CheckInput<'_>) -> Result<Decision, EngineError> {
        let dir = self.index.read();
        let out = with_decision(policy, &dir, q, |_, out| out)?;
        Ok(Decision {
            allowed: out.allowed,
            revision: dir.revision,
            rule: out.rule,
        })
    }

    /// Check many requests against one snapshot and one revision, in order. With
    /// `count_usage`, every answered item whose subject is a member of its org is counted
    /// for usage reports (as [`index::IndexData::count_check`] does), using the entries the
    /// batch has already looked up.
    pub fn batch_check(
        &self,
        qs: &[CheckInput<'_>],
        count_usage: bool,
    ) -> (Vec<Result<bool, EngineError>>, u64) {
        let (out, revision) = self.batch_outcomes(qs, count_usage);
        (out.into_iter().map(|r| r.map(|o| o.allowed)).collect(), revision)
    }

    /// [`Engine::batch_check`] with the deciding rule of each item (for the decision log).
    pub fn batch_outcomes(
        &self,
        qs: &[CheckInput<'_>],
        count_usage: bool,
    ) -> (Vec<Result<eval::Outcome, EngineError>>, u64) {
        let policy = self.policy.load();
        let dir = self.index.read();
        // Touch what every item's decision will read first, one level at a time: the
        // lookups of one level are independent across items, so the CPU overlaps their
        // cache misses instead of paying them one after another per decision. First the
        // org entries, then each item's member entry and app entry, then the member's teams.
        let orgs: Vec<Option<&index::OrgEntry>> = qs.iter().map(|q| dir.org(q.org)).collect();
        let members: Vec<Option<&index::MemberEntry>> = qs
            .iter()
            .zip(&orgs)
            .map(|(q, o)| {
                let o = (*o)?;
                std::hint::black_box(o.apps.contains(index::app_of(q.resource)));
                o.members.get(q.subject)
            })
            .collect();
        for (o, m) in orgs.iter().zip(&members) {
            if let (Some(o), Some(m)) = (o, m) {
                for t in &m.teams {
                    std::hint::black_box(o.team_apps(*t).next());
                }
            }
        }
        let out: Vec<Result<eval::Outcome, EngineError>> = qs
            .iter()
            .map(|q| with_decision(&policy, &dir, q, |_, out| out))
            .collect();
        if count_usage {
            for ((o, m), answer) in orgs.iter().zip(&members).zip(&out) {
                if let (Some(o), Some(m), Ok(_)) = (o, m, answer) {
                    o.count_check(m);
                }
            }
        }
        (out, dir.revision)
    }

    pub fn explain(&self, q: &CheckInput<'_>) -> Result<Explanation, EngineError> {
        let policy = self.policy.load();
        let dir = self.index.read();
        let (out, mut role_path, near_misses) = with_decision(&policy, &dir, q, |cx, out| {
            let mut path = role_path(cx, out);
            // A team-scoped allow names the team and the grant it used (issue 11, item 22).
            path.push_str(&team_grant_note(cx, out, q.resource));
            let misses = if out.allowed {
                Vec::new()
            } else {
                nearmiss::near_misses(cx, NEAR_MISSES)
            };
            (out, path, misses)
        })?;
        let row = out.rule.and_then(|i| policy.rows.get(i as usize));
        // A token subject: say which token decided, or why it was refused.
        let mut refused = None;
        if let Some(secret) = q.subject.strip_prefix(token::TOKEN_PREFIX) {
            match dir.resolve_token(secret, q.org, q.action, token::now_ms()) {
                Ok(entry) => role_path = format!("token {} -> {role_path}", entry.id),
                Err(why) => {
                    role_path = REDACTED_TOKEN.to_string();
                    refused = Some(format!("deny ({why})"));
                }
            }
        }
        let effect = match (row, out.allowed) {
            (Some(r), _) => match r.eft {
                compile::Eft::Allow => "allow",
                compile::Eft::Deny => "deny",
                compile::Eft::Indeterminate => "indeterminate",
            },
            (None, true) => "default allow",
            (None, false) => "default deny",
        }
        .to_string();
        let effect = refused.unwrap_or(effect);
        // A collaborator's path starts at its collaborator role: say how it got there.
        if role_path.starts_with("role:")
            && let Some(role) = dir.collaborator_role(q.org, q.resource, q.subject)
            && role_path.starts_with(role)
        {
            role_path = format!("{} -[collaborator on {}]-> {role_path}", q.subject, q.resource);
        }
        Ok(Explanation {
            allowed: out.allowed,
            effect,
            rule: row.map(|r| RuleRef {
                file: r.source.file.to_string(),
                line: r.source.line,
                text: r.source.text.to_string(),
            }),
            role_path,
            revision: dir.revision,
            near_misses,
        })
    }

    /// Apps of `org` (as `apps/<id>`, in id order) on which `subject` may do `action`.
    /// Every app is checked: the page is complete up to `page_size` items.
    pub fn lookup_resources(
        &self,
        subject: &str,
        org: &str,
        action: &str,
        page_token: &str,
        page_size: usize,
    ) -> Result<Page, EngineError> {
        // Refused even when the org has no apps to try it on.
        check_subject(subject)?;
        let after = page_after(page_token)?;
        let policy = self.policy.load();
        policy.require_daemon_shape()?;
        let dir = self.index.read();
        let mut page = Page {
            revision: dir.revision,
            ..Default::default()
        };
        let Some(entry) = dir.org(org) else {
            return Ok(page);
        };
        // Apps in id order after the page token, so pages are deterministic.
        let mut apps: Vec<&str> = entry
            .apps
            .iter()
            .map(|a| a.as_str())
            .filter(|a| after.is_none_or(|after| *a > after))
            .collect();
        apps.sort_unstable();
        let mut resource = String::with_capacity(64);
        for app in apps {
            resource.clear();
            resource.push_str("apps/");
            resource.push_str(app);
            let q = CheckInput {
                subject,
                org,
                resource: &resource,
                action,
            };
            if with_decision(&policy, &dir, &q, |_, out| out.allowed)? {
                if page.items.len() == page_size.max(1) {
                    page.next_page_token = format!(
                        "{PAGE_PREFIX}{}",
                        page.items.last().map(|s| &s["apps/".len()..]).unwrap_or("")
                    );
                    break;
                }
                page.items.push(resource.clone());
            }
        }
        Ok(page)
    }

    /// Members of `org` (in id order) who may do `action` on `resource`.
    pub fn lookup_subjects(
        &self,
        org: &str,
        resource: &str,
        action: &str,
        page_token: &str,
        page_size: usize,
    ) -> Result<Page, EngineError> {
        check_resource(resource)?;
        let after = page_after(page_token)?;
        let policy = self.policy.load();
        policy.require_daemon_shape()?;
        let dir = self.index.read();
        let mut page = Page {
            revision: dir.revision,
            ..Default::default()
        };
        let Some(entry) = dir.org(org) else {
            return Ok(page);
        };
        let mut users: Vec<&str> = entry
            .members
            .iter()
            .filter(|(_, m)| m.role.is_some())
            .map(|(u, _)| u.as_str())
            .collect();
        users.sort_unstable();
        let start = match after {
            Some(a) => users.partition_point(|u| *u <= a),
            None => 0,
        };
        for user in &users[start..] {
            let q = CheckInput {
                subject: user,
                org,
                resource,
                action,
            };
            if with_decision(&policy, &dir, &q, |_, out| out.allowed)? {
                if page.items.len() == page_size.max(1) {
                    page.next_page_token = format!(
                        "{PAGE_PREFIX}{}",
                        page.items.last().map(String::as_str).unwrap_or("")
                    );
                    break;
                }
                page.items.push(user.to_string());
            }
        }
        Ok(page)
    }
}
