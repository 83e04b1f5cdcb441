//! Packet and stream rules: each packet's payload, the in-order stream bytes it delivered and
//! the seam with the previous segment are prefiltered, and the candidate rules evaluated in
//! rule order (header, payload, flowbits, threshold, alert).

use crate::decode_packet::*;
use crate::detect_alert::{self, Alert};
use crate::detect_ctx::{DetectCtx, PktCtx};
use crate::detect_engine::{eval_buffer, eval_buffer_in, pkt_group, MatchCtx, RuleSet};
use crate::detect_flowbits;
use crate::detect_flowint;
use crate::detect_header::{addr_rules, flow_keywords_ok, flow_ok, header_buf, header_ok, header_ok_dir, pkt_ok, proto_ok};
use crate::detect_parse::{Buf, Item, Proto};
use crate::flow_table::{App, Flow};

/// Stream bytes kept per flow direction, so a content split across two segments is found:
/// patterns up to this long, spanning the seam, are matched (as Suricata's raw stream
/// inspection matches across segments).
const STREAM_TAIL: usize = 256;

/// Whether a stream rule's payload match can be checked on tail + data: only contents,
/// positioned relative to each other (an absolute offset, depth, anchor or negation would
/// mean something else on a buffer that starts earlier).
fn seam_ok(items: &[Item]) -> bool {
    items.iter().all(|i| matches!(i, Item::Content(c) if !c.negated && c.offset.is_none() && c.depth.is_none() && !c.startswith && !c.endswith))
}

/// Packet and stream rules (no application buffers).
pub fn run(det: &mut DetectCtx, rules: &RuleSet, f: &mut Flow, c: &PktCtx, out: &mut Vec<Alert>) {
    let mut sc = std::mem::take(&mut det.scan);
    sc.begin(rules.rules.len());
    sc.add_all(addr_rules(&mut f.addr_rules.pkt, &rules.pkt_addr, &rules.rules, f.client, c.p));
    let group = pkt_group(c.p.proto, c.to_server, c.p.sp, c.p.dp);
    // Server bytes of an HTTP flow: one stream scan for packet and file_data patterns.
    #[cfg(feature = "hyperscan")]
    let streamed = match (&c.stream, &mut f.app, c.to_server) {
        (Some(s), App::Http(h), false) => rules.scan_response_stream(group, &mut f.res_scan, h, s, &mut sc),
        _ => None,
    };
    #[cfg(not(feature = "hyperscan"))]
    let streamed: Option<bool> = None;
    let stream_done = streamed.is_some();
    // The stream bytes just before this packet's data (same direction): contents split
    // across segments are looked for in tail + data.
    let d = if c.to_server { 0 } else { 1 };
    let tail = std::mem::take(&mut f.stream_tail[d]);
    let seam = c.stream.is_some() && !tail.is_empty();
    if let Some(pf) = rules.pkt_groups.get(group).and_then(|g| g.as_ref()) {
        // In-order data is the payload itself (borrowed): scanned once.
        let same = c.stream.as_ref().is_some_and(|s| s.as_ptr() == c.p.payload.as_ptr() && s.len() == c.p.payload.len());
        if !c.p.payload.is_empty() && !(same && stream_done) {
            pf.scan(&c.p.payload, &mut sc);
        }
        if let Some(s) = &c.stream {
            if !same && !stream_done {
                pf.scan(s, &mut sc);
            }
            if seam && streamed != Some(true) {
                // The seam: the tail and as much of the data again (a streaming scan that
                // went on from the previous data found patterns across it by itself).
                det.seam_buf.clear();
                det.seam_buf.extend_from_slice(&tail);
                det.seam_buf.extend_from_slice(&s[..s.len().min(STREAM_TAIL)]);
                pf.scan(&det.seam_buf, &mut sc);
            }
        }
    }
    let mut joined: Option<Vec<u8>> = None;
    sc.finish();
    // A `<>` rule whose two ends differ is two rules in Suricata (as written, and switched),
    // evaluated one after the other: a packet both fit matches twice, and the second sees
    // the first's flowbits.
    let one: &[u8] = &[0];
    let two: &[u8] = &[1, 2];
    for (ri, mode) in sc.cand.iter().flat_map(|&ri| {
        let r = &rules.rules[ri as usize];
        (if r.bidir && !r.bidir_same { two } else { one }).iter().map(move |&m| (ri, m))
    }) {
        let r = &rules.rules[ri as usize];
        let hdr = match mode {
            0 => header_ok(r, c.p),
            1 => header_ok_dir(r, c.p, false),
            _ => header_ok_dir(r, c.p, true),
        };
        if !proto_ok(r, c.p, f) || !flow_ok(r, c) || !hdr || !pkt_ok(r, c.p) || !flow_keywords_ok(r, f, c) {
            continue;
        }
        // The switched copy keeps its own threshold state.
        let tk = if mode == 2 { ri | 1 << 31 } else { ri };
        let mut m = MatchCtx::default();
        let mut matched = true;
        for (b, items) in &r.bufs {
            matched = if *b == Buf::Payload {
                let is_tcp = c.p.proto == PROTO_TCP;
                if is_tcp && c.tracked && r.proto != Proto::TcpPkt {
                    // Stream content: the reassembled bytes this packet delivered; a packet
                    // rule also sees the raw payload (Suricata inspects both, alerting once).
                    let s = c.stream.as_deref().map(|s| eval_buffer_in(s, items, &mut m)).unwrap_or(false);
                    s || seam && seam_ok(items) && {
                        // Split across the previous segment and this one: a match in tail +
                        // data that lies in neither alone (one wholly in the tail was seen then).
                        let j = joined.get_or_insert_with(|| [tail.as_slice(), c.stream.as_deref().unwrap_or(&[])].concat());
                        eval_buffer_in(j, items, &mut m) && !eval_buffer(&tail, items)
                    } || (r.proto != Proto::TcpStream && c.stream.is_none() && !c.p.payload.is_empty() && c.p.tcp.as_ref().is_some_and(|t| t.flags & TH_SYN != 0) && eval_buffer_in(&c.p.payload, items, &mut m))
                } else if r.proto == Proto::TcpStream {
                    false
                } else {
                    !c.p.payload.is_empty() && eval_buffer_in(&c.p.payload, items, &mut m)
                }
            } else {
                header_buf(*b, c.p).is_some_and(|h| eval_buffer_in(h, items, &mut m))
            };
            if !matched {
                break;
            }
        }
        if !matched {
            continue;
        }
        if !detect_flowbits::is_ok(&r.flowbits, &f.bits) || !detect_flowint::is_ok(&r.flowints, &f.ints) {
            continue;
        }
        if !r.xbits.is_empty() && !det.xbits.is_ok(&r.xbits, c.p.src, c.p.dst, f.id, c.p.ts_us) {
            continue;
        }
        detect_flowbits::apply(&r.flowbits, &mut f.bits);
        detect_flowint::apply(&r.flowints, &mut f.ints);
        if !r.xbits.is_empty() {
            det.xbits.apply(&r.xbits, c.p.src, c.p.dst, f.id, c.p.ts_us);
        }
        if !det.thresh.check(tk, r, c.p, f.id) {
            continue;
        }
        let ap = f.app.name();
        // Alerts on a TLS flow carry its TLS fields, as Suricata's do.
        let meta = match &f.app {
            App::Gen(g) if g.proto() == Proto::Tls => g.txs().txs.first().map(|t| detect_alert::AppMeta::Tls(Box::new(detect_alert::tls_meta(t)))),
            _ => None,
        };
        detect_alert::emit(r, c.p, c.idx, f.id, ap, meta, out);
    }
    det.scan = sc;
    // Keep the last STREAM_TAIL bytes of this direction's stream.
    let mut tail = tail;
    if let Some(s) = c.stream.as_deref() {
        if s.len() >= STREAM_TAIL {
            tail.clear();
            tail.extend_from_slice(&s[s.len() - STREAM_TAIL..]);
        } else {
            let drop = (tail.len() + s.len()).saturating_sub(STREAM_TAIL);
            tail.drain(..drop);
            tail.extend_from_slice(s);
        }
    }
    f.stream_tail[d] = tail;
}

#[cfg(test)]
mod tests {
    //! HTTP response bodies are scanned as they stream by (packet and file_data patterns in one
    //! pass, with the hyperscan feature): the alerts must be those of scanning the body buffer.
    use crate::detect_alert::Alert;
    use crate::detect_engine::RuleSet;
    use crate::engine::{ChecksumMode, Engine};
    use std::sync::Arc;

    fn frame(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let tot = 20 + 20 + payload.len();
        let mut ip = vec![0x45, 0, (tot >> 8) as u8, tot as u8, 0, 0, 0, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        let mut t = Vec::new();
        t.extend_from_slice(&sp.to_be_bytes());
        t.extend_from_slice(&dp.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&ack.to_be_bytes());
        t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(&t);
        f.extend_from_slice(payload);
        f
    }

    /// One HTTP exchange; the response is cut into the given segments. Returns the sids.
    fn run(rules: &str, response: &[&[u8]]) -> Vec<u32> {
        run_swapping(rules, response, None)
    }

    /// `swap_before`: load the rules again (a new rule set) before that response segment.
    fn run_swapping(rules: &str, response: &[&[u8]], swap_before: Option<usize>) -> Vec<u32> {
        let rs = Arc::new(RuleSet::load(&[("t".into(), rules.into())]));
        assert!(rs.errors.is_empty(), "{:?}", rs.errors.iter().map(|e| &e.reason).collect::<Vec<_>>());
        let mut e = Engine::new(rs, ChecksumMode::Off);
        let (c, s) = ([10, 0, 0, 2], [192, 0, 2, 9]);
        let (mut cs, mut ss) = (1000u32, 5000u32);
        let mut out = Vec::new();
        let mut ts = 1_000_000i64;
        let mut send = |e: &mut Engine, f: Vec<u8>, out: &mut Vec<Alert>| {
            ts += 10;
            e.process(1, ts, &f, 0, out);
        };
        send(&mut e, frame(c, s, 40000, 80, cs, 0, 0x02, b""), &mut out);
        cs += 1;
        send(&mut e, frame(s, c, 80, 40000, ss, cs, 0x12, b""), &mut out);
        ss += 1;
        send(&mut e, frame(c, s, 40000, 80, cs, ss, 0x10, b""), &mut out);
        let req = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
        send(&mut e, frame(c, s, 40000, 80, cs, ss, 0x18, req), &mut out);
        cs += req.len() as u32;
        for (i, seg) in response.iter().enumerate() {
            if swap_before == Some(i) {
                e.set_rules(Arc::new(RuleSet::load(&[("t".into(), rules.into())])));
            }
            send(&mut e, frame(s, c, 80, 40000, ss, cs, 0x18, seg), &mut out);
            ss += seg.len() as u32;
            send(&mut e, frame(c, s, 40000, 80, cs, ss, 0x10, b""), &mut out);
        }
        send(&mut e, frame(s, c, 80, 40000, ss, cs, 0x11, b""), &mut out);
        e.finish(&mut out);
        let mut sids: Vec<u32> = out.iter().map(|a| a.sid).collect();
        sids.sort_unstable();
        sids.dedup();
        sids
    }

    const RULES: &str = r#"
alert http any any -> any any (msg:"body pattern"; flow:to_client; file_data; content:"EvilPayloadMarker"; sid:1;)
alert http any any -> any any (msg:"body pattern at start"; flow:to_client; file_data; content:"<html>"; startswith; sid:2;)
alert tcp any any -> any any (msg:"stream pattern"; flow:to_client; content:"EvilPayloadMarker"; sid:3;)
alert http any any -> any any (msg:"header text is not body"; flow:to_client; file_data; content:"X-Marker-Header"; sid:4;)
"#;

    #[test]
    fn body_pattern_split_across_segments() {
        let r = run(RULES, &[b"HTTP/1.1 200 OK\r\nContent-Length: 36\r\nX-Marker-Header: 1\r\n\r\n<html>aaaaEvilPay", b"loadMarkerbbbbbbbbbb"]);
        // The body is one buffer; the stream rule finds the split content on the seam.
        assert_eq!(r, vec![1, 2, 3]);
    }

    #[test]
    fn body_pattern_inside_one_segment() {
        let r = run(RULES, &[b"HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\n", b"<html>aaaaEvilPayloadMarkerbbbbbbbbbb"]);
        assert_eq!(r, vec![1, 2, 3]);
    }

    #[test]
    fn rule_swap_mid_body_scans_the_body_again() {
        // The stream scan of the old set cannot vouch for the body: it is scanned whole.
        let segs: [&[u8]; 3] = [b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n<html>aaaaEvilPay", b"loadMarkerbbbbbb", b"cccccccc"];
        assert_eq!(run_swapping(RULES, &segs, Some(1)), vec![1, 2, 3]);
        assert_eq!(run_swapping(RULES, &segs, None), vec![1, 2, 3]);
    }

    #[test]
    fn header_bytes_are_not_body() {
        let r = run(RULES, &[b"HTTP/1.1 200 OK\r\nX-Marker-Header: EvilPayloadMarker\r\nContent-Length: 6\r\n\r\n<html>"]);
        assert_eq!(r, vec![2, 3]);
    }

    #[test]
    fn chunked_and_second_response_bodies() {
        let first: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n<html>Ev\r\nf\r\nilPayloadMarker\r\n0\r\n\r\n";
        let r = run(RULES, &[first]);
        assert_eq!(r, vec![1, 2], "dechunked body is one buffer");
        // Keep-alive: the marker in the second response's body only.
        let rules = RULES.replace("sid:1;", "sid:1; http.stat_code; content:\"201\";");
        let r = run(&rules, &[b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdHTTP/1.1 201 Created\r\nContent-Length: 21\r\n\r\nEvilPa", b"yloadMarker+pad"]);
        assert_eq!(r, vec![1, 3]);
    }

    #[test]
    fn stream_content_split_across_segments() {
        let rules = r#"
alert tcp any any -> any any (msg:"split in the stream"; flow:to_client; content:"SplitMarker"; sid:11;)
alert tcp any any -> any any (msg:"relative pair across the seam"; flow:to_client; content:"Split"; content:"Marker"; distance:0; within:6; sid:12;)
alert tcp any any -> any any (msg:"depth is of one segment's data"; flow:to_client; content:"SplitMarker"; depth:20; sid:13;)
alert tcp-pkt any any -> any any (msg:"packets are not streams"; flow:to_client; content:"SplitMarker"; sid:14;)
"#;
        let r = run(rules, &[b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nabcdefSplit", b"Markerxyz"]);
        assert_eq!(r, vec![11, 12]);
        // Not again for the next segment, whose seam no longer holds it.
        let r2 = run(rules, &[b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nabcdefSplit", b"Markerxyz", b"0123456789"]);
        assert_eq!(r2, vec![11, 12]);
    }
}
