//! Backpressure: a bound on the calls the daemon works on at once.
//!
//! Every call except health checks takes a permit from one semaphore for as long as its
//! handler runs. When none is left the call is refused at once with
//! `RESOURCE_EXHAUSTED` ("at capacity; retry with backoff") instead of queueing without
//! bound: a flood beyond capacity costs the daemon a refusal per call, and memory stays
//! bounded by the limit. Health checks are exempt so that probes do not flap while the
//! daemon is busy but well.
//!
//! Other bounds live elsewhere: message size (tonic's 4 MiB decode limit), HTTP/2
//! streams per connection ([`MAX_CONCURRENT_STREAMS`], beyond which a client queues its
//! own calls), field, batch and page sizes (`api::validate`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Semaphore;
use tonic::codegen::http;

/// Default bound on calls in flight (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// HTTP/2 streams one connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

#[derive(Clone)]
pub struct InFlightLayer {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlightLayer {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlight {
            inner,
            permits: self.permits.clone(),
            max: self.max,
        }
    }
}

#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    permits: Arc<Semaphore>,
    max: usize,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for InFlight<S>
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
        if req.uri().path().starts_with(HEALTH_PREFIX) {
            return Box::pin(self.inner.call(req));
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let fut = self.inner.call(req);
                Box::pin(async move {
                    let out = fut.await;
                    drop(permit);
                    out
                })
            }
            Err(_) => {
                tracing::debug!(
                    path = req.uri().path(),
                    max = self.max,
                    "at capacity; call refused"
                );
                let status = tonic::Status::resource_exhausted(format!(
                    "at capacity ({} calls in flight); retry with backoff",
                    self.max
                ));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
