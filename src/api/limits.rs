//! Backpressure: a bound on the calls the daemon works on at once.
//!
//! Every call except health checks takes a permit from one semaphore for as long as its
//! handler runs. When none is left the call is refused at once with
//! `RESOURCE_EXHAUSTED` ("at capacity; retry with backoff") instead of queueing without
//! bound: a flood beyond capacity costs the daemon a refusal per call, and memory stays
//! bounded by the limit. Health checks are exempt so that probes do not flap while the
//! daemon is busy but well.
//!
//! A call that must wait before it can be answered — a `min_revision` the index has not
//! reached yet — gives its permit back while it waits and holds a *waiter's* permit
//! instead, from a separate, smaller bound ([`Admission::park`]): callers asking for a
//! far-future revision cannot take capacity from calls that can be answered now, and
//! their number is bounded too. When the wait ends the call takes an in-flight permit
//! again (or is refused with `RESOURCE_EXHAUSTED` if none is left).
//!
//! Other bounds live elsewhere: message size (tonic's 4 MiB decode limit), HTTP/2
//! streams per connection ([`MAX_CONCURRENT_STREAMS`], beyond which a client queues its
//! own calls), field, batch and page sizes (`api::validate`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::http;

/// Default bound on calls in flight (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default bound on calls waiting for a `min_revision` (`--max-revision-waiters`).
pub const DEFAULT_MAX_REVISION_WAITERS: usize = 128;
/// HTTP/2 streams one connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

#[derive(Clone)]
pub struct InFlightLayer {
    bounds: Arc<Bounds>,
}

/// The two semaphores: calls in flight, and calls parked waiting for a revision. Behind
/// one `Arc`, so a call's [`Admission`] costs one reference count, not three.
struct Bounds {
    permits: Arc<Semaphore>,
    max: usize,
    waiters: Arc<Semaphore>,
    max_waiters: usize,
}

impl InFlightLayer {
    /// At most `max` calls in flight and `max_waiters` parked in a `min_revision` wait.
    pub fn new(max: usize, max_waiters: usize) -> Self {
        Self {
            bounds: Arc::new(Bounds {
                permits: Arc::new(Semaphore::new(max)),
                max,
                waiters: Arc::new(Semaphore::new(max_waiters)),
                max_waiters,
            }),
        }
    }
}

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlight {
            inner,
            bounds: self.bounds.clone(),
        }
    }
}

#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    bounds: Arc<Bounds>,
}

/// A call's in-flight permit, put in the request's extensions so a handler that has to
/// wait can step out of the bound ([`Admission::park`]). Absent when no [`InFlightLayer`]
/// is in front of the service (unit tests of a service).
#[derive(Clone)]
pub struct Admission {
    /// The permit, `None` while parked. A `parking_lot::Mutex`: never held across
    /// `.await`, taken twice per parked call.
    slot: Arc<parking_lot::Mutex<Option<OwnedSemaphorePermit>>>,
    bounds: Arc<Bounds>,
}

/// A call parked outside the in-flight bound; holds a waiter's permit until
/// [`Parked::resume`] or drop.
pub struct Parked {
    admission: Admission,
    _waiter: OwnedSemaphorePermit,
}

impl Admission {
    /// The admission of the call `req` belongs to, if an [`InFlightLayer`] admitted it
    /// (taken out of the request: the handler holds it from here on).
    pub fn of<T>(req: &mut tonic::Request<T>) -> Option<Admission> {
        req.extensions_mut().remove::<Admission>()
    }

    /// Give the in-flight permit back and hold a waiter's instead; RESOURCE_EXHAUSTED
    /// (naming `what`) when as many calls already wait as the bound allows.
    pub fn park(&self, what: &str) -> Result<Parked, tonic::Status> {
        let waiter = self.bounds.waiters.clone().try_acquire_owned().map_err(|_| {
            tonic::Status::resource_exhausted(format!(
                "{what}: {} calls already wait for a revision; retry with backoff",
                self.bounds.max_waiters
            ))
        })?;
        drop(self.slot.lock().take());
        Ok(Parked {
            admission: self.clone(),
            _waiter: waiter,
        })
    }
}

impl Parked {
    /// Take an in-flight permit again to finish the call; RESOURCE_EXHAUSTED when the
    /// daemon is at capacity meanwhile.
    pub fn resume(self) -> Result<(), tonic::Status> {
        let permit = self
            .admission
            .bounds
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| at_capacity(self.admission.bounds.max))?;
        *self.admission.slot.lock() = Some(permit);
        Ok(())
    }
}

fn at_capacity(max: usize) -> tonic::Status {
    tonic::Status::resource_exhausted(format!("at capacity ({max} calls in flight); retry with backoff"))
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if req.uri().path().starts_with(HEALTH_PREFIX) {
            return Box::pin(self.inner.call(req));
        }
        match self.bounds.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let slot = Arc::new(parking_lot::Mutex::new(Some(permit)));
                req.extensions_mut().insert(Admission {
                    slot: slot.clone(),
                    bounds: self.bounds.clone(),
                });
                let fut = self.inner.call(req);
                Box::pin(async move {
                    let out = fut.await;
                    drop(slot.lock().take());
                    out
                })
            }
            Err(_) => {
                tracing::debug!(
                    path = req.uri().path(),
                    max = self.bounds.max,
                    "at capacity; call refused"
                );
                Box::pin(std::future::ready(Ok(at_capacity(self.bounds.max).into_http())))
            }
        }
    }
}
