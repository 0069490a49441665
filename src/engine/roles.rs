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
//! - cycles are harmless: every name is visited once.

use super::funcs::{Func, Pattern};
use super::index::IndexData;
use rustc_hash::FxHashMap;
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
}

impl<'a> Reach<'a> {
    pub fn contains(&self, name: &str) -> bool {
        self.nodes.iter().any(|(n, _, _)| *n == name)
    }

    /// Add a node unless present; its position either way.
    fn push(&mut self, name: &'a str, pred: u32, via: Via) -> u32 {
        match self.nodes.iter().position(|(n, _, _)| *n == name) {
            Some(i) => i as u32,
            None => {
                self.nodes.push((name, pred, via));
                (self.nodes.len() - 1) as u32
            }
        }
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
        let mut reach = Reach::default();
        reach.nodes.push((start, 0, Via::Start));
        let links = self.applicable(domain);
        let org = match (self.source, dir) {
            (Some(_), Some(d)) => d.org(domain).map(|o| (d, o)),
            _ => None,
        };
        let mut i = 0;
        while i < reach.nodes.len() {
            let name = reach.nodes[i].0;
            let pred = i as u32;
            for dl in &links {
                if let Some(ps) = dl.parents.get(name) {
                    for p in ps {
                        reach.push(&p.name, pred, Via::Static(p.line));
                    }
                }
                if let Some(f) = self.role_match {
                    for (child, pat) in &dl.child_patterns {
                        if &**child != name
                            && pat.matches(f, name).unwrap_or(false)
                            && let Some(ps) = dl.parents.get(child)
                        {
                            for p in ps {
                                reach.push(&p.name, pred, Via::Static(p.line));
                            }
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
                            reach.push(d.names.name(role), pred, Via::Directory);
                            for t in &m.teams {
                                reach.push(d.names.name(*t), pred, Via::Directory);
                            }
                        }
                    }
                    Some(DirectorySource::Teams) if !node => {
                        if let Some(teams) = o.members.get(name).map(|m| &m.teams) {
                            // Expand each team right away: its symbol is at hand.
                            for t in teams {
                                let ti = reach.push(d.names.name(*t), pred, Via::Directory);
                                for app in o.team_apps(*t) {
                                    reach.push(d.names.name(app), ti, Via::Directory);
                                }
                            }
                        }
                    }
                    // Most orgs label no app: they skip the interner lookup of the name.
                    Some(DirectorySource::Labels) if name.starts_with("app:") && o.has_labels() => {
                        if let Some(app) = d.names.get(name) {
                            for label in o.app_labels(app) {
                                reach.push(d.names.name(label), pred, Via::Directory);
                            }
                        }
                    }
                    Some(DirectorySource::Teams) if name.starts_with("team:") && via != Via::Directory => {
                        if let Some(t) = d.names.get(name) {
                            for app in o.team_apps(t) {
                                reach.push(d.names.name(app), pred, Via::Directory);
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
