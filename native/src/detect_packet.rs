//! Packet and stream rules: each packet's payload, the in-order stream bytes it delivered and
//! the seam with the previous segment are prefiltered, and the candidate rules evaluated in
//! rule order (header, payload, flowbits, threshold, alert).

use crate::decode_packet::*;
use crate::detect_alert::{self, Alert};
use crate::detect_ctx::{DetectCtx, PktCtx};
use crate::detect_engine::{eval_buffer, pkt_group, RuleSet};
use crate::detect_flowbits;
use crate::detect_header::{addr_rules, flow_ok, header_ok, pkt_ok, proto_ok};
use crate::detect_parse::{Item, Proto};
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
    for &ri in &sc.cand {
        let r = &rules.rules[ri as usize];
        if !proto_ok(r, c.p, f) || !flow_ok(r, c) || !header_ok(r, c.p) || !pkt_ok(r, c.p) {
            continue;
        }
        if let Some(items) = r.payload_items() {
            let is_tcp = c.p.proto == PROTO_TCP;
            let matched = if is_tcp && c.tracked && r.proto != Proto::TcpPkt {
                // Stream content: the reassembled bytes this packet delivered; a packet
                // rule also sees the raw payload (Suricata inspects both, alerting once).
                let s = c.stream.as_deref().map(|s| eval_buffer(s, items)).unwrap_or(false);
                s || seam && seam_ok(items) && {
                    // Split across the previous segment and this one: a match in tail +
                    // data that lies in neither alone (one wholly in the tail was seen then).
                    let j = joined.get_or_insert_with(|| [tail.as_slice(), c.stream.as_deref().unwrap_or(&[])].concat());
                    eval_buffer(j, items) && !eval_buffer(&tail, items)
                } || (r.proto != Proto::TcpStream && c.stream.is_none() && !c.p.payload.is_empty() && c.p.tcp.as_ref().is_some_and(|t| t.flags & TH_SYN != 0) && eval_buffer(&c.p.payload, items))
            } else if r.proto == Proto::TcpStream {
                false
            } else {
                !c.p.payload.is_empty() && eval_buffer(&c.p.payload, items)
            };
            if !matched {
                continue;
            }
        }
        if !detect_flowbits::is_ok(&r.flowbits, &f.bits) {
            continue;
        }
        detect_flowbits::apply(&r.flowbits, &mut f.bits);
        if !det.thresh.check(ri, r, c.p, f.id) {
            continue;
        }
        let ap = f.app.name();
        detect_alert::emit(r, c.p, c.idx, f.id, ap, None, out);
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
