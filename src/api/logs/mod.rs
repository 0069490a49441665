//! Operators' logs, apart from tracing: the sampled **decision log** (`decisions`) and
//! the **audit log** of directory mutations (`audit`), both JSON lines in size-rotated
//! files (`rotate`), both written by their own threads so neither a check nor a write
//! ever waits for a disk.
//!
//! Must not decide or write anything itself: it observes decisions handed to it and
//! follows the store's change log.

pub mod audit;
pub mod decisions;
pub mod rotate;

/// Settings of `serve --decision-log … --audit-log …`, resolved by `cli::config`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogsConfig {
    pub decisions: Option<decisions::DecisionLogConfig>,
    pub audit: Option<std::path::PathBuf>,
    /// Used by both files.
    pub rotation: rotate::Rotation,
}
