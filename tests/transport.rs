//! The transport's security against the real daemon: the Unix socket's permissions, the
//! TCP bearer token (configured as a hash; Unix-socket callers and health checks exempt),
//! TLS on TCP, and that no secret reaches the daemon's log even at `trace` level.

use crate::common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use warden::api::client::connect;
use warden::api::pb;

fn check_request() -> pb::CheckRequest {
    pb::CheckRequest {
        subject: "alice".into(),
        org: "acme".into(),
        resource: "apps/web".into(),
        action: "app:read".into(),
        ..Default::default()
    }
}

/// A Check over `channel`, with `authorization: <header>` if given.
async fn check_with(channel: Channel, header: Option<&str>) -> Result<bool, tonic::Status> {
    let mut req = tonic::Request::new(check_request());
    if let Some(h) = header {
        req.metadata_mut().insert("authorization", h.parse().unwrap());
    }
    pb::authz_service_client::AuthzServiceClient::new(channel)
        .check(req)
        .await
        .map(|r| r.into_inner().allowed)
}

pub(crate) fn random_token() -> String {
    (0..40)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random_range(0..36)]))
        .collect()
}

#[test]
fn unix_socket_is_0660_in_a_0750_directory_of_ours() {
    let daemon = Workdir::new().start();
    let sock = std::fs::symlink_metadata(daemon.work.socket()).unwrap();
    assert_eq!(sock.permissions().mode() & 0o777, 0o660);
    let dir = std::fs::metadata(daemon.work.data()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o750);
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    assert_eq!((sock.uid(), dir.uid()), (me, me));
    // The directory database is not readable by others either.
    let db = std::fs::metadata(daemon.work.data().join("warden.redb")).unwrap();
    assert_eq!(
        db.permissions().mode() & 0o007,
        0,
        "warden.redb is readable by others"
    );
}

#[test]
fn tcp_callers_need_the_token_and_it_never_reaches_the_log() {
    let token = random_token();
    let wrong = random_token();
    let mut work = Workdir::new();
    work.env.push(("WARDEN_LOG".into(), "trace".into()));
    let hash = warden::api::auth::token_sha256_hex(&token);
    // Health over TCP stays open, so the harness sees the daemon come up.
    let mut daemon = work.start_with(&["--demo", "--tcp-token-sha256", &hash]);
    let rt = runtime();
    let (tcp, unix) = (daemon.work.tcp_target(), daemon.work.unix_target());
    rt.block_on(async {
        let ch = connect(&tcp).await.unwrap();
        for (what, header) in [
            ("no header", None),
            ("wrong token", Some(format!("Bearer {wrong}"))),
            ("token without Bearer", Some(token.clone())),
            ("basic auth", Some(format!("Basic {token}"))),
            ("empty bearer", Some("Bearer ".to_string())),
        ] {
            let r = check_with(ch.clone(), header.as_deref()).await;
            assert!(
                matches!(&r, Err(s) if s.code() == Code::Unauthenticated),
                "{what}: {r:?}"
            );
        }
        // Every service is behind it, not just Check.
        let mut admin = pb::admin_service_client::AdminServiceClient::new(ch.clone());
        let r = admin.get_stats(pb::GetStatsRequest {}).await;
        assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);
        let mut users = pb::user_service_client::UserServiceClient::new(ch.clone());
        let r = users
            .upsert_user(pb::UpsertUserRequest {
                actor: "mallory".into(),
                user_id: "mallory".into(),
                email: "m@example.com".into(),
                ..Default::default()
            })
            .await;
        assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);

        assert!(
            check_with(ch.clone(), Some(&format!("Bearer {token}")))
                .await
                .unwrap()
        );
        let health = HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);

        // The Unix socket is trusted by file permission: no token needed.
        assert!(check_with(connect(&unix).await.unwrap(), None).await.unwrap());
    });
    daemon.stop();
    let logs = daemon.logs();
    assert!(logs.contains("refused a TCP call"), "refusals are logged");
    assert!(logs.len() > 10_000, "trace logging was on ({} bytes)", logs.len());
    assert!(!logs.contains(&token), "the token is in the daemon's log");
    assert!(
        !logs.contains(&wrong),
        "a presented wrong token is in the daemon's log"
    );
}

#[test]
fn a_malformed_token_hash_stops_startup() {
    let work = Workdir::new();
    let (status, stderr) = run_to_exit(work.serve_command().args(["--tcp-token-sha256", "not-hex"]));
    assert!(!status.success());
    assert!(stderr.contains("--tcp-token-sha256"), "{stderr}");
    let (status, stderr) = run_to_exit(work.serve_command().args(["--tls-cert", "cert.pem"]));
    assert!(!status.success());
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

/// A test CA and a certificate for localhost/127.0.0.1 it signed, by the `openssl`
/// command line: (CA certificate, server certificate, server key).
pub(crate) fn test_pki(
    dir: &std::path::Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let p = |name: &str| dir.join(name);
    std::fs::write(p("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").ok()?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<std::ffi::OsString>> = vec![
        [
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=warden-test-ca", "-keyout"],
        ]
        .concat()
        .into_iter()
        .map(Into::into)
        .chain([p("ca.key").into(), "-out".into(), p("ca.pem").into()])
        .collect(),
        [&["req"][..], &ec, &["-subj", "/CN=localhost", "-keyout"]]
            .concat()
            .into_iter()
            .map(Into::into)
            .chain([p("key.pem").into(), "-out".into(), p("leaf.csr").into()])
            .collect(),
        ["x509", "-req", "-days", "1", "-CAcreateserial", "-in"]
            .into_iter()
            .map(Into::into)
            .chain([
                p("leaf.csr").into(),
                "-CA".into(),
                p("ca.pem").into(),
                "-CAkey".into(),
                p("ca.key").into(),
            ])
            .chain([
                "-extfile".into(),
                p("ext.cnf").into(),
                "-out".into(),
                p("cert.pem").into(),
            ])
            .collect(),
    ];
    for args in steps {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
    }
    Some((p("ca.pem"), p("cert.pem"), p("key.pem")))
}

#[test]
fn tcp_over_tls() {
    let work = Workdir::new();
    let Some((ca_pem, cert, key)) = test_pki(work.dir.path()) else {
        // Stated, not silent: this machine cannot make a certificate for the test.
        eprintln!("SKIPPED: the `openssl` command is not available to make a test certificate");
        return;
    };
    let token = random_token();
    let mut cmd = work.serve_command();
    cmd.arg("--demo")
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--tcp-token-sha256", &warden::api::auth::token_sha256_hex(&token)])
        .env("WARDEN_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.dir.path().join("tls.log")).unwrap());
    let mut child = cmd.spawn().unwrap();
    let rt = runtime();
    let ca = Certificate::from_pem(std::fs::read(&ca_pem).unwrap());
    let tls_channel = || async {
        Endpoint::from_shared(format!("https://{}", work.tcp))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(ca.clone())
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
    };
    let result = rt.block_on(async {
        let start = Instant::now();
        let ch = loop {
            let err = match tls_channel().await {
                Ok(ch) => break ch,
                Err(e) => e,
            };
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the TLS listener never came up: {:?}",
                std::error::Error::source(&err)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let allowed = check_with(ch, Some(&format!("Bearer {token}"))).await;
        // A plaintext client gets nothing from a TLS listener.
        let plain = match connect(&work.tcp_target()).await {
            Ok(ch) => check_with(ch, Some(&format!("Bearer {token}"))).await.is_ok(),
            Err(_) => false,
        };
        // The Unix socket stays plaintext.
        let unix = check_with(connect(&work.unix_target()).await.unwrap(), None).await;
        (allowed, plain, unix)
    });
    let _ = child.kill();
    let _ = child.wait();
    let (allowed, plain, unix) = result;
    assert!(allowed.expect("Check over TLS with the token"), "alice reads web");
    assert!(!plain, "a plaintext call succeeded on the TLS listener");
    assert!(unix.expect("Check over the Unix socket"));
    let logs = std::fs::read_to_string(work.dir.path().join("tls.log")).unwrap();
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap_or("-");
    assert!(!logs.contains(&token), "the token is in the log");
    assert!(!logs.contains(key_body), "the TLS key is in the log");
}

#[test]
fn a_data_or_socket_directory_others_may_write_stops_startup() {
    // Another local user could swap warden.sock (or the database) in such a directory.
    let work = Workdir::new();
    std::fs::create_dir(work.data()).unwrap();
    std::fs::set_permissions(work.data(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (status, stderr) = run_to_exit(&mut work.serve_command());
    assert!(!status.success());
    assert!(
        stderr.contains("data directory")
            && stderr.contains("writable by others")
            && stderr.contains("chmod go-w"),
        "{stderr}"
    );
    assert!(!work.socket().exists(), "no socket in an open directory");

    // The data directory is fine now; the socket's own directory is group-writable.
    std::fs::set_permissions(work.data(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let shared = work.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o770)).unwrap();
    let listen = format!("unix:{}", shared.join("w.sock").display());
    let (status, stderr) = run_to_exit(work.serve_command().args(["--listen", &listen]));
    assert!(!status.success());
    assert!(
        stderr.contains("socket directory") && stderr.contains("writable by its group"),
        "{stderr}"
    );

    // A directory Warden creates itself is owner and group only, and it starts.
    let daemon = work.start();
    let mode = std::fs::metadata(daemon.work.data())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
}

#[test]
fn a_remote_listener_without_authentication_needs_insecure_remote() {
    let work = Workdir::new();
    let remote = format!("tcp:0.0.0.0:{}", free_port().port());
    let (status, stderr) = run_to_exit(work.serve_command().args(["--listen", &remote]));
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("--listen {remote}")) && stderr.contains("--insecure-remote"),
        "{stderr}"
    );
    let http = format!("tcp:0.0.0.0:{}", free_port().port());
    let (status, stderr) = run_to_exit(
        work.serve_command()
            .args(["--http", &http, "--http-allow-remote"]),
    );
    assert!(!status.success());
    assert!(stderr.contains(&format!("--http {http}")), "{stderr}");

    // With --insecure-remote it starts, and says so loudly (a token is the other way;
    // see `cli::config`'s tests).
    let daemon = work.start_with(&["--listen", &remote, "--insecure-remote"]);
    assert!(
        daemon.logs().contains("INSECURE (--insecure-remote)"),
        "{}",
        daemon.logs()
    );
}
