//! Loading, validating and watching the Casbin files in `policies/`.
//!
//! Owns the file formats (`model.conf`, `policy.csv`, the optional `engine.toml`) and
//! their error reports (`file:line: reason`), and what a loaded directory should not ship
//! with ([`lint`], added to the compiled policy's warnings by [`load_dir`]). Hands compiled
//! policies to the engine; never touches the directory or redb.

pub mod csv;
pub mod diff;
pub mod eval;
pub mod lint;
pub mod model;
pub mod snapshot;
pub mod suite;

use crate::engine::compile::{self, Sources};
use crate::engine::funcs::Func;
use crate::engine::roles::DirectorySource;
use crate::engine::{CompiledPolicy, EngineConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default policy files, compiled into the binary so `warden serve` runs on a
/// fresh machine; written out to the policy directory when it does not exist yet.
pub const DEFAULT_MODEL: &str = include_str!("../../policies/model.conf");
pub const DEFAULT_POLICY: &str = include_str!("../../policies/policy.csv");
pub const DEFAULT_ENGINE: &str = include_str!("../../policies/engine.toml");
/// The default policy's test suite (`warden policy test`), written out beside it.
pub const DEFAULT_TESTS: &str = include_str!("../../policies/tests/default_roles.yaml");
pub const DEFAULT_TESTS_FILE: &str = "tests/default_roles.yaml";

pub const MODEL_FILE: &str = "model.conf";
pub const POLICY_FILE: &str = "policy.csv";
pub const ENGINE_FILE: &str = "engine.toml";
/// Instance limits and plans (optional; the embedded defaults apply without it).
pub const LIMITS_FILE: &str = "limits.toml";
pub const DEFAULT_LIMITS: &str = crate::directory::limits::DEFAULT_LIMITS_TOML;

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct PolicyErrors(pub Vec<PolicyError>);

/// `engine.toml`: what Casbin's model text cannot say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineFile {
    /// The most links a role path may have (default 10,000); see
    /// [`EngineConfig::max_role_depth`].
    max_role_depth: Option<usize>,
    #[serde(default)]
    role_matching: BTreeMap<String, String>,
    #[serde(default)]
    domain_matching: BTreeMap<String, String>,
    #[serde(default)]
    directory: DirectoryFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    members: Option<String>,
    teams: Option<String>,
    labels: Option<String>,
    /// Org roles a membership may hold (without the `role:` prefix).
    roles: Option<Vec<String>>,
}

/// A model or policy file's text from a consistent read: it must exist and say something.
fn required(path: &Path, read: snapshot::FileRead) -> Result<String, PolicyError> {
    let error = |reason: String| PolicyError {
        file: path.display().to_string(),
        line: 0,
        reason,
    };
    let text = match read {
        Ok(Some(text)) => text,
        Ok(None) => {
            return Err(error(
                "cannot read: No such file or directory (os error 2)".into(),
            ));
        }
        Err(reason) => return Err(error(reason)),
    };
    if text.trim().is_empty() {
        return Err(error(
            "file is empty (an empty policy is refused rather than denying everything)".into(),
        ));
    }
    Ok(text)
}

fn parse_func(file: &str, what: &str, g: &str, name: &str) -> Result<Func, PolicyError> {
    Func::from_name(name).filter(|f| f.is_matcher()).ok_or_else(|| PolicyError {
        file: file.into(),
        line: 0,
        reason: format!("[{what}] {g} = \"{name}\": unknown matching function (keyMatch, keyMatch2, … regexMatch, globMatch, ipMatch)"),
    })
}

/// Parse `engine.toml` text into an engine configuration.
pub fn parse_engine_config(file: &str, text: &str) -> Result<EngineConfig, PolicyError> {
    let parsed: EngineFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1) as u32)
            .unwrap_or(0);
        PolicyError {
            file: file.into(),
            line,
            reason: e.message().to_string(),
        }
    })?;
    let mut cfg = EngineConfig::default();
    for (g, f) in parsed.role_matching {
        let func = parse_func(file, "role_matching", &g, &f)?;
        cfg.role_matching.insert(g, func);
    }
    for (g, f) in parsed.domain_matching {
        let func = parse_func(file, "domain_matching", &g, &f)?;
        cfg.domain_matching.insert(g, func);
    }
    if let Some(g) = parsed.directory.members {
        cfg.directory.insert(g, DirectorySource::Members);
    }
    if let Some(g) = parsed.directory.teams {
        cfg.directory.insert(g, DirectorySource::Teams);
    }
    if let Some(g) = parsed.directory.labels {
        cfg.directory.insert(g, DirectorySource::Labels);
    }
    cfg.assignable_roles = parsed.directory.roles;
    if let Some(max) = parsed.max_role_depth {
        if max == 0 {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("max_role_depth"))
                .map(|i| i as u32 + 1)
                .unwrap_or(0);
            return Err(PolicyError {
                file: file.into(),
                line,
                reason: "max_role_depth must be at least 1 (the links from a subject to its roles)".into(),
            });
        }
        cfg.max_role_depth = max;
    }
    Ok(cfg)
}

/// Compile model and policy text. `hash` covers every input.
pub fn compile_texts(
    model_file: &str,
    model_text: &str,
    policy_file: &str,
    policy_text: &str,
    config: &EngineConfig,
) -> Result<CompiledPolicy, PolicyErrors> {
    let mut errors = Vec::new();
    let model = model::parse(model_file, model_text)
        .map_err(|e| errors.extend(e))
        .ok();
    let rules = csv::parse(policy_file, policy_text)
        .map_err(|e| errors.extend(e))
        .ok();
    let (Some(model), Some(rules)) = (model, rules) else {
        return Err(PolicyErrors(errors));
    };
    let mut compiled = compile::compile(&Sources {
        model: &model,
        policy_file,
        rules: &rules,
        config,
    })
    .map_err(PolicyErrors)?;
    for w in &compiled.warnings {
        tracing::warn!("{w}");
    }
    let mut h = Sha256::new();
    for part in [model_text, policy_text] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(format!("{config:?}").as_bytes());
    compiled.hash = hex::encode(h.finalize());
    Ok(compiled)
}

/// The version directory behind a Kubernetes ConfigMap mount (`..data -> ..<version>/`), when
/// every policy file present in `dir` is the symlink `..data/<file>`; `None` for any other
/// layout (plain files, an editor's write-rename, hand-made symlinks), which is read in place.
fn configmap_version_dir(dir: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(dir.join("..data"))
        .ok()
        .filter(|p| p.is_dir())?;
    let mut any = false;
    for f in [MODEL_FILE, POLICY_FILE, ENGINE_FILE, LIMITS_FILE] {
        match std::fs::read_link(dir.join(f)) {
            Ok(target) if target == Path::new("..data").join(f) => any = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => return None,
        }
    }
    any.then_some(real)
}

/// Load model and policy files given by path (offline evaluation).
pub fn load_files(
    model_path: &Path,
    policy_path: &Path,
    config: &EngineConfig,
) -> Result<CompiledPolicy, PolicyErrors> {
    let model_text = std::fs::read_to_string(model_path).map_err(|e| {
        PolicyErrors(vec![PolicyError {
            file: model_path.display().to_string(),
            line: 0,
            reason: format!("cannot read: {e}"),
        }])
    })?;
    let policy_text = std::fs::read_to_string(policy_path).map_err(|e| {
        PolicyErrors(vec![PolicyError {
            file: policy_path.display().to_string(),
            line: 0,
            reason: format!("cannot read: {e}"),
        }])
    })?;
    let mut p = compile_texts(
        &model_path.display().to_string(),
        &model_text,
        &policy_path.display().to_string(),
        &policy_text,
        config,
    )?;
    p.files = vec![model_path.to_path_buf(), policy_path.to_path_buf()];
    Ok(p)
}

/// The texts of a policy directory's four files, as read at one moment: what a policy
/// epoch carries in cluster mode (`engine.toml` and `limits.toml` are `None` when absent;
/// the built-in defaults then apply, and the hash says so).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct PolicySources {
    pub model: String,
    pub policy: String,
    pub engine: Option<String>,
    pub limits: Option<String>,
}

/// Load and compile a policy directory: `model.conf`, `policy.csv` and the optional
/// `engine.toml`. A missing, empty or unreadable model or policy file is an error: a
/// policy directory mid-edit must never load as "no rules". Only these files are read:
/// the `tests/` subdirectory belongs to [`suite`].
pub fn load_dir(dir: &Path) -> Result<CompiledPolicy, PolicyErrors> {
    compile_sources(dir, &read_sources(dir)?)
}

/// Read one consistent version of a policy directory's four files (see [`load_dir`]).
pub fn read_sources(dir: &Path) -> Result<PolicySources, PolicyErrors> {
    let model_path = dir.join(MODEL_FILE);
    let policy_path = dir.join(POLICY_FILE);
    let engine_path = dir.join(ENGINE_FILE);
    let limits_path = dir.join(LIMITS_FILE);
    // Kubernetes mounts a ConfigMap as `..data -> ..<version>/` with every file a symlink
    // through `..data`. Resolving `..data` once and reading inside the version directory it
    // names reads one version whatever swaps land meanwhile; identity checks alone can be
    // fooled when the link flips away and back between two reads. Errors and rules still
    // name the paths the operator edits.
    let base = configmap_version_dir(dir).unwrap_or_else(|| dir.to_path_buf());
    let read_paths = [MODEL_FILE, POLICY_FILE, ENGINE_FILE, LIMITS_FILE].map(|f| base.join(f));
    // One consistent version of the files, even while an edit or a ConfigMap swap lands
    // (see `snapshot`).
    let [model_read, policy_read, engine_read, limits_read] =
        match snapshot::read_consistent([&read_paths[0], &read_paths[1], &read_paths[2], &read_paths[3]]) {
            Ok(reads) => reads,
            Err(reason) => {
                return Err(PolicyErrors(vec![PolicyError {
                    file: dir.display().to_string(),
                    line: 0,
                    reason,
                }]));
            }
        };
    let mut errors = Vec::new();
    let model_text = required(&model_path, model_read).map_err(|e| errors.push(e)).ok();
    let policy_text = required(&policy_path, policy_read)
        .map_err(|e| errors.push(e))
        .ok();
    let mut optional = |path: &Path, read: snapshot::FileRead| match read {
        Ok(t) => t,
        Err(reason) => {
            errors.push(PolicyError {
                file: path.display().to_string(),
                line: 0,
                reason,
            });
            None
        }
    };
    let engine = optional(&engine_path, engine_read);
    let limits = optional(&limits_path, limits_read);
    match (model_text, policy_text) {
        (Some(model), Some(policy)) if errors.is_empty() => Ok(PolicySources {
            model,
            policy,
            engine,
            limits,
        }),
        _ => Err(PolicyErrors(errors)),
    }
}

/// Compile `sources` as the policy directory `dir` (which only names files in errors and
/// in the status). The same sources give the same policy and hash on every machine
/// running this build: cluster mode compiles a policy epoch's inline files with it.
pub fn compile_sources(dir: &Path, sources: &PolicySources) -> Result<CompiledPolicy, PolicyErrors> {
    let model_path = dir.join(MODEL_FILE);
    let policy_path = dir.join(POLICY_FILE);
    let engine_path = dir.join(ENGINE_FILE);
    let limits_path = dir.join(LIMITS_FILE);
    let mut errors = Vec::new();
    let config = match &sources.engine {
        Some(t) => parse_engine_config(&engine_path.display().to_string(), t)
            .map_err(|e| errors.push(e))
            .ok(),
        None => Some(EngineConfig::default()),
    };
    let limits = match &sources.limits {
        Some(t) => crate::directory::Limits::parse(t)
            .map_err(|e| {
                errors.push(PolicyError {
                    file: limits_path.display().to_string(),
                    line: e.line,
                    reason: e.reason,
                })
            })
            .ok(),
        None => Some(crate::directory::Limits::defaults()),
    };
    let (Some(config), Some(limits)) = (config, limits) else {
        return Err(PolicyErrors(errors));
    };
    let mut p = compile_texts(
        &model_path.display().to_string(),
        &sources.model,
        &policy_path.display().to_string(),
        &sources.policy,
        &config,
    )?;
    if let Some(t) = &sources.engine {
        let mut h = Sha256::new();
        h.update(p.hash.as_bytes());
        h.update(t.as_bytes());
        p.hash = hex::encode(h.finalize());
    }
    hash_limits(&mut p, sources.limits.as_deref(), limits);
    // Mistakes the policy loads with: reported, never refused here (see `lint`).
    for f in lint::lint(&p) {
        tracing::warn!("{f}");
        p.warnings.push(f.error);
    }
    p.files = vec![model_path, policy_path];
    if sources.engine.is_some() {
        p.files.push(engine_path);
    }
    if sources.limits.is_some() {
        p.files.push(limits_path);
    }
    Ok(p)
}

/// Put `limits` on `p` and fold them into its hash, so the hash covers everything the write
/// path judges with: the file's text when there is one, else a marker for the built-in
/// defaults (an absent `limits.toml` is a policy of its own), and in both cases the limits as
/// parsed, so a build whose defaults differ hashes differently.
fn hash_limits(p: &mut CompiledPolicy, text: Option<&str>, limits: crate::directory::Limits) {
    let mut h = Sha256::new();
    h.update(p.hash.as_bytes());
    match text {
        Some(t) => {
            h.update(b"limits.toml");
            h.update(t.as_bytes());
        }
        None => h.update(b"limits.toml absent: built-in defaults"),
    }
    h.update(format!("{limits:?}").as_bytes());
    p.hash = hex::encode(h.finalize());
    p.limits = std::sync::Arc::new(limits);
}

/// The embedded default policy, compiled (used by tests, benches and `--demo`), with the
/// built-in default limits.
pub fn load_defaults() -> Result<CompiledPolicy, PolicyErrors> {
    let config = parse_engine_config(ENGINE_FILE, DEFAULT_ENGINE).map_err(|e| PolicyErrors(vec![e]))?;
    let mut p = compile_texts(MODEL_FILE, DEFAULT_MODEL, POLICY_FILE, DEFAULT_POLICY, &config)?;
    hash_limits(&mut p, None, crate::directory::Limits::defaults());
    Ok(p)
}

/// Create `dir` with the default policy files if it does not exist. Returns whether it
/// wrote them.
pub fn write_defaults_if_missing(dir: &Path) -> std::io::Result<bool> {
    if dir.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir.join(suite::TESTS_DIR))?;
    for (name, text) in [
        (MODEL_FILE, DEFAULT_MODEL),
        (POLICY_FILE, DEFAULT_POLICY),
        (ENGINE_FILE, DEFAULT_ENGINE),
        (LIMITS_FILE, DEFAULT_LIMITS),
        (DEFAULT_TESTS_FILE, DEFAULT_TESTS),
    ] {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(true)
}

/// Files a policy directory is made of (for watchers and status).
pub fn dir_files(dir: &Path) -> Vec<PathBuf> {
    vec![
        dir.join(MODEL_FILE),
        dir.join(POLICY_FILE),
        dir.join(ENGINE_FILE),
        dir.join(LIMITS_FILE),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy directory with the default model, policy and engine files and, when given, this
    /// `limits.toml`.
    fn dir_with_limits(limits: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            (MODEL_FILE, DEFAULT_MODEL),
            (POLICY_FILE, DEFAULT_POLICY),
            (ENGINE_FILE, DEFAULT_ENGINE),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        if let Some(text) = limits {
            std::fs::write(dir.path().join(LIMITS_FILE), text).unwrap();
        }
        dir
    }

    #[test]
    fn the_hash_covers_the_limits_even_when_the_file_is_absent() {
        let absent = load_dir(dir_with_limits(None).path()).unwrap();
        let defaults_text = load_dir(dir_with_limits(Some(DEFAULT_LIMITS)).path()).unwrap();
        let stricter = load_dir(dir_with_limits(Some("users_can_create_orgs = false\n")).path()).unwrap();
        // Stable for the same files.
        assert_eq!(absent.hash, load_dir(dir_with_limits(None).path()).unwrap().hash);
        // The absent file is judged by the built-in defaults, and that is part of the hash:
        // it is not the hash of model, policy and engine alone.
        let config = parse_engine_config(ENGINE_FILE, DEFAULT_ENGINE).unwrap();
        let rules_only =
            compile_texts(MODEL_FILE, DEFAULT_MODEL, POLICY_FILE, DEFAULT_POLICY, &config).unwrap();
        assert_ne!(absent.hash, rules_only.hash);
        assert_eq!(*absent.limits, crate::directory::Limits::defaults());
        // Three different inputs, three different hashes.
        assert_ne!(absent.hash, defaults_text.hash);
        assert_ne!(absent.hash, stricter.hash);
        assert_ne!(defaults_text.hash, stricter.hash);
        // The embedded defaults carry their limits in the hash too.
        let embedded = load_defaults().unwrap();
        assert_eq!(*embedded.limits, crate::directory::Limits::defaults());
        assert_ne!(embedded.hash, rules_only.hash);
    }
}
