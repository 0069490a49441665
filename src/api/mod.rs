//! gRPC: the wire types, the services, the listeners, health and reflection.
//!
//! Owns everything between a socket and the engine: the `warden.v1` protobuf types
//! (generated from `proto/`), request validation, the Authz, Admin and directory
//! services, the Unix-socket and TCP listeners with their shutdown (and, on the socket, any
//! client's `:authority`: [`uds_authority`]), connection caps and timeouts ([`connections`]),
//! gRPC health and reflection, the
//! Prometheus metrics listener, the HTTP/JSON gateway, the client connector, and (for now) policy reload orchestration and its status.
//!
//! It must not touch redb or read policy files itself: decisions come from the
//! [`crate::engine`], policies from [`crate::policy`], directory data from
//! [`crate::store`]'s API.
//!
//! Entry points: [`server::run`] serves bound [`listener::Bound`]s until a
//! [`shutdown::Shutdown`]; [`client::connect`] dials a daemon; [`reload`] keeps the
//! policy fresh.

pub mod admin;
pub mod auth;
pub mod authz;
pub mod client;
pub mod codec;
pub mod connections;
pub mod console;
pub mod counter_history;
pub mod directory;
pub mod ext_authz;
pub mod http;
pub mod limits;
pub mod listener;
pub mod logs;
pub mod metrics;
pub mod otel;
pub mod policy_state;
pub mod reload;
pub mod request_id;
pub mod revision;
pub mod rpc_metrics;
pub mod server;
pub mod shutdown;
pub mod uds_authority;
pub mod usage;
pub mod validate;

/// `warden.v1`: the messages and clients of the `warden-client` crate, and the servers
/// generated here (`build.rs`) over those same message types.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    pub use warden_client::pb::*;
    tonic::include_proto!("warden.v1");
}

/// Encoded `FileDescriptorSet` of every `warden.v1` proto, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");
