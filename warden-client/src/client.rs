//! [`Client`]: the questions applications ask, with plain Rust types.
//!
//! It wraps the generated `AuthzService` client, follows `LookupResources` and
//! `LookupSubjects` pages to the end, and retries calls that fail with UNAVAILABLE (the
//! daemon restarting, the socket not there yet) a bounded number of times with
//! exponential backoff. Every other failure surfaces at once: retrying an
//! INVALID_ARGUMENT cannot help, and a denial is an answer, not an error.

use crate::pb;
use crate::pb::authz_service_client::AuthzServiceClient;
use crate::transport::{self, BadToken, Bearer, ConnectError, ConnectOptions, Tls};
use std::time::Duration;
use tonic::transport::Channel;

/// Why a call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target is not `unix:PATH` or `tcp:HOST:PORT`.
    #[error("{0:?}: expected unix:PATH or tcp:HOST:PORT")]
    BadTarget(String),
    /// The options do not fit the target (TLS on a Unix socket) or cannot be sent (a
    /// token that is not a header value).
    #[error("{0}")]
    BadOptions(String),
    /// The daemon could not be reached (or kept answering UNAVAILABLE) through every
    /// attempt; `last` is the final failure.
    #[error("warden unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    /// The daemon refused the call; the status message names the field or reason. A call
    /// that outlived its deadline ([`Client::with_timeout`]) is DEADLINE_EXCEEDED here.
    #[error("warden refused the call: {}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
}

impl From<BadToken> for Error {
    fn from(e: BadToken) -> Self {
        Error::BadOptions(e.to_string())
    }
}

/// Everything about a connection besides its address. `Options::default()` is what
/// [`Client::connect`] uses: plaintext, no token, no deadline, [`Retry::default`].
#[derive(Clone, Default)]
pub struct Options {
    /// TLS for a `tcp:` address (a daemon serving with `--tls-cert`).
    pub tls: Option<Tls>,
    /// Sent as `authorization: Bearer <token>` on every call: what a daemon started with
    /// `--tcp-token-sha256` asks of TCP callers (the Unix socket does not need it).
    pub token: Option<String>,
    /// Deadline of every call, sent to the daemon as `grpc-timeout` and kept here too;
    /// [`Client::with_timeout`] changes it per call site. `None`: no deadline.
    pub timeout: Option<Duration>,
    /// How persistently to retry UNAVAILABLE.
    pub retry: Retry,
}

/// Why one item of a [`Client::batch`] got no decision (the other items still do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ItemError {
    pub code: tonic::Code,
    /// Names the item and field, e.g. `items[1].subject: must not be empty`.
    pub message: String,
}

/// How persistently to retry UNAVAILABLE. The default makes 3 attempts, waiting
/// 100 ms then 200 ms: enough to ride out a daemon restart's socket swap, short
/// enough that a caller on a request path is not held for seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included; at least 1.
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub initial_backoff: Duration,
    /// Cap on any single wait.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl Retry {
    fn backoff(&self, failed_attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failed_attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

impl std::fmt::Debug for Options {
    // The token is a secret: never in a log line or a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("tls", &self.tls.as_ref().map(|t| &t.domain))
            .field("token", &self.token.as_ref().map(|_| ".."))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A connection to one Warden daemon. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    retry: Retry,
    /// Sent as `min_revision` on every call (0: whatever the daemon has).
    min_revision: u64,
    /// Deadline of each call (each attempt, when UNAVAILABLE is retried).
    timeout: Option<Duration>,
    token: Option<Bearer>,
}

/// A decision with the directory revision it was made at, and, from
/// [`Client::explain`], why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The directory revision the daemon decided at; pass it to [`Client::at_revision`]
    /// to read at least this state on another connection.
    pub revision: u64,
    pub explanation: Option<Explanation>,
}

/// The decisive rule and the role path behind a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// `allow` or `deny`; for a deny no rule matched when `rule_file` is empty.
    pub effect: String,
    pub rule_file: String,
    pub rule_line: u32,
    pub rule_text: String,
    /// e.g. `bob -[role:org_contributor@acme]-> role:org_contributor`.
    pub role_path: String,
}

impl Client {
    /// Connect to `target` (`unix:PATH` or `tcp:HOST:PORT`) with the default [`Retry`].
    pub async fn connect(target: &str) -> Result<Self, Error> {
        Self::connect_with(target, Retry::default()).await
    }

    /// Connect to the address in `WARDEN_CONNECT`, or `unix:./data/warden.sock` when it
    /// is unset: the same name the `warden` CLI and the Python package read.
    pub async fn connect_from_env() -> Result<Self, Error> {
        Self::connect(&transport::target_from_env()).await
    }

    /// Connect with an explicit retry policy, used for the connection and every call.
    pub async fn connect_with(target: &str, retry: Retry) -> Result<Self, Error> {
        Self::connect_with_options(
            target,
            Options {
                retry,
                ..Options::default()
            },
        )
        .await
    }

    /// Connect with TLS, a bearer token, a deadline per call and a retry policy.
    pub async fn connect_with_options(target: &str, options: Options) -> Result<Self, Error> {
        let token = options.token.as_deref().map(Bearer::new).transpose()?;
        let attempts = options.retry.attempts.max(1);
        let retry = Retry {
            attempts,
            ..options.retry
        };
        let connect = ConnectOptions {
            tls: options.tls,
            ..ConnectOptions::default()
        };
        let mut failed = 0;
        loop {
            match transport::connect_with(target, &connect).await {
                Ok(channel) => {
                    return Ok(Self {
                        channel,
                        retry,
                        min_revision: 0,
                        timeout: options.timeout,
                        token,
                    });
                }
                Err(ConnectError::BadTarget(t)) => return Err(Error::BadTarget(t)),
                Err(e @ ConnectError::TlsOnUnix { .. }) => return Err(Error::BadOptions(e.to_string())),
                Err(e @ ConnectError::Transport { .. }) => {
                    failed += 1;
                    if failed >= attempts {
                        return Err(Error::Unavailable {
                            attempts,
                            last: error_chain(&e),
                        });
                    }
                    tokio::time::sleep(retry.backoff(failed)).await;
                }
            }
        }
    }

    /// A client on the same connection whose every call is answered at directory
    /// revision `min_revision` or later: read your own writes by passing the revision a
    /// directory mutation returned. The daemon waits briefly for a revision it has not
    /// applied yet, then refuses with FAILED_PRECONDITION ([`Error::Status`]).
    pub fn at_revision(&self, min_revision: u64) -> Client {
        Client {
            min_revision,
            ..self.clone()
        }
    }

    /// A client on the same connection whose every call must be answered within
    /// `timeout` (each attempt, when UNAVAILABLE is retried), or fails with
    /// DEADLINE_EXCEEDED ([`Error::Status`]).
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout: Some(timeout),
            ..self.clone()
        }
    }

    /// The underlying channel, for the other services' generated clients
    /// (`crate::MemberServiceClient::new(client.channel())`; add [`Bearer`] with
    /// `with_interceptor` where a token is needed).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// May `subject` do `action` on `resource` in `org`?
    pub async fn can(&self, subject: &str, org: &str, resource: &str, action: &str) -> Result<bool, Error> {
        Ok(self
            .decide((subject, org, resource, action), false)
            .await?
            .allowed)
    }

    /// [`Client::can`] with the revision the decision was made at.
    pub async fn check(
        &self,
        subject: &str,
        org: &str,
        resource: &str,
        action: &str,
    ) -> Result<Decision, Error> {
        self.decide((subject, org, resource, action), false).await
    }

    /// [`Client::check`] with the decisive rule (`file:line`, effect) and role path.
    pub async fn explain(
        &self,
        subject: &str,
        org: &str,
        resource: &str,
        action: &str,
    ) -> Result<Decision, Error> {
        self.decide((subject, org, resource, action), true).await
    }

    async fn decide(&self, item: (&str, &str, &str, &str), explain: bool) -> Result<Decision, Error> {
        let req = pb::CheckRequest {
            explain,
            min_revision: self.min_revision,
            ..check_request(item)
        };
        let resp = self
            .call(&req, |mut c, r| async move { c.check(r).await })
            .await?;
        Ok(Decision {
            allowed: resp.allowed,
            revision: resp.revision,
            explanation: resp.explanation.map(|e| Explanation {
                effect: e.effect,
                rule_file: e.rule_file,
                rule_line: e.rule_line,
                rule_text: e.rule_text,
                role_path: e.role_path,
            }),
        })
    }

    /// Many checks in one round trip; the answers come back in the order asked. An
    /// item the daemon rejects (say, an empty field) gets an [`ItemError`] without
    /// failing the others.
    pub async fn batch(
        &self,
        items: &[(&str, &str, &str, &str)],
    ) -> Result<Vec<Result<bool, ItemError>>, Error> {
        let req = pb::BatchCheckRequest {
            items: items.iter().copied().map(check_request).collect(),
            min_revision: self.min_revision,
        };
        let resp = self
            .call(&req, |mut c, r| async move { c.batch_check(r).await })
            .await?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| match r.result {
                Some(pb::batch_check_result::Result::Decision(d)) => Ok(d.allowed),
                Some(pb::batch_check_result::Result::Error(e)) => Err(ItemError {
                    code: tonic::Code::from_i32(e.code),
                    message: e.message,
                }),
                None => Err(ItemError {
                    code: tonic::Code::Internal,
                    message: "the daemon sent an empty result".into(),
                }),
            })
            .collect())
    }

    /// Every resource in `org` that `subject` may `action`, all pages followed.
    pub async fn lookup_resources(
        &self,
        subject: &str,
        org: &str,
        action: &str,
    ) -> Result<Vec<String>, Error> {
        self.lookup_resources_paged(subject, org, action, 0).await
    }

    /// [`Client::lookup_resources`] fetching `page_size` entries per round trip (0 is
    /// the daemon's default, 100; at most 1000).
    pub async fn lookup_resources_paged(
        &self,
        subject: &str,
        org: &str,
        action: &str,
        page_size: u32,
    ) -> Result<Vec<String>, Error> {
        let mut all = Vec::new();
        let mut req = pb::LookupResourcesRequest {
            subject: subject.into(),
            org: org.into(),
            action: action.into(),
            page_size,
            min_revision: self.min_revision,
            ..Default::default()
        };
        loop {
            let page = self
                .call(&req, |mut c, r| async move { c.lookup_resources(r).await })
                .await?;
            all.extend(page.resources);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            // Later pages are read at least at the first page's revision, so a
            // directory change mid-iteration cannot make the token meaningless.
            req.min_revision = req.min_revision.max(page.revision);
            req.page_token = page.next_page_token;
        }
    }

    /// Every member of `org` who may `action` on `resource`, all pages followed.
    pub async fn lookup_subjects(
        &self,
        org: &str,
        resource: &str,
        action: &str,
    ) -> Result<Vec<String>, Error> {
        self.lookup_subjects_paged(org, resource, action, 0).await
    }

    /// [`Client::lookup_subjects`] fetching `page_size` entries per round trip (0 is the
    /// daemon's default).
    pub async fn lookup_subjects_paged(
        &self,
        org: &str,
        resource: &str,
        action: &str,
        page_size: u32,
    ) -> Result<Vec<String>, Error> {
        let mut all = Vec::new();
        let mut req = pb::LookupSubjectsRequest {
            org: org.into(),
            resource: resource.into(),
            action: action.into(),
            page_size,
            min_revision: self.min_revision,
            ..Default::default()
        };
        loop {
            let page = self
                .call(&req, |mut c, r| async move { c.lookup_subjects(r).await })
                .await?;
            all.extend(page.subjects);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            req.min_revision = req.min_revision.max(page.revision);
            req.page_token = page.next_page_token;
        }
    }

    /// Run one RPC with the token and deadline, retrying UNAVAILABLE per the retry policy.
    async fn call<M, T, F, Fut>(&self, msg: &M, mut rpc: F) -> Result<T, Error>
    where
        M: Clone,
        F: FnMut(AuthzServiceClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut failed = 0;
        loop {
            let mut req = tonic::Request::new(msg.clone());
            if let Some(token) = &self.token {
                req.metadata_mut().insert("authorization", token.value().clone());
            }
            if let Some(d) = self.timeout {
                req.set_timeout(d);
            }
            let answer = rpc(AuthzServiceClient::new(self.channel.clone()), req);
            let answer = match self.timeout {
                None => answer.await,
                Some(d) => {
                    // The daemon is told the deadline (`grpc-timeout`) and stops working on
                    // the call. tonic's channel enforces it too but reports CANCELLED
                    // ("Timeout expired"); the caller asked for a deadline, so it is told
                    // DEADLINE_EXCEEDED, as every other gRPC client says.
                    let start = tokio::time::Instant::now();
                    match tokio::time::timeout(d, answer).await {
                        Ok(Err(s)) if s.code() == tonic::Code::Cancelled && start.elapsed() >= d => {
                            Err(deadline_exceeded(d))
                        }
                        Ok(a) => a,
                        Err(_) => Err(deadline_exceeded(d)),
                    }
                }
            };
            match answer {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    failed += 1;
                    if failed >= self.retry.attempts {
                        return Err(Error::Unavailable {
                            attempts: self.retry.attempts,
                            last: status.message().to_string(),
                        });
                    }
                    tokio::time::sleep(self.retry.backoff(failed)).await;
                }
                Err(status) => return Err(Error::Status(status)),
            }
        }
    }
}

fn deadline_exceeded(d: Duration) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!("no answer within the deadline of {d:?}"))
}

fn check_request((subject, org, resource, action): (&str, &str, &str, &str)) -> pb::CheckRequest {
    pb::CheckRequest {
        subject: subject.into(),
        org: org.into(),
        resource: resource.into(),
        action: action.into(),
        ..Default::default()
    }
}

/// An error with its sources, `a: b: c`, so "connection refused" is not hidden
/// behind "transport error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_never_print_the_token() {
        let o = Options {
            token: Some("s3cret".into()),
            ..Options::default()
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = Retry::default();
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(2), Duration::from_millis(200));
        assert_eq!(r.backoff(10), Duration::from_secs(1));
        assert_eq!(r.backoff(60), Duration::from_secs(1));
    }
}
