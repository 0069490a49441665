//! Connections: how many each listener holds, how long one may stay silent, and what the
//! accept loop does when `accept()` fails.
//!
//! Every listener (each gRPC listener, the HTTP/JSON gateway, the metrics listener) accepts
//! in its own loop
//! ([`incoming`]) instead of handing the socket to tonic or axum:
//!
//! - **Cap.** A listener holds at most [`ConnectionLimits::max_connections`]; a connection
//!   beyond it is accepted and closed at once (the client sees the close, never a hang in
//!   the kernel's backlog), and one rate-limited warning says so. Connections already open
//!   keep being served.
//! - **Accept errors.** `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` (out of descriptors or memory)
//!   would fail again at once: the loop backs off (5 ms doubling to 1 s, reset by the next
//!   success) and logs at most one line per [`LOG_EVERY`] with the count of the ones it held
//!   back, instead of spinning a core and flooding the log.
//! - **Handshake timeout.** A new connection must send its first bytes (the HTTP/2 preface
//!   and first frame header, a TLS hello, an HTTP/1 request line) within
//!   [`ConnectionLimits::handshake_timeout`], or it is closed.
//! - **Idle timeout.** A connection that has sent no request for
//!   [`ConnectionLimits::idle_timeout`] and has no stream open is closed. On plaintext
//!   HTTP/2 (the Unix socket, TCP without TLS) the frame headers are followed in both
//!   directions: keep-alive pings, their acks, SETTINGS and WINDOW_UPDATE frames do not
//!   count as requests, and a stream counts as open from the client's HEADERS until the
//!   server ends it (END_STREAM) or either side resets it, so a quiet server stream
//!   (`WatchChanges` waiting for the next change) keeps its connection however long it
//!   waits, and the idle time starts when the last stream ends. Over TLS and HTTP/1 any
//!   byte either way counts (the server's keep-alive pings included).
//!
//! Keep-alive pings (dead peers) are hyper's, configured from the same
//! [`ConnectionLimits`] by the server; the HTTP/1 header read timeout is hyper's too.
//!
//! The per-connection cost on the hot path is counting frame-header bytes as they pass
//! and one clock read per request: a few long-lived busy connections (the sidecar and
//! the bench) are not slowed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;

/// Longest pause between two accept attempts after descriptor or memory exhaustion.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// At most one log line per this long for accept errors and refused connections.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// The HTTP/2 client connection preface (`PRI * HTTP/2.0…`), in bytes.
const H2_PREFACE: usize = 24;
const H2_FRAME_HEADER: usize = 9;
/// Bytes of a TLS hello or HTTP/1 request line that end the handshake wait.
const OPAQUE_HANDSHAKE_BYTES: usize = 16;

/// Connection bounds and timeouts, the same for every listener (`serve --max-connections`
/// and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per listener.
    pub max_connections: usize,
    /// Time to the first bytes of a new connection.
    pub handshake_timeout: Duration,
    /// Time an HTTP/1 gateway client gets to send a request's headers.
    pub header_read_timeout: Duration,
    /// HTTP/2 keep-alive ping after this much quiet.
    pub keepalive_interval: Duration,
    /// A keep-alive ping unanswered this long closes the connection.
    pub keepalive_timeout: Duration,
    /// A connection without a request for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// How the bytes on a connection can be read for request activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Plaintext HTTP/2 (gRPC without TLS): frame headers are followed.
    H2,
    /// TLS or HTTP/1: any byte is activity.
    Opaque,
}

/// A listening socket the accept loop can drive.
pub trait Accept: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    async fn accept_one(&self) -> io::Result<TcpStream> {
        let (s, _) = self.accept().await?;
        // Small request/response messages: never wait to coalesce them.
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

impl Accept for UnixListener {
    type Io = UnixStream;
    async fn accept_one(&self) -> io::Result<UnixStream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Accept connections from `listener` in a task of its own, under `limits`, until
/// `stop` resolves or the returned stream is dropped. `name` labels the log lines.
pub fn incoming<L: Accept>(
    listener: L,
    limits: ConnectionLimits,
    framing: Framing,
    name: String,
    stop: impl Future<Output = ()> + Send + 'static,
) -> ReceiverStream<io::Result<Conn<L::Io>>> {
    let (tx, rx) = mpsc::channel(16);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        tokio::pin!(stop);
        let mut backoff = FIRST_BACKOFF;
        let mut refused_log = RateLimited::default();
        let mut error_log = RateLimited::default();
        loop {
            let accepted = tokio::select! {
                () = &mut stop => break,
                () = tx.closed() => break,
                a = listener.accept_one() => a,
            };
            match accepted {
                Ok(io) => {
                    backoff = FIRST_BACKOFF;
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        // Closed at once: the client learns now instead of hanging.
                        drop(io);
                        refused_log.event(|held_back| {
                            tracing::warn!(
                                listener = %name,
                                max = limits.max_connections,
                                held_back,
                                "connection limit reached; closing new connections (see --max-connections)"
                            )
                        });
                        continue;
                    };
                    if tx.send(Ok(Conn::new(io, slot, limits, framing))).await.is_err() {
                        break;
                    }
                }
                // The peer gave up before we accepted: nothing to wait for.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    error_log.event(|held_back| {
                        tracing::error!(
                            listener = %name,
                            error = %e,
                            retry_in_ms = backoff.as_millis() as u64,
                            held_back,
                            "accepting a connection failed (out of file descriptors? see ulimit -n); open connections keep being served"
                        )
                    });
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tracing::debug!(listener = %name, "accept loop stopped");
    });
    ReceiverStream::new(rx)
}

/// Serve the HTTP/JSON gateway's `router` on `listener` under `limits` until `shutdown`,
/// then let open connections finish their requests (bounded by the server's drain).
///
/// hyper's own connection builder rather than `axum::serve`, for what the latter does
/// not offer: the connection cap and timeouts of [`incoming`], and the HTTP/1 header
/// read timeout (a half-sent request head is closed after
/// [`ConnectionLimits::header_read_timeout`]).
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tokio_stream::StreamExt as _;

    let name = format!("http:{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = incoming(listener, limits, Framing::Opaque, name, async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    let builder = Arc::new(builder);
    let mut open = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            () = &mut shutdown => break,
            c = conns.next() => match c {
                Some(Ok(c)) => c,
                Some(Err(_)) => continue,
                None => break,
            },
        };
        let builder = builder.clone();
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut stopping = stop_tx.subscribe();
        open.spawn(async move {
            let served = builder.serve_connection(TokioIo::new(conn), service);
            tokio::pin!(served);
            let result = tokio::select! {
                r = served.as_mut() => r,
                () = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP/JSON connection ended with an error");
            }
        });
        // Reap the finished ones so the set holds only open connections.
        while open.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while open.join_next().await.is_some() {}
    Ok(())
}

/// A log line at most every [`LOG_EVERY`], carrying how many it held back.
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimited {
    fn event(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.held_back += 1;
            return;
        }
        log(self.held_back);
        self.last = Some(now);
        self.held_back = 0;
    }
}

/// An accepted connection: holds its listener's slot until dropped, and fails its reads
/// once the handshake or idle timeout passes (the server then closes it).
pub struct Conn<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
    limits: ConnectionLimits,
    framing: Framing,
    /// Fires at the handshake deadline, then at idle deadlines. Re-armed only when it
    /// fires early (activity moved `last_request` on), not per request.
    timer: Pin<Box<Sleep>>,
    handshake_done: bool,
    /// When the latest request (or, for [`Framing::Opaque`], byte) arrived, or the last
    /// open stream ended.
    last_request: Instant,
    /// The client's frames ([`Framing::H2`]).
    frames: FrameTracker,
    /// The server's frames ([`Framing::H2`]), to see streams end.
    sent: FrameTracker,
    /// Streams the client opened that the server has not ended and nobody reset. Bounded
    /// by the streams h2 lets a client hold at once (it resets the ones over its limit,
    /// which removes them here).
    open_streams: std::collections::HashSet<u32>,
}

impl<T> Conn<T> {
    fn new(io: T, slot: OwnedSemaphorePermit, limits: ConnectionLimits, framing: Framing) -> Self {
        let now = Instant::now();
        Self {
            io,
            _slot: slot,
            limits,
            framing,
            timer: Box::pin(tokio::time::sleep_until(now + limits.handshake_timeout)),
            handshake_done: false,
            last_request: now,
            frames: FrameTracker::default(),
            sent: FrameTracker::after_preface(),
            open_streams: std::collections::HashSet::new(),
        }
    }

    /// Note bytes written to the peer: on [`Framing::H2`], the streams the server ends.
    fn wrote(&mut self, bytes: &[u8]) {
        match self.framing {
            // HTTP/1 reads nothing while it answers; a long answer is not idleness.
            Framing::Opaque => {
                if self.handshake_done {
                    self.last_request = Instant::now();
                }
            }
            Framing::H2 => {
                if self.open_streams.is_empty() {
                    // Nothing to end; the headers still have to be followed.
                    self.sent.feed(bytes, |_| {});
                    return;
                }
                let open = &mut self.open_streams;
                self.sent.feed(bytes, |h| {
                    let ends = match h.kind {
                        FRAME_DATA | FRAME_HEADERS => h.flags & FLAG_END_STREAM != 0,
                        FRAME_RST_STREAM => true,
                        _ => false,
                    };
                    if ends {
                        open.remove(&h.stream);
                    }
                });
                if self.open_streams.is_empty() {
                    self.last_request = Instant::now();
                }
            }
        }
    }

    /// Note bytes read from the peer.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let request = match self.framing {
            Framing::Opaque => true,
            Framing::H2 => {
                let mut request = false;
                let open = &mut self.open_streams;
                let had_open = !open.is_empty();
                self.frames.feed(bytes, |h| {
                    request |= !is_upkeep(h.kind);
                    match h.kind {
                        FRAME_HEADERS if h.stream != 0 => {
                            open.insert(h.stream);
                        }
                        FRAME_RST_STREAM => {
                            open.remove(&h.stream);
                        }
                        _ => {}
                    }
                });
                request || (had_open && self.open_streams.is_empty())
            }
        };
        if !self.handshake_done {
            let done = match self.framing {
                Framing::Opaque => self.frames.seen >= OPAQUE_HANDSHAKE_BYTES,
                Framing::H2 => self.frames.seen >= H2_PREFACE + H2_FRAME_HEADER,
            };
            if !done {
                return;
            }
            self.handshake_done = true;
            self.last_request = Instant::now();
            self.timer
                .as_mut()
                .reset(self.last_request + self.limits.idle_timeout);
        } else if request {
            self.last_request = Instant::now();
        }
    }

    /// Whether the current deadline has passed for good: `Ready` means close.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if !self.handshake_done {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no handshake within the handshake timeout",
                ));
            }
            if !self.open_streams.is_empty() {
                // A stream in progress is not idleness, however quiet.
                self.last_request = Instant::now();
            }
            let due = self.last_request + self.limits.idle_timeout;
            if due <= Instant::now() {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"));
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Conn<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_deadline(cx) {
                Poll::Ready(e) => {
                    tracing::debug!(reason = %e, "closing connection");
                    Poll::Ready(Err(e))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Conn<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(&buf[..n.min(buf.len())]);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = written {
            // Exactly the bytes written, in order, across the slices.
            for b in bufs {
                if n == 0 {
                    break;
                }
                let take = n.min(b.len());
                this.wrote(&b[..take]);
                n -= take;
            }
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Conn<T> {
    type ConnectInfo = T::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Follows HTTP/2 frame boundaries in the client's byte stream without buffering it:
/// skips the preface, reads each 9-byte frame header, skips the payload.
#[derive(Default)]
struct FrameTracker {
    /// Bytes seen in all (saturating).
    seen: usize,
    header: [u8; H2_FRAME_HEADER],
    header_len: usize,
    payload_left: usize,
}

const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
const FLAG_END_STREAM: u8 = 0x1;

/// Frame types that are connection upkeep, not a request: SETTINGS, PING, WINDOW_UPDATE.
fn is_upkeep(frame_type: u8) -> bool {
    matches!(frame_type, 0x4 | 0x6 | 0x8)
}

/// The parts of a frame header the idle timeout reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameTracker {
    /// A tracker for the server's direction, which has no preface.
    fn after_preface() -> Self {
        Self {
            seen: H2_PREFACE,
            ..Self::default()
        }
    }

    /// Take the next bytes, calling `on_frame` with each complete frame header in them.
    fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(FrameHeader)) {
        while !bytes.is_empty() {
            if self.seen < H2_PREFACE {
                let n = (H2_PREFACE - self.seen).min(bytes.len());
                self.seen += n;
                bytes = &bytes[n..];
                continue;
            }
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                self.seen = self.seen.saturating_add(n);
                bytes = &bytes[n..];
                continue;
            }
            let n = (H2_FRAME_HEADER - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            self.seen = self.seen.saturating_add(n);
            bytes = &bytes[n..];
            if self.header_len == H2_FRAME_HEADER {
                self.header_len = 0;
                let h = self.header;
                self.payload_left = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                on_frame(FrameHeader {
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.extend(std::iter::repeat_n(0xAB, payload));
        f
    }

    #[test]
    fn frame_tracker_tells_requests_from_upkeep_across_any_split() {
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(0x4, 12)); // SETTINGS
        stream.extend(frame(0x6, 8)); // PING ack
        stream.extend(frame(0x8, 4)); // WINDOW_UPDATE
        let upkeep_end = stream.len();
        stream.extend(frame(0x1, 40)); // HEADERS
        stream.extend(frame(0x0, 300)); // DATA
        for chunk in [1, 2, 7, 9, 64, stream.len()] {
            let mut t = FrameTracker::default();
            let mut upkeep = false;
            for c in stream[..upkeep_end].chunks(chunk) {
                t.feed(c, |h| upkeep |= !is_upkeep(h.kind));
            }
            assert!(!upkeep, "chunk {chunk}: pings and settings are not requests");
            let mut frames = Vec::new();
            for c in stream[upkeep_end..].chunks(chunk) {
                t.feed(c, |h| frames.push(h));
            }
            let kinds: Vec<u8> = frames.iter().map(|h| h.kind).collect();
            assert_eq!(kinds, [0x1, 0x0], "chunk {chunk}: HEADERS then DATA");
            assert!(frames.iter().all(|h| h.stream == 1 && h.flags == 0));
            assert_eq!((t.header_len, t.payload_left), (0, 0));
        }
    }

    fn header(kind: u8, flags: u8, stream: u32, payload: usize) -> Vec<u8> {
        let mut f = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            flags,
        ];
        f.extend(stream.to_be_bytes());
        f.extend(std::iter::repeat_n(0xCD, payload));
        f
    }

    #[tokio::test]
    async fn a_stream_is_open_from_the_clients_headers_until_the_server_ends_it_or_a_reset() {
        let (io, _peer) = tokio::io::duplex(64);
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let mut conn = Conn::new(io, slot, ConnectionLimits::default(), Framing::H2);
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        client.extend(header(0x4, 0, 0, 6)); // SETTINGS
        client.extend(header(FRAME_HEADERS, 0x4, 1, 30)); // a server-streaming call
        client.extend(header(FRAME_DATA, FLAG_END_STREAM, 1, 12)); // its request, half-closing
        client.extend(header(FRAME_HEADERS, 0x5, 3, 30)); // a second call
        for c in client.chunks(5) {
            conn.saw(c);
        }
        assert!(conn.handshake_done);
        assert_eq!(conn.open_streams.len(), 2);

        // The server's answer to stream 1 (headers, a message): still open. Its trailers
        // (HEADERS with END_STREAM) end it; written in pieces, as the writes come.
        let mut server = header(0x4, 0, 0, 0);
        server.extend(header(FRAME_HEADERS, 0x4, 1, 20));
        server.extend(header(FRAME_DATA, 0, 1, 100));
        conn.wrote(&server);
        assert_eq!(conn.open_streams.len(), 2);
        let trailers = header(FRAME_HEADERS, 0x4 | FLAG_END_STREAM, 1, 15);
        conn.wrote(&trailers[..4]);
        assert_eq!(conn.open_streams.len(), 2, "half a frame header ends nothing");
        conn.wrote(&trailers[4..]);
        assert_eq!(conn.open_streams.iter().copied().collect::<Vec<_>>(), [3]);

        // The client resets stream 3: nothing open, and that counts as the last activity.
        let before = conn.last_request;
        tokio::time::sleep(Duration::from_millis(2)).await;
        conn.saw(&header(FRAME_RST_STREAM, 0, 3, 4));
        assert!(conn.open_streams.is_empty());
        assert!(conn.last_request > before);
        // A server reset of a stream nobody opened changes nothing.
        conn.wrote(&header(FRAME_RST_STREAM, 0, 5, 4));
        assert!(conn.open_streams.is_empty());
    }

    #[tokio::test]
    async fn over_the_cap_is_closed_and_silence_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits {
            max_connections: 1,
            handshake_timeout: Duration::from_millis(200),
            ..ConnectionLimits::default()
        };
        let mut conns = incoming(
            listener,
            limits,
            Framing::H2,
            "test".into(),
            std::future::pending(),
        );
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut served = tokio_stream::StreamExt::next(&mut conns).await.unwrap().unwrap();
        // The second is over the cap: closed without being handed on.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(30), second.read(&mut b))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        // The first never sends its preface: its reads fail once the handshake time is up.
        first.write_all(b"PRI").await.unwrap();
        let mut buf = [0u8; 16];
        let outcome = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match served.read(&mut buf).await {
                    Ok(0) => return None,
                    Ok(_) => continue,
                    Err(e) => return Some(e.kind()),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(outcome, Some(io::ErrorKind::TimedOut));
    }
}
