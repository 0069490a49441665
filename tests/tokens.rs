//! API tokens through a running daemon: personal tokens and org keys decide as their owner
//! narrowed to their scopes (Check and BatchCheck), refusals of who may issue them and of bad
//! input, revocation and expiry, last use surviving a restart, the secret never stored, and
//! export/import keeping tokens usable. All against `serve --demo` (acme: alice admin, bob
//! org_contributor, dave org_user; apps web and api; globex: erin admin).

use crate::common;

use common::directory::{Clients, assert_refused, clients, org_owner, user_owner};
use common::{PATIENCE, WARDEN, Workdir, runtime};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;
use warden::api::pb;
use warden::api::pb::token_service_client::TokenServiceClient;

fn req(actor: &str, owner: Option<pb::Owner>, role: &str, scopes: &[&str]) -> pb::CreateTokenRequest {
    pb::CreateTokenRequest {
        actor: actor.into(),
        owner,
        name: "ci".into(),
        role: role.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_at_unix_ms: 0,
    }
}

async fn tokens(target: &str) -> TokenServiceClient<tonic::transport::Channel> {
    TokenServiceClient::new(warden::api::client::connect(target).await.expect("connect"))
}

async fn create(
    t: &mut TokenServiceClient<tonic::transport::Channel>,
    r: pb::CreateTokenRequest,
) -> pb::CreateTokenResponse {
    t.create_token(r).await.expect("CreateToken").into_inner()
}

async fn can(c: &mut Clients, secret: &str, org: &str, resource: &str, action: &str, rev: u64) -> bool {
    c.check(&format!("token:{secret}"), org, resource, action, rev)
        .await
}

fn now_ms() -> u64 {
    warden::api::directory::now_ms()
}

#[test]
fn tokens_decide_as_their_owner_within_their_scopes() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let target = daemon.work.unix_target();
        let (mut c, mut t) = (clients(&target).await, tokens(&target).await);

        // alice (admin) with a read-only personal token: reads, but cannot write through it.
        let a = create(&mut t, req("alice", user_owner("alice"), "", &["app:read"])).await;
        assert!(a.secret.starts_with("wdn_"), "{}", a.secret);
        let tok = a.token.clone().expect("token");
        assert!(tok.token_id.starts_with("tok_"));
        assert_eq!(tok.scopes, ["app:read"]);
        let rev = a.revision;
        assert!(can(&mut c, &a.secret, "acme", "apps/web", "app:read", rev).await);
        assert!(!can(&mut c, &a.secret, "acme", "apps/web", "app:write", rev).await);
        assert!(
            c.check("alice", "acme", "apps/web", "app:write", rev).await,
            "alice herself can"
        );
        // Deny rules still apply to the owner's decision.
        assert!(!can(&mut c, &a.secret, "acme", "apps/web/secrets", "app:read", rev).await);
        // Outside the owner's orgs, nothing.
        assert!(!can(&mut c, &a.secret, "globex", "apps/ledger", "app:read", rev).await);

        // dave (org_user) cannot gain app:write by asking for it as a scope.
        let d = create(
            &mut t,
            req("dave", user_owner("dave"), "", &["app:write", "org:read"]),
        )
        .await;
        assert!(!can(&mut c, &d.secret, "acme", "apps/web", "app:write", d.revision).await);
        assert!(can(&mut c, &d.secret, "acme", "org", "org:read", d.revision).await);
        assert!(
            !can(&mut c, &d.secret, "acme", "apps/web", "app:read", d.revision).await,
            "not in scope"
        );

        // An org key acts as its role, in its org only.
        let k = create(
            &mut t,
            req("alice", org_owner("acme"), "org_user", &["app:read", "app:write"]),
        )
        .await;
        let rev = k.revision;
        assert_eq!(k.token.as_ref().map(|t| t.role.as_str()), Some("org_user"));
        assert!(can(&mut c, &k.secret, "acme", "apps/api", "app:read", rev).await);
        assert!(
            !can(&mut c, &k.secret, "acme", "apps/api", "app:write", rev).await,
            "org_user cannot write"
        );
        assert!(!can(&mut c, &k.secret, "globex", "apps/ledger", "app:read", rev).await);

        // Unknown secrets are a plain deny, never an error.
        assert!(!can(&mut c, "wdn_0000", "acme", "apps/web", "app:read", rev).await);

        // BatchCheck resolves tokens item by item, mixed with users.
        let item = |subject: String, action: &str| pb::CheckRequest {
            subject,
            org: "acme".into(),
            resource: "apps/web".into(),
            action: action.into(),
            ..Default::default()
        };
        let batch = c
            .authz
            .batch_check(pb::BatchCheckRequest {
                items: vec![
                    item(format!("token:{}", a.secret), "app:read"),
                    item(format!("token:{}", a.secret), "app:write"),
                    item("bob".into(), "app:write"),
                    item(format!("token:{}", k.secret), "app:read"),
                ],
                min_revision: rev,
            })
            .await
            .expect("BatchCheck")
            .into_inner();
        let allowed: Vec<bool> = batch
            .results
            .iter()
            .map(|r| match &r.result {
                Some(pb::batch_check_result::Result::Decision(d)) => d.allowed,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(allowed, [true, false, true, true]);

        // Explain names the token (never the secret) or the reason it was refused.
        let explain = |action: &str| pb::CheckRequest {
            subject: format!("token:{}", a.secret),
            org: "acme".into(),
            resource: "apps/web".into(),
            action: action.into(),
            explain: true,
            ..Default::default()
        };
        let e = c
            .authz
            .check(explain("app:read"))
            .await
            .expect("Check")
            .into_inner();
        let path = e.explanation.expect("explanation").role_path;
        assert!(
            path.starts_with(&format!("token {} -> alice", tok.token_id)),
            "{path}"
        );
        let e = c
            .authz
            .check(explain("app:write"))
            .await
            .expect("Check")
            .into_inner();
        let x = e.explanation.expect("explanation");
        assert!(x.effect.contains("outside the token's scopes"), "{}", x.effect);
        assert!(!x.role_path.contains(&a.secret));

        // Last use shows in the list; the secret never does.
        let list = t
            .list_tokens(pb::ListTokensRequest {
                actor: "alice".into(),
                owner: user_owner("alice"),
                ..Default::default()
            })
            .await
            .expect("ListTokens")
            .into_inner();
        assert_eq!(list.tokens.len(), 1);
        assert!(list.tokens[0].last_used_at_unix_ms > 0);
        assert!(!format!("{list:?}").contains(&a.secret));
    });
    // Neither the log nor the store holds a secret.
    assert!(!daemon.logs().contains("wdn_"), "a secret reached the log");
}

#[test]
fn who_may_issue_tokens_and_bad_input_is_named() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let target = daemon.work.tcp_target();
        let (mut c, mut t) = (clients(&target).await, tokens(&target).await);
        let before = c.stats().await.revision;

        // Denied: another user's personal token; an org key without `token:manage`.
        assert_refused(
            t.create_token(req("dave", user_owner("alice"), "", &["app:read"]))
                .await,
            Code::PermissionDenied,
            &["dave", "alice"],
        );
        assert_refused(
            t.create_token(req("bob", org_owner("acme"), "admin", &["app:read"]))
                .await,
            Code::PermissionDenied,
            &["bob", "token:manage", "acme"],
        );
        assert_refused(
            t.list_tokens(pb::ListTokensRequest {
                actor: "bob".into(),
                owner: org_owner("acme"),
                ..Default::default()
            })
            .await,
            Code::PermissionDenied,
            &["token:manage"],
        );

        // Invalid: each refusal names the field.
        let cases: Vec<(pb::CreateTokenRequest, &str)> = vec![
            (req("alice", user_owner("alice"), "", &["app:reed"]), "scopes[0]"),
            (
                req("alice", user_owner("alice"), "", &["app:read", "*"]),
                "scopes[1]",
            ),
            (req("alice", user_owner("alice"), "", &[]), "scopes"),
            (req("alice", user_owner("alice"), "admin", &["app:read"]), "role"),
            (req("alice", org_owner("acme"), "", &["app:read"]), "role"),
            (req("alice", org_owner("acme"), "overlord", &["app:read"]), "role"),
            (req("alice", None, "", &["app:read"]), "owner"),
            (
                pb::CreateTokenRequest {
                    expires_at_unix_ms: 1,
                    ..req("alice", user_owner("alice"), "", &["app:read"])
                },
                "expires_at_unix_ms",
            ),
        ];
        for (r, field) in cases {
            let got = t.create_token(r.clone()).await;
            assert_refused(got, Code::InvalidArgument, &[&format!("{field}:")]);
        }
        assert_refused(
            t.revoke_token(pb::RevokeTokenRequest {
                actor: "alice".into(),
                token_id: "nope".into(),
            })
            .await,
            Code::InvalidArgument,
            &["token_id:"],
        );
        assert_eq!(
            c.stats().await.revision,
            before,
            "a refused request wrote nothing"
        );

        // Revocation: by someone else, refused; by the owner, effective at once; twice, refused.
        let a = create(&mut t, req("alice", user_owner("alice"), "", &["app:read"])).await;
        let id = a.token.expect("token").token_id;
        assert_refused(
            t.revoke_token(pb::RevokeTokenRequest {
                actor: "dave".into(),
                token_id: id.clone(),
            })
            .await,
            Code::PermissionDenied,
            &["dave"],
        );
        let revoked = t
            .revoke_token(pb::RevokeTokenRequest {
                actor: "alice".into(),
                token_id: id.clone(),
            })
            .await
            .expect("RevokeToken")
            .into_inner();
        assert!(
            !can(
                &mut c,
                &a.secret,
                "acme",
                "apps/web",
                "app:read",
                revoked.revision
            )
            .await
        );
        assert_refused(
            t.revoke_token(pb::RevokeTokenRequest {
                actor: "alice".into(),
                token_id: id,
            })
            .await,
            Code::FailedPrecondition,
            &["already revoked"],
        );

        // Expiry: a token valid for a moment is denied once the moment has passed.
        let r = pb::CreateTokenRequest {
            expires_at_unix_ms: now_ms() + 1500,
            ..req("alice", user_owner("alice"), "", &["app:read"])
        };
        let short = create(&mut t, r).await;
        let deadline = Instant::now() + PATIENCE;
        while can(
            &mut c,
            &short.secret,
            "acme",
            "apps/web",
            "app:read",
            short.revision,
        )
        .await
        {
            assert!(Instant::now() < deadline, "the token never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

fn warden(args: &[&str]) -> Output {
    Command::new(WARDEN)
        .args(args)
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .env_remove("WARDEN_DATA")
        .stdin(Stdio::null())
        .output()
        .expect("run warden")
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_tokens_survive_restart_and_export_import_without_storing_the_secret() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    let out = ok(&warden(&[
        "token",
        "create",
        "--user",
        "alice",
        "--name",
        "laptop",
        "--scope",
        "app:read",
        "--actor",
        "alice",
        "--connect",
        &target,
    ]));
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the secret is printed once")
        .to_string();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("token id")
        .to_string();
    let subject = format!("token:{secret}");
    let check = |target: &str, action: &str| {
        warden(&[
            "check",
            "--subject",
            &subject,
            "--org",
            "acme",
            "--resource",
            "apps/web",
            "--action",
            action,
            "--connect",
            target,
        ])
        .status
        .code()
    };
    assert_eq!(check(&target, "app:read"), Some(0));
    assert_eq!(check(&target, "app:write"), Some(1));
    // Org keys need token:manage: bob is refused (exit 1), with the permission named.
    let refused = warden(&[
        "token",
        "create",
        "--org",
        "acme",
        "--role",
        "org_user",
        "--name",
        "k",
        "--scope",
        "app:read",
        "--actor",
        "bob",
        "--connect",
        &target,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("token:manage"));

    // A clean stop writes the last use; a restart keeps it and the token.
    daemon.stop();
    let store = std::fs::read(daemon.work.data().join("warden.redb")).expect("store");
    let hex_secret = secret.trim_start_matches("wdn_");
    assert!(
        !store
            .windows(hex_secret.len())
            .any(|w| w == hex_secret.as_bytes()),
        "the secret is in the store file"
    );
    daemon.restart();
    let listed = ok(&warden(&[
        "token",
        "list",
        "--user",
        "alice",
        "--actor",
        "alice",
        "--connect",
        &target,
    ]));
    assert!(listed.contains(&id), "{listed}");
    assert!(!listed.contains("last used: never"), "{listed}");
    assert!(!listed.contains(&secret));
    assert_eq!(check(&target, "app:read"), Some(0));
    daemon.stop();

    // Export → import into a new store: the token is there and still works.
    let data = daemon.work.data();
    let dump = ok(&warden(&["export", "--data", &data.display().to_string()]));
    assert!(dump.contains(&id) && !dump.contains(&secret), "{dump}");
    let work = Workdir::new();
    let file = work.dir.path().join("dump.json");
    std::fs::write(&file, &dump).expect("write dump");
    ok(&warden(&[
        "import",
        &file.display().to_string(),
        "--data",
        &work.data().display().to_string(),
    ]));
    assert_eq!(
        ok(&warden(&["export", "--data", &work.data().display().to_string()])),
        dump,
        "round trip"
    );
    let imported = work.start();
    assert_eq!(check(&imported.work.unix_target(), "app:read"), Some(0));
    ok(&warden(&[
        "token",
        "revoke",
        &id,
        "--actor",
        "alice",
        "--connect",
        &imported.work.unix_target(),
    ]));
    assert_eq!(check(&imported.work.unix_target(), "app:read"), Some(1));
}
