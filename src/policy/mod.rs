//! Loading, validating and watching the Casbin files in `policies/`.
//!
//! Owns the file formats (model.conf, policy.csv) and their error reports
//! (`file:line: reason`). Produces compiled policies for the engine; never touches the
//! directory or redb.

use crate::engine::CompiledPolicy;
use std::path::Path;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: u32,
    pub reason: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct PolicyErrors(pub Vec<PolicyError>);

/// Load and compile `model.conf` + `policy.csv` from a policy directory.
pub fn load_dir(dir: &Path) -> Result<CompiledPolicy, PolicyErrors> {
    Err(PolicyErrors(vec![PolicyError {
        file: dir.join("model.conf").display().to_string(),
        line: 0,
        reason: "policy loading not built yet".into(),
    }]))
}
