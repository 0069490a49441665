//! The demo directory behind `warden serve --demo`: two orgs, five users, a team, four apps.
//!
//! It is a list of ordinary changes, applied through the normal write path (with
//! [`ApplyContext::trusted`](crate::directory::ApplyContext::trusted)), so the demo also exercises
//! every rule it relies on.

use crate::directory::{Change, ChangeEnvelope, OrgSettings, Owner};

fn user(id: &str) -> Change {
    Change::UpsertUser {
        id: id.into(),
        email: format!("{id}@example.com"),
        username: Some(id.into()),
        email_verified: None,
    }
}

fn org(id: &str, name: &str, plan: &str) -> Change {
    Change::CreateOrg {
        id: id.into(),
        name: name.into(),
        billing_email: Some(format!("billing@{id}.example")),
        plan: plan.into(),
        logo_url: None,
        public_metadata: serde_json::Value::Null,
        private_metadata: serde_json::Value::Null,
        settings: OrgSettings::default(),
    }
}

fn member(org: &str, user: &str, role: &str) -> Change {
    Change::AddMember {
        org: org.into(),
        user: user.into(),
        role: role.into(),
        terms_version: None,
    }
}

fn app(id: &str, owner: Owner, name: &str) -> Change {
    Change::CreateApp {
        id: id.into(),
        owner,
        name: name.into(),
        labels: vec![],
    }
}

/// The demo's changes, in order, all stamped `at_ms`. In `acme`: alice (admin, creator), bob
/// (org_contributor), carol (team_contributor, in team `frontend`, which is granted app `web`),
/// dave (org_user); apps `web` and `api`. In `globex`: erin (admin, creator) and app `ledger`.
/// alice also owns the personal app `alice-sandbox`.
pub fn demo_changes(at_ms: u64) -> Vec<ChangeEnvelope> {
    let by = |actor: &str, change: Change| ChangeEnvelope::new(actor, at_ms, change);
    let acme = || Owner::Org("acme".into());
    vec![
        by("alice", user("alice")),
        by("bob", user("bob")),
        by("carol", user("carol")),
        by("dave", user("dave")),
        by("erin", user("erin")),
        by("alice", org("acme", "Acme Corp", "free")),
        by("alice", member("acme", "bob", "org_contributor")),
        by("alice", member("acme", "carol", "team_contributor")),
        by("alice", member("acme", "dave", "org_user")),
        by("erin", org("globex", "Globex", "free")),
        by("alice", app("web", acme(), "Web")),
        by("alice", app("api", acme(), "API")),
        by("erin", app("ledger", Owner::Org("globex".into()), "Ledger")),
        by(
            "alice",
            app("alice-sandbox", Owner::User("alice".into()), "Alice's sandbox"),
        ),
        by(
            "alice",
            Change::CreateTeam {
                org: "acme".into(),
                team: "frontend".into(),
                name: "Frontend".into(),
            },
        ),
        by(
            "alice",
            Change::AddTeamMember {
                org: "acme".into(),
                team: "frontend".into(),
                user: "carol".into(),
            },
        ),
        by(
            "alice",
            Change::GrantApp {
                org: "acme".into(),
                team: "frontend".into(),
                app: "web".into(),
            },
        ),
    ]
}
