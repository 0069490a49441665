//! A digest of what the index says, independent of how it got there.
//!
//! The index is fed two ways: incrementally, one committed write at a time, and all at
//! once from the tables at startup. Both must give the same answers; [`IndexData::digest`]
//! makes that checkable (`AdminService.CheckIndex` compares the live index with one
//! rebuilt from the tables). It covers every fact a decision or a lookup can read —
//! each member's role and teams, each team's members and granted apps, each org's apps —
//! in sorted order, and skips entries that say nothing (a team left with no members and
//! no grants, an org left with nothing in it), which incremental removal may leave behind
//! and a rebuild never creates.

use super::IndexData;
use sha2::{Digest, Sha256};

impl IndexData {
    /// Hex SHA-256 of the index's facts in canonical order, and how many facts it covered.
    pub fn digest(&self) -> (String, u64) {
        let mut lines: Vec<String> = Vec::new();
        for (org, entry) in &self.orgs {
            for (user, m) in &entry.members {
                if let Some(r) = m.role {
                    lines.push(format!("member\0{org}\0{user}\0{}", self.names.name(r)));
                }
                for t in &m.teams {
                    lines.push(format!("in-team\0{org}\0{user}\0{}", self.names.name(*t)));
                }
            }
            for (t, team) in &entry.teams {
                let team_name = self.names.name(*t);
                for user in &team.members {
                    lines.push(format!("team-member\0{org}\0{team_name}\0{user}"));
                }
                for a in &team.apps {
                    lines.push(format!("grant\0{org}\0{team_name}\0{}", self.names.name(*a)));
                }
            }
            for app in &entry.apps {
                lines.push(format!("app\0{org}\0{app}"));
            }
        }
        lines.sort_unstable();
        let mut h = Sha256::new();
        for l in &lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        (hex::encode(h.finalize()), lines.len() as u64)
    }
}
