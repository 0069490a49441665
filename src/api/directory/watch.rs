//! `AuditService.WatchChanges`: the committed change log as a server stream.
//!
//! Built on the change log and the store's commit notification
//! ([`Store::subscribe_commits`]), never on the API's write path: whatever commits a change
//! (a write here, an import, a replicated log's apply loop) wakes the followers, and they read
//! the change from the log, so a stream can never disagree with what was committed.
//!
//! Each stream has one pump task that reads pages of the log from a blocking thread and offers
//! each change to a bounded buffer of [`BUFFER`] changes and [`BUFFER_BYTES`] bytes. When the
//! buffer stays full for
//! [`STALL`] the caller is too slow: the pump stops, and once the caller has read what was
//! buffered the stream ends with RESOURCE_EXHAUSTED naming the revision to resume from (also
//! in the `x-warden-resume-revision` trailer). Memory per stream is therefore bounded by the
//! buffer, whatever the write rate. Shutdown and store errors end the stream the same way
//! with UNAVAILABLE.
//!
//! Authorization: on the Unix socket the operator may follow every change or one org's; over
//! TCP only one org's, for an actor with `audit:read` on `org` there (the audit log's rule),
//! checked at the start and again before every page, so a revoked admin stops receiving.

use super::{Directory, check_actor, check_slug, on_unix_socket};
use crate::api::logs::audit::redacted_change;
use crate::api::pb;
use crate::api::shutdown::Shutdown;
use crate::store::{Store, WatchEntry};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

/// Changes buffered per stream ahead of the caller.
pub const BUFFER: usize = 256;
/// Bytes of changes buffered per stream ahead of the caller (a change larger than this
/// takes the whole budget): bounds a stream of large changes (security settings with SAML
/// metadata run to a megabyte) as the count bounds a stream of small ones.
pub const BUFFER_BYTES: usize = 4 << 20;
/// How long a full buffer may stay full before the stream is closed.
pub const STALL: Duration = Duration::from_secs(2);
/// Changes read from the store per read transaction.
const PAGE: usize = 512;
/// Trailer naming the revision to resume from.
pub const RESUME_TRAILER: &str = "x-warden-resume-revision";
/// Trailer naming the oldest revision still in the log (with OUT_OF_RANGE).
pub const OLDEST_TRAILER: &str = "x-warden-oldest-revision";

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::ChangeEvent, Status>> + Send + 'static>>;

/// A status carrying `revision` in `trailer` as well as in its message.
fn with_trailer(code: tonic::Code, message: String, trailer: &'static str, revision: u64) -> Status {
    let mut meta = tonic::metadata::MetadataMap::new();
    if let Ok(v) = MetadataValue::try_from(revision.to_string()) {
        meta.insert(trailer, v);
    }
    Status::with_metadata(code, message, meta)
}

fn resume(code: tonic::Code, why: &str, next: u64) -> Status {
    with_trailer(
        code,
        format!("{why}; resume from revision {next}"),
        RESUME_TRAILER,
        next,
    )
}

fn event(e: WatchEntry) -> pb::ChangeEvent {
    let r = e.record;
    pb::ChangeEvent {
        revision: r.revision,
        at_unix_ms: r.at_ms,
        actor: r.actor,
        change_type: r.change.kind().to_string(),
        org_id: e.org.unwrap_or_default(),
        change_json: redacted_change(&r.change).to_string(),
        operator: r.operator,
    }
}

/// A buffered change with its share of the byte budget, given back when it is sent on.
type Buffered = (pb::ChangeEvent, tokio::sync::OwnedSemaphorePermit);

/// The buffered changes, then the status the pump ended with (if it set one).
struct Events {
    rx: mpsc::Receiver<Buffered>,
    end: Arc<parking_lot::Mutex<Option<Status>>>,
}

impl Stream for Events {
    type Item = Result<pb::ChangeEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some((e, _budget))) => Poll::Ready(Some(Ok(e))),
            // The pump stores its status before it drops the sender.
            Poll::Ready(None) => Poll::Ready(self.end.lock().take().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What one stream follows.
struct Follow {
    store: Arc<Store>,
    directory: Directory,
    org: String,
    /// `Some(actor)` for a TCP caller, whose `audit:read` is checked before every page.
    remote_actor: Option<String>,
}

impl Follow {
    fn still_allowed(&self) -> Result<(), Status> {
        match &self.remote_actor {
            Some(actor) => self.directory.require(actor, &self.org, "org", "audit:read"),
            None => Ok(()),
        }
    }

    /// Read pages after `next - 1` and offer them to `tx` until the caller goes, falls
    /// behind, or the daemon stops; the status to end with goes to `end`.
    async fn pump(
        self,
        mut next: u64,
        tx: mpsc::Sender<Buffered>,
        end: Arc<parking_lot::Mutex<Option<Status>>>,
        shutdown: Option<Shutdown>,
    ) {
        let budget = Arc::new(tokio::sync::Semaphore::new(BUFFER_BYTES));
        let mut commits = self.store.subscribe_commits();
        let finish = |status: Status| {
            *end.lock() = Some(status);
        };
        loop {
            if let Err(denied) = self.still_allowed() {
                return finish(denied);
            }
            let (store, org, after) = (self.store.clone(), self.org.clone(), next - 1);
            let page = match tokio::task::spawn_blocking(move || store.watch_page(after, &org, PAGE)).await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, after, "WatchChanges: reading the change log");
                    return finish(resume(
                        tonic::Code::Unavailable,
                        "cannot read the directory store",
                        next,
                    ));
                }
                Err(e) => {
                    tracing::error!(error = %e, "WatchChanges: the reader crashed");
                    return finish(resume(
                        tonic::Code::Internal,
                        "the change-log reader failed",
                        next,
                    ));
                }
            };
            let full = page.entries.len() >= PAGE;
            for entry in page.entries {
                let revision = entry.record.revision;
                let event = event(entry);
                let cost = (event.change_json.len() + event.actor.len() + 64).min(BUFFER_BYTES);
                let deadline = tokio::time::Instant::now() + STALL;
                let share = tokio::time::timeout_at(
                    deadline,
                    budget
                        .clone()
                        .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX)),
                )
                .await;
                // `Some(true)`: buffered; `Some(false)`: the caller is gone; `None`: full too long.
                let sent = match share {
                    Ok(Ok(share)) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        match tx.send_timeout((event, share), left).await {
                            Ok(()) => Some(true),
                            Err(mpsc::error::SendTimeoutError::Closed(_)) => Some(false),
                            Err(mpsc::error::SendTimeoutError::Timeout(_)) => None,
                        }
                    }
                    // The budget is never closed; a closed one counts as full.
                    Ok(Err(_)) | Err(_) => None,
                };
                match sent {
                    Some(true) => next = revision + 1,
                    Some(false) => return,
                    None => {
                        tracing::warn!(
                            org = %self.org,
                            resume = revision,
                            buffered = BUFFER,
                            "WatchChanges: the caller fell behind; closing its stream"
                        );
                        return finish(resume(
                            tonic::Code::ResourceExhausted,
                            &format!(
                                "the caller read too slowly (its buffer of {BUFFER} changes or {} MiB stayed full for {} s)",
                                BUFFER_BYTES >> 20,
                                STALL.as_secs()
                            ),
                            revision,
                        ));
                    }
                }
            }
            next = next.max(page.scanned_to + 1);
            if full {
                continue;
            }
            // Wait for a commit past what was read, the caller to go, or shutdown.
            let stop = async {
                match &shutdown {
                    Some(s) => s.clone().wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = commits.wait_for(|r| *r >= next) => {
                    if changed.is_err() {
                        return finish(resume(tonic::Code::Unavailable, "the directory store closed", next));
                    }
                }
                () = tx.closed() => return,
                () = stop => {
                    return finish(resume(tonic::Code::Unavailable, "the daemon is shutting down", next));
                }
            }
        }
    }
}

impl Directory {
    pub(super) async fn watch(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let operator = on_unix_socket(&request);
        let r = request.into_inner();
        let remote_actor = if operator {
            if !r.actor.is_empty() {
                check_actor(&r.actor)?;
            }
            if !r.org_id.is_empty() {
                check_slug("org_id", &r.org_id)?;
            }
            None
        } else {
            check_actor(&r.actor)?;
            if r.org_id.is_empty() {
                return Err(Status::permission_denied(
                    "org_id: every org's changes are only served on the Unix socket; name an org",
                ));
            }
            check_slug("org_id", &r.org_id)?;
            self.require(&r.actor, &r.org_id, "org", "audit:read")?;
            Some(r.actor.clone())
        };
        let store = self.store.clone();
        let bounds = tokio::task::spawn_blocking(move || store.watch_page(u64::MAX, "", 1))
            .await
            .map_err(super::task_failed)?
            .map_err(|e| {
                tracing::error!(error = %e, "WatchChanges: reading the change log");
                Status::unavailable("cannot read the directory store; see the daemon log")
            })?;
        let (oldest, last) = (bounds.oldest.max(1), bounds.last);
        let first = if r.from_revision == 0 {
            oldest
        } else {
            r.from_revision
        };
        if first < oldest || first > last.saturating_add(1) {
            return Err(with_trailer(
                tonic::Code::OutOfRange,
                format!(
                    "from_revision: {} is not in the change log; the oldest revision available is \
                     {oldest} and the current one is {last} (ask for {oldest}..={})",
                    r.from_revision,
                    last.saturating_add(1)
                ),
                OLDEST_TRAILER,
                oldest,
            ));
        }
        tracing::debug!(org = %r.org_id, from = first, operator, "WatchChanges started");
        let (tx, rx) = mpsc::channel(BUFFER);
        let end = Arc::new(parking_lot::Mutex::new(None));
        let follow = Follow {
            store: self.store.clone(),
            directory: self.clone(),
            org: r.org_id,
            remote_actor,
        };
        tokio::spawn(follow.pump(first, tx, end.clone(), self.shutdown.clone()));
        Ok(Response::new(Box::pin(Events { rx, end })))
    }
}
