//! `warden.v1.AdminService`: policy status and reload, directory statistics, index check,
//! directory digest and online snapshots.

use crate::api::pb;
use crate::api::policy_state::{PolicyStatus, WatcherState};
use crate::api::reload::{PolicyReloader, Trigger};
use crate::engine::Engine;
use crate::engine::index::DirectoryIndex;
use crate::store::{DirectoryDigest, IndexCheck};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Directory sizes that only the store can count (the decision index holds orgs and
/// memberships but not users, teams or apps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryCounts {
    pub users: u64,
    pub orgs: u64,
    pub memberships: u64,
    pub teams: u64,
    pub apps: u64,
}

/// The store's side of `GetStats`. Until a store is attached the daemon reports only
/// what the index knows, and leaves the other counts absent rather than zero.
pub trait DirectoryStats: Send + Sync {
    fn counts(&self) -> Result<DirectoryCounts, String>;

    /// Compare `live` with an index rebuilt from the directory (`CheckIndex`).
    fn check_index(&self, _live: &DirectoryIndex) -> Result<IndexCheck, String> {
        Err("no directory store is attached".into())
    }

    /// The directory's digest and the revision it reflects (`DirectoryDigest`).
    fn digest(&self) -> Result<DirectoryDigest, String> {
        Err("no directory store is attached".into())
    }

    /// The write-transaction latencies by outcome (`/metrics`); `None` without a store.
    fn write_times(&self) -> Option<Vec<crate::store::WriteTimesSnapshot>> {
        None
    }

    /// An online snapshot, JSON, and its revision (`Snapshot`). `policy` is the serving
    /// policy's hash.
    fn snapshot(&self, _policy: String) -> Result<(u64, Vec<u8>), String> {
        Err("no directory store is attached".into())
    }
}

/// Largest `SnapshotChunk`: well under gRPC's default 4 MiB message limit.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// The admin service.
#[derive(Clone)]
pub struct Admin {
    reloader: Arc<PolicyReloader>,
    engine: Arc<Engine>,
    stats: Option<Arc<dyn DirectoryStats>>,
    /// One `CheckIndex` at a time: each costs a startup load of CPU and memory, so
    /// concurrent callers queue here (a Tokio mutex: held across the blocking task's
    /// `.await`) instead of running side by side.
    index_checks: Arc<tokio::sync::Mutex<()>>,
    /// The decision counters `GetDecisionCounters` reads; absent in tests of the admin
    /// service without a daemon around it (then the call is UNAVAILABLE).
    metrics: Option<Arc<crate::api::metrics::Metrics>>,
    /// Cluster mode: shown in the status.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The last minutes of the decision counters, sampled in the background;
    /// `GetDecisionCounters` returns them as `history` (empty without).
    history: Option<Arc<crate::api::counter_history::CounterHistory>>,
}

impl Admin {
    pub fn new(
        reloader: Arc<PolicyReloader>,
        engine: Arc<Engine>,
        stats: Option<Arc<dyn DirectoryStats>>,
    ) -> Self {
        Self {
            reloader,
            engine,
            stats,
            index_checks: Arc::new(tokio::sync::Mutex::new(())),
            metrics: None,
            cluster: None,
            history: None,
        }
    }

    /// Serve `GetDecisionCounters` from `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::api::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Return `history`'s samples with `GetDecisionCounters`.
    pub fn with_counter_history(mut self, history: Arc<crate::api::counter_history::CounterHistory>) -> Self {
        self.history = Some(history);
        self
    }

    /// Show this sidecar's position in the directory log in the status.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    fn status_pb(&self, s: PolicyStatus) -> pb::PolicyStatus {
        let mut out = to_pb(s);
        out.cluster = self.cluster.as_ref().map(|c| cluster_pb(&c.status()));
        out
    }

    pub fn into_server(self) -> pb::admin_service_server::AdminServiceServer<Self> {
        pb::admin_service_server::AdminServiceServer::new(self)
    }
}

fn cluster_pb(s: &crate::cluster::ClusterStatus) -> pb::ClusterStatus {
    pb::ClusterStatus {
        stream: s.stream.clone(),
        applied_seq: s.applied_seq,
        log_last_seq: s.log_last_seq,
        lag: s.lag(),
        log_reachable: s.log_reachable,
        halted: s.halted.clone().unwrap_or_default(),
        refused_entries: s.refused_entries,
        epoch_hash: s.epoch_hash.clone(),
        epoch_seq: s.epoch_seq,
        policy_drift: s.policy_drift.clone().unwrap_or_default(),
        storage_error: s.storage_error.clone().unwrap_or_default(),
    }
}

fn to_pb(s: PolicyStatus) -> pb::PolicyStatus {
    pb::PolicyStatus {
        policy_dir: s.dir.display().to_string(),
        files: s.files.iter().map(|f| f.display().to_string()).collect(),
        content_hash: s.hash,
        loaded_at_unix_ms: s.loaded_at_unix_ms,
        last_reload_error: s.last_error.unwrap_or_default(),
        last_reload_error_at_unix_ms: s.last_error_at_unix_ms,
        reloads_succeeded: s.reloads_succeeded,
        reloads_failed: s.reloads_failed,
        watcher: s.watcher.name().into(),
        watcher_detail: match &s.watcher {
            WatcherState::Off => String::new(),
            WatcherState::Watching(dir) => dir.display().to_string(),
            WatcherState::Failed(e) => e.clone(),
        },
        watch_restarts: s.watch_restarts,
        cluster: None,
        warnings: s.warnings,
    }
}

/// Largest `policy.csv` a preview takes, and largest file `GetPolicyFiles` returns whole.
const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// Compile `policy_csv` beside the serving directory's other files and compare it with the
/// serving policy over the live index (`policy::diff`). Nothing is written where the daemon
/// reads: the files are copied into a private temporary directory.
fn preview(
    dir: &std::path::Path,
    engine: &Engine,
    policy_csv: &str,
    actions: &[String],
) -> Result<pb::PreviewPolicyResponse, Status> {
    use crate::policy::diff;
    let tmp = tempfile::tempdir().map_err(|e| Status::internal(format!("preview directory: {e}")))?;
    for name in ["model.conf", "engine.toml", "limits.toml"] {
        let from = dir.join(name);
        if from.exists() {
            std::fs::copy(&from, tmp.path().join(name))
                .map_err(|e| Status::internal(format!("reading {}: {e}", from.display())))?;
        }
    }
    std::fs::write(tmp.path().join("policy.csv"), policy_csv)
        .map_err(|e| Status::internal(format!("preview directory: {e}")))?;
    let new = match crate::policy::load_dir(tmp.path()) {
        Ok(p) => Arc::new(p),
        Err(errors) => {
            // Name the files as the operator knows them, not by the temporary path.
            let errors = errors
                .0
                .into_iter()
                .map(|e| {
                    let file = std::path::Path::new(&e.file)
                        .file_name()
                        .map_or(e.file.clone(), |n| n.to_string_lossy().into_owned());
                    format!("{file}:{}: {}", e.line, e.reason)
                })
                .collect();
            return Ok(pb::PreviewPolicyResponse {
                errors,
                ..Default::default()
            });
        }
    };
    let old = engine.policy();
    let index = engine.index().clone();
    let space = diff::RequestSpace::new(&old, &new, &index, actions);
    if space.len() > diff::DEFAULT_LIMIT {
        return Err(Status::failed_precondition(format!(
            "{} requests to compare, more than {}; preview with `warden policy diff --limit` on the host",
            space.len(),
            diff::DEFAULT_LIMIT
        )));
    }
    let report = diff::diff(old, new, index, &space);
    // The roles as the directory holds them now: one shared read of the live index.
    let groups = {
        let directory = engine.index().read();
        flip_groups(&report.changes, |org, subject| {
            directory.role_of(org, subject).map(str::to_string)
        })
    };
    Ok(pb::PreviewPolicyResponse {
        errors: Vec::new(),
        compared: report.compared,
        newly_allowed: report.newly_allowed() as u64,
        newly_denied: report.newly_denied() as u64,
        groups,
        summary: report.summary(),
    })
}

/// What a stranger's flips are grouped under: the request space adds one non-member per org.
const NOT_A_MEMBER: &str = "(not a member)";

/// Flips grouped by the subject's org role (`role_of`), the action and the direction, with up
/// to three examples each; largest first, then by role, action and direction, so the same
/// edit over the same directory always reads the same.
fn flip_groups(
    changes: &[crate::policy::diff::Change],
    role_of: impl Fn(&str, &str) -> Option<String>,
) -> Vec<pb::FlipGroup> {
    let mut groups: std::collections::BTreeMap<(String, String, bool), pb::FlipGroup> = Default::default();
    for c in changes {
        let role = role_of(&c.org, &c.subject).unwrap_or_else(|| NOT_A_MEMBER.to_string());
        let g = groups
            .entry((role.clone(), c.action.clone(), c.newly_allowed()))
            .or_insert_with(|| pb::FlipGroup {
                direction: if c.newly_allowed() {
                    "DENY→ALLOW"
                } else {
                    "ALLOW→DENY"
                }
                .into(),
                action: c.action.clone(),
                role,
                ..Default::default()
            });
        g.count += 1;
        if g.examples.len() < 3 {
            g.examples
                .push(format!("{} {} {} in {}", c.subject, c.action, c.resource, c.org));
        }
    }
    // The map's order (role, action, direction) breaks ties; the sort is stable.
    let mut groups: Vec<pb::FlipGroup> = groups.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for Admin {
    async fn get_policy_files(
        &self,
        _request: Request<pb::GetPolicyFilesRequest>,
    ) -> Result<Response<pb::GetPolicyFilesResponse>, Status> {
        let status = self.reloader.state().snapshot();
        let mut files = Vec::new();
        for path in &status.files {
            let text = std::fs::read(path)
                .map_err(|e| Status::unavailable(format!("reading {}: {e}", path.display())))?;
            if text.len() > MAX_POLICY_BYTES {
                return Err(Status::failed_precondition(format!(
                    "{}: {} bytes, more than the {MAX_POLICY_BYTES} a console shows",
                    path.display(),
                    text.len()
                )));
            }
            files.push(pb::PolicyFile {
                name: path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                text: String::from_utf8_lossy(&text).into_owned(),
            });
        }
        Ok(Response::new(pb::GetPolicyFilesResponse {
            files,
            content_hash: status.hash,
        }))
    }

    async fn get_decision_counters(
        &self,
        request: Request<pb::GetDecisionCountersRequest>,
    ) -> Result<Response<pb::DecisionCounters>, Status> {
        use crate::api::counter_history;
        let after = request.into_inner().history_after_unix_ms;
        let metrics = self
            .metrics
            .as_ref()
            .ok_or_else(|| Status::unavailable("no decision counters in this server"))?;
        let now = counter_history::read(metrics);
        let history = self
            .history
            .as_ref()
            .map(|h| h.since(after))
            .unwrap_or_default()
            .into_iter()
            .map(|s| pb::DecisionSample {
                at_unix_ms: s.at_unix_ms,
                decisions: s.decisions,
                timed: s.timed,
                engine_time_ns_sum: s.engine_time_ns_sum,
            })
            .collect();
        Ok(Response::new(pb::DecisionCounters {
            decisions: now.decisions,
            timed: now.timed,
            engine_time_ns_sum: now.engine_time_ns_sum,
            at_unix_ms: now.at_unix_ms,
            history,
            history_interval_ms: u32::try_from(counter_history::INTERVAL.as_millis()).unwrap_or(u32::MAX),
        }))
    }

    async fn run_policy_tests(
        &self,
        _request: Request<pb::RunPolicyTestsRequest>,
    ) -> Result<Response<pb::RunPolicyTestsResponse>, Status> {
        let dir = self.reloader.state().snapshot().dir;
        let policy = self.engine.policy();
        let out = tokio::task::spawn_blocking(move || {
            let ran =
                crate::policy::suite::load(&dir).and_then(|files| crate::policy::suite::run(&policy, &files));
            match ran {
                Ok(report) => pb::RunPolicyTestsResponse {
                    passed: report.passed() as u64,
                    failed: report.failed() as u64,
                    report: report.render(true),
                    errors: Vec::new(),
                },
                Err(errors) => pb::RunPolicyTestsResponse {
                    errors: errors.0.iter().map(|e| e.to_string()).collect(),
                    ..Default::default()
                },
            }
        })
        .await
        .map_err(|e| Status::internal(format!("policy tests task: {e}")))?;
        Ok(Response::new(out))
    }

    async fn preview_policy(
        &self,
        request: Request<pb::PreviewPolicyRequest>,
    ) -> Result<Response<pb::PreviewPolicyResponse>, Status> {
        let r = request.into_inner();
        if r.policy_csv.len() > MAX_POLICY_BYTES {
            return Err(Status::invalid_argument(format!(
                "policy_csv: {} bytes, at most {MAX_POLICY_BYTES} allowed",
                r.policy_csv.len()
            )));
        }
        if r.actions.len() > 100 {
            return Err(Status::invalid_argument("actions: at most 100 allowed"));
        }
        for a in &r.actions {
            crate::api::validate::bounded("actions", a)?;
        }
        let dir = self.reloader.state().snapshot().dir;
        let engine = self.engine.clone();
        let span = tracing::info_span!("PreviewPolicy");
        let out = tokio::task::spawn_blocking(move || {
            span.in_scope(|| preview(&dir, &engine, &r.policy_csv, &r.actions))
        })
        .await
        .map_err(|e| Status::internal(format!("preview task: {e}")))??;
        Ok(Response::new(out))
    }

    type SnapshotStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::SnapshotChunk, Status>> + Send + 'static>,
    >;

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let span = tracing::info_span!("Snapshot");
        // It reads the whole directory and its history: an operator call, like DirectoryDigest.
        if !crate::api::directory::on_unix_socket(&request) {
            return Err(Status::permission_denied(
                "Snapshot is an operator call, served only on the Unix socket",
            ));
        }
        if request.get_ref().publish {
            let Some(cluster) = self.cluster.clone() else {
                return Err(Status::failed_precondition(
                    "publish: snapshots are published to the directory log in cluster mode only (serve --cluster)",
                ));
            };
            let p = cluster.publish_snapshot().await.map_err(|e| match e {
                crate::cluster::SnapshotError::Halted(_) | crate::cluster::SnapshotError::NotFollowing(_) => {
                    Status::failed_precondition(e.to_string())
                }
                _ => Status::unavailable(e.to_string()),
            })?;
            let chunk = pb::SnapshotChunk {
                data: Vec::new(),
                revision: p.revision,
                published_object: p.object,
                log_position: p.seq,
                size: p.bytes as u64,
                purged_below: p.purged_below,
            };
            return Ok(Response::new(Box::pin(tokio_stream::iter(vec![Ok(chunk)]))));
        }
        let Some(stats) = self.stats.clone() else {
            return Err(Status::failed_precondition("no directory store is attached"));
        };
        let policy = self.engine.policy().hash.clone();
        let (revision, bytes) = tokio::task::spawn_blocking(move || span.in_scope(|| stats.snapshot(policy)))
            .await
            .map_err(|e| Status::internal(format!("snapshot crashed: {e}")))?
            .map_err(|e| Status::unavailable(format!("directory store: {e}")))?;
        tracing::info!(revision, bytes = bytes.len(), "snapshot taken");
        let chunks: Vec<Result<pb::SnapshotChunk, Status>> = bytes
            .chunks(SNAPSHOT_CHUNK)
            .map(|c| {
                Ok(pb::SnapshotChunk {
                    data: c.to_vec(),
                    revision,
                    ..Default::default()
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn get_policy_status(
        &self,
        _request: Request<pb::GetPolicyStatusRequest>,
    ) -> Result<Response<pb::PolicyStatus>, Status> {
        let _span = tracing::info_span!("GetPolicyStatus").entered();
        Ok(Response::new(self.status_pb(self.reloader.state().snapshot())))
    }

    async fn reload_policy(
        &self,
        request: Request<pb::ReloadPolicyRequest>,
    ) -> Result<Response<pb::PolicyStatus>, Status> {
        // In cluster mode a reload publishes a policy epoch to every sidecar: an operator call.
        if self.cluster.is_some() && !crate::api::directory::on_unix_socket(&request) {
            return Err(Status::permission_denied(
                "ReloadPolicy publishes a policy epoch in cluster mode: an operator call, served only on the Unix socket",
            ));
        }
        async {
            match self.reloader.reload(Trigger::Rpc).await {
                Ok(status) => Ok(Response::new(self.status_pb(status))),
                Err(errors) => Err(Status::failed_precondition(format!(
                    "policy reload failed; the previous policy keeps serving:\n{errors}"
                ))),
            }
        }
        .instrument(tracing::info_span!("ReloadPolicy"))
        .await
    }

    async fn get_stats(
        &self,
        _request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let _span = tracing::info_span!("GetStats").entered();
        let revision = self.engine.index().revision();
        let resp = match &self.stats {
            Some(stats) => {
                let c = stats
                    .counts()
                    .map_err(|e| Status::unavailable(format!("directory store: {e}")))?;
                pb::GetStatsResponse {
                    users: Some(c.users),
                    orgs: Some(c.orgs),
                    memberships: Some(c.memberships),
                    teams: Some(c.teams),
                    apps: Some(c.apps),
                    revision,
                }
            }
            None => {
                let index = self.engine.index().read();
                pb::GetStatsResponse {
                    orgs: Some(index.org_count() as u64),
                    memberships: Some(index.membership_count() as u64),
                    revision,
                    ..Default::default()
                }
            }
        };
        Ok(Response::new(resp))
    }

    async fn check_index(
        &self,
        request: Request<pb::CheckIndexRequest>,
    ) -> Result<Response<pb::CheckIndexResponse>, Status> {
        let span = tracing::info_span!("CheckIndex");
        // As long as a startup load: a TCP caller could keep a core busy with it at will.
        if !crate::api::directory::on_unix_socket(&request) {
            return Err(Status::permission_denied(
                "CheckIndex is an operator call, served only on the Unix socket",
            ));
        }
        let Some(stats) = self.stats.clone() else {
            return Err(Status::failed_precondition("no directory store is attached"));
        };
        let engine = self.engine.clone();
        let _one_at_a_time = self.index_checks.lock().await;
        let check = tokio::task::spawn_blocking(move || span.in_scope(|| stats.check_index(engine.index())))
            .await
            .map_err(|e| Status::internal(format!("index check crashed: {e}")))?
            .map_err(|e| Status::unavailable(format!("directory store: {e}")))?;
        if !check.consistent() {
            tracing::error!(
                revision = check.revision,
                live = %check.live_digest,
                rebuilt = %check.rebuilt_digest,
                differences = ?check.differences,
                "the live decision index differs from the directory tables"
            );
        }
        Ok(Response::new(pb::CheckIndexResponse {
            revision: check.revision,
            consistent: check.consistent(),
            live_digest: check.live_digest,
            live_facts: check.live_facts,
            rebuilt_digest: check.rebuilt_digest,
            rebuilt_facts: check.rebuilt_facts,
            differences: check.differences,
        }))
    }

    async fn export_index(
        &self,
        request: Request<pb::ExportIndexRequest>,
    ) -> Result<Response<pb::ExportIndexResponse>, Status> {
        if !crate::api::directory::on_unix_socket(&request) {
            return Err(Status::permission_denied(
                "ExportIndex is an operator call, served only on the Unix socket",
            ));
        }
        let engine = self.engine.clone();
        // Copying the facts holds the index's shared lock (checks go on, writes wait);
        // turning them into text does not.
        let (revision, facts) = tokio::task::spawn_blocking(move || {
            let (revision, snapshot) = {
                let data = engine.index().read();
                (data.revision(), data.snapshot_facts())
            };
            let facts: Vec<String> = snapshot
                .lines()
                .into_iter()
                .filter(|l| !l.starts_with("token "))
                .collect();
            (revision, facts)
        })
        .await
        .map_err(|e| Status::internal(format!("index export crashed: {e}")))?;
        Ok(Response::new(pb::ExportIndexResponse { revision, facts }))
    }

    async fn directory_digest(
        &self,
        request: Request<pb::DirectoryDigestRequest>,
    ) -> Result<Response<pb::DirectoryDigestResponse>, Status> {
        let span = tracing::info_span!("DirectoryDigest");
        // It reads every directory table, like CheckIndex: an operator call, so a TCP caller
        // cannot keep a core busy with it at will.
        if !crate::api::directory::on_unix_socket(&request) {
            return Err(Status::permission_denied(
                "DirectoryDigest is an operator call, served only on the Unix socket",
            ));
        }
        let Some(stats) = self.stats.clone() else {
            return Err(Status::failed_precondition("no directory store is attached"));
        };
        let digest = tokio::task::spawn_blocking(move || span.in_scope(|| stats.digest()))
            .await
            .map_err(|e| Status::internal(format!("directory digest crashed: {e}")))?
            .map_err(|e| Status::unavailable(format!("directory store: {e}")))?;
        Ok(Response::new(pb::DirectoryDigestResponse {
            revision: digest.revision,
            sha256: digest.sha256,
            tables: digest
                .tables
                .into_iter()
                .map(|t| pb::TableDigest {
                    name: t.name,
                    entries: t.entries,
                    sha256: t.sha256,
                })
                .collect(),
        }))
    }
}

/// The store counts the directory from one read snapshot; a storage failure is reported
/// as text (the admin service turns it into UNAVAILABLE) and logged in full here.
impl DirectoryStats for crate::store::Store {
    fn write_times(&self) -> Option<Vec<crate::store::WriteTimesSnapshot>> {
        Some(crate::store::Store::write_times(self))
    }

    fn counts(&self) -> Result<DirectoryCounts, String> {
        match self.stats() {
            Ok(s) => Ok(DirectoryCounts {
                users: s.users,
                orgs: s.orgs,
                memberships: s.memberships,
                teams: s.teams,
                apps: s.apps,
            }),
            Err(e) => {
                tracing::error!(error = %e, "counting the directory");
                Err("cannot read the directory store; see the daemon log".to_string())
            }
        }
    }

    fn check_index(&self, live: &DirectoryIndex) -> Result<IndexCheck, String> {
        crate::store::Store::check_index(self, live).map_err(|e| {
            tracing::error!(error = %e, "rebuilding the index for a check");
            "cannot read the directory store; see the daemon log".to_string()
        })
    }

    fn digest(&self) -> Result<DirectoryDigest, String> {
        crate::store::Store::digest(self).map_err(|e| {
            tracing::error!(error = %e, "digesting the directory");
            "cannot read the directory store; see the daemon log".to_string()
        })
    }

    fn snapshot(&self, policy: String) -> Result<(u64, Vec<u8>), String> {
        let at = crate::api::directory::now_ms();
        crate::store::Store::snapshot(self, Some(policy), None, at)
            .and_then(|s| Ok((s.revision, s.to_json()?)))
            .map_err(|e| {
                tracing::error!(error = %e, "taking a snapshot");
                "cannot read the directory store; see the daemon log".to_string()
            })
    }
}
