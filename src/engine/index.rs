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
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod digest;
pub use digest::{digest_of, ops_from_facts};

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

/// App labels appear as `label:<l>`, reached from the app's node.
fn label_node(label: &str) -> String {
    format!("label:{label}")
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
    /// An app now belongs to the org (lookups list it), with its labels.
    AddApp {
        org: String,
        app: String,
        labels: Vec<String>,
    },
    RemoveApp {
        org: String,
        app: String,
    },
    /// Replace the labels of an app of the org (grants and collaborators stay).
    SetAppLabels {
        org: String,
        app: String,
        labels: Vec<String>,
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
    /// A token checks may present, keyed by its secret's SHA-256.
    AddToken {
        hash: [u8; 32],
        id: String,
        subject: TokenSubject,
        scopes: Vec<String>,
        expires_at_ms: Option<u64>,
        /// Last use already recorded on disk (0 if never), so only newer uses are flushed.
        last_used_ms: u64,
    },
    /// A revoked or deleted token.
    RemoveToken {
        hash: [u8; 32],
    },
    /// A user outside the app's org gets `role` on this one app.
    SetCollaborator {
        app: String,
        user: String,
        role: String,
    },
    RemoveCollaborator {
        app: String,
        user: String,
    },
}

/// Whom a token acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSubject {
    /// A personal access token: decides as this user.
    User(String),
    /// An org API key: decides as this org role, in this org only.
    OrgRole { org: String, role: String },
}

/// The app id of `apps/<id>` or `apps/<id>/…`; empty for any other resource.
pub(crate) fn app_of(resource: &str) -> &str {
    resource
        .strip_prefix("apps/")
        .map_or("", |rest| rest.split_once('/').map_or(rest, |(app, _)| app))
}

/// A user id, stored inline (ids up to 24 bytes need no heap allocation), so a member
/// lookup touches one hash-table slot and no separate string.
type UserId = CompactString;

#[derive(Default)]
struct TeamEntry {
    members: FxHashSet<UserId>,
    apps: FxHashSet<Sym>,
}

/// What a user is in one org: its role and its teams, in one table slot so a check
/// finds both with one lookup.
#[derive(Debug, Default)]
pub(crate) struct MemberEntry {
    /// The org role node (`role:<name>`); `None` only transiently for a team member
    /// whose membership is gone (the store never leaves one behind).
    pub(crate) role: Option<Sym>,
    /// Team nodes (`team:<id>`) the user belongs to in this org.
    pub(crate) teams: SmallVec<[Sym; 2]>,
    /// Checks of this member answered over the API since the last usage flush
    /// (telemetry, see [`IndexData::count_check`]).
    checks: AtomicU64,
}

/// Everything the index knows about one org.
#[derive(Default)]
pub(crate) struct OrgEntry {
    /// user → role and teams.
    pub(crate) members: FxHashMap<UserId, MemberEntry>,
    teams: FxHashMap<Sym, TeamEntry>,
    /// App ids, stored inline: every check on `apps/<id>` asks whether the app is this
    /// org's (see `engine::outside_org`), and a hash set answers from one or two cache
    /// lines where an ordered set of shared strings chased a pointer per comparison.
    /// Listings sort what they page through.
    pub(crate) apps: FxHashSet<CompactString>,
    /// App node → its label nodes (`label:<l>`), for apps that have labels.
    labels: FxHashMap<Sym, SmallVec<[Sym; 2]>>,
    /// Checks counted on members of this org since the last flush; lets a flush skip
    /// idle orgs without visiting their members.
    checks: AtomicU64,
}

impl OrgEntry {
    /// Apps granted to `team` (empty when `team` is not a team of this org).
    pub(crate) fn team_apps(&self, team: Sym) -> impl Iterator<Item = Sym> + '_ {
        self.teams
            .get(&team)
            .into_iter()
            .flat_map(|t| t.apps.iter().copied())
    }

    /// Count one answered check of `member` (an entry of this org's `members`) if it is a
    /// member (holds a role); see [`IndexData::count_check`].
    pub(crate) fn count_check(&self, member: &MemberEntry) -> bool {
        if member.role.is_none() {
            return false;
        }
        member.checks.fetch_add(1, Ordering::Relaxed);
        self.checks.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Whether any app of this org has a label.
    pub(crate) fn has_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Label nodes of the app node `app` (empty when it has none or is not an app here).
    pub(crate) fn app_labels(&self, app: Sym) -> impl Iterator<Item = Sym> + '_ {
        self.labels.get(&app).into_iter().flat_map(|l| l.iter().copied())
    }
}

/// The data behind the lock.
///
/// Orgs and users are keyed by their ids directly (users never pass through the
/// interner: a million of them would make every check chase two more cache lines);
/// role, team and app nodes are interned, there are few of them.
#[derive(Default)]
pub struct IndexData {
    pub(crate) revision: u64,
    pub(crate) names: Interner,
    pub(crate) orgs: FxHashMap<CompactString, OrgEntry>,
    memberships: usize,
    /// Usable API tokens by the SHA-256 of their secret (see [`super::token`]).
    pub(crate) tokens: FxHashMap<[u8; 32], super::token::TokenEntry>,
    /// app → collaborator → role node (`role:<name>`). Empty in most directories, which lets
    /// a denied check skip the collaborator lookup with one length test.
    collaborators: FxHashMap<CompactString, FxHashMap<UserId, Sym>>,
    /// Unflushed check counts of members (or orgs) removed since the last flush, as
    /// (org, user, checks), so a removal does not lose the day's usage.
    retired_checks: Mutex<Vec<(String, String, u64)>>,
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
        let r = self.orgs.get(org)?.members.get(user)?.role?;
        let node = self.names.name(r);
        Some(node.strip_prefix("role:").unwrap_or(node))
    }

    pub(crate) fn org(&self, org: &str) -> Option<&OrgEntry> {
        self.orgs.get(org)
    }

    /// Count one answered check of `user` in `org` if `user` is a member of it (tokens and
    /// strangers are not counted: they would let any caller grow the counts at will).
    /// Two relaxed atomic adds under the shared lock: no allocation, no lock of its own.
    pub fn count_check(&self, org: &str, user: &str) -> bool {
        let Some(entry) = self.orgs.get(org) else {
            return false;
        };
        entry.members.get(user).is_some_and(|m| entry.count_check(m))
    }

    /// Unflushed check counts of `org`'s members, as (user, checks), without taking them.
    pub fn unflushed_checks(&self, org: &str) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self.orgs.get(org).map_or_else(Vec::new, |entry| {
            entry
                .members
                .iter()
                .map(|(u, m)| (u.to_string(), m.checks.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect()
        });
        out.extend(
            self.retired_checks
                .lock()
                .iter()
                .filter(|(o, _, _)| o == org)
                .map(|(_, u, n)| (u.clone(), *n)),
        );
        out
    }

    /// Orgs with unflushed check counts, sorted.
    pub fn orgs_with_unflushed_checks(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .orgs
            .iter()
            .filter(|(_, e)| e.checks.load(Ordering::Relaxed) > 0)
            .map(|(o, _)| o.to_string())
            .collect();
        out.extend(self.retired_checks.lock().iter().map(|(o, _, _)| o.clone()));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Take every unflushed check count as (org, user, checks), leaving zeros (see
    /// [`IndexData::take_checks_of`]).
    pub fn take_checks(&self) -> Vec<(String, String, u64)> {
        self.take_checks_of(&self.orgs_with_unflushed_checks())
    }

    /// Take the unflushed check counts of the members of `orgs`, and of their members removed
    /// since the last flush, as (org, user, checks), leaving zeros. Visits only orgs that
    /// counted something. A check counted while this runs is either taken now or left for
    /// the next flush, never lost or taken twice.
    pub fn take_checks_of(&self, orgs: &[String]) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        {
            let mut retired = self.retired_checks.lock();
            if !retired.is_empty() {
                let wanted: FxHashSet<&str> = orgs.iter().map(String::as_str).collect();
                retired.retain(|(org, user, n)| {
                    let take = wanted.contains(org.as_str());
                    if take {
                        out.push((org.clone(), user.clone(), *n));
                    }
                    !take
                });
            }
        }
        for org in orgs {
            let Some(entry) = self.orgs.get(org.as_str()) else {
                continue;
            };
            if entry.checks.swap(0, Ordering::Relaxed) == 0 {
                continue;
            }
            for (user, m) in &entry.members {
                let n = m.checks.swap(0, Ordering::Relaxed);
                if n > 0 {
                    out.push((org.clone(), user.to_string(), n));
                }
            }
        }
        out
    }

    /// Keep the unflushed count of a member leaving the index.
    fn retire_checks(&self, org: &str, user: &str, m: &MemberEntry) {
        let n = m.checks.load(Ordering::Relaxed);
        if n > 0 {
            self.retired_checks
                .lock()
                .push((org.to_string(), user.to_string(), n));
        }
    }

    pub(crate) fn has_collaborators(&self) -> bool {
        !self.collaborators.is_empty()
    }

    /// The role node `user` holds as a collaborator on the app `resource` names (`apps/<app>`
    /// or below it), if that app belongs to `org` and `user` is not a member of `org`:
    /// collaborators are outsiders, and a member decides by its membership only, never by
    /// the larger of two roles (issue 11, item 5).
    pub(crate) fn collaborator_role(&self, org: &str, resource: &str, user: &str) -> Option<&str> {
        let app = Some(app_of(resource)).filter(|a| !a.is_empty())?;
        let role = *self.collaborators.get(app)?.get(user)?;
        let entry = self.org(org)?;
        if !entry.apps.contains(app) || entry.members.get(user).is_some_and(|m| m.role.is_some()) {
            return None;
        }
        Some(self.names.name(role))
    }

    /// The teams of `org` (as `team:<id>` nodes, in id order) that hold `user` and are
    /// granted the app `app`: what a team-scoped allow used, for explanations.
    pub(crate) fn granting_teams(&self, org: &str, user: &str, app: &str) -> Vec<&str> {
        let Some(entry) = self.org(org) else {
            return Vec::new();
        };
        let (Some(member), Some(node)) = (entry.members.get(user), self.names.get(&app_node(app))) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = member
            .teams
            .iter()
            .filter(|t| entry.team_apps(**t).any(|a| a == node))
            .map(|t| self.names.name(*t))
            .collect();
        out.sort_unstable();
        out
    }

    fn apply_one(&mut self, op: &IndexOp) {
        match op {
            IndexOp::SetMember { org, user, role } => {
                let r = self.names.intern(&role_node(role));
                let entry = self.orgs.entry(org.as_str().into()).or_default();
                if entry
                    .members
                    .entry(user.as_str().into())
                    .or_default()
                    .role
                    .replace(r)
                    .is_none()
                {
                    self.memberships += 1;
                    // A member is never a collaborator on its own org's apps: the store
                    // drops those collaborations in the same transaction (see
                    // `store::collaborators::drop_member`), and so does the index.
                    if !self.collaborators.is_empty() {
                        let apps = &entry.apps;
                        self.collaborators.retain(|app, users| {
                            if apps.contains(app) {
                                users.remove(user.as_str());
                            }
                            !users.is_empty()
                        });
                    }
                }
            }
            IndexOp::RemoveMember { org, user } => {
                if let Some(entry) = self.orgs.get_mut(org.as_str())
                    && let Some(m) = entry.members.remove(user.as_str())
                {
                    let n = m.checks.load(Ordering::Relaxed);
                    if n > 0 {
                        self.retired_checks.lock().push((org.clone(), user.clone(), n));
                    }
                    if m.role.is_some() {
                        self.memberships -= 1;
                    }
                    for t in m.teams {
                        if let Some(team) = entry.teams.get_mut(&t) {
                            team.members.remove(user.as_str());
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
                    entry
                        .members
                        .entry(user.as_str().into())
                        .or_default()
                        .teams
                        .push(t);
                }
            }
            IndexOp::RemoveTeamMember { org, team, user } => {
                let Some(t) = self.names.get(&team_node(team)) else {
                    return;
                };
                if let Some(entry) = self.orgs.get_mut(org.as_str()) {
                    if let Some(team) = entry.teams.get_mut(&t) {
                        team.members.remove(user.as_str());
                    }
                    leave_team(entry, user, t);
                }
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
            IndexOp::AddApp { org, app, labels } => {
                let label_nodes: SmallVec<[Sym; 2]> =
                    labels.iter().map(|l| self.names.intern(&label_node(l))).collect();
                let node = (!label_nodes.is_empty()).then(|| self.names.intern(&app_node(app)));
                let entry = self.orgs.entry(org.as_str().into()).or_default();
                entry.apps.insert(app.as_str().into());
                if let Some(node) = node {
                    entry.labels.insert(node, label_nodes);
                }
            }
            IndexOp::SetAppLabels { org, app, labels } => {
                let label_nodes: SmallVec<[Sym; 2]> =
                    labels.iter().map(|l| self.names.intern(&label_node(l))).collect();
                let node = self.names.intern(&app_node(app));
                let entry = self.orgs.entry(org.as_str().into()).or_default();
                if label_nodes.is_empty() {
                    entry.labels.remove(&node);
                } else {
                    entry.labels.insert(node, label_nodes);
                }
            }
            IndexOp::RemoveApp { org, app } => {
                self.collaborators.remove(app.as_str());
                let a = self.names.get(&app_node(app));
                if let Some(entry) = self.orgs.get_mut(org.as_str()) {
                    entry.apps.remove(app.as_str());
                    if let Some(a) = a {
                        entry.labels.remove(&a);
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
                if let Some(entry) = self.orgs.get_mut(org.as_str())
                    && let Some(removed) = entry.teams.remove(&t)
                {
                    for u in removed.members {
                        leave_team(entry, &u, t);
                    }
                }
            }
            IndexOp::RemoveOrg { org } => {
                if let Some(entry) = self.orgs.remove(org.as_str()) {
                    for (user, m) in &entry.members {
                        self.retire_checks(org, user, m);
                    }
                    self.memberships -= entry.members.values().filter(|m| m.role.is_some()).count();
                    // Everything keyed by the org's apps goes with them: the collaborators
                    // are keyed by app id alone, and another org may create an app of the
                    // same id later (issue 11, item 1).
                    for app in &entry.apps {
                        self.collaborators.remove(app.as_str());
                    }
                }
                // The org's API keys, even if the store forgot to name them.
                self.tokens.retain(|_, t| t.org.as_deref() != Some(org.as_str()));
            }
            IndexOp::AddToken {
                hash,
                id,
                subject,
                scopes,
                expires_at_ms,
                last_used_ms,
            } => {
                self.tokens.insert(
                    *hash,
                    super::token::TokenEntry::new(id, subject, scopes, *expires_at_ms, *last_used_ms),
                );
            }
            IndexOp::RemoveToken { hash } => {
                self.tokens.remove(hash);
            }
            IndexOp::SetCollaborator { app, user, role } => {
                let r = self.names.intern(&role_node(role));
                self.collaborators
                    .entry(app.as_str().into())
                    .or_default()
                    .insert(user.as_str().into(), r);
            }
            IndexOp::RemoveCollaborator { app, user } => {
                if let Some(users) = self.collaborators.get_mut(app.as_str()) {
                    users.remove(user.as_str());
                    if users.is_empty() {
                        self.collaborators.remove(app.as_str());
                    }
                }
            }
        }
    }
}

/// Take `team` out of `user`'s entry; drop the entry when nothing is left in it.
fn leave_team(entry: &mut OrgEntry, user: &str, team: Sym) {
    if let Some(m) = entry.members.get_mut(user) {
        m.teams.retain(|x| *x != team);
        if m.role.is_none() && m.teams.is_empty() {
            entry.members.remove(user);
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

    /// Replace everything with `fresh`'s contents, atomically for readers (after the store
    /// was reopened and may hold a write this index never saw). Unflushed usage counts and
    /// token uses in memory go with the old contents.
    pub fn replace_with(&self, fresh: DirectoryIndex) {
        *self.inner.write() = fresh.inner.into_inner();
    }

    /// Read access for decisions. Hold the guard only for the duration of a check.
    pub fn read(&self) -> RwLockReadGuard<'_, IndexData> {
        self.inner.read()
    }

    pub fn revision(&self) -> u64 {
        self.inner.read().revision
    }

    /// Token uses recorded in memory since the last call, as (token id, Unix ms), for the
    /// daemon to write to the store.
    pub fn take_token_uses(&self) -> Vec<(String, u64)> {
        self.inner.read().take_token_uses()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn seeded() -> DirectoryIndex {
        let index = DirectoryIndex::new();
        index.apply(
            3,
            &[
                IndexOp::SetMember {
                    org: s("acme"),
                    user: s("alice"),
                    role: s("admin"),
                },
                IndexOp::SetMember {
                    org: s("acme"),
                    user: s("carol"),
                    role: s("team_contributor"),
                },
                IndexOp::AddTeamMember {
                    org: s("acme"),
                    team: s("fe"),
                    user: s("carol"),
                },
                IndexOp::AddApp {
                    org: s("acme"),
                    app: s("web"),
                    labels: vec![],
                },
                IndexOp::GrantApp {
                    org: s("acme"),
                    team: s("fe"),
                    app: s("web"),
                },
            ],
        );
        index
    }

    #[test]
    fn facts_turned_back_into_ops_rebuild_the_same_index() {
        let index = seeded();
        index.apply(
            4,
            &[
                IndexOp::AddApp {
                    org: s("acme"),
                    app: s("api"),
                    labels: vec![s("hipaa"), s("pii")],
                },
                IndexOp::SetCollaborator {
                    app: s("web"),
                    user: s("frank"),
                    role: s("org_user"),
                },
            ],
        );
        let facts = index.read().facts();
        let rebuilt = DirectoryIndex::new();
        rebuilt.apply(1, &ops_from_facts(&facts).unwrap());
        assert_eq!(rebuilt.read().facts(), facts);
        assert!(
            ops_from_facts(&[s("member acme alice")])
                .unwrap_err()
                .contains("member acme alice")
        );
        assert!(
            ops_from_facts(&[s("member acme alice admin")])
                .unwrap_err()
                .contains("role:")
        );
    }

    #[test]
    fn taking_counts_of_some_orgs_leaves_the_others_for_the_next_chunk() {
        let index = seeded();
        index.apply(
            4,
            &[
                IndexOp::SetMember {
                    org: s("globex"),
                    user: s("gina"),
                    role: s("admin"),
                },
                IndexOp::SetMember {
                    org: s("globex"),
                    user: s("hank"),
                    role: s("org_user"),
                },
            ],
        );
        {
            let dir = index.read();
            assert!(dir.count_check("acme", "alice"));
            assert!(dir.count_check("globex", "gina"));
            assert!(dir.count_check("globex", "hank"));
        }
        // Hank leaves globex before its chunk is written: his count waits with globex's.
        index.apply(
            5,
            &[IndexOp::RemoveMember {
                org: s("globex"),
                user: s("hank"),
            }],
        );
        assert_eq!(
            index.read().orgs_with_unflushed_checks(),
            vec![s("acme"), s("globex")]
        );
        assert_eq!(
            index.read().take_checks_of(&[s("acme")]),
            vec![(s("acme"), s("alice"), 1)]
        );
        assert_eq!(index.read().orgs_with_unflushed_checks(), vec![s("globex")]);
        let mut rest = index.read().take_checks_of(&[s("globex")]);
        rest.sort();
        assert_eq!(
            rest,
            vec![(s("globex"), s("gina"), 1), (s("globex"), s("hank"), 1)]
        );
        assert!(index.read().take_checks().is_empty());
    }

    #[test]
    fn check_counts_are_per_member_taken_once_and_survive_a_removal() {
        let index = seeded();
        {
            let dir = index.read();
            for _ in 0..3 {
                assert!(dir.count_check("acme", "alice"));
            }
            assert!(dir.count_check("acme", "carol"));
            // Strangers, unknown orgs and token subjects are not counted.
            assert!(!dir.count_check("acme", "mallory"));
            assert!(!dir.count_check("nowhere", "alice"));
            assert!(!dir.count_check("acme", "token:abc"));
            let mut peek = dir.unflushed_checks("acme");
            peek.sort();
            assert_eq!(peek, vec![(s("alice"), 3), (s("carol"), 1)]);
            assert_eq!(dir.orgs_with_unflushed_checks(), vec![s("acme")]);
        }
        // Carol leaves before the flush: her count is kept.
        index.apply(
            4,
            &[IndexOp::RemoveMember {
                org: s("acme"),
                user: s("carol"),
            }],
        );
        let mut taken = index.read().take_checks();
        taken.sort();
        assert_eq!(
            taken,
            vec![(s("acme"), s("alice"), 3), (s("acme"), s("carol"), 1)]
        );
        // Taken means gone: the next flush finds nothing.
        assert!(index.read().take_checks().is_empty());
        assert!(index.read().orgs_with_unflushed_checks().is_empty());
        assert!(index.read().unflushed_checks("acme").is_empty());
    }

    fn teams_of(index: &DirectoryIndex, user: &str) -> usize {
        index
            .read()
            .org("acme")
            .and_then(|o| o.members.get(user))
            .map(|m| m.teams.len())
            .unwrap_or(0)
    }

    #[test]
    fn members_change_role_and_leave_with_their_teams() {
        let index = seeded();
        assert_eq!(index.read().role_of("acme", "carol"), Some("team_contributor"));
        index.apply(
            4,
            &[IndexOp::SetMember {
                org: s("acme"),
                user: s("carol"),
                role: s("org_user"),
            }],
        );
        assert_eq!(index.read().role_of("acme", "carol"), Some("org_user"));
        assert_eq!(index.read().membership_count(), 2);
        index.apply(
            5,
            &[IndexOp::RemoveMember {
                org: s("acme"),
                user: s("carol"),
            }],
        );
        assert_eq!(index.read().role_of("acme", "carol"), None);
        assert_eq!(teams_of(&index, "carol"), 0);
        assert_eq!(index.read().membership_count(), 1);
        assert_eq!(index.revision(), 5);
    }

    #[test]
    fn removing_a_team_or_an_org_leaves_nothing_behind() {
        let index = seeded();
        index.apply(
            4,
            &[IndexOp::RemoveTeam {
                org: s("acme"),
                team: s("fe"),
            }],
        );
        assert_eq!(teams_of(&index, "carol"), 0);
        index.apply(5, &[IndexOp::RemoveOrg { org: s("acme") }]);
        assert_eq!(index.read().membership_count(), 0);
        assert_eq!(index.read().org_count(), 0);
        assert_eq!(index.read().role_of("acme", "alice"), None);
    }

    #[test]
    fn revisions_never_go_back_and_ops_are_idempotent() {
        let index = seeded();
        index.apply(
            2,
            &[IndexOp::SetMember {
                org: s("acme"),
                user: s("alice"),
                role: s("admin"),
            }],
        );
        assert_eq!(index.revision(), 3);
        assert_eq!(index.read().membership_count(), 2);
        index.apply(
            4,
            &[IndexOp::RemoveApp {
                org: s("acme"),
                app: s("web"),
            }],
        );
        let d = index.read();
        let o = d.org("acme").unwrap();
        assert!(o.apps.is_empty());
        let fe = d.names.get("team:fe").unwrap();
        assert_eq!(o.team_apps(fe).count(), 0);
    }
}
