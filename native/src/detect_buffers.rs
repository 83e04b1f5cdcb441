//! Buffer selection: the sticky buffers an application-layer transaction offers to rules
//! (http.uri, http.header, file_data, dns.query, tls.sni, ...), per side, in the order they
//! were always offered (a multi-buffer such as http.request_header repeats its kind).

use crate::applayer_dns::DnsMessage;
use crate::applayer_http::HttpTx;
use crate::detect_parse::Buf;

/// The sticky buffers of one side of a transaction, one entry per buffer (multi-buffers such
/// as http.request_header repeat their kind), borrowed from the transaction where they exist
/// as such; composed ones are written to `arena` first, those no rule reads (`used`, by buffer
/// tag: `RuleSet::bufs_used`) left out. Bodies are only offered once that side is complete:
/// body rules wait for it, so scanning a partial body would be wasted work.
pub fn http_bufs<'a>(tx: &'a HttpTx, req: bool, arena: &'a mut Vec<u8>, used: &[bool; 256]) -> Vec<(Buf, &'a [u8])> {
    let used = |b: Buf| used[b.tag() as usize];
    let hs = if req { &tx.req_headers } else { &tx.res_headers };
    // The headers read by name, each looked up in one pass over the headers (the first of a
    // name wins, as Headers::get finds it) instead of one pass per name.
    const NAMES: [&str; 13] = ["host", "user-agent", "cookie", "set-cookie", "accept", "accept-language", "accept-encoding", "referer", "connection", "content-type", "content-length", "server", "location"];
    let mut found: [Option<&[u8]>; 13] = [None; 13];
    for (n, v) in hs.iter() {
        for (k, name) in NAMES.iter().enumerate() {
            if found[k].is_none() && n.len() == name.len() && n.eq_ignore_ascii_case(name.as_bytes()) {
                found[k] = Some(v);
                break;
            }
        }
    }
    let [host, user_agent, cookie, set_cookie, ..] = found;
    // Phase 1: composed buffers into the arena, remembered as ranges.
    arena.clear();
    let mut composed: Vec<(Buf, usize, usize)> = Vec::with_capacity(8 + hs.len());
    fn put(arena: &mut Vec<u8>, composed: &mut Vec<(Buf, usize, usize)>, b: Buf, parts: &[&[u8]]) {
        let s = arena.len();
        for p in parts {
            arena.extend_from_slice(p);
        }
        composed.push((b, s, arena.len()));
    }
    let (line, raw, each) = if req { (&tx.request_line, &tx.req_headers_raw, Buf::HttpRequestHeader) } else { (&tx.response_line, &tx.res_headers_raw, Buf::HttpResponseHeader) };
    if let Some(h) = host.filter(|_| req && used(Buf::HttpHost)) {
        let s = arena.len();
        arena.extend(h.iter().map(|c| c.to_ascii_lowercase()));
        composed.push((Buf::HttpHost, s, arena.len()));
    }
    if used(Buf::HttpStart) {
        put(arena, &mut composed, Buf::HttpStart, &[line, b"\r\n", raw, b"\r\n"]);
    }
    if used(each) {
        for (n, x) in hs.iter() {
            put(arena, &mut composed, each, &[n, b": ", x]);
        }
    }
    if !hs.is_empty() && used(Buf::HttpHeader) {
        let s = arena.len();
        for (n, v) in hs.iter() {
            if n.eq_ignore_ascii_case(b"cookie") || n.eq_ignore_ascii_case(b"set-cookie") {
                continue;
            }
            arena.extend_from_slice(n);
            arena.extend_from_slice(b": ");
            arena.extend_from_slice(v);
            arena.extend_from_slice(b"\r\n");
        }
        composed.push((Buf::HttpHeader, s, arena.len()));
    }
    if !hs.is_empty() && used(Buf::HttpHeaderNames) {
        let s = arena.len();
        arena.extend_from_slice(b"\r\n");
        for (n, _) in hs.iter() {
            arena.extend_from_slice(n);
            arena.extend_from_slice(b"\r\n");
        }
        arena.extend_from_slice(b"\r\n");
        composed.push((Buf::HttpHeaderNames, s, arena.len()));
    }
    // Phase 2: the list, in the order the buffers were always offered.
    let arena: &'a [u8] = arena;
    let mut v: Vec<(Buf, &'a [u8])> = Vec::with_capacity(24 + hs.len());
    let get = |b: Buf| composed.iter().filter(move |(x, _, _)| *x == b).map(|&(_, s, e)| &arena[s..e]);
    if req {
        if !tx.uri_norm.is_empty() {
            v.push((Buf::HttpUri, &tx.uri_norm));
        }
        if !tx.uri_raw.is_empty() {
            v.push((Buf::HttpRawUri, &tx.uri_raw));
        }
        if !tx.method.is_empty() {
            v.push((Buf::HttpMethod, &tx.method));
        }
        if !tx.req_protocol.is_empty() {
            v.push((Buf::HttpProtocol, &tx.req_protocol));
        }
        v.push((Buf::HttpRequestLine, &tx.request_line));
        if let Some(ua) = user_agent {
            v.push((Buf::HttpUserAgent, ua));
        }
        if let Some(h) = host {
            v.extend(get(Buf::HttpHost).map(|x| (Buf::HttpHost, x)));
            v.push((Buf::HttpRawHost, h));
        }
        if let Some(c) = cookie {
            v.push((Buf::HttpCookie, c));
        }
        if !tx.req_body.is_empty() && tx.req_done {
            v.push((Buf::HttpClientBody, &tx.req_body));
            v.push((Buf::FileData, &tx.req_body));
        }
        v.extend(get(Buf::HttpStart).map(|x| (Buf::HttpStart, x)));
        v.extend(get(Buf::HttpRequestHeader).map(|x| (Buf::HttpRequestHeader, x)));
    } else {
        if !tx.res_protocol.is_empty() {
            v.push((Buf::HttpProtocol, &tx.res_protocol));
        }
        if !tx.status.is_empty() {
            v.push((Buf::HttpStatCode, &tx.status));
        }
        if !tx.status_msg.is_empty() {
            v.push((Buf::HttpStatMsg, &tx.status_msg));
        }
        if !tx.response_line.is_empty() {
            v.push((Buf::HttpResponseLine, &tx.response_line));
        }
        if let Some(c) = set_cookie {
            v.push((Buf::HttpCookie, c));
        }
        if !tx.res_body.is_empty() && tx.res_done {
            v.push((Buf::FileData, &tx.res_body));
        }
        v.extend(get(Buf::HttpStart).map(|x| (Buf::HttpStart, x)));
        v.extend(get(Buf::HttpResponseHeader).map(|x| (Buf::HttpResponseHeader, x)));
    }
    v.extend(get(Buf::HttpHeader).map(|x| (Buf::HttpHeader, x)));
    v.extend(get(Buf::HttpHeaderNames).map(|x| (Buf::HttpHeaderNames, x)));
    let raw = if req { &tx.req_headers_raw } else { &tx.res_headers_raw };
    if !raw.is_empty() {
        v.push((Buf::HttpRawHeader, raw));
    }
    for (n, x) in NAMES[4..].iter().zip(&found[4..]) {
        if let Some(x) = *x {
            let key: &'static str = n;
            v.push((Buf::HttpNamed(key), x));
        }
    }
    v
}

/// A DNS message's buffers: each query name.
pub fn dns_bufs(dns: &DnsMessage) -> Vec<(Buf, &[u8])> {
    dns.queries.iter().map(|q| (Buf::DnsQuery, q.as_slice())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applayer_http::HttpState;

    #[test]
    fn composed_buffers_no_rule_reads_are_left_out() {
        let mut h = HttpState::new();
        h.parse_request(b"GET /a HTTP/1.1\r\nHost: Example.COM\r\nUser-Agent: u\r\n\r\n");
        let tx = &h.txs[0];
        let kinds = |used: &[bool; 256]| {
            let mut arena = Vec::new();
            http_bufs(tx, true, &mut arena, used).iter().map(|(b, v)| (*b, String::from_utf8_lossy(v).into_owned())).collect::<Vec<_>>()
        };
        let all = kinds(&[true; 256]);
        for b in [Buf::HttpHost, Buf::HttpStart, Buf::HttpRequestHeader, Buf::HttpHeader, Buf::HttpHeaderNames] {
            assert!(all.iter().any(|(x, _)| *x == b), "{b:?} composed when used");
        }
        let mut used = [false; 256];
        used[Buf::HttpHeader.tag() as usize] = true;
        let some = kinds(&used);
        assert!(some.contains(&(Buf::HttpHeader, "Host: Example.COM\r\nUser-Agent: u\r\n".into())));
        for b in [Buf::HttpHost, Buf::HttpStart, Buf::HttpRequestHeader, Buf::HttpHeaderNames] {
            assert!(!some.iter().any(|(x, _)| *x == b), "{b:?} left out");
        }
        // Buffers borrowed from the transaction are offered whatever is used.
        assert!(some.contains(&(Buf::HttpUri, "/a".into())) && some.contains(&(Buf::HttpRawHost, "Example.COM".into())));
        // The same buffers as with everything composed, in the same order.
        let kept: Vec<_> = all.iter().filter(|(b, _)| !matches!(b, Buf::HttpHost | Buf::HttpStart | Buf::HttpRequestHeader | Buf::HttpHeaderNames)).cloned().collect();
        assert_eq!(some, kept);
    }
}
