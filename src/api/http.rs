//! The HTTP/JSON listener (`serve --http tcp:127.0.0.1:8181`): Check, BatchCheck, the
//! lookups and the read-only directory calls for callers without a gRPC stack, described
//! by `docs/openapi.yaml` (served at `GET /openapi.yaml`).
//!
//! Every handler calls the gRPC service implementation itself, so validation,
//! `min_revision` waits, metrics, the decision log and the directory's own authorization
//! are the same on both transports; this file only maps JSON and query strings to the
//! protobuf messages (with their proto field names) and statuses to HTTP codes. Errors are
//! `{"code": "INVALID_ARGUMENT", "message": "…"}`, the message naming the field as over
//! gRPC. Like the TCP gRPC listener it has no authentication, so it binds loopback only.

use crate::api::authz::Authz;
use crate::api::directory::Directory;
use crate::api::pb;
use crate::api::pb::authz_service_server::AuthzService;
use crate::api::pb::member_service_server::MemberService;
use crate::api::pb::org_service_server::OrgService;
use crate::api::shutdown::Shutdown;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tonic::{Code, Request, Status};

/// The OpenAPI 3 document of this listener.
pub const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

/// The services behind the routes.
#[derive(Clone)]
pub struct HttpApi {
    pub authz: Authz,
    pub directory: Directory,
}

/// A gRPC status as an HTTP error.
pub struct ApiError(Status);

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = http_status(self.0.code());
        (
            status,
            Json(ErrorBody {
                code,
                message: self.0.message(),
            }),
        )
            .into_response()
    }
}

fn http_status(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Code::FailedPrecondition => (StatusCode::PRECONDITION_FAILED, "FAILED_PRECONDITION"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

fn bad_json(r: JsonRejection) -> ApiError {
    ApiError(Status::invalid_argument(format!("body: {}", r.body_text())))
}

fn bad_query(r: QueryRejection) -> ApiError {
    ApiError(Status::invalid_argument(format!("query: {}", r.body_text())))
}

type Answer<T> = Result<Json<T>, ApiError>;

async fn check(
    State(api): State<HttpApi>,
    body: Result<Json<pb::CheckRequest>, JsonRejection>,
) -> Answer<pb::CheckResponse> {
    let Json(req) = body.map_err(bad_json)?;
    let resp = api.authz.check(Request::new(req)).await.map_err(ApiError)?;
    Ok(Json(resp.into_inner()))
}

async fn batch_check(
    State(api): State<HttpApi>,
    body: Result<Json<pb::BatchCheckRequest>, JsonRejection>,
) -> Answer<pb::BatchCheckResponse> {
    let Json(req) = body.map_err(bad_json)?;
    let resp = api.authz.batch_check(Request::new(req)).await.map_err(ApiError)?;
    Ok(Json(resp.into_inner()))
}

async fn lookup_resources(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    query: Result<Query<pb::LookupResourcesRequest>, QueryRejection>,
) -> Answer<pb::LookupResourcesResponse> {
    let Query(mut req) = query.map_err(bad_query)?;
    req.org = org;
    let resp = api
        .authz
        .lookup_resources(Request::new(req))
        .await
        .map_err(ApiError)?;
    Ok(Json(resp.into_inner()))
}

async fn lookup_subjects(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    query: Result<Query<pb::LookupSubjectsRequest>, QueryRejection>,
) -> Answer<pb::LookupSubjectsResponse> {
    let Query(mut req) = query.map_err(bad_query)?;
    req.org = org;
    let resp = api
        .authz
        .lookup_subjects(Request::new(req))
        .await
        .map_err(ApiError)?;
    Ok(Json(resp.into_inner()))
}

async fn get_org(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    query: Result<Query<pb::GetOrgRequest>, QueryRejection>,
) -> Answer<pb::Org> {
    let Query(mut req) = query.map_err(bad_query)?;
    req.org_id = org;
    let resp = api.directory.get_org(Request::new(req)).await.map_err(ApiError)?;
    Ok(Json(resp.into_inner()))
}

async fn list_members(
    State(api): State<HttpApi>,
    Path(org): Path<String>,
    query: Result<Query<pb::ListMembersRequest>, QueryRejection>,
) -> Answer<pb::ListMembersResponse> {
    let Query(mut req) = query.map_err(bad_query)?;
    req.org_id = org;
    let resp = api
        .directory
        .list_members(Request::new(req))
        .await
        .map_err(ApiError)?;
    Ok(Json(resp.into_inner()))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError(Status::not_found("no such route; see GET /openapi.yaml"))
}

/// The routes, for [`serve`] and tests.
pub fn router(api: HttpApi) -> Router {
    Router::new()
        .route("/v1/check", post(check))
        .route("/v1/batch-check", post(batch_check))
        .route("/v1/orgs/{org}", get(get_org))
        .route("/v1/orgs/{org}/members", get(list_members))
        .route("/v1/orgs/{org}/resources", get(lookup_resources))
        .route("/v1/orgs/{org}/subjects", get(lookup_subjects))
        .route("/openapi.yaml", get(openapi))
        .fallback(not_found)
        .with_state(api)
}

/// Serve the routes on `listener` until `shutdown`, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: HttpApi,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown.wait())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_the_services_return_has_an_http_status() {
        assert_eq!(http_status(Code::InvalidArgument).0, StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::PermissionDenied).0, StatusCode::FORBIDDEN);
        assert_eq!(
            http_status(Code::FailedPrecondition).0,
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(http_status(Code::Internal).1, "INTERNAL");
    }
}
