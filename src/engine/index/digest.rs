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

use super::IndexData;
use sha2::{Digest, Sha256};

impl IndexData {
    /// Every fact of the index as one line, sorted. Fields are separated by a space and
    /// the kind comes first, so a line reads as what it says (`collaborator billing frank
    /// role:admin`); ids never contain spaces.
    pub fn facts(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for (org, entry) in &self.orgs {
            for (user, m) in &entry.members {
                if let Some(r) = m.role {
                    lines.push(format!("member {org} {user} {}", self.names.name(r)));
                }
                for t in &m.teams {
                    lines.push(format!("in-team {org} {user} {}", self.names.name(*t)));
                }
            }
            for (t, team) in &entry.teams {
                let team_name = self.names.name(*t);
                for user in &team.members {
                    lines.push(format!("team-member {org} {team_name} {user}"));
                }
                for a in &team.apps {
                    lines.push(format!("grant {org} {team_name} {}", self.names.name(*a)));
                }
            }
            for app in &entry.apps {
                lines.push(format!("app {org} {app}"));
            }
            for (app, labels) in &entry.labels {
                for l in labels {
                    lines.push(format!(
                        "label {org} {} {}",
                        self.names.name(*app),
                        self.names.name(*l)
                    ));
                }
            }
        }
        for (hash, t) in &self.tokens {
            let expiry = if t.expires_at_ms == u64::MAX {
                "never".to_string()
            } else {
                t.expires_at_ms.to_string()
            };
            lines.push(format!(
                "token {} {} {} {} scopes={} expires={expiry}",
                t.id,
                hex::encode(&hash[..8]),
                t.subject,
                t.org.as_deref().unwrap_or("-"),
                t.scopes.join(","),
            ));
        }
        for (app, users) in &self.collaborators {
            for (user, role) in users {
                lines.push(format!("collaborator {app} {user} {}", self.names.name(*role)));
            }
        }
        lines.sort_unstable();
        lines
    }

    /// Hex SHA-256 of the index's facts in canonical order, and how many facts it covered.
    pub fn digest(&self) -> (String, u64) {
        digest_of(&self.facts())
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
