//! One shutdown signal for every background task the daemon runs (listeners, the
//! policy watcher), in the manner of mini-redis: the trigger side is owned by the
//! startup sequence, each task holds a cheap [`Shutdown`] clone and selects on it.

use tokio::sync::watch;

/// Fires shutdown when told to, or when dropped, so a task can never outlive the
/// sequence that started it by accident.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A task's view of the shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    pub fn new() -> (Self, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Self { tx }, Shutdown { rx })
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.trigger();
    }
}

impl Shutdown {
    /// Resolve once shutdown has been triggered (immediately if it already was).
    pub async fn wait(mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_trigger_shuts_down() {
        let (trigger, shutdown) = ShutdownTrigger::new();
        assert!(!shutdown.is_triggered());
        drop(trigger);
        shutdown.wait().await;
    }
}
