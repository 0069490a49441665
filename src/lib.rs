//! Warden: an authorization sidecar. Casbin rules from `policies/`, an organization
//! directory in redb, decisions in microseconds over gRPC.
//!
//! Data flows one way through the modules; see `ARCHITECTURE.md` for the map.
//! Applications embedding a client want [`client::Client`].

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod directory;
pub mod engine;
pub mod policy;
pub mod store;
