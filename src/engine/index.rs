//! The in-memory directory index: the part of the org directory that decisions read.
//!
//! It owns the role links that come from the directory (memberships, team memberships,
//! team app grants) and the app list per org, keyed by interned names so that a check
//! costs a couple of hash lookups and no allocation. The store feeds it incrementally
//! through [`DirectoryIndex::apply`] after each committed write; startup feeds it once
//! from the tables. It never touches redb or the policy files.
//!
//! Concurrency: one `RwLock` around the whole index. Writers are already serialized by
//! the store (one redb write transaction at a time), critical sections are tiny and
//! never span I/O or `.await`, and readers only take the shared side, so a plain
//! `parking_lot::RwLock` is the simplest thing that keeps every reader consistent with
//! one revision.

use compact_str::CompactString;
use parking_lot::{RwLock, RwLockReadGuard};
use rustc_hash::FxBuildHasher;
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An interned name: an index into [`Interner`].
pub type Sym = u32;

/// Append-only string interner. Names are never removed: a removed member's id stays
/// interned (a few bytes) so that symbols held elsewhere never dangle.
#[derive(Default)]
pub struct Interner {
    map: FxHashMap<Arc<str>, Sym>,
    names: Vec<Arc<str>>,
}

impl Interner {
    pub fn get(&self, name: &str) -> Option<Sym> {
        self.map.get(name).copied()
    }

    pub fn intern(&mut self, name: &str) -> Sym {
        if let Some(s) = self.map.get(name) {
            return *s;
        }
        let sym = self.names.len() as Sym;
        let arc: Arc<str> = Arc::from(name);
        self.names.push(arc.clone());
        self.map.insert(arc, sym);
        sym
    }

    pub fn name(&self, sym: Sym) -> &str {
        self.names.get(sym as usize).map(|s| &**s).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Teams appear in role graphs as `team:<id>`, so a team can never be mistaken for a
/// role or a user of the same name.
fn team_node(team: &str) -> String {
    format!("team:{team}")
}

/// Org roles appear as `role:<name>` and granted apps as `app:<id>`, for the same
/// reason: a user whose id happens to be `admin` or `web` must not become the role or
/// the app (Casbin's `g(x, x)` is always true).
fn role_node(role: &str) -> String {
    format!("role:{role}")
}

fn app_node(app: &str) -> String {
    format!("app:{app}")
}

/// One change to the index. The store turns each committed directory change into a
/// short list of these; they are idempotent so replaying them is harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOp {
    /// Add a member or change its role (one org role per member).
    SetMember {
        org: String,
        user: String,
        role: String,
    },
    RemoveMember {
        org: String,
        user: String,
    },
    AddTeamMember {
        org: String,
        team: String,
        user: String,
    },
    RemoveTeamMember {
        org: String,
        team: String,
        user: String,
    },
    /// Give a team access to one app of its org.
    GrantApp {
        org: String,
        team: String,
        app: String,
    },
    RevokeApp {
        org: String,
        team: String,
        app: String,
    },
    /// An app now belongs to the org (lookups list it).
    AddApp {
        org: String,
        app: String,
    },
    RemoveApp {
        org: String,
        app: String,
    },
    /// Drop a team with its members and grants.
    RemoveTeam {
        org: String,
        team: String,
    },
    /// Drop an org with everything in it.
    RemoveOrg {
        org: String,
    },
}

/// A user id, stored inline (ids up to 24 bytes need no heap allocation).
type UserId = CompactString;

/// Key of the membership table: (org, user). One hash lookup answers "what is this user
/// in this org" — the question every check asks first — touching one table slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberKey {
    org: CompactString,
    user: UserId,
}

/// The borrowed form of [`MemberKey`], for lookups without building a key.
#[derive(Debug, Clone, Copy)]
struct MemberRef<'a> {
    org: &'a str,
    user: &'a str,
}

fn hash_member<H: Hasher>(org: &str, user: &str, state: &mut H) {
    state.write(org.as_bytes());
    state.write_u8(0xff);
    state.write(user.as_bytes());
}

impl Hash for MemberKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_member(&self.org, &self.user, state);
    }
}

impl Hash for MemberRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_member(self.org, self.user, state);
    }
}

impl hashbrown::Equivalent<MemberKey> for MemberRef<'_> {
    fn equivalent(&self, key: &MemberKey) -> bool {
        key.org == self.org && key.user == self.user
    }
}

/// What a user is in one org.
#[derive(Debug, Default, Clone)]
pub(crate) struct MemberEntry {
    /// The org role node (`role:<name>`), if a member.
    pub(crate) role: Option<Sym>,
    /// Team nodes (`team:<id>`) the user belongs to in this org.
    pub(crate) teams: SmallVec<[Sym; 2]>,
}

#[derive(Default)]
struct TeamEntry {
    members: FxHashSet<UserId>,
    apps: FxHashSet<Sym>,
}

/// Org-level data: teams, apps and the member list in id order (for lookups).
#[derive(Default)]
pub(crate) struct OrgEntry {
    /// Member ids, sorted, so subject lookups page without sorting.
    pub(crate) members: BTreeSet<UserId>,
    teams: FxHashMap<Sym, TeamEntry>,
    /// App ids, sorted by name so lookups page deterministically.
    pub(crate) apps: BTreeSet<Arc<str>>,
}

impl OrgEntry {
    /// Apps granted to `team` (empty when `team` is not a team of this org).
    pub(crate) fn team_apps(&self, team: Sym) -> impl Iterator<Item = Sym> + '_ {
        self.teams
            .get(&team)
            .into_iter()
            .flat_map(|t| t.apps.iter().copied())
    }
}

/// The data behind the lock.
///
/// Users never pass through the interner: a million of them would make every check
/// chase more cache lines. Role, team and app nodes are interned; there are few.
#[derive(Default)]
pub struct IndexData {
    pub(crate) revision: u64,
    pub(crate) names: Interner,
    pub(crate) orgs: FxHashMap<CompactString, OrgEntry>,
    members: hashbrown::HashMap<MemberKey, MemberEntry, FxBuildHasher>,
    memberships: usize,
}

impl IndexData {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn membership_count(&self) -> usize {
        self.memberships
    }

    pub fn org_count(&self) -> usize {
        self.orgs.len()
    }

    /// The role `user` holds in `org`, if a member.
    pub fn role_of(&self, org: &str, user: &str) -> Option<&str> {
        let r = self.member(org, user)?.role?;
        let node = self.names.name(r);
        Some(node.strip_prefix("role:").unwrap_or(node))
    }

    pub(crate) fn member(&self, org: &str, user: &str) -> Option<&MemberEntry> {
        self.members.get(&MemberRef { org, user })
    }

    pub(crate) fn org(&self, org: &str) -> Option<&OrgEntry> {
        self.orgs.get(org)
    }

    fn member_mut(&mut self, org: &str, user: &str) -> &mut MemberEntry {
        self.members
            .entry(MemberKey {
                org: org.into(),
                user: user.into(),
            })
            .or_default()
    }

    /// Drop the entry of a user who is neither a member nor in a team.
    fn prune(&mut self, org: &str, user: &str) {
        if self
            .member(org, user)
            .is_some_and(|m| m.role.is_none() && m.teams.is_empty())
        {
            self.members.remove(&MemberRef { org, user });
        }
    }

    fn apply_one(&mut self, op: &IndexOp) {
        match op {
            IndexOp::SetMember { org, user, role } => {
                let r = self.names.intern(&role_node(role));
                let m = self.member_mut(org, user);
                if m.role.replace(r).is_none() {
                    self.memberships += 1;
                }
                self.orgs
                    .entry(org.as_str().into())
                    .or_default()
                    .members
                    .insert(user.as_str().into());
            }
            IndexOp::RemoveMember { org, user } => {
                if let Some(m) = self.members.remove(&MemberRef { org, user }) {
                    if m.role.is_some() {
                        self.memberships -= 1;
                    }
                    if let Some(entry) = self.orgs.get_mut(org.as_str()) {
                        entry.members.remove(user.as_str());
                        for t in m.teams {
                            if let Some(team) = entry.teams.get_mut(&t) {
                                team.members.remove(user.as_str());
                            }
                        }
                    }
                }
            }
            IndexOp::AddTeamMember { org, team, user } => {
                let t = self.names.intern(&team_node(team));
                let entry = self.orgs.entry(org.as_str().into()).or_default();
                if entry
                    .teams
                    .entry(t)
                    .or_default()
                    .members
                    .insert(user.as_str().into())
                {
                    self.member_mut(org, user).teams.push(t);
                }
            }
            IndexOp::RemoveTeamMember { org, team, user } => {
                let Some(t) = self.names.get(&team_node(team)) else {
                    return;
                };
                if let Some(team) = self.orgs.get_mut(org.as_str()).and_then(|e| e.teams.get_mut(&t)) {
                    team.members.remove(user.as_str());
                }
                if let Some(m) = self.members.get_mut(&MemberRef { org, user }) {
                    m.teams.retain(|x| *x != t);
                }
                self.prune(org, user);
            }
            IndexOp::GrantApp { org, team, app } => {
                let (t, a) = (
                    self.names.intern(&team_node(team)),
                    self.names.intern(&app_node(app)),
                );
                self.orgs
                    .entry(org.as_str().into())
                    .or_default()
                    .teams
                    .entry(t)
                    .or_default()
                    .apps
                    .insert(a);
            }
            IndexOp::RevokeApp { org, team, app } => {
                let (Some(t), Some(a)) = (self.names.get(&team_node(team)), self.names.get(&app_node(app)))
                else {
                    return;
                };
                if let Some(team) = self.orgs.get_mut(org.as_str()).and_then(|e| e.teams.get_mut(&t)) {
                    team.apps.remove(&a);
                }
            }
            IndexOp::AddApp { org, app } => {
                self.orgs
                    .entry(org.as_str().into())
                    .or_default()
                    .apps
                    .insert(Arc::from(app.as_str()));
            }
            IndexOp::RemoveApp { org, app } => {
                let a = self.names.get(&app_node(app));
                if let Some(entry) = self.orgs.get_mut(org.as_str()) {
                    entry.apps.remove(app.as_str());
                    if let Some(a) = a {
                        for team in entry.teams.values_mut() {
                            team.apps.remove(&a);
                        }
                    }
                }
            }
            IndexOp::RemoveTeam { org, team } => {
                let Some(t) = self.names.get(&team_node(team)) else {
                    return;
                };
                let removed = self.orgs.get_mut(org.as_str()).and_then(|e| e.teams.remove(&t));
                if let Some(removed) = removed {
                    for u in removed.members {
                        if let Some(m) = self.members.get_mut(&MemberRef { org, user: &u }) {
                            m.teams.retain(|x| *x != t);
                        }
                        self.prune(org, &u);
                    }
                }
            }
            IndexOp::RemoveOrg { org } => {
                if let Some(entry) = self.orgs.remove(org.as_str()) {
                    for user in &entry.members {
                        if self
                            .members
                            .remove(&MemberRef { org, user })
                            .is_some_and(|m| m.role.is_some())
                        {
                            self.memberships -= 1;
                        }
                    }
                    for team in entry.teams.values() {
                        for user in &team.members {
                            self.members.remove(&MemberRef { org, user });
                        }
                    }
                }
            }
        }
    }
}

/// The shared, incrementally updated directory index.
#[derive(Default)]
pub struct DirectoryIndex {
    inner: RwLock<IndexData>,
}

impl DirectoryIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply the effects of one committed write and publish its revision, atomically
    /// for readers: a check sees all of a write or none of it.
    pub fn apply(&self, revision: u64, ops: &[IndexOp]) {
        let mut data = self.inner.write();
        for op in ops {
            data.apply_one(op);
        }
        data.revision = data.revision.max(revision);
    }

    /// Read access for decisions. Hold the guard only for the duration of a check.
    pub fn read(&self) -> RwLockReadGuard<'_, IndexData> {
        self.inner.read()
    }

    pub fn revision(&self) -> u64 {
        self.inner.read().revision
    }
}
