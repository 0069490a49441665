//! Clients with their defaults on the Unix socket: Python `grpcio` with no channel options
//! (grpc-core sends the socket path, %-encoded, as `:authority`) calls Check, health and
//! reflection; tonic's reflection clients describe across the two reflection versions;
//! Envoy's Authorization service is in reflection and health when it is served.
//!
//! The Python side runs in the venv of `tests/python_client.rs` (`WARDEN_PY_VENV`, or one
//! made from `examples/python/requirements.txt`).

use crate::common;
use crate::python_client::{repo, run, stubs, venv};

use common::*;
use std::process::Command;
use tonic_health::pb::health_check_response::ServingStatus;

const ENVOY: &str = "envoy.service.auth.v3.Authorization";

/// Asks over one default channel and prints one line per answer; an RPC error prints
/// its code instead of stopping.
const CLIENT: &str = r#"
import sys
import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from warden.v1 import authz_pb2, authz_pb2_grpc

def attempt(label, f):
    try:
        print(f"{label}: {f()}")
    except grpc.RpcError as e:
        print(f"{label}: ERROR {e.code().name} {e.details()}")
    except KeyError as e:
        print(f"{label}: ERROR not found {e}")

with grpc.insecure_channel(sys.argv[1]) as channel:
    authz = authz_pb2_grpc.AuthzServiceStub(channel)
    def check(subject, action):
        req = authz_pb2.CheckRequest(subject=subject, org="acme", resource="apps/web", action=action)
        return "allow" if authz.Check(req, timeout=5).allowed else "deny"
    attempt("check alice app:write", lambda: check("alice", "app:write"))
    attempt("check dave app:write", lambda: check("dave", "app:write"))
    # Many calls on one connection: the :authority entry is reused from the HPACK table.
    attempt("100 checks", lambda: sorted({check(s, "app:read") for s in ["alice", "dave"] * 50}))
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "warden.v1.AuthzService", "envoy.service.auth.v3.Authorization"]:
        attempt(f"health {service or '(server)'}", lambda: health_pb2.HealthCheckResponse.ServingStatus.Name(
            health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status))
    db = ProtoReflectionDescriptorDatabase(channel)
    attempt("services", lambda: " ".join(sorted(db.get_services())))
    pool = descriptor_pool.DescriptorPool(db)
    for service in ["warden.v1.AuthzService", "envoy.service.auth.v3.Authorization",
                    "grpc.reflection.v1.ServerReflection", "grpc.health.v1.Health"]:
        attempt(f"describe {service}", lambda: " ".join(m.name for m in pool.FindServiceByName(service).methods))
"#;

#[test]
fn grpcio_with_default_options_calls_check_health_and_reflection_over_the_socket() {
    let venv = venv();
    let gen_dir = stubs(&venv);
    let script = gen_dir.path().join("uds_client.py");
    std::fs::write(&script, CLIENT).expect("write the client script");
    let mapping = repo().join("deploy/envoy/ext_authz.toml");
    let mut daemon = Workdir::new().start_with(&["--demo", "--ext-authz", mapping.to_str().unwrap()]);

    let out = run(
        "the grpcio client",
        Command::new(venv.join("bin/python"))
            .arg(&script)
            .arg(daemon.work.unix_target())
            .env("PYTHONPATH", gen_dir.path()),
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    let services = "services: envoy.service.auth.v3.Authorization grpc.health.v1.Health \
                    grpc.reflection.v1.ServerReflection grpc.reflection.v1alpha.ServerReflection";
    let expected = [
        "check alice app:write: allow",
        "check dave app:write: deny",
        "100 checks: ['allow']",
        "health (server): SERVING",
        "health warden.v1.AuthzService: SERVING",
        "health envoy.service.auth.v3.Authorization: SERVING",
        services,
        "describe warden.v1.AuthzService: Check BatchCheck",
        "describe envoy.service.auth.v3.Authorization: Check",
        "describe grpc.reflection.v1.ServerReflection: ServerReflectionInfo",
        "describe grpc.health.v1.Health: Check Watch",
    ];
    assert_eq!(lines.len(), expected.len(), "{stdout}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "got\n  {line}\nwanted\n  {want}\nall:\n{stdout}"
        );
    }
    daemon.stop();
}

#[test]
fn each_reflection_version_describes_the_other_and_envoy_only_when_served() {
    let rt = runtime();
    let mapping = repo().join("deploy/envoy/ext_authz.toml");
    let mut with_envoy = Workdir::new().start_with(&["--demo", "--ext-authz", mapping.to_str().unwrap()]);
    let target = with_envoy.work.unix_target();
    rt.block_on(async {
        // A tonic client on the socket still works.
        let channel = warden::api::client::connect(&target).await.expect("connect");
        let allowed = warden::api::pb::authz_service_client::AuthzServiceClient::new(channel)
            .check(warden::api::pb::CheckRequest {
                subject: "alice".into(),
                org: "acme".into(),
                resource: "apps/web".into(),
                action: "app:write".into(),
                ..Default::default()
            })
            .await
            .expect("Check over the socket")
            .into_inner()
            .allowed;
        assert!(allowed);

        for symbol in [
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection",
            ENVOY,
            "warden.v1.AuthzService",
        ] {
            assert!(
                !v1_file_of(&target, symbol).await.unwrap_or_default().is_empty(),
                "v1: {symbol}"
            );
            assert!(
                !v1alpha_file_of(&target, symbol)
                    .await
                    .unwrap_or_default()
                    .is_empty(),
                "v1alpha: {symbol}"
            );
        }
        assert_eq!(health(&target, ENVOY).await, Some(ServingStatus::Serving));
    });
    with_envoy.stop();

    let mut plain = Workdir::new().start_with(&["--demo"]);
    let target = plain.work.unix_target();
    rt.block_on(async {
        assert_eq!(
            health(&target, "warden.v1.AuthzService").await,
            Some(ServingStatus::Serving)
        );
        assert_eq!(health(&target, ENVOY).await, None, "not served, not in health");
        let err = v1_file_of(&target, ENVOY)
            .await
            .expect_err("not served, not in reflection");
        assert_eq!(err, tonic::Code::NotFound as i32);
        assert!(
            !v1alpha_file_of(&target, "grpc.reflection.v1.ServerReflection")
                .await
                .unwrap()
                .is_empty()
        );
    });
    plain.stop();
}

/// The encoded file descriptors v1 reflection returns for `symbol`, or its error code.
async fn v1_file_of(target: &str, symbol: &str) -> Result<Vec<Vec<u8>>, i32> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let channel = warden::api::client::connect(target).await.expect("connect");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_string())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let response = stream.message().await.map_err(|status| status.code() as i32)?;
    match response.and_then(|r| r.message_response) {
        Some(MessageResponse::FileDescriptorResponse(f)) => Ok(f.file_descriptor_proto),
        Some(MessageResponse::ErrorResponse(e)) => Err(e.error_code),
        other => panic!("unexpected reflection response {other:?}"),
    }
}

/// The same through v1alpha.
async fn v1alpha_file_of(target: &str, symbol: &str) -> Result<Vec<Vec<u8>>, i32> {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let channel = warden::api::client::connect(target).await.expect("connect");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_string())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let response = stream.message().await.map_err(|status| status.code() as i32)?;
    match response.and_then(|r| r.message_response) {
        Some(MessageResponse::FileDescriptorResponse(f)) => Ok(f.file_descriptor_proto),
        Some(MessageResponse::ErrorResponse(e)) => Err(e.error_code),
        other => panic!("unexpected reflection response {other:?}"),
    }
}
