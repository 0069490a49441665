//! Connection exhaustion against the real daemon: connections beyond `--max-connections`
//! are closed while open ones keep answering; a silent new connection, a half-sent HTTP/1
//! request head and an idle HTTP/2 connection are closed after their timeouts; with the
//! file-descriptor limit exhausted the daemon keeps answering on open connections and
//! logs the accept failures rate-limited instead of flooding the log.

use crate::common;

use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::authz_service_client::AuthzServiceClient;

fn check() -> pb::CheckRequest {
    pb::CheckRequest {
        subject: "alice".into(),
        org: "acme".into(),
        resource: "apps/web".into(),
        action: "app:read".into(),
        ..Default::default()
    }
}

/// Read until the server closes the connection (EOF or an error); panics if it is still
/// open after [`PATIENCE`].
async fn until_closed(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 1024];
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "{what}: still open after {PATIENCE:?}");
}

#[test]
fn connections_beyond_the_cap_are_closed_and_open_ones_keep_answering() {
    // The handshake timeout is long so that the idle raw connections below hold their
    // slots for the whole test.
    let daemon =
        Workdir::new().start_with(&["--demo", "--max-connections", "8", "--handshake-timeout", "10m"]);
    let tcp = daemon.work.tcp;
    let target = daemon.work.tcp_target();
    runtime().block_on(async {
        let mut existing = AuthzServiceClient::new(connect(&target).await.unwrap());
        assert!(existing.check(check()).await.unwrap().into_inner().allowed);

        // 7 more fill the cap of 8; the 13 after them are over it.
        let mut raw = Vec::new();
        for _ in 0..20 {
            raw.push(TcpStream::connect(tcp).await.unwrap());
        }
        for (i, s) in raw.iter_mut().enumerate().skip(7) {
            until_closed(s, &format!("connection {} over the cap of 8", i + 2)).await;
        }
        // The connection that was already open still answers, repeatedly.
        for _ in 0..50 {
            assert!(existing.check(check()).await.unwrap().into_inner().allowed);
        }
        // The Unix socket is a listener of its own, with its own cap.
        let mut unix = AuthzServiceClient::new(connect(&daemon.work.unix_target()).await.unwrap());
        assert!(unix.check(check()).await.unwrap().into_inner().allowed);

        // Once the idle ones go, their slots are free again.
        drop(raw);
        let start = Instant::now();
        loop {
            if let Ok(ch) = connect(&target).await
                && let Ok(r) = AuthzServiceClient::new(ch).check(check()).await
            {
                assert!(r.into_inner().allowed);
                break;
            }
            assert!(start.elapsed() < PATIENCE, "slots never freed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let logs = daemon.logs();
    assert!(
        logs.contains("connection limit reached; closing new connections"),
        "{logs}"
    );
}

#[test]
fn silent_half_sent_and_idle_connections_are_closed() {
    let http = free_port();
    let http_flag = format!("tcp:{http}");
    let daemon = Workdir::new().start_with(&[
        "--demo",
        "--http",
        &http_flag,
        "--handshake-timeout",
        "1s",
        "--header-read-timeout",
        "1s",
        "--idle-timeout",
        "2s",
    ]);
    let tcp: SocketAddr = daemon.work.tcp;
    runtime().block_on(async {
        // Connects and says nothing.
        let mut silent = TcpStream::connect(tcp).await.unwrap();
        until_closed(&mut silent, "a silent gRPC connection").await;

        // An HTTP/1 request head that never ends (slowloris).
        let mut half = TcpStream::connect(http).await.unwrap();
        half.write_all(b"POST /warden.v1.AuthzService/Check HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        until_closed(&mut half, "a half-sent HTTP/1 request head").await;

        // A complete HTTP/2 handshake and then no request: idle.
        let mut idle = TcpStream::connect(tcp).await.unwrap();
        idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        until_closed(&mut idle, "an idle HTTP/2 connection").await;

        // A connection in use is not idle: checks spread over more than the idle timeout
        // on one channel all answer.
        let mut c = AuthzServiceClient::new(connect(&daemon.work.tcp_target()).await.unwrap());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            assert!(c.check(check()).await.unwrap().into_inner().allowed);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // And the gateway still answers a whole request.
        let mut ok = TcpStream::connect(http).await.unwrap();
        let body = r#"{"subject":"alice","org":"acme","resource":"apps/web","action":"app:read"}"#;
        ok.write_all(
            format!(
                "POST /warden.v1.AuthzService/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut reply = String::new();
        ok.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("\"allowed\":true"), "{reply}");
    });
}

#[test]
fn out_of_file_descriptors_the_daemon_answers_open_connections_and_logs_sparingly() {
    let mut work = Workdir::new();
    work.nofile_limit = Some(64);
    let daemon = work.start_with(&["--demo"]);
    let tcp = daemon.work.tcp;
    let target = daemon.work.tcp_target();
    let exhausted_for = runtime().block_on(async {
        let mut existing = AuthzServiceClient::new(connect(&target).await.unwrap());
        assert!(existing.check(check()).await.unwrap().into_inner().allowed);

        // More connections than the daemon has descriptors left: accept() fails with EMFILE.
        let mut raw = Vec::new();
        for _ in 0..100 {
            raw.push(TcpStream::connect(tcp).await.unwrap());
        }
        let start = Instant::now();
        while !daemon.logs().contains("accepting a connection failed") {
            assert!(
                start.elapsed() < PATIENCE,
                "EMFILE was never reached or never logged"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Meanwhile the open connection answers.
        for _ in 0..200 {
            assert!(existing.check(check()).await.unwrap().into_inner().allowed);
        }
        drop(raw);
        // Descriptors back: new connections are accepted again.
        let back = Instant::now();
        loop {
            if let Ok(ch) = connect(&target).await
                && AuthzServiceClient::new(ch).check(check()).await.is_ok()
            {
                break;
            }
            assert!(back.elapsed() < PATIENCE, "never accepted again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        start.elapsed()
    });
    let logs = daemon.logs();
    let failures = logs.matches("accepting a connection failed").count();
    println!(
        "accept failures logged: {failures} lines; whole log: {} lines",
        logs.lines().count()
    );
    // One line per 10 s at most, however long the exhaustion lasted (a spinning loop
    // logged millions).
    let allowed = exhausted_for.as_secs() / 10 + 2;
    assert!(
        failures as u64 <= allowed,
        "accept failures flood the log: {failures} lines in {exhausted_for:?}"
    );
}

/// A `WatchChanges` stream that sees no change for longer than the idle timeout keeps its
/// connection (an open stream is not idleness) and gets the next change when it commits, on
/// the Unix socket and over TCP; a connection with no stream open is still closed.
#[test]
fn a_quiet_watch_outlives_the_idle_timeout_and_gets_the_next_change() {
    use common::directory::clients;
    use warden::api::pb::audit_service_client::AuditServiceClient;
    const IDLE: Duration = Duration::from_secs(2);
    let daemon = Workdir::new().start_with(&["--demo", "--idle-timeout", "2s"]);
    runtime().block_on(async {
        let unix = daemon.work.unix_target();
        let tcp = daemon.work.tcp_target();
        let mut c = clients(&unix).await;
        c.upsert_user("zoe", "zoe").await;
        let current = c.stats().await.revision;
        let watch = |target: String, actor: &'static str, org: &'static str| async move {
            let mut a = AuditServiceClient::new(connect(&target).await.unwrap());
            a.watch_changes(pb::WatchChangesRequest {
                actor: actor.into(),
                org_id: org.into(),
                from_revision: current + 1,
            })
            .await
            .expect("watch")
            .into_inner()
        };
        let mut on_unix = watch(unix.clone(), "", "").await;
        let mut on_tcp = watch(tcp.clone(), "alice", "acme").await;

        // Quiet for well over the idle timeout: neither stream ends (on the old code both
        // ended with UNAVAILABLE when their connections were closed as idle).
        let (a, b) = tokio::join!(
            tokio::time::timeout(IDLE * 3, on_unix.message()),
            tokio::time::timeout(IDLE * 3, on_tcp.message()),
        );
        assert!(a.is_err(), "the Unix-socket watch ended while quiet: {a:?}");
        assert!(b.is_err(), "the TCP watch ended while quiet: {b:?}");

        // Meanwhile a connection with no stream open is closed as idle.
        let mut idle = TcpStream::connect(daemon.work.tcp).await.unwrap();
        idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        until_closed(&mut idle, "an idle HTTP/2 connection beside the watches").await;

        // The next change reaches both watches (over a new connection: the first one was
        // idle meanwhile).
        let revision = clients(&unix)
            .await
            .member
            .add_member(pb::AddMemberRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                user_id: "zoe".into(),
                role: "org_user".into(),
            })
            .await
            .expect("add member")
            .into_inner()
            .revision;
        for (what, s) in [("unix", &mut on_unix), ("tcp", &mut on_tcp)] {
            let event = tokio::time::timeout(PATIENCE, s.message())
                .await
                .unwrap_or_else(|_| panic!("{what}: no change within the wait"))
                .unwrap_or_else(|e| panic!("{what}: the stream failed: {e:?}"))
                .unwrap_or_else(|| panic!("{what}: the stream ended"));
            assert_eq!(event.revision, revision, "{what}");
        }
    });
}
