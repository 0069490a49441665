//! Connecting to a Warden daemon: the `warden-client` crate's connector, so that
//! `unix:PATH` and `tcp:ADDR` mean the same thing in the CLI, the tests and applications.

pub use warden_client::transport::{ConnectError, ConnectOptions, Tls, connect, connect_with};
