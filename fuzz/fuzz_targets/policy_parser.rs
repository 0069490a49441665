//! The policy parsers and compiler: any bytes as `model.conf`, `policy.csv` and
//! `engine.toml` (split at lines `%%`) must compile or come back as `file:line` errors,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::engine::EngineConfig;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, "\n%%\n");
    let model = parts.next().unwrap_or_default();
    let policy = parts.next().unwrap_or_default();
    let config = match parts.next() {
        Some(engine) => match warden::policy::parse_engine_config("engine.toml", engine) {
            Ok(c) => c,
            Err(_) => return,
        },
        None => EngineConfig::default(),
    };
    let _ = warden::policy::compile_texts("model.conf", model, "policy.csv", policy, &config);
});
