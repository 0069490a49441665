//! Fuzzing entry points, shared by the cargo-fuzz targets in `fuzz/` and by the corpus
//! replay test (`tests/fuzz_corpus.rs`) that runs every kept input in CI.
//!
//! Each takes arbitrary bytes and must return without panicking, whatever they hold:
//! that is the whole property. Each returns whether the input got as far as a decision
//! (it parsed, compiled or decoded), so the replay test can tell that its seeds reach
//! the evaluator rather than bouncing off the parser. They own no behaviour; they only drive the policy
//! parser, the matcher compiler and evaluator, and the gRPC request path into the engine.

use crate::api::pb;
use crate::engine::index::{DirectoryIndex, IndexOp};
use crate::engine::{CheckInput, CompiledPolicy, Engine, EngineConfig, ReqVal};
use crate::policy::{compile_texts, parse_engine_config};
use prost::Message as _;
use std::sync::{Arc, OnceLock};

/// Model, policy and `engine.toml` texts, separated by NUL bytes, through the loader;
/// a policy that loads is then asked requests made of its own rules' fields.
pub fn policy_parser(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let model = parts.next().unwrap_or_default();
    let policy = parts.next().unwrap_or_default();
    let config = parts
        .next()
        .and_then(|t| parse_engine_config("engine.toml", t).ok())
        .unwrap_or_default();
    match compile_texts("model.conf", model, "policy.csv", policy, &config) {
        Ok(compiled) => {
            ask_own_fields(&compiled, policy);
            true
        }
        Err(_) => false,
    }
}

/// The first line is a matcher; the lines after it are policy rules (`p, …`/`g, …`)
/// and requests (`r, …`), under a fixed RBAC-with-domains model with deny rules.
pub fn matcher(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let (matcher, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let model = format!(
        "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = sub, dom, obj, act, eft\n\n\
         [role_definition]\ng = _, _, _\ng2 = _, _\n\n[policy_effect]\n\
         e = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n\n[matchers]\nm = {matcher}\n"
    );
    let (requests, rules): (Vec<&str>, Vec<&str>) = rest.lines().partition(|l| l.starts_with("r,"));
    let policy = rules.join("\n");
    let config = EngineConfig::default();
    let Ok(compiled) = compile_texts("model.conf", &model, "policy.csv", &policy, &config) else {
        return false;
    };
    for r in requests {
        let values: Vec<&str> = r.split(',').skip(1).map(str::trim).collect();
        let req: Vec<ReqVal<'_>> = values.iter().map(|v| ReqVal::Str(v)).collect();
        let _ = compiled.enforce(&req);
    }
    ask_own_fields(&compiled, &policy);
    true
}

/// The first byte picks a request message; the rest is its protobuf encoding, decoded
/// and put to the default policy over a small directory as the daemon would.
pub fn request(data: &[u8]) -> bool {
    let Some((&kind, bytes)) = data.split_first() else {
        return false;
    };
    let engine = demo_engine();
    match kind % 4 {
        0 => {
            let Ok(req) = pb::CheckRequest::decode(bytes) else {
                return false;
            };
            decide(engine, &req)
        }
        1 => {
            let Ok(req) = pb::BatchCheckRequest::decode(bytes) else {
                return false;
            };
            let inputs: Vec<CheckInput<'_>> = req.items.iter().filter_map(input).collect();
            engine.batch_check(&inputs).0.iter().any(Result::is_ok)
        }
        2 => {
            let Ok(req) = pb::LookupResourcesRequest::decode(bytes) else {
                return false;
            };
            let size = (req.page_size as usize).clamp(1, 1000);
            engine
                .lookup_resources(&req.subject, &req.org, &req.action, &req.page_token, size)
                .is_ok()
        }
        _ => {
            let Ok(req) = pb::LookupSubjectsRequest::decode(bytes) else {
                return false;
            };
            let size = (req.page_size as usize).clamp(1, 1000);
            engine
                .lookup_subjects(&req.org, &req.resource, &req.action, &req.page_token, size)
                .is_ok()
        }
    }
}

fn input(req: &pb::CheckRequest) -> Option<CheckInput<'_>> {
    use crate::api::validate::required;
    Some(CheckInput {
        subject: required("subject", &req.subject).ok()?,
        org: required("org", &req.org).ok()?,
        resource: required("resource", &req.resource).ok()?,
        action: required("action", &req.action).ok()?,
    })
}

fn decide(engine: &Engine, req: &pb::CheckRequest) -> bool {
    let Some(q) = input(req) else {
        return false;
    };
    if req.explain {
        let _ = engine.explain(&q);
    }
    engine.check(&q).is_ok()
}

/// Requests built from the policy's own fields, at every arity up to four.
fn ask_own_fields(compiled: &CompiledPolicy, policy: &str) {
    for line in policy.lines().take(32) {
        let fields: Vec<&str> = line.split(',').skip(1).map(str::trim).collect();
        for n in 0..=fields.len().min(4) {
            let req: Vec<ReqVal<'_>> = fields.iter().take(n).map(|v| ReqVal::Str(v)).collect();
            let _ = compiled.enforce(&req);
        }
    }
}

/// The default policy over a two-org directory, built once per process.
fn demo_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let index = Arc::new(DirectoryIndex::new());
        let member = |org: &str, user: &str, role: &str| IndexOp::SetMember {
            org: org.into(),
            user: user.into(),
            role: role.into(),
        };
        index.apply(
            1,
            &[
                member("acme", "alice", "admin"),
                member("acme", "bob", "org_contributor"),
                member("acme", "carol", "team_contributor"),
                member("acme", "dave", "org_user"),
                member("globex", "erin", "admin"),
                IndexOp::AddTeamMember {
                    org: "acme".into(),
                    team: "frontend".into(),
                    user: "carol".into(),
                },
                IndexOp::AddApp {
                    org: "acme".into(),
                    app: "web".into(),
                },
                IndexOp::AddApp {
                    org: "acme".into(),
                    app: "api".into(),
                },
                IndexOp::GrantApp {
                    org: "acme".into(),
                    team: "frontend".into(),
                    app: "web".into(),
                },
            ],
        );
        let policy = crate::policy::load_defaults().unwrap_or_else(|e| panic!("embedded defaults: {e}"));
        Engine::new(Arc::new(policy), index)
    })
}
