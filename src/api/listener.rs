//! Where the daemon listens: `unix:PATH` and `tcp:ADDR` addresses, binding them, and
//! the Unix socket file's life cycle.
//!
//! The socket file is the trust boundary for local callers (whoever may open it may
//! ask), so it is created `0660`, a stale one is replaced only when it is provably
//! dead, a live daemon's socket is never stolen, and the file is removed on exit only
//! if it is still the one this process created. A socket directory that others may
//! write to is refused ([`require_private_dir`]): they could swap the socket.

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
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let existed = parent.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(SOCKET_DIR_MODE)
        .create(parent)?;
    require_private_dir(parent, !existed, "socket directory")?;
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

/// Refuse a directory that users other than the owner (and its group's members) could
/// write to: whoever may write the directory may replace the socket or the database in
/// it with their own (another local user swapping `warden.sock` for a socket that
/// answers "allowed"). A directory Warden has just `created` is tightened to owner and
/// group instead, with a warning. A sticky directory (`/tmp`, mode `1777`) is accepted:
/// there only a file's owner may remove or rename it.
pub fn require_private_dir(dir: &Path, created: bool, what: &str) -> std::io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode();
    const STICKY: u32 = 0o1000;
    if mode & 0o022 == 0 || mode & STICKY != 0 {
        return Ok(());
    }
    if created {
        let tightened = mode & 0o7755;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(tightened))?;
        tracing::warn!(
            dir = %dir.display(),
            was = format!("{:04o}", mode & 0o7777),
            now = format!("{:04o}", tightened & 0o7777),
            "{what} was created writable by group or others (umask or default ACL?); tightened"
        );
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "{what} {} is writable by {} (mode {:04o}): another local user could replace the \
             socket or the database in it. Run `chmod go-w {}` (or use a directory only Warden's \
             user and group can write)",
            dir.display(),
            if mode & 0o002 != 0 { "others" } else { "its group" },
            mode & 0o7777,
            dir.display()
        ),
    ))
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
    async fn a_socket_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        for mode in [0o777, 0o770] {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = bind_all(&[Listen::Unix(open.join("w.sock"))])
                .await
                .err()
                .unwrap();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{mode:o}: {err}"
            );
            assert!(err.to_string().contains("chmod go-w"), "{err}");
            assert!(!open.join("w.sock").exists());
        }
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(
            bind_all(&[Listen::Unix(open.join("w.sock"))]).await.is_ok(),
            "sticky is fine"
        );
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
