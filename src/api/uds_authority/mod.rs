//! Any `:authority` on the Unix socket: an adapter on each accepted Unix connection's
//! incoming bytes that replaces an HTTP/2 `:authority` hyper's server would refuse.
//!
//! Python's `grpcio` (grpc-core), grpc-java, grpc-swift and grpcurl send the socket path,
//! or its %-encoding (`tmp%2Fwarden.sock`), as `:authority` on a Unix socket. h2 parses
//! the field as an [`http::uri::Authority`], which refuses `/` and a `%` outside the
//! userinfo, and resets every such stream with `PROTOCOL_ERROR`; h2 and hyper have no
//! option to relax it. The authority of a Unix-socket connection means nothing (the
//! socket file is the address), so Warden lets the client send any.
//!
//! [`Rewriter`] reads the client's side of the connection frame by frame. Frames other
//! than HEADERS/CONTINUATION pass through unread. A header block is collected until
//! `END_HEADERS` and scanned with a mirror of the client's HPACK dynamic table
//! ([`hpack`]); a block with nothing to patch (every block of a client that sends a
//! valid authority) is forwarded byte for byte. A patched block is sent as one HEADERS
//! frame (plus CONTINUATIONs past 16 KiB) with the same stream, `END_STREAM` and
//! priority, without padding.
//!
//! Anything unexpected — no HTTP/2 preface, a frame or header block past the limits, an
//! HPACK error, a CONTINUATION out of place, PUSH_PROMISE from a client — switches the
//! connection to plain pass-through for good: the bytes reach h2 unchanged and h2 gives
//! its verdict, as without the adapter. The adapter never makes a connection fail that
//! would have worked. Nothing here panics on any input (see the property tests and
//! `fuzz/fuzz_targets/uds_authority.rs`).
//!
//! Only the Unix listener uses it (TCP callers name a real host); the write direction is
//! untouched. `WARDEN_UDS_AUTHORITY=strict` in the daemon's environment turns it off (every
//! connection passes through from its first byte, leaving h2's check as it is): a switch
//! for diagnosis and for measuring the adapter's cost.

pub mod hpack;

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The environment variable that turns the rewriting off (value `strict`).
pub const STRICT_ENV: &str = "WARDEN_UDS_AUTHORITY";

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame hyper's server accepts (`SETTINGS_MAX_FRAME_SIZE`, the RFC's
/// default, which tonic keeps); a larger HEADERS frame is h2's to refuse.
pub const MAX_FRAME: usize = 16 * 1024;
/// The largest header block collected; past it the connection is passed through.
pub const MAX_BLOCK: usize = 256 * 1024;
/// Read from the socket this much at a time.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for the rest of the 24-octet preface.
    Preface,
    /// At a frame boundary.
    Frame,
    /// Inside the payload of a frame that passes through: this many octets remain.
    Forward(usize),
    /// Everything passes through unchanged from here on.
    PassThrough,
}

/// A header block being collected.
struct Pending {
    stream: u32,
    /// `END_STREAM` of the HEADERS frame.
    end_stream: bool,
    /// The HEADERS frame's priority fields, if it had them.
    priority: Option<[u8; 5]>,
    /// The frames as received, to forward unchanged.
    frames: BytesMut,
    /// The header block fragments, joined.
    block: Vec<u8>,
}

/// The frame-level state of one connection's client-to-server bytes. Feed it what the
/// socket gives, in any pieces; it appends what h2 should read to `out`.
pub struct Rewriter {
    mode: Mode,
    table: hpack::Table,
    pending: Option<Pending>,
    /// Header blocks patched so far.
    patched: u64,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewriter {
    pub fn new() -> Self {
        Rewriter {
            mode: Mode::Preface,
            table: hpack::Table::default(),
            pending: None,
            patched: 0,
        }
    }

    /// A rewriter that passes everything through from the first byte.
    pub fn pass_through() -> Self {
        Rewriter {
            mode: Mode::PassThrough,
            ..Self::new()
        }
    }

    /// Header blocks whose `:authority` was replaced.
    pub fn patched_blocks(&self) -> u64 {
        self.patched
    }

    /// Whether the connection has fallen back to plain pass-through.
    pub fn passing_through(&self) -> bool {
        self.mode == Mode::PassThrough
    }

    /// Consume what can be decided from `input` (the rest stays there until more
    /// arrives) and append the bytes for h2 to `out`.
    pub fn feed(&mut self, input: &mut BytesMut, out: &mut BytesMut) {
        loop {
            match self.mode {
                Mode::PassThrough => {
                    out.extend_from_slice(input);
                    input.clear();
                    return;
                }
                Mode::Preface => {
                    let n = input.len().min(PREFACE.len());
                    if input[..n] != PREFACE[..n] {
                        self.give_up(out, "no HTTP/2 preface");
                        continue;
                    }
                    if n < PREFACE.len() {
                        return;
                    }
                    out.extend_from_slice(&input.split_to(n));
                    self.mode = Mode::Frame;
                }
                Mode::Forward(remaining) => {
                    let n = remaining.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input.advance(n);
                    self.mode = if n == remaining {
                        Mode::Frame
                    } else {
                        Mode::Forward(remaining - n)
                    };
                    if input.is_empty() {
                        return;
                    }
                }
                Mode::Frame => {
                    if input.len() < FRAME_HEADER {
                        return;
                    }
                    let len =
                        usize::from(input[0]) << 16 | usize::from(input[1]) << 8 | usize::from(input[2]);
                    let kind = input[3];
                    match kind {
                        HEADERS | CONTINUATION => {
                            if len > MAX_FRAME {
                                self.give_up(out, "header frame larger than SETTINGS_MAX_FRAME_SIZE");
                                continue;
                            }
                            if input.len() < FRAME_HEADER + len {
                                return;
                            }
                            let frame = input.split_to(FRAME_HEADER + len);
                            if let Err(why) = self.header_frame(&frame, out) {
                                self.give_up(out, why);
                                out.extend_from_slice(&frame);
                            }
                        }
                        PUSH_PROMISE => self.give_up(out, "PUSH_PROMISE from a client"),
                        _ if self.pending.is_some() => self.give_up(out, "frame inside a header block"),
                        _ => {
                            out.extend_from_slice(&input[..FRAME_HEADER]);
                            input.advance(FRAME_HEADER);
                            self.mode = Mode::Forward(len);
                        }
                    }
                }
            }
        }
    }

    /// The socket is closed: pass on whatever is left as it is.
    pub fn finish(&mut self, input: &mut BytesMut, out: &mut BytesMut) {
        self.feed(input, out);
        if let Some(p) = self.pending.take() {
            out.extend_from_slice(&p.frames);
        }
        out.extend_from_slice(input);
        input.clear();
    }

    /// Stop interpreting: the collected frames go out as received, then everything else.
    fn give_up(&mut self, out: &mut BytesMut, why: &'static str) {
        tracing::debug!(
            reason = why,
            "unix socket: :authority rewriting off for this connection"
        );
        if let Some(p) = self.pending.take() {
            out.extend_from_slice(&p.frames);
        }
        self.mode = Mode::PassThrough;
    }

    /// One whole HEADERS or CONTINUATION frame. On an error the frame has not been
    /// forwarded nor kept: the caller forwards what is pending, then the frame.
    fn header_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), &'static str> {
        let kind = frame[3];
        let flags = frame[4];
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        if kind == HEADERS {
            if self.pending.is_some() {
                return Err("HEADERS inside a header block");
            }
            let mut start = 0;
            let mut end = payload.len();
            if flags & PADDED != 0 {
                let pad = usize::from(*payload.first().ok_or("padded HEADERS without a pad length")?);
                start = 1;
                end = end
                    .checked_sub(pad)
                    .filter(|&e| e >= start)
                    .ok_or("padding longer than the frame")?;
            }
            let priority = if flags & PRIORITY != 0 {
                let p: [u8; 5] = payload
                    .get(start..end)
                    .and_then(|s| s.get(..5))
                    .and_then(|s| s.try_into().ok())
                    .ok_or("HEADERS too short for its priority")?;
                start += 5;
                Some(p)
            } else {
                None
            };
            self.pending = Some(Pending {
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
                frames: BytesMut::new(),
                block: payload[start..end].to_vec(),
            });
        } else {
            let p = self.pending.as_mut().ok_or("CONTINUATION without HEADERS")?;
            if p.stream != stream {
                return Err("CONTINUATION on another stream");
            }
            p.block.extend_from_slice(payload);
        }
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        if p.block.len() > MAX_BLOCK {
            self.pending = Some(p);
            return Err("header block larger than the limit");
        }
        if flags & END_HEADERS == 0 {
            p.frames.extend_from_slice(frame);
            self.pending = Some(p);
            return Ok(());
        }
        match self.table.scan(&p.block) {
            Ok(None) => {
                out.extend_from_slice(&p.frames);
                out.extend_from_slice(frame);
            }
            Ok(Some(block)) => {
                self.patched += 1;
                write_block(out, &p, &block);
            }
            Err(e) => {
                tracing::debug!(error = %e, "unix socket: header block not understood");
                self.pending = Some(p);
                return Err("HPACK error");
            }
        }
        Ok(())
    }
}

/// `block` as HEADERS (+ CONTINUATION) frames of at most [`MAX_FRAME`] octets.
fn write_block(out: &mut BytesMut, p: &Pending, block: &[u8]) {
    let prio_len = if p.priority.is_some() { 5 } else { 0 };
    let first_len = block.len().min(MAX_FRAME - prio_len);
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = if p.end_stream { END_STREAM } else { 0 };
    if p.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(out, prio_len + first.len(), HEADERS, flags, p.stream);
    if let Some(prio) = &p.priority {
        out.extend_from_slice(prio);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), CONTINUATION, flags, p.stream);
        out.extend_from_slice(chunk);
    }
}

fn frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    // `len <= MAX_FRAME` fits 24 bits.
    let len = len as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// An accepted Unix-socket connection whose incoming HTTP/2 bytes go through a
/// [`Rewriter`]; writes go straight to the socket.
pub struct UdsAuthority<S> {
    inner: S,
    rewriter: Rewriter,
    /// Read from the socket, not yet decided.
    raw: BytesMut,
    /// Ready for h2.
    ready: BytesMut,
    eof: bool,
}

impl<S> UdsAuthority<S> {
    pub fn new(inner: S) -> Self {
        Self::with(inner, Rewriter::new())
    }

    /// The connection as it is, h2's check untouched ([`STRICT_ENV`]).
    pub fn strict(inner: S) -> Self {
        Self::with(inner, Rewriter::pass_through())
    }

    fn with(inner: S, rewriter: Rewriter) -> Self {
        UdsAuthority {
            inner,
            rewriter,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            eof: false,
        }
    }

    /// Header blocks whose `:authority` was replaced on this connection.
    pub fn patched_blocks(&self) -> u64 {
        self.rewriter.patched_blocks()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for UdsAuthority<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.rewriter.passing_through() && this.raw.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.raw.capacity() - this.raw.len() < READ_CHUNK / 2 {
                this.raw.reserve(READ_CHUNK);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.raw
            ))?;
            if n == 0 {
                this.eof = true;
                this.rewriter.finish(&mut this.raw, &mut this.ready);
            } else {
                this.rewriter.feed(&mut this.raw, &mut this.ready);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UdsAuthority<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Every connection of `incoming` (the Unix listener's accepted streams) wrapped in
/// [`UdsAuthority`]; [`UdsAuthority::strict`] when [`STRICT_ENV`] says `strict`.
pub fn incoming<S>(
    incoming: impl tokio_stream::Stream<Item = io::Result<S>>,
) -> impl tokio_stream::Stream<Item = io::Result<UdsAuthority<S>>> {
    let strict = std::env::var_os(STRICT_ENV).is_some_and(|v| v == "strict");
    if strict {
        tracing::info!("{STRICT_ENV}=strict: the Unix socket refuses an :authority h2 cannot parse");
    }
    let wrap = if strict {
        UdsAuthority::strict
    } else {
        UdsAuthority::new
    };
    tokio_stream::StreamExt::map(incoming, move |conn| conn.map(wrap))
}

/// Keeps the socket's connection info (`UdsConnectInfo`), which the bearer-token
/// layer reads to let local callers by.
impl<S: Connected> Connected for UdsAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests;
