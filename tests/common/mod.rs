//! Starting and stopping the real `warden` binary for daemon tests.
//!
//! Every daemon runs in its own temporary directory with a copy of the repository's
//! `policies/`, listens on a socket inside that directory and on a free TCP port, and
//! is killed if a test forgets to stop it. Waits are generous and only bound how long
//! a broken build takes to fail; nothing asserts timings.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Upper bound on waiting for a daemon to come up or go down.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// A tempdir laid out for a daemon: `policies/` (copied from the repository) and
/// `data/`, plus a free TCP port.
pub struct Workdir {
    pub dir: TempDir,
    pub tcp: SocketAddr,
    /// Extra environment for `warden serve` (e.g. `WARDEN_LOG=trace`), set last.
    pub env: Vec<(String, String)>,
    /// `RLIMIT_NOFILE` for `warden serve` (set in the child before exec), if not inherited.
    pub nofile_limit: Option<u64>,
}

impl Workdir {
    /// A workdir with a copy of the repository's `policies/`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        copy_dir(&source, &dir.path().join("policies"));
        Self {
            dir,
            tcp: free_port(),
            env: Vec::new(),
            nofile_limit: None,
        }
    }

    /// A workdir whose `policies/` holds exactly `files` (name, contents).
    pub fn with_policy_files(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).expect("create policies");
        for (name, text) in files {
            std::fs::write(policies.join(name), text).expect("write policy file");
        }
        Self {
            dir,
            tcp: free_port(),
            env: Vec::new(),
            nofile_limit: None,
        }
    }

    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket(&self) -> PathBuf {
        self.data().join("warden.sock")
    }

    pub fn unix_target(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    pub fn tcp_target(&self) -> String {
        format!("tcp:{}", self.tcp)
    }

    /// `warden serve` for this workdir; the default unix socket lands in `data/`.
    pub fn serve_command(&self) -> Command {
        let mut cmd = Command::new(WARDEN);
        cmd.current_dir(self.dir.path())
            .arg("serve")
            .arg("--data")
            .arg(self.data())
            .arg("--policies")
            .arg(self.policies())
            .arg("--listen")
            .arg(self.unix_target())
            .arg("--listen")
            .arg(self.tcp_target())
            .env("WARDEN_LOG", "debug")
            .env_remove("WARDEN_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(n) = self.nofile_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit(2), async-signal-safe, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Start the daemon and wait until it reports SERVING on both listeners.
    pub fn start(self) -> Daemon {
        self.start_with(&[])
    }

    /// [`Workdir::start`] with extra `serve` arguments (e.g. `--demo`), kept for restarts.
    pub fn start_with(self, extra: &[&str]) -> Daemon {
        let log = self.dir.path().join("warden.log");
        let mut daemon = Daemon {
            child: spawn_serve(&self, &log, extra),
            log,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            work: self,
        };
        daemon.wait_serving();
        daemon
    }
}

/// Spawn `warden serve` for `work`, appending its stderr to `log` (restarts keep the
/// earlier runs' logs).
fn spawn_serve(work: &Workdir, log: &Path, extra: &[impl AsRef<std::ffi::OsStr>]) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    work.serve_command()
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn warden")
}

/// A running `warden serve`, killed on drop.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    /// Extra `serve` arguments, reused by [`Daemon::restart`].
    extra: Vec<String>,
    pub work: Workdir,
}

impl Daemon {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// Wait for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "warden did not exit; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "warden exited with {status}; logs:\n{}",
            self.logs()
        );
    }

    /// SIGKILL: no shutdown code runs, as in a power cut of the process.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit();
    }

    /// Start the daemon again in the same workdir (after [`stop`](Self::stop) or
    /// [`kill9`](Self::kill9)) and wait until it serves.
    pub fn restart(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(Some(_))),
            "restart needs the previous daemon to have exited"
        );
        self.child = spawn_serve(&self.work, &self.log, &self.extra);
        self.wait_serving();
    }

    fn wait_serving(&mut self) {
        let rt = runtime();
        let deadline = Instant::now() + PATIENCE;
        for target in [self.work.unix_target(), self.work.tcp_target()] {
            loop {
                if let Some(status) = self.child.try_wait().expect("try_wait") {
                    panic!("warden exited early with {status}; logs:\n{}", self.logs());
                }
                if rt.block_on(health(&target, "")) == Some(ServingStatus::Serving) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{target} never reported SERVING; logs:\n{}",
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Health of `service` at `target`, or `None` if the daemon cannot be reached.
pub async fn health(target: &str, service: &str) -> Option<ServingStatus> {
    let channel = warden::api::client::connect(target).await.ok()?;
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(resp.into_inner().status).ok()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr")
}

fn copy_dir(from: &Path, to: &Path) {
    assert!(
        from.is_dir(),
        "{} is missing: daemon tests copy the repository's policies",
        from.display()
    );
    std::fs::create_dir_all(to).expect("create policies copy");
    for entry in std::fs::read_dir(from).expect("read policies") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy policy file");
        }
    }
}

/// Run `cmd` expecting it to exit by itself; kill it and fail if it outlives
/// [`PATIENCE`]. Returns the exit status and stderr.
pub fn run_to_exit(cmd: &mut Command) -> (ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warden");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warden was expected to exit but kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status, stderr)
}

pub mod cluster;
pub mod directory;
pub mod proxy;
pub mod tmpfs;
