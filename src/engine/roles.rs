//! Role graphs: one per role definition (`g`, `g2`, …), each with its own matching
//! functions, answering "which names can `x` reach in domain `d`".
//!
//! Links come from two places: static lines of `policy.csv` (role hierarchy, resource
//! groups) held here, and the directory (memberships, teams, grants) read from the
//! [`IndexData`] at check time. Semantics (see `policies/README.md`):
//! - `has_link(a, b, d)` ⇔ `b` is reachable from `a` (a name reaches itself);
//! - links declared in domain `d2` apply to a request in `d` when `d2 == d`, or when
//!   the role definition has a domain matching function and `f(d, d2)` holds;
//! - with a role matching function `f`, a name `n` also inherits the parents of every
//!   linked name `p` with `f(n, p)` — all such pattern nodes, in any declaration order;
//! - with a role matching function, a pattern reached as a parent (`g, dave, grp/:g`)
//!   also reaches every name it matches: the names of the links and rule subjects (found
//!   at compile time) and, for `g(a, b)`, `b` itself (as Casbin's role managers do);
//! - cycles are harmless: every name is visited once (a hash set once the walk outgrows
//!   a few names, so a walk is linear in the links it follows);
//! - a walk follows at most `max_depth` links from the start (`max_role_depth` in
//!   `engine.toml`); names further away are not reached and the walk says so
//!   ([`Reach::truncated`]), which the evaluator turns into an error unless the answer
//!   was found within the bound.

use super::funcs::{Func, Pattern};
use super::index::IndexData;
use rustc_hash::FxHashMap;

/// Up to this many reached names, membership is a linear scan of the (inline) list; past
/// it, a hash index is built so that every further step costs O(1).
const LINEAR_REACH: usize = 16;
use smallvec::SmallVec;

/// Is `name` a role, team, app or label node (`role:`, `team:`, `app:`, `label:`)?
/// Fixed-width comparisons: this runs for every node of every check.
#[inline]
pub fn is_node_name(name: &str) -> bool {
    let b = name.as_bytes();
    (b.len() >= 4 && b[..4] == *b"app:")
        || (b.len() >= 5 && (b[..5] == *b"role:" || b[..5] == *b"team:"))
        || (b.len() >= 6 && b[..6] == *b"label:")
}

/// Which directory relation feeds a role definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectorySource {
    /// user → org role, and user → `team:<id>` for each of the user's teams in the org
    /// (so a rule can name a team as its subject).
    Members,
    /// user → `team:<id>` → app id (team memberships and team app grants).
    Teams,
    /// `app:<id>` → `label:<l>`: the labels of an app of the org (apps of other orgs
    /// have none here).
    Labels,
}

/// One static parent link and the policy line that declared it.
#[derive(Debug, Clone)]
pub struct Parent {
    pub name: Box<str>,
    pub line: u32,
}

#[derive(Debug, Default, Clone)]
pub struct DomainLinks {
    pub parents: FxHashMap<Box<str>, Vec<Parent>>,
    /// Compiled role-matching pattern of every linked child name (only with a role
    /// matching function).
    pub child_patterns: Vec<(Box<str>, Pattern)>,
    /// Every parent name that is a pattern (only with a role matching function): its
    /// compiled form and the known names it matches.
    pub parent_patterns: FxHashMap<Box<str>, (Pattern, Vec<Box<str>>)>,
}

/// A compiled role definition.
#[derive(Debug, Clone)]
pub struct RoleDef {
    pub name: String,
    pub arity: usize,
    pub role_match: Option<Func>,
    pub domain_match: Option<Func>,
    pub source: Option<DirectorySource>,
    pub domains: FxHashMap<Box<str>, DomainLinks>,
    /// Domains of static links compiled as domain patterns (only with a domain
    /// matching function).
    pub domain_patterns: Vec<(Box<str>, Pattern)>,
    /// The file the static links came from, for explanations.
    pub file: String,
    /// The most links a walk follows (`max_role_depth`).
    pub max_depth: usize,
}

/// How a name was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Start,
    /// A `policy.csv` line.
    Static(u32),
    /// A directory link (membership, team membership, grant) in this org.
    Directory,
}

/// Names reachable from a start name, with the breadth-first predecessor of each.
#[derive(Debug, Clone, Default)]
pub struct Reach<'a> {
    pub nodes: SmallVec<[(&'a str, u32, Via); 8]>,
    /// Links from the start to each node (parallel to `nodes`).
    depth: SmallVec<[u32; 8]>,
    /// Position of each node by name, once there are more than [`LINEAR_REACH`].
    index: Option<FxHashMap<&'a str, u32>>,
    /// Pattern nodes reached on the parent side, and the role matching function: a name
    /// one of them matches counts as reached.
    patterns: SmallVec<[&'a Pattern; 2]>,
    role_match: Option<Func>,
    /// Set when the walk stopped at the depth bound with links left to follow: the bound.
    pub truncated: Option<usize>,
}

impl<'a> Reach<'a> {
    fn position(&self, name: &str) -> Option<u32> {
        match &self.index {
            Some(ix) => ix.get(name).copied(),
            None => self
                .nodes
                .iter()
                .position(|(n, _, _)| *n == name)
                .map(|i| i as u32),
        }
    }

    /// Is `name` reached: one of the nodes, or a name a reached pattern matches?
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
            || self
                .role_match
                .is_some_and(|f| self.patterns.iter().any(|p| p.matches(f, name).unwrap_or(false)))
    }

    /// Add a node `depth` links from the start unless present; its position either way
    /// (`None` when it lies past the depth bound).
    fn push(&mut self, name: &'a str, pred: u32, via: Via, depth: u32, max: usize) -> Option<u32> {
        let i = self.nodes.len() as u32;
        match &mut self.index {
            // One hash per step once the walk is long: look up and insert together.
            Some(ix) => match ix.entry(name) {
                std::collections::hash_map::Entry::Occupied(e) => return Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    if depth as usize > max {
                        self.truncated = Some(max);
                        return None;
                    }
                    e.insert(i);
                }
            },
            None => {
                if let Some(k) = self.nodes.iter().position(|(n, _, _)| *n == name) {
                    return Some(k as u32);
                }
                if depth as usize > max {
                    self.truncated = Some(max);
                    return None;
                }
                if self.nodes.len() >= LINEAR_REACH {
                    let mut ix: FxHashMap<&'a str, u32> = FxHashMap::default();
                    ix.reserve(4 * LINEAR_REACH);
                    ix.extend(self.nodes.iter().enumerate().map(|(k, (n, _, _))| (*n, k as u32)));
                    ix.insert(name, i);
                    self.index = Some(ix);
                }
            }
        }
        self.nodes.push((name, pred, via));
        self.depth.push(depth);
        Some(i)
    }

    /// Render the path to `target`: `alice -[admin@acme]-> admin -> org_contributor`.
    pub fn path_to(&self, target: &str, domain: &str) -> Option<String> {
        let mut i = self.nodes.iter().position(|(n, _, _)| *n == target)?;
        let mut steps = Vec::new();
        loop {
            let (name, pred, via) = self.nodes[i];
            steps.push((name, via));
            if via == Via::Start {
                break;
            }
            i = pred as usize;
        }
        steps.reverse();
        let mut out = String::new();
        for (k, (name, via)) in steps.iter().enumerate() {
            if k > 0 {
                match via {
                    Via::Directory if !domain.is_empty() => {
                        out.push_str(&format!(" -[{name}@{domain}]-> "));
                    }
                    _ => out.push_str(" -> "),
                }
            }
            out.push_str(name);
        }
        Some(out)
    }
}

impl RoleDef {
    /// Static link domains that apply to a request in `domain`.
    fn applicable<'s>(&'s self, domain: &'s str) -> SmallVec<[&'s DomainLinks; 2]> {
        let mut out = SmallVec::new();
        if let Some(d) = self.domains.get(domain) {
            out.push(d);
        }
        if let Some(f) = self.domain_match {
            for (name, pat) in &self.domain_patterns {
                if &**name != domain
                    && (pat.is_universal() || pat.matches(f, domain).unwrap_or(false))
                    && let Some(d) = self.domains.get(name)
                {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Every name `start` reaches in `domain`.
    pub fn reach<'a>(&'a self, start: &'a str, domain: &'a str, dir: Option<&'a IndexData>) -> Reach<'a> {
        let mut reach = Reach {
            role_match: self.role_match,
            ..Reach::default()
        };
        reach.nodes.push((start, 0, Via::Start));
        reach.depth.push(0);
        let max = self.max_depth;
        let links = self.applicable(domain);
        let org = match (self.source, dir) {
            (Some(_), Some(d)) => d.org(domain).map(|o| (d, o)),
            _ => None,
        };
        let mut i = 0;
        while i < reach.nodes.len() {
            let (name, _, via) = reach.nodes[i];
            let pred = i as u32;
            let here = reach.depth[i];
            let next = here + 1;
            for dl in &links {
                if let Some(ps) = dl.parents.get(name) {
                    for p in ps {
                        reach.push(&p.name, pred, Via::Static(p.line), next, max);
                    }
                }
                if let Some(f) = self.role_match {
                    for (child, pat) in &dl.child_patterns {
                        if &**child != name
                            && pat.matches(f, name).unwrap_or(false)
                            && let Some(ps) = dl.parents.get(child)
                        {
                            for p in ps {
                                reach.push(&p.name, pred, Via::Static(p.line), next, max);
                            }
                        }
                    }
                    // A pattern reached as a parent stands for the names it matches, at
                    // its own distance.
                    if via != Via::Start
                        && let Some((pat, names)) = dl.parent_patterns.get(name)
                    {
                        reach.patterns.push(pat);
                        for n in names {
                            reach.push(n, pred, via, here, max);
                        }
                    }
                }
            }
            if let Some((d, o)) = org {
                // Only users (and, for teams, team nodes) have directory links; role and
                // app nodes never do, so they cost no lookup.
                let node = is_node_name(name);
                let via = reach.nodes[i].2;
                match self.source {
                    Some(DirectorySource::Members) if !node => {
                        if let Some(m) = o.members.get(name)
                            && let Some(role) = m.role
                        {
                            reach.push(d.names.name(role), pred, Via::Directory, next, max);
                            for t in &m.teams {
                                reach.push(d.names.name(*t), pred, Via::Directory, next, max);
                            }
                        }
                    }
                    Some(DirectorySource::Teams) if !node => {
                        if let Some(teams) = o.members.get(name).map(|m| &m.teams) {
                            // Expand each team right away: its symbol is at hand.
                            for t in teams {
                                let Some(ti) = reach.push(d.names.name(*t), pred, Via::Directory, next, max)
                                else {
                                    continue;
                                };
                                for app in o.team_apps(*t) {
                                    reach.push(d.names.name(app), ti, Via::Directory, next + 1, max);
                                }
                            }
                        }
                    }
                    // Most orgs label no app: they skip the interner lookup of the name.
                    Some(DirectorySource::Labels) if name.starts_with("app:") && o.has_labels() => {
                        if let Some(app) = d.names.get(name) {
                            for label in o.app_labels(app) {
                                reach.push(d.names.name(label), pred, Via::Directory, next, max);
                            }
                        }
                    }
                    Some(DirectorySource::Teams) if name.starts_with("team:") && via != Via::Directory => {
                        if let Some(t) = d.names.get(name) {
                            for app in o.team_apps(t) {
                                reach.push(d.names.name(app), pred, Via::Directory, next, max);
                            }
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        reach
    }

    /// Static link count (for status).
    pub fn static_links(&self) -> usize {
        self.domains
            .values()
            .map(|d| d.parents.values().map(Vec::len).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::{EngineConfig, ReqVal};
    use crate::policy::{compile_texts, parse_engine_config};

    const MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
        [role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n\
        [matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";

    fn chain(n: usize) -> String {
        let mut s = String::from("p, r0, data, read\n");
        for i in 0..n {
            s.push_str(&format!("g, r{}, r{i}\n", i + 1));
        }
        s
    }

    fn check(policy: &str, config: &EngineConfig, sub: &str) -> Result<bool, String> {
        let p =
            compile_texts("model.conf", MODEL, "policy.csv", policy, config).map_err(|e| e.to_string())?;
        p.enforce(&[ReqVal::Str(sub), ReqVal::Str("data"), ReqVal::Str("read")])
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_depth_bound_decides_within_it_and_reports_past_it() {
        let config = parse_engine_config("engine.toml", "max_role_depth = 10\n").unwrap();
        assert_eq!(config.max_role_depth, 10);
        // r10 is 10 links from r0: within the bound.
        assert_eq!(check(&chain(30), &config, "r10"), Ok(true));
        // r11 is 11 links away: the answer is unknown, and the error says why.
        let err = check(&chain(30), &config, "r11").unwrap_err();
        assert!(
            err.contains(
                "role hierarchy `g` from `r11` is deeper than 10 links (max_role_depth in engine.toml)"
            ),
            "{err}"
        );
        // A short hierarchy under a bound is a plain deny for a stranger.
        assert_eq!(check(&chain(3), &config, "nobody"), Ok(false));
        // The default bound is 10,000 links.
        assert_eq!(check(&chain(30), &EngineConfig::default(), "r30"), Ok(true));
    }

    #[test]
    fn a_zero_depth_bound_is_refused_with_its_line() {
        let err = parse_engine_config("engine.toml", "# c\nmax_role_depth = 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "engine.toml:2: max_role_depth must be at least 1 (the links from a subject to its roles)"
        );
    }

    #[test]
    fn a_long_chain_and_a_ring_are_walked_once_per_name() {
        // 30,000 links: linear in the links (this was quadratic); the time is printed by
        // `cargo run --example engine_timings`, not asserted here.
        assert_eq!(check(&chain(30_000), &EngineConfig::default(), "r9000"), Ok(true));
        let mut ring = chain(5_000);
        ring.push_str("g, r0, r5000\n");
        assert_eq!(check(&ring, &EngineConfig::default(), "r4999"), Ok(true));
        assert_eq!(check(&ring, &EngineConfig::default(), "stranger"), Ok(false));
    }
}
