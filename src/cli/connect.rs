//! Where the client-side commands find the daemon: one name, `--connect` /
//! `WARDEN_CONNECT`, on every command that talks to a running daemon (the same variable the
//! `warden-client` crate and the Python package read).
//!
//! The first of these that names an address wins: the flag, the environment variable,
//! `connect = "…"` in `./warden.toml`, the same key in `$XDG_CONFIG_HOME/warden/config.toml`
//! (`~/.config/warden/config.toml` when `XDG_CONFIG_HOME` is unset), and last
//! `unix:./data/warden.sock`, the socket of `warden serve` started in the same directory.
//! So a command finds the daemon from any directory once the variable or a config file
//! names it, and a failure to connect says which address it tried, where that came from,
//! and what to do.

use crate::api::client::{self, ConnectError};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

/// The config file in the working directory; also `warden serve --config`'s usual name (the
/// daemon accepts and ignores the `connect` key, so one file can serve both).
pub const LOCAL_CONFIG: &str = "./warden.toml";

/// `--connect`, flattened into every client-side command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArg {
    /// Daemon address: unix:PATH or tcp:HOST:PORT. Without it: `connect` in ./warden.toml,
    /// then in $XDG_CONFIG_HOME/warden/config.toml, then unix:./data/warden.sock.
    #[arg(
        id = "connect",
        long = "connect",
        global = true,
        env = "WARDEN_CONNECT",
        value_name = "ADDR"
    )]
    pub target: Option<String>,
}

/// Where an address came from, to say so when nothing answers there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--connect` or `WARDEN_CONNECT`.
    Given,
    /// The `connect` key of this config file.
    File(PathBuf),
    /// Nothing named one.
    Default,
}

/// A resolved daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: String,
    pub origin: Origin,
}

impl ConnectArg {
    /// The address to use, by the lookup order above.
    pub fn resolve(&self) -> anyhow::Result<Target> {
        resolve(self.target.as_deref(), &config_files())
    }

    /// Resolve the address and connect, or say what is missing and where it looked.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let target = self.resolve()?;
        client::connect(&target.addr)
            .await
            .map_err(|e| unreachable(&target, &e))
    }
}

/// The config files consulted after the flag and the variable, in order.
pub fn config_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(LOCAL_CONFIG)];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(home) = config_home {
        files.push(home.join("warden/config.toml"));
    }
    files
}

fn resolve(given: Option<&str>, files: &[PathBuf]) -> anyhow::Result<Target> {
    if let Some(addr) = given.filter(|a| !a.is_empty()) {
        return Ok(Target {
            addr: addr.to_string(),
            origin: Origin::Given,
        });
    }
    for file in files {
        if let Some(addr) = connect_key(file)? {
            return Ok(Target {
                addr,
                origin: Origin::File(file.clone()),
            });
        }
    }
    Ok(Target {
        addr: client_default().to_string(),
        origin: Origin::Default,
    })
}

fn client_default() -> &'static str {
    warden_client::DEFAULT_CONNECT
}

/// The `connect` key of a TOML file; `None` when the file does not exist or has no such
/// key. A file that exists but does not parse, or a key that is not an address string, is an
/// error naming the file: a broken config must not silently send a command elsewhere.
fn connect_key(file: &Path) -> anyhow::Result<Option<String>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{}: not a valid TOML file", file.display()))?;
    match table.get("connect") {
        None => Ok(None),
        Some(toml::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => bail!(
            "{}: `connect` must be a daemon address string such as \"unix:/run/warden/warden.sock\" \
             or \"tcp:127.0.0.1:50051\"",
            file.display()
        ),
    }
}

/// A daemon that cannot be reached: the address as tried (a relative socket path is
/// relative to the working directory), what is missing there, where the address came from,
/// and how to start a daemon or point at another.
pub fn unreachable(target: &Target, e: &ConnectError) -> anyhow::Error {
    let addr = &target.addr;
    let from = match &target.origin {
        Origin::Given => "the address came from --connect/WARDEN_CONNECT".to_string(),
        Origin::File(f) => format!("the address came from `connect` in {}", f.display()),
        Origin::Default => {
            let looked: Vec<String> = config_files().iter().map(|f| f.display().to_string()).collect();
            format!(
                "no address was set (looked at --connect, WARDEN_CONNECT, `connect` in {}), so this is the default",
                looked.join(" and ")
            )
        }
    };
    if matches!(e, ConnectError::BadTarget(_)) {
        return anyhow::anyhow!("{e}\n  {from}");
    }
    let hint = "is warden serve running? start it with `warden serve` or set --connect/WARDEN_CONNECT";
    if let Some(path) = addr.strip_prefix("unix:") {
        let shown = std::env::current_dir()
            .map(|d| d.join(path.strip_prefix("./").unwrap_or(path)))
            .unwrap_or_else(|_| PathBuf::from(path));
        let shown = shown.display();
        let what = match std::fs::symlink_metadata(path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => format!("no such file ({shown})"),
            _ => match io_kind(e) {
                Some(std::io::ErrorKind::ConnectionRefused) => {
                    format!("nothing listens on {shown} (a socket file left by a daemon that stopped?)")
                }
                Some(std::io::ErrorKind::PermissionDenied) => format!(
                    "permission denied on {shown}: the socket is for its owner and group (0660); run as a \
                     member of its group"
                ),
                _ => format!("{} ({shown})", innermost(e)),
            },
        };
        return anyhow::anyhow!("{addr}: {what} — {hint}\n  {from}");
    }
    let what = match io_kind(e) {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        _ => innermost(e),
    };
    anyhow::anyhow!("{addr}: {what} — {hint}\n  {from}")
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = c.source();
    }
    None
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn flag_or_env_then_local_file_then_user_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let local = file(
            dir.path(),
            "warden.toml",
            "data = \"./d\"\nconnect = \"tcp:127.0.0.1:7\"\n",
        );
        let user = file(dir.path(), "config.toml", "connect = \"unix:/run/w.sock\"\n");
        let missing = dir.path().join("none.toml");
        let both = [local.clone(), user.clone()];

        let t = resolve(Some("unix:/x.sock"), &both).unwrap();
        assert_eq!((t.addr.as_str(), t.origin), ("unix:/x.sock", Origin::Given));
        let t = resolve(None, &both).unwrap();
        assert_eq!(
            (t.addr.as_str(), t.origin),
            ("tcp:127.0.0.1:7", Origin::File(local))
        );
        let t = resolve(None, &[missing.clone(), user.clone()]).unwrap();
        assert_eq!(
            (t.addr.as_str(), t.origin),
            ("unix:/run/w.sock", Origin::File(user))
        );
        let no_key = file(dir.path(), "other.toml", "data = \"./d\"\n");
        let t = resolve(Some(""), &[missing, no_key]).unwrap();
        assert_eq!(
            (t.addr.as_str(), t.origin),
            ("unix:./data/warden.sock", Origin::Default)
        );
    }

    #[test]
    fn a_broken_config_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let bad = file(dir.path(), "warden.toml", "connect = [\n");
        let err = format!("{:#}", resolve(None, std::slice::from_ref(&bad)).unwrap_err());
        assert!(err.contains(&bad.display().to_string()), "{err}");
        let wrong = file(dir.path(), "w2.toml", "connect = 5\n");
        let err = format!("{:#}", resolve(None, &[wrong]).unwrap_err());
        assert!(err.contains("`connect` must be a daemon address string"), "{err}");
    }
}
