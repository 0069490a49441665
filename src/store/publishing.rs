//! Publishing review of org apps: a member submits a version, an admin approves or rejects it.
//!
//! States: `pending` → `approved` | `rejected`, once. A version id is submitted once per app;
//! a rejected version is resubmitted under a new id, so the history of each id stays one
//! decision. Deleting the app deletes its versions.

use super::read::Page;
use super::tables::{self, WriteTables, decode, encode, get_json2};
use super::{ApplyError, Store, StoreError};
use crate::directory::{AppVersion, Change, ChangeEnvelope, Refusal, VersionState};
use crate::engine::index::IndexOp;
use redb::ReadableTable;

/// Apply a publishing change (already validated and authorized by `apply_change`, which also
/// checked that the app exists and belongs to an org).
pub(crate) fn apply(t: &mut WriteTables<'_>, env: &ChangeEnvelope) -> Result<Vec<IndexOp>, ApplyError> {
    match &env.change {
        Change::SubmitAppVersion { app, version, note } => {
            if t.app_versions.get((app.as_str(), version.as_str()))?.is_some() {
                return Err(Refusal::already_exists(format!("version `{version}` of app `{app}`")).into());
            }
            put(
                t,
                &AppVersion {
                    app: app.clone(),
                    version: version.clone(),
                    state: VersionState::Pending,
                    note: note.clone(),
                    submitted_by: env.actor.clone(),
                    submitted_at_ms: env.at_ms,
                    reviewed_by: None,
                    reviewed_at_ms: None,
                    reason: None,
                },
            )?;
            Ok(vec![])
        }
        Change::ReviewAppVersion {
            app,
            version,
            approve,
            reason,
        } => {
            let mut v: AppVersion = get_json2(&t.app_versions, "app_versions", (app, version))?
                .ok_or_else(|| Refusal::not_found(format!("version `{version}` of app `{app}`")))?;
            if v.state != VersionState::Pending {
                return Err(Refusal::precondition(format!(
                    "version `{version}` of app `{app}` is already {}; submit a new version",
                    v.state.as_str()
                ))
                .into());
            }
            v.state = if *approve {
                VersionState::Approved
            } else {
                VersionState::Rejected
            };
            v.reviewed_by = Some(env.actor.clone());
            v.reviewed_at_ms = Some(env.at_ms);
            v.reason = reason.clone();
            put(t, &v)?;
            Ok(vec![])
        }
        other => {
            Err(Refusal::invalid("change", format!("`{}` is not a publishing change", other.kind())).into())
        }
    }
}

pub(crate) fn put(t: &mut WriteTables<'_>, v: &AppVersion) -> Result<(), StoreError> {
    t.app_versions
        .insert((v.app.as_str(), v.version.as_str()), encode(v)?.as_slice())?;
    Ok(())
}

pub(crate) fn drop_app(t: &mut WriteTables<'_>, app: &str) -> Result<(), StoreError> {
    for version in tables::seconds(&t.app_versions, app)? {
        t.app_versions.remove((app, version.as_str()))?;
    }
    Ok(())
}

impl Store {
    pub fn get_app_version(&self, app: &str, version: &str) -> Result<Option<AppVersion>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json2(
            &txn.open_table(tables::APP_VERSIONS)?,
            "app_versions",
            (app, version),
        )
    }

    /// Versions of `app` in version-id order, optionally only those in `state`.
    pub fn list_app_versions(
        &self,
        app: &str,
        state: Option<VersionState>,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<AppVersion>, ApplyError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::APP_VERSIONS)?;
        let ids = super::read::page_seconds(&table, app, page_token, page_size)?;
        let mut items = Vec::with_capacity(ids.items.len());
        for id in &ids.items {
            if let Some(v) = get_json2::<AppVersion>(&table, "app_versions", (app, id.as_str()))?
                && state.is_none_or(|s| s == v.state)
            {
                items.push(v);
            }
        }
        Ok(Page {
            items,
            next_page_token: ids.next_page_token,
        })
    }

    pub(crate) fn all_app_versions(txn: &redb::ReadTransaction) -> Result<Vec<AppVersion>, StoreError> {
        let mut out = Vec::new();
        for item in txn.open_table(tables::APP_VERSIONS)?.iter()? {
            let (key, value) = item?;
            let (app, version) = key.value();
            out.push(decode(
                "app_versions",
                &format!("{app}/{version}"),
                value.value(),
            )?);
        }
        Ok(out)
    }
}
