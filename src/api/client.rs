//! Connecting to a Warden daemon: one helper for the CLI, tests and any other client,
//! so that `unix:PATH` and `tcp:ADDR` mean the same thing everywhere.

use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0:?}: expected unix:PATH or tcp:HOST:PORT")]
    BadTarget(String),
    #[error("connecting to {target}: {source}")]
    Transport {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Open a channel to `target` (`unix:PATH` or `tcp:HOST:PORT`).
pub async fn connect(target: &str) -> Result<Channel, ConnectError> {
    let transport = |source| ConnectError::Transport {
        target: target.to_string(),
        source,
    };
    if let Some(path) = target.strip_prefix("unix:").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        // The URI is required by the HTTP/2 layer but never resolved: the connector
        // below ignores it and dials the socket.
        Endpoint::from_static("http://localhost")
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(transport)
    } else if let Some(addr) = target.strip_prefix("tcp:").filter(|a| !a.is_empty()) {
        Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| ConnectError::BadTarget(target.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(transport)
    } else {
        Err(ConnectError::BadTarget(target.to_string()))
    }
}
