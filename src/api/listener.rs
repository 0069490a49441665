//! Where the daemon listens: `unix:PATH` and `tcp:ADDR` addresses, binding them, and
//! the Unix socket file's life cycle.
//!
//! The socket file is the trust boundary for local callers (whoever may open it may
//! ask), so it is created `0660`, a stale one is replaced only when it is provably
//! dead, a live daemon's socket is never stolen, and the file is removed on exit only
//! if it is still the one this process created.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener, UnixStream};

/// Permissions of the socket file: owner and group may call.
pub const SOCKET_MODE: u32 = 0o660;
/// Permissions of a socket's parent directory when Warden creates it.
const SOCKET_DIR_MODE: u32 = 0o750;
/// How long to wait for an existing socket to answer before calling it live.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One listen address, as written on the command line: `unix:PATH` or `tcp:ADDR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!(
                    "{s:?}: unix: needs a socket path, e.g. unix:./data/warden.sock"
                ));
            }
            Ok(Listen::Unix(PathBuf::from(path)))
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            addr.parse()
                .map(Listen::Tcp)
                .map_err(|e| format!("{s:?}: tcp: needs IP:PORT, e.g. tcp:127.0.0.1:50051 ({e})"))
        } else {
            Err(format!("{s:?}: expected unix:PATH or tcp:IP:PORT"))
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// A listener that is bound and ready to accept.
pub enum Bound {
    Unix(UnixListener, SocketFile),
    Tcp(TcpListener),
}

impl Bound {
    /// The address actually bound (a `tcp:…:0` request shows its chosen port).
    pub fn describe(&self) -> String {
        match self {
            Bound::Unix(_, file) => format!("unix:{}", file.path.display()),
            Bound::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp:{a}"),
                Err(_) => "tcp:?".into(),
            },
        }
    }
}

/// Bind every address, or none: on the first failure the ones already bound are
/// dropped (and their socket files removed).
pub async fn bind_all(listens: &[Listen]) -> std::io::Result<Vec<Bound>> {
    let mut bound = Vec::with_capacity(listens.len());
    for l in listens {
        bound.push(bind(l).await?);
    }
    Ok(bound)
}

async fn bind(listen: &Listen) -> std::io::Result<Bound> {
    match listen {
        Listen::Tcp(addr) => TcpListener::bind(addr)
            .await
            .map(Bound::Tcp)
            .map_err(|e| with_context(e, format!("tcp:{addr}"))),
        Listen::Unix(path) => bind_unix(path)
            .await
            .map_err(|e| with_context(e, format!("unix:{}", path.display()))),
    }
}

async fn bind_unix(path: &Path) -> std::io::Result<Bound> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(parent)?;
    }
    clear_stale_socket(path).await?;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
    };
    Ok(Bound::Unix(listener, file))
}

/// Make way for a new socket at `path`: nothing there is fine; a socket nobody
/// answers on is removed; a live socket or any other kind of file is an error.
async fn clear_stale_socket(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a socket; refusing to replace it (remove it or choose another --listen)",
        ));
    }
    match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)?;
            tracing::info!(path = %path.display(), "removed stale socket file");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok(_)) | Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another process is serving on this socket; stop it or choose another --listen",
        )),
    }
}

/// Removes the socket file on drop, if the file at the path is still the socket this
/// process bound (a successor daemon may have replaced it).
pub struct SocketFile {
    path: PathBuf,
    /// (device, inode) of the socket file at bind time.
    identity: (u64, u64),
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity && m.file_type().is_socket());
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove socket file");
        }
    }
}

fn with_context(e: std::io::Error, what: String) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_addresses() {
        assert_eq!("unix:/tmp/w.sock".parse(), Ok(Listen::Unix("/tmp/w.sock".into())));
        assert_eq!(
            "tcp:127.0.0.1:50051".parse(),
            Ok(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 50051))))
        );
        assert!("unix:".parse::<Listen>().is_err());
        assert!("tcp:localhost".parse::<Listen>().is_err());
        assert!("http://x".parse::<Listen>().is_err());
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_and_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("w.sock");
        let listen = Listen::Unix(path.clone());

        let first = bind_all(std::slice::from_ref(&listen)).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let err = bind_all(std::slice::from_ref(&listen)).await.err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

        // A dead socket left behind: the listener is gone but the file stays.
        let Bound::Unix(listener, file) = first.into_iter().next().unwrap() else {
            unreachable!()
        };
        drop(listener);
        std::mem::forget(file);
        assert!(path.exists());
        let second = bind_all(std::slice::from_ref(&listen)).await.unwrap();
        drop(second);
        assert!(!path.exists(), "socket file removed on drop");
    }

    #[tokio::test]
    async fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sock");
        std::fs::write(&path, "not a socket").unwrap();
        let err = bind_all(&[Listen::Unix(path.clone())]).await.err().unwrap();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert!(path.exists());
    }
}
