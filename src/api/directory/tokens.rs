//! `warden.v1.TokenService`: issue, list and revoke API tokens.
//!
//! The secret is generated here (32 bytes from a CSPRNG seeded by the OS, as `wdn_<hex>`), hashed,
//! and only the hash goes into the `CreateToken` change, so neither the change log nor the store
//! ever holds a secret; the response carries it once. Scopes are checked against the action
//! catalog (the built-in list plus every action the loaded policy names) before the change is
//! built, so a misspelt scope is INVALID_ARGUMENT naming `scopes[i]`.
//!
//! Authorization: a personal token's owner must be the actor; an org key needs `token:manage`
//! on `org` in its org (the store asks, for create and revoke; this file, for list).

use super::convert::{opt, owner_from_pb, owner_pb};
use super::{Directory, check_actor, check_slug, check_user, vanished};
use crate::api::pb;
use crate::directory::catalog::ACTIONS;
use crate::directory::tokens::{SECRET_PREFIX, TOKEN_ID_PREFIX, hash_secret, parse_hash};
use crate::directory::{Change, Owner, Token};
use crate::engine::CompiledPolicy;
use std::collections::BTreeSet;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Actions a scope may name: the built-in catalog and every literal action of the policy's rules.
fn action_catalog(policy: &CompiledPolicy) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = ACTIONS.iter().map(|a| a.to_string()).collect();
    if let Some(act) = policy.p_tokens.iter().position(|t| t == "act") {
        for row in &policy.rows {
            if let Some(a) = row.values.get(act)
                && a.contains(':')
                && !a.contains(['*', '(', ')', '{', '}', '|'])
            {
                out.insert(a.to_string());
            }
        }
    }
    out
}

/// A fresh token id and secret, from `rand`'s thread-local CSPRNG (ChaCha, seeded from the OS).
fn new_credentials() -> (String, String) {
    use rand::RngCore;
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    (
        format!("{TOKEN_ID_PREFIX}{}", hex::encode(id)),
        format!("{SECRET_PREFIX}{}", hex::encode(secret)),
    )
}

impl Directory {
    pub fn token_server(&self) -> pb::token_service_server::TokenServiceServer<Self> {
        pb::token_service_server::TokenServiceServer::new(self.clone())
    }

    /// The token as the API shows it: last use is the later of the store's and the engine's.
    fn token_pb(&self, t: Token) -> pb::Token {
        let in_memory =
            parse_hash(&t.secret_hash).map_or(0, |h| self.engine.index().read().token_last_used(&h));
        pb::Token {
            token_id: t.id,
            owner: Some(owner_pb(t.owner)),
            name: t.name,
            role: t.role.unwrap_or_default(),
            scopes: t.scopes,
            created_by: t.created_by,
            created_at_unix_ms: t.created_at_ms,
            expires_at_unix_ms: t.expires_at_ms.unwrap_or(0),
            revoked_at_unix_ms: t.revoked_at_ms.unwrap_or(0),
            last_used_at_unix_ms: t.last_used_ms.unwrap_or(0).max(in_memory),
        }
    }

    /// May `actor` see or manage the tokens of `owner`?
    fn may_manage_tokens(&self, actor: &str, owner: &Owner) -> Result<(), Status> {
        match owner {
            Owner::User(user) if user == actor => Ok(()),
            Owner::User(user) => Err(Status::permission_denied(format!(
                "actor `{actor}` may only manage its own personal tokens (owner `{user}`)"
            ))),
            Owner::Org(org) => self.require(actor, org, "org", "token:manage"),
        }
    }
}

#[tonic::async_trait]
impl pb::token_service_server::TokenService for Directory {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("CreateToken", actor = %r.actor);
        async move {
            let owner = owner_from_pb(r.owner)?;
            let catalog = action_catalog(&self.engine.policy());
            for (i, scope) in r.scopes.iter().enumerate() {
                if scope.contains(':') && !catalog.contains(scope) {
                    return Err(Status::invalid_argument(format!(
                        "scopes[{i}]: `{scope}` is not an action of the catalog (see policies/README.md)"
                    )));
                }
            }
            let (id, secret) = new_credentials();
            let change = Change::CreateToken {
                id: id.clone(),
                owner,
                name: r.name,
                role: opt(r.role),
                scopes: r.scopes,
                expires_at_ms: (r.expires_at_unix_ms != 0).then_some(r.expires_at_unix_ms),
                secret_hash: hex::encode(hash_secret(&secret)),
            };
            let revision = self.write(&r.actor, "token_id", change).await?;
            let lookup = id.clone();
            let token = self
                .read(&r.actor, "token_id", move |s| Ok(s.get_token(&lookup)?))
                .await?
                .ok_or_else(|| vanished(&format!("token `{id}`"), revision))?;
            tracing::info!(token = %token.id, "token issued");
            Ok(Response::new(pb::CreateTokenResponse {
                token: Some(self.token_pb(token)),
                secret,
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_tokens(
        &self,
        mut request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListTokens", actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            let owner = owner_from_pb(r.owner)?;
            match &owner {
                Owner::User(u) => check_user("owner", u)?,
                Owner::Org(o) => check_slug("owner", o)?,
            }
            self.may_manage_tokens(&r.actor, &owner)?;
            let revision = self.revision();
            let (page_token, page_size) = (r.page_token, r.page_size);
            let page = self
                .read(&r.actor, "token_id", move |s| {
                    s.list_tokens(&owner, &page_token, page_size)
                })
                .await?;
            Ok(Response::new(pb::ListTokensResponse {
                tokens: page.items.into_iter().map(|t| self.token_pb(t)).collect(),
                next_page_token: page.next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RevokeToken", token = %r.token_id, actor = %r.actor);
        async move {
            let revision = self
                .write(&r.actor, "token_id", Change::RevokeToken { id: r.token_id })
                .await?;
            Ok(Response::new(pb::RevokeTokenResponse { revision }))
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_the_builtins_and_the_policys_actions() {
        let policy = crate::policy::load_defaults().expect("default policies");
        let catalog = action_catalog(&policy);
        for a in ["app:read", "token:manage", "audit:read", "usage:read"] {
            assert!(catalog.contains(a), "{a}");
        }
        assert!(!catalog.contains("*"));
    }

    #[test]
    fn credentials_are_fresh_and_well_formed() {
        let (id1, s1) = new_credentials();
        let (id2, s2) = new_credentials();
        assert_ne!((id1.as_str(), s1.as_str()), (id2.as_str(), s2.as_str()));
        assert!(crate::directory::tokens::validate_token_id("id", &id1).is_ok());
        assert_eq!(s1.len(), SECRET_PREFIX.len() + 64);
    }
}
