//! Opening a channel to a Warden daemon, so that `unix:PATH` and `tcp:HOST:PORT` mean the
//! same thing in the CLI, the tests and every application.
//!
//! A Unix socket is the sidecar's usual address: private to the pod or host, no TLS and no
//! token needed (the daemon exempts it). A TCP address may need TLS ([`Tls`]) and a bearer
//! token ([`Bearer`], or [`Options::token`] on [`crate::Client`]).

use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Uri};

/// The environment variable every Warden client reads for the daemon's address.
pub const CONNECT_ENV: &str = "WARDEN_CONNECT";
/// The address used when none is given: the socket of `warden serve` in its default data
/// directory, relative to the working directory.
pub const DEFAULT_CONNECT: &str = "unix:./data/warden.sock";
/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no channel was opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0:?}: expected unix:PATH or tcp:HOST:PORT")]
    BadTarget(String),
    #[error("{target}: TLS applies to tcp: addresses only (a Unix socket is reached without it)")]
    TlsOnUnix { target: String },
    #[error("connecting to {target}: {source}")]
    Transport {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// TLS for a `tcp:` address: the CA that signed the daemon's certificate (`--tls-cert`) and
/// the name to verify it against.
#[derive(Debug, Clone)]
pub struct Tls {
    /// PEM of the CA certificate(s) to trust.
    pub ca_pem: Vec<u8>,
    /// The name the certificate must carry; the target's host when `None`.
    pub domain: Option<String>,
}

/// How to open the channel.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// TLS for a `tcp:` target; `None` is plaintext (the daemon's TCP default on loopback).
    pub tls: Option<Tls>,
    /// Longest wait for the connection itself.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            tls: None,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

/// The daemon's address from `WARDEN_CONNECT`, or [`DEFAULT_CONNECT`] when it is unset or
/// empty. The `warden` CLI also reads a config file between the two; see its `--connect` help.
pub fn target_from_env() -> String {
    std::env::var(CONNECT_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_CONNECT.to_string())
}

/// Open a channel to `target` (`unix:PATH` or `tcp:HOST:PORT`), plaintext.
pub async fn connect(target: &str) -> Result<Channel, ConnectError> {
    connect_with(target, &ConnectOptions::default()).await
}

/// Open a channel to `target` with `options` (TLS, connect timeout).
pub async fn connect_with(target: &str, options: &ConnectOptions) -> Result<Channel, ConnectError> {
    let transport = |source| ConnectError::Transport {
        target: target.to_string(),
        source,
    };
    if let Some(path) = target.strip_prefix("unix:").filter(|p| !p.is_empty()) {
        if options.tls.is_some() {
            return Err(ConnectError::TlsOnUnix {
                target: target.to_string(),
            });
        }
        let path = PathBuf::from(path);
        // The URI is required by the HTTP/2 layer but never resolved: the connector
        // below ignores it and dials the socket.
        Endpoint::from_static("http://localhost")
            .connect_timeout(options.connect_timeout)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(transport)
    } else if let Some(addr) = target.strip_prefix("tcp:").filter(|a| !a.is_empty()) {
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|_| ConnectError::BadTarget(target.to_string()))?
            .connect_timeout(options.connect_timeout);
        if let Some(tls) = &options.tls {
            let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some(domain) = &tls.domain {
                config = config.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(config).map_err(transport)?;
        }
        endpoint.connect().await.map_err(transport)
    } else {
        Err(ConnectError::BadTarget(target.to_string()))
    }
}

/// A token that is not a valid header value (say, with a newline in it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the bearer token must be visible ASCII (it is sent as an `authorization` header)")]
pub struct BadToken;

/// Sends `authorization: Bearer <token>` on every call: what a daemon started with
/// `--tcp-token-sha256` asks of TCP callers. For the generated clients:
/// `AuthzServiceClient::with_interceptor(channel, Bearer::new(token)?)`.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Result<Self, BadToken> {
        format!("Bearer {token}")
            .parse()
            .map(Bearer)
            .map_err(|_| BadToken)
    }

    pub(crate) fn value(&self) -> &MetadataValue<Ascii> {
        &self.0
    }
}

impl std::fmt::Debug for Bearer {
    // The token is a secret: never in a log line or a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn targets_other_than_unix_and_tcp_are_refused_by_name() {
        for t in ["", "unix:", "tcp:", "http://localhost:50051", "/tmp/warden.sock"] {
            let err = connect(t).await.unwrap_err();
            assert!(matches!(&err, ConnectError::BadTarget(x) if x == t), "{t}: {err}");
            assert!(err.to_string().contains("expected unix:PATH or tcp:HOST:PORT"));
        }
        let tls = ConnectOptions {
            tls: Some(Tls {
                ca_pem: Vec::new(),
                domain: None,
            }),
            ..Default::default()
        };
        let err = connect_with("unix:/tmp/x.sock", &tls).await.unwrap_err();
        assert!(matches!(err, ConnectError::TlsOnUnix { .. }), "{err}");
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_and_never_printed() {
        assert!(Bearer::new("bad\ntoken").is_err());
        let b = Bearer::new("s3cret").unwrap();
        assert_eq!(b.value().to_str().unwrap(), "Bearer s3cret");
        assert!(!format!("{b:?}").contains("s3cret"));
    }
}
