//! What a gRPC client sees of a running daemon over both the Unix socket and TCP:
//! reflection lists the services, bad requests name the bad field, and a failed
//! policy reload reports its errors while the old policy keeps serving.

use crate::common;

use common::{Workdir, health, runtime};
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use warden::api::client::connect;
use warden::api::pb;

#[test]

fn reflection_lists_the_served_services() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        let (v1, v1alpha) = rt.block_on(async {
            (
                list_services_v1(&target).await,
                list_services_v1alpha(&target).await,
            )
        });
        for expected in [
            "warden.v1.AuthzService",
            "warden.v1.AdminService",
            "warden.v1.OrgService",
            "warden.v1.MemberService",
            "warden.v1.TeamService",
            "warden.v1.AppService",
            "warden.v1.UserService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ] {
            assert!(
                v1.iter().any(|s| s == expected),
                "{target} v1 lacks {expected}: {v1:?}"
            );
        }
        assert!(
            v1alpha.iter().any(|s| s == "warden.v1.AuthzService"),
            "{target} v1alpha: {v1alpha:?}"
        );
    }
}

async fn list_services_v1(target: &str) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(connect(target).await.expect("connect"));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    match responses.next().await {
        Some(Ok(r)) => match r.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected reflection response {other:?}"),
        },
        other => panic!("no reflection response: {other:?}"),
    }
}

async fn list_services_v1alpha(target: &str) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(connect(target).await.expect("connect"));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    match responses.next().await {
        Some(Ok(r)) => match r.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected reflection response {other:?}"),
        },
        other => panic!("no reflection response: {other:?}"),
    }
}

#[test]

fn invalid_argument_names_the_field() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        rt.block_on(async {
            let mut authz =
                pb::authz_service_client::AuthzServiceClient::new(connect(&target).await.expect("connect"));
            let valid = pb::CheckRequest {
                subject: "alice".into(),
                org: "acme".into(),
                resource: "apps/demo".into(),
                action: "app:read".into(),
                ..Default::default()
            };

            let empty_org = pb::CheckRequest {
                org: String::new(),
                ..valid.clone()
            };
            let err = authz.check(empty_org).await.expect_err("empty org accepted");
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{target}");
            assert!(err.message().starts_with("org:"), "{target}: {}", err.message());

            let huge_resource = pb::CheckRequest {
                resource: "a".repeat(4096),
                ..valid.clone()
            };
            let err = authz
                .check(huge_resource)
                .await
                .expect_err("huge resource accepted");
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{target}");
            assert!(
                err.message().starts_with("resource:"),
                "{target}: {}",
                err.message()
            );

            let batch = pb::BatchCheckRequest {
                items: vec![
                    valid.clone(),
                    pb::CheckRequest {
                        action: String::new(),
                        ..valid.clone()
                    },
                ],
                min_revision: 0,
            };
            let resp = authz.batch_check(batch).await.expect("batch").into_inner();
            assert_eq!(resp.results.len(), 2);
            match &resp.results[1].result {
                Some(pb::batch_check_result::Result::Error(e)) => {
                    assert_eq!(e.code, tonic::Code::InvalidArgument as i32);
                    assert!(e.message.starts_with("items[1].action:"), "{}", e.message);
                }
                other => panic!("{target}: expected an item error, got {other:?}"),
            }
        });
    }
}

#[test]

fn failed_reload_reports_errors_and_keeps_serving() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    let target = daemon.work.unix_target();
    rt.block_on(async {
        let mut admin =
            pb::admin_service_client::AdminServiceClient::new(connect(&target).await.expect("connect"));
        let before = admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        assert!(!before.content_hash.is_empty());

        std::fs::write(
            daemon.work.policies().join("model.conf"),
            "this is not a casbin model\n",
        )
        .expect("break model.conf");
        let err = admin
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect_err("broken policy reloaded");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().contains("model.conf"), "{}", err.message());

        let after = admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        assert_eq!(
            after.content_hash, before.content_hash,
            "old policy must keep serving"
        );
        assert!(after.last_reload_error.contains("model.conf"), "{after:?}");
        assert!(after.reloads_failed >= 1);
    });
    assert_eq!(
        rt.block_on(health(&target, "warden.v1.AuthzService")),
        Some(ServingStatus::Serving)
    );
}
