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
        for probe in ["/healthz", "/readyz", "/livez"] {
            let (status, body) = get(metrics, probe).await;
            assert_eq!((status, body.as_str()), (200, "ok\n"), "{probe}");
        }
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
        // Bounds are written as Go's client writes them (`1e-06`, not `0.000001`).
        assert!(body.contains("warden_check_duration_seconds_bucket{le=\"1e-06\"}"));
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

        // Per RPC, by method and code, counted by the server's layer.
        let check_ok = "method=\"/warden.v1.AuthzService/Check\",code=\"OK\"";
        assert_eq!(
            value(&body, &format!("warden_grpc_requests_total{{{check_ok}}}")),
            2.0,
            "{body}"
        );
        assert_eq!(
            value(
                &body,
                &format!("warden_grpc_request_duration_seconds_count{{{check_ok}}}")
            ),
            2.0
        );
        assert_eq!(
            value(
                &body,
                &format!("warden_grpc_request_duration_seconds_bucket{{{check_ok},le=\"+Inf\"}}")
            ),
            2.0
        );
        assert_eq!(
            value(
                &body,
                "warden_grpc_requests_total{method=\"/warden.v1.AuthzService/BatchCheck\",code=\"OK\"}"
            ),
            1.0,
            "{body}"
        );
        assert_eq!(value(&body, "warden_grpc_in_flight"), 0.0);
        assert_eq!(value(&body, "warden_grpc_rejected_total"), 0.0);

        // The process as any Prometheus client library reports it, and the build.
        let fds = value(&body, "process_open_fds");
        assert!(fds >= 3.0 && fds <= value(&body, "process_max_fds"), "{body}");
        assert!(value(&body, "process_resident_memory_bytes") > 1e6, "{body}");
        assert!(value(&body, "process_cpu_seconds_total") > 0.0, "{body}");
        assert!(
            body.contains("# TYPE process_cpu_seconds_total counter"),
            "{body}"
        );
        assert_eq!(
            value(
                &body,
                &format!("warden_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))
            ),
            1.0,
            "{body}"
        );
    });
}

/// Every family a dashboard or alert needs, by the name a parser gives it.
const FAMILIES: [&str; 19] = [
    "warden_decisions_total",
    "warden_check_duration_seconds",
    "warden_policy_reloads_succeeded_total",
    "warden_policy_reloads_failed_total",
    "warden_policy_last_success_timestamp_seconds",
    "warden_policy_last_reload_failed",
    "warden_policy_watcher_up",
    "warden_policy_watch_restarts_total",
    "warden_directory_revision",
    "warden_directory_entries",
    "warden_store_write_duration_seconds",
    "warden_decision_log_dropped_total",
    "warden_build_info",
    "warden_grpc_in_flight",
    "warden_grpc_rejected_total",
    "warden_grpc_requests_total",
    "warden_grpc_request_duration_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
];

/// `/metrics` through a Prometheus text-format parser (the `prometheus-parse` crate).
fn parse(body: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

/// The cumulative buckets of the histogram `name` whose labels include `labels`.
fn buckets(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name}{labels:?}"));
    match &sample.value {
        prometheus_parse::Value::Histogram(b) => b.iter().map(|b| (b.less_than, b.count)).collect(),
        other => panic!("{name}: not a histogram: {other:?}"),
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_writes_are_timed_by_outcome() {
    let metrics = free_port();
    let flag = format!("tcp:{metrics}");
    let daemon = Workdir::new().start_with(&["--demo", "--metrics", &flag]);
    runtime().block_on(async {
        let committed = "warden_store_write_duration_seconds_count{outcome=\"committed\"}";
        let refused = "warden_store_write_duration_seconds_count{outcome=\"refused\"}";
        let (_, before) = get(metrics, "/metrics").await;
        // The demo's seed went through the same write path.
        assert!(value(&before, committed) >= 1.0, "{before}");
        assert_eq!(value(&before, refused), 0.0, "{before}");

        let mut c = crate::common::directory::clients(&daemon.work.unix_target()).await;
        let team = |actor: &str| warden::api::pb::CreateTeamRequest {
            actor: actor.into(),
            org_id: "acme".into(),
            team_id: "timed".into(),
            name: "Timed".into(),
        };
        c.team
            .create_team(team("alice"))
            .await
            .expect("alice creates a team");
        // dave is an org user: refused inside the transaction, which is still timed.
        let e = c.team.create_team(team("dave")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        assert!(
            Client::connect(&daemon.work.unix_target())
                .await
                .unwrap()
                .can("alice", "acme", "apps/web", "app:read")
                .await
                .unwrap()
        );

        let (_, body) = get(metrics, "/metrics").await;
        assert_eq!(value(&body, committed), value(&before, committed) + 1.0, "{body}");
        assert_eq!(value(&body, refused), 1.0, "{body}");

        let scrape = parse(&body);
        for family in FAMILIES {
            assert!(scrape.docs.contains_key(family), "no HELP for {family}: {body}");
        }
        // Every histogram the parser found: bounds rise, cumulative counts never fall, the
        // last bucket is +Inf and equals the series' _count.
        let mut seen = 0;
        for s in &scrape.samples {
            let prometheus_parse::Value::Histogram(b) = &s.value else {
                continue;
            };
            seen += 1;
            assert!(b.windows(2).all(|w| w[0].less_than < w[1].less_than), "{s:?}");
            assert!(b.windows(2).all(|w| w[0].count <= w[1].count), "{s:?}");
            let last = b.last().expect("buckets");
            assert_eq!(last.less_than, f64::INFINITY, "{s:?}");
            let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            labels.sort();
            // The text's label order is the encoder's; find the _count line by its labels.
            let count = body
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{}_count", s.metric)))
                .find(|rest| {
                    let (set, _) = rest.rsplit_once(' ').unwrap();
                    let mut have: Vec<String> = set
                        .trim_start_matches('{')
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect();
                    have.sort();
                    have == labels
                })
                .and_then(|rest| rest.rsplit_once(' ')?.1.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no _count for {s:?}"));
            assert_eq!(last.count, count, "{s:?}");
        }
        assert!(seen >= 5, "check, per-RPC and write histograms: {seen}");
        let write = buckets(
            &scrape,
            "warden_store_write_duration_seconds",
            &[("outcome", "refused")],
        );
        assert_eq!(write.len(), 17, "16 bounds and +Inf: {write:?}");
        assert_eq!(write[0].0, 0.0001);
        assert_eq!(write[15].0, 10.0);
        assert_eq!(write[16].1, 1.0);
        let check = buckets(&scrape, "warden_check_duration_seconds", &[]);
        assert_eq!(check[0].0, 1e-6);
        assert!(check[16].1 >= 1.0);
    });
}

#[test]
fn metrics_are_off_unless_asked_for() {
    let daemon = Workdir::new().start();
    let logs = daemon.logs();
    assert!(logs.contains("listening"), "{logs}");
    assert!(!logs.contains("serving metrics"), "{logs}");
}

#[test]
fn calls_in_flight_and_refused_calls_are_counted_by_method_and_code() {
    use warden::api::pb::{CheckRequest, authz_service_client::AuthzServiceClient};
    let metrics = free_port();
    let flag = format!("tcp:{metrics}");
    let daemon = Workdir::new().start_with(&[
        "--demo",
        "--metrics",
        &flag,
        "--max-revision-waiters",
        "1",
        "--min-revision-wait",
        "3s",
    ]);
    let rt = runtime();
    rt.block_on(async {
        let channel = warden::api::client::connect(&daemon.work.unix_target())
            .await
            .unwrap();
        let far = CheckRequest {
            subject: "alice".into(),
            org: "acme".into(),
            resource: "apps/web".into(),
            action: "app:read".into(),
            min_revision: 1_000_000_000,
            ..Default::default()
        };
        // One call waits for a revision that will not come: in flight until its wait ends.
        let waiter = tokio::spawn({
            let mut c = AuthzServiceClient::new(channel.clone());
            let far = far.clone();
            async move { c.check(far).await }
        });
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let (_, body) = get(metrics, "/metrics").await;
            if value(&body, "warden_grpc_in_flight") >= 1.0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the waiter never showed: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The only waiter's place is taken: a second such call is refused at once.
        let refused = AuthzServiceClient::new(channel.clone())
            .check(far)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let timed_out = waiter.await.unwrap().unwrap_err();
        assert_eq!(timed_out.code(), tonic::Code::FailedPrecondition);

        let (_, body) = get(metrics, "/metrics").await;
        let series = |code: &str| {
            format!("warden_grpc_requests_total{{method=\"/warden.v1.AuthzService/Check\",code=\"{code}\"}}")
        };
        assert_eq!(value(&body, &series("RESOURCE_EXHAUSTED")), 1.0, "{body}");
        assert_eq!(value(&body, &series("FAILED_PRECONDITION")), 1.0, "{body}");
        assert_eq!(value(&body, "warden_grpc_rejected_total"), 1.0, "{body}");
        assert_eq!(value(&body, "warden_grpc_in_flight"), 0.0, "{body}");
    });
}
