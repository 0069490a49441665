//! `warden.v1.UserService`.
//!
//! Authorization: users carry no rights by themselves, but a profile is personal data and
//! its email is what membership matching will rely on. `UpsertUser` and `GetUser` are
//! therefore allowed to callers on the Unix socket (the app's backend, trusted by file
//! permission) and, over TCP, only to an actor equal to `user_id` (a user managing their own
//! profile). The actor is always required and is recorded in the change log. Only a
//! Unix-socket caller may mark the email verified (`email_verified`), which is what joining an
//! org by email domain requires: an address a user typed in proves nothing.

use super::convert::{opt, user_pb};
use super::{Directory, check_actor, check_user, on_unix_socket, vanished};
use crate::api::pb;
use crate::directory::Change;
use tonic::{Request, Response, Status};
use tracing::Instrument;

fn only_self(actor: &str, user: &str, what: &str) -> Status {
    Status::permission_denied(format!(
        "actor `{actor}` may not {what} user `{user}` over TCP: only the user itself may, \
         or a caller on the Unix socket"
    ))
}

#[tonic::async_trait]
impl pb::user_service_server::UserService for Directory {
    async fn upsert_user(
        &self,
        request: Request<pb::UpsertUserRequest>,
    ) -> Result<Response<pb::UpsertUserResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let r = request.into_inner();
        let span = tracing::info_span!("UpsertUser", user = %r.user_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_user("user_id", &r.user_id)?;
            if !r.name.is_empty() {
                return Err(Status::invalid_argument(
                    "name: this version stores no display name for users; leave it empty",
                ));
            }
            if !trusted && r.actor != r.user_id {
                return Err(only_self(&r.actor, &r.user_id, "upsert"));
            }
            let change = Change::UpsertUser {
                id: r.user_id.clone(),
                email: r.email,
                username: opt(r.username),
                email_verified: r.email_verified,
            };
            // The operator (the login layer, on the Unix socket) may vouch for the email.
            let revision = self.write_as(&r.actor, "user_id", change, trusted).await?;
            let id = r.user_id.clone();
            let user = self
                .read(&r.actor, "user_id", move |s| Ok(s.get_user(&id)?))
                .await?
                .ok_or_else(|| vanished(&format!("user `{}`", r.user_id), revision))?;
            Ok(Response::new(pb::UpsertUserResponse {
                user: Some(user_pb(user)),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_user(&self, mut request: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let trusted = on_unix_socket(&request);
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("GetUser", user = %r.user_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_user("user_id", &r.user_id)?;
            if !trusted && r.actor != r.user_id {
                return Err(only_self(&r.actor, &r.user_id, "read"));
            }
            let id = r.user_id.clone();
            self.read(&r.actor, "user_id", move |s| Ok(s.get_user(&id)?))
                .await?
                .map(|u| Response::new(user_pb(u)))
                .ok_or_else(|| Status::not_found(format!("user `{}` not found", r.user_id)))
        }
        .instrument(span)
        .await
    }
}
