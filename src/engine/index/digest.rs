//! What the index says, as a sorted list of facts, independent of how it got there.
//!
//! The index is fed two ways: incrementally, one committed write at a time, and all at
//! once from the tables at startup. Both must give the same answers; [`IndexData::facts`]
//! makes that checkable (`AdminService.CheckIndex` compares the live index with one
//! rebuilt from the tables). It covers **every** fact a decision or a lookup can read: each
//! member's role and teams, each team's members and granted apps, each org's apps and their
//! labels, every usable token (id, the first 8 bytes of its secret's hash, subject, org,
//! scopes, expiry; not its last use, which is telemetry) and every app collaborator. Entries
//! that say nothing (a team left with no members and no grants, an org left with nothing in
//! it), which incremental removal may leave behind and a rebuild never creates, are skipped.

use super::{IndexData, Sym, UserId};
use compact_str::CompactString;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// One fact as the index holds it: ids copied inline (no allocation for ids of up to 24
/// bytes), names as symbols. Cheap to take under the index's lock; turned into text after.
enum Raw {
    Member(CompactString, UserId, Sym),
    InTeam(CompactString, UserId, Sym),
    TeamMember(CompactString, Sym, UserId),
    Grant(CompactString, Sym, Sym),
    App(CompactString, CompactString),
    Label(CompactString, Sym, Sym),
    /// Tokens are few; their line is written at once.
    Token(String),
    Collaborator(CompactString, UserId, Sym),
}

/// The index's facts copied out of it ([`IndexData::snapshot_facts`]), to be written out as
/// lines ([`FactsSnapshot::lines`]) once the lock is released.
pub struct FactsSnapshot {
    names: Vec<Arc<str>>,
    raw: Vec<Raw>,
}

impl IndexData {
    /// Copy every fact out, for [`FactsSnapshot::lines`]: the part of a consistency check that
    /// runs under the index's shared lock, kept to copies of inline ids and symbols.
    pub fn snapshot_facts(&self) -> FactsSnapshot {
        let mut raw = Vec::with_capacity(self.memberships * 2);
        for (org, entry) in &self.orgs {
            for (user, m) in &entry.members {
                if let Some(r) = m.role {
                    raw.push(Raw::Member(org.clone(), user.clone(), r));
                }
                for t in &m.teams {
                    raw.push(Raw::InTeam(org.clone(), user.clone(), *t));
                }
            }
            for (t, team) in &entry.teams {
                for user in &team.members {
                    raw.push(Raw::TeamMember(org.clone(), *t, user.clone()));
                }
                for a in &team.apps {
                    raw.push(Raw::Grant(org.clone(), *t, *a));
                }
            }
            for app in &entry.apps {
                raw.push(Raw::App(org.clone(), app.clone()));
            }
            for (app, labels) in &entry.labels {
                for l in labels {
                    raw.push(Raw::Label(org.clone(), *app, *l));
                }
            }
        }
        for (hash, t) in &self.tokens {
            let expiry = if t.expires_at_ms == u64::MAX {
                "never".to_string()
            } else {
                t.expires_at_ms.to_string()
            };
            raw.push(Raw::Token(format!(
                "token {} {} {} {} scopes={} expires={expiry}",
                t.id,
                hex::encode(&hash[..8]),
                t.subject,
                t.org.as_deref().unwrap_or("-"),
                t.scopes.join(","),
            )));
        }
        for (app, users) in &self.collaborators {
            for (user, role) in users {
                raw.push(Raw::Collaborator(app.clone(), user.clone(), *role));
            }
        }
        FactsSnapshot {
            names: self.names.names.clone(),
            raw,
        }
    }

    /// Every fact of the index as one line, sorted. Fields are separated by a space and
    /// the kind comes first, so a line reads as what it says (`collaborator billing frank
    /// role:admin`); ids never contain spaces.
    pub fn facts(&self) -> Vec<String> {
        self.snapshot_facts().lines()
    }

    /// Hex SHA-256 of the index's facts in canonical order, and how many facts it covered.
    pub fn digest(&self) -> (String, u64) {
        digest_of(&self.facts())
    }
}

impl FactsSnapshot {
    /// The facts as sorted lines (see [`IndexData::facts`]).
    pub fn lines(self) -> Vec<String> {
        let name = |s: Sym| self.names.get(s as usize).map_or("", |n| &**n);
        let mut lines: Vec<String> = self
            .raw
            .into_iter()
            .map(|f| match f {
                Raw::Member(org, user, r) => format!("member {org} {user} {}", name(r)),
                Raw::InTeam(org, user, t) => format!("in-team {org} {user} {}", name(t)),
                Raw::TeamMember(org, t, user) => format!("team-member {org} {} {user}", name(t)),
                Raw::Grant(org, t, a) => format!("grant {org} {} {}", name(t), name(a)),
                Raw::App(org, app) => format!("app {org} {app}"),
                Raw::Label(org, a, l) => format!("label {org} {} {}", name(a), name(l)),
                Raw::Token(line) => line,
                Raw::Collaborator(app, user, r) => format!("collaborator {app} {user} {}", name(r)),
            })
            .collect();
        lines.sort_unstable();
        lines
    }
}

/// Hex SHA-256 of sorted fact lines, and their count.
pub fn digest_of(lines: &[String]) -> (String, u64) {
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    (hex::encode(h.finalize()), lines.len() as u64)
}

/// The index operations that rebuild an index holding `lines` (fact lines as
/// [`FactsSnapshot::lines`] writes them; token lines are not accepted, `in-team` lines are
/// implied by `team-member` ones). What `warden policy diff --connect` builds its index from
/// (`AdminService.ExportIndex`). An unknown or malformed line is an error naming it.
pub fn ops_from_facts(lines: &[String]) -> Result<Vec<super::IndexOp>, String> {
    use super::IndexOp;
    use std::collections::BTreeMap;
    let strip = |prefix: &str, v: &str, line: &str| {
        v.strip_prefix(prefix)
            .map(str::to_string)
            .ok_or_else(|| format!("index fact `{line}`: `{v}` does not start with `{prefix}`"))
    };
    let mut apps: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut labels: Vec<(String, String, String)> = Vec::new();
    let mut rest = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["member", org, user, role] => rest.push(IndexOp::SetMember {
                org: org.to_string(),
                user: user.to_string(),
                role: strip("role:", role, line)?,
            }),
            ["in-team", _, _, _] => {}
            ["team-member", org, team, user] => rest.push(IndexOp::AddTeamMember {
                org: org.to_string(),
                team: strip("team:", team, line)?,
                user: user.to_string(),
            }),
            ["grant", org, team, app] => rest.push(IndexOp::GrantApp {
                org: org.to_string(),
                team: strip("team:", team, line)?,
                app: strip("app:", app, line)?,
            }),
            ["app", org, app] => {
                apps.entry((org.to_string(), app.to_string())).or_default();
            }
            ["label", org, app, label] => labels.push((
                org.to_string(),
                strip("app:", app, line)?,
                strip("label:", label, line)?,
            )),
            ["collaborator", app, user, role] => rest.push(IndexOp::SetCollaborator {
                app: app.to_string(),
                user: user.to_string(),
                role: strip("role:", role, line)?,
            }),
            _ => return Err(format!("index fact `{line}`: not a fact this build reads")),
        }
    }
    for (org, app, label) in labels {
        match apps.get_mut(&(org.clone(), app.clone())) {
            Some(l) => l.push(label),
            None => {
                return Err(format!(
                    "index fact `label {org} app:{app} label:{label}`: no app `{app}` in `{org}`"
                ));
            }
        }
    }
    let mut ops: Vec<IndexOp> = apps
        .into_iter()
        .map(|((org, app), labels)| IndexOp::AddApp { org, app, labels })
        .collect();
    ops.extend(rest);
    Ok(ops)
}
