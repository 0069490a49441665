//! The web console (`serve --ui tcp:127.0.0.1:8081`): organizations, the check playground,
//! policy status and the activity log, as a few static pages compiled into the binary.
//!
//! It owns no API and no business rule. The listener serves the HTTP/JSON gateway
//! ([`crate::api::http`]) itself, behind the same layers (bearer token, in-flight bound,
//! per-RPC metrics), and beside it `GET /` and the page's script and stylesheet. The page
//! calls `POST /warden.v1.<Service>/<Method>` on its own origin like any other client, so
//! every refusal it shows is the gateway's, word for word. Writes carry the actor the user
//! typed; calls reserved to the Unix socket come back PERMISSION_DENIED, and the page says
//! why.
//!
//! Browsers add two risks a curl user does not: another site posting to the console (the
//! gateway only takes `application/json`, which a cross-site form cannot send, and a request
//! whose `Origin` is not the console's own is refused here), and DNS rebinding (a name that
//! resolves to 127.0.0.1: on a loopback listener the `Host` must be a loopback name). The
//! pages set a strict Content-Security-Policy (no inline script, nothing from elsewhere) and
//! refuse framing.

use crate::api::http::{Gateway, error};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// Headers on every page and asset: nothing runs but our own script, nothing frames us.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The console's router: the pages, then the gateway's routes, behind the origin checks.
pub fn router(gateway: Gateway, local: SocketAddr) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route(
            "/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        // The action catalog, for completion in the check playground: a fact of the build,
        // not of the directory, so it ships like the page itself.
        .route(
            "/catalog.json",
            get(|| async {
                let body = serde_json::json!({ "actions": crate::directory::catalog::ACTIONS }).to_string();
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }),
        )
        .merge(gateway.router())
        .layer(middleware::from_fn(move |req: Request, next: Next| async move {
            match refuse_foreign(req.headers(), local) {
                Some(refusal) => refusal,
                None => next.run(req).await,
            }
        }))
}

/// Serve the console on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    limits: crate::api::connections::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    crate::api::connections::serve_http(listener, router(gateway, local), limits, shutdown).await
}

/// The host part of a `Host` header or an origin's authority (`[::1]:8081` → `::1`).
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A request from another site, or to a loopback console under a name that is not a
/// loopback one (DNS rebinding), is refused with PERMISSION_DENIED before any route runs.
fn refuse_foreign(headers: &HeaderMap, local: SocketAddr) -> Option<Response> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if local.ip().is_loopback() && !is_loopback_name(host_of(host)) {
        return Some(error(
            tonic::Code::PermissionDenied,
            &format!("host `{host}`: this console listens on loopback; open it as http://{local}/"),
        ));
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())?;
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
    (authority != host).then(|| {
        error(
            tonic::Code::PermissionDenied,
            &format!("origin `{origin}`: the console's gateway answers only its own pages"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_its_own_origin_and_loopback_names_pass() {
        let local: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let ok = headers(&[("host", "127.0.0.1:8081"), ("origin", "http://127.0.0.1:8081")]);
        assert!(refuse_foreign(&ok, local).is_none());
        assert!(refuse_foreign(&headers(&[("host", "localhost:8081")]), local).is_none());
        assert!(refuse_foreign(&headers(&[("host", "[::1]:8081")]), local).is_none());
        let other_site = headers(&[("host", "127.0.0.1:8081"), ("origin", "https://evil.example")]);
        assert!(refuse_foreign(&other_site, local).is_some());
        let rebound = headers(&[
            ("host", "evil.example:8081"),
            ("origin", "http://evil.example:8081"),
        ]);
        assert!(refuse_foreign(&rebound, local).is_some());
        let remote: SocketAddr = "10.0.0.5:8081".parse().unwrap();
        assert!(refuse_foreign(&headers(&[("host", "warden.internal:8081")]), remote).is_none());
    }
}
