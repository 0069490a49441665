//! Offline evaluation: `warden policy eval`. Reads JSON-lines requests
//! (`{"request": [v1, …]}`) and writes one JSON line per request, in order:
//! `{"allow": true|false}` or `{"error": "…"}`. No directory, no daemon: the same
//! compile-and-decide path the daemon uses, on the files given.

use super::{PolicyError, PolicyErrors};
use crate::engine::funcs::Func;
use crate::engine::{CompiledPolicy, EngineConfig, ReqVal};
use std::io::{BufRead, Write};
use std::path::Path;

/// Build the engine configuration from `PTYPE=FN` pairs.
pub fn config_from_pairs(
    role_matching: &[String],
    domain_matching: &[String],
) -> Result<EngineConfig, PolicyErrors> {
    let mut cfg = EngineConfig::default();
    let mut errors = Vec::new();
    for (pairs, what, map) in [
        (role_matching, "--role-matching", &mut cfg.role_matching),
        (domain_matching, "--domain-matching", &mut cfg.domain_matching),
    ] {
        for pair in pairs {
            match pair
                .split_once('=')
                .map(|(g, f)| (g.trim(), Func::from_name(f.trim()).filter(|f| f.is_matcher())))
            {
                Some((g, Some(f))) if !g.is_empty() => {
                    map.insert(g.to_string(), f);
                }
                _ => errors.push(PolicyError {
                    file: what.into(),
                    line: 0,
                    reason: format!(
                        "`{pair}`: expected PTYPE=FN with a matching function such as g2=keyMatch2"
                    ),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Compile the files; an unsupported model fails here, before any request is read.
pub fn prepare(model: &Path, policy: &Path, config: &EngineConfig) -> Result<CompiledPolicy, PolicyErrors> {
    super::load_files(model, policy, config)
}

/// Answer one input line.
pub fn answer(policy: &CompiledPolicy, line: &str) -> serde_json::Value {
    let parsed: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return serde_json::json!({ "error": format!("invalid JSON: {e}") }),
    };
    let Some(values) = parsed.get("request").and_then(|r| r.as_array()) else {
        return serde_json::json!({ "error": "expected an object with a `request` array" });
    };
    let req: Vec<ReqVal<'_>> = values
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => ReqVal::Str(s),
            other => ReqVal::Json(other),
        })
        .collect();
    match policy.enforce(&req) {
        Ok(allow) => serde_json::json!({ "allow": allow }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}

/// Answer every non-blank line of `input`, in order.
pub fn run(policy: &CompiledPolicy, input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        serde_json::to_writer(&mut output, &answer(policy, &line))?;
        output.write_all(b"\n")?;
    }
    output.flush()
}
