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
    sc.riders.clear();
    det.riders_valid = false;
    let group = pkt_group(c.p.proto, c.to_server, c.p.sp, c.p.dp);
    sc.add_all(addr_rules(&mut f.addr_rules.pkt, &rules.pkt_addr, &rules.rules, f.client, c.p, Some(group)));
    // Server bytes of an HTTP flow: one stream scan for packet and file_data patterns.
    #[cfg(feature = "hyperscan")]
    let streamed = match (&c.stream, &mut f.app, c.to_server) {
        (Some(s), App::Http(h), false) if !c.no_payload => rules.scan_response_stream(group, &mut f.res_scan, h, s, &mut sc),
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
    // Encrypted payload (see PktCtx::no_payload): no content can match, nothing is scanned.
    if let Some(pf) = rules.pkt_groups.get(group).and_then(|g| g.as_ref()).filter(|_| !c.no_payload) {
        // A to-server packet's payload and in-order data are both scanned below (no response
        // stream scan covers them): its riders are complete.
        det.riders_valid = pf.has_riders() && c.to_server;
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
                // Only as far on either side as the matcher's longest pattern reaches.
                let reach = pf.max_len.saturating_sub(1).min(STREAM_TAIL);
                det.seam_buf.clear();
                det.seam_buf.extend_from_slice(&tail[tail.len().saturating_sub(reach)..]);
                det.seam_buf.extend_from_slice(&s[..s.len().min(reach)]);
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
        if c.no_payload && dsize_needs_payload(r) {
            continue;
        }
        // The switched copy keeps its own threshold state.
        let tk = if mode == 2 { ri | 1 << 31 } else { ri };
        let mut m = MatchCtx::default();
        let mut matched = true;
        for (b, items) in &r.bufs {
            matched = if *b == Buf::Payload && c.no_payload {
                false
            } else if *b == Buf::Payload {
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

/// A `dsize` that a packet without payload cannot meet: Suricata gives such a rule its
/// payload-required mask, and a packet whose payload is not inspected (encrypted TLS) skips it.
fn dsize_needs_payload(r: &crate::detect_parse::Rule) -> bool {
    use crate::detect_parse::{Cmp, PktMatch};
    r.pkt.iter().any(|m| matches!(m, PktMatch::Dsize(Cmp::Ne(_) | Cmp::Gt(_) | Cmp::Ge(_) | Cmp::Range(..))) || matches!(m, PktMatch::Dsize(Cmp::Eq(n)) if *n > 0))
}

#[cfg(test)]
mod tests {
    //! HTTP response bodies are scanned as they stream by (packet and file_data patterns in one
    //! pass, with the hyperscan feature): the alerts must be those of scanning the body buffer.
    use crate::detect_alert::Alert;
    use crate::detect_engine::RuleSet;
    use crate::engine::{ChecksumMode, Engine};
    use crate::test_capture::frame;
    use std::sync::Arc;

    /// One HTTP exchange; the response is cut into the given segments. Returns the sids.
    fn run(rules: &str, response: &[&[u8]]) -> Vec<u32> {
        run_swapping(rules, response, None)
    }

    /// `swap_before`: load the rules again (a new rule set) before that response segment.
    fn run_swapping(rules: &str, response: &[&[u8]], swap_before: Option<usize>) -> Vec<u32> {
        let mut e = engine(rules);
        let mut steps = vec![(true, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n".to_vec())];
        steps.extend(response.iter().map(|seg| (false, seg.to_vec())));
        let swap = |e: &mut Engine, i: usize| {
            if swap_before.is_some_and(|k| i == k + 1) {
                e.set_rules(Arc::new(RuleSet::load(&[("t".into(), rules.into())])));
            }
        };
        let mut sids = drive(&mut e, 80, &steps, swap, true);
        sids.sort_unstable();
        sids.dedup();
        sids
    }

    fn engine(rules: &str) -> Engine {
        let rs = Arc::new(RuleSet::load(&[("t".into(), rules.into())]));
        assert!(rs.errors.is_empty(), "{:?}", rs.errors.iter().map(|e| &e.reason).collect::<Vec<_>>());
        Engine::new(rs, ChecksumMode::Off)
    }

    /// A TCP conversation to port `dport` after the handshake: `steps` in order (true: from
    /// the client), each segment acknowledged; `before(e, i)` runs before step i; `fin`: the
    /// server closes at the end. Returns the sids that alerted, in packet order (repeats kept).
    fn drive(e: &mut Engine, dport: u16, steps: &[(bool, Vec<u8>)], mut before: impl FnMut(&mut Engine, usize), fin: bool) -> Vec<u32> {
        let (c, s) = ([10, 0, 0, 2], [192, 0, 2, 9]);
        let (mut cs, mut ss) = (1000u32, 5000u32);
        let mut out = Vec::new();
        let mut ts = 1_000_000i64;
        let mut send = |e: &mut Engine, f: Vec<u8>, out: &mut Vec<Alert>| {
            ts += 10;
            e.process(1, ts, &f, 0, out);
        };
        send(e, frame(c, s, 40000, dport, cs, 0, 0x02, b""), &mut out);
        cs += 1;
        send(e, frame(s, c, dport, 40000, ss, cs, 0x12, b""), &mut out);
        ss += 1;
        send(e, frame(c, s, 40000, dport, cs, ss, 0x10, b""), &mut out);
        for (i, (from_client, seg)) in steps.iter().enumerate() {
            before(e, i);
            if *from_client {
                send(e, frame(c, s, 40000, dport, cs, ss, 0x18, seg), &mut out);
                cs += seg.len() as u32;
                send(e, frame(s, c, dport, 40000, ss, cs, 0x10, b""), &mut out);
            } else {
                send(e, frame(s, c, dport, 40000, ss, cs, 0x18, seg), &mut out);
                ss += seg.len() as u32;
                send(e, frame(c, s, 40000, dport, cs, ss, 0x10, b""), &mut out);
            }
        }
        if fin {
            send(e, frame(s, c, dport, 40000, ss, cs, 0x11, b""), &mut out);
        }
        e.finish(&mut out);
        out.iter().map(|a| a.sid).collect()
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

    #[test]
    fn seam_scan_reaches_as_far_as_the_longest_pattern() {
        // A client stream on a port no parser claims: the seam of each segment with the one
        // before is scanned over the longest pattern's length less one on either side. Each
        // pattern is split at its first and at its last byte, after 300 bytes of filler.
        let rules = r#"
alert tcp any any -> any 9999 (msg:"long"; flow:to_server; content:"0123456789abcdef"; sid:21;)
alert tcp any any -> any 9999 (msg:"short"; flow:to_server; content:"wxyz"; sid:22;)
"#;
        let pad = vec![b'.'; 300];
        for (a, b, sid) in [("0", "123456789abcdef", 21), ("0123456789abcde", "f", 21), ("w", "xyz", 22), ("wxy", "z", 22)] {
            let steps = [(true, [pad.as_slice(), a.as_bytes()].concat()), (true, [b.as_bytes(), pad.as_slice()].concat())];
            assert_eq!(conversation(rules, false, 9999, &steps), vec![sid], "{a}|{b}");
        }
    }

    /// `drive` on a fresh engine; `full`: encryption handling "full".
    fn conversation(rules: &str, full: bool, dport: u16, steps: &[(bool, Vec<u8>)]) -> Vec<u32> {
        let mut e = engine(rules);
        e.set_inspect_encrypted(full);
        drive(&mut e, dport, steps, |_, _| {}, false)
    }

    /// A TLS conversation on port 443: the client's hello (SNI `s.example`, with the
    /// early_data extension when `early`), then `steps`.
    fn tls_flow(rules: &str, full: bool, early: bool, steps: &[(bool, Vec<u8>)]) -> Vec<u32> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        let name = b"s.example";
        let mut exts = vec![0, 0];
        exts.extend_from_slice(&((5 + name.len()) as u16).to_be_bytes());
        exts.extend_from_slice(&((3 + name.len()) as u16).to_be_bytes());
        exts.push(0);
        exts.extend_from_slice(&(name.len() as u16).to_be_bytes());
        exts.extend_from_slice(name);
        if early {
            exts.extend_from_slice(&[0, 42, 0, 0]);
        }
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hello = vec![22, 3, 1, 0, 0, 1, 0, 0, body.len() as u8];
        hello[3..5].copy_from_slice(&((4 + body.len()) as u16).to_be_bytes());
        hello.extend_from_slice(&body);
        let mut steps = steps.to_vec();
        steps.insert(0, (true, hello));
        conversation(rules, full, 443, &steps)
    }

    fn tls_record(ct: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ct, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn server_hello() -> Vec<u8> {
        let mut m = vec![2, 0, 0, 38, 3, 3];
        m.extend_from_slice(&[9; 32]);
        m.extend_from_slice(&[0, 0x13, 0x01, 0]);
        tls_record(22, &m)
    }

    const TLS_RULES: &str = r#"
alert tcp any any -> any any (msg:"content in the stream"; flow:established; content:"SECRETMARK"; sid:21;)
alert tls any any -> any any (msg:"sni"; tls.sni; content:"s.example"; sid:22;)
alert tcp any any -> any 443 (msg:"dsize needs a payload"; flow:to_server,established; dsize:>0; sid:23;)
alert tcp any any -> any 443 (msg:"no payload keyword, every client data packet"; flow:to_server,established; flags:PA; sid:24;)
"#;

    #[test]
    fn encrypted_tls_payload_is_not_inspected_by_content_rules() {
        let data = |n: u8| tls_record(23, &[b"xxxxSECRETMARKyyyy".as_slice(), &[n; 20]].concat());
        let steps = vec![(false, server_hello()), (true, tls_record(20, &[1])), (true, data(1)), (false, data(2)), (true, data(3))];
        // Suricata's default: the packet that carries the first application data is still
        // inspected (the flow is flagged while it is parsed), the later ones are not; TLS
        // keywords go on, and so do rules without payload keywords.
        let sids = tls_flow(TLS_RULES, false, false, &steps);
        assert_eq!(sids.iter().filter(|&&s| s == 21).count(), 1, "{sids:?}");
        assert!(sids.contains(&22), "{sids:?}");
        // dsize:>0 needs a payload: the hello, the ChangeCipherSpec, the first data
        assert_eq!(sids.iter().filter(|&&s| s == 23).count(), 3, "{sids:?}");
        assert_eq!(sids.iter().filter(|&&s| s == 24).count(), 4, "{sids:?}");
        // encryption-handling: full — every application data packet.
        let sids = tls_flow(TLS_RULES, true, false, &steps);
        assert_eq!(sids.iter().filter(|&&s| s == 21).count(), 3, "{sids:?}");
        assert!(sids.contains(&22), "{sids:?}");
        assert_eq!(sids.iter().filter(|&&s| s == 23).count(), 4, "{sids:?}");
    }

    #[test]
    fn tls_early_data_before_the_server_hello_is_still_inspected() {
        let data = |n: u8| tls_record(23, &[b"xxxxSECRETMARKyyyy".as_slice(), &[n; 20]].concat());
        // 0-RTT: the client offered early data and sends it before the server's hello.
        let steps = vec![(true, data(1)), (true, data(2)), (false, server_hello()), (false, data(3)), (true, data(4))];
        let sids = tls_flow(TLS_RULES, false, true, &steps);
        // early data twice, then the server's first application data (its packet is still
        // inspected), then nothing
        assert_eq!(sids.iter().filter(|&&s| s == 21).count(), 3, "{sids:?}");
        // Without the early_data extension, application data ends the handshake at once.
        let sids = tls_flow(TLS_RULES, false, false, &steps);
        assert_eq!(sids.iter().filter(|&&s| s == 21).count(), 1, "{sids:?}");
    }

    #[test]
    fn a_record_header_split_from_its_body_still_marks_the_flow() {
        // A 6000-byte application data record over several packets: the flow is flagged on
        // its header, so the content in its later packets is not inspected.
        let mut rec = tls_record(23, &[0x41; 6000]);
        rec[3000..3010].copy_from_slice(b"SECRETMARK");
        let steps = vec![(false, server_hello()), (true, rec[..1400].to_vec()), (true, rec[1400..2800].to_vec()), (true, rec[2800..].to_vec())];
        assert!(!tls_flow(TLS_RULES, false, false, &steps).contains(&21));
        assert!(tls_flow(TLS_RULES, true, false, &steps).contains(&21));
    }

    #[test]
    fn ssh_payload_is_not_inspected_after_both_newkeys() {
        let rules = r#"
alert tcp any any -> any any (msg:"content"; flow:established; content:"SECRETMARK"; sid:31;)
alert ssh any any -> any any (msg:"software"; ssh.software; content:"OpenSSH"; sid:32;)
"#;
        let newkeys = vec![0, 0, 0, 12, 10, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let data = |n: u8| [b"\0\0\0\x20xxSECRETMARK".as_slice(), &[n; 20]].concat();
        let steps: Vec<(bool, Vec<u8>)> = vec![
            (false, b"SSH-2.0-OpenSSH_9.0\r\n".to_vec()),
            (true, b"SSH-2.0-OpenSSH_9.1\r\n".to_vec()),
            (true, [newkeys.clone(), data(1)].concat()),
            (false, data(2)),
            (false, [newkeys.clone(), data(3)].concat()),
            (true, data(4)),
            (false, data(5)),
        ];
        let run = |full: bool| conversation(rules, full, 22, &steps);
        // One side's NEWKEYS is not enough; the packet with the second is still inspected.
        let sids = run(false);
        assert_eq!(sids.iter().filter(|&&s| s == 31).count(), 3, "{sids:?}");
        assert!(sids.contains(&32), "{sids:?}");
        let sids = run(true);
        assert_eq!(sids.iter().filter(|&&s| s == 31).count(), 5, "{sids:?}");
    }
}
