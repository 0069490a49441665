//! Shared fixtures for the store tests: a store in a temp dir, a toy authorizer reading the index,
//! and change builders.

use warden::directory::{ApplyContext, Change, ChangeEnvelope, OrgSettings, Owner, is_default_role};
use warden::engine::index::DirectoryIndex;
use warden::store::{Applied, ApplyError, Store};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub index: DirectoryIndex,
    pub clock: std::cell::Cell<u64>,
}

/// A stand-in for the engine: admins may do anything in their org; org_contributors may create
/// apps; nobody else holds an org permission.
pub fn toy_authorize(index: &DirectoryIndex, actor: &str, org: &str, _resource: &str, action: &str) -> bool {
    match index.read().role_of(org, actor) {
        Some("admin") => true,
        Some("org_contributor") => action == "app:create" || action == "app:transfer",
        _ => false,
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("data/warden.redb")).unwrap();
        Fixture {
            dir,
            store,
            index: DirectoryIndex::new(),
            clock: std::cell::Cell::new(1_000),
        }
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("data/warden.redb")
    }

    /// Apply as `actor` with the toy authorizer, publishing to the index.
    pub fn try_as(&self, actor: &str, change: Change) -> Result<Applied, ApplyError> {
        let at = self.clock.get() + 1;
        self.clock.set(at);
        let authorize = |a: &str, o: &str, r: &str, act: &str| toy_authorize(&self.index, a, o, r, act);
        let ctx = ApplyContext::new(&authorize, &is_default_role);
        self.store
            .apply_and_index(ChangeEnvelope::new(actor, at, change), &ctx, &self.index)
    }

    pub fn ok_as(&self, actor: &str, change: Change) -> Applied {
        let what = format!("{change:?}");
        self.try_as(actor, change)
            .unwrap_or_else(|e| panic!("{what} by {actor}: {e}"))
    }

    /// The demo directory, applied through the normal path.
    pub fn with_demo() -> Fixture {
        let f = Fixture::new();
        for env in warden::store::demo::demo_changes(500) {
            f.store
                .apply_and_index(env, &ApplyContext::trusted(), &f.index)
                .unwrap();
        }
        f
    }
}

pub fn user(id: &str) -> Change {
    Change::UpsertUser {
        id: id.into(),
        email: format!("{id}@example.com"),
        username: Some(format!("{id} name")),
        email_verified: None,
    }
}

pub fn create_org(id: &str) -> Change {
    Change::CreateOrg {
        id: id.into(),
        name: format!("{id} Inc"),
        billing_email: None,
        plan: "free".into(),
        logo_url: None,
        public_metadata: serde_json::json!({"tier": 1}),
        private_metadata: serde_json::Value::Null,
        settings: OrgSettings::default(),
    }
}

pub fn add(org: &str, user: &str, role: &str) -> Change {
    Change::AddMember {
        org: org.into(),
        user: user.into(),
        role: role.into(),
        terms_version: None,
    }
}

pub fn org_app(id: &str, org: &str) -> Change {
    Change::CreateApp {
        id: id.into(),
        owner: Owner::Org(org.into()),
        name: id.to_uppercase(),
        labels: vec![],
    }
}

pub fn team_member(org: &str, team: &str, user: &str) -> Change {
    Change::AddTeamMember {
        org: org.into(),
        team: team.into(),
        user: user.into(),
    }
}

/// `Change::UpdateOrg` with nothing set.
pub fn update_org(id: &str) -> Change {
    Change::UpdateOrg {
        id: id.into(),
        name: None,
        billing_email: None,
        plan: None,
        logo_url: None,
        public_metadata: None,
        private_metadata: None,
        settings: None,
        settings_patch: None,
    }
}
