//! Request decoding and the check path behind it: any bytes decoded as each Authz
//! request; a decoded Check (and every item of a BatchCheck) is validated like the
//! daemon does and asked of an engine with the default policy. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::{Arc, OnceLock};
use warden::api::pb;
use warden::engine::index::DirectoryIndex;
use warden::engine::{CheckInput, Engine};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let policy = warden::policy::load_defaults().expect("default policy");
        Engine::new(Arc::new(policy), Arc::new(DirectoryIndex::new()))
    })
}

fn ask(c: &pb::CheckRequest) {
    let fields = [&c.subject, &c.org, &c.resource, &c.action];
    if fields.iter().any(|f| warden::api::validate::required("field", f).is_err()) {
        return;
    }
    let q = CheckInput {
        subject: &c.subject,
        org: &c.org,
        resource: &c.resource,
        action: &c.action,
    };
    let _ = engine().check(&q);
    if c.explain {
        let _ = engine().explain(&q);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = pb::CheckRequest::decode(data) {
        ask(&c);
    }
    if let Ok(b) = pb::BatchCheckRequest::decode(data) {
        b.items.iter().take(warden::api::validate::MAX_BATCH_ITEMS).for_each(ask);
    }
    let _ = pb::LookupResourcesRequest::decode(data);
    let _ = pb::LookupSubjectsRequest::decode(data);
    let _ = pb::AddMemberRequest::decode(data);
    let _ = pb::CreateOrgRequest::decode(data);
});
