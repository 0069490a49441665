//! The gRPC server: one router (authz, admin, directory, health, reflection) served on every
//! bound listener, and behind the optional HTTP/JSON gateway, until shutdown, then drained.
//!
//! Health follows the daemon's life: every service is NOT_SERVING until the
//! listeners run (the caller has loaded the policy and the index by then), SERVING
//! while they do, and NOT_SERVING again once shutdown begins.

use crate::api::admin::{Admin, DirectoryStats};
use crate::api::auth::TcpAuthLayer;
use crate::api::authz::Authz;
use crate::api::connections::{self, ConnectionLimits, Framing};
use crate::api::directory::Directory;
use crate::api::ext_authz::{ExtAuthz, Mapping as ExtAuthzMapping};
use crate::api::http::{self, Gateway};
use crate::api::limits::{InFlightLayer, MAX_CONCURRENT_STREAMS};
use crate::api::listener::Bound;
use crate::api::logs::decisions::DecisionLog;
use crate::api::metrics::Metrics;
use crate::api::reload::PolicyReloader;
use crate::api::rpc_metrics::RpcMetricsLayer;
use crate::api::shutdown::{Shutdown, ShutdownTrigger};
use crate::api::{FILE_DESCRIPTOR_SET, pb};
use crate::engine::Engine;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;

/// How long in-flight calls get to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Names of the warden services this server registers, as health and reflection
/// report them.
pub const SERVICE_NAMES: &[&str] = &[
    <pb::authz_service_server::AuthzServiceServer<Authz> as NamedService>::NAME,
    <pb::admin_service_server::AdminServiceServer<Admin> as NamedService>::NAME,
    <pb::org_service_server::OrgServiceServer<Directory> as NamedService>::NAME,
    <pb::member_service_server::MemberServiceServer<Directory> as NamedService>::NAME,
    <pb::team_service_server::TeamServiceServer<Directory> as NamedService>::NAME,
    <pb::app_service_server::AppServiceServer<Directory> as NamedService>::NAME,
    <pb::user_service_server::UserServiceServer<Directory> as NamedService>::NAME,
    <pb::invitation_service_server::InvitationServiceServer<Directory> as NamedService>::NAME,
    <pb::org_lifecycle_service_server::OrgLifecycleServiceServer<Directory> as NamedService>::NAME,
    <pb::domain_service_server::DomainServiceServer<Directory> as NamedService>::NAME,
    <pb::token_service_server::TokenServiceServer<Directory> as NamedService>::NAME,
    <pb::audit_service_server::AuditServiceServer<Directory> as NamedService>::NAME,
    <pb::collaborator_service_server::CollaboratorServiceServer<Directory> as NamedService>::NAME,
    <pb::publishing_service_server::PublishingServiceServer<Directory> as NamedService>::NAME,
    <pb::security_service_server::SecurityServiceServer<Directory> as NamedService>::NAME,
    <pb::usage_service_server::UsageServiceServer<Directory> as NamedService>::NAME,
];

/// Envoy's external authorization service, registered when a mapping is configured.
pub const EXT_AUTHZ_NAME: &str =
    <envoy_types::ext_authz::v3::pb::AuthorizationServer<ExtAuthz> as NamedService>::NAME;

/// Everything the services read; built by the startup sequence.
pub struct Services {
    pub engine: Arc<Engine>,
    pub reloader: Arc<PolicyReloader>,
    /// Counts for `GetStats`; the store in the daemon, absent only in tests of the
    /// admin service without one.
    pub stats: Option<Arc<dyn DirectoryStats>>,
    /// The directory behind the Org/Member/Team/App/User services.
    pub store: Arc<Store>,
    /// Decision counters for the metrics listener; also told when serving starts and
    /// stops, for `/healthz`.
    pub metrics: Arc<Metrics>,
    /// Where to serve the HTTP/JSON gateway ([`crate::api::http`]), if anywhere.
    pub http: Option<tokio::net::TcpListener>,
    /// Where to serve the web console ([`crate::api::console`]) with the gateway on the
    /// same origin, if anywhere.
    pub ui: Option<tokio::net::TcpListener>,
    /// The Envoy ext_authz mapping; `None` leaves `envoy.service.auth.v3.Authorization`
    /// unregistered (UNIMPLEMENTED), so Envoy fails closed unless told otherwise.
    pub ext_authz: Option<Arc<ExtAuthzMapping>>,
    /// The sampled decision log every check is offered to; `None` logs nothing.
    pub decision_log: Option<Arc<DecisionLog>>,
    /// Bearer token and TLS for TCP listeners.
    pub transport: Transport,
    /// Cluster mode: directory writes go through the shared log (`None` on a single node).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// How the listeners protect themselves: bearer token and TLS for TCP (Unix-socket
/// callers are trusted by file permission and get neither), and for every listener the
/// bounds on calls and connections.
#[derive(Clone)]
pub struct Transport {
    /// SHA-256 of the bearer token TCP callers must present (see [`crate::api::auth`]).
    pub token_sha256: Option<[u8; 32]>,
    /// TLS for TCP listeners.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Calls in flight at once, over all listeners (see [`crate::api::limits`]).
    pub max_in_flight: usize,
    /// Calls parked in a `min_revision` wait at once, outside `max_in_flight`.
    pub max_revision_waiters: usize,
    /// Longest `min_revision` wait.
    pub min_revision_wait: Duration,
    /// Connection cap, timeouts and keep-alive of every listener (see
    /// [`crate::api::connections`]).
    pub connections: ConnectionLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("listener {listener}: {source}")]
    Listener {
        listener: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("listener {0} stopped unexpectedly")]
    Crashed(String),
    #[error("HTTP/JSON gateway: {0}")]
    Gateway(#[from] crate::api::http::GatewayError),
    #[error("HTTP/JSON listener: {0}")]
    Http(std::io::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// Serve `services` on every listener until `shutdown` fires, then drain in-flight
/// calls (bounded by [`DRAIN_TIMEOUT`]). Socket files are removed when this returns.
pub async fn run(services: Services, listeners: Vec<Bound>, shutdown: Shutdown) -> Result<(), ServeError> {
    // The services this server registers: the warden ones, and Envoy's when served.
    let has_ext_authz = services.ext_authz.is_some();
    let served: Vec<&'static str> = SERVICE_NAMES
        .iter()
        .copied()
        .chain(has_ext_authz.then_some(EXT_AUTHZ_NAME))
        .collect();
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, &served, ServingStatus::NotServing).await;

    // Advertise exactly what this server registers. Both reflection versions know
    // both reflection descriptors, so either can describe the other.
    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        let b = served
            .iter()
            .chain(&[
                tonic_health::pb::health_server::SERVICE_NAME,
                tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
                tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
            ])
            .fold(b, |b, name| b.with_service_name(*name))
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
        if has_ext_authz {
            b.register_encoded_file_descriptor_set(crate::api::ext_authz::FILE_DESCRIPTOR_SET)
        } else {
            b
        }
    };
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure()).build_v1()?;
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure()).build_v1alpha()?;

    let directory = Directory::new(services.store, services.engine.clone())
        .with_cluster(services.cluster.clone())
        .with_shutdown(shutdown.clone());
    let ext_authz = services.ext_authz.map(|m| {
        ExtAuthz::new(services.engine.clone(), m, services.metrics.clone())
            .with_decision_log(services.decision_log.clone())
            .into_server()
    });
    let authz = Authz::new(services.engine.clone())
        .with_metrics(services.metrics.clone())
        .with_decision_log(services.decision_log.clone())
        .with_usage_counting()
        .with_max_wait(services.transport.min_revision_wait);
    let history =
        crate::api::counter_history::CounterHistory::spawn(services.metrics.clone(), shutdown.clone());
    let admin = Admin::new(services.reloader, services.engine, services.stats)
        .with_metrics(services.metrics.clone())
        .with_counter_history(history)
        .with_cluster(services.cluster);
    // The one set of services behind every listener and the HTTP/JSON gateway.
    let mut routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(authz.into_server())
        .add_service(admin.into_server())
        .add_service(directory.org_server())
        .add_service(directory.member_server())
        .add_service(directory.team_server())
        .add_service(directory.app_server())
        .add_service(directory.user_server())
        .add_service(directory.invitation_server())
        .add_service(directory.lifecycle_server())
        .add_service(directory.domain_server())
        .add_service(directory.token_server())
        .add_service(directory.audit_server())
        .add_service(directory.collaborator_server())
        .add_service(directory.publishing_server())
        .add_service(directory.security_server())
        .add_service(directory.usage_server());
    if let Some(ext_authz) = ext_authz {
        routes = routes.add_service(ext_authz);
    }
    // One router per kind of listener: the same services, but TCP listeners may add TLS.
    // Both check bearer tokens for TCP callers (the layer lets Unix-socket callers by).
    // One in-flight bound shared by every listener and the gateway.
    let in_flight = InFlightLayer::new(
        services.transport.max_in_flight,
        services.transport.max_revision_waiters,
    );
    let limits = services.transport.connections;
    let auth = TcpAuthLayer::new(services.transport.token_sha256);
    // Outermost, so calls the auth and in-flight layers refuse are counted too.
    let rpc_metrics = RpcMetricsLayer::new(services.metrics.rpc());
    let router_for = |builder: Server<tower::layer::util::Identity>| {
        builder
            .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
            // Pings find dead peers; the idle timeout (in `connections`) closes live but
            // unused ones, and pings do not count as use there.
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .layer(rpc_metrics.clone())
            .layer(auth.clone())
            .layer(in_flight.clone())
            .layer(crate::api::request_id::RequestIdLayer)
            .add_routes(routes.clone())
    };
    let router = router_for(Server::builder());
    let tls = services.transport.tls.is_some();
    let tcp_router = match services.transport.tls.clone() {
        Some(tls) => router_for(Server::builder().tls_config(tls).map_err(ServeError::Tls)?),
        None => router.clone(),
    };

    // The listeners stop on this server's own signal, fired on shutdown or when one
    // listener fails, so a failure drains the others instead of leaving them serving.
    let (stop_all, stop) = ShutdownTrigger::new();
    let stop_accepting = stop.clone();
    let mut servers = JoinSet::new();
    let mut socket_files = Vec::new();
    for listener in listeners {
        let name = listener.describe();
        let router = router.clone();
        let stop = stop.clone().wait();
        tracing::info!(listener = %name, "listening");
        match listener {
            Bound::Unix(l, file) => {
                socket_files.push(file);
                let incoming = connections::incoming(
                    l,
                    limits,
                    Framing::H2,
                    name.clone(),
                    stop_accepting.clone().wait(),
                );
                servers.spawn(async move {
                    let result = router
                        .serve_with_incoming_shutdown(crate::api::uds_authority::incoming(incoming), stop)
                        .await;
                    (name, result)
                });
            }
            Bound::Tcp(l) => {
                let router = tcp_router.clone();
                let framing = if tls { Framing::Opaque } else { Framing::H2 };
                let incoming =
                    connections::incoming(l, limits, framing, name.clone(), stop_accepting.clone().wait());
                servers.spawn(async move {
                    let result = router.serve_with_incoming_shutdown(incoming, stop).await;
                    (name, result)
                });
            }
        }
    }
    let http_task = match services.http {
        Some(l) => {
            // In-process calls carry no Unix-socket marker, so the bearer-token layer
            // treats them as the TCP callers they are; the in-flight bound covers them too.
            let gateway = Gateway::new(
                tower::ServiceBuilder::new()
                    .layer(rpc_metrics.clone())
                    .layer(auth.clone())
                    .layer(in_flight.clone())
                    .layer(crate::api::request_id::RequestIdLayer)
                    .service(routes.clone()),
            )?;
            tracing::info!(listener = %format!("tcp:{}", l.local_addr().map_err(ServeError::Http)?), "serving HTTP/JSON");
            Some(tokio::spawn(http::serve(l, gateway, limits, stop.clone().wait())))
        }
        None => None,
    };
    let ui_task = match services.ui {
        Some(l) => {
            // The same gateway, behind the same layers, with the console's pages beside it.
            let gateway = Gateway::new(
                tower::ServiceBuilder::new()
                    .layer(rpc_metrics.clone())
                    .layer(auth.clone())
                    .layer(in_flight.clone())
                    .service(routes.clone()),
            )?;
            tracing::info!(listener = %format!("tcp:{}", l.local_addr().map_err(ServeError::Http)?), "serving the console");
            Some(tokio::spawn(crate::api::console::serve(
                l,
                gateway,
                limits,
                stop.clone().wait(),
            )))
        }
        None => None,
    };
    set_health(&health, &served, ServingStatus::Serving).await;
    services.metrics.set_serving(true);

    // Serve until shutdown, unless a listener fails first.
    let outcome = tokio::select! {
        () = shutdown.clone().wait() => Ok(()),
        Some(early) = servers.join_next() => match early {
            Ok((name, Err(source))) => Err(ServeError::Listener { listener: name, source }),
            Ok((name, Ok(()))) => Err(ServeError::Crashed(name)),
            Err(join) => Err(ServeError::Crashed(join.to_string())),
        },
    };
    set_health(&health, &served, ServingStatus::NotServing).await;
    services.metrics.set_serving(false);
    stop_all.trigger();
    if outcome.is_ok() {
        tracing::info!("shutting down; draining in-flight calls");
    }

    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(done) = servers.join_next().await {
            if let Ok((name, Err(e))) = done {
                tracing::warn!(listener = %name, error = %e, "listener failed while draining");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "calls still in flight after {} s; closing them",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    for (name, task) in [("HTTP/JSON", http_task), ("console", ui_task)] {
        let Some(task) = task else { continue };
        match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "{name} listener failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "{name} listener crashed"),
            Ok(Ok(Ok(()))) | Err(_) => {}
        }
    }
    drop(servers);
    drop(socket_files);
    outcome
}

async fn set_health(health: &tonic_health::server::HealthReporter, served: &[&str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in served {
        health.set_service_status(*name, status).await;
    }
}
