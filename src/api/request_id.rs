//! The caller's request id (`x-warden-request-id` in gRPC metadata, the same header on the
//! HTTP/JSON gateway): a tower layer puts it in a task-local for the call, where the
//! directory write path reads it. In cluster mode it is the directory log's message id, so a
//! retry with the same id returns the original outcome instead of writing twice.
//!
//! This layer only carries the raw header; the write path checks its shape.

use std::task::{Context, Poll};

/// The metadata key (and HTTP header) of a caller-chosen request id.
pub const HEADER: &str = "x-warden-request-id";

/// Longest accepted request id, in bytes.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: Option<String>;
}

/// The current call's request id header, if it sent one (None outside a call).
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok().flatten()
}

/// Whether `id` is a usable request id: 1 to [`MAX_LEN`] bytes of `A-Z a-z 0-9 . _ : -`.
pub fn validate(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_LEN {
        return Err(format!("{HEADER}: must be 1 to {MAX_LEN} characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(format!(
            "{HEADER}: only letters, digits, `.`, `_`, `:` and `-` are allowed"
        ));
    }
    Ok(())
}

/// Puts each call's request id header in scope for the call.
#[derive(Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

#[derive(Clone)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RequestId<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<Option<String>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // A header that is not text is kept as such, so the write path refuses it by name.
        let id = req.headers().get(HEADER).map(|v| {
            v.to_str()
                .map(str::to_string)
                .unwrap_or_else(|_| "\u{fffd}".into())
        });
        REQUEST_ID.scope(id, self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(validate("retry-1:a.b_c").is_ok());
        assert!(validate("").is_err());
        assert!(validate(&"a".repeat(MAX_LEN + 1)).is_err());
        assert!(validate("a b").is_err());
        assert!(validate("é").is_err());
    }
}
