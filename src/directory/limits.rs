//! Instance limits and plans: what `policies/limits.toml` says, parsed and checked. No I/O.
//!
//! The file is loaded with the policy (same directory, same reload, same error reporting) and
//! travels with the compiled policy snapshot, so a write is judged against the limits that were
//! in force with the policy that authorized it. `apply` receives them through
//! [`ApplyContext`](super::ApplyContext): the outcome of a change is still a function of the
//! directory's state, the change and the (versioned, hashed) policy.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The embedded default `limits.toml`, used when the policy directory has none.
pub const DEFAULT_LIMITS_TOML: &str = include_str!("../../policies/limits.toml");

/// Per-instance settings and the plan table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// May users create orgs at all (otherwise only Unix-socket callers, acting for the
    /// operator, may)?
    #[serde(default = "yes")]
    pub users_can_create_orgs: bool,
    /// Most orgs one user may create over time (Clerk's default: 100). `None`: no limit.
    #[serde(default)]
    pub max_orgs_created_per_user: Option<u32>,
    /// Most orgs one user may be `admin` of at once (Clarifai Enterprise: 20).
    #[serde(default)]
    pub max_admin_orgs_per_user: Option<u32>,
    /// A user belongs to at most one org: joining another (by creation, addition or an
    /// accepted invitation) needs leaving the first.
    #[serde(default)]
    pub one_org_per_user: bool,
    /// Membership limit of orgs that set none; pending invitations count toward it.
    #[serde(default)]
    pub default_membership_limit: Option<u32>,
    /// How long invitations stay open when the request does not say (default 7 days).
    #[serde(default)]
    pub invitation_ttl_seconds: Option<u64>,
    /// The plan of an org created without one (and the only plan a user may pick at creation
    /// without the operator). Must be a row of `plans` when the file lists plans.
    #[serde(default = "free")]
    pub default_plan: String,
    /// Plan rules by plan id. When the file lists plans, an org's plan must be one of them
    /// (an unknown plan is refused); a file without plans leaves plans unchecked. An org whose
    /// stored plan was since removed from the file has no plan rules.
    #[serde(default)]
    pub plans: BTreeMap<String, Plan>,
}

fn free() -> String {
    "free".to_string()
}

/// What an org on one plan may do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Org roles members may hold; empty means every role the policy defines.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Most orgs on this plan one user may create. `None`: no plan limit.
    #[serde(default)]
    pub max_orgs_per_user: Option<u32>,
    /// Whether orgs on this plan may have teams.
    #[serde(default = "yes")]
    pub teams: bool,
}

fn yes() -> bool {
    true
}

impl Default for Limits {
    /// No limits at all: what a caller without a policy at hand (tests, trusted seeding) gets.
    fn default() -> Self {
        Limits {
            users_can_create_orgs: true,
            max_orgs_created_per_user: None,
            max_admin_orgs_per_user: None,
            one_org_per_user: false,
            default_membership_limit: None,
            invitation_ttl_seconds: None,
            default_plan: free(),
            plans: BTreeMap::new(),
        }
    }
}

/// A `limits.toml` that does not parse or says something impossible: the line (0 when
/// unknown) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsError {
    pub line: u32,
    pub reason: String,
}

impl Limits {
    /// Parse and check `limits.toml` text.
    pub fn parse(text: &str) -> Result<Limits, LimitsError> {
        let limits: Limits = toml::from_str(text).map_err(|e| {
            let reason = e.message().to_string();
            // An unknown key is reported with the span of its whole table: point at the key.
            let key_line = reason
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
                .and_then(|key| {
                    text.lines().position(|l| {
                        l.trim_start()
                            .strip_prefix(key)
                            .is_some_and(|after| after.trim_start().starts_with('='))
                    })
                })
                .map(|i| i as u32 + 1);
            let span_line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1) as u32);
            LimitsError {
                line: key_line.or(span_line).unwrap_or(0),
                reason,
            }
        })?;
        for (id, plan) in &limits.plans {
            let bad = |reason: String| LimitsError { line: 0, reason };
            super::ids::validate_slug("plan", id).map_err(|e| bad(format!("[plans.{id}]: {e}")))?;
            for role in &plan.roles {
                super::ids::validate_role("role", role)
                    .map_err(|e| bad(format!("[plans.{id}] roles: {e}")))?;
            }
            if plan.max_orgs_per_user == Some(0) {
                return Err(bad(format!(
                    "[plans.{id}] max_orgs_per_user = 0 would forbid the plan; remove the plan instead"
                )));
            }
        }
        super::ids::validate_slug("default_plan", &limits.default_plan).map_err(|e| LimitsError {
            line: 0,
            reason: format!("default_plan: {e}"),
        })?;
        if !limits.plans.is_empty() && !limits.plans.contains_key(&limits.default_plan) {
            return Err(LimitsError {
                line: 0,
                reason: format!(
                    "default_plan `{0}` is not in the plan table; add [plans.{0}] or name another default_plan",
                    limits.default_plan
                ),
            });
        }
        if let Some(ttl) = limits.invitation_ttl_seconds
            && (ttl == 0 || ttl > super::invitation::MAX_INVITATION_TTL_MS / 1000)
        {
            return Err(LimitsError {
                line: 0,
                reason: format!(
                    "invitation_ttl_seconds must be 1 to {}",
                    super::invitation::MAX_INVITATION_TTL_MS / 1000
                ),
            });
        }
        Ok(limits)
    }

    /// The embedded defaults.
    pub fn defaults() -> Limits {
        // The embedded file is checked by a unit test; should it ever fail, no limits is the
        // only safe fallback that keeps the daemon starting.
        Limits::parse(DEFAULT_LIMITS_TOML).unwrap_or_default()
    }

    /// The membership limit in force for an org with its own `membership_limit` setting.
    pub fn membership_limit(&self, own: Option<u32>) -> Option<u32> {
        own.or(self.default_membership_limit.filter(|n| *n > 0))
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let l = Limits::parse(DEFAULT_LIMITS_TOML).expect("embedded limits.toml");
        assert_eq!(l.max_orgs_created_per_user, Some(100));
        assert_eq!(l.max_admin_orgs_per_user, Some(20));
        let community = l.plan("community").expect("community plan");
        assert_eq!(community.roles, vec!["admin".to_string()]);
        assert!(!community.teams);
        assert!(l.plan("enterprise").expect("enterprise").teams);
        // The default plan is a row of the table.
        assert_eq!(l.default_plan, "free");
        assert!(l.plan("free").is_some());
    }

    #[test]
    fn errors_name_the_line() {
        let e = Limits::parse("users_can_create_orgs = true\nbogus = 1\n").unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
        assert!(e.reason.contains("bogus"), "{e:?}");
        assert!(Limits::parse("[plans.x]\nmax_orgs_per_user = 0\n").is_err());
        let e = Limits::parse("[plans.community]\nroles = [\"admin\"]\n").unwrap_err();
        assert!(e.reason.contains("default_plan `free`"), "{e:?}");
        assert!(Limits::parse("default_plan = \"community\"\n[plans.community]\n").is_ok());
    }
}
