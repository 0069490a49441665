//! API tokens in the store: applying `CreateToken` / `RevokeToken`, the cascade when an org is
//! deleted, reads, feeding the index, and the last-used telemetry.
//!
//! Tokens follow the directory's one write path (change log, one transaction). Last use is the
//! exception on purpose: it changes on every check, so the engine keeps it in memory and the
//! daemon flushes it here now and then ([`Store::record_token_use`]) into a table outside the
//! change log. It is not directory state: it is not in the directory log nor audited (in
//! cluster mode the flush also queues it for the telemetry stream, see `usage.rs`).

use super::apply::{require_org, require_user};
use super::read::{Page, page_thirds};
use super::tables::{self, WriteTables, decode, encode, get_json, thirds};
use super::{ApplyError, Store, StoreError};
use crate::directory::tokens::parse_hash;
use crate::directory::{ApplyContext, Change, ChangeEnvelope, Owner, Refusal, Token};
use crate::engine::index::{IndexOp, TokenSubject};
use redb::ReadableTable;

pub(crate) fn require_token(t: &WriteTables<'_>, id: &str) -> Result<Token, ApplyError> {
    get_json(&t.tokens, "tokens", id)?.ok_or_else(|| Refusal::not_found(format!("token `{id}`")).into())
}

/// The index op that makes `token` usable by checks (none for a revoked one).
pub(crate) fn add_op(token: &Token, last_used_ms: u64) -> Result<Option<IndexOp>, StoreError> {
    if token.revoked_at_ms.is_some() {
        return Ok(None);
    }
    let hash = parse_hash(&token.secret_hash).ok_or_else(|| StoreError::Corrupt {
        table: "tokens".into(),
        key: token.id.clone(),
        reason: "secret_hash is not a SHA-256".into(),
    })?;
    let subject = match (&token.owner, &token.role) {
        (Owner::User(user), _) => TokenSubject::User(user.clone()),
        (Owner::Org(org), Some(role)) => TokenSubject::OrgRole {
            org: org.clone(),
            role: role.clone(),
        },
        (Owner::Org(_), None) => {
            return Err(StoreError::Corrupt {
                table: "tokens".into(),
                key: token.id.clone(),
                reason: "an org key without a role".into(),
            });
        }
    };
    Ok(Some(IndexOp::AddToken {
        hash,
        id: token.id.clone(),
        subject,
        scopes: token.scopes.clone(),
        expires_at_ms: token.expires_at_ms,
        last_used_ms,
    }))
}

/// Apply a token change (already validated and authorized by `apply_change`).
pub(crate) fn apply(
    t: &mut WriteTables<'_>,
    env: &ChangeEnvelope,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<IndexOp>, ApplyError> {
    match &env.change {
        Change::CreateToken {
            id,
            owner,
            name,
            role,
            scopes,
            expires_at_ms,
            secret_hash,
        } => {
            match owner {
                Owner::User(user) => require_user(t, user, "owner")?,
                Owner::Org(org) => {
                    require_org(t, org)?;
                }
            }
            if let Some(role) = role
                && !(ctx.is_role)(role)
            {
                return Err(Refusal::invalid(
                    "role",
                    format!("unknown role `{role}`; roles are defined by the policy"),
                )
                .into());
            }
            if let Some(at) = expires_at_ms
                && *at <= env.at_ms
            {
                return Err(Refusal::invalid("expires_at_ms", "must be in the future").into());
            }
            if t.tokens.get(id.as_str())?.is_some() {
                return Err(Refusal::already_exists(format!("token `{id}`")).into());
            }
            let token = Token {
                id: id.clone(),
                owner: owner.clone(),
                name: name.clone(),
                role: role.clone(),
                scopes: scopes.clone(),
                expires_at_ms: *expires_at_ms,
                secret_hash: secret_hash.clone(),
                created_by: env.actor.clone(),
                created_at_ms: env.at_ms,
                revoked_at_ms: None,
                last_used_ms: None,
            };
            put_token(t, &token)?;
            Ok(add_op(&token, 0)?.into_iter().collect())
        }
        Change::RevokeToken { id } => {
            let mut token = require_token(t, id)?;
            if token.revoked_at_ms.is_some() {
                return Err(Refusal::precondition(format!("token `{id}` is already revoked")).into());
            }
            token.revoked_at_ms = Some(env.at_ms);
            put_token(t, &token)?;
            Ok(remove_op(&token).into_iter().collect())
        }
        other => Err(Refusal::invalid("change", format!("`{}` is not a token change", other.kind())).into()),
    }
}

fn remove_op(token: &Token) -> Option<IndexOp> {
    parse_hash(&token.secret_hash).map(|hash| IndexOp::RemoveToken { hash })
}

pub(crate) fn put_token(t: &mut WriteTables<'_>, token: &Token) -> Result<(), StoreError> {
    let mut stored = token.clone();
    stored.last_used_ms = None;
    t.tokens.insert(token.id.as_str(), encode(&stored)?.as_slice())?;
    t.tokens_by_owner
        .insert((token.owner.kind(), token.owner.id(), token.id.as_str()), ())?;
    Ok(())
}

/// Delete every key of `org` (its tokens die with it, so a new org of the same id starts
/// with none).
pub(crate) fn drop_org_tokens(t: &mut WriteTables<'_>, org: &str) -> Result<Vec<IndexOp>, ApplyError> {
    let mut ops = Vec::new();
    for id in thirds(&t.tokens_by_owner, "org", org)? {
        if let Some(token) = get_json::<Token>(&t.tokens, "tokens", &id)? {
            ops.extend(remove_op(&token));
        }
        t.tokens.remove(id.as_str())?;
        t.tokens_by_owner.remove(("org", org, id.as_str()))?;
    }
    Ok(ops)
}

impl Store {
    pub fn get_token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut token: Option<Token> = get_json(&txn.open_table(tables::TOKENS)?, "tokens", id)?;
        if let Some(t) = token.as_mut() {
            t.last_used_ms = txn
                .open_table(tables::TOKEN_LAST_USED)?
                .get(id)?
                .map(|v| v.value());
        }
        Ok(token)
    }

    /// Tokens of a user or an org, in id order, revoked ones included.
    pub fn list_tokens(
        &self,
        owner: &Owner,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<Token>, ApplyError> {
        let txn = self.db.begin_read()?;
        let ids = page_thirds(
            &txn.open_table(tables::TOKENS_BY_OWNER)?,
            (owner.kind(), owner.id()),
            page_token,
            page_size,
        )?;
        let tokens = txn.open_table(tables::TOKENS)?;
        let used = txn.open_table(tables::TOKEN_LAST_USED)?;
        let mut items = Vec::with_capacity(ids.items.len());
        for id in &ids.items {
            if let Some(mut token) = get_json::<Token>(&tokens, "tokens", id)? {
                token.last_used_ms = used.get(id.as_str())?.map(|v| v.value());
                items.push(token);
            }
        }
        Ok(Page {
            items,
            next_page_token: ids.next_page_token,
        })
    }

    /// Record last-use times (from the engine's memory). Newer times win; ids of tokens that no
    /// longer exist are skipped. One transaction for the whole batch, outside the change log.
    pub fn record_token_use(&self, uses: &[(String, u64)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            let mut known = Vec::with_capacity(uses.len());
            {
                let tokens = txn.open_table(tables::TOKENS)?;
                let mut used = txn.open_table(tables::TOKEN_LAST_USED)?;
                for (id, at) in uses {
                    if tokens.get(id.as_str())?.is_none() {
                        continue;
                    }
                    known.push((id.clone(), *at));
                    let old = used.get(id.as_str())?.map(|v| v.value()).unwrap_or(0);
                    if *at > old {
                        used.insert(id.as_str(), *at)?;
                    }
                }
            }
            // Cluster mode: the other sidecars take the max of these too.
            self.queue_telemetry(&txn, 0, &[], &known)?;
            txn.commit()?;
            Ok(())
        })())
    }

    /// Every token record with its last use, in id order (for export).
    pub(crate) fn all_tokens(txn: &redb::ReadTransaction) -> Result<Vec<Token>, StoreError> {
        let used = txn.open_table(tables::TOKEN_LAST_USED)?;
        let mut out = Vec::new();
        for item in txn.open_table(tables::TOKENS)?.iter()? {
            let (key, value) = item?;
            let mut token: Token = decode("tokens", key.value(), value.value())?;
            token.last_used_ms = used.get(key.value())?.map(|v| v.value());
            out.push(token);
        }
        Ok(out)
    }

    /// Index ops for every usable token (startup).
    pub(crate) fn token_index_ops(txn: &redb::ReadTransaction) -> Result<Vec<IndexOp>, StoreError> {
        let mut ops = Vec::new();
        for token in Self::all_tokens(txn)? {
            ops.extend(add_op(&token, token.last_used_ms.unwrap_or(0))?);
        }
        Ok(ops)
    }
}
