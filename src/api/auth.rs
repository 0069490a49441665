//! Caller authentication at the transport: who may talk to the daemon at all.
//!
//! Callers on the Unix socket are trusted by file permission (the socket is `0660`).
//! TCP callers can be required to present a bearer token (`authorization: Bearer
//! <token>`). The daemon never holds the token itself, only its SHA-256 (tokens are
//! high-entropy random strings, so a plain hash is enough), and compares hashes in
//! constant time. Health checks stay open on TCP: they reveal nothing and Kubernetes'
//! gRPC probes cannot send headers.
//!
//! The check is a tower layer around every service, so no RPC can forget it; a refused
//! call gets `UNAUTHENTICATED` before any service code runs. The token never reaches a
//! log: the layer logs only that a call was refused and from where.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use subtle::ConstantTimeEq;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};

/// Path prefix of the health service, open to every caller.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The hex SHA-256 of a token, as `--tcp-token-sha256` takes it (for operators:
/// `printf %s "$TOKEN" | sha256sum`).
pub fn token_sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Parse a hex SHA-256 (64 hex digits).
pub fn parse_token_sha256(hex_text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|e| format!("not a hex SHA-256 ({e}); give the 64 hex digits of sha256(token)"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("a SHA-256 is 32 bytes (64 hex digits), got {}", bytes.len()))
}

/// The layer: wraps every service of the router.
#[derive(Clone, Default)]
pub struct TcpAuthLayer {
    /// SHA-256 of the token TCP callers must present; `None` lets every TCP caller in
    /// (the default, for loopback-only deployments).
    expected: Option<Arc<[u8; 32]>>,
}

impl TcpAuthLayer {
    pub fn new(expected: Option<[u8; 32]>) -> Self {
        Self {
            expected: expected.map(Arc::new),
        }
    }
}

impl<S> tower::Layer<S> for TcpAuthLayer {
    type Service = TcpAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TcpAuth {
            inner,
            expected: self.expected.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TcpAuth<S> {
    inner: S,
    expected: Option<Arc<[u8; 32]>>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for TcpAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match self.refusal(&req) {
            Some(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
            None => Box::pin(self.inner.call(req)),
        }
    }
}

impl<S> TcpAuth<S> {
    /// Why `req` may not proceed, if it may not.
    fn refusal<B>(&self, req: &http::Request<B>) -> Option<tonic::Status> {
        let expected = self.expected.as_deref()?;
        let ext = req.extensions();
        if ext.get::<UdsConnectInfo>().is_some() || req.uri().path().starts_with(HEALTH_PREFIX) {
            return None;
        }
        let presented = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|token| {
                use sha2::Digest;
                sha2::Sha256::digest(token.trim().as_bytes())
            });
        let ok = presented.is_some_and(|h| bool::from(h.as_slice().ct_eq(expected.as_slice())));
        if ok {
            return None;
        }
        let peer = ext
            .get::<TcpConnectInfo>()
            .or_else(|| ext.get::<TlsConnectInfo<TcpConnectInfo>>().map(|t| t.get_ref()))
            .and_then(|i| i.remote_addr());
        tracing::warn!(
            path = req.uri().path(),
            peer = ?peer,
            with_token = presented.is_some(),
            "refused a TCP call without a valid bearer token"
        );
        Some(tonic::Status::unauthenticated(
            "TCP callers must send `authorization: Bearer <token>` with the token configured by --tcp-token-sha256",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hashes_and_refuses_other_lengths() {
        let h = token_sha256_hex("s3cret");
        assert_eq!(h.len(), 64);
        assert!(parse_token_sha256(&h).is_ok());
        assert!(parse_token_sha256("abcd").is_err());
        assert!(parse_token_sha256("zz").is_err());
    }
}
