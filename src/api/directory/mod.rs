//! The directory services: `OrgService`, `MemberService`, `TeamService`, `AppService` and
//! `UserService` over the store and the engine.
//!
//! Every mutation is the same five steps: check the request's shape (INVALID_ARGUMENT naming
//! the proto field), build a [`ChangeEnvelope`] stamped with the current time *before* it is
//! applied (DESIGN §6) and carrying the caller's operator bit and the pinned policy's hash, run
//! [`Store::apply_and_index`] on a blocking thread with one pinned policy snapshot as the
//! authorizer, the role predicate and the limits ([`with_policy_context`]), map a [`Refusal`]
//! 1:1 to a gRPC status, and answer with the committed revision. Reads are authorized with the
//! engine too, before the store is asked (see each service for its rule); every directory read
//! takes `min_revision` and waits for it as Check does.
//!
//! In cluster mode (`serve --cluster`) step three is different: the envelope (with the
//! caller's `x-warden-request-id`, or a fresh one) is published to the shared directory log
//! and the call waits until this sidecar's apply loop applied it, answering with that
//! entry's outcome ([`crate::cluster::Cluster::submit`]). Only shape is checked before
//! publishing ([`Change::validate`], the size bound); everything that depends on state is
//! decided at apply, identically on every sidecar.
//!
//! Nothing here decides what the directory allows: the store runs the rules and the engine
//! answers permissions. This module only translates between protobuf and those two.

mod apps;
mod audit;
mod collaborators;
mod convert;
mod domains;
mod invitations;
mod lifecycle;
mod members;
mod orgs;
mod publishing;
mod security;
mod teams;
mod tokens;
mod usage;
mod users;
mod watch;

pub use watch::{OLDEST_TRAILER, RESUME_TRAILER};

use crate::api::pb;
use crate::directory::ids::{validate_slug, validate_user_id};
use crate::directory::{Change, ChangeEnvelope, Refusal};
use crate::engine::{CheckInput, Engine};
use crate::store::{ApplyError, Page, Store, StoreError, with_policy_context};
use std::sync::Arc;
use tonic::{Request, Status};

/// The five directory services share one handle: they read and write the same store and
/// ask the same engine, and a cheap `Clone` lets tonic hand one to each service.
#[derive(Clone)]
pub struct Directory {
    store: Arc<Store>,
    engine: Arc<Engine>,
    /// Cluster mode: writes go through the shared log.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Ends `WatchChanges` streams when the daemon shuts down; `None` in tests without one.
    shutdown: Option<crate::api::shutdown::Shutdown>,
}

/// Page size used to walk whole lists inside one call (team members, member counts).
const WALK_PAGE: u32 = crate::store::MAX_PAGE_SIZE;

/// Milliseconds since the Unix epoch (0 if the clock is before it). The one clock of the
/// write path: it is read before a change is applied, never inside `apply`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Whether the call came in on the Unix socket, whose callers are trusted by file
/// permission (DESIGN §5). Fails closed: anything that is not positively a Unix-socket
/// connection counts as remote.
pub(crate) fn on_unix_socket<T>(req: &Request<T>) -> bool {
    req.extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()
        .is_some()
}

impl Directory {
    pub fn new(store: Arc<Store>, engine: Arc<Engine>) -> Self {
        Self {
            store,
            engine,
            cluster: None,
            shutdown: None,
        }
    }

    /// Send writes through the shared directory log (cluster mode).
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// End long-lived calls (`WatchChanges`) when `shutdown` fires, so draining does not wait
    /// for them.
    pub fn with_shutdown(mut self, shutdown: crate::api::shutdown::Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    pub fn org_server(&self) -> pb::org_service_server::OrgServiceServer<Self> {
        pb::org_service_server::OrgServiceServer::new(self.clone())
    }

    pub fn member_server(&self) -> pb::member_service_server::MemberServiceServer<Self> {
        pb::member_service_server::MemberServiceServer::new(self.clone())
    }

    pub fn team_server(&self) -> pb::team_service_server::TeamServiceServer<Self> {
        pb::team_service_server::TeamServiceServer::new(self.clone())
    }

    pub fn app_server(&self) -> pb::app_service_server::AppServiceServer<Self> {
        pb::app_service_server::AppServiceServer::new(self.clone())
    }

    pub fn user_server(&self) -> pb::user_service_server::UserServiceServer<Self> {
        pb::user_service_server::UserServiceServer::new(self.clone())
    }

    pub fn lifecycle_server(&self) -> pb::org_lifecycle_service_server::OrgLifecycleServiceServer<Self> {
        pb::org_lifecycle_service_server::OrgLifecycleServiceServer::new(self.clone())
    }

    pub fn domain_server(&self) -> pb::domain_service_server::DomainServiceServer<Self> {
        pb::domain_service_server::DomainServiceServer::new(self.clone())
    }

    pub fn invitation_server(&self) -> pb::invitation_service_server::InvitationServiceServer<Self> {
        pb::invitation_service_server::InvitationServiceServer::new(self.clone())
    }

    /// Apply `change` on behalf of `actor` and return the committed revision.
    ///
    /// `id_field` is the proto name of the change's own id (`org_id`, `app_id`, `user_id`), so a
    /// refusal about `id` names the field the caller actually sent.
    async fn write(&self, actor: &str, id_field: &'static str, change: Change) -> Result<u64, Status> {
        self.write_as(actor, id_field, change, false).await
    }

    /// [`Directory::write`] for a caller that may act as the operator (on the Unix socket):
    /// instance switches such as `users_can_create_orgs` do not bind it.
    async fn write_as(
        &self,
        actor: &str,
        id_field: &'static str,
        change: Change,
        operator: bool,
    ) -> Result<u64, Status> {
        self.write_at(actor, id_field, change, operator, now_ms()).await
    }

    /// [`Directory::write_as`] stamped `at_ms`, for changes whose other times (an expiry)
    /// were computed from the same instant.
    async fn write_at(
        &self,
        actor: &str,
        id_field: &'static str,
        change: Change,
        operator: bool,
        at_ms: u64,
    ) -> Result<u64, Status> {
        validate_user_id("actor", actor).map_err(|r| refusal_status(r, actor, id_field))?;
        if let Some(cluster) = &self.cluster {
            return self
                .write_through_log(cluster, actor, id_field, change, operator, at_ms)
                .await;
        }
        let store = self.store.clone();
        let engine = self.engine.clone();
        let actor_id = actor.to_string();
        // The write transaction's span (`store.write`) belongs under this call's span.
        let span = tracing::Span::current();
        let applied = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // One policy snapshot judges the whole write: authorization, the role predicate
            // and the limits (a reload landing meanwhile applies from the next write on). The
            // authorizer sees the index as of the previous write (the store holds its write
            // lock until this write is published).
            let policy = engine.policy();
            let env = ChangeEnvelope::new(actor_id, at_ms, change)
                .as_operator(operator)
                .with_policy(policy.hash.clone());
            with_policy_context(&engine, &policy, operator, |ctx| {
                store.apply_and_index(env, ctx, engine.index())
            })
        })
        .await
        .map_err(task_failed)?;
        match applied {
            Ok(applied) => {
                tracing::info!(revision = applied.revision, "applied");
                Ok(applied.revision)
            }
            Err(err) => {
                let status = apply_status(err, actor, id_field);
                tracing::info!(code = ?status.code(), reason = status.message(), "refused");
                Err(status)
            }
        }
    }

    /// Cluster mode's write: shape checks, publish, wait for this sidecar's apply loop, and
    /// answer with the entry's outcome mapped as on a single node.
    async fn write_through_log(
        &self,
        cluster: &crate::cluster::Cluster,
        actor: &str,
        id_field: &'static str,
        change: Change,
        operator: bool,
        at_ms: u64,
    ) -> Result<u64, Status> {
        use crate::cluster::SubmitError;
        use crate::store::Outcome;
        let request_id = match crate::api::request_id::current() {
            Some(id) => {
                crate::api::request_id::validate(&id).map_err(Status::invalid_argument)?;
                id
            }
            None => crate::cluster::new_request_id(),
        };
        change
            .validate()
            .map_err(|r| refusal_status(r, actor, id_field))?;
        let policy = self.engine.policy();
        let mut env = ChangeEnvelope::new(actor, at_ms, change)
            .as_operator(operator)
            .with_policy(policy.hash.clone());
        env.request_id = Some(request_id.clone());
        let outcome = cluster.submit(env, &self.store).await;
        match outcome {
            Ok(Outcome::Applied { revision, seq }) => {
                tracing::info!(revision, seq, request_id, "applied");
                Ok(revision)
            }
            Ok(Outcome::Refused { refusal, seq }) => {
                let status = refusal_status(refusal, actor, id_field);
                tracing::info!(code = ?status.code(), reason = status.message(), seq, request_id, "refused");
                Err(status)
            }
            Ok(Outcome::Rejected { reason, .. }) => Err(Status::invalid_argument(capped(format!(
                "the directory log entry with request id `{request_id}` was refused: {reason}"
            )))),
            Err(e @ SubmitError::TooLarge { .. }) => Err(Status::invalid_argument(format!("change: {e}"))),
            Err(SubmitError::Store(e)) => Err(storage_status(e)),
            Err(e @ SubmitError::Encode(_)) => {
                tracing::error!(error = %e, "cluster write failed");
                Err(Status::internal(
                    "the directory request failed; see the daemon log",
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, request_id, "cluster write not answered");
                Err(Status::unavailable(e.to_string()))
            }
        }
    }

    /// Run a store read on a blocking thread (redb reads may touch the disk).
    async fn read<T: Send + 'static>(
        &self,
        actor: &str,
        id_field: &'static str,
        f: impl FnOnce(&Store) -> Result<T, ApplyError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(task_failed)?
            .map_err(|e| apply_status(e, actor, id_field))
    }

    /// Read-your-writes for directory reads: return once the directory reflects
    /// `min_revision`, with the same wait and the same FAILED_PRECONDITION as Check's. The
    /// store commits a write before the index publishes it, so an index at `min_revision`
    /// means every later store read sees that write. While it waits, the call's in-flight
    /// permit is parked, as Check's is.
    async fn reflect(
        &self,
        admission: Option<&crate::api::limits::Admission>,
        min_revision: u64,
    ) -> Result<(), Status> {
        crate::api::revision::wait_for(
            &self.engine,
            admission,
            min_revision,
            crate::api::revision::MAX_WAIT,
        )
        .await?;
        Ok(())
    }

    /// The index revision now: a read that starts after this reflects at least this revision.
    fn revision(&self) -> u64 {
        self.engine.index().revision()
    }

    /// PERMISSION_DENIED unless the engine allows `actor` to do `action` on `resource` in `org`.
    fn require(&self, actor: &str, org: &str, resource: &str, action: &str) -> Result<(), Status> {
        let allowed = self
            .engine
            .check(&CheckInput {
                subject: actor,
                org,
                resource,
                action,
            })
            .map(|d| d.allowed)
            .unwrap_or(false);
        if allowed {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "actor `{actor}` lacks `{action}` on `{resource}` in org `{org}`"
            )))
        }
    }

    /// The org app `app_id`, if `actor` may read it: NOT_FOUND for no such app,
    /// FAILED_PRECONDITION for a personal app (which has no `what`), PERMISSION_DENIED
    /// without `app:read` on it.
    async fn readable_org_app(
        &self,
        actor: &str,
        app_id: &str,
        what: &str,
    ) -> Result<crate::directory::App, Status> {
        let id = app_id.to_string();
        let app = self
            .read(actor, "app_id", move |s| Ok(s.get_app(&id)?))
            .await?
            .ok_or_else(|| Status::not_found(format!("app `{app_id}` not found")))?;
        match &app.owner {
            crate::directory::Owner::Org(org) => {
                self.require(actor, org, &format!("apps/{}", app.id), "app:read")?
            }
            crate::directory::Owner::User(_) => {
                return Err(Status::failed_precondition(format!(
                    "app `{}` is a personal app; it has no {what}",
                    app.id
                )));
            }
        }
        Ok(app)
    }
}

/// Shape checks shared by reads: the actor is a user id, the org a slug.
fn check_actor(actor: &str) -> Result<(), Status> {
    validate_user_id("actor", actor).map_err(invalid_status)
}

fn check_slug(field: &str, value: &str) -> Result<(), Status> {
    validate_slug(field, value).map_err(invalid_status)
}

fn check_user(field: &str, value: &str) -> Result<(), Status> {
    validate_user_id(field, value).map_err(invalid_status)
}

fn invalid_status(r: Refusal) -> Status {
    refusal_status(r, "", "")
}

/// The proto field a domain field name stands for in the request being served.
fn proto_field<'a>(field: &'a str, id_field: &'static str) -> &'a str {
    match field {
        "id" if !id_field.is_empty() => id_field,
        "org" => "org_id",
        "user" => "user_id",
        "team" => "team_id",
        "app" => "app_id",
        "to_org" => "to_org_id",
        "rename" => "new_name",
        "teams" => "team_ids",
        "expires_at_ms" => "expires_at_unix_ms",
        "idp" => "idp_id",
        other => other,
    }
}

fn apply_status(err: ApplyError, actor: &str, id_field: &'static str) -> Status {
    match err {
        ApplyError::Refused(r) => refusal_status(r, actor, id_field),
        ApplyError::Storage(e) => storage_status(e),
        // The API writes only the current format; a newer one can come only from elsewhere.
        e @ ApplyError::UnsupportedFormat { .. } => Status::unimplemented(e.to_string()),
    }
}

/// Longest status message sent back, in bytes. A message travels in the `grpc-message`
/// response header; one that echoed a megabyte of hostile input would overflow the
/// client's header limit and turn a clear INVALID_ARGUMENT into a protocol error.
const MAX_MESSAGE_BYTES: usize = 1024;

/// `message` cut to [`MAX_MESSAGE_BYTES`] at a character boundary, marked when cut.
fn capped(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// Refusals map 1:1 to gRPC codes; messages name the field, the thing or the permission.
fn refusal_status(r: Refusal, actor: &str, id_field: &'static str) -> Status {
    let status = refusal_status_uncapped(r, actor, id_field);
    Status::new(status.code(), capped(status.message().to_string()))
}

fn refusal_status_uncapped(r: Refusal, actor: &str, id_field: &'static str) -> Status {
    match r {
        Refusal::InvalidArgument { field, reason } => {
            Status::invalid_argument(format!("{}: {reason}", proto_field(&field, id_field)))
        }
        Refusal::NotFound { what } => Status::not_found(format!("{what} not found")),
        Refusal::AlreadyExists { what } => Status::already_exists(format!("{what} already exists")),
        Refusal::FailedPrecondition { reason } => Status::failed_precondition(reason),
        Refusal::PermissionDenied { permission, org } if org.is_empty() => {
            Status::permission_denied(format!("actor `{actor}` lacks {permission}"))
        }
        Refusal::PermissionDenied { permission, org } => {
            Status::permission_denied(format!("actor `{actor}` lacks {permission} in org `{org}`"))
        }
    }
}

/// Storage failures are logged in full and reported without internals: UNAVAILABLE for
/// the disk and database layer (worth a retry), INTERNAL for records this build cannot read.
fn storage_status(e: StoreError) -> Status {
    tracing::error!(error = %e, "directory storage failed");
    match e {
        StoreError::Redb(_) | StoreError::Closed { .. } => {
            Status::unavailable("the directory store is unavailable; see the daemon log")
        }
        _ => Status::internal("the directory store failed; see the daemon log"),
    }
}

fn task_failed(e: tokio::task::JoinError) -> Status {
    tracing::error!(error = %e, "directory task failed");
    Status::internal("the directory request failed; see the daemon log")
}

/// Every item of a paginated store list, page after page.
fn walk<T>(mut page: impl FnMut(&str) -> Result<Page<T>, ApplyError>) -> Result<Vec<T>, ApplyError> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let p = page(&token)?;
        out.extend(p.items);
        if p.next_page_token.is_empty() {
            return Ok(out);
        }
        token = p.next_page_token;
    }
}

/// Gone between our write and our read-back: a later write deleted it.
fn vanished(what: &str, revision: u64) -> Status {
    Status::not_found(format!(
        "{what} was written at revision {revision} but a later write removed it"
    ))
}

/// A list call's `order_by`: `id`, `name`, `created_at` or `updated_at` (orgs also
/// `member_count`), optionally followed by `desc`; INVALID_ARGUMENT naming `order_by` otherwise.
fn list_order(order_by: &str, member_count: bool) -> Result<crate::store::ListOrder, Status> {
    use crate::store::{ListOrder, SortField};
    let fields: &[SortField] = if member_count {
        &[
            SortField::Id,
            SortField::Name,
            SortField::CreatedAt,
            SortField::UpdatedAt,
            SortField::MemberCount,
        ]
    } else {
        &[
            SortField::Id,
            SortField::Name,
            SortField::CreatedAt,
            SortField::UpdatedAt,
        ]
    };
    ListOrder::parse(crate::api::validate::bounded("order_by", order_by)?, fields).map_err(invalid_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_one_to_one_and_name_fields() {
        let s = refusal_status(Refusal::invalid("id", "bad"), "bob", "org_id");
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().starts_with("org_id:"), "{}", s.message());
        let s = refusal_status(Refusal::invalid("user", "bad"), "bob", "org_id");
        assert!(s.message().starts_with("user_id:"), "{}", s.message());
        let s = refusal_status(
            Refusal::PermissionDenied {
                permission: "`member:manage` on `org`".into(),
                org: "acme".into(),
            },
            "bob",
            "",
        );
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            s.message(),
            "actor `bob` lacks `member:manage` on `org` in org `acme`"
        );
        assert_eq!(
            refusal_status(Refusal::not_found("org `x`"), "", "").code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            refusal_status(Refusal::already_exists("org `x`"), "", "").code(),
            tonic::Code::AlreadyExists
        );
        assert_eq!(
            refusal_status(Refusal::precondition("last admin"), "", "").code(),
            tonic::Code::FailedPrecondition
        );
    }

    #[test]
    fn storage_errors_do_not_leak_internals() {
        let s = storage_status(StoreError::Corrupt {
            table: "orgs".into(),
            key: "secret-key".into(),
            reason: "bad json".into(),
        });
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("secret-key"), "{}", s.message());
    }
}
