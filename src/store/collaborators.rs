//! App collaborators in the store: users outside an org app's org who hold a role on that one
//! app. Applying `AddCollaborator` / `RemoveCollaborator` (a member of the app's org is refused),
//! the cascades when the app is deleted or the collaborator joins the org, reads, and feeding
//! the index.

use super::apply::{require_app, require_user};
use super::read::Page;
use super::tables::{self, WriteTables, decode, encode, get_json2};
use super::{ApplyError, Store, StoreError};
use crate::directory::{ApplyContext, Change, ChangeEnvelope, Collaborator, Owner, Refusal};
use crate::engine::index::IndexOp;
use redb::ReadableTable;

/// Apply a collaborator change (already validated and authorized by `apply_change`).
pub(crate) fn apply(
    t: &mut WriteTables<'_>,
    env: &ChangeEnvelope,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<IndexOp>, ApplyError> {
    match &env.change {
        Change::AddCollaborator { app, user, role } => {
            let a = require_app(t, app)?;
            require_user(t, user, "user")?;
            if !(ctx.is_role)(role) {
                return Err(Refusal::invalid(
                    "role",
                    format!("unknown role `{role}`; roles are defined by the policy"),
                )
                .into());
            }
            if let Owner::Org(org) = &a.owner
                && t.memberships.get((org.as_str(), user.as_str()))?.is_some()
            {
                return Err(Refusal::precondition(format!(
                    "`{user}` is a member of org `{org}`; collaborators are for users outside the app's org"
                ))
                .into());
            }
            if t.collaborators.get((app.as_str(), user.as_str()))?.is_some() {
                return Err(Refusal::already_exists(format!("collaborator `{user}` on app `{app}`")).into());
            }
            let c = Collaborator {
                app: app.clone(),
                user: user.clone(),
                role: role.clone(),
                added_by: env.actor.clone(),
                added_at_ms: env.at_ms,
            };
            t.collaborators
                .insert((app.as_str(), user.as_str()), encode(&c)?.as_slice())?;
            Ok(vec![IndexOp::SetCollaborator {
                app: app.clone(),
                user: user.clone(),
                role: role.clone(),
            }])
        }
        Change::RemoveCollaborator { app, user } => {
            if t.collaborators.remove((app.as_str(), user.as_str()))?.is_none() {
                return Err(Refusal::not_found(format!("collaborator `{user}` on app `{app}`")).into());
            }
            Ok(vec![IndexOp::RemoveCollaborator {
                app: app.clone(),
                user: user.clone(),
            }])
        }
        other => Err(Refusal::invalid(
            "change",
            format!("`{}` is not a collaborator change", other.kind()),
        )
        .into()),
    }
}

/// Remove every collaborator of a deleted app (the index drops them with the app).
pub(crate) fn drop_app(t: &mut WriteTables<'_>, app: &str) -> Result<(), StoreError> {
    for user in tables::seconds(&t.collaborators, app)? {
        t.collaborators.remove((app, user.as_str()))?;
    }
    Ok(())
}

/// Drop `user`'s collaborations on the apps of `org`, as `user` becomes a member of it:
/// collaborators are users outside the app's org, so a membership replaces them (the rule
/// of the Clarifai model). The index does the same when it learns of the membership
/// (`IndexOp::SetMember`). One probe when no app has a collaborator.
pub(crate) fn drop_member(t: &mut WriteTables<'_>, org: &str, user: &str) -> Result<(), StoreError> {
    if t.collaborators.first()?.is_none() {
        return Ok(());
    }
    for app in tables::thirds(&t.apps_by_owner, "org", org)? {
        t.collaborators.remove((app.as_str(), user))?;
    }
    Ok(())
}

/// Write a collaborator from a dump (checks done by the caller).
pub(crate) fn put(t: &mut WriteTables<'_>, c: &Collaborator) -> Result<(), StoreError> {
    t.collaborators
        .insert((c.app.as_str(), c.user.as_str()), encode(c)?.as_slice())?;
    Ok(())
}

impl Store {
    pub fn get_collaborator(&self, app: &str, user: &str) -> Result<Option<Collaborator>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json2(
            &txn.open_table(tables::COLLABORATORS)?,
            "collaborators",
            (app, user),
        )
    }

    /// Collaborators of `app`, in user-id order.
    pub fn list_collaborators(
        &self,
        app: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<Collaborator>, ApplyError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::COLLABORATORS)?;
        let users = super::read::page_seconds(&table, app, page_token, page_size)?;
        let mut items = Vec::with_capacity(users.items.len());
        for user in &users.items {
            if let Some(c) = get_json2(&table, "collaborators", (app, user.as_str()))? {
                items.push(c);
            }
        }
        Ok(Page {
            items,
            next_page_token: users.next_page_token,
        })
    }

    /// Every collaborator, in key order (export).
    pub(crate) fn all_collaborators(txn: &redb::ReadTransaction) -> Result<Vec<Collaborator>, StoreError> {
        let mut out = Vec::new();
        for item in txn.open_table(tables::COLLABORATORS)?.iter()? {
            let (key, value) = item?;
            let (app, user) = key.value();
            out.push(decode("collaborators", &format!("{app}/{user}"), value.value())?);
        }
        Ok(out)
    }

    /// Index ops for every collaborator (startup).
    pub(crate) fn collaborator_index_ops(txn: &redb::ReadTransaction) -> Result<Vec<IndexOp>, StoreError> {
        Ok(Self::all_collaborators(txn)?
            .into_iter()
            .map(|c| IndexOp::SetCollaborator {
                app: c.app,
                user: c.user,
                role: c.role,
            })
            .collect())
    }
}
