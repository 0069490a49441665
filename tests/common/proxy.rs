//! A TCP proxy for fault tests: network partitions without root or iptables.
//!
//! [`Proxy::start`] listens on a free loopback port and forwards every connection to a
//! target. At runtime it can be switched ([`Proxy::set`]) between
//! - [`Mode::Pass`]: forward both ways;
//! - [`Mode::Blackhole`]: accept, forward nothing, keep every socket open (a peer that hangs,
//!   or packets silently dropped: only timeouts and keep-alives notice);
//! - [`Mode::Cut`]: close every connection (both sides) and close new ones as soon as they are
//!   accepted (the peer sees its connection refused or reset at once).
//!
//! Leaving `Blackhole` closes the connections it held: bytes were lost in the middle of
//! them, as when a real link comes back after its TCP sessions timed out. Each proxy runs on
//! its own small runtime, so it keeps forwarding while the test thread blocks (in a script,
//! a `sleep`, or a synchronous gRPC call); it stops on drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Blackhole,
    Cut,
}

pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Connections held open by `Blackhole` right now.
    held: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// A proxy to `target`, passing traffic, on a free loopback port.
    pub fn start(target: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        // Bound here (not with `block_on`: a test may start a proxy inside its own runtime).
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("proxy listener");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Pass);
        let receiver = mode.subscribe();
        let held = Arc::new(AtomicUsize::new(0));
        let counter = held.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("proxy listener");
            accept_loop(listener, target, receiver, counter).await
        });
        Proxy {
            addr,
            mode,
            held,
            runtime: Some(runtime),
        }
    }

    /// The port clients should dial instead of the target's.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections `Blackhole` holds open now (a connection the kernel accepted
    /// is held once the proxy took it from the listen queue).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Switch the link; existing connections follow at once.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Callable from inside another runtime (a test's `block_on`), unlike a plain drop.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Receiver<Mode>,
    held: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, say: do not spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let now = *mode.borrow();
        match now {
            // Closed before a byte is exchanged: to a NATS client or server this is a
            // refused connection, and it tries another address or again later.
            Mode::Cut => drop(client),
            Mode::Blackhole => {
                tokio::spawn(hold(client, None, mode.clone(), held.clone()));
            }
            Mode::Pass => {
                tokio::spawn(forward(client, target, mode.clone(), held.clone()));
            }
        }
    }
}

/// Forward `client` to `target` until either side closes or the mode leaves `Pass`.
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    held: Arc<AtomicUsize>,
) {
    // A target that is down is a connection closed at once, as without the proxy.
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let changed = tokio::select! {
        // The mode first: bytes sent after `set` returned are never forwarded.
        biased;
        m = mode.wait_for(|m| *m != Mode::Pass) => m.map(|m| *m),
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => return,
    };
    // Cut (or the proxy stopping): both sockets close on return.
    if let Ok(Mode::Blackhole) = changed {
        hold(client, Some(upstream), mode, held).await;
    }
}

/// Keep the sockets open, reading and writing nothing, until the mode leaves `Blackhole`;
/// then close them.
async fn hold(
    client: TcpStream,
    upstream: Option<TcpStream>,
    mut mode: watch::Receiver<Mode>,
    held: Arc<AtomicUsize>,
) {
    held.fetch_add(1, Ordering::SeqCst);
    let _ = mode.wait_for(|m| *m != Mode::Blackhole).await;
    held.fetch_sub(1, Ordering::SeqCst);
    drop((client, upstream));
}
