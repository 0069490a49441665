//! The typed Rust client for applications: the `warden-client` crate, re-exported so
//! `warden::client::Client` keeps working. Applications depend on `warden-client` alone
//! (tonic and prost, none of the daemon's dependencies).

pub use warden_client::{Client, Decision, Error, Explanation, ItemError, Options, Retry};
