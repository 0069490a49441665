//! `warden.v1.SecurityService`: per-org password policy and identity providers, and SSO
//! auto-join.
//!
//! Authorization: set needs `security:manage` (the store asks); get needs `org:read`, or the
//! Unix socket (the login layer asks before the user is a member); SsoJoin only on the Unix
//! socket, because its caller vouches that the IdP authenticated the actor.

use super::convert::opt;
use super::{Directory, check_actor, check_slug, on_unix_socket};
use crate::api::pb;
use crate::directory::Change;
use crate::directory::security::{
    IdentityProvider, IdpConfig, OrgSecurity, PasswordPolicy, SecuritySettings,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

fn password_from_pb(p: Option<pb::PasswordPolicy>) -> PasswordPolicy {
    let p = p.unwrap_or_default();
    PasswordPolicy {
        min_length: p.min_length,
        require_uppercase: p.require_uppercase,
        require_lowercase: p.require_lowercase,
        require_digit: p.require_digit,
        require_symbol: p.require_symbol,
        rotation_days: p.rotation_days,
    }
}

fn idp_from_pb(i: usize, p: pb::IdentityProvider) -> Result<IdentityProvider, Status> {
    let config = match p.config {
        Some(pb::identity_provider::Config::Saml(s)) => IdpConfig::Saml {
            metadata_url: opt(s.metadata_url),
            metadata_xml: opt(s.metadata_xml),
        },
        Some(pb::identity_provider::Config::Oidc(o)) => IdpConfig::Oidc {
            issuer: o.issuer,
            client_id: o.client_id,
        },
        None => {
            return Err(Status::invalid_argument(format!(
                "identity_providers[{i}].config: set saml or oidc"
            )));
        }
    };
    Ok(IdentityProvider {
        id: p.idp_id,
        config,
        auto_join_role: opt(p.auto_join_role),
    })
}

fn settings_pb(org: &str, s: Option<OrgSecurity>) -> pb::SecuritySettings {
    let (settings, updated_by, updated_at) = match s {
        Some(s) => (s.settings, s.updated_by, s.updated_at_ms),
        None => (SecuritySettings::default(), String::new(), 0),
    };
    let p = settings.password;
    pb::SecuritySettings {
        org_id: org.to_string(),
        password: Some(pb::PasswordPolicy {
            min_length: p.min_length,
            require_uppercase: p.require_uppercase,
            require_lowercase: p.require_lowercase,
            require_digit: p.require_digit,
            require_symbol: p.require_symbol,
            rotation_days: p.rotation_days,
        }),
        identity_providers: settings
            .identity_providers
            .into_iter()
            .map(|i| pb::IdentityProvider {
                idp_id: i.id,
                config: Some(match i.config {
                    IdpConfig::Saml {
                        metadata_url,
                        metadata_xml,
                    } => pb::identity_provider::Config::Saml(pb::SamlProvider {
                        metadata_url: metadata_url.unwrap_or_default(),
                        metadata_xml: metadata_xml.unwrap_or_default(),
                    }),
                    IdpConfig::Oidc { issuer, client_id } => {
                        pb::identity_provider::Config::Oidc(pb::OidcProvider { issuer, client_id })
                    }
                }),
                auto_join_role: i.auto_join_role.unwrap_or_default(),
            })
            .collect(),
        updated_by,
        updated_at_unix_ms: updated_at,
    }
}

impl Directory {
    pub fn security_server(&self) -> pb::security_service_server::SecurityServiceServer<Self> {
        pb::security_service_server::SecurityServiceServer::new(self.clone())
    }

    async fn security_of(&self, actor: &str, org: String) -> Result<pb::SecuritySettings, Status> {
        let o = org.clone();
        let s = self
            .read(actor, "org_id", move |s| Ok(s.get_security(&o)?))
            .await?;
        Ok(settings_pb(&org, s))
    }
}

#[tonic::async_trait]
impl pb::security_service_server::SecurityService for Directory {
    async fn get_security_settings(
        &self,
        mut request: Request<pb::GetSecuritySettingsRequest>,
    ) -> Result<Response<pb::SecuritySettings>, Status> {
        let trusted = on_unix_socket(&request);
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("GetSecuritySettings", org = %r.org_id, actor = %r.actor);
        async move {
            check_slug("org_id", &r.org_id)?;
            if !trusted {
                check_actor(&r.actor)?;
                self.require(&r.actor, &r.org_id, "org", "org:read")?;
            }
            let id = r.org_id.clone();
            if self
                .read(&r.actor, "org_id", move |s| Ok(s.get_org(&id)?))
                .await?
                .is_none()
            {
                return Err(Status::not_found(format!("org `{}` not found", r.org_id)));
            }
            Ok(Response::new(self.security_of(&r.actor, r.org_id).await?))
        }
        .instrument(span)
        .await
    }

    async fn set_security_settings(
        &self,
        request: Request<pb::SetSecuritySettingsRequest>,
    ) -> Result<Response<pb::SetSecuritySettingsResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("SetSecuritySettings", org = %r.org_id, actor = %r.actor);
        async move {
            let identity_providers = r
                .identity_providers
                .into_iter()
                .enumerate()
                .map(|(i, p)| idp_from_pb(i, p))
                .collect::<Result<Vec<_>, _>>()?;
            let change = Change::SetSecuritySettings {
                org: r.org_id.clone(),
                settings: SecuritySettings {
                    password: password_from_pb(r.password),
                    identity_providers,
                },
            };
            let revision = self.write(&r.actor, "org_id", change).await?;
            let settings = self.security_of(&r.actor, r.org_id).await?;
            Ok(Response::new(pb::SetSecuritySettingsResponse {
                settings: Some(settings),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn sso_join(
        &self,
        request: Request<pb::SsoJoinRequest>,
    ) -> Result<Response<pb::SsoJoinResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let r = request.into_inner();
        let span = tracing::info_span!("SsoJoin", org = %r.org_id, idp = %r.idp_id, actor = %r.actor);
        async move {
            if !trusted {
                return Err(Status::permission_denied(
                    "SsoJoin is only served on the Unix socket: its caller vouches for the user's authentication",
                ));
            }
            let change = Change::SsoJoin {
                org: r.org_id.clone(),
                idp: r.idp_id,
            };
            let revision = self.write(&r.actor, "org_id", change).await?;
            let (org, user) = (r.org_id, r.actor.clone());
            let role = self
                .read(&r.actor, "org_id", move |s| Ok(s.get_membership(&org, &user)?))
                .await?
                .map(|m| m.role)
                .unwrap_or_default();
            Ok(Response::new(pb::SsoJoinResponse { role, revision }))
        }
        .instrument(span)
        .await
    }
}
