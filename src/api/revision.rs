//! Read-your-writes: waiting until the directory index reaches a caller's
//! `min_revision`.
//!
//! The index does not publish change notifications, so this polls its revision with a
//! short, growing interval. A request that is already satisfied (the common case)
//! costs one atomic-ish read and never sleeps. A request that has to wait steps out of
//! the in-flight bound for the wait (see [`crate::api::limits`]): waiting callers never
//! take capacity from calls that can be answered now, and have a smaller bound of their
//! own. The longest wait is `serve --min-revision-wait` ([`MAX_WAIT`] by default).

use crate::api::limits::Admission;
use crate::engine::Engine;
use std::time::Duration;
use tokio::time::Instant;
use tonic::Status;

/// How long a request may wait for the index to catch up before it fails, unless
/// `serve --min-revision-wait` says otherwise.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

const FIRST_POLL: Duration = Duration::from_millis(2);
const LONGEST_POLL: Duration = Duration::from_millis(50);

/// Return the index revision once it is at least `min_revision`, or
/// FAILED_PRECONDITION naming `min_revision` after `max_wait`. While it waits, the call's
/// in-flight permit (`admission`, when one was given) is parked: RESOURCE_EXHAUSTED if
/// too many calls wait already, or if no permit is free when the wait ends.
pub async fn wait_for(
    engine: &Engine,
    admission: Option<&Admission>,
    min_revision: u64,
    max_wait: Duration,
) -> Result<u64, Status> {
    let current = engine.index().revision();
    if current >= min_revision {
        return Ok(current);
    }
    let parked = admission.map(|a| a.park("min_revision")).transpose()?;
    let waited = wait(engine, min_revision, max_wait).await;
    if let Some(p) = parked {
        p.resume()?;
    }
    waited
}

async fn wait(engine: &Engine, min_revision: u64, max_wait: Duration) -> Result<u64, Status> {
    let deadline = Instant::now() + max_wait;
    let mut pause = FIRST_POLL;
    loop {
        let current = engine.index().revision();
        if current >= min_revision {
            return Ok(current);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Status::failed_precondition(format!(
                "min_revision: directory is at revision {current}, not {min_revision}, after waiting {} ms; \
                 retry later or on a replica that has caught up",
                max_wait.as_millis()
            )));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(LONGEST_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::DirectoryIndex;
    use std::sync::Arc;

    fn engine() -> Arc<Engine> {
        let policy = Arc::new(crate::policy::load_defaults().expect("default policies"));
        Arc::new(Engine::new(policy, Arc::new(DirectoryIndex::new())))
    }

    #[tokio::test]
    async fn satisfied_revision_returns_at_once() {
        let e = engine();
        assert_eq!(wait_for(&e, None, 0, MAX_WAIT).await.ok(), Some(0));
    }

    #[tokio::test]
    async fn waits_until_index_catches_up() {
        let e = engine();
        let writer = e.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.index().apply(3, &[]);
        });
        assert_eq!(wait_for(&e, None, 3, Duration::from_secs(30)).await.ok(), Some(3));
    }

    #[tokio::test]
    async fn gives_up_naming_min_revision() {
        let e = engine();
        let err = wait_for(&e, None, 9, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().starts_with("min_revision:"), "{}", err.message());
    }
}
