//! The part of HPACK (RFC 7541) the `:authority` fix needs: a mirror of the client's
//! dynamic table (entry sizes, and which entries are `:authority`), and a scan of one
//! header block that finds the `:authority` fields hyper's HTTP/2 server would refuse
//! and patches them in place.
//!
//! The scan never re-encodes what it does not patch, so h2's own decoder keeps decoding
//! the client's bytes with the client's dynamic table. A patched field keeps its table
//! effect: a field the client inserts into the dynamic table is replaced by one of the
//! same name and the same decoded value length, so both tables hold entries of the same
//! sizes and evict the same ones. Anything the scan does not understand is an error;
//! the caller then stops patching and leaves the verdict to h2.
//!
//! Huffman strings are decoded with the canonical code of RFC 7541 Appendix B (built
//! from its code lengths), one bit at a time: only their lengths are needed, except for
//! names given as literals and `:authority` values.

use std::collections::VecDeque;
use std::sync::LazyLock;

/// The dynamic table size hyper's HTTP/2 server allows (`SETTINGS_HEADER_TABLE_SIZE`;
/// tonic does not change the default of RFC 7540). A client's size update above it is
/// an error here and in h2.
pub const MAX_TABLE_SIZE: usize = 4096;

/// What a patched `:authority` value is built from: the gRPC convention for a socket.
pub const PLACEHOLDER: &[u8] = b"localhost";

/// The names of the static table (RFC 7541 Appendix A), index 1 first.
const STATIC_NAMES: [&str; 61] = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];

/// Index of `:authority` in the static table (with an empty value).
const STATIC_AUTHORITY: usize = 1;

/// Why a header block could not be scanned. h2 refuses every one of these too (or
/// decodes them on terms this scan does not follow); the caller stops patching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("header block ends inside a field")]
    Truncated,
    #[error("integer longer than 5 octets")]
    IntegerOverflow,
    #[error("index {0} is not in the table")]
    BadIndex(usize),
    #[error("dynamic table size update to {0}, above {MAX_TABLE_SIZE}")]
    TableSizeTooLarge(usize),
    #[error("dynamic table size update after a header field")]
    LateSizeUpdate,
    #[error("invalid Huffman string")]
    Huffman,
}

/// One entry of the mirrored dynamic table: what the scan needs to know about it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Decoded length of the name, for later literals that reuse it.
    name_len: usize,
    /// Name is `:authority`.
    authority: bool,
    /// Name is `:authority` and the value is empty: h2 refuses a reference to it.
    empty_authority: bool,
}

impl Entry {
    fn size(&self, value_len: usize) -> usize {
        32 + self.name_len + value_len
    }
}

/// The dynamic table as the client's encoder sees it (newest first).
#[derive(Debug)]
pub struct Table {
    entries: VecDeque<(Entry, usize)>,
    size: usize,
    max: usize,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            entries: VecDeque::new(),
            size: 0,
            max: MAX_TABLE_SIZE,
        }
    }
}

/// A name as the scan knows it.
#[derive(Clone, Copy)]
struct Name {
    len: usize,
    authority: bool,
}

impl Table {
    /// Current size in octets (RFC 7541 §4.1).
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.size
    }

    fn name(&self, index: usize) -> Result<(Name, bool), HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex(0));
        }
        if let Some(name) = STATIC_NAMES.get(index - 1) {
            let authority = index == STATIC_AUTHORITY;
            return Ok((
                Name {
                    len: name.len(),
                    authority,
                },
                authority,
            ));
        }
        match self.entries.get(index - 1 - STATIC_NAMES.len()) {
            Some((e, _)) => Ok((
                Name {
                    len: e.name_len,
                    authority: e.authority,
                },
                e.empty_authority,
            )),
            None => Err(HpackError::BadIndex(index)),
        }
    }

    fn insert(&mut self, name: Name, value_len: usize) {
        let entry = Entry {
            name_len: name.len,
            authority: name.authority,
            empty_authority: name.authority && value_len == 0,
        };
        let size = entry.size(value_len);
        self.evict_to(self.max.saturating_sub(size));
        if size <= self.max {
            self.entries.push_front((entry, size));
            self.size += size;
        }
    }

    fn resize(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some((_, size)) => self.size -= size,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    /// Scan one complete header block (HEADERS plus CONTINUATION fragments) and update
    /// the table as the client's encoder did. `None`: nothing to patch, forward the
    /// block as it is. `Some(block)`: the block with every `:authority` that h2 would
    /// refuse replaced (see [`patched_value`]).
    pub fn scan(&mut self, block: &[u8]) -> Result<Option<Vec<u8>>, HpackError> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut pos = 0;
        let mut fields_seen = false;
        while pos < block.len() {
            let start = pos;
            let first = block[pos];
            if first & 0x80 != 0 {
                // Indexed field.
                let (index, n) = integer(&block[pos..], 7)?;
                pos += n;
                let (name, refused) = self.name(index)?;
                fields_seen = true;
                // The static `:authority` has an empty value, as may a dynamic one:
                // h2 refuses both. Send the placeholder instead, without indexing.
                if name.authority && (refused || index == STATIC_AUTHORITY) {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(block.len() + 16));
                    out.extend_from_slice(&block[copied..start]);
                    literal(out, 0x00, 4, PLACEHOLDER);
                    copied = pos;
                }
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update: only before the first field.
                let (size, n) = integer(&block[pos..], 5)?;
                pos += n;
                if fields_seen {
                    return Err(HpackError::LateSizeUpdate);
                }
                if size > MAX_TABLE_SIZE {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.resize(size);
            } else {
                // A literal: with incremental indexing (01), never indexed (0001) or
                // without indexing (0000).
                let (indexing, prefix, flag) = if first & 0x40 != 0 {
                    (true, 6, 0x40)
                } else {
                    (false, 4, first & 0x10)
                };
                let (index, n) = integer(&block[pos..], prefix)?;
                pos += n;
                let name = if index == 0 {
                    let (s, n) = string(&block[pos..], Want::Name)?;
                    pos += n;
                    Name {
                        len: s.len,
                        authority: s.is_authority_name,
                    }
                } else {
                    self.name(index)?.0
                };
                let want = if name.authority { Want::Value } else { Want::Length };
                let (value, n) = string(&block[pos..], want)?;
                pos += n;
                fields_seen = true;
                if name.authority
                    && let Some(new_value) = patched_value(value.bytes.as_deref().unwrap_or(&[]), indexing)
                {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(block.len() + 16));
                    out.extend_from_slice(&block[copied..start]);
                    literal(out, flag, prefix, &new_value);
                    copied = pos;
                }
                if indexing {
                    self.insert(name, value.len);
                }
            }
        }
        Ok(out.map(|mut out| {
            out.extend_from_slice(&block[copied..]);
            out
        }))
    }
}

/// The value to send instead of an `:authority` h2 would refuse, or `None` to keep it.
///
/// h2 parses `:authority` as an [`http::uri::Authority`], which refuses a socket path
/// (`/`) or its %-encoding. A field the client adds to the dynamic table gets a
/// placeholder of the same length (`localhost`, cut short or padded with `x`), so the
/// two tables stay the same size; an empty one cannot be matched and is kept, for h2 to
/// refuse as before. A field outside the table gets `localhost`.
pub fn patched_value(value: &[u8], indexing: bool) -> Option<Vec<u8>> {
    if http::uri::Authority::try_from(value).is_ok() {
        return None;
    }
    if !indexing {
        return Some(PLACEHOLDER.to_vec());
    }
    if value.is_empty() {
        return None;
    }
    let mut v: Vec<u8> = PLACEHOLDER.iter().copied().take(value.len()).collect();
    v.resize(value.len(), b'x');
    Some(v)
}

/// Append a literal field with `:authority` named by its static index and a raw value.
fn literal(out: &mut Vec<u8>, flags: u8, prefix: u8, value: &[u8]) {
    put_integer(out, flags, prefix, STATIC_AUTHORITY);
    put_integer(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// HPACK integer (RFC 7541 §5.1) with `prefix` bits in the first octet: the value and
/// the octets used. At most 5 octets, as h2 allows.
fn integer(buf: &[u8], prefix: u8) -> Result<(usize, usize), HpackError> {
    let mask = (1usize << prefix) - 1;
    let first = *buf.first().ok_or(HpackError::Truncated)?;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok((value, 1));
    }
    let mut shift = 0u32;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        if i >= 5 {
            return Err(HpackError::IntegerOverflow);
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(HpackError::Truncated)
}

fn put_integer(out: &mut Vec<u8>, flags: u8, prefix: u8, mut value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        // `value < mask <= 255`.
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    value -= mask;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// How much of a string the scan needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Length,
    /// The length, and whether it says `:authority`.
    Name,
    /// The decoded bytes.
    Value,
}

struct Str {
    /// Decoded length.
    len: usize,
    is_authority_name: bool,
    /// Decoded bytes, for [`Want::Value`].
    bytes: Option<Vec<u8>>,
}

/// HPACK string (RFC 7541 §5.2): what `want` asks for, and the octets used.
fn string(buf: &[u8], want: Want) -> Result<(Str, usize), HpackError> {
    let first = *buf.first().ok_or(HpackError::Truncated)?;
    let (len, n) = integer(buf, 7)?;
    let raw = buf
        .get(n..n.checked_add(len).ok_or(HpackError::Truncated)?)
        .ok_or(HpackError::Truncated)?;
    let used = n + len;
    if first & 0x80 == 0 {
        let s = Str {
            len,
            is_authority_name: want == Want::Name && raw == b":authority",
            bytes: (want == Want::Value).then(|| raw.to_vec()),
        };
        return Ok((s, used));
    }
    let mut bytes = (want != Want::Length).then(|| Vec::with_capacity(len * 8 / 5));
    let len = huffman_decode(raw, bytes.as_mut())?;
    let s = Str {
        len,
        is_authority_name: want == Want::Name && bytes.as_deref() == Some(b":authority".as_slice()),
        bytes: if want == Want::Value { bytes } else { None },
    };
    Ok((s, used))
}

/// Code lengths of the HPACK Huffman code (RFC 7541 Appendix B), symbols 0..=256
/// (256 is EOS). The code is canonical: these lengths determine every code.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28,
    28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6,
    6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7,
    8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7,
    15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24,
    23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23,
    23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26,
    26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20,
    21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27,
    27, 27, 26, 30,
];

const MAX_CODE_LEN: usize = 30;
const EOS: u16 = 256;

/// The canonical code's decoding tables: per length, the first code and how many codes
/// have it, and the symbols ordered by (length, symbol).
struct Canonical {
    first: [u32; MAX_CODE_LEN + 1],
    count: [u32; MAX_CODE_LEN + 1],
    /// Index into `symbols` of the first symbol of each length.
    offset: [u32; MAX_CODE_LEN + 1],
    symbols: [u16; 257],
    #[cfg_attr(not(test), allow(dead_code))]
    codes: [u32; 257],
}

static CANONICAL: LazyLock<Canonical> = LazyLock::new(|| {
    let mut count = [0u32; MAX_CODE_LEN + 1];
    for &l in &CODE_LENGTHS {
        count[usize::from(l)] += 1;
    }
    let mut first = [0u32; MAX_CODE_LEN + 1];
    let mut offset = [0u32; MAX_CODE_LEN + 1];
    let (mut code, mut index) = (0u32, 0u32);
    for len in 1..=MAX_CODE_LEN {
        first[len] = code;
        offset[len] = index;
        code = (code + count[len]) << 1;
        index += count[len];
    }
    let mut symbols = [0u16; 257];
    let mut codes = [0u32; 257];
    let mut next = offset;
    let mut next_code = first;
    for len in 1..=MAX_CODE_LEN {
        for sym in 0..=EOS {
            if usize::from(CODE_LENGTHS[usize::from(sym)]) == len {
                symbols[next[len] as usize] = sym;
                next[len] += 1;
                codes[usize::from(sym)] = next_code[len];
                next_code[len] += 1;
            }
        }
    }
    Canonical {
        first,
        count,
        offset,
        symbols,
        codes,
    }
});

/// Decode a Huffman string; returns the decoded length and appends the octets to
/// `out` when given. Refuses EOS inside the string and padding that is longer than 7
/// bits or not the EOS prefix (all ones), as RFC 7541 §5.2 requires.
pub fn huffman_decode(src: &[u8], mut out: Option<&mut Vec<u8>>) -> Result<usize, HpackError> {
    let t = &*CANONICAL;
    let (mut code, mut len, mut decoded) = (0u32, 0usize, 0usize);
    for &byte in src {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > MAX_CODE_LEN {
                return Err(HpackError::Huffman);
            }
            let rel = code.wrapping_sub(t.first[len]);
            if code >= t.first[len] && rel < t.count[len] {
                let sym = t.symbols[(t.offset[len] + rel) as usize];
                if sym == EOS {
                    return Err(HpackError::Huffman);
                }
                if let Some(out) = out.as_deref_mut() {
                    // Symbols below EOS are octets.
                    out.push(sym as u8);
                }
                decoded += 1;
                code = 0;
                len = 0;
            }
        }
    }
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::Huffman);
    }
    Ok(decoded)
}

/// Huffman-encode `src` (tests build client header blocks with it).
#[cfg(test)]
pub fn huffman_encode(src: &[u8], out: &mut Vec<u8>) {
    let t = &*CANONICAL;
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in src {
        let len = u32::from(CODE_LENGTHS[usize::from(b)]);
        acc = (acc << len) | u64::from(t.codes[usize::from(b)]);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn huffman_matches_the_rfc_examples() {
        // RFC 7541 C.4.1-C.4.3.
        for (text, code) in [
            ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
            ("no-cache", "a8eb 1064 9cbf"),
            ("custom-key", "25a8 49e9 5ba9 7d7f"),
            ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
        ] {
            let mut out = Vec::new();
            assert_eq!(huffman_decode(&hex(code), Some(&mut out)), Ok(text.len()));
            assert_eq!(out, text.as_bytes());
            let mut enc = Vec::new();
            huffman_encode(text.as_bytes(), &mut enc);
            assert_eq!(enc, hex(code));
        }
        // Padding of 8 bits, padding that is not all ones, EOS itself.
        assert_eq!(
            huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff ff"), None),
            Err(HpackError::Huffman)
        );
        assert_eq!(
            huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4fe"), None),
            Err(HpackError::Huffman)
        );
        assert_eq!(huffman_decode(&hex("ffff fffc"), None), Err(HpackError::Huffman));
    }

    #[test]
    fn every_octet_round_trips_through_huffman() {
        let all: Vec<u8> = (0..=255).collect();
        let mut enc = Vec::new();
        huffman_encode(&all, &mut enc);
        let mut dec = Vec::new();
        assert_eq!(huffman_decode(&enc, Some(&mut dec)), Ok(256));
        assert_eq!(dec, all);
    }

    #[test]
    fn rfc_request_sequences_keep_the_table_in_step() {
        // RFC 7541 C.3 (raw) and C.4 (Huffman): three requests on one connection, all
        // with valid authorities: nothing to patch, and the table sizes of the RFC.
        for blocks in [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ] {
            let mut table = Table::default();
            let mut sizes = Vec::new();
            for b in blocks {
                assert_eq!(table.scan(&hex(b)), Ok(None));
                sizes.push(table.size());
            }
            assert_eq!(sizes, [57, 110, 164]);
        }
    }

    #[test]
    fn grpc_core_socket_authority_is_patched_to_the_same_size() {
        // The start of grpcio 1.76's first HEADERS block on `unix:/tmp/probe-dir/w.sock`:
        // :path, then :authority "tmp%2Fprobe-dir%2Fw.sock" as a new literal name with
        // incremental indexing, then :method POST, :scheme http.
        let block = hex(
            "4005 3a70 6174 6806 2f78 2e59 2f5a 400a 3a61 7574 686f 7269 7479 1874 6d70 2532 4670 726f 6265 2d64 6972 2532 4677 2e73 6f63 6b83 86",
        );
        let mut table = Table::default();
        let patched = table.scan(&block).unwrap().expect("patched");
        let mut fresh = Table::default();
        assert_eq!(fresh.scan(&patched), Ok(None), "the patched block needs no patch");
        assert_eq!(fresh.size(), table.size());
        assert!(patched.windows(9).any(|w| w == b"localhost"));
        // The next request names the entry by index: nothing left to patch.
        assert_eq!(table.scan(&hex("be 83 86 bf")), Ok(None));
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        let mut t = Table::default();
        assert_eq!(t.scan(&[0x80]), Err(HpackError::BadIndex(0)));
        assert_eq!(t.scan(&[0xbe]), Err(HpackError::BadIndex(62)));
        assert_eq!(t.scan(&[0x40, 0x85, 0xff]), Err(HpackError::Truncated));
        assert_eq!(
            t.scan(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(HpackError::IntegerOverflow)
        );
        assert_eq!(
            t.scan(&[0x3f, 0xe2, 0x1f]),
            Err(HpackError::TableSizeTooLarge(4097))
        );
        assert_eq!(t.scan(&[0x82, 0x20]), Err(HpackError::LateSizeUpdate));
    }
}
