//! The matcher parser and evaluator: the first line of the input is the matcher, the
//! rest are request values. A matcher that compiles is evaluated against a fixed set of
//! rules; evaluation must decide or return an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::engine::{EngineConfig, ReqVal};

const POLICY: &str = "p, alice, acme, apps/:app, read\np, role:admin, *, apps/*, *\n\
p, bob, acme, /data/*, (read)|(write)\ng, carol, role:admin, acme\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let matcher = lines.next().unwrap_or_default();
    let model = format!(
        "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = sub, dom, obj, act\n\n\
         [role_definition]\ng = _, _, _\n\n[policy_effect]\ne = some(where (p.eft == allow))\n\n[matchers]\nm = {matcher}\n"
    );
    let Ok(policy) = warden::policy::compile_texts("model.conf", &model, "policy.csv", POLICY, &EngineConfig::default())
    else {
        return;
    };
    let values: Vec<&str> = lines.chain(std::iter::repeat("")).take(4).collect();
    let req: Vec<ReqVal<'_>> = values.iter().map(|v| ReqVal::Str(v)).collect();
    let _ = policy.enforce(&req);
});
