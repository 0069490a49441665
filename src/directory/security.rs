//! Per-org security settings, stored for the app's login layer: a password policy, identity
//! providers (SAML metadata or an OIDC issuer and client id), and SSO auto-join (a user the
//! org's IdP authenticated joins with a default role). Warden stores and serves them and runs
//! the auto-join through the directory's write path; it does not authenticate anyone.

use super::Refusal;
use super::ids::{validate_role, validate_slug, validate_url};
use serde::{Deserialize, Serialize};

/// Longest inline SAML metadata document.
pub const MAX_SAML_XML_BYTES: usize = 64 * 1024;
/// Most identity providers per org.
pub const MAX_IDPS: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    /// 0: no minimum.
    pub min_length: u32,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
    /// Days after which a password must be changed; 0: never.
    pub rotation_days: u32,
}

/// How an identity provider is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdpConfig {
    /// SAML 2.0: the IdP's metadata, by URL or inline XML (exactly one).
    Saml {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata_xml: Option<String>,
    },
    /// OpenID Connect: the issuer (discovery at `<issuer>/.well-known/openid-configuration`).
    Oidc { issuer: String, client_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProvider {
    /// A slug naming the IdP within the org (`okta`, `azure-ad`).
    pub id: String,
    #[serde(flatten)]
    pub config: IdpConfig,
    /// With `Some(role)`, a user this IdP authenticated may join the org with `role`
    /// (`SsoJoin`); `None`: no auto-join through this IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_join_role: Option<String>,
}

/// Everything an org admin sets with `security:manage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySettings {
    pub password: PasswordPolicy,
    pub identity_providers: Vec<IdentityProvider>,
}

/// The stored record: the settings and the org they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSecurity {
    pub org: String,
    pub settings: SecuritySettings,
    pub updated_by: String,
    pub updated_at_ms: u64,
}

impl SecuritySettings {
    /// Shape rules; whether `auto_join_role` is a policy role is the store's check.
    pub fn validate(&self) -> Result<(), Refusal> {
        let p = &self.password;
        if p.min_length > 256 {
            return Err(Refusal::invalid("password.min_length", "at most 256"));
        }
        if p.rotation_days > 3650 {
            return Err(Refusal::invalid(
                "password.rotation_days",
                "at most 3650 (ten years)",
            ));
        }
        if self.identity_providers.len() > MAX_IDPS {
            return Err(Refusal::invalid(
                "identity_providers",
                format!("at most {MAX_IDPS} identity providers"),
            ));
        }
        for (i, idp) in self.identity_providers.iter().enumerate() {
            let field = |name: &str| format!("identity_providers[{i}].{name}");
            validate_slug(&field("id"), &idp.id)?;
            if self.identity_providers[..i].iter().any(|o| o.id == idp.id) {
                return Err(Refusal::invalid(
                    field("id"),
                    format!("`{}` appears twice", idp.id),
                ));
            }
            match &idp.config {
                IdpConfig::Saml {
                    metadata_url,
                    metadata_xml,
                } => match (metadata_url, metadata_xml) {
                    (Some(url), None) => validate_url(&field("metadata_url"), url)?,
                    (None, Some(xml)) => {
                        if xml.len() > MAX_SAML_XML_BYTES || !xml.trim_start().starts_with('<') {
                            return Err(Refusal::invalid(
                                field("metadata_xml"),
                                format!("must be an XML document of at most {MAX_SAML_XML_BYTES} bytes"),
                            ));
                        }
                    }
                    _ => {
                        return Err(Refusal::invalid(
                            field("metadata_url"),
                            "a SAML provider needs exactly one of metadata_url and metadata_xml",
                        ));
                    }
                },
                IdpConfig::Oidc { issuer, client_id } => {
                    if !issuer.starts_with("https://") {
                        return Err(Refusal::invalid(field("issuer"), "must be an https:// URL"));
                    }
                    validate_url(&field("issuer"), issuer)?;
                    if client_id.is_empty()
                        || client_id.len() > 256
                        || client_id.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(Refusal::invalid(
                            field("client_id"),
                            "must be 1 to 256 characters without spaces",
                        ));
                    }
                }
            }
            if let Some(role) = &idp.auto_join_role {
                validate_role(&field("auto_join_role"), role)?;
            }
        }
        Ok(())
    }
}
