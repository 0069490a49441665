//! The `warden-client` crate's `Client` (re-exported as `warden::client`) against the real
//! daemon on the demo directory: answers, batch order and item errors, lookups across pages,
//! what a caller sees when no daemon is there, a bearer token and TLS on TCP, and per-call
//! deadlines.

use crate::common;

use common::*;
use std::time::{Duration, Instant};
use warden::api::pb;
use warden::client::{Client, Error, Retry};
use warden_client::{Options, Tls};

#[test]
fn client_answers_batches_and_pages_on_the_demo_directory() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        rt.block_on(async {
            let c = Client::connect(&target).await.expect("connect");
            assert!(
                c.can("alice", "acme", "apps/web", "app:write").await.unwrap(),
                "{target}"
            );
            assert!(!c.can("dave", "acme", "apps/web", "app:write").await.unwrap());

            let answers = c
                .batch(&[
                    ("carol", "acme", "apps/web", "app:write"),
                    ("carol", "acme", "apps/api", "app:read"),
                    ("carol", "acme", "", "app:read"),
                    ("alice", "acme", "apps/api", "app:delete"),
                ])
                .await
                .unwrap();
            assert_eq!(answers.len(), 4);
            assert_eq!(answers[0], Ok(true));
            assert_eq!(answers[1], Ok(false));
            let item = answers[2].as_ref().unwrap_err();
            assert_eq!(item.code, tonic::Code::InvalidArgument);
            assert!(item.message.starts_with("items[2].resource"), "{item}");
            assert_eq!(answers[3], Ok(true));

            let paged = c
                .lookup_resources_paged("dave", "acme", "app:read", 1)
                .await
                .unwrap();
            assert_eq!(paged, vec!["apps/api", "apps/web"]);
            assert_eq!(
                c.lookup_resources("dave", "acme", "app:read").await.unwrap(),
                paged
            );
            assert_eq!(
                c.lookup_resources("carol", "acme", "app:write").await.unwrap(),
                vec!["apps/web"]
            );

            let err = c.can("", "acme", "apps/web", "app:read").await.unwrap_err();
            assert!(
                matches!(&err, Error::Status(s) if s.code() == tonic::Code::InvalidArgument),
                "{err}"
            );
        });
    }
}

#[test]
fn nothing_listening_is_unavailable_after_bounded_retries() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("unix:{}", dir.path().join("absent.sock").display());
    let retry = Retry {
        attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    };
    let started = Instant::now();
    let err = runtime()
        .block_on(Client::connect_with(&target, retry))
        .unwrap_err();
    match &err {
        Error::Unavailable { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(last.contains("No such file"), "{last}");
        }
        other => panic!("expected Unavailable, got {other}"),
    }
    // Two backoffs happened (20 + 40 ms), and nothing waited unboundedly.
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert!(started.elapsed() < PATIENCE);

    assert!(matches!(
        runtime().block_on(Client::connect("localhost:50051")),
        Err(Error::BadTarget(_))
    ));
}

#[test]
fn a_client_started_before_the_daemon_connects_within_the_retry_window() {
    let work = Workdir::new();
    let target = work.tcp_target();
    let retry = Retry {
        attempts: 600,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(100),
    };
    // Multi-threaded, so the client task runs while this thread starts the daemon.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let connecting = rt.spawn(async move { Client::connect_with(&target, retry).await });
    // The daemon comes up while the client is already retrying.
    std::thread::sleep(Duration::from_millis(200));
    let daemon = work.start_with(&["--demo"]);
    let client = rt
        .block_on(connecting)
        .unwrap()
        .expect("connected once the daemon served");
    assert!(
        rt.block_on(client.can("alice", "acme", "apps/web", "app:read"))
            .unwrap()
    );
    drop(daemon);
}

/// The rest of the client: `lookup_subjects` agrees with `can` for every demo user,
/// `explain` names the decisive rule and the role path, and `at_revision` reads a
/// directory write made on another connection (and refuses a revision that never comes).
#[test]
fn client_lookup_subjects_explain_and_read_your_writes() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let c = Client::connect(&daemon.work.unix_target())
            .await
            .expect("connect");
        for (resource, action) in [
            ("apps/web", "app:write"),
            ("apps/api", "app:write"),
            ("apps/web", "app:read"),
            ("org", "member:manage"),
        ] {
            let mut subjects = c.lookup_subjects("acme", resource, action).await.unwrap();
            subjects.sort();
            let paged = c
                .lookup_subjects_paged("acme", resource, action, 1)
                .await
                .unwrap();
            let mut expected = vec![];
            for user in ["alice", "bob", "carol", "dave", "erin"] {
                if c.can(user, "acme", resource, action).await.unwrap() {
                    expected.push(user.to_string());
                }
            }
            assert_eq!(subjects, expected, "{action} on {resource}");
            let mut paged_sorted = paged.clone();
            paged_sorted.sort();
            assert_eq!(paged_sorted, expected, "paged {action} on {resource}");
        }
        assert!(
            c.lookup_subjects("acme", "apps/web", "app:write")
                .await
                .unwrap()
                .contains(&"carol".to_string())
        );

        let d = c.explain("bob", "acme", "apps/api", "app:write").await.unwrap();
        assert!(d.allowed);
        let e = d.explanation.expect("explain asked for an explanation");
        assert_eq!(e.effect, "allow");
        assert!(e.rule_file.ends_with("policy.csv"), "{e:?}");
        assert!(e.rule_line > 0);
        assert!(
            e.role_path == "bob -[role:org_contributor@acme]-> role:org_contributor",
            "{e:?}"
        );
        let plain = c.check("bob", "acme", "apps/api", "app:write").await.unwrap();
        assert!(plain.allowed && plain.explanation.is_none());

        // dave is an org user: no write on api until an admin promotes him.
        assert!(!c.can("dave", "acme", "apps/api", "app:write").await.unwrap());
        let mut admin = common::directory::clients(&daemon.work.tcp_target()).await;
        let rev = admin
            .member
            .update_member_role(pb::UpdateMemberRoleRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                user_id: "dave".into(),
                role: "org_contributor".into(),
            })
            .await
            .expect("alice promotes dave")
            .into_inner()
            .revision;
        assert!(rev > plain.revision);
        let fresh = c
            .at_revision(rev)
            .check("dave", "acme", "apps/api", "app:write")
            .await
            .unwrap();
        assert!(fresh.allowed);
        assert!(fresh.revision >= rev);

        let err = c
            .at_revision(rev + 1_000)
            .can("dave", "acme", "apps/api", "app:write")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Status(s) if s.code() == tonic::Code::FailedPrecondition),
            "{err}"
        );
    });
}

#[test]
fn client_sends_its_bearer_token_over_tls_and_keeps_its_deadline() {
    let work = Workdir::new();
    let (ca_pem, cert, key) = crate::transport::test_pki(work.dir.path())
        .expect("the `openssl` command is needed to make the test's certificates: install openssl");
    let token = crate::transport::random_token();
    let tcp = work.tcp_target();
    let unix = work.unix_target();
    // Spawned here: the TCP listener speaks TLS, which the common helper's readiness probe
    // does not; the Unix socket tells when it serves.
    let mut daemon = work
        .serve_command()
        .arg("--demo")
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--tcp-token-sha256", &warden::api::auth::token_sha256_hex(&token)])
        // Long enough that only the client's deadline can end the waiting call below.
        .args(["--min-revision-wait", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.dir.path().join("tls.log")).unwrap())
        .spawn()
        .expect("spawn warden serve");
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(health(&unix, ""))
        != Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
    {
        assert!(daemon.try_wait().unwrap().is_none(), "warden exited early");
        assert!(Instant::now() < deadline, "the daemon never served on {unix}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let tls = || {
        Some(Tls {
            ca_pem: std::fs::read(&ca_pem).unwrap(),
            domain: Some("localhost".into()),
        })
    };
    rt.block_on(async {
        let c = Client::connect_with_options(
            &tcp,
            Options {
                tls: tls(),
                token: Some(token.clone()),
                ..Options::default()
            },
        )
        .await
        .expect("connect over TLS");
        assert!(c.can("alice", "acme", "apps/web", "app:write").await.unwrap());
        assert_eq!(
            c.lookup_resources("carol", "acme", "app:write").await.unwrap(),
            vec!["apps/web"]
        );

        // The same TLS connection without the token: the daemon asks for it.
        let anonymous = Client::connect_with_options(
            &tcp,
            Options {
                tls: tls(),
                ..Options::default()
            },
        )
        .await
        .expect("connect over TLS");
        let err = anonymous
            .can("alice", "acme", "apps/web", "app:write")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Status(s) if s.code() == tonic::Code::Unauthenticated),
            "{err}"
        );

        // A revision the directory will not reach: the call waits until its deadline.
        let err = c
            .at_revision(1_000_000)
            .with_timeout(Duration::from_millis(300))
            .can("alice", "acme", "apps/web", "app:write")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Status(s) if s.code() == tonic::Code::DeadlineExceeded),
            "{err}"
        );

        // Options that cannot apply are refused before anything is sent.
        let err = Client::connect_with_options(
            &unix,
            Options {
                tls: tls(),
                ..Options::default()
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::BadOptions(m) if m.contains("TLS applies to tcp:")),
            "{err}"
        );
        let err = Client::connect_with_options(
            &unix,
            Options {
                token: Some("two\nlines".into()),
                ..Options::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::BadOptions(_)), "{err}");

        // Every service's generated client is there, on the client's channel.
        let mut members =
            warden_client::MemberServiceClient::new(Client::connect(&unix).await.expect("unix").channel());
        let page = members
            .list_members(warden_client::pb::ListMembersRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                ..Default::default()
            })
            .await
            .expect("list members")
            .into_inner();
        assert!(page.members.iter().any(|m| m.user_id == "carol"), "{page:?}");
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// What an application pulls in with `warden-client`: tonic, prost and what tonic's client
/// needs, never the daemon's storage, CLI, policy or telemetry crates. Read from the
/// manifests and `Cargo.lock` (which over-approximates: it lists optional dependencies too).
#[test]
fn client_crate_pulls_in_none_of_the_daemons_dependencies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("warden-client/Cargo.toml")).unwrap()).unwrap();
    let mut direct: Vec<&str> = manifest["dependencies"]
        .as_table()
        .expect("[dependencies]")
        .keys()
        .map(String::as_str)
        .collect();
    direct.sort();
    assert_eq!(
        direct,
        [
            "hyper-util",
            "prost",
            "thiserror",
            "tokio",
            "tonic",
            "tonic-prost",
            "tower"
        ],
        "warden-client's dependencies"
    );

    let lock: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.lock")).unwrap()).unwrap();
    let packages = lock["package"].as_array().expect("[[package]]");
    let deps_of = |name: &str| -> Vec<String> {
        packages
            .iter()
            .filter(|p| p["name"].as_str() == Some(name))
            .flat_map(|p| {
                p.get("dependencies")
                    .and_then(|d| d.as_array())
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|d| d.as_str().map(|s| s.split(' ').next().unwrap_or(s).to_string()))
            .collect()
    };
    let mut closure = std::collections::BTreeSet::new();
    let mut todo = vec!["warden-client".to_string()];
    while let Some(n) = todo.pop() {
        if closure.insert(n.clone()) {
            todo.extend(deps_of(&n));
        }
    }
    assert!(
        closure.contains("tonic") && closure.contains("prost"),
        "{closure:?}"
    );
    let daemons: Vec<&str> = [
        "warden",
        "redb",
        "clap",
        "notify",
        "notify-debouncer-full",
        "serde_json",
        "serde_norway",
        "toml",
        "tracing-subscriber",
        "prost-reflect",
        "envoy-types",
        "mimalloc",
        "tonic-health",
        "tonic-reflection",
        "plotters",
        "sha2",
        "hdrhistogram",
        "arc-swap",
        "parking_lot",
        "idna",
        "casbin",
    ]
    .into_iter()
    .filter(|d| closure.contains(*d))
    .collect();
    assert!(
        daemons.is_empty(),
        "warden-client pulls in daemon crates: {daemons:?}"
    );
}
