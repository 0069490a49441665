//! `serve --metrics`: the Prometheus endpoint and the probe against the real daemon.
//! Checks and a reload must move the counters a dashboard would watch.

use crate::common;

use common::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden::client::Client;

/// A bare HTTP/1.1 GET: status code and body. The server closes the connection
/// because we ask it to, so reading to EOF gets the whole response.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

/// The value of the series whose line starts with `series ` exactly.
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
        .parse()
        .expect("a number")
}

#[test]
fn metrics_count_decisions_reloads_and_the_directory() {
    let metrics = free_port();
    let flag = format!("tcp:{metrics}");
    let daemon = Workdir::new().start_with(&["--demo", "--metrics", &flag]);
    let rt = runtime();
    rt.block_on(async {
        let (status, body) = get(metrics, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, _) = get(metrics, "/nope").await;
        assert_eq!(status, 404);

        let client = Client::connect(&daemon.work.unix_target())
            .await
            .expect("connect");
        assert!(
            client
                .can("alice", "acme", "apps/web", "app:write")
                .await
                .unwrap()
        );
        assert!(!client.can("dave", "acme", "apps/web", "app:write").await.unwrap());
        let batch = client
            .batch(&[
                ("bob", "acme", "apps/web", "app:read"),
                ("", "acme", "apps/web", "app:read"),
                ("dave", "acme", "apps/web", "app:delete"),
            ])
            .await
            .unwrap();
        assert!(
            batch[0].is_ok() && batch[1].is_err() && batch[2].is_ok(),
            "{batch:?}"
        );

        // A reload through the admin service (the watcher would count the same way).
        let mut admin = warden::api::pb::admin_service_client::AdminServiceClient::new(
            warden::api::client::connect(&daemon.work.unix_target())
                .await
                .unwrap(),
        );
        admin
            .reload_policy(warden::api::pb::ReloadPolicyRequest {})
            .await
            .expect("reload");

        let (status, body) = get(metrics, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(
            value(&body, "warden_decisions_total{result=\"allow\"}"),
            2.0,
            "{body}"
        );
        assert_eq!(
            value(&body, "warden_decisions_total{result=\"deny\"}"),
            2.0,
            "{body}"
        );
        // The empty subject is the caller's mistake, not an engine failure.
        assert_eq!(
            value(&body, "warden_decisions_total{result=\"error\"}"),
            0.0,
            "{body}"
        );
        assert_eq!(
            value(&body, "warden_decisions_total{result=\"invalid\"}"),
            1.0,
            "{body}"
        );
        // Every decision the engine made is in the histogram, and the buckets add up.
        let count = value(&body, "warden_check_duration_seconds_count");
        assert_eq!(
            count, 4.0,
            "two checks and two batch items reached the engine: {body}"
        );
        assert_eq!(
            value(&body, "warden_check_duration_seconds_bucket{le=\"+Inf\"}"),
            count
        );
        assert!(value(&body, "warden_check_duration_seconds_bucket{le=\"0.1\"}") <= count);
        assert!(body.contains("warden_check_duration_seconds_bucket{le=\"0.000001\"}"));
        assert!(
            value(&body, "warden_policy_reloads_succeeded_total") >= 1.0,
            "{body}"
        );
        assert_eq!(value(&body, "warden_policy_reloads_failed_total"), 0.0);
        assert!(value(&body, "warden_policy_last_success_timestamp_seconds") > 1.7e9);
        assert!(value(&body, "warden_directory_revision") >= 1.0, "{body}");
        assert_eq!(
            value(&body, "warden_directory_entries{kind=\"orgs\"}"),
            2.0,
            "{body}"
        );
        assert!(body.contains("# TYPE warden_check_duration_seconds histogram"));
    });
}

#[test]
fn metrics_are_off_unless_asked_for() {
    let daemon = Workdir::new().start();
    let logs = daemon.logs();
    assert!(logs.contains("listening"), "{logs}");
    assert!(!logs.contains("serving metrics"), "{logs}");
}
