//! `warden serve` configuration: flags, then `WARDEN_*` environment variables, then a
//! TOML file, then built-in defaults — the first that sets a value wins.
//!
//! clap resolves flags over environment variables; this file layers the TOML file
//! and the defaults beneath them and produces one resolved [`ServeConfig`].

use crate::api::connections::ConnectionLimits;
use crate::api::listener::Listen;
use crate::api::logs::LogsConfig;
use crate::api::logs::decisions::{DecisionLogConfig, SubjectMode};
use crate::api::logs::rotate::Rotation;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATA: &str = "./data";
pub const DEFAULT_POLICIES: &str = "./policies";
pub const SOCKET_FILE_NAME: &str = "warden.sock";
pub const DEFAULT_TCP: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 50051));
/// Where clients look for the daemon by default: the default data directory's socket.
pub const DEFAULT_CONNECT: &str = warden_client::DEFAULT_CONNECT;

/// Flags of `warden serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data directory (directory database, default socket). [default: ./data]
    #[arg(long, env = "WARDEN_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Policy directory (model.conf, policy.csv), watched for changes. [default: ./policies]
    #[arg(long, env = "WARDEN_POLICIES", value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Listen address, repeatable: unix:PATH or tcp:IP:PORT. Replaces the defaults
    /// (unix:<data>/warden.sock and tcp:127.0.0.1:50051). The env var takes a comma list.
    #[arg(
        long = "listen",
        env = "WARDEN_LISTEN",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub listen: Vec<Listen>,
    /// Do not listen on any Unix socket.
    #[arg(long, env = "WARDEN_NO_UNIX")]
    pub no_unix: bool,
    /// Do not listen on any TCP address.
    #[arg(long, env = "WARDEN_NO_TCP")]
    pub no_tcp: bool,
    /// TOML file with defaults for these settings (keys: data, policies, listen,
    /// no_unix, no_tcp, demo, require_policy_tests, metrics, metrics_allow_remote, ext_authz,
    /// decision_log, decision_log_sample, decision_log_subjects, audit_log, log_rotate_bytes,
    /// log_rotate_keep, http, http_allow_remote, ui, tcp_token_sha256, tls_cert, tls_key,
    /// max_in_flight, min_revision_wait, max_revision_waiters, max_connections,
    /// handshake_timeout, header_read_timeout, keepalive_interval, keepalive_timeout,
    /// idle_timeout, insecure_remote, log_format, otlp_endpoint; a `[cluster]` table with urls,
    /// stream, creds, tls_ca, write_timeout; durations as strings like "2s"; `connect`, the
    /// client commands' key, is accepted and ignored). Relative paths in it are relative to the
    /// working directory.
    #[arg(long, env = "WARDEN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seed a demo directory (orgs, members, teams, apps) into an empty store; with --cluster,
    /// through the directory log, and only while the log is empty (one seed for N sidecars).
    #[arg(long, env = "WARDEN_DEMO")]
    pub demo: bool,
    /// Run the policy's tests (`<policies>/tests/*.yaml`) before serving it: a failing
    /// suite stops startup, and a reloaded policy whose tests fail is refused (the
    /// previous one keeps serving).
    #[arg(long, env = "WARDEN_REQUIRE_POLICY_TESTS")]
    pub require_policy_tests: bool,
    /// Serve Prometheus metrics (GET /metrics) and a probe (GET /healthz) over plain
    /// HTTP on tcp:IP:PORT, e.g. tcp:127.0.0.1:9090. Off by default; loopback only
    /// unless --metrics-allow-remote.
    #[arg(long, env = "WARDEN_METRICS", value_name = "ADDR")]
    pub metrics: Option<Listen>,
    /// Allow --metrics on a non-loopback address (the endpoint has no authentication).
    #[arg(long, env = "WARDEN_METRICS_ALLOW_REMOTE")]
    pub metrics_allow_remote: bool,
    /// Serve Envoy external authorization (envoy.service.auth.v3.Authorization) on the
    /// gRPC listeners, mapping HTTP requests to checks with this TOML file (see
    /// deploy/envoy/ext_authz.toml). Off by default.
    #[arg(long = "ext-authz", env = "WARDEN_EXT_AUTHZ", value_name = "FILE")]
    pub ext_authz: Option<PathBuf>,
    /// Write one JSON line per sampled decision (subject, org, resource, action, result,
    /// revision, policy hash) to FILE, rotated by size. Off by default.
    #[arg(long = "decision-log", env = "WARDEN_DECISION_LOG", value_name = "FILE")]
    pub decision_log: Option<PathBuf>,
    /// Fraction of decisions the decision log keeps, 0.0 to 1.0. [default: 1]
    #[arg(
        long = "decision-log-sample",
        env = "WARDEN_DECISION_LOG_SAMPLE",
        value_name = "RATE"
    )]
    pub decision_log_sample: Option<f64>,
    /// How the decision log writes subjects: `hash` (sha256 prefix) or `plain` user ids
    /// (anything that is not a user id, such as a token, is hashed anyway). [default: hash]
    #[arg(
        long = "decision-log-subjects",
        env = "WARDEN_DECISION_LOG_SUBJECTS",
        value_enum
    )]
    pub decision_log_subjects: Option<SubjectMode>,
    /// Write one JSON line per committed directory change (actor, kind, revision, the
    /// change with secrets redacted) to FILE, rotated by size. Off by default.
    #[arg(long = "audit-log", env = "WARDEN_AUDIT_LOG", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Rotate the decision and audit logs when a file would pass this many bytes.
    /// [default: 67108864]
    #[arg(
        long = "log-rotate-bytes",
        env = "WARDEN_LOG_ROTATE_BYTES",
        value_name = "BYTES"
    )]
    pub log_rotate_bytes: Option<u64>,
    /// Rotated files kept per log (FILE.1 … FILE.N). [default: 5]
    #[arg(long = "log-rotate-keep", env = "WARDEN_LOG_ROTATE_KEEP", value_name = "N")]
    pub log_rotate_keep: Option<u32>,
    /// Serve the HTTP/JSON gateway (every gRPC call as POST /<Service>/<Method> with a
    /// JSON body, and GET /openapi.json) on tcp:IP:PORT, e.g. tcp:127.0.0.1:8080. Off by
    /// default; loopback only unless --http-allow-remote.
    #[arg(long, env = "WARDEN_HTTP", value_name = "ADDR")]
    pub http: Option<Listen>,
    /// Allow --http on a non-loopback address.
    #[arg(long, env = "WARDEN_HTTP_ALLOW_REMOTE")]
    pub http_allow_remote: bool,
    /// Serve the web console (organizations, check playground, policy, activity) on
    /// tcp:IP:PORT, e.g. tcp:127.0.0.1:8081, with the HTTP/JSON gateway it calls on the same
    /// origin. Off by default; loopback only unless callers authenticate
    /// (--tcp-token-sha256) or --insecure-remote.
    #[arg(long, env = "WARDEN_UI", value_name = "ADDR")]
    pub ui: Option<Listen>,
    /// Require TCP callers to send `authorization: Bearer <token>`; the value is the hex
    /// SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`), never the token itself.
    /// Unix-socket callers and health checks are exempt.
    #[arg(long, env = "WARDEN_TCP_TOKEN_SHA256", value_name = "HEX")]
    pub tcp_token_sha256: Option<String>,
    /// Serve TCP listeners over TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "WARDEN_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "WARDEN_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Calls worked on at once, over all listeners; beyond it a call is refused at once
    /// with RESOURCE_EXHAUSTED (health checks exempt). [default: 1024]
    #[arg(long, env = "WARDEN_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Longest a call waits for the directory to reach its `min_revision` before failing
    /// with FAILED_PRECONDITION, e.g. 2s or 500ms. [default: 2s]
    #[arg(long, env = "WARDEN_MIN_REVISION_WAIT", value_name = "DURATION", value_parser = parse_duration)]
    pub min_revision_wait: Option<Duration>,
    /// Calls that may wait for a `min_revision` at once. A waiting call holds none of the
    /// --max-in-flight capacity; beyond this bound it is refused with RESOURCE_EXHAUSTED.
    /// [default: 128]
    #[arg(long, env = "WARDEN_MAX_REVISION_WAITERS", value_name = "N")]
    pub max_revision_waiters: Option<usize>,
    /// Open connections per listener (each gRPC listener and the HTTP/JSON gateway);
    /// beyond it a new connection is closed at once. [default: 1024]
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time a new connection gets to send its first request bytes (the HTTP/2 preface,
    /// TLS hello or HTTP/1 request line) before it is closed. [default: 10s]
    #[arg(long, env = "WARDEN_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Time an HTTP/1 client of the gateway gets to send a request's headers. [default: 10s]
    #[arg(long, env = "WARDEN_HEADER_READ_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub header_read_timeout: Option<Duration>,
    /// HTTP/2 keep-alive: ping a connection that has been quiet this long. [default: 60s]
    #[arg(long, env = "WARDEN_KEEPALIVE_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_interval: Option<Duration>,
    /// HTTP/2 keep-alive: close a connection whose ping is not answered within this.
    /// [default: 20s]
    #[arg(long, env = "WARDEN_KEEPALIVE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_timeout: Option<Duration>,
    /// Close a connection that has sent no request for this long (pings do not count).
    /// [default: 10m]
    #[arg(long, env = "WARDEN_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Allow a non-loopback TCP or HTTP/JSON listener without caller authentication
    /// (--tcp-token-sha256 or TLS client certificates). Anyone who reaches it may then
    /// read and write the directory as any actor; a warning is logged at every start.
    #[arg(long, env = "WARDEN_INSECURE_REMOTE")]
    pub insecure_remote: bool,
    /// Format of the daemon's own log on stderr: `text` (for people; colour only on a
    /// terminal) or `json` (one object per line with timestamp, level, target, fields and
    /// the span fields, for log collectors). The filter is `WARDEN_LOG`, else `RUST_LOG`,
    /// else `info`. [default: text]
    #[arg(long = "log-format", env = "WARDEN_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Export traces over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317): a span per
    /// RPC and per write transaction, joined to the caller's W3C `traceparent`. Off unless set
    /// here, in the config file or in OTEL_EXPORTER_OTLP_ENDPOINT (which comes last).
    #[arg(long = "otlp-endpoint", env = "WARDEN_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// `--cluster`, `--cluster-stream`, `--cluster-creds`, `--cluster-tls-ca` (shared with
    /// `warden cluster init`).
    #[command(flatten)]
    pub cluster: crate::cli::cluster::ClusterFlags,
    /// Longest a write waits for the log and for this sidecar to apply it before failing
    /// with UNAVAILABLE. [default: 5s]
    #[arg(long = "cluster-write-timeout", env = "WARDEN_CLUSTER_WRITE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub cluster_write_timeout: Option<Duration>,
    /// Publish a directory snapshot to the log's object store (`<stream>-snapshots`) at every
    /// N-th log entry, keep the 2 newest and purge the log behind the older one; 0 turns it
    /// off (the log then grows without bound). [default: 10000]
    #[arg(
        long = "cluster-snapshot-every",
        env = "WARDEN_CLUSTER_SNAPSHOT_EVERY",
        value_name = "N"
    )]
    pub cluster_snapshot_every: Option<u64>,
    /// When a snapshot lets the log be purged, keep every entry the log stored less than this
    /// long ago all the same, so a sidecar away for less (a restart, a rolling upgrade) catches
    /// up from the log instead of loading a snapshot; `0s` purges up to the older kept
    /// snapshot. [default: 10m]
    #[arg(long = "cluster-retain", env = "WARDEN_CLUSTER_RETAIN", value_name = "DURATION", value_parser = parse_duration)]
    pub cluster_retain: Option<Duration>,
}

/// The TOML file's `[cluster]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    urls: Option<Vec<String>>,
    stream: Option<String>,
    creds: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration_opt")]
    write_timeout: Option<Duration>,
    snapshot_every: Option<u64>,
    #[serde(default, deserialize_with = "duration_opt")]
    retain: Option<Duration>,
}

/// How the daemon writes its own log (`serve --log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// JSON lines.
    Json,
}

/// The TOML file's shape: every key optional, unknown keys rejected so that a typo
/// is an error rather than a silently ignored setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// The clients' key (`cli::connect`): accepted so one `warden.toml` can hold both; the
    /// daemon does not read it.
    #[allow(dead_code)]
    connect: Option<String>,
    data: Option<PathBuf>,
    policies: Option<PathBuf>,
    listen: Option<Vec<String>>,
    no_unix: Option<bool>,
    no_tcp: Option<bool>,
    demo: Option<bool>,
    require_policy_tests: Option<bool>,
    metrics: Option<String>,
    metrics_allow_remote: Option<bool>,
    ext_authz: Option<PathBuf>,
    decision_log: Option<PathBuf>,
    decision_log_sample: Option<f64>,
    decision_log_subjects: Option<SubjectMode>,
    audit_log: Option<PathBuf>,
    log_rotate_bytes: Option<u64>,
    log_rotate_keep: Option<u32>,
    http: Option<String>,
    http_allow_remote: Option<bool>,
    ui: Option<String>,
    tcp_token_sha256: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_in_flight: Option<usize>,
    #[serde(default, deserialize_with = "duration_opt")]
    min_revision_wait: Option<Duration>,
    max_revision_waiters: Option<usize>,
    max_connections: Option<usize>,
    #[serde(default, deserialize_with = "duration_opt")]
    handshake_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    header_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    keepalive_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    keepalive_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    idle_timeout: Option<Duration>,
    insecure_remote: Option<bool>,
    log_format: Option<LogFormat>,
    cluster: Option<ClusterFile>,
    otlp_endpoint: Option<String>,
}

/// A duration as written in flags and the TOML file: a whole number with a unit,
/// `ms`, `s`, `m` or `h` (`500ms`, `2s`, `10m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number with a unit, e.g. 2s, 500ms or 10m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{text:?}: unit must be ms, s, m or h, e.g. 2s")),
    };
    Ok(d)
}

fn duration_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
}

/// Fully resolved settings for one daemon run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub data: PathBuf,
    pub policies: PathBuf,
    /// Non-empty; `--no-unix`/`--no-tcp` already applied.
    pub listen: Vec<Listen>,
    pub demo: bool,
    /// Load policies through `policy::suite::load_dir_tested` (startup and reload).
    pub require_policy_tests: bool,
    /// Where to serve `/metrics` and `/healthz`; `None` serves neither.
    pub metrics: Option<SocketAddr>,
    /// The Envoy ext_authz mapping file; `None` serves no ext_authz.
    pub ext_authz: Option<PathBuf>,
    /// The decision and audit logs; each `None` when off.
    pub logs: LogsConfig,
    /// Where to serve the HTTP/JSON gateway; `None` serves none.
    pub http: Option<SocketAddr>,
    /// Where to serve the web console (with the gateway on the same origin); `None`: nowhere.
    pub ui: Option<SocketAddr>,
    /// SHA-256 of the bearer token TCP callers must present.
    pub tcp_token_sha256: Option<[u8; 32]>,
    /// PEM certificate chain and key for TLS on TCP listeners.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Bound on calls in flight.
    pub max_in_flight: usize,
    /// Longest `min_revision` wait.
    pub min_revision_wait: Duration,
    /// Bound on calls parked in a `min_revision` wait.
    pub max_revision_waiters: usize,
    /// Connection bounds and timeouts of every listener.
    pub connections: ConnectionLimits,
    /// Non-loopback listeners without caller authentication are allowed (`--insecure-remote`).
    pub insecure_remote: bool,
    /// The daemon's own log format on stderr.
    pub log_format: LogFormat,
    /// Cluster mode; `None` on a single node.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Where traces are exported (OTLP/gRPC); `None`: no tracing export at all.
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data = self
            .data
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let policies = self
            .policies
            .or(file.policies)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICIES));

        let listen = if !self.listen.is_empty() {
            self.listen
        } else if let Some(list) = file.listen {
            list.iter()
                .map(|s| s.parse::<Listen>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!(
                        "{}: listen",
                        self.config.as_deref().unwrap_or(Path::new("")).display()
                    )
                })?
        } else {
            vec![
                Listen::Unix(data.join(SOCKET_FILE_NAME)),
                Listen::Tcp(DEFAULT_TCP),
            ]
        };
        let no_unix = self.no_unix || file.no_unix.unwrap_or(false);
        let no_tcp = self.no_tcp || file.no_tcp.unwrap_or(false);
        let listen: Vec<Listen> = listen
            .into_iter()
            .filter(|l| match l {
                Listen::Unix(_) => !no_unix,
                Listen::Tcp(_) => !no_tcp,
            })
            .collect();
        if listen.is_empty() {
            bail!("nothing to listen on: every listen address is disabled by --no-unix/--no-tcp");
        }

        let metrics = match (self.metrics, file.metrics) {
            (Some(l), _) => Some(l),
            (None, Some(s)) => Some(s.parse::<Listen>().map_err(anyhow::Error::msg).with_context(|| {
                format!(
                    "{}: metrics",
                    self.config.as_deref().unwrap_or(Path::new("")).display()
                )
            })?),
            (None, None) => None,
        };
        let allow_remote = self.metrics_allow_remote || file.metrics_allow_remote.unwrap_or(false);
        let metrics = match metrics {
            None => None,
            Some(Listen::Unix(p)) => bail!(
                "--metrics unix:{}: metrics are served over TCP for Prometheus; use tcp:127.0.0.1:PORT",
                p.display()
            ),
            Some(Listen::Tcp(addr)) if !addr.ip().is_loopback() && !allow_remote => bail!(
                "--metrics tcp:{addr}: not a loopback address, and the metrics endpoint has no \
                 authentication; add --metrics-allow-remote if this is intended"
            ),
            Some(Listen::Tcp(addr)) => Some(addr),
        };
        let http = match (self.http, file.http) {
            (Some(l), _) => Some(l),
            (None, Some(s)) => Some(s.parse::<Listen>().map_err(anyhow::Error::msg).with_context(|| {
                format!(
                    "{}: http",
                    self.config.as_deref().unwrap_or(Path::new("")).display()
                )
            })?),
            (None, None) => None,
        };
        let http_allow_remote = self.http_allow_remote || file.http_allow_remote.unwrap_or(false);
        let http = match http {
            None => None,
            Some(Listen::Unix(p)) => bail!(
                "--http unix:{}: the HTTP/JSON gateway listens on TCP; use tcp:127.0.0.1:PORT",
                p.display()
            ),
            Some(Listen::Tcp(addr)) if !addr.ip().is_loopback() && !http_allow_remote => bail!(
                "--http tcp:{addr}: not a loopback address; add --http-allow-remote if this is intended"
            ),
            Some(Listen::Tcp(addr)) => Some(addr),
        };
        let ui = match (self.ui, file.ui) {
            (Some(l), _) => Some(l),
            (None, Some(s)) => Some(s.parse::<Listen>().map_err(anyhow::Error::msg).with_context(|| {
                format!(
                    "{}: ui",
                    self.config.as_deref().unwrap_or(Path::new("")).display()
                )
            })?),
            (None, None) => None,
        };
        let ui = match ui {
            None => None,
            Some(Listen::Unix(p)) => bail!(
                "--ui unix:{}: the console listens on TCP for a browser; use tcp:127.0.0.1:PORT",
                p.display()
            ),
            Some(Listen::Tcp(addr)) => Some(addr),
        };
        let rotation = Rotation {
            max_bytes: self
                .log_rotate_bytes
                .or(file.log_rotate_bytes)
                .unwrap_or(Rotation::default().max_bytes),
            keep: self
                .log_rotate_keep
                .or(file.log_rotate_keep)
                .unwrap_or(Rotation::default().keep),
        };
        if rotation.max_bytes < 4096 {
            bail!("--log-rotate-bytes {}: at least 4096", rotation.max_bytes);
        }
        if rotation.keep == 0 {
            bail!("--log-rotate-keep 0: keep at least 1 rotated file");
        }
        let sample = self
            .decision_log_sample
            .or(file.decision_log_sample)
            .unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample) {
            bail!("--decision-log-sample {sample}: a fraction from 0.0 to 1.0");
        }
        let logs = LogsConfig {
            decisions: self
                .decision_log
                .or(file.decision_log)
                .map(|path| DecisionLogConfig {
                    path,
                    sample,
                    subjects: self
                        .decision_log_subjects
                        .or(file.decision_log_subjects)
                        .unwrap_or_default(),
                    rotation,
                }),
            audit: self.audit_log.or(file.audit_log),
            rotation,
        };
        let tcp_token_sha256 = match self.tcp_token_sha256.or(file.tcp_token_sha256) {
            Some(hex_text) => Some(
                crate::api::auth::parse_token_sha256(&hex_text)
                    .map_err(|e| anyhow::anyhow!("--tcp-token-sha256: {e}"))?,
            ),
            None => None,
        };
        let tls = match (self.tls_cert.or(file.tls_cert), self.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
        };
        let insecure_remote = self.insecure_remote || file.insecure_remote.unwrap_or(false);
        // A listener others can reach with nothing to tell callers apart lets anyone read
        // and write the directory as any actor: refuse it unless explicitly accepted.
        if tcp_token_sha256.is_none() && !insecure_remote {
            let exposed = listen
                .iter()
                .filter_map(|l| match l {
                    Listen::Tcp(a) if !a.ip().is_loopback() => Some(format!("--listen tcp:{a}")),
                    _ => None,
                })
                .chain(
                    http.filter(|a| !a.ip().is_loopback())
                        .map(|a| format!("--http tcp:{a}")),
                )
                .chain(
                    ui.filter(|a| !a.ip().is_loopback())
                        .map(|a| format!("--ui tcp:{a}")),
                )
                .collect::<Vec<_>>();
            if !exposed.is_empty() {
                bail!(
                    "{}: not a loopback address, and callers are not authenticated: anyone who \
                     reaches it could read and write the directory as any actor. Set \
                     --tcp-token-sha256, listen on the Unix socket or 127.0.0.1 (e.g. a sidecar \
                     sharing the socket), or pass --insecure-remote if the network is trusted",
                    exposed.join(", ")
                );
            }
        }
        let cluster = resolve_cluster(
            self.cluster,
            self.cluster_write_timeout,
            self.cluster_snapshot_every,
            self.cluster_retain,
            file.cluster.unwrap_or_default(),
        )?;
        let demo = self.demo || file.demo.unwrap_or(false);
        Ok(ServeConfig {
            cluster,
            data,
            policies,
            listen,
            demo,
            require_policy_tests: self.require_policy_tests || file.require_policy_tests.unwrap_or(false),
            metrics,
            ext_authz: self.ext_authz.or(file.ext_authz),
            logs,
            http,
            ui,
            tcp_token_sha256,
            tls,
            max_in_flight: match self.max_in_flight.or(file.max_in_flight) {
                Some(0) => bail!("--max-in-flight must be at least 1"),
                Some(n) => n,
                None => crate::api::limits::DEFAULT_MAX_IN_FLIGHT,
            },
            min_revision_wait: self
                .min_revision_wait
                .or(file.min_revision_wait)
                .unwrap_or(crate::api::revision::MAX_WAIT),
            max_revision_waiters: match self.max_revision_waiters.or(file.max_revision_waiters) {
                Some(0) => bail!("--max-revision-waiters must be at least 1"),
                Some(n) => n,
                None => crate::api::limits::DEFAULT_MAX_REVISION_WAITERS,
            },
            connections: {
                let d = ConnectionLimits::default();
                let c = ConnectionLimits {
                    max_connections: self
                        .max_connections
                        .or(file.max_connections)
                        .unwrap_or(d.max_connections),
                    handshake_timeout: self
                        .handshake_timeout
                        .or(file.handshake_timeout)
                        .unwrap_or(d.handshake_timeout),
                    header_read_timeout: self
                        .header_read_timeout
                        .or(file.header_read_timeout)
                        .unwrap_or(d.header_read_timeout),
                    keepalive_interval: self
                        .keepalive_interval
                        .or(file.keepalive_interval)
                        .unwrap_or(d.keepalive_interval),
                    keepalive_timeout: self
                        .keepalive_timeout
                        .or(file.keepalive_timeout)
                        .unwrap_or(d.keepalive_timeout),
                    idle_timeout: self.idle_timeout.or(file.idle_timeout).unwrap_or(d.idle_timeout),
                };
                if c.max_connections == 0 {
                    bail!("--max-connections must be at least 1");
                }
                for (flag, v) in [
                    ("--handshake-timeout", c.handshake_timeout),
                    ("--header-read-timeout", c.header_read_timeout),
                    ("--keepalive-interval", c.keepalive_interval),
                    ("--keepalive-timeout", c.keepalive_timeout),
                    ("--idle-timeout", c.idle_timeout),
                ] {
                    if v.is_zero() {
                        bail!("{flag} must be longer than 0");
                    }
                }
                c
            },
            insecure_remote,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            // An empty value anywhere counts as unset.
            otlp_endpoint: [
                self.otlp_endpoint,
                file.otlp_endpoint,
                std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok(),
            ]
            .into_iter()
            .flatten()
            .map(|e| e.trim().to_string())
            .find(|e| !e.is_empty()),
        })
    }
}

/// The cluster settings: flags and env over the `[cluster]` table over the defaults. No URL
/// means a single node; other cluster settings without one are an error, not ignored.
fn resolve_cluster(
    flags: crate::cli::cluster::ClusterFlags,
    write_timeout: Option<Duration>,
    snapshot_every: Option<u64>,
    retain: Option<Duration>,
    file: ClusterFile,
) -> anyhow::Result<Option<crate::cluster::ClusterConfig>> {
    let crate::cli::cluster::ClusterFlags {
        cluster: urls,
        cluster_stream: stream,
        cluster_creds: creds,
        cluster_tls_ca: tls_ca,
    } = flags;
    let urls: Vec<String> = if !urls.is_empty() {
        urls
    } else {
        file.urls.unwrap_or_default()
    };
    let urls: Vec<String> = urls.into_iter().map(|u| u.trim().to_string()).collect();
    let stream = stream.or(file.stream);
    let creds = creds.or(file.creds);
    let tls_ca = tls_ca.or(file.tls_ca);
    let write_timeout = write_timeout.or(file.write_timeout);
    let snapshot_every = snapshot_every.or(file.snapshot_every);
    let retain = retain.or(file.retain);
    if urls.is_empty() {
        if stream.is_some()
            || creds.is_some()
            || tls_ca.is_some()
            || write_timeout.is_some()
            || snapshot_every.is_some()
            || retain.is_some()
        {
            bail!(
                "--cluster-stream, --cluster-creds, --cluster-tls-ca, --cluster-write-timeout, --cluster-snapshot-every and --cluster-retain need --cluster URL[,URL…]"
            );
        }
        return Ok(None);
    }
    if let Some(bad) = urls
        .iter()
        .find(|u| u.is_empty() || u.contains(char::is_whitespace))
    {
        bail!("--cluster: {bad:?} is not a NATS URL (e.g. nats://127.0.0.1:4222)");
    }
    let stream = stream.unwrap_or_else(|| crate::cluster::DEFAULT_STREAM.to_string());
    if stream.is_empty()
        || stream.len() > 64
        || !stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("--cluster-stream {stream:?}: 1 to 64 letters, digits, `-` or `_`");
    }
    let write_timeout = write_timeout.unwrap_or(crate::cluster::DEFAULT_WRITE_TIMEOUT);
    if write_timeout.is_zero() {
        bail!("--cluster-write-timeout must be longer than 0");
    }
    let snapshot_every = snapshot_every.unwrap_or(crate::cluster::DEFAULT_SNAPSHOT_EVERY);
    Ok(Some(crate::cluster::ClusterConfig {
        urls,
        stream,
        creds,
        tls_ca,
        write_timeout,
        snapshot_every,
        retain: retain.unwrap_or(crate::cluster::DEFAULT_RETAIN),
    }))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: invalid configuration", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn resolve(argv: &[&str]) -> anyhow::Result<ServeConfig> {
        let mut full = vec!["serve"];
        full.extend_from_slice(argv);
        T::try_parse_from(full)?.args.resolve()
    }

    #[test]
    fn defaults() {
        let c = resolve(&[]).unwrap();
        assert_eq!(c.data, PathBuf::from("./data"));
        assert_eq!(c.policies, PathBuf::from("./policies"));
        assert_eq!(
            c.listen,
            vec![
                Listen::Unix("./data/warden.sock".into()),
                Listen::Tcp(DEFAULT_TCP)
            ]
        );
    }

    #[test]
    fn cluster_settings_follow_the_usual_precedence_and_need_urls() {
        assert_eq!(resolve(&[]).unwrap().cluster, None, "a single node by default");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(
            &file,
            "[cluster]\nurls = [\"nats://a:4222\", \"nats://b:4222\"]\nstream = \"dir\"\nwrite_timeout = \"3s\"\nretain = \"1h\"\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = resolve(&["--config", f]).unwrap().cluster.unwrap();
        assert_eq!(c.urls, vec!["nats://a:4222", "nats://b:4222"]);
        assert_eq!(
            (c.stream.as_str(), c.write_timeout, c.retain),
            ("dir", Duration::from_secs(3), Duration::from_secs(3600))
        );
        let c = resolve(&[
            "--config",
            f,
            "--cluster",
            "nats://c:1,nats://d:2",
            "--cluster-stream",
            "other",
            "--cluster-retain",
            "0s",
        ])
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.urls, vec!["nats://c:1", "nats://d:2"]);
        assert_eq!(
            (c.stream.as_str(), c.write_timeout, c.retain),
            ("other", Duration::from_secs(3), Duration::ZERO)
        );
        let c = resolve(&["--cluster", "nats://c:1"]).unwrap().cluster.unwrap();
        assert_eq!(
            (c.stream.as_str(), c.write_timeout, c.retain),
            (
                crate::cluster::DEFAULT_STREAM,
                crate::cluster::DEFAULT_WRITE_TIMEOUT,
                crate::cluster::DEFAULT_RETAIN
            )
        );

        let e = resolve(&["--cluster-stream", "x"]).unwrap_err().to_string();
        assert!(e.contains("need --cluster"), "{e}");
        let e = resolve(&["--cluster-retain", "1m"]).unwrap_err().to_string();
        assert!(e.contains("need --cluster"), "{e}");
        let e = resolve(&["--cluster", "nats://c:1", "--cluster-stream", "a.b"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cluster-stream"), "{e}");
        // The demo seeds through the log in cluster mode (`cluster::demo`).
        let c = resolve(&["--cluster", "nats://c:1", "--demo"]).unwrap();
        assert!(c.demo && c.cluster.is_some());
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(
            &file,
            "data = \"/srv/w\"\npolicies = \"/etc/w\"\nlisten = [\"tcp:127.0.0.1:7000\"]\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();

        let c = resolve(&["--config", f]).unwrap();
        assert_eq!(c.data, PathBuf::from("/srv/w"));
        assert_eq!(c.listen, vec![Listen::Tcp("127.0.0.1:7000".parse().unwrap())]);

        let c = resolve(&["--config", f, "--policies", "p", "--listen", "unix:/tmp/x.sock"]).unwrap();
        assert_eq!(c.policies, PathBuf::from("p"));
        assert_eq!(c.data, PathBuf::from("/srv/w"));
        assert_eq!(c.listen, vec![Listen::Unix("/tmp/x.sock".into())]);
    }

    #[test]
    fn require_policy_tests_from_flag_or_file() {
        assert!(!resolve(&[]).unwrap().require_policy_tests);
        assert!(resolve(&["--require-policy-tests"]).unwrap().require_policy_tests);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "require_policy_tests = true\n").unwrap();
        let c = resolve(&["--config", file.to_str().unwrap()]).unwrap();
        assert!(c.require_policy_tests);
    }

    #[test]
    fn unknown_toml_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "polices = \"typo\"\n").unwrap();
        assert!(resolve(&["--config", file.to_str().unwrap()]).is_err());
    }

    #[test]
    fn the_clients_connect_key_is_accepted_in_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "connect = \"unix:/run/warden/warden.sock\"\ndemo = true\n").unwrap();
        assert!(resolve(&["--config", file.to_str().unwrap()]).unwrap().demo);
    }

    #[test]
    fn metrics_are_off_by_default_and_loopback_unless_allowed() {
        assert_eq!(resolve(&[]).unwrap().metrics, None);
        let c = resolve(&["--metrics", "tcp:127.0.0.1:9090"]).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9090".parse().unwrap()));
        let err = resolve(&["--metrics", "tcp:0.0.0.0:9090"]).unwrap_err();
        assert!(err.to_string().contains("--metrics-allow-remote"), "{err}");
        assert!(resolve(&["--metrics", "tcp:0.0.0.0:9090", "--metrics-allow-remote"]).is_ok());
        assert!(resolve(&["--metrics", "unix:/tmp/m.sock"]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "metrics = \"tcp:[::1]:9100\"\n").unwrap();
        let c = resolve(&["--config", file.to_str().unwrap()]).unwrap();
        assert_eq!(c.metrics, Some("[::1]:9100".parse().unwrap()));
    }

    #[test]
    fn disabling_kinds() {
        let c = resolve(&["--no-tcp", "--data", "/d"]).unwrap();
        assert_eq!(c.listen, vec![Listen::Unix("/d/warden.sock".into())]);
        assert!(resolve(&["--no-tcp", "--no-unix"]).is_err());
    }

    #[test]
    fn log_format_is_text_by_default_and_layered() {
        assert_eq!(resolve(&[]).unwrap().log_format, LogFormat::Text);
        assert_eq!(
            resolve(&["--log-format", "json"]).unwrap().log_format,
            LogFormat::Json
        );
        assert!(resolve(&["--log-format", "xml"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, "log_format = \"json\"\n").unwrap();
        let c = resolve(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let c = resolve(&["--config", path.to_str().unwrap(), "--log-format", "text"]).unwrap();
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn the_otlp_endpoint_is_layered_and_an_empty_one_is_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, "otlp_endpoint = \"http://file:4317\"\n").unwrap();
        let file = path.to_str().unwrap();
        let c = resolve(&["--config", file]).unwrap();
        assert_eq!(c.otlp_endpoint.as_deref(), Some("http://file:4317"));
        let c = resolve(&["--config", file, "--otlp-endpoint", "http://flag:4317"]).unwrap();
        assert_eq!(c.otlp_endpoint.as_deref(), Some("http://flag:4317"));
        let c = resolve(&["--config", file, "--otlp-endpoint", " "]).unwrap();
        assert_eq!(c.otlp_endpoint.as_deref(), Some("http://file:4317"));
    }

    #[test]
    fn logs_are_off_by_default_and_validated() {
        let c = resolve(&[]).unwrap();
        assert_eq!(c.logs, LogsConfig::default());
        let c = resolve(&[
            "--decision-log",
            "d.jsonl",
            "--decision-log-sample",
            "0.25",
            "--audit-log",
            "a.jsonl",
        ])
        .unwrap();
        let d = c.logs.decisions.unwrap();
        assert_eq!(
            (d.path, d.sample, d.subjects),
            (PathBuf::from("d.jsonl"), 0.25, SubjectMode::Hash)
        );
        assert_eq!(c.logs.audit, Some(PathBuf::from("a.jsonl")));
        assert!(resolve(&["--decision-log", "d", "--decision-log-sample", "1.5"]).is_err());
        assert!(resolve(&["--log-rotate-keep", "0"]).is_err());
        assert!(resolve(&["--log-rotate-bytes", "10"]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(
            &file,
            "decision_log = \"/var/log/d\"\ndecision_log_subjects = \"plain\"\nlog_rotate_keep = 2\next_authz = \"m.toml\"\n",
        )
        .unwrap();
        let c = resolve(&["--config", file.to_str().unwrap()]).unwrap();
        let d = c.logs.decisions.unwrap();
        assert_eq!(d.subjects, SubjectMode::Plain);
        assert_eq!(d.rotation.keep, 2);
        assert_eq!(c.ext_authz, Some(PathBuf::from("m.toml")));
    }

    #[test]
    fn http_is_off_by_default_and_loopback_only() {
        assert_eq!(resolve(&[]).unwrap().http, None);
        assert_eq!(resolve(&[]).unwrap().ui, None);
        let c = resolve(&["--ui", "tcp:127.0.0.1:8182"]).unwrap();
        assert_eq!(c.ui, Some("127.0.0.1:8182".parse().unwrap()));
        let remote = resolve(&["--ui", "tcp:0.0.0.0:8182"]).unwrap_err().to_string();
        assert!(remote.contains("--ui tcp:0.0.0.0:8182"), "{remote}");
        assert!(resolve(&["--ui", "tcp:0.0.0.0:8182", "--insecure-remote"]).is_ok());
        assert!(resolve(&["--ui", "unix:/tmp/u.sock"]).is_err());
        let c = resolve(&["--http", "tcp:127.0.0.1:8181"]).unwrap();
        assert_eq!(c.http, Some("127.0.0.1:8181".parse().unwrap()));
        assert!(resolve(&["--http", "tcp:0.0.0.0:8181"]).is_err());
        assert!(resolve(&["--http", "unix:/tmp/h.sock"]).is_err());
    }

    #[test]
    fn remote_listeners_need_a_token_or_insecure_remote() {
        let token = "--tcp-token-sha256=0000000000000000000000000000000000000000000000000000000000000000";
        let err = resolve(&["--listen", "tcp:0.0.0.0:50051"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--listen tcp:0.0.0.0:50051") && err.contains("--insecure-remote"),
            "{err}"
        );
        let err = resolve(&["--http", "tcp:[::]:8080", "--http-allow-remote"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--http tcp:[::]:8080"), "{err}");
        assert!(resolve(&["--listen", "tcp:0.0.0.0:50051", token]).is_ok());
        assert!(
            resolve(&["--listen", "tcp:0.0.0.0:50051", "--insecure-remote"])
                .unwrap()
                .insecure_remote
        );
        assert!(resolve(&["--listen", "tcp:127.0.0.1:50051"]).is_ok());
        assert!(resolve(&["--listen", "tcp:[::1]:50051"]).is_ok());
    }

    #[test]
    fn durations_and_connection_limits() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        let c = resolve(&[]).unwrap();
        assert_eq!(c.min_revision_wait, Duration::from_secs(2));
        assert_eq!(c.connections, ConnectionLimits::default());
        let c = resolve(&[
            "--min-revision-wait",
            "250ms",
            "--max-connections",
            "8",
            "--idle-timeout",
            "1m",
        ])
        .unwrap();
        assert_eq!(c.min_revision_wait, Duration::from_millis(250));
        assert_eq!(c.connections.max_connections, 8);
        assert_eq!(c.connections.idle_timeout, Duration::from_secs(60));
        assert!(resolve(&["--max-connections", "0"]).is_err());
        assert!(resolve(&["--handshake-timeout", "0s"]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(
            &file,
            "min_revision_wait = \"5s\"\nmax_revision_waiters = 3\nkeepalive_interval = \"30s\"\n",
        )
        .unwrap();
        let c = resolve(&["--config", file.to_str().unwrap()]).unwrap();
        assert_eq!(c.min_revision_wait, Duration::from_secs(5));
        assert_eq!(c.max_revision_waiters, 3);
        assert_eq!(c.connections.keepalive_interval, Duration::from_secs(30));
        std::fs::write(&file, "min_revision_wait = \"5 parsecs\"\n").unwrap();
        assert!(resolve(&["--config", file.to_str().unwrap()]).is_err());
    }
}
