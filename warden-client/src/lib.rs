//! The Rust client of Warden, the authorization sidecar.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden_client::Error> {
//! // WARDEN_CONNECT, else unix:./data/warden.sock
//! let client = warden_client::Client::connect_from_env().await?;
//! if client.can("alice", "acme", "apps/web", "app:write").await? {
//!     // allowed
//! }
//! # Ok(()) }
//! ```
//!
//! - [`Client`]: `can`, `check`, `explain`, `batch`, `lookup_resources`, `lookup_subjects`,
//!   `at_revision` (read your own writes), per-call deadlines (`with_timeout`), a bearer
//!   token and TLS ([`Options`]), bounded retries of UNAVAILABLE ([`Retry`]).
//! - [`pb`]: every `warden.v1` message and every service's generated tonic client, also
//!   re-exported at the crate root (`warden_client::MemberServiceClient`, …), over a channel
//!   from [`connect`] or [`Client::channel`].
//!
//! Addresses are written as everywhere else in Warden: `unix:PATH` or `tcp:HOST:PORT`.
//! This crate depends on tonic and prost (and what tonic's client needs), none of the
//! daemon's dependencies; the daemon uses it for its own CLI.

mod client;
pub mod transport;

pub use client::{Client, Decision, Error, Explanation, ItemError, Options, Retry};
pub use transport::{
    BadToken, Bearer, CONNECT_ENV, ConnectError, ConnectOptions, DEFAULT_CONNECT, Tls, connect, connect_with,
    target_from_env,
};

/// Every `warden.v1` message and each service's generated client.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("warden.v1");
}

pub use pb::admin_service_client::AdminServiceClient;
pub use pb::app_service_client::AppServiceClient;
pub use pb::audit_service_client::AuditServiceClient;
pub use pb::authz_service_client::AuthzServiceClient;
pub use pb::collaborator_service_client::CollaboratorServiceClient;
pub use pb::domain_service_client::DomainServiceClient;
pub use pb::invitation_service_client::InvitationServiceClient;
pub use pb::member_service_client::MemberServiceClient;
pub use pb::org_lifecycle_service_client::OrgLifecycleServiceClient;
pub use pb::org_service_client::OrgServiceClient;
pub use pb::publishing_service_client::PublishingServiceClient;
pub use pb::security_service_client::SecurityServiceClient;
pub use pb::team_service_client::TeamServiceClient;
pub use pb::token_service_client::TokenServiceClient;
pub use pb::usage_service_client::UsageServiceClient;
pub use pb::user_service_client::UserServiceClient;
