//! Turning parsed policy files into a [`CompiledPolicy`]: resolve the model, compile the
//! matcher and every pattern, order the rules, build the rule index.
//!
//! Everything that can be wrong with a policy is found here, once, and reported as
//! `file:line: reason`; a compiled policy cannot fail to evaluate because of its own
//! text (only because of a request value a function cannot take).

use super::expr::{self, CmpOp, Expr, Scope, Sites};
use super::funcs::{Func, Pattern};
use super::roles::{DirectorySource, Parent, RoleDef};
use crate::policy::PolicyError;
use crate::policy::csv::Rule;
use crate::policy::model::{Entry, ModelText};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How the policy effect combines matched rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `some(where (p.eft == allow))`
    AllowOverride,
    /// `!some(where (p.eft == deny))`
    DenyOverride,
    /// `some(where (p.eft == allow)) && !some(where (p.eft == deny))`
    AllowAndDeny,
    /// `priority(p.eft) || deny`: the first matching rule in priority order decides.
    Priority,
    /// `subjectPriority(p.eft) || deny`: the most specific subject's rule decides.
    SubjectPriority,
}

/// A rule's own effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eft {
    Allow,
    Deny,
    /// Any other `eft` value (`indeterminate`, a typo): the rule neither allows nor
    /// denies, as in Casbin; it loads with a warning naming its line.
    Indeterminate,
}

/// Where a rule came from.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: Arc<str>,
    pub line: u32,
    pub text: Box<str>,
}

/// One `p` rule, compiled.
#[derive(Debug, Clone)]
pub struct Row {
    pub values: Box<[Box<str>]>,
    /// Pre-compiled patterns, one per pattern site of the matcher.
    pub patterns: Box<[Pattern]>,
    /// Pre-parsed `eval()` rules, one per eval slot of the matcher.
    pub evals: Box<[Expr]>,
    pub eft: Eft,
    pub source: Source,
}

/// The default of [`EngineConfig::max_role_depth`].
pub const DEFAULT_MAX_ROLE_DEPTH: usize = 10_000;

/// Options that are not part of Casbin's model text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Role matching function per role definition (`g2 = keyMatch2`).
    pub role_matching: BTreeMap<String, Func>,
    /// Domain matching function per role definition (`g = keyMatch`).
    pub domain_matching: BTreeMap<String, Func>,
    /// Role definitions fed by the directory.
    pub directory: BTreeMap<String, DirectorySource>,
    /// Org roles a membership may hold; `None`: every role the policy names.
    pub assignable_roles: Option<Vec<String>>,
    /// How many links a role path may have (`max_role_depth` in `engine.toml`). A check
    /// whose subject reaches names further away than this is an evaluation error (a
    /// deny with the reason) unless it was decided within the bound; Go casbin stops
    /// silently at 10 links, pycasbin at 9.
    pub max_role_depth: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            role_matching: BTreeMap::new(),
            domain_matching: BTreeMap::new(),
            directory: BTreeMap::new(),
            assignable_roles: None,
            max_role_depth: DEFAULT_MAX_ROLE_DEPTH,
        }
    }
}

/// Where the first index key's request value comes from.
#[derive(Debug, Clone)]
pub enum Key1 {
    /// `g(r.X, p.F, dom)`: rows whose field F is a name `r.X` reaches.
    Role { g: usize, req: usize, dom: DomArg },
    /// `r.X == p.F`.
    Eq { req: usize },
}

#[derive(Debug, Clone)]
pub enum DomArg {
    None,
    Req(usize),
    Lit(Box<str>),
}

/// `r.X == p.F` optionally `|| p.F == "lit"`.
#[derive(Debug, Clone)]
pub struct Key2 {
    pub field: usize,
    pub req: usize,
    pub alt: Option<Box<str>>,
}

#[derive(Debug, Default, Clone)]
pub struct Bucket {
    pub all: Vec<u32>,
    pub by2: FxHashMap<Box<str>, Vec<u32>>,
}

/// Rule index: a check only evaluates rows that can match its indexed conjuncts.
#[derive(Debug, Clone)]
pub struct RuleIndex {
    pub key1: Option<(usize, Key1)>,
    pub key2: Option<Key2>,
    pub buckets: FxHashMap<Box<str>, Bucket>,
    /// The matcher without the indexed conjuncts, for rows picked through the index.
    pub residual: Expr,
}

impl Default for RuleIndex {
    fn default() -> Self {
        RuleIndex {
            key1: None,
            key2: None,
            buckets: FxHashMap::default(),
            residual: Expr::Bool(true),
        }
    }
}

/// A compiled, immutable policy (model + rules), swapped atomically on reload.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// Hex SHA-256 over the source files' contents.
    pub hash: String,
    /// Files it was loaded from.
    pub files: Vec<std::path::PathBuf>,
    pub r_tokens: Vec<String>,
    pub p_tokens: Vec<String>,
    pub effect: Effect,
    pub matcher: Expr,
    pub sites: Sites,
    pub rows: Vec<Row>,
    pub roles: Vec<RoleDef>,
    pub index: RuleIndex,
    pub config: EngineConfig,
    /// Instance limits and plans (`limits.toml`), loaded and reloaded with the policy; the
    /// engine never reads them, the directory's write path does.
    pub limits: std::sync::Arc<crate::directory::Limits>,
    /// What loaded but deserves the operator's eye (`file:line: reason`), e.g. a rule whose
    /// effect is neither `allow` nor `deny`. Logged by the loader.
    pub warnings: Vec<PolicyError>,
}

/// Inputs of one compilation.
pub struct Sources<'a> {
    pub model: &'a ModelText,
    pub policy_file: &'a str,
    pub rules: &'a [Rule],
    pub config: &'a EngineConfig,
}

fn tokens(entry: &Entry) -> Vec<String> {
    entry.value.split(',').map(|t| t.trim().to_string()).collect()
}

/// Compile a model and its rules. Every problem is reported, not just the first.
pub fn compile(src: &Sources<'_>) -> Result<CompiledPolicy, Vec<PolicyError>> {
    let mfile = src.model.file.clone();
    let mut errors = Vec::new();
    let merr = |line: u32, reason: String| PolicyError {
        file: mfile.clone(),
        line,
        reason,
    };

    let require = |entries: &[Entry], key: &str, section: &str| -> Result<Entry, PolicyError> {
        ModelText::find(entries, key).cloned().ok_or_else(|| PolicyError {
            file: mfile.clone(),
            line: 0,
            reason: format!("missing `{key}` in [{section}]"),
        })
    };
    let r = require(&src.model.request, "r", "request_definition");
    let p = require(&src.model.policy, "p", "policy_definition");
    let e = require(&src.model.effect, "e", "policy_effect");
    let m = require(&src.model.matchers, "m", "matchers");
    let (r, p, e, m) = match (r, p, e, m) {
        (Ok(r), Ok(p), Ok(e), Ok(m)) => (r, p, e, m),
        (r, p, e, m) => {
            for x in [r.err(), p.err(), e.err(), m.err()].into_iter().flatten() {
                errors.push(x);
            }
            return Err(errors);
        }
    };
    let r_tokens = tokens(&r);
    let p_tokens = tokens(&p);
    for (entry, toks) in [(&r, &r_tokens), (&p, &p_tokens)] {
        for t in toks.iter() {
            if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(merr(
                    entry.line,
                    format!("invalid field name `{t}` in `{}`", entry.key),
                ));
            }
        }
    }

    // Role definitions.
    let mut role_names: Vec<(String, usize)> = Vec::new();
    for entry in &src.model.roles {
        let toks = tokens(entry);
        if toks.len() < 2 || toks.iter().any(|t| t != "_") {
            errors.push(merr(
                entry.line,
                format!(
                    "role definition `{}` must be `_, _` or `_, _, _`, found `{}`",
                    entry.key, entry.value
                ),
            ));
            continue;
        }
        if !entry.key.starts_with('g') {
            errors.push(merr(
                entry.line,
                format!("role definition `{}` must be named g, g2, …", entry.key),
            ));
            continue;
        }
        role_names.push((entry.key.clone(), toks.len()));
    }
    for (key, what) in [
        (&src.config.role_matching, "role"),
        (&src.config.domain_matching, "domain"),
    ] {
        for (g, f) in key {
            if !role_names.iter().any(|(n, _)| n == g) {
                errors.push(merr(
                    0,
                    format!("{what} matching function given for `{g}`, which the model does not define"),
                ));
            }
            if !f.is_matcher() {
                errors.push(merr(
                    0,
                    format!("`{}` cannot be a {what} matching function", f.name()),
                ));
            }
        }
    }

    // Effect.
    let effect_text: String = e
        .value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace("p_eft", "p.eft");
    let effect = match effect_text.as_str() {
        "some(where(p.eft==allow))" => Some(Effect::AllowOverride),
        "!some(where(p.eft==deny))" => Some(Effect::DenyOverride),
        "some(where(p.eft==allow))&&!some(where(p.eft==deny))" => Some(Effect::AllowAndDeny),
        "priority(p.eft)||deny" => Some(Effect::Priority),
        "subjectPriority(p.eft)||deny" => Some(Effect::SubjectPriority),
        _ => {
            errors.push(merr(
                e.line,
                format!(
                    "unsupported policy effect `{}` (supported: some(where (p.eft == allow)); \
                     !some(where (p.eft == deny)); some(where (p.eft == allow)) && !some(where (p.eft == deny)); \
                     priority(p.eft) || deny; subjectPriority(p.eft) || deny)",
                    e.value
                ),
            ));
            None
        }
    };

    // Matcher.
    let scope = Scope {
        r_key: "r",
        r_tokens: &r_tokens,
        p_key: "p",
        p_tokens: &p_tokens,
        roles: &role_names,
        allow_eval: true,
    };
    let mut sites = Sites::default();
    let matcher = match expr::parse(&m.value, &scope, &mut sites) {
        Ok(x) => Some(x),
        Err(reason) => {
            errors.push(merr(m.line, located(reason, "matcher `m`")));
            None
        }
    };

    // Rules.
    let pfile: Arc<str> = Arc::from(src.policy_file);
    let perr = |line: u32, reason: String| PolicyError {
        file: src.policy_file.to_string(),
        line,
        reason,
    };
    let eft_idx = p_tokens.iter().position(|t| t == "eft");
    let prio_idx = p_tokens.iter().position(|t| t == "priority");
    let mut rows = Vec::new();
    let mut prios = Vec::new();
    let mut warnings = Vec::new();
    let mut roles: Vec<RoleDef> = role_names
        .iter()
        .map(|(name, arity)| RoleDef {
            name: name.clone(),
            arity: *arity,
            role_match: src.config.role_matching.get(name).copied(),
            domain_match: src.config.domain_matching.get(name).copied(),
            source: src.config.directory.get(name).copied(),
            domains: FxHashMap::default(),
            domain_patterns: Vec::new(),
            file: src.policy_file.to_string(),
            max_depth: src.config.max_role_depth,
        })
        .collect();
    for rule in src.rules {
        if rule.ptype == "p" {
            if rule.values.len() != p_tokens.len() {
                errors.push(perr(
                    rule.line,
                    format!(
                        "`p` takes {} values ({}), found {}",
                        p_tokens.len(),
                        p_tokens.join(", "),
                        rule.values.len()
                    ),
                ));
                continue;
            }
            let eft = match eft_idx.map(|i| rule.values[i].as_str()) {
                None | Some("allow") => Eft::Allow,
                Some("deny") => Eft::Deny,
                Some(other) => {
                    warnings.push(perr(
                        rule.line,
                        format!(
                            "effect `{other}` is neither allow nor deny: the rule is indeterminate \
                             (it never allows or denies)"
                        ),
                    ));
                    Eft::Indeterminate
                }
            };
            if let Some(i) = prio_idx {
                match rule.values[i].parse::<i64>() {
                    Ok(v) => prios.push(v),
                    Err(_) => {
                        errors.push(perr(
                            rule.line,
                            format!("priority `{}` is not an integer", rule.values[i]),
                        ));
                        continue;
                    }
                }
            }
            let mut patterns = Vec::with_capacity(sites.patterns.len());
            let mut bad = false;
            for (field, func) in &sites.patterns {
                match Pattern::compile(*func, &rule.values[*field]) {
                    Ok(pat) => patterns.push(pat),
                    Err(reason) => {
                        errors.push(perr(
                            rule.line,
                            format!(
                                "field `{}` as a {} pattern: {reason}",
                                p_tokens[*field],
                                func.name()
                            ),
                        ));
                        bad = true;
                    }
                }
            }
            let mut evals = Vec::with_capacity(sites.evals.len());
            for field in &sites.evals {
                let inner = Scope {
                    allow_eval: false,
                    ..scope_copy(&scope)
                };
                let mut inner_sites = Sites::default();
                match expr::parse(&rule.values[*field], &inner, &mut inner_sites) {
                    Ok(x) if inner_sites.patterns.is_empty() => evals.push(x),
                    Ok(_) => {
                        errors.push(perr(
                            rule.line,
                            format!(
                                "field `{}`: evaluated rules cannot match on policy fields",
                                p_tokens[*field]
                            ),
                        ));
                        bad = true;
                    }
                    Err(reason) => {
                        errors.push(perr(
                            rule.line,
                            located(reason, &format!("field `{}` as a rule", p_tokens[*field])),
                        ));
                        bad = true;
                    }
                }
            }
            if bad {
                continue;
            }
            rows.push(Row {
                values: rule.values.iter().map(|v| v.as_str().into()).collect(),
                patterns: patterns.into(),
                evals: evals.into(),
                eft,
                source: Source {
                    file: pfile.clone(),
                    line: rule.line,
                    text: rule.text.as_str().into(),
                },
            });
        } else if let Some(gi) = roles.iter().position(|g| g.name == rule.ptype) {
            let g = &mut roles[gi];
            if rule.values.len() != g.arity {
                errors.push(perr(
                    rule.line,
                    format!(
                        "`{}` takes {} values, found {}",
                        g.name,
                        g.arity,
                        rule.values.len()
                    ),
                ));
                continue;
            }
            let domain: Box<str> = if g.arity > 2 {
                rule.values[2].as_str().into()
            } else {
                "".into()
            };
            g.domains
                .entry(domain)
                .or_default()
                .parents
                .entry(rule.values[0].as_str().into())
                .or_default()
                .push(Parent {
                    name: rule.values[1].as_str().into(),
                    line: rule.line,
                });
        } else if ModelText::find(&src.model.policy, &rule.ptype).is_some() {
            // Secondary policy types (p2, …) are validated for arity and kept out of the
            // default decision context.
            let Some(entry) = ModelText::find(&src.model.policy, &rule.ptype) else {
                continue;
            };
            let n = tokens(entry).len();
            if rule.values.len() != n {
                errors.push(perr(
                    rule.line,
                    format!("`{}` takes {n} values, found {}", rule.ptype, rule.values.len()),
                ));
            }
        } else {
            let mut known: Vec<&str> = src.model.policy.iter().map(|e| e.key.as_str()).collect();
            known.extend(role_names.iter().map(|(n, _)| n.as_str()));
            errors.push(perr(
                rule.line,
                format!(
                    "unknown policy type `{}` (the model defines {})",
                    rule.ptype,
                    known.join(", ")
                ),
            ));
        }
    }

    // Pattern tables for role and domain matching.
    for g in &mut roles {
        if let Some(f) = g.role_match {
            for dl in g.domains.values_mut() {
                let mut pats = Vec::new();
                for child in dl.parents.keys() {
                    match Pattern::compile(f, child) {
                        Ok(p) => pats.push((child.clone(), p)),
                        Err(reason) => {
                            let line = dl.parents[child].first().map(|p| p.line).unwrap_or(0);
                            errors.push(perr(
                                line,
                                format!("`{child}` as a {} pattern: {reason}", f.name()),
                            ));
                        }
                    }
                }
                pats.sort_by(|a, b| a.0.cmp(&b.0));
                dl.child_patterns = pats;
            }
            // A pattern on the parent side (`g, dave, grp/:g`) stands for every name it
            // matches: the names of the links (as children or parents) and the rule
            // subjects, found once here; a name only a request brings is matched at check
            // time (`Reach::contains`).
            let mut universe: Vec<Box<str>> = Vec::new();
            for dl in g.domains.values() {
                for (child, parents) in &dl.parents {
                    universe.push(child.clone());
                    universe.extend(parents.iter().map(|p| p.name.clone()));
                }
            }
            universe.extend(rows.iter().flat_map(|r: &Row| r.values.iter().cloned()));
            universe.sort_unstable();
            universe.dedup();
            for dl in g.domains.values_mut() {
                let mut expand: FxHashMap<Box<str>, (Pattern, Vec<Box<str>>)> = FxHashMap::default();
                for parents in dl.parents.values() {
                    for p in parents {
                        if expand.contains_key(&p.name) {
                            continue;
                        }
                        let Ok(pat) = Pattern::compile(f, &p.name) else {
                            continue;
                        };
                        if pat.is_exact() {
                            continue;
                        }
                        let names: Vec<Box<str>> = universe
                            .iter()
                            .filter(|n| **n != p.name && pat.matches(f, n).unwrap_or(false))
                            .cloned()
                            .collect();
                        expand.insert(p.name.clone(), (pat, names));
                    }
                }
                dl.parent_patterns = expand;
            }
        }
        if let Some(f) = g.domain_match {
            let mut pats = Vec::new();
            for d in g.domains.keys() {
                match Pattern::compile(f, d) {
                    Ok(p) => pats.push((d.clone(), p)),
                    Err(reason) => errors.push(perr(
                        0,
                        format!("domain `{d}` as a {} pattern: {reason}", f.name()),
                    )),
                }
            }
            pats.sort_by(|a, b| a.0.cmp(&b.0));
            g.domain_patterns = pats;
        }
    }

    let (Some(effect), Some(matcher)) = (effect, matcher) else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }

    // Evaluation order.
    match effect {
        Effect::Priority if prio_idx.is_some() => {
            let mut order: Vec<usize> = (0..rows.len()).collect();
            order.sort_by_key(|&i| prios[i]);
            rows = order.into_iter().map(|i| rows[i].clone()).collect();
        }
        Effect::SubjectPriority => {
            let levels = subject_levels(roles.iter().find(|g| g.name == "g"));
            let dom_idx = p_tokens.iter().position(|t| t == "dom");
            rows.sort_by_key(|row| {
                let dom = dom_idx.map(|i| &*row.values[i]).unwrap_or("");
                levels
                    .get(&(
                        dom.to_string(),
                        row.values.first().map(|v| v.to_string()).unwrap_or_default(),
                    ))
                    .copied()
                    .unwrap_or(0)
            });
        }
        _ => {}
    }

    let index = build_index(&matcher, &rows, &roles);
    Ok(CompiledPolicy {
        warnings,
        hash: String::new(),
        files: Vec::new(),
        r_tokens,
        p_tokens,
        effect,
        matcher,
        sites,
        rows,
        roles,
        index,
        config: src.config.clone(),
        limits: std::sync::Arc::new(crate::directory::Limits::defaults()),
    })
}

/// `reason` with where it was found; a depth refusal reads `nesting deeper than N in …` so
/// that the report starts `file:line: nesting deeper than N`.
fn located(reason: String, place: &str) -> String {
    if reason.starts_with("nesting deeper than") {
        format!("{reason} in {place}")
    } else {
        format!("{place}: {reason}")
    }
}

fn scope_copy<'a>(s: &Scope<'a>) -> Scope<'a> {
    Scope {
        r_key: s.r_key,
        r_tokens: s.r_tokens,
        p_key: s.p_key,
        p_tokens: s.p_tokens,
        roles: s.roles,
        allow_eval: s.allow_eval,
    }
}

/// Level of each (domain, subject) in the `g` hierarchy: leaves (names nobody inherits
/// from) are level 0 and come first; a role is one level above the names below it.
/// Cycles leave the remaining names on one last level.
fn subject_levels(g: Option<&RoleDef>) -> FxHashMap<(String, String), usize> {
    let mut out = FxHashMap::default();
    let Some(g) = g else { return out };
    for (domain, dl) in &g.domains {
        let mut edges: Vec<(String, String)> = Vec::new();
        let mut names: std::collections::BTreeSet<String> = Default::default();
        for (child, parents) in &dl.parents {
            for p in parents {
                edges.push((child.to_string(), p.name.to_string()));
                names.insert(child.to_string());
                names.insert(p.name.to_string());
            }
        }
        let mut level = 0;
        while !edges.is_empty() {
            let parents: std::collections::BTreeSet<&String> = edges.iter().map(|(_, p)| p).collect();
            let leaves: Vec<String> = names.iter().filter(|n| !parents.contains(n)).cloned().collect();
            if leaves.is_empty() {
                break;
            }
            for l in &leaves {
                out.insert((domain.to_string(), l.clone()), level);
                names.remove(l);
            }
            edges.retain(|(c, _)| !leaves.contains(c));
            level += 1;
        }
        for n in names {
            out.insert((domain.to_string(), n), level);
        }
    }
    out
}

fn plain_req(e: &Expr) -> Option<usize> {
    match e {
        Expr::Req { idx, path } if path.is_empty() => Some(*idx),
        _ => None,
    }
}

fn plain_pol(e: &Expr) -> Option<usize> {
    match e {
        Expr::Pol { idx, path } if path.is_empty() => Some(*idx),
        _ => None,
    }
}

/// `r.X == p.F` in either order → (req X, field F).
fn eq_pair(e: &Expr) -> Option<(usize, usize)> {
    if let Expr::Cmp(CmpOp::Eq, a, b) = e {
        if let (Some(r), Some(p)) = (plain_req(a), plain_pol(b)) {
            return Some((r, p));
        }
        if let (Some(r), Some(p)) = (plain_req(b), plain_pol(a)) {
            return Some((r, p));
        }
    }
    None
}

/// `p.F == "lit"` in either order → (field F, lit).
fn lit_pair(e: &Expr) -> Option<(usize, Box<str>)> {
    if let Expr::Cmp(CmpOp::Eq, a, b) = e {
        if let (Some(p), Expr::Str(s)) = (plain_pol(a), &**b) {
            return Some((p, s.clone()));
        }
        if let (Some(p), Expr::Str(s)) = (plain_pol(b), &**a) {
            return Some((p, s.clone()));
        }
    }
    None
}

fn key2_of(e: &Expr) -> Option<Key2> {
    if let Some((req, field)) = eq_pair(e) {
        return Some(Key2 {
            field,
            req,
            alt: None,
        });
    }
    if let Expr::Or(a, b) = e {
        for (x, y) in [(a, b), (b, a)] {
            if let (Some((req, field)), Some((f2, lit))) = (eq_pair(x), lit_pair(y))
                && field == f2
            {
                return Some(Key2 {
                    field,
                    req,
                    alt: Some(lit),
                });
            }
        }
    }
    None
}

/// Can evaluating `e` fail on a string request (an error Casbin would report)? Errs on
/// the side of yes. Requests with non-string (JSON) values never use the rule index.
fn fallible(e: &Expr) -> bool {
    match e {
        Expr::Str(_) | Expr::Num(_) | Expr::Bool(_) => false,
        Expr::Req { path, .. } | Expr::Pol { path, .. } => !path.is_empty(),
        Expr::Not(a) => fallible(a),
        Expr::Neg(_) | Expr::Arith(..) | Expr::Eval { .. } => true,
        Expr::And(a, b) | Expr::Or(a, b) => fallible(a) || fallible(b),
        Expr::Cmp(op, a, b) => !matches!(op, CmpOp::Eq | CmpOp::Ne) || fallible(a) || fallible(b),
        Expr::In(a, items) => fallible(a) || items.iter().any(fallible),
        Expr::Call { func, args, pat } => {
            *func == Func::IpMatch || matches!(pat, expr::PatSrc::Dynamic) || args.iter().any(fallible)
        }
        Expr::Role { args, .. } => args.iter().any(fallible),
    }
}

/// Choose indexed conjuncts and bucket the rows. Pruning is sound: a row left out of a
/// check's candidates would have made its conjunct false, and Casbin, evaluating the
/// conjuncts left to right, would have reached no error on it first: a conjunct that can
/// fail (`ipMatch` on a non-IP) written before an indexed one keeps that one out of the
/// index (without any index, every row is evaluated in full).
fn build_index(matcher: &Expr, rows: &[Row], roles: &[RoleDef]) -> RuleIndex {
    let conj = matcher.conjuncts();
    // Conjuncts at positions >= `safe` have a fallible conjunct before them.
    let safe = conj.iter().position(|c| fallible(c)).unwrap_or(conj.len());
    let mut key1: Option<(usize, Key1)> = None;
    let mut used: Vec<usize> = Vec::new();
    for (ci, c) in conj.iter().enumerate().take(safe) {
        if let Expr::Role { g, args } = c
            && let (Some(req), Some(field)) =
                (args.first().and_then(plain_req), args.get(1).and_then(plain_pol))
        {
            let dom = match args.get(2) {
                None => DomArg::None,
                Some(Expr::Str(s)) => DomArg::Lit(s.clone()),
                Some(d) => match plain_req(d) {
                    Some(i) => DomArg::Req(i),
                    None => continue,
                },
            };
            if roles.get(*g).is_some() {
                key1 = Some((field, Key1::Role { g: *g, req, dom }));
                used.push(ci);
                break;
            }
        }
    }
    if key1.is_none() {
        for (ci, c) in conj.iter().enumerate().take(safe) {
            if let Some((req, field)) = eq_pair(c) {
                key1 = Some((field, Key1::Eq { req }));
                used.push(ci);
                break;
            }
        }
    }
    let Some((field1, k1)) = key1 else {
        return RuleIndex::default();
    };
    let key2 = conj
        .iter()
        .enumerate()
        .take(safe)
        .filter_map(|(ci, c)| key2_of(c).map(|k| (ci, k)))
        .find(|(_, k)| k.field != field1)
        .map(|(ci, k)| {
            used.push(ci);
            k
        });
    // What is left to evaluate on a candidate row: the indexed conjuncts hold for every
    // candidate by construction (it was picked by exactly those conditions).
    let residual = conj
        .iter()
        .enumerate()
        .filter(|(ci, _)| !used.contains(ci))
        .map(|(_, c)| (*c).clone())
        .reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
        .unwrap_or(Expr::Bool(true));
    let mut buckets: FxHashMap<Box<str>, Bucket> = FxHashMap::default();
    for (i, row) in rows.iter().enumerate() {
        let b = buckets.entry(row.values[field1].clone()).or_default();
        b.all.push(i as u32);
        if let Some(k2) = &key2 {
            b.by2
                .entry(row.values[k2.field].clone())
                .or_default()
                .push(i as u32);
        }
    }
    RuleIndex {
        key1: Some((field1, k1)),
        key2,
        buckets,
        residual,
    }
}
