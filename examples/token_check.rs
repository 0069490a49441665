//! In-process cost of a `token:<secret>` subject next to the same check by its owner.
//!
//! ```sh
//! cargo run --release --example token_check
//! ```
//!
//! Builds an index of 1,000 orgs × 100 members with one personal token, then times 200,000
//! `Engine::check` calls each for the owner and for the token (p50 and p99, in ns). The token
//! path adds one SHA-256 of the secret, one hash-map lookup and the scope test.

use std::sync::Arc;
use std::time::Instant;
use warden::engine::index::{DirectoryIndex, IndexOp, TokenSubject};
use warden::engine::{CheckInput, Engine};

fn main() {
    let index = Arc::new(DirectoryIndex::new());
    let mut ops = Vec::new();
    for o in 0..1000 {
        for m in 0..100 {
            let role = if m == 0 { "admin" } else { "org_contributor" };
            ops.push(IndexOp::SetMember {
                org: format!("org{o}"),
                user: format!("user{o}-{m}"),
                role: role.into(),
            });
        }
        ops.push(IndexOp::AddApp {
            org: format!("org{o}"),
            app: format!("app{o}"),
            labels: vec![],
        });
    }
    let secret = format!("wdn_{}", "0123456789abcdef".repeat(4));
    ops.push(IndexOp::AddToken {
        hash: warden::directory::tokens::hash_secret(&secret),
        id: "tok_1".into(),
        subject: TokenSubject::User("user5-3".into()),
        scopes: vec!["app:read".into(), "app:write".into()],
        expires_at_ms: None,
        last_used_ms: 0,
    });
    index.apply(1, &ops);
    let policy = Arc::new(warden::policy::load_defaults().expect("default policies"));
    let engine = Engine::new(policy, index);
    let token = format!("token:{secret}");
    for (name, subject) in [("owner", "user5-3"), ("token", token.as_str())] {
        let q = CheckInput {
            subject,
            org: "org5",
            resource: "apps/app5",
            action: "app:write",
        };
        assert!(
            engine.check(&q).map(|d| d.allowed).unwrap_or(false),
            "{name} must be allowed"
        );
        let mut samples = Vec::with_capacity(200_000);
        for _ in 0..200_000 {
            let t = Instant::now();
            std::hint::black_box(engine.check(std::hint::black_box(&q)).ok());
            samples.push(t.elapsed().as_nanos() as u64);
        }
        samples.sort_unstable();
        println!(
            "{name}: p50 {} ns, p99 {} ns",
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100]
        );
    }
}
