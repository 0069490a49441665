//! The rewriter against a real h2 server: header blocks as clients encode them (dynamic
//! table, Huffman, CONTINUATION, padding, priority, size updates) go through the adapter
//! into `h2::server`, and the requests h2 hands over are compared with what was sent.

use super::hpack::{self, PLACEHOLDER};
use super::*;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

const SETTINGS_EMPTY: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// How one field of a test request is encoded.
#[derive(Debug, Clone, Copy)]
enum Repr {
    /// Indexed if the exact field is in the table, else a literal with indexing.
    Indexed,
    WithIndexing,
    WithoutIndexing,
    NeverIndexed,
}

/// A small HPACK encoder for tests: follows RFC 7541 with its own table, so blocks
/// carry real dynamic-table references, evictions and Huffman strings.
#[derive(Default)]
struct Encoder {
    /// Newest first.
    table: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max: Option<usize>,
}

const STATIC: [(&str, &str); 7] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
];

impl Encoder {
    fn max(&self) -> usize {
        self.max.unwrap_or(hpack::MAX_TABLE_SIZE)
    }

    fn evict(&mut self, limit: usize) {
        while self.size > limit {
            let (n, v) = self.table.pop_back().unwrap();
            self.size -= 32 + n.len() + v.len();
        }
    }

    fn size_update(&mut self, out: &mut Vec<u8>, size: usize) {
        int(out, 0x20, 5, size);
        self.max = Some(size);
        self.evict(size);
    }

    fn field(&mut self, out: &mut Vec<u8>, name: &[u8], value: &[u8], repr: Repr, huffman: (bool, bool)) {
        let exact = STATIC
            .iter()
            .position(|(n, v)| n.as_bytes() == name && v.as_bytes() == value)
            .map(|i| i + 1)
            .or_else(|| {
                self.table
                    .iter()
                    .position(|(n, v)| n == name && v == value)
                    .map(|i| i + 62)
            });
        if let (Repr::Indexed, Some(i)) = (repr, exact) {
            int(out, 0x80, 7, i);
            return;
        }
        let name_index = STATIC
            .iter()
            .position(|(n, _)| n.as_bytes() == name)
            .map(|i| i + 1)
            .or_else(|| self.table.iter().position(|(n, _)| n == name).map(|i| i + 62));
        let (flags, prefix) = match repr {
            Repr::Indexed | Repr::WithIndexing => (0x40, 6),
            Repr::WithoutIndexing => (0x00, 4),
            Repr::NeverIndexed => (0x10, 4),
        };
        match name_index {
            Some(i) if !huffman.0 => int(out, flags, prefix, i),
            _ => {
                int(out, flags, prefix, 0);
                string(out, name, huffman.0);
            }
        }
        string(out, value, huffman.1);
        if flags == 0x40 {
            let size = 32 + name.len() + value.len();
            self.evict(self.max().saturating_sub(size));
            if size <= self.max() {
                self.table.push_front((name.to_vec(), value.to_vec()));
                self.size += size;
            }
        }
    }
}

fn int(out: &mut Vec<u8>, flags: u8, prefix: u8, mut v: usize) {
    let mask = (1usize << prefix) - 1;
    if v < mask {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | mask as u8);
    v -= mask;
    while v >= 0x80 {
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

fn string(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
    if huffman {
        let mut enc = Vec::new();
        hpack::huffman_encode(s, &mut enc);
        int(out, 0x80, 7, enc.len());
        out.extend_from_slice(&enc);
    } else {
        int(out, 0x00, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// How a header block is cut into frames.
#[derive(Debug, Clone)]
struct Framing {
    /// Cut points as fractions of the block (CONTINUATION frames).
    cuts: Vec<u16>,
    padding: Option<u8>,
    priority: bool,
}

fn frames(out: &mut Vec<u8>, stream: u32, block: &[u8], f: &Framing) {
    let mut cuts: Vec<usize> = f
        .cuts
        .iter()
        .map(|&c| block.len() * usize::from(c) / 1000)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts {
        pieces.push(&block[at..c]);
        at = c;
    }
    pieces.push(&block[at..]);
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let mut payload = Vec::new();
        let mut flags = if last { END_HEADERS } else { 0 };
        if i == 0 {
            flags |= END_STREAM;
            if let Some(pad) = f.padding {
                flags |= PADDED;
                payload.push(pad);
            }
            if f.priority {
                flags |= PRIORITY;
                payload.extend_from_slice(&[0, 0, 0, 0, 15]);
            }
        }
        payload.extend_from_slice(piece);
        if i == 0
            && let Some(pad) = f.padding
        {
            payload.extend(std::iter::repeat_n(0, usize::from(pad)));
        }
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let len = payload.len() as u32;
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(&payload);
    }
}

/// What h2 shows for one request: authority and regular headers, sorted.
type Seen = (Option<String>, Vec<(String, String)>);

/// Send `wire` (preface included) through the adapter into a real h2 server, in
/// `chunk`-sized writes, and collect the first `n` requests h2 accepts.
async fn through_h2(wire: Vec<u8>, chunk: usize, n: usize) -> Vec<Seen> {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let writer = tokio::spawn(async move {
        for piece in wire.chunks(chunk.max(1)) {
            client.write_all(piece).await.unwrap();
        }
        client
    });
    let mut conn = h2::server::handshake(UdsAuthority::new(server))
        .await
        .expect("h2 handshake");
    let mut seen = Vec::new();
    while seen.len() < n {
        let (req, _respond) = tokio::time::timeout(std::time::Duration::from_secs(10), conn.accept())
            .await
            .expect("h2 accepts within 10 s")
            .expect("a request")
            .expect("h2 takes the request");
        let mut headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.sort();
        seen.push((req.uri().authority().map(|a| a.to_string()), headers));
    }
    drop(writer);
    seen
}

fn wire_of(blocks: &[Vec<u8>], framing: &[Framing]) -> Vec<u8> {
    let mut wire = PREFACE.to_vec();
    wire.extend_from_slice(&SETTINGS_EMPTY);
    for (i, block) in blocks.iter().enumerate() {
        // A PING between requests: a frame that passes through.
        wire.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        frames(&mut wire, 2 * i as u32 + 1, block, &framing[i % framing.len()]);
    }
    wire
}

#[tokio::test]
async fn grpc_core_requests_reach_h2_with_a_usable_authority() {
    // grpcio 1.76 on `unix:/tmp/probe-dir/w.sock`, first request as captured, and a
    // second one that names the :authority entry by index (62).
    let first = hex(
        "4005 3a70 6174 6806 2f78 2e59 2f5a 400a 3a61 7574 686f 7269 7479 1874 6d70 2532 4670 726f 6265 2d64 6972 2532 4677 2e73 6f63 6b83 86
         400c 636f 6e74 656e 742d 7479 7065 1061 7070 6c69 6361 7469 6f6e 2f67 7270 6340 0274 6508 7472 6169 6c65 7273",
    );
    let second = hex("c1 c0 83 86 bf be");
    let framing = Framing {
        cuts: vec![],
        padding: None,
        priority: false,
    };
    let seen = through_h2(wire_of(&[first, second], std::slice::from_ref(&framing)), 7, 2).await;
    // The same length as `tmp%2Fprobe-dir%2Fw.sock`.
    let patched = format!("localhost{}", "x".repeat(15));
    for (authority, headers) in &seen {
        assert_eq!(authority.as_deref(), Some(patched.as_str()));
        assert_eq!(
            headers,
            &[
                ("content-type".to_string(), "application/grpc".to_string()),
                ("te".to_string(), "trailers".to_string())
            ]
        );
    }
}

#[test]
fn without_a_bad_authority_the_bytes_pass_unchanged() {
    let mut enc = Encoder::default();
    let mut blocks = Vec::new();
    for i in 0..5 {
        let mut b = Vec::new();
        enc.field(&mut b, b":method", b"POST", Repr::Indexed, (false, false));
        enc.field(&mut b, b":scheme", b"http", Repr::Indexed, (false, false));
        enc.field(
            &mut b,
            b":path",
            b"/warden.v1.AuthzService/Check",
            Repr::Indexed,
            (false, true),
        );
        enc.field(
            &mut b,
            b":authority",
            b"localhost:50051",
            Repr::Indexed,
            (false, true),
        );
        enc.field(
            &mut b,
            b"grpc-timeout",
            format!("{i}m").as_bytes(),
            Repr::WithIndexing,
            (false, true),
        );
        blocks.push(b);
    }
    let framing = Framing {
        cuts: vec![300, 600],
        padding: Some(3),
        priority: true,
    };
    let wire = wire_of(&blocks, &[framing]);
    for cuts in [vec![], vec![5, 9, 24, 33, 34, 35, 100, 101]] {
        let (out, r) = feed_in_pieces(&wire, &cuts);
        assert_eq!(out, wire);
        assert_eq!(r.patched_blocks(), 0);
        assert!(!r.passing_through());
    }
}

/// Feed `wire` in pieces cut at `cuts`, carrying undecided bytes forward like the
/// adapter; then close.
fn feed_in_pieces(wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Rewriter) {
    let mut r = Rewriter::new();
    let mut raw = BytesMut::new();
    let mut out = BytesMut::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (wire.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts.into_iter().chain([wire.len()]) {
        raw.extend_from_slice(&wire[at..c.max(at)]);
        at = c.max(at);
        r.feed(&mut raw, &mut out);
    }
    r.finish(&mut raw, &mut out);
    (out.to_vec(), r)
}

#[test]
fn a_connection_that_is_not_http2_passes_through() {
    let wire = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let (out, r) = feed_in_pieces(&wire, &[3, 10]);
    assert_eq!(out, wire);
    assert!(r.passing_through());
}

#[test]
fn hostile_frames_fall_back_to_pass_through_in_order() {
    let mut base = PREFACE.to_vec();
    base.extend_from_slice(&SETTINGS_EMPTY);
    let cases: Vec<Vec<u8>> = vec![
        // HEADERS without END_HEADERS, then a DATA frame.
        vec![0, 0, 1, 0x1, 0, 0, 0, 0, 1, 0x82, 0, 0, 0, 0x0, 0, 0, 0, 0, 1],
        // CONTINUATION with no HEADERS before it.
        vec![0, 0, 1, 0x9, 0x4, 0, 0, 0, 1, 0x82],
        // Padding longer than the frame.
        vec![0, 0, 2, 0x1, 0x4 | 0x8, 0, 0, 0, 1, 9, 0x82],
        // PRIORITY flag on a 2-octet frame.
        vec![0, 0, 2, 0x1, 0x4 | 0x20, 0, 0, 0, 1, 0, 0],
        // An HPACK index past the table.
        vec![0, 0, 1, 0x1, 0x4, 0, 0, 0, 1, 0xff],
        // A HEADERS frame larger than 16 KiB.
        vec![0, 0x40, 1, 0x1, 0x4, 0, 0, 0, 1],
        // PUSH_PROMISE.
        vec![0, 0, 4, 0x5, 0x4, 0, 0, 0, 1, 0, 0, 0, 2],
    ];
    for case in cases {
        let mut wire = base.clone();
        wire.extend_from_slice(&case);
        wire.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let (out, r) = feed_in_pieces(&wire, &[30, 31, 40]);
        assert_eq!(out, wire, "{case:02x?}");
        assert!(r.passing_through(), "{case:02x?}");
    }
}

fn authority() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"localhost".to_vec()),
        Just(b"localhost:50051".to_vec()),
        Just(b"[::1]:50051".to_vec()),
        Just(b"tmp%2Fwarden.sock".to_vec()),
        Just(b"/run/warden/warden.sock".to_vec()),
        Just(b"%2Frun%2Fwarden%2Fwarden.sock".to_vec()),
        "[a-z0-9./%:@_-]{1,60}".prop_map(|s| s.into_bytes()),
    ]
}

fn repr() -> impl Strategy<Value = Repr> {
    prop_oneof![
        Just(Repr::Indexed),
        Just(Repr::WithIndexing),
        Just(Repr::WithoutIndexing),
        Just(Repr::NeverIndexed)
    ]
}

#[derive(Debug, Clone)]
struct Req {
    authority: Vec<u8>,
    authority_repr: Repr,
    authority_huffman: (bool, bool),
    /// Before the first field.
    size_update: Option<usize>,
    headers: Vec<(String, String, Repr, (bool, bool))>,
    framing: Framing,
}

fn request() -> impl Strategy<Value = Req> {
    let name = prop_oneof![
        Just("user-agent".to_string()),
        Just("content-type".to_string()),
        Just("grpc-timeout".to_string()),
        Just("x-request-id".to_string()),
        "x-[a-z]{1,30}",
    ];
    let header = (name, "[ -~]{0,200}", repr(), any::<(bool, bool)>());
    let framing = (
        prop::collection::vec(1u16..1000, 0..4),
        prop::option::of(0u8..20),
        any::<bool>(),
    )
        .prop_map(|(cuts, padding, priority)| Framing {
            cuts,
            padding,
            priority,
        });
    (
        (authority(), repr(), any::<(bool, bool)>()),
        prop::option::weighted(0.3, prop_oneof![0usize..=600, 0usize..=4096]),
        prop::collection::vec(header, 0..8),
        framing,
    )
        .prop_map(
            |((authority, authority_repr, authority_huffman), size_update, headers, framing)| Req {
                authority,
                authority_repr,
                authority_huffman,
                size_update,
                headers,
                framing,
            },
        )
}

/// The block a client sends for `req`, and what h2 should show for it.
fn encode(enc: &mut Encoder, req: &Req) -> (Vec<u8>, Seen) {
    let mut b = Vec::new();
    if let Some(size) = req.size_update {
        enc.size_update(&mut b, size);
    }
    enc.field(&mut b, b":method", b"POST", Repr::Indexed, (false, false));
    enc.field(&mut b, b":scheme", b"http", Repr::Indexed, (false, false));
    enc.field(
        &mut b,
        b":path",
        b"/warden.v1.AuthzService/Check",
        Repr::Indexed,
        (false, true),
    );
    enc.field(
        &mut b,
        b":authority",
        &req.authority,
        req.authority_repr,
        req.authority_huffman,
    );
    // What h2 holds for this authority: the client's value, or a same-length
    // placeholder if it went through the table, or `localhost` if it did not.
    let through_table = matches!(req.authority_repr, Repr::Indexed | Repr::WithIndexing);
    let expected = hpack::patched_value(&req.authority, through_table).unwrap_or(req.authority.clone());
    let mut names = std::collections::BTreeSet::new();
    let mut headers = Vec::new();
    for (name, value, repr, huffman) in &req.headers {
        if !names.insert(name.clone()) {
            continue;
        }
        enc.field(&mut b, name.as_bytes(), value.as_bytes(), *repr, *huffman);
        headers.push((name.clone(), value.clone()));
    }
    headers.sort();
    (b, (Some(String::from_utf8(expected).unwrap()), headers))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// Requests as a client's HPACK encoder sends them reach h2 intact, with every
    /// authority h2 would refuse replaced, whatever the framing and the read pieces.
    #[test]
    fn client_requests_reach_h2_intact(reqs in prop::collection::vec(request(), 1..6), chunk in 1usize..64) {
        let mut enc = Encoder::default();
        let mut blocks = Vec::new();
        let mut expected = Vec::new();
        for req in &reqs {
            let (b, seen) = encode(&mut enc, req);
            blocks.push(b);
            expected.push(seen);
        }
        let framing: Vec<Framing> = reqs.iter().map(|r| r.framing.clone()).collect();
        let wire = wire_of(&blocks, &framing);
        // The scan follows every block (a divergent table shows as an error here).
        let (_, r) = feed_in_pieces(&wire, &[]);
        prop_assert!(!r.passing_through());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let seen = rt.block_on(through_h2(wire, chunk, reqs.len()));
        prop_assert_eq!(seen, expected);
    }

    /// Any bytes: no panic, the same output however they are cut, and unchanged
    /// output once the rewriter passes through.
    #[test]
    fn any_bytes_any_pieces(tail in prop::collection::vec(any::<u8>(), 0..600), cuts in prop::collection::vec(any::<usize>(), 0..8), preface in any::<bool>()) {
        let mut wire = if preface { PREFACE.to_vec() } else { Vec::new() };
        wire.extend_from_slice(&tail);
        let (one, r1) = feed_in_pieces(&wire, &[]);
        let (many, _) = feed_in_pieces(&wire, &cuts);
        prop_assert_eq!(&one, &many);
        if r1.patched_blocks() == 0 {
            prop_assert_eq!(&one, &wire);
        }
    }
}

#[test]
fn the_strict_switch_passes_everything_through() {
    let mut r = Rewriter::pass_through();
    let mut wire = PREFACE.to_vec();
    wire.extend_from_slice(&hex("000001 01 05 00000001 be"));
    let mut out = BytesMut::new();
    r.feed(&mut BytesMut::from(&wire[..]), &mut out);
    assert_eq!(&out[..], &wire[..]);
    assert!(r.passing_through());
}

#[test]
fn placeholder_keeps_the_length() {
    assert_eq!(
        hpack::patched_value(b"tmp%2Fw.sock", true).unwrap(),
        b"localhostxxx"
    );
    assert_eq!(hpack::patched_value(b"/a", true).unwrap(), b"lo");
    assert_eq!(hpack::patched_value(b"/a", false).unwrap(), PLACEHOLDER);
    assert_eq!(hpack::patched_value(b"localhost:50051", true), None);
    assert_eq!(hpack::patched_value(b"", true), None);
}
