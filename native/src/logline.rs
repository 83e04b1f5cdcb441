//! Where the fields of a web server's access line lie (common/combined log format and its
//! variants: `[vhost] ip ident user [time] "request" status bytes ["referer" "agent"]`), found
//! natively for a batch of lines so loginspect's JavaScript only builds the event.
//!
//! The positions are exactly those loginspect's JavaScript decoder (`decodeAccess`) finds:
//! a line here is its bytes, and the lines given are those whose characters are their bytes
//! (a byte above 0x7f is one character no search looks for, on either side). Only the shapes
//! nearly every line has are settled here: a stamp other than `dd/Mon/yyyy:hh:mm:ss +zzzz`, or
//! a head token shaped like an IPv6 address, is left to the JavaScript decoder (`UNSURE`).

/// The row of one line: what it is, then its spans and the positions the event needs.
pub const STRIDE: usize = 34;
/// Not looked at (not given, or not a line whose characters are its bytes).
pub const SKIPPED: i32 = 0;
/// An access line: the row holds its positions.
pub const ACCESS: i32 = 1;
/// Not an access line (the JavaScript decoder would say so too).
pub const NOT_ACCESS: i32 = 2;
/// A shape left to the JavaScript decoder.
pub const UNSURE: i32 = 3;

/// Slots of the spans (two entries each, start and end; -1 absent), as the JavaScript `SLOT`.
const SLOT_KEYWORDS: usize = 0;
const SLOT_REQUEST: usize = 1;
const SLOT_METHOD: usize = 2;
const SLOT_URI: usize = 3;
const SLOT_STEM: usize = 4;
const SLOT_QUERY: usize = 5;
const SLOT_VERSION: usize = 6;
const SLOT_REFERER: usize = 7;
const SLOT_AGENT: usize = 8;
const SLOT_STATUS: usize = 9;
const SLOT_BYTES: usize = 10;
const SLOT_USER: usize = 11;
const SLOT_CORDON_URI: usize = 12;
pub const SLOTS: usize = 13;
/// A slot whose field is not a slice of the line (the decoded URI of an escaped one).
const NOT_A_SLICE: i32 = -2;

/// Row layout after the kind (`row[0]`): spans at 1..27, then these.
pub const TS_FROM: usize = 1 + 2 * SLOTS;
pub const TS_TO: usize = TS_FROM + 1;
pub const GAP_START: usize = TS_FROM + 2;
pub const GAP_END: usize = TS_FROM + 3;
pub const IP_START: usize = TS_FROM + 4;
pub const IP_END: usize = TS_FROM + 5;
pub const HOST_END: usize = TS_FROM + 6;
const _: () = assert!(HOST_END + 1 == STRIDE);

fn find(b: &[u8], from: usize, c: u8) -> Option<usize> {
    if from >= b.len() {
        return None;
    }
    memchr::memchr(c, &b[from..]).map(|p| p + from)
}

/// The first ` [` (the stamp's opening), looked for only where the JavaScript decoder takes it (≤ 300).
fn stamp_open(b: &[u8]) -> Option<usize> {
    let head = &b[..b.len().min(302)];
    memchr::memchr_iter(b'[', head).find(|&p| p > 0 && head[p - 1] == b' ').map(|p| p - 1)
}

/// JavaScript's `lastIndexOf(" HTTP/", end - 6)` for a match at or after `min`: the last
/// occurrence lying wholly before `end`.
fn rfind_version(b: &[u8], min: usize, end: usize) -> Option<usize> {
    if end < min {
        return None;
    }
    // from the spaces backwards (memrchr is vectorized; a reverse substring search is not)
    let hay = &b[min..end];
    memchr::memrchr_iter(b' ', hay).find(|&p| hay[p..].starts_with(b" HTTP/")).map(|p| p + min)
}

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// The closing quote of a `"…"` field from its opening quote; a backslash escapes the byte after it.
fn quoted(b: &[u8], open: usize) -> Option<usize> {
    let mut from = open + 1;
    loop {
        let q = find(b, from, b'"')?;
        // only a backslash before this quote can escape it (or one before it)
        match memchr::memchr(b'\\', &b[from..q]) {
            None => return Some(q),
            Some(p) => from = from + p + 2,
        }
    }
}

/// `dd/Mon/yyyy:hh:mm:ss ±zzzz` with a month name and digits where the JavaScript fast path
/// reads them (so its stamp is a number, not null; JavaScript computes it from these bounds).
fn common_stamp(s: &[u8]) -> bool {
    if s.len() != 26 || s[2] != b'/' || s[6] != b'/' || s[11] != b':' || s[14] != b':' || s[17] != b':' || s[20] != b' ' {
        return false;
    }
    if s[21] != b'+' && s[21] != b'-' {
        return false;
    }
    let digits = [0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25];
    if !digits.iter().all(|&i| is_digit(s[i])) {
        return false;
    }
    let m = [s[3].to_ascii_lowercase(), s[4].to_ascii_lowercase(), s[5].to_ascii_lowercase()];
    const MONTHS: [&[u8; 3]; 12] = [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];
    MONTHS.iter().any(|x| **x == m)
}

enum Ip {
    Yes,
    No,
    /// Shaped like IPv6 (or IPv4 inside it): left to the JavaScript decoder.
    Unsure,
}

/// The JavaScript `looksLikeIp`: hex digits, dots and colons, and an address.
fn looks_like_ip(t: &[u8]) -> Ip {
    let (mut dots, mut colons) = (0, 0);
    for &c in t {
        match c {
            b'.' => dots += 1,
            b':' => colons += 1,
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {}
            _ => return Ip::No,
        }
    }
    if colons >= 2 {
        return Ip::Unsure;
    }
    if dots != 3 {
        return Ip::No;
    }
    if colons > 0 {
        return Ip::No; // dotted with one colon: neither isIPv4 nor isIPv6
    }
    // Node's isIPv4: four decimal octets 0-255, no leading zero
    let ok = t.split(|&c| c == b'.').all(|o| {
        !o.is_empty()
            && o.len() <= 3
            && o.iter().all(|&c| is_digit(c))
            && !(o.len() > 1 && o[0] == b'0')
            && o.iter().fold(0u32, |v, &c| v * 10 + (c - b'0') as u32) <= 255
    });
    if ok {
        Ip::Yes
    } else {
        Ip::No
    }
}

fn set(row: &mut [i32], slot: usize, start: usize, end: usize) {
    row[1 + 2 * slot] = start as i32;
    row[2 + 2 * slot] = end as i32;
}

/// Decodes `b` into `row` (length `STRIDE`); returns the kind, also written to `row[0]`.
pub fn access_line(b: &[u8], row: &mut [i32]) -> i32 {
    let kind = decode(b, row);
    row[0] = kind;
    kind
}

fn decode(b: &[u8], row: &mut [i32]) -> i32 {
    let lb = match stamp_open(b) {
        Some(p) if (1..=300).contains(&p) => p,
        _ => return NOT_ACCESS,
    };
    if !is_digit(at(b, lb + 2)) {
        return NOT_ACCESS;
    }
    let Some(rb) = find(b, lb, b']') else { return NOT_ACCESS };
    if rb < lb + 2 || !common_stamp(&b[lb + 2..rb]) {
        return UNSURE;
    }
    let Some(q) = find(b, rb, b'"') else { return NOT_ACCESS };
    let Some(qe) = quoted(b, q) else { return NOT_ACCESS };
    let mut i = qe + 1;
    while at(b, i) == b' ' {
        i += 1;
    }
    let status_start = i;
    while i < b.len() && b[i] != b' ' {
        i += 1;
    }
    if i - status_start != 3 || !b[status_start..i].iter().all(|&c| is_digit(c)) {
        return NOT_ACCESS;
    }
    let status_end = i;
    while at(b, i) == b' ' {
        i += 1;
    }
    let bytes_start = i;
    while i < b.len() && b[i] != b' ' {
        i += 1;
    }
    let bytes_end = i;
    // the head first: an IPv6-shaped token leaves the line to JavaScript before anything is written
    let mut ip: Option<(usize, usize)> = None;
    let mut count = 0usize;
    let mut first_end = 0usize;
    let mut back = [(0usize, 0usize); 3]; // the last three tokens, newest first
    let mut s = 0usize;
    loop {
        let e = match find(b, s, b' ') {
            Some(e) if e <= lb => e,
            _ => lb,
        };
        if count == 0 {
            first_end = e;
        }
        count += 1;
        back = [(s, e), back[0], back[1]];
        if ip.is_none() {
            match looks_like_ip(&b[s..e]) {
                Ip::Yes => ip = Some((s, e)),
                Ip::No => {}
                Ip::Unsure => return UNSURE,
            }
        }
        if e == lb {
            break;
        }
        s = e + 1;
    }
    let (ip_start, ip_end) = ip.unwrap_or(if count >= 3 { back[2] } else { (0, first_end) });
    row[1..1 + 2 * SLOTS].fill(-1);
    set(row, SLOT_KEYWORDS, 0, b.len());
    set(row, SLOT_STATUS, status_start, status_end);
    set(row, SLOT_BYTES, bytes_start, bytes_end);
    request_spans(b, q + 1, qe, row);
    while at(b, i) == b' ' {
        i += 1;
    }
    if at(b, i) == b'"' {
        if let Some(e) = quoted(b, i).filter(|&e| e > 0) {
            set(row, SLOT_REFERER, i + 1, e);
            i = e + 1;
            while at(b, i) == b' ' {
                i += 1;
            }
            if at(b, i) == b'"' {
                if let Some(e2) = quoted(b, i).filter(|&e2| e2 > 0) {
                    set(row, SLOT_AGENT, i + 1, e2);
                }
            }
        }
    }
    let (u, ue) = back[0];
    if ue > u && !(ue - u == 1 && b[u] == b'-') {
        set(row, SLOT_USER, u, ue);
    }
    row[TS_FROM] = (lb + 2) as i32;
    row[TS_TO] = rb as i32;
    row[GAP_START] = (rb + 1) as i32;
    row[GAP_END] = q as i32;
    row[IP_START] = ip_start as i32;
    row[IP_END] = ip_end as i32;
    row[HOST_END] = if count >= 4 && b[..first_end] != b[ip_start..ip_end] { first_end as i32 } else { -1 };
    ACCESS
}

/// The request line's parts, as the JavaScript `requestSpans`.
fn request_spans(b: &[u8], start: usize, end: usize, row: &mut [i32]) {
    set(row, SLOT_REQUEST, start, end);
    let sp = match find(b, start, b' ') {
        Some(sp) if sp < end => sp,
        _ => {
            set(row, SLOT_METHOD, start, end);
            return;
        }
    };
    set(row, SLOT_METHOD, start, sp);
    let uri_start = sp + 1;
    let mut uri_end = end;
    if let Some(v) = rfind_version(b, uri_start, end) {
        set(row, SLOT_VERSION, v + 1, end);
        uri_end = v;
    }
    set(row, SLOT_URI, uri_start, uri_end);
    match memchr::memchr(b'?', &b[uri_start..uri_end]).map(|p| p + uri_start) {
        Some(qm) => {
            set(row, SLOT_STEM, uri_start, qm);
            set(row, SLOT_QUERY, qm + 1, uri_end);
        }
        _ => set(row, SLOT_STEM, uri_start, uri_end),
    }
    if memchr::memchr2(b'%', b'+', &b[uri_start..uri_end]).is_some() {
        row[1 + 2 * SLOT_CORDON_URI] = NOT_A_SLICE;
    } else {
        set(row, SLOT_CORDON_URI, uri_start, uri_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(line: &str) -> (i32, Vec<i32>) {
        let mut row = vec![0; STRIDE];
        (access_line(line.as_bytes(), &mut row), row)
    }

    #[test]
    fn combined_line() {
        let l = r#"1.2.3.4 - bob [10/Mar/2024:11:07:10 +0000] "GET /a?b=1 HTTP/1.1" 200 5 "http://r/" "agent x""#;
        let (k, r) = row_of(l);
        assert_eq!(k, ACCESS);
        let span = |slot: usize| &l[r[1 + 2 * slot] as usize..r[2 + 2 * slot] as usize];
        assert_eq!(span(SLOT_METHOD), "GET");
        assert_eq!(span(SLOT_URI), "/a?b=1");
        assert_eq!(span(SLOT_STEM), "/a");
        assert_eq!(span(SLOT_QUERY), "b=1");
        assert_eq!(span(SLOT_VERSION), "HTTP/1.1");
        assert_eq!(span(SLOT_STATUS), "200");
        assert_eq!(span(SLOT_REFERER), "http://r/");
        assert_eq!(span(SLOT_AGENT), "agent x");
        assert_eq!(span(SLOT_USER), "bob");
        assert_eq!(&l[r[IP_START] as usize..r[IP_END] as usize], "1.2.3.4");
        assert_eq!(r[HOST_END], -1);
    }

    #[test]
    fn shapes_left_to_javascript_and_lines_that_are_not_access() {
        assert_eq!(row_of(r#"::1 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5"#).0, UNSURE);
        assert_eq!(row_of(r#"1.2.3.4 - - [10/Mar/2024:11:07:10] "GET / HTTP/1.1" 200 5"#).0, UNSURE);
        assert_eq!(row_of(r#"1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 20x 5"#).0, NOT_ACCESS);
        assert_eq!(row_of("Mar 10 11:07:10 host sshd[1]: x").0, NOT_ACCESS);
        assert_eq!(row_of("").0, NOT_ACCESS);
        assert_eq!(row_of(" [").0, NOT_ACCESS);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // a real line with bytes replaced, cut and repeated: every branch sees its edges
        const ALPHA: &[u8] = b" [\"]\\/:0123456789.-+aF?HTTP%\xff";
        let base = br#"h 1.2.3.4 - u [10/Mar/2024:11:07:10 +0000] "GET /a?b HTTP/1.1" 200 5 "r\"x" "a""#;
        let mut row = vec![0; STRIDE];
        let mut x: u32 = 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as usize
        };
        let mut kinds = [0usize; 4];
        for _ in 0..50_000 {
            let mut line = base.to_vec();
            for _ in 0..next() % 4 {
                let i = next() % line.len();
                line[i] = ALPHA[next() % ALPHA.len()];
            }
            line.truncate(next() % (line.len() + 1));
            kinds[access_line(&line, &mut row) as usize] += 1;
            if row[0] == ACCESS {
                for v in &row[1..] {
                    assert!(*v >= -2 && *v as i64 <= line.len() as i64);
                }
            }
        }
        assert!(kinds[1..].iter().all(|&n| n > 0), "every kind was seen: {kinds:?}");
    }
}
