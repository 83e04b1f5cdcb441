//! HTTP/1.x request and response parsing in the manner of libhtp: lenient where browsers are
//! lenient (line endings, header folding, odd chunk sizes, Content-Length junk, multiple
//! Content-Encoding layers), so a detection engine sees what the client would see. Every buffer
//! is bounded.

use crate::applayer_decompress::decode_layer;
use std::borrow::Cow;

/// Headers larger than this end the header section (libhtp's field limit is similar).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Bodies kept for inspection (request and response), after dechunking/decompression.
pub const BODY_LIMIT: usize = 1024 * 1024;
const MAX_TXS: usize = 512;
/// libhtp's response-body-decompress-layer-limit (the corpus runs with 3; default 2).
const DECOMPRESS_LAYER_LIMIT: usize = 3;

#[derive(Default, Debug, Clone)]
pub struct HttpTx {
    pub request_line: Vec<u8>,
    pub method: Vec<u8>,
    pub uri_raw: Vec<u8>,
    pub uri_norm: Vec<u8>,
    pub req_protocol: Vec<u8>,
    pub req_headers: Headers,
    pub req_headers_raw: Vec<u8>,
    pub req_body: Vec<u8>,
    pub response_line: Vec<u8>,
    pub res_protocol: Vec<u8>,
    pub status: Vec<u8>,
    pub status_msg: Vec<u8>,
    pub res_headers: Headers,
    pub res_headers_raw: Vec<u8>,
    /// Response body after dechunking and decompression (file_data).
    pub res_body: Vec<u8>,
    res_body_encoded: Vec<u8>,
    res_layers: usize,
    /// Where the response body's first byte lies in the server's bytes (counted over
    /// everything given to `parse_response`), when the inspected body is exactly those bytes
    /// as sent: identity transfer, no content encoding, one contiguous run. None otherwise.
    pub res_body_at: Option<u64>,
    /// Response body bytes received so far (also those beyond the inspected limit).
    pub res_body_seen: u64,
    res_body_split: bool,
    /// The detection engine's file_data prefilter hits, found while the body streamed by
    /// (a bitset of pattern ids; see `RuleSet::scan_response_stream`).
    pub res_body_hits: Vec<u64>,
    /// The detection engine's joint-scan candidates per side (request, response), for the
    /// side's next inspection (see `detect_engine::JointMemo`).
    pub joint_memo: [crate::detect_engine::JointMemo; 2],
    pub req_line_done: bool,
    pub req_headers_done: bool,
    pub req_done: bool,
    pub res_line_done: bool,
    pub res_headers_done: bool,
    pub res_done: bool,
    /// Bumped whenever a buffer of this tx grows, so detection re-inspects it.
    pub req_gen: u32,
    /// app-layer-event names raised by this transaction ("http.request_chunk_extension", ...).
    pub events: Vec<&'static str>,
    pub res_gen: u32,
    /// Its buffers were dropped (`release`): finished and inspected.
    pub released: bool,
}

impl HttpTx {
    /// Raise an app-layer event on the transaction. Both sides are inspected again (events
    /// are the transaction's; a rule of either direction may test them).
    pub fn event(&mut self, e: &'static str) {
        if !self.events.contains(&e) {
            self.events.push(e);
            self.req_gen += 1;
            self.res_gen += 1;
        }
    }
    /// Drop the buffers of a finished, inspected transaction; its progress flags stay so the
    /// parser and detection treat it as done.
    pub fn release(&mut self) {
        let keep = HttpTx {
            req_line_done: self.req_line_done,
            req_headers_done: self.req_headers_done,
            req_done: self.req_done,
            res_line_done: self.res_line_done,
            res_headers_done: self.res_headers_done,
            res_done: self.res_done,
            req_gen: self.req_gen,
            res_gen: self.res_gen,
            res_layers: self.res_layers,
            released: true,
            ..HttpTx::default()
        };
        *self = keep;
    }
    /// What the header-sized buffers of a side are made from, in a number: their start line and
    /// header block only grow (trailers), so their lengths tell a change.
    pub fn header_key(&self, req: bool) -> u64 {
        let (line, hs, raw) = if req { (&self.request_line, &self.req_headers, &self.req_headers_raw) } else { (&self.response_line, &self.res_headers, &self.res_headers_raw) };
        (line.len() as u64) << 40 ^ (hs.len() as u64) << 24 ^ raw.len() as u64
    }
    pub fn req_header(&self, name: &str) -> Option<&[u8]> {
        self.req_headers.get(name.as_bytes())
    }
    pub fn res_header(&self, name: &str) -> Option<&[u8]> {
        self.res_headers.get(name.as_bytes())
    }
}

/// A message's headers in order, names and values in one buffer: a side costs two
/// allocations, not two per header.
#[derive(Default, Debug, Clone)]
pub struct Headers {
    bytes: Vec<u8>,
    /// Per header: name start, name end (= value start), value end.
    spans: Vec<(u32, u32, u32)>,
    /// Bytes left behind by moved values; compacted away once they outweigh the rest, so
    /// hostile repetitions cannot grow the buffer beyond twice its live size.
    dead: usize,
}

impl Headers {
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|&(s, m, e)| (&self.bytes[s as usize..m as usize], &self.bytes[m as usize..e as usize]))
    }
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
    /// The first header of this name (ASCII case ignored).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
    fn last(&self) -> Option<(&[u8], &[u8])> {
        self.iter().last()
    }
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.dead = 0;
    }
    /// Drop the last header. Its bytes are cut off only when they end the buffer: a repeated
    /// header moved to the end by `append_value` may lie after them.
    fn pop(&mut self) {
        if let Some((s, _, e)) = self.spans.pop() {
            if e as usize == self.bytes.len() {
                self.bytes.truncate(s as usize);
            } else {
                self.dead += (e - s) as usize;
            }
        }
    }
    fn push(&mut self, name: &[u8], value: &[u8]) {
        if self.spans.capacity() == 0 {
            self.spans.reserve(TYPICAL_HEADERS);
            self.bytes.reserve(TYPICAL_HEADER_BYTES);
        }
        let s = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name);
        let m = self.bytes.len() as u32;
        self.bytes.extend_from_slice(value);
        self.spans.push((s, m, self.bytes.len() as u32));
    }
    /// Append to the value of header `i`. A header that is not last in the buffer moves to the
    /// end first (repeated headers are rare).
    fn append_value(&mut self, i: usize, parts: &[&[u8]]) {
        if self.spans[i].2 as usize != self.bytes.len() && self.dead > self.bytes.len() / 2 {
            self.compact();
        }
        let (mut s, mut m, e) = self.spans[i];
        if e as usize != self.bytes.len() {
            let ns = self.bytes.len() as u32;
            self.bytes.extend_from_within(s as usize..e as usize);
            self.dead += (e - s) as usize;
            (s, m) = (ns, ns + (m - s));
        }
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
        self.spans[i] = (s, m, self.bytes.len() as u32);
    }
    /// Rewrite the buffer with only the live headers.
    fn compact(&mut self) {
        let mut bytes = Vec::with_capacity(self.bytes.len() - self.dead);
        for sp in &mut self.spans {
            let (s, m, e) = *sp;
            let ns = bytes.len() as u32;
            bytes.extend_from_slice(&self.bytes[s as usize..e as usize]);
            *sp = (ns, ns + (m - s), ns + (e - s));
        }
        self.bytes = bytes;
        self.dead = 0;
    }
    /// Add a header; repeated headers are joined with ", " except Content-Length (first wins).
    fn add(&mut self, name: &[u8], value: &[u8]) {
        let seen = if name.is_empty() { None } else { self.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) };
        match seen {
            Some(i) if !name.eq_ignore_ascii_case(b"content-length") => self.append_value(i, &[b", ", value]),
            Some(_) => {}
            None => self.push(name, value),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    None,
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Line,
    Headers,
    Body(BodyMode),
    /// Parsing gave up on this direction (e.g. tunnel); remaining bytes are ignored.
    Stop,
}

struct Side {
    buf: Vec<u8>,
    /// Bytes fed to this side so far, and the position of the input being parsed.
    fed: u64,
    base: u64,
    phase: Phase,
    header_bytes: usize,
    /// Index of the tx this side is working on.
    cur: Option<usize>,
}

impl Side {
    fn new() -> Self {
        Side { buf: Vec::new(), fed: 0, base: 0, phase: Phase::Line, header_bytes: 0, cur: None }
    }
    /// Give back a large, now mostly empty buffer (idle keep-alive flows stay small).
    fn trim(&mut self) {
        if self.buf.capacity() > 16 * 1024 && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len().max(4096));
        }
    }
}

pub struct HttpState {
    pub txs: Vec<HttpTx>,
    /// Index of txs[0] in the connection's tx sequence (older txs are pruned).
    pub base_id: u64,
    req: Side,
    res: Side,
    /// Next tx (relative index) that has no response yet.
    next_res_tx: usize,
    /// The stream already changed protocols once (HTTP found after STARTTLS): a further
    /// change (an h2c upgrade) fails, as Suricata allows one change per flow.
    pub after_switch: bool,
    /// Detection state: what the response stream's scan found in the last server data.
    pub res_chunk_hits: crate::detect_engine::ChunkHits,
}

impl Default for HttpState {
    fn default() -> Self {
        Self::new()
    }
}

/// Request methods recognised by protocol detection (first bytes of a to-server stream).
pub fn looks_like_request(b: &[u8]) -> bool {
    const M: [&[u8]; 20] = [
        b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"TRACE", b"PATCH", b"PROPFIND", b"PROPPATCH",
        b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH", b"REPORT", b"CHECKOUT", b"MERGE",
    ];
    let b = trim_start(b);
    M.iter().any(|m| b.len() > m.len() && b.starts_with(m) && (b[m.len()] == b' ' || b[m.len()] == b'\t'))
}

pub fn looks_like_response(b: &[u8]) -> bool {
    let b = trim_start(b);
    b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"HTTP/")
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' || c == 0x0b || c == 0x0c
}
fn trim_start(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&c| !is_ws(c)).unwrap_or(b.len());
    &b[i..]
}
fn trim(b: &[u8]) -> &[u8] {
    let b = trim_start(b);
    let e = b.iter().rposition(|&c| !is_ws(c)).map(|i| i + 1).unwrap_or(0);
    &b[..e]
}
fn contains_nocase_nozero(hay: &[u8], needle: &[u8]) -> bool {
    let h: Vec<u8> = hay.iter().filter(|&&c| c != 0).map(|c| c.to_ascii_lowercase()).collect();
    h.windows(needle.len()).any(|w| w == needle)
}

/// Take one line (through LF) from buf at `consumed`; returns it without the line ending.
fn take_line<'a>(buf: &'a [u8], consumed: &mut usize) -> Option<&'a [u8]> {
    let rest = &buf[*consumed..];
    let lf = memchr::memchr(b'\n', rest)?;
    *consumed += lf + 1;
    let line = &rest[..lf];
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// Like take_line, but a lone CR (not followed by LF) also ends a line, as libhtp accepts in
/// response headers. A CR at the very end of the data waits for the next byte.
fn take_line_res<'a>(buf: &'a [u8], consumed: &mut usize) -> Option<&'a [u8]> {
    let rest = &buf[*consumed..];
    let i = memchr::memchr2(b'\n', b'\r', rest)?;
    if rest[i] == b'\n' {
        *consumed += i + 1;
        let line = &rest[..i];
        return Some(line.strip_suffix(b"\r").unwrap_or(line));
    }
    match rest.get(i + 1) {
        None => None,
        Some(b'\n') => {
            *consumed += i + 2;
            Some(&rest[..i])
        }
        Some(_) => {
            *consumed += i + 1;
            Some(&rest[..i])
        }
    }
}

/// A response header line and the length of its line ending, with libhtp-rs's response EOLs:
/// "\r\n", "\n\r", "\n", "\r", and the deformed "\n\r\r\n" (before "\n"/"\r\n") and
/// "\r\n\r" + [\r \t]+ + optional "\n" (not before "\n"/"\r\n").
fn take_hdr_line<'a>(buf: &'a [u8], consumed: &mut usize) -> Option<(&'a [u8], usize)> {
    let rest = &buf[*consumed..];
    let i = memchr::memchr2(b'\n', b'\r', rest)?;
    let at = |k: usize| rest.get(i + k).copied();
    let eol = if rest[i] == b'\n' {
        if at(1) == Some(b'\r') {
            if at(2) == Some(b'\r') && at(3) == Some(b'\n') && (at(4) == Some(b'\n') || (at(4) == Some(b'\r') && at(5) == Some(b'\n'))) {
                4
            } else {
                2
            }
        } else {
            1
        }
    } else {
        match at(1) {
            None => return None,
            Some(b'\n') => {
                let mut e = 2;
                if at(2) == Some(b'\r') {
                    let mut k = 3;
                    while matches!(at(k), Some(b'\r') | Some(b' ') | Some(b'\t')) {
                        k += 1;
                    }
                    if k > 3 {
                        if at(k) == Some(b'\n') {
                            k += 1;
                        }
                        let next_eol = at(k) == Some(b'\n') || (at(k) == Some(b'\r') && at(k + 1) == Some(b'\n'));
                        if !next_eol && i + k < rest.len() {
                            e = k;
                        }
                    }
                }
                e
            }
            Some(_) => 1,
        }
    };
    *consumed += i + eol;
    Some((&rest[..i], eol))
}

/// A folded continuation line, unless it is really a new "Name: value" header indented by
/// whitespace (browsers read those as headers, and so does libhtp's evasion handling).
fn is_folding(line: &[u8]) -> bool {
    if !matches!(line.first(), Some(b' ') | Some(b'\t') | Some(0)) {
        return false;
    }
    let t = trim(line);
    match memchr::memchr(b':', t) {
        Some(c) if c > 0 => !t[..c].iter().all(|&ch| ch.is_ascii_alphanumeric() || ch == b'-' || ch == b'_'),
        _ => true,
    }
}

/// Parse a chunk-size line like libhtp: leading whitespace/control skipped, hex digits up to
/// the first non-hex byte (extensions and junk ignored). None = not a chunk length at all.
/// Whether a chunk-size line carries an extension (`<size>;name=value`).
fn chunk_has_extension(line: &[u8]) -> bool {
    let l = trim_start(line);
    let n = l.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    n > 0 && trim_start(&l[n..]).first() == Some(&b';')
}

fn parse_chunk_len(line: &[u8]) -> Option<Option<u64>> {
    let l = trim_start(line);
    if l.is_empty() {
        return Some(None); // an empty line: keep looking
    }
    let n = l.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if n == 0 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &l[..n] {
        v = v.checked_mul(16)?.checked_add((c as char).to_digit(16)? as u64)?;
        if v > i32::MAX as u64 {
            return None;
        }
    }
    Some(Some(v))
}

/// Content-Length as libhtp reads it: junk before the digits skipped, junk after ignored.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    let s = v.iter().position(|c| c.is_ascii_digit())?;
    let mut n: u64 = 0;
    for &c in v[s..].iter().take_while(|c| c.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(n)
}

/// A header line's name (NUL bytes removed) and value, both trimmed.
fn parse_header_line(line: &[u8]) -> (Cow<'_, [u8]>, &[u8]) {
    match memchr::memchr(b':', line) {
        Some(c) => {
            let n = trim(&line[..c]);
            let n = if n.contains(&0) { Cow::Owned(n.iter().copied().filter(|&b| b != 0).collect()) } else { Cow::Borrowed(n) };
            (n, trim(&line[c + 1..]))
        }
        None => (Cow::Borrowed(&[][..]), trim(line)),
    }
}

/// Header count and header block size most messages stay within: their buffers are sized for
/// that at the first header line instead of growing through several reallocations.
const TYPICAL_HEADERS: usize = 12;
const TYPICAL_HEADER_BYTES: usize = 1024;

/// Append a raw header line to the side's raw header block.
fn add_raw_header(raw: &mut Vec<u8>, line: &[u8]) {
    if raw.capacity() == 0 {
        raw.reserve(TYPICAL_HEADER_BYTES.max(line.len()));
    }
    raw.extend_from_slice(line);
}

/// Normalise a request URI the way Suricata's http.uri shows it: percent-decoding of
/// unreserved bytes is left alone (libhtp defaults), but path `//` and `/./` segments and
/// `..` are resolved, and an absolute-form authority is removed.
pub fn normalize_uri(raw: &[u8]) -> Vec<u8> {
    let mut u = raw;
    // absolute form: scheme://authority/path → /path
    if let Some(p) = find(u, b"://") {
        if u[..p].iter().all(|c| c.is_ascii_alphabetic()) {
            let rest = &u[p + 3..];
            u = match memchr::memchr(b'/', rest) {
                Some(s) => &rest[s..],
                None => b"/",
            };
        }
    }
    let (path, query) = match memchr::memchr(b'?', u) {
        Some(q) => (&u[..q], &u[q..]),
        None => (u, &b""[..]),
    };
    // The common case: nothing to decode and no dot segment, so the path stays as it is.
    if !path.contains(&b'%') && !path.split(|&c| c == b'/').any(|s| s == b"." || s == b"..") {
        return [path, query].concat();
    }
    let path = pct_decode_path(path);
    let mut segs: Vec<&[u8]> = Vec::new();
    let abs = path.first() == Some(&b'/');
    let parts: Vec<&[u8]> = path.split(|&c| c == b'/').collect();
    let n = parts.len();
    for (i, s) in parts.into_iter().enumerate() {
        match s {
            b"." => {
                if i == n - 1 {
                    segs.push(b"");
                }
            }
            b".." => {
                if segs.len() > 1 || (segs.len() == 1 && !abs) {
                    segs.pop();
                }
                if i == n - 1 {
                    segs.push(b"");
                }
            }
            _ => segs.push(s),
        }
    }
    let mut out = segs.join(&b'/');
    if abs && out.first() != Some(&b'/') {
        out.insert(0, b'/');
    }
    out.extend_from_slice(query);
    out
}

/// libhtp decodes %XX in the path (not %2F handling beyond plain decoding) and leaves invalid
/// escapes as they are.
fn pct_decode_path(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'%' && i + 2 < p.len() + 0 && i + 2 <= p.len() - 1 {
            let h = (p[i + 1] as char).to_digit(16);
            let l = (p[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(p[i]);
        i += 1;
    }
    out
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}

impl HttpState {
    pub fn new() -> Self {
        HttpState { txs: Vec::new(), base_id: 0, req: Side::new(), res: Side::new(), next_res_tx: 0, after_switch: false, res_chunk_hits: Default::default() }
    }

    /// Drop the buffers of the finished transactions (no rule will read them): the newest
    /// first, down to one dropped before (transactions finish in order).
    pub fn release_finished(&mut self) {
        for tx in self.txs.iter_mut().rev() {
            if tx.released {
                break;
            }
            if tx.req_done && tx.res_done {
                tx.release();
            }
        }
    }

    fn new_tx(&mut self) -> usize {
        if self.txs.len() >= MAX_TXS {
            // Prune the oldest finished transaction to stay bounded.
            self.txs.remove(0);
            self.base_id += 1;
            self.next_res_tx = self.next_res_tx.saturating_sub(1);
            if let Some(c) = self.req.cur.as_mut() {
                *c = c.saturating_sub(1);
            }
            if let Some(c) = self.res.cur.as_mut() {
                *c = c.saturating_sub(1);
            }
        }
        self.txs.push(HttpTx::default());
        self.txs.len() - 1
    }

    /// Feed bytes from the client.
    pub fn parse_request(&mut self, data: &[u8]) {
        self.feed(true, data);
    }

    /// Feed one side's bytes. Parse the packet's bytes in place when nothing is pending (the
    /// usual case), so only an incomplete tail is copied; otherwise parse the pending bytes
    /// with these appended.
    fn feed(&mut self, client: bool, data: &[u8]) {
        let side = if client { &mut self.req } else { &mut self.res };
        let mut pending = std::mem::take(&mut side.buf);
        // Unconsumed bytes come straight before `data` in the stream.
        side.base = side.fed - pending.len() as u64;
        side.fed += data.len() as u64;
        let parse = |h: &mut Self, input: &[u8]| if client { h.parse_request_bytes(input) } else { h.parse_response_bytes(input) };
        if pending.is_empty() {
            let c = parse(self, data);
            pending.extend_from_slice(&data[c..]);
        } else {
            pending.extend_from_slice(data);
            let c = parse(self, &pending);
            pending.drain(..c);
        }
        let side = if client { &mut self.req } else { &mut self.res };
        side.buf = pending;
        side.trim();
    }

    /// Parse client bytes; returns how many were consumed (the rest waits for more data).
    fn parse_request_bytes(&mut self, input: &[u8]) -> usize {
        let mut c = 0usize;
        loop {
            match self.req.phase {
                Phase::Stop => {
                    c = input.len();
                    break;
                }
                Phase::Line => {
                    let start = c;
                    let Some(line) = take_line(input, &mut c) else { break };
                    if trim(line).is_empty() {
                        continue; // leading empty lines are ignored
                    }
                    if self.unexpected_body(&input[start..c], line) {
                        continue;
                    }
                    let t = self.new_tx();
                    self.req.cur = Some(t);
                    let tx = &mut self.txs[t];
                    tx.request_line = line.to_vec();
                    parse_request_line(tx, line);
                    tx.req_line_done = true;
                    tx.req_gen += 1;
                    if tx.req_protocol.is_empty() && trim_start(&input[c..]).is_empty() {
                        // HTTP/0.9: no headers, no body. (libhtp-rs: when anything but
                        // whitespace follows the request line, the protocol was just missing
                        // and headers are parsed.)
                        tx.req_headers_done = true;
                        tx.req_done = true;
                        self.req.phase = Phase::Line;
                    } else {
                        self.req.phase = Phase::Headers;
                        self.req.header_bytes = 0;
                    }
                }
                Phase::Headers => {
                    let Some(t) = self.req.cur else { self.req.phase = Phase::Line; continue };
                    let start = c;
                    let Some(line) = take_line(input, &mut c) else {
                        if input.len() - c > MAX_HEADER_BYTES {
                            self.req.phase = Phase::Stop;
                        }
                        break;
                    };
                    let tx = &mut self.txs[t];
                    if line.is_empty() {
                        tx.req_headers_done = true;
                        tx.req_gen += 1;
                        let mode = request_body_mode(tx);
                        if mode == BodyMode::None {
                            tx.req_done = true;
                            self.req.phase = Phase::Line;
                        } else {
                            self.req.phase = Phase::Body(mode);
                        }
                        continue;
                    }
                    add_raw_header(&mut tx.req_headers_raw, &input[start..c]);
                    self.req.header_bytes += c - start;
                    if is_folding(line) && !tx.req_headers.is_empty() {
                        let last = tx.req_headers.len() - 1;
                        tx.req_headers.append_value(last, &[b" ", trim(line)]);
                    } else {
                        let (n, v) = parse_header_line(line);
                        tx.req_headers.add(&n, v);
                    }
                    if self.req.header_bytes > MAX_HEADER_BYTES {
                        tx.req_headers_done = true;
                        self.req.phase = Phase::Stop;
                    }
                }
                Phase::Body(mode) => {
                    let Some(t) = self.req.cur else { self.req.phase = Phase::Line; continue };
                    let tx = &mut self.txs[t];
                    let mut ext = false;
                    let (nm, done) = body_step(mode, input, &mut c, &mut tx.req_body, &mut ext);
                    if ext {
                        tx.event("http.request_chunk_extension");
                    }
                    if done {
                        tx.req_done = true;
                        tx.req_gen += 1;
                        self.req.phase = Phase::Line;
                    } else if nm == mode {
                        break;
                    } else {
                        self.req.phase = Phase::Body(nm);
                    }
                }
            }
        }
        c.min(input.len())
    }

    /// Feed bytes from the server.
    pub fn parse_response(&mut self, data: &[u8]) {
        self.feed(false, data);
    }

    /// Parse server bytes; returns how many were consumed.
    fn parse_response_bytes(&mut self, input: &[u8]) -> usize {
        let mut c = 0usize;
        loop {
            match self.res.phase {
                Phase::Stop => {
                    c = input.len();
                    break;
                }
                Phase::Line => {
                    let start = c;
                    let Some(line) = take_line_res(input, &mut c) else {
                        // No line end yet: data that cannot become "HTTP" is a body already
                        // (HTTP/0.9 style), no need to wait for a line end that may never come.
                        let rest = trim_start(&input[c..]);
                        if rest.len() >= 4 && !rest[..4].eq_ignore_ascii_case(b"HTTP") {
                            let t = if self.next_res_tx < self.txs.len() { self.next_res_tx } else { self.new_tx() };
                            self.next_res_tx = t + 1;
                            self.res.cur = Some(t);
                            let tx = &mut self.txs[t];
                            tx.res_line_done = true;
                            tx.res_headers_done = true;
                            self.res.phase = Phase::Body(BodyMode::UntilClose);
                            continue;
                        }
                        break;
                    };
                    if trim(line).is_empty() {
                        continue;
                    }
                    if !looks_like_response(line) {
                        // libhtp: a junk line directly followed by one starting with 'H' is
                        // skipped (e.g. "SIP/2.0 200 ok" then "HTTP/1.1 200 ok").
                        if matches!(input.get(c), Some(b'H') | Some(b'h')) {
                            continue;
                        }
                    }
                    let t = if self.next_res_tx < self.txs.len() {
                        self.next_res_tx
                    } else {
                        self.new_tx()
                    };
                    self.next_res_tx = t + 1;
                    self.res.cur = Some(t);
                    let tx = &mut self.txs[t];
                    if !looks_like_response(line) {
                        // libhtp: a response line that does not start with "HTTP" is the start
                        // of a body that runs until the connection closes (HTTP/0.9 style).
                        tx.res_line_done = true;
                        tx.res_headers_done = true;
                        c = start;
                        self.res.phase = Phase::Body(BodyMode::UntilClose);
                        continue;
                    }
                    tx.response_line = line.to_vec();
                    parse_response_line(tx, line);
                    tx.res_line_done = true;
                    tx.res_gen += 1;
                    self.res.phase = Phase::Headers;
                    self.res.header_bytes = 0;
                }
                Phase::Headers => {
                    let Some(t) = self.res.cur else { self.res.phase = Phase::Line; continue };
                    let start = c;
                    let Some((line, eol)) = take_hdr_line(input, &mut c) else {
                        if input.len() - c > MAX_HEADER_BYTES {
                            self.res.phase = Phase::Stop;
                        }
                        break;
                    };
                    let tx = &mut self.txs[t];
                    let ws_only = line.iter().all(|&ch| ch == b' ' || ch == b'\t');
                    if ws_only && !line.is_empty() && !tx.res_headers.is_empty() {
                        if eol >= 2 || line.len() >= 2 {
                            // libhtp-rs: an empty folded continuation, not the end of headers.
                            add_raw_header(&mut tx.res_headers_raw, &input[start..c]);
                            self.res.header_bytes += c - start;
                            continue;
                        }
                        // One blank plus a one-byte EOL ends the headers; an empty line right
                        // after it belongs to that end too.
                        if input.get(c) == Some(&b'\n') {
                            c += if input.get(c + 1) == Some(&b'\r') { 2 } else { 1 };
                        }
                    }
                    if line.is_empty() && eol == 1 && input[c - 1] == b'\r' && tx.res_headers.is_empty() {
                        // libhtp-rs: a lone CR opening the header block is an empty header
                        // line, not the end of the headers.
                        add_raw_header(&mut tx.res_headers_raw, &input[start..c]);
                        self.res.header_bytes += c - start;
                        continue;
                    }
                    if ws_only {
                        let status = status_number(&tx.status);
                        if status == Some(100) && tx.res_headers.is_empty() {
                            // 100 Continue: the real response line follows.
                            tx.res_headers.clear();
                            tx.res_headers_raw.clear();
                            self.res.phase = Phase::Line;
                            self.next_res_tx = t;
                            continue;
                        }
                        tx.res_headers_done = true;
                        tx.res_gen += 1;
                        tx.res_layers = encoding_layers(tx);
                        // The event at libhtp's default limit (2); decompression goes up to
                        // DECOMPRESS_LAYER_LIMIT, the limit the verify cases configure.
                        if tx.res_layers > 2 {
                            tx.event("http.too_many_encoding_layers");
                        }
                        // 101 with Upgrade: h2c asks for a protocol change (app-layer-htp.c);
                        // on a stream that changed protocols already it is refused.
                        if self.after_switch && status == Some(101) && tx.res_header("upgrade").is_some_and(|u| trim(u).eq_ignore_ascii_case(b"h2c")) {
                            tx.event("http.failed_protocol_change");
                        }
                        tx.res_layers = tx.res_layers.min(DECOMPRESS_LAYER_LIMIT);
                        let mode = response_body_mode(tx);
                        if mode == BodyMode::None {
                            finish_response(tx);
                            self.res.phase = Phase::Line;
                        } else {
                            self.res.phase = Phase::Body(mode);
                        }
                        continue;
                    }
                    add_raw_header(&mut tx.res_headers_raw, &input[start..c]);
                    self.res.header_bytes += c - start;
                    if is_folding(line) && !tx.res_headers.is_empty() {
                        // Join with the previous logical line and parse again, so a name
                        // whose colon arrives on the continuation line still parses.
                        if let Some((n, v)) = tx.res_headers.last() {
                            let mut joined = n.to_vec();
                            if !n.is_empty() {
                                joined.push(b':');
                            }
                            joined.extend_from_slice(v);
                            joined.push(b' ');
                            joined.extend_from_slice(trim(line));
                            tx.res_headers.pop();
                            let (n2, v2) = parse_header_line(&joined);
                            tx.res_headers.push(&n2, v2);
                        }
                    } else {
                        let (n, v) = parse_header_line(line);
                        tx.res_headers.add(&n, v);
                    }
                    if self.res.header_bytes > MAX_HEADER_BYTES {
                        tx.res_headers_done = true;
                        self.res.phase = Phase::Stop;
                    }
                }
                Phase::Body(mode) => {
                    let Some(t) = self.res.cur else { self.res.phase = Phase::Line; continue };
                    let tx = &mut self.txs[t];
                    // Identity bodies are inspected as they arrive; encoded ones are kept as
                    // received and decoded once complete.
                    let dst = if tx.res_layers == 0 { &mut tx.res_body } else { &mut tx.res_body_encoded };
                    let before = c;
                    let mut ext = false;
                    let (nm, done) = body_step(mode, input, &mut c, dst, &mut ext);
                    if ext {
                        tx.event("http.response_chunk_extension");
                    }
                    if c > before {
                        // Is the inspected body still the server's bytes as sent, in one run?
                        let at = self.res.base + before as u64;
                        let as_sent = tx.res_layers == 0 && matches!(mode, BodyMode::Length(_) | BodyMode::UntilClose) && !tx.res_body_split;
                        let one_run = match tx.res_body_at {
                            None => tx.res_body_seen == 0,
                            Some(a) => a + tx.res_body_seen == at,
                        };
                        if as_sent && one_run {
                            tx.res_body_at = Some(tx.res_body_at.unwrap_or(at));
                        } else {
                            tx.res_body_split = true;
                            tx.res_body_at = None;
                        }
                        tx.res_body_seen += (c - before) as u64;
                    }
                    if done {
                        // libhtp-rs response_finalize: lines right after the body that do not
                        // start a response ("http") are more body of this response.
                        if tx.res_layers == 0 {
                            while c < input.len() {
                                let rest = &input[c..];
                                let n = memchr::memchr(b'\n', rest).map(|i| i + 1).unwrap_or(rest.len());
                                let l = &rest[..n];
                                let t0 = l.iter().position(|&ch| !is_ws(ch) && ch != 0).unwrap_or(l.len());
                                let lt = &l[t0..];
                                let could_be_http = if lt.len() >= 4 { lt[..4].eq_ignore_ascii_case(b"http") } else { b"http"[..lt.len()].eq_ignore_ascii_case(lt) };
                                if could_be_http || trim(l).is_empty() {
                                    break;
                                }
                                keep_body(&mut tx.res_body, l, 0);
                                tx.res_body_seen += n as u64;
                                tx.res_body_split = true;
                                tx.res_body_at = None;
                                c += n;
                            }
                        }
                        finish_response(tx);
                        self.res.phase = Phase::Line;
                    } else if nm == mode {
                        break;
                    } else {
                        self.res.phase = Phase::Body(nm);
                    }
                }
            }
        }
        c.min(input.len())
    }

    /// A CONNECT request was answered 2xx: the stream is a tunnel from here on (its
    /// protocol is recognised again, as Suricata does for CONNECT).
    pub fn tunnel_open(&self) -> bool {
        self.txs.iter().any(|t| t.res_done && t.method.eq_ignore_ascii_case(b"CONNECT") && status_number(&t.status).is_some_and(|s| (200..300).contains(&s)))
    }

    /// Bytes given to `parse_response` so far: the coordinates of `HttpTx::res_body_at`.
    pub fn res_fed(&self) -> u64 {
        self.res.fed
    }

    /// The server side closed (FIN/RST or flow end): bodies delimited by close are complete.
    pub fn close_response(&mut self) {
        if let Phase::Body(_) = self.res.phase {
            if let Some(t) = self.res.cur {
                if let Some(tx) = self.txs.get_mut(t) {
                    finish_response(tx);
                }
            }
        }
        self.res.phase = Phase::Stop;
    }
    /// libhtp's REQ_FINALIZE: bytes after a request that has no body, which do not start
    /// with a known method, are that request's body after all (http.request_body_unexpected)
    /// rather than a request of their own. `raw`: the bytes as sent, `line` without its end.
    fn unexpected_body(&mut self, raw: &[u8], line: &[u8]) -> bool {
        let Some(t) = self.req.cur else { return false };
        let Some(tx) = self.txs.get_mut(t) else { return false };
        if !tx.req_done || !tx.req_body.is_empty() || tx.req_protocol.is_empty() || request_body_mode(tx) != BodyMode::None {
            return false;
        }
        let l = trim_start(line);
        let m = l.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(l.len());
        if is_known_method(&l[..m]) {
            return false;
        }
        let _ = raw;
        keep_body(&mut tx.req_body, line, 0);
        tx.event("http.request_body_unexpected");
        true
    }

    pub fn close_request(&mut self) {
        // Bytes left without a line end after a body-less request: its unexpected body.
        if !self.req.buf.is_empty() && matches!(self.req.phase, Phase::Line) {
            let pending = std::mem::take(&mut self.req.buf);
            let line = trim(&pending).to_vec();
            if !line.is_empty() && !self.unexpected_body(&pending, &line) {
                self.req.buf = pending;
            }
        }
        if let Some(t) = self.req.cur {
            if let Some(tx) = self.txs.get_mut(t) {
                if !tx.req_done {
                    tx.req_done = true;
                    tx.req_headers_done = true;
                    tx.req_gen += 1;
                }
            }
        }
    }
}

/// The methods libhtp knows (a request line starting with another word after a body-less
/// request is that request's body).
fn is_known_method(m: &[u8]) -> bool {
    const M: [&[u8]; 28] = [
        b"GET", b"PUT", b"POST", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH", b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"VERSION-CONTROL", b"CHECKOUT",
        b"UNCHECKOUT", b"CHECKIN", b"UPDATE", b"LABEL", b"REPORT", b"MKWORKSPACE", b"MKACTIVITY", b"BASELINE-CONTROL", b"MERGE", b"INVALID", b"HEAD",
    ];
    M.iter().any(|k| k.eq_ignore_ascii_case(m))
}

fn status_number(s: &[u8]) -> Option<u16> {
    let t = trim(s);
    if t.len() != 3 || !t.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

fn finish_response(tx: &mut HttpTx) {
    if !tx.res_done {
        tx.res_done = true;
        decode_res_body(tx);
        tx.res_gen += 1;
    }
}

/// Content-Encoding layers libhtp would apply to this response.
fn encoding_layers(tx: &HttpTx) -> usize {
    let Some(ce) = tx.res_header("content-encoding") else { return 0 };
    let mut n = 0;
    for tok in ce.split(|&c| c == b',' || c == b' ' || c == b'\t' || c == b';') {
        if contains_nocase_nozero(tok, b"gzip") || contains_nocase_nozero(tok, b"deflate") {
            n += 1;
        }
    }
    n
}

/// Decode a complete encoded body into the inspected one. Decompression runs on the whole
/// encoded body (bounded), so partial or damaged streams still yield what decodes; body rules
/// run once the body is complete, so this happens once.
fn decode_res_body(tx: &mut HttpTx) {
    if tx.res_layers == 0 {
        return;
    }
    let mut body = std::mem::take(&mut tx.res_body_encoded);
    for _ in 0..tx.res_layers {
        body = decode_layer(&body, BODY_LIMIT);
    }
    tx.res_body = body;
}

fn parse_request_line(tx: &mut HttpTx, line: &[u8]) {
    let l = trim(line);
    let m = l.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(l.len());
    tx.method = l[..m].to_vec();
    let rest = trim_start(&l[m..]);
    // The protocol is the last token when it looks like HTTP; the URI is everything between
    // (so URIs with spaces survive, as libhtp allows).
    let last_sp = rest.iter().rposition(|&c| c == b' ' || c == b'\t');
    match last_sp {
        Some(p) if rest[p + 1..].len() >= 4 && rest[p + 1..p + 5].eq_ignore_ascii_case(b"HTTP") => {
            tx.uri_raw = trim(&rest[..p]).to_vec();
            tx.req_protocol = rest[p + 1..].to_vec();
        }
        _ => {
            tx.uri_raw = rest.to_vec();
        }
    }
    tx.uri_norm = normalize_uri(&tx.uri_raw);
}

fn parse_response_line(tx: &mut HttpTx, line: &[u8]) {
    let l = trim_start(line);
    let p = l.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(l.len());
    tx.res_protocol = l[..p].to_vec();
    let rest = trim_start(&l[p..]);
    let s = rest.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(rest.len());
    tx.status = rest[..s].to_vec();
    tx.status_msg = trim(&rest[s..]).to_vec();
}

fn request_body_mode(tx: &HttpTx) -> BodyMode {
    if let Some(te) = tx.req_header("transfer-encoding") {
        if contains_nocase_nozero(te, b"chunked") {
            return BodyMode::Chunked(ChunkState::Size);
        }
    }
    match tx.req_header("content-length").and_then(parse_content_length) {
        Some(0) | None => BodyMode::None,
        Some(n) => BodyMode::Length(n),
    }
}

fn response_body_mode(tx: &HttpTx) -> BodyMode {
    if tx.method.eq_ignore_ascii_case(b"HEAD") {
        return BodyMode::None;
    }
    let te = tx.res_header("transfer-encoding");
    let cl = tx.res_header("content-length");
    let status = status_number(&tx.status).unwrap_or(200);
    if ((100..200).contains(&status) || status == 204 || status == 304) && te.is_none() && cl.is_none() {
        return BodyMode::None;
    }
    if let Some(te) = te {
        if contains_nocase_nozero(te, b"chunked") {
            return BodyMode::Chunked(ChunkState::Size);
        }
    }
    if let Some(cl) = cl {
        if let Some(n) = parse_content_length(cl) {
            return if n == 0 { BodyMode::None } else { BodyMode::Length(n) };
        }
    }
    BodyMode::UntilClose
}

/// A body's buffer is first sized for its declared length up to this much, so a typical
/// body is not copied again and again as it grows; a false Content-Length can reserve no more.
const BODY_RESERVE: usize = 16 * 1024;

/// Append body bytes to `out`, which keeps at most BODY_LIMIT of them (the rest is consumed
/// and dropped). `declared`: the bytes the body still announces (Content-Length), if known.
fn keep_body(out: &mut Vec<u8>, b: &[u8], declared: u64) {
    let room = BODY_LIMIT.saturating_sub(out.len());
    let b = &b[..b.len().min(room)];
    if out.capacity() == 0 {
        out.reserve_exact(b.len().max(declared.min(BODY_RESERVE as u64) as usize));
    }
    out.extend_from_slice(b);
}

/// Advance a body state machine over buf[*c..], appending the decoded bytes to `out`.
/// Returns (new mode, done).
/// `ext` is set when a chunk-size line carried an extension.
fn body_step(mode: BodyMode, buf: &[u8], c: &mut usize, out: &mut Vec<u8>, ext: &mut bool) -> (BodyMode, bool) {
    let avail = &buf[*c..];
    match mode {
        BodyMode::None => (mode, true),
        BodyMode::UntilClose => {
            *c = buf.len();
            keep_body(out, avail, 0);
            (mode, false)
        }
        BodyMode::Length(n) => {
            let take = (avail.len() as u64).min(n) as usize;
            *c += take;
            keep_body(out, &avail[..take], n);
            let left = n - take as u64;
            if left == 0 {
                (BodyMode::None, true)
            } else {
                (BodyMode::Length(left), false)
            }
        }
        BodyMode::Chunked(st) => {
            let mut st = st;
            loop {
                match st {
                    ChunkState::Size => {
                        let mut cc = *c;
                        let Some(line) = take_line(buf, &mut cc) else {
                            let pending = trim_start(&buf[*c..]);
                            if pending.first().is_some_and(|ch| !ch.is_ascii_hexdigit()) {
                                return (BodyMode::UntilClose, false);
                            }
                            return (BodyMode::Chunked(st), false);
                        };
                        *ext |= chunk_has_extension(line);
                        match parse_chunk_len(line) {
                            Some(None) => {
                                *c = cc;
                            }
                            Some(Some(0)) => {
                                *c = cc;
                                st = ChunkState::Trailer;
                            }
                            Some(Some(n)) => {
                                *c = cc;
                                st = ChunkState::Data(n);
                            }
                            None => {
                                // Not a chunk length: libhtp treats the rest as an identity
                                // body delimited by connection close.
                                return (BodyMode::UntilClose, false);
                            }
                        }
                    }
                    ChunkState::Data(n) => {
                        let avail = &buf[*c..];
                        if avail.is_empty() {
                            return (BodyMode::Chunked(st), false);
                        }
                        let take = (avail.len() as u64).min(n) as usize;
                        keep_body(out, &avail[..take], n);
                        *c += take;
                        st = if n - take as u64 == 0 { ChunkState::DataEnd } else { ChunkState::Data(n - take as u64) };
                    }
                    ChunkState::DataEnd => {
                        // Consume the CRLF after chunk data (lenient: a lone LF or nothing).
                        let avail = &buf[*c..];
                        if avail.is_empty() {
                            return (BodyMode::Chunked(st), false);
                        }
                        if avail[0] == b'\r' {
                            if avail.len() < 2 {
                                return (BodyMode::Chunked(st), false);
                            }
                            *c += if avail[1] == b'\n' { 2 } else { 1 };
                        } else if avail[0] == b'\n' {
                            *c += 1;
                        }
                        st = ChunkState::Size;
                    }
                    ChunkState::Trailer => {
                        let mut cc = *c;
                        let Some(line) = take_line(buf, &mut cc) else {
                            return (BodyMode::Chunked(st), false);
                        };
                        *c = cc;
                        if line.is_empty() {
                            return (BodyMode::None, true);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_response(res: &[u8]) -> HttpTx {
        let mut h = HttpState::new();
        h.parse_request(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        h.parse_response(res);
        h.close_response();
        h.txs.swap_remove(0)
    }

    #[test]
    fn finished_transactions_are_released_without_rules() {
        // a keep-alive flow: two finished transactions and one whose response is under way
        let mut h = HttpState::new();
        h.parse_request(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n");
        h.parse_response(b"HTTP/1.1 200 ok\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 ok\r\nContent-Length: 5\r\n\r\nworldHTTP/1.1 200 ok\r\nContent-Length: 9\r\n\r\npart");
        assert_eq!(h.txs.len(), 3);
        h.release_finished();
        assert!(h.txs[0].released && h.txs[1].released && !h.txs[2].released);
        assert!(h.txs[0].res_body.is_empty() && h.txs[1].res_body.is_empty() && h.txs[1].method.is_empty());
        assert!(h.txs[0].res_done && h.txs[1].req_done, "progress flags stay");
        assert_eq!(h.txs[2].res_body, b"part");
        h.parse_response(b"-done");
        h.release_finished();
        assert!(h.txs[2].released && h.txs[2].res_body.is_empty());
    }

    #[test]
    fn deformed_header_line_ends_are_one_end() {
        // "\r\n\r\r\n" between two headers, as libhtp reads it: one line end, not the end of
        // the header block (Transfer-Encoding still applies).
        let tx = one_response(b"HTTP/1.1 200 ok\r\nConnection: close\r\n\r\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(tx.res_header("transfer-encoding"), Some(&b"chunked"[..]));
        assert_eq!(tx.res_body, b"hello");
        // "\n\r" line ends throughout.
        let tx = one_response(b"HTTP/1.1 200 ok\n\rContent-Type: text/html\n\rContent-Length: 5\n\r\n\rhello");
        assert_eq!(tx.res_header("content-length"), Some(&b"5"[..]));
        assert_eq!(tx.res_body, b"hello");
    }

    #[test]
    fn blank_continuation_lines_do_not_end_the_headers() {
        // A header name, then its colon and value on blank-led continuation lines.
        let tx = one_response(b"HTTP/1.1 200 ok\r\nTransfer-Encoding\r\n \r\n :\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(tx.res_body, b"hello");
        // A line of one blank and a lone LF still ends them (libhtp), with the LF after it.
        let tx = one_response(b"HTTP/1.1 200 ok\nContent-Length: 5\n \n\nhello");
        assert_eq!(tx.res_body, b"hello");
    }

    #[test]
    fn bytes_after_a_complete_body_that_start_no_response_are_body() {
        let tx = one_response(b"HTTP/1.1 200 ok\r\nContent-Length: 3\r\n\r\nabcdef\r\nghi");
        assert_eq!(tx.res_body, b"abcdef\r\nghi");
        assert_eq!(tx.res_body_at, None, "no longer the bytes as sent in one run");
        // A following response is not swallowed.
        let mut h = HttpState::new();
        h.parse_request(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        h.parse_response(b"HTTP/1.1 200 ok\r\nContent-Length: 3\r\n\r\nabc\r\nHTTP/1.1 404 nf\r\nContent-Length: 2\r\n\r\nzz");
        assert_eq!(h.txs[0].res_body, b"abc");
        assert_eq!(h.txs[1].status, b"404");
        assert_eq!(h.txs[1].res_body, b"zz");
    }

    #[test]
    fn folding_after_a_repeated_header_keeps_it() {
        // Fuzzer find: "A" repeated moves its bytes to the end of the buffer; folding the line
        // after "B" then dropped B by cutting the buffer at B's start, and A's bytes with it.
        let tx = one_response(b"HTTP/1.1 200 ok\r\nA: 1\r\nB: 2\r\nA: 3\r\n x\r\nContent-Length: 2\r\n\r\nok");
        // (The continuation joins the last header in order, B; libhtp would join it to the
        // line before, "A: 3". Both keep every header intact, which is what this test is about.)
        let hs: Vec<(Vec<u8>, Vec<u8>)> = tx.res_headers.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert!(tx.res_header("a").is_some_and(|v| v.starts_with(b"1, 3")), "{hs:?}");
        assert!(tx.res_header("b").is_some_and(|v| v.starts_with(b"2")), "{hs:?}");
        assert_eq!(tx.res_body, b"ok");
    }

    #[test]
    fn request_line_without_protocol() {
        // Headers follow: the protocol is missing, not HTTP/0.9.
        let mut h = HttpState::new();
        h.parse_request(b"GET /gen.php?x=1\r\nHost: example\r\nUser-Agent: t\r\n\r\n");
        assert_eq!(h.txs[0].req_header("host"), Some(&b"example"[..]));
        // Nothing follows: HTTP/0.9, done at once.
        let mut h = HttpState::new();
        h.parse_request(b"GET /old\r\n");
        assert!(h.txs[0].req_done);
    }

    #[test]
    fn chunked_response_is_dechunked() {
        let mut h = HttpState::new();
        h.parse_request(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        h.parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(h.txs.len(), 1);
        assert_eq!(h.txs[0].res_body, b"hello");
        assert!(h.txs[0].res_done);
        assert_eq!(h.txs[0].uri_raw, b"/a");
    }

    #[test]
    fn pipelined_requests_make_transactions() {
        let mut h = HttpState::new();
        h.parse_request(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(h.txs.len(), 2);
        assert_eq!(h.txs[1].req_body, b"abc");
    }

    #[test]
    fn repeated_and_folded_headers() {
        let mut h = HttpState::new();
        h.parse_request(b"GET / HTTP/1.1\r\nA: 1\r\nContent-Length: 0\r\nB: 2\r\n  folded\r\na: 3\r\ncontent-length: 9\r\nB: 4\r\n\r\n");
        let hs: Vec<(&[u8], &[u8])> = h.txs[0].req_headers.iter().collect();
        assert_eq!(hs, vec![(&b"A"[..], &b"1, 3"[..]), (b"Content-Length", b"0"), (b"B", b"2 folded, 4")]);
    }

    #[test]
    fn alternating_repeats_stay_bounded() {
        let mut hs = Headers::default();
        for i in 0..4000 {
            hs.add(if i % 2 == 0 { b"A" } else { b"B" }, b"xy");
        }
        let live: usize = hs.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert_eq!(hs.get(b"a").map(|v| v.len()), Some(2 + 1999 * 4));
        assert!(hs.bytes.len() <= 3 * live, "{} bytes for {live} live", hs.bytes.len());
    }

    #[test]
    fn uri_normalisation() {
        assert_eq!(normalize_uri(b"/a/./b/../c?x=/../"), b"/a/c?x=/../");
        assert_eq!(normalize_uri(b"http://h.example/x"), b"/x");
        assert_eq!(normalize_uri(b"/a//b.php?x=/./"), b"/a//b.php?x=/./");
        assert_eq!(normalize_uri(b""), b"");
    }

    #[test]
    fn parser_marks_bodies_as_sent() {
        let mut h = HttpState::new();
        h.parse_request(b"GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
        h.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel");
        h.parse_response(b"loHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
        assert_eq!(h.txs[0].res_body_at, Some(38));
        assert_eq!(h.txs[0].res_body_seen, 5);
        assert_eq!(h.txs[0].res_body, b"hello");
        assert_eq!(h.txs[1].res_body_at, None, "a chunked body is not the bytes as sent");
        assert_eq!(h.txs[1].res_body, b"ab");
    }
}
