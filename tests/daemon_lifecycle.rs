//! The daemon's life cycle as an operator sees it: it refuses to start on a broken
//! policy, reports health on both listeners, shuts down cleanly on SIGTERM, replaces
//! a stale socket file and never steals a live daemon's socket.

use crate::common;

use common::{Daemon, Workdir, health, runtime};
use tonic_health::pb::health_check_response::ServingStatus;

#[test]
fn broken_policy_is_fatal_before_any_listener_opens() {
    let work = Workdir::with_policy_files(&[
        ("model.conf", "this is not a casbin model\n"),
        ("policy.csv", "p, admin\n"),
    ]);
    let (status, stderr) = common::run_to_exit(&mut work.serve_command());

    assert!(!status.success(), "exit status {status}");
    assert!(
        stderr.contains("model.conf"),
        "the error should name the file:\n{stderr}"
    );
    assert!(!work.socket().exists(), "no socket may be created");
    assert!(
        std::net::TcpStream::connect(work.tcp).is_err(),
        "no TCP port may be opened"
    );
}

#[test]

fn reports_serving_on_unix_socket_and_tcp() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        for service in ["", "warden.v1.AuthzService", "warden.v1.AdminService"] {
            assert_eq!(
                rt.block_on(health(&target, service)),
                Some(ServingStatus::Serving),
                "{target} {service:?}"
            );
        }
    }
}

#[test]

fn sigterm_exits_zero_and_removes_the_socket() {
    let mut daemon = Workdir::new().start();
    assert!(daemon.work.socket().exists());
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    assert!(status.success(), "exit status {status}; logs:\n{}", daemon.logs());
    assert!(!daemon.work.socket().exists(), "socket file left behind");
}

#[test]

fn sigint_also_shuts_down_cleanly() {
    let mut daemon = Workdir::new().start();
    daemon.signal(libc::SIGINT);
    let status = daemon.wait_exit();
    assert!(status.success(), "exit status {status}; logs:\n{}", daemon.logs());
    assert!(!daemon.work.socket().exists(), "socket file left behind");
}

#[test]

fn stale_socket_file_is_replaced() {
    let work = Workdir::new();
    std::fs::create_dir_all(work.data()).expect("data dir");
    // A socket file whose listener is gone: what a crashed daemon leaves behind.
    drop(std::os::unix::net::UnixListener::bind(work.socket()).expect("bind stale socket"));
    assert!(work.socket().exists());

    let daemon = work.start();
    assert_eq!(
        runtime().block_on(health(&daemon.work.unix_target(), "")),
        Some(ServingStatus::Serving)
    );
}

#[test]

fn live_daemon_socket_is_not_stolen() {
    let first = Workdir::new().start();

    // A second daemon pointed at the first one's socket, with its own TCP port.
    let second = Workdir::new();
    let (status, stderr) = common::run_to_exit(&mut second_daemon(&first, &second));
    assert!(!status.success(), "second daemon started");
    assert!(stderr.contains("another process is serving"), "{stderr}");

    assert_eq!(
        runtime().block_on(health(&first.work.unix_target(), "")),
        Some(ServingStatus::Serving),
        "first daemon must keep serving"
    );
}

fn second_daemon(first: &Daemon, second: &Workdir) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::WARDEN);
    cmd.arg("serve")
        .arg("--data")
        .arg(second.data())
        .arg("--policies")
        .arg(second.policies())
        .arg("--listen")
        .arg(first.work.unix_target())
        .arg("--listen")
        .arg(second.tcp_target())
        .env_remove("WARDEN_CONFIG");
    cmd
}

#[test]

fn sigterm_lets_in_flight_calls_finish() {
    let mut daemon = Workdir::new().start();
    let target = daemon.work.unix_target();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let channel = rt
        .block_on(warden::api::client::connect(&target))
        .expect("connect");
    // A check for a revision the directory never reaches stays in flight for the
    // server's whole min_revision wait, then fails with FAILED_PRECONDITION. If
    // shutdown cut it off, the client would see UNAVAILABLE or a broken stream.
    let call = rt.spawn(async move {
        warden::api::pb::authz_service_client::AuthzServiceClient::new(channel)
            .check(warden::api::pb::CheckRequest {
                subject: "alice".into(),
                org: "acme".into(),
                resource: "org".into(),
                action: "org:read".into(),
                min_revision: u64::MAX,
                explain: false,
            })
            .await
    });
    // Let the call reach the server (it then waits there for seconds) before asking
    // the server to stop.
    std::thread::sleep(std::time::Duration::from_millis(500));
    daemon.signal(libc::SIGTERM);

    let outcome = rt.block_on(call).expect("client task");
    let status = outcome.expect_err("the directory never reaches u64::MAX");
    assert_eq!(
        status.code(),
        tonic::Code::FailedPrecondition,
        "in-flight call was cut off: {status:?}; logs:\n{}",
        daemon.logs()
    );
    assert!(daemon.wait_exit().success());
}

#[test]
fn a_fresh_directory_gets_the_embedded_default_policies() {
    let work = Workdir::with_policy_files(&[]);
    std::fs::remove_dir_all(work.policies()).expect("no policies dir");
    let daemon = work.start();
    for f in ["model.conf", "policy.csv", "engine.toml"] {
        let written = std::fs::read_to_string(daemon.work.policies().join(f)).expect("written");
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("policies")
                .join(f),
        )
        .expect("shipped");
        assert_eq!(written, shipped, "{f}");
    }
}
