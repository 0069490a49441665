//! The decision engine: a compiled policy snapshot plus the directory index.
//!
//! Owns `check`, `batch_check`, `explain` and the lookups. It never touches redb or the
//! file system: the `policy` module hands it compiled policies and the `store` feeds
//! its [`index::DirectoryIndex`].

pub mod index;

use arc_swap::ArcSwap;
use index::DirectoryIndex;
use std::sync::Arc;

/// A compiled, immutable policy (model + rules), swapped atomically on reload.
pub struct CompiledPolicy {
    /// Hex SHA-256 over the source files' contents.
    pub hash: String,
    /// Files it was loaded from.
    pub files: Vec<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Eval(String),
    #[error("invalid page token")]
    InvalidPageToken,
}

/// One authorization question in the daemon's shape.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub subject: &'a str,
    pub org: &'a str,
    pub resource: &'a str,
    pub action: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Directory revision the decision was made at.
    pub revision: u64,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub allowed: bool,
    /// `allow`, `deny`, or `default deny` when no rule matched.
    pub effect: String,
    /// The decisive rule, if any: `file:line` and its text.
    pub rule: Option<RuleRef>,
    /// Role path from the subject to the rule's subject, e.g.
    /// `alice -[admin@acme]-> admin -> org_contributor`.
    pub role_path: String,
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub file: String,
    pub line: u32,
    pub text: String,
}

/// One page of a lookup. `next_page_token` is empty on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub items: Vec<String>,
    pub next_page_token: String,
    pub revision: u64,
}

/// The engine: the current policy snapshot behind an atomic pointer, and the index.
pub struct Engine {
    policy: ArcSwap<CompiledPolicy>,
    index: Arc<DirectoryIndex>,
}

impl Engine {
    pub fn new(policy: Arc<CompiledPolicy>, index: Arc<DirectoryIndex>) -> Self {
        Self {
            policy: ArcSwap::new(policy),
            index,
        }
    }

    pub fn index(&self) -> &Arc<DirectoryIndex> {
        &self.index
    }

    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.policy.load_full()
    }

    /// Swap in a new policy; in-flight checks finish on the old one.
    pub fn swap_policy(&self, policy: Arc<CompiledPolicy>) {
        self.policy.store(policy);
    }

    pub fn check(&self, _q: &CheckInput<'_>) -> Result<Decision, EngineError> {
        Err(EngineError::Eval("engine not built yet".into()))
    }

    pub fn explain(&self, _q: &CheckInput<'_>) -> Result<Explanation, EngineError> {
        Err(EngineError::Eval("engine not built yet".into()))
    }

    pub fn lookup_resources(
        &self,
        _subject: &str,
        _org: &str,
        _action: &str,
        _page_token: &str,
        _page_size: usize,
    ) -> Result<Page, EngineError> {
        Err(EngineError::Eval("engine not built yet".into()))
    }

    pub fn lookup_subjects(
        &self,
        _org: &str,
        _resource: &str,
        _action: &str,
        _page_token: &str,
        _page_size: usize,
    ) -> Result<Page, EngineError> {
        Err(EngineError::Eval("engine not built yet".into()))
    }
}
