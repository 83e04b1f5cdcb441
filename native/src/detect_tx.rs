//! Application-layer rules, once per transaction: an HTTP transaction's request side and
//! response side as each completes, each DNS request, a TLS client hello's server name. The
//! transaction's buffers are prefiltered and the candidate rules evaluated in rule order.

use crate::applayer_dns::{parse_dns, split_tcp};
use crate::applayer_http::HttpTx;
use crate::decode_packet::*;
use crate::detect_alert::{self, Alert};
use crate::detect_buffers;
use crate::detect_ctx::{DetectCtx, PktCtx};
use crate::applayer_tx::AppTx;
use crate::detect_engine::{eval_buffer_in, Found, JointMemo, MatchCtx, RuleSet};
use crate::detect_flowbits;
use crate::detect_flowint;
use crate::detect_header::{addr_rules, flow_keywords_ok, header_buf, header_ok, pkt_ok_app};
use crate::detect_parse::{Buf, PktMatch, Proto};
use crate::flow_table::{App, Flow};

/// Application-layer rules, once per transaction.
pub fn run(det: &mut DetectCtx, rules: &RuleSet, f: &mut Flow, c: &PktCtx, at_end: bool, out: &mut Vec<Alert>) {
    if rules.app_always.is_empty() && rules.app_pf.iter().all(|a| a.is_empty()) {
        // no rule reads a transaction: a finished one's buffers go all the same (a flow would
        // otherwise hold every body until it ends, up to 512 of 1 MiB each)
        if let App::Http(h) = &mut f.app {
            h.release_finished();
        }
        return;
    }
    match &f.app {
        App::Http(_) => http(det, rules, f, c, at_end, out),
        App::Dns => {
            if at_end || c.p.payload.is_empty() {
                return;
            }
            let msgs: Vec<&[u8]> = if c.p.proto == PROTO_TCP {
                match &c.stream {
                    Some(s) => split_tcp(s).0,
                    None => Vec::new(),
                }
            } else {
                vec![&c.p.payload]
            };
            for m in msgs {
                let Some(dns) = parse_dns(m) else { continue };
                f.dns_tx += 1;
                let bufs = detect_buffers::dns_bufs(&dns);
                if dns.response {
                    continue; // dns.query inspects requests (to_server)
                }
                eval_tx_rules(det, rules, f, c, &bufs, Proto::Dns, None, Found::default(), None, out);
            }
        }
        App::Gen(_) => gen(det, rules, f, c, at_end, out),
        _ => {}
    }
}

/// Key of a (transaction, direction) in the flow's alerted set: generic transactions are
/// inspected per direction, as Suricata's detect state is; `=>` rules per transaction.
fn gen_key(id: u64, dir: u64) -> u64 {
    (1 << 62) | (dir << 56) | id
}

/// Transactions of the generic parsers (TLS, SSH, SMTP, FTP, SMB, DCERPC, Kerberos, ...): as
/// Suricata inspects a transaction in the direction of the packet at hand (both at flow end),
/// each transaction that changed since that direction last inspected it.
fn gen(det: &mut DetectCtx, rules: &RuleSet, f: &mut Flow, c: &PktCtx, at_end: bool, out: &mut Vec<Alert>) {
    let App::Gen(mut g) = std::mem::replace(&mut f.app, App::Unknown) else { return };
    let proto = g.proto();
    let now_s = c.p.ts_us.div_euclid(1_000_000);
    let dirs: &[bool] = if at_end { &[true, false] } else if c.to_server { &[true] } else { &[false] };
    for tx in &g.txs().txs {
        let now = (tx.gen[0], tx.gen[1]);
        // Which of the directions at hand have something new to look at (cheap: no buffer
        // list is built for a transaction that did not change).
        let mut todo = [false; 2];
        for &dir in dirs {
            if tx.only.is_some_and(|o| o != dir) {
                continue;
            }
            // See AppTx::wait_reply.
            let own = usize::from(!dir);
            if tx.wait_reply && !at_end && c.p.proto == PROTO_TCP && tx.gen[own] != tx.before[own] {
                continue;
            }
            let seen = f.tx_seen.get(&gen_key(tx.id, u64::from(!dir))).copied();
            // On packets: anything new since this direction looked. At flow end: only what
            // this direction itself added since (Suricata's end-of-flow inspection runs for a
            // direction with data left to inspect).
            todo[usize::from(!dir)] = match seen {
                None => true,
                Some(s) if at_end => if dir { s.0 != now.0 } else { s.1 != now.1 },
                Some(s) => s != now,
            };
        }
        if !todo[0] && !todo[1] {
            continue;
        }
        let bufs: Vec<(Buf, &[u8])> = tx.bufs.iter().map(|(b, _, v)| (*b, v.as_slice())).collect();
        let sides: Vec<bool> = tx.bufs.iter().map(|(_, s, _)| *s).collect();
        let mut inspected = false;
        for &dir in dirs {
            if !todo[usize::from(!dir)] {
                continue;
            }
            f.tx_seen.insert(gen_key(tx.id, u64::from(!dir)), now);
            inspected = true;
            let tctx = PktCtx { p: c.p, to_server: dir, stream: None, tracked: c.tracked, established: c.established, idx: c.idx, no_payload: c.no_payload };
            eval_gen_rules(det, rules, f, &tctx, tx, &bufs, &sides, proto, Some(dir), now_s, out);
        }
        // `=>` rules: the transaction's buffers of both directions together.
        if inspected && rules.has_bidir_tx {
            eval_gen_rules(det, rules, f, c, tx, &bufs, &sides, proto, None, now_s, out);
        }
    }
    g.txs_mut().prune(|t| {
        let now = (t.gen[0], t.gen[1]);
        [0u64, 1].iter().all(|&d| t.only.is_some_and(|o| o != (d == 0)) || f.tx_seen.get(&gen_key(t.id, d)) == Some(&now))
    });
    f.app = App::Gen(g);
}

/// Whether a rule of application protocol `rp` inspects transactions of `tp`.
pub fn app_fits(rp: Proto, tp: Proto) -> bool {
    rp == tp || (rp == Proto::Dcerpc && tp == Proto::Smb)
}

/// The rules of one direction (`dir`; None: `=>` rules) of a generic transaction.
#[allow(clippy::too_many_arguments)]
fn eval_gen_rules(
    det: &mut DetectCtx,
    rules: &RuleSet,
    f: &mut Flow,
    c: &PktCtx,
    tx: &AppTx,
    bufs: &[(Buf, &[u8])],
    sides: &[bool],
    proto: Proto,
    dir: Option<bool>,
    now_s: i64,
    out: &mut Vec<Alert>,
) {
    let mut sc = std::mem::take(&mut det.scan);
    let riders = std::mem::take(&mut sc.riders);
    sc.begin(rules.rules.len());
    sc.add_all(addr_rules(&mut f.addr_rules.app, &rules.app_addr, &rules.rules, f.client, c.p, None));
    let side_ix = usize::from(dir == Some(false));
    let payload: &[u8] = if c.no_payload { &[] } else { c.stream.as_deref().unwrap_or(&c.p.payload) };
    // The client side of the transaction, inspected on the client's packet: the packet scan
    // found its payload patterns (see eval_tx_rules).
    let found = Found { payload: (dir == Some(true) && det.riders_valid).then_some(&riders[..]), ..Found::default() };
    rules.app_pf[side_ix].scan(bufs, payload, found, None, &mut sc);
    sc.riders = riders;
    if dir.is_none() {
        rules.app_pf[1].scan(bufs, payload, Found::default(), None, &mut sc);
    }
    sc.finish();
    let alert_key = gen_key(tx.id, match dir {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    });
    for &ri in &sc.cand {
        let r = &rules.rules[ri as usize];
        if r.bidir_tx != dir.is_none() || !r.app.is_some_and(|a| app_fits(a, proto)) {
            continue;
        }
        if let Some(d) = dir {
            if r.flow.to_server && !d || r.flow.to_client && d {
                continue;
            }
            // A buffer of one direction decides the rule's direction.
            if r.bufs.iter().any(|(b, _)| b.side().is_some_and(|s| s != d)) {
                continue;
            }
        }
        if r.flow.established && !c.established || r.flow.not_established && c.established {
            continue;
        }
        let hdr = if dir.is_none() { header_ok_flow(r, c, f) } else { header_ok(r, c.p) };
        if !hdr || !pkt_ok_app(r, c.p) || !flow_keywords_ok(r, f, c) || f.tx_alerted.contains(&(alert_key, ri)) {
            continue;
        }
        if !r.tx.iter().all(|m| m.matches(tx, dir, now_s)) {
            continue;
        }
        let mut m = MatchCtx::default();
        let mut ok = true;
        for (b, items) in &r.bufs {
            let hit = if *b == Buf::Payload {
                items.is_empty() || !payload.is_empty() && eval_buffer_in(payload, items, &mut m)
            } else if b.is_pkt() {
                header_buf(*b, c.p).is_some_and(|h| eval_buffer_in(h, items, &mut m))
            } else {
                let xf = r.xforms_for(*b);
                let mut any = false;
                let want_side = dir.unwrap_or_else(|| r.buf_side(*b));
                for (i, (x, v)) in bufs.iter().enumerate() {
                    if x != b || sides[i] != want_side && (dir.is_some() || b.side().is_none() && r.bidir_sides.iter().any(|(y, _)| y == b)) {
                        continue;
                    }
                    m.dce_le = tx.dce_le;
                    let hit = match xf {
                        Some(xs) => {
                            let mut t = v.to_vec();
                            for x in xs {
                                t = x.apply(&t);
                            }
                            items.is_empty() || eval_buffer_in(&t, items, &mut m)
                        }
                        None => items.is_empty() || eval_buffer_in(v, items, &mut m),
                    };
                    if hit {
                        any = true;
                        break;
                    }
                }
                any
            };
            if !hit {
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        if !post_match(det, r, ri, f, c) {
            continue;
        }
        f.tx_alerted.insert((alert_key, ri));
        if !det.thresh.check(ri, r, c.p, f.id) {
            continue;
        }
        let meta = (proto == Proto::Tls).then(|| detect_alert::AppMeta::Tls(Box::new(detect_alert::tls_meta(tx))));
        detect_alert::emit(r, c.p, c.idx, f.id, Some(proto.name()), meta, out);
    }
    det.scan = sc;
}

/// The rule's flowbits, flowint and xbits conditions; when they hold, their actions are
/// applied and true returned.
fn post_match(det: &mut DetectCtx, r: &crate::detect_parse::Rule, _ri: u32, f: &mut Flow, c: &PktCtx) -> bool {
    if !detect_flowbits::is_ok(&r.flowbits, &f.bits) || !detect_flowint::is_ok(&r.flowints, &f.ints) {
        return false;
    }
    if !r.xbits.is_empty() && !det.xbits.is_ok(&r.xbits, c.p.src, c.p.dst, f.id, c.p.ts_us) {
        return false;
    }
    detect_flowbits::apply(&r.flowbits, &mut f.bits);
    detect_flowint::apply(&r.flowints, &mut f.ints);
    if !r.xbits.is_empty() {
        det.xbits.apply(&r.xbits, c.p.src, c.p.dst, f.id, c.p.ts_us);
    }
    true
}

fn http(det: &mut DetectCtx, rules: &RuleSet, f: &mut Flow, c: &PktCtx, at_end: bool, out: &mut Vec<Alert>) {
    if !matches!(f.app, App::Http(_)) {
        return;
    }
    // Borrow the transactions while the flow's other state (bits, alerted set) is updated:
    // the HTTP state is moved out for the duration (no copy of headers or bodies).
    let App::Http(mut h) = std::mem::replace(&mut f.app, App::Unknown) else { return };
    for i in 0..h.txs.len() {
        let id = h.base_id + i as u64;
        let tx = &h.txs[i];
        let seen = f.tx_seen.get(&id).copied().unwrap_or((0, 0));
        // A transaction that is only a response (no request came) still has a request side
        // for its events: Suricata inspects it on the client's next packet (or at the end).
        let req_events_only = !tx.req_headers_done && !tx.events.is_empty() && tx.res_line_done && (c.to_server || at_end);
        let req_new = (tx.req_headers_done || req_events_only) && tx.req_gen != seen.0;
        let res_new = tx.res_headers_done && tx.res_gen != seen.1;
        if !req_new && !res_new {
            continue;
        }
        f.tx_seen.insert(id, (if req_new || tx.req_headers_done { tx.req_gen } else { seen.0 }, tx.res_gen));
        // Request side, then response side (as the directions progress). Composed
        // buffers (header blocks, lowercased host, ...) go into one reused arena.
        let mut arena = std::mem::take(&mut det.arena);
        let [mut req_memo, mut res_memo] = std::mem::take(&mut h.txs[i].joint_memo);
        let tx = &h.txs[i];
        if req_new {
            // No request: no request buffers either (rules on them do not match).
            let bufs = if tx.req_headers_done { detect_buffers::http_bufs(tx, true, &mut arena, &rules.bufs_used) } else { Vec::new() };
            let tctx = PktCtx { p: c.p, to_server: true, stream: None, tracked: c.tracked, established: c.established, idx: c.idx, no_payload: c.no_payload };
            let pc = if c.to_server { c } else { &tctx };
            eval_tx_rules(det, rules, f, pc, &bufs, Proto::Http, Some((id, true, tx)), Found::default(), Some(&mut req_memo), out);
        }
        if res_new {
            let bufs = detect_buffers::http_bufs(tx, false, &mut arena, &rules.bufs_used);
            let tctx = PktCtx { p: c.p, to_server: false, stream: None, tracked: c.tracked, established: c.established, idx: c.idx, no_payload: c.no_payload };
            let found = Found { body: rules.body_hits(&f.res_scan, tx), payload: rules.payload_hits(&h, c) };
            eval_tx_rules(det, rules, f, &tctx, &bufs, Proto::Http, Some((id, false, tx)), found, Some(&mut res_memo), out);
        }
        if rules.has_bidir_tx && res_new {
            let mut arena2 = std::mem::take(&mut det.arena2);
            let req = detect_buffers::http_bufs(tx, true, &mut arena, &rules.bufs_used);
            let res = detect_buffers::http_bufs(tx, false, &mut arena2, &rules.bufs_used);
            http_bidir(det, rules, f, c, id, tx, &req, &res, out);
            det.arena2 = arena2;
        }
        det.arena = arena;
        let done = tx.req_done && tx.res_done;
        h.txs[i].joint_memo = [req_memo, res_memo];
        // Both sides complete and inspected: nothing will look at this transaction's
        // buffers again, so release them (a long keep-alive flow must not hoard bodies).
        if done {
            h.txs[i].release();
        }
    }
    f.app = App::Http(h);
}

/// `=>` rules on an HTTP transaction whose response arrived: the request's buffers and the
/// response's together, each of the rule's buffers taken from its direction.
#[allow(clippy::too_many_arguments)]
fn http_bidir(det: &mut DetectCtx, rules: &RuleSet, f: &mut Flow, c: &PktCtx, id: u64, tx: &HttpTx, req: &[(Buf, &[u8])], res: &[(Buf, &[u8])], out: &mut Vec<Alert>) {
    let mut sc = std::mem::take(&mut det.scan);
    sc.begin(rules.rules.len());
    sc.add_all(addr_rules(&mut f.addr_rules.app, &rules.app_addr, &rules.rules, f.client, c.p, None));
    rules.app_pf[0].scan(req, &[], Found::default(), None, &mut sc);
    rules.app_pf[1].scan(res, &[], Found::default(), None, &mut sc);
    sc.finish();
    let key = id | 1 << 61;
    for &ri in &sc.cand {
        let r = &rules.rules[ri as usize];
        if !r.bidir_tx || !r.app.is_some_and(|a| a == Proto::Http) || f.tx_alerted.contains(&(key, ri)) {
            continue;
        }
        if r.flow.established && !c.established || !header_ok_flow(r, c, f) || !flow_keywords_ok(r, f, c) {
            continue;
        }
        let mut ok = r.tx.iter().all(|m| matches!(m, crate::detect_appkw::TxMatch::Event { name, .. } if tx.events.iter().any(|e| e == name)));
        for m in &r.pkt {
            if let PktMatch::Urilen(cmp, raw) = m {
                ok &= cmp.test(if *raw { tx.uri_raw.len() } else { tx.uri_norm.len() } as u64);
            }
        }
        let mut mc = MatchCtx::default();
        for (b, items) in &r.bufs {
            if !ok {
                break;
            }
            if items.is_empty() || !b.is_app() {
                continue;
            }
            let side = r.buf_side(*b);
            let list = if side { req } else { res };
            let xf = r.xforms_for(*b);
            ok = list.iter().filter(|(x, _)| x == b).any(|(_, v)| match xf {
                Some(xs) => {
                    let mut t = v.to_vec();
                    for x in xs {
                        t = x.apply(&t);
                    }
                    eval_buffer_in(&t, items, &mut mc)
                }
                None => eval_buffer_in(v, items, &mut mc),
            });
        }
        if !ok || !post_match(det, r, ri, f, c) {
            continue;
        }
        f.tx_alerted.insert((key, ri));
        if !det.thresh.check(ri, r, c.p, f.id) {
            continue;
        }
        detect_alert::emit(r, c.p, c.idx, f.id, Some("http"), Some(detect_alert::AppMeta::Http(detect_alert::http_meta(tx))), out);
    }
    det.scan = sc;
}

/// A `=>` rule's addresses and ports are those of the flow (client to server), whichever
/// direction the packet at hand goes.
fn header_ok_flow(r: &crate::detect_parse::Rule, c: &PktCtx, f: &Flow) -> bool {
    let from_client = (c.p.src, c.p.sp) == f.client;
    let (cs, cp, ss, sp) = if from_client { (c.p.src, c.p.sp, c.p.dst, c.p.dp) } else { (c.p.dst, c.p.dp, c.p.src, c.p.sp) };
    r.src.matches(&cs) && r.sp.matches(cp) && r.dst.matches(&ss) && r.dp.matches(sp)
}

#[allow(clippy::too_many_arguments)]
fn eval_tx_rules(
    det: &mut DetectCtx,
    rules: &RuleSet,
    f: &mut Flow,
    c: &PktCtx,
    bufs: &[(Buf, &[u8])],
    app: Proto,
    tx: Option<(u64, bool, &HttpTx)>,
    found: Found,
    memo: Option<&mut JointMemo>,
    out: &mut Vec<Alert>,
) {
    let mut sc = std::mem::take(&mut det.scan);
    let riders = std::mem::take(&mut sc.riders);
    sc.begin(rules.rules.len());
    let request_side = tx.map(|t| t.1).unwrap_or(c.to_server);
    let payload: &[u8] = if c.no_payload { &[] } else { c.stream.as_deref().unwrap_or(&c.p.payload) };
    // The request side's payload patterns in this very packet were found by its packet scan.
    let found = if request_side && c.to_server && det.riders_valid { Found { payload: Some(&riders), ..found } } else { found };
    // The prefilter first: a memo of its joint scan takes the candidates as they start.
    let memo = memo.zip(tx).map(|(m, t)| (m, (t.2.header_key(request_side), rules.generation)));
    rules.app_pf[if request_side { 0 } else { 1 }].scan(bufs, payload, found, memo, &mut sc);
    sc.riders = riders;
    sc.add_all(addr_rules(&mut f.addr_rules.app, &rules.app_addr, &rules.rules, f.client, c.p, None));
    sc.finish();
    let tx_id = tx.map(|t| t.0).unwrap_or(f.dns_tx + (1 << 40));
    // Which kinds of buffer this side offers, by tag (named headers share one tag: those are
    // looked up by name).
    let mut present = [false; 256];
    for (b, _) in bufs {
        if !matches!(b, Buf::HttpNamed(_)) {
            present[b.tag() as usize] = true;
        }
    }
    for &ri in &sc.cand {
        let r = &rules.rules[ri as usize];
        // A rule on a transaction's events alone, without a direction, is inspected (and
        // alerts) once per direction, as Suricata registers app-layer-event for both.
        let tx_id = if tx.is_some() && !r.tx.is_empty() && !r.flow.to_server && !r.flow.to_client && r.bufs.iter().all(|(b, _)| !b.is_app()) && !request_side { tx_id | 1 << 59 } else { tx_id };
        if r.bidir_tx {
            continue; // `=>` rules see both sides of a transaction at once (http_bidir)
        }
        // Protocol of the rule must fit the transaction's protocol.
        let proto_fit = match r.proto {
            Proto::Http => app == Proto::Http,
            Proto::Dns => app == Proto::Dns,
            Proto::Tcp | Proto::Ip => r.app.is_none_or(|a| a == app) && (app != Proto::Dns || c.p.proto == PROTO_TCP),
            Proto::Udp => c.p.proto == PROTO_UDP && r.app.is_none_or(|a| a == app),
            _ => false,
        };
        if !proto_fit {
            continue;
        }
        if r.flow.to_server && !request_side || r.flow.to_client && request_side {
            continue;
        }
        // Addresses and ports first: most candidates a transaction's buffers raise that fail
        // are rules for the other way round (attacks on this network's servers when the
        // client is inside it).
        if !header_ok(r, c.p) {
            continue;
        }
        // Every app buffer the rule uses must exist on this side of the transaction
        // (bodies are only offered once complete, or at flow end).
        let side_ok = r.bufs.iter().all(|(b, _)| {
            *b == Buf::Payload
                || !matches!(b.http_side(), Some(s) if s != request_side) && (present[b.tag() as usize] || matches!(b, Buf::HttpNamed(_)) && bufs.iter().any(|(x, _)| x == b))
        });
        if !side_ok {
            continue;
        }
        if r.flow.established && !c.established || r.flow.not_established && c.established {
            continue;
        }
        if !pkt_ok_app(r, c.p) || !flow_keywords_ok(r, f, c) || f.tx_alerted.contains(&(tx_id, ri)) {
            continue;
        }
        // Transaction keywords: HTTP offers its anomaly events; DNS none.
        if !r.tx.iter().all(|m| match (m, tx) {
            (crate::detect_appkw::TxMatch::Event { name, .. }, Some(t)) => t.2.events.iter().any(|e| e == name),
            _ => false,
        }) {
            continue;
        }
        // urilen
        let mut ok = true;
        for m in &r.pkt {
            if let PktMatch::Urilen(cmp, raw) = m {
                let len = tx.map(|t| if *raw { t.2.uri_raw.len() } else { t.2.uri_norm.len() }).unwrap_or(0);
                ok &= cmp.test(len as u64);
            }
        }
        if !ok {
            continue;
        }
        let mut mc = MatchCtx::default();
        for (b, items) in &r.bufs {
            if items.is_empty() {
                continue;
            }
            let m = if *b == Buf::Payload {
                !payload.is_empty() && eval_buffer_in(payload, items, &mut mc)
            } else if b.is_pkt() {
                header_buf(*b, c.p).is_some_and(|h| eval_buffer_in(h, items, &mut mc))
            } else {
                let xf = r.xforms_for(*b);
                bufs.iter().filter(|(x, _)| x == b).any(|(_, v)| match xf {
                    Some(xs) => {
                        let mut t = v.to_vec();
                        for x in xs {
                            t = x.apply(&t);
                        }
                        eval_buffer_in(&t, items, &mut mc)
                    }
                    None => eval_buffer_in(v, items, &mut mc),
                })
            };
            if !m {
                ok = false;
                break;
            }
        }
        if !ok || !post_match(det, r, ri, f, c) {
            continue;
        }
        f.tx_alerted.insert((tx_id, ri));
        if !det.thresh.check(ri, r, c.p, f.id) {
            continue;
        }
        let ap = match app {
            Proto::Http => Some("http"),
            Proto::Dns => Some("dns"),
            Proto::Tls => Some("tls"),
            _ => f.app.name(),
        };
        let meta = tx.map(|t| detect_alert::AppMeta::Http(detect_alert::http_meta(t.2)));
        detect_alert::emit(r, c.p, c.idx, f.id, ap, meta, out);
    }
    det.scan = sc;
}

#[cfg(test)]
mod tests {
    //! Behaviour pinned from Suricata's documentation and source: `=>` transactional rules
    //! (rules/intro "Direction", bidir.toserver/bidir.toclient), `<>` rules as the two rules
    //! Suricata makes of them (detect-parse.c SigInit: unless source and destination are the
    //! same), HTTP responses delimited by the server closing, and requests without a
    //! protocol version (libhtp: HTTP/0.9 only when nothing follows the request line;
    //! REQ_FINALIZE: bytes after a body-less request that are no request are its body).
    use crate::test_capture::{converse, converse_ports, Step::*};

    const REQ: &[u8] = b"POST /wd/hub/session HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n\"args\":[\"x";
    const RES_500: &[u8] = b"HTTP/1.1 500 Server Error\r\nServer: Jetty(9)\r\nContent-Length: 22\r\n\r\nWebDriverException: no";

    #[test]
    fn response_inspected_again_when_its_body_completes_keeps_its_header_candidates() {
        // sid 1's fast pattern is a response header's: the joint scan finds it when the
        // headers complete (the body is not there yet), and the second inspection, when the
        // body is complete, reuses that scan's candidates.
        let rules = r#"
alert http any any -> any any (msg:"status then body"; flow:to_client; http.stat_code; content:"200"; fast_pattern; file.data; content:"secret"; sid:1;)
alert http any any -> any any (msg:"server header"; flow:to_client; http.server; content:"nginx"; sid:2;)
alert http any any -> any any (msg:"status then another body"; flow:to_client; http.stat_code; content:"200"; fast_pattern; file.data; content:"public"; sid:3;)
"#;
        let head: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 12\r\n\r\n";
        let steps = [Client(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), Server(head), Server(b"a secret ..."), ServerFin];
        assert_eq!(converse(rules, 80, &steps), vec![2, 1]);
    }

    #[test]
    fn response_rule_with_payload_content_sees_the_packet_its_inspection_came_with() {
        // The payload content is the fast pattern: found while the response streamed by (when
        // built with Hyperscan) for the packet whose data it ends in, and matched against that
        // packet's payload. The body completes on the second packet: sid 1's content is in it,
        // sid 2's lies across the two packets (in neither packet's payload).
        let rules = r#"
alert http any any -> any any (msg:"status and payload"; flow:to_client; content:"unusual-marker"; http.stat_code; content:"200"; sid:1;)
alert http any any -> any any (msg:"status and split payload"; flow:to_client; content:"split-across-packets"; http.stat_code; content:"200"; sid:2;)
alert http any any -> any any (msg:"a body rule (so the response is scanned as a stream)"; flow:to_client; file.data; content:"not in this body"; sid:3;)
"#;
        let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\n....split-acr";
        let steps = [Client(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), Server(head), Server(b"oss-packets unusual-marker ...."), ServerFin];
        assert_eq!(converse(rules, 80, &steps), vec![1]);
    }

    #[test]
    fn request_rule_with_payload_content_sees_its_packet_for_each_transaction_in_it() {
        // Two pipelined requests in one packet: each transaction's inspection sees the
        // packet's payload, whose payload patterns the packet's own scan found (riders of the
        // to-server matcher, when built with Hyperscan). sid 2's content is in no packet.
        let rules = r#"
alert http any any -> any any (msg:"payload and method"; flow:to_server; content:"rider-marker"; http.method; content:"GET"; sid:1;)
alert http any any -> any any (msg:"absent payload"; flow:to_server; content:"not-in-any-packet"; http.method; content:"GET"; sid:2;)
alert tcp any any -> any 80 (msg:"a packet rule of the same group"; flow:to_server; content:"/second"; sid:3;)
"#;
        let two: &[u8] = b"GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /second?rider-marker HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(converse(rules, 80, &[Client(two), ServerFin]), vec![3, 1, 1]);
    }

    #[test]
    fn generic_transaction_rule_with_payload_content_sees_the_client_packet() {
        // As for HTTP requests: the client banner's transaction is inspected on its packet,
        // whose payload patterns the packet's scan found.
        let rules = r#"
alert ssh any any -> any any (msg:"payload and protocol"; flow:to_server; content:"rider-banner"; ssh.proto; content:"2.0"; sid:1;)
alert ssh any any -> any any (msg:"absent payload"; flow:to_server; content:"not-in-the-banner"; ssh.proto; content:"2.0"; sid:2;)
"#;
        let steps = [Client(b"SSH-2.0-rider-banner_1.0\r\n"), Server(b"SSH-2.0-OpenSSH_9.6\r\n"), ServerFin];
        assert_eq!(converse(rules, 22, &steps), vec![1]);
    }

    #[test]
    fn transactional_rule_matches_request_and_response_once() {
        let rules = r#"
alert http any any => any any (msg:"uri and status"; http.uri; content:"/wd/hub/session"; http.stat_code; content:"500"; sid:1;)
alert http any any => any any (msg:"body of each side"; http.request_body; content:"args"; http.server; content:"Jetty"; startswith; bidir.toclient; file.data; content:"WebDriverException"; sid:2;)
alert http any any => any any (msg:"wrong status"; http.uri; content:"/wd/hub/session"; http.stat_code; content:"200"; sid:3;)
alert http any any => any any (msg:"file.data is the request's unless bidir.toclient"; http.stat_code; content:"500"; file.data; content:"WebDriverException"; sid:4;)
"#;
        let sids = converse(rules, 8080, &[Client(REQ), Server(RES_500), ServerFin]);
        assert_eq!(sids, vec![1, 2]);
    }

    #[test]
    fn transactional_rule_equals_its_flowbits_pair() {
        let rules = r#"
alert http any any -> any any (msg:"request"; flow:established,to_server; flowbits:set,req.seen; flowbits:noalert; http.uri; content:"/wd/hub/session"; sid:10;)
alert http any any -> any any (msg:"response"; flow:established,to_client; flowbits:isset,req.seen; http.stat_code; content:"500"; sid:11;)
alert http any any => any any (msg:"both"; http.uri; content:"/wd/hub/session"; http.stat_code; content:"500"; sid:12;)
"#;
        let mut sids = converse(rules, 8080, &[Client(REQ), Server(RES_500)]);
        sids.sort_unstable();
        assert_eq!(sids, vec![11, 12]);
    }

    #[test]
    fn bidirectional_rule_is_two_rules_unless_both_ends_are_the_same() {
        // Client port 80 to server port 80: the packet fits `any 80 <> any any` as written and
        // switched, so it matches twice; `any 80 <> any 80` is one rule.
        let rules = r#"
alert tcp any 80 <> any any (msg:"two rules"; content:"ping"; sid:20;)
alert tcp any 80 <> any 80 (msg:"one rule"; content:"ping"; sid:21;)
alert tcp any 80 <> any any (msg:"second copy sees the first's bit"; content:"ping"; flowbits:isnotset,once; flowbits:set,once; sid:22;)
"#;
        let mut sids = converse_ports(rules, 80, 80, &[Client(b"ping")]);
        sids.sort_unstable();
        assert_eq!(sids, vec![20, 20, 21, 22]);
    }

    #[test]
    fn bidirectional_rule_with_flowbits_across_directions() {
        // Set by the client's packet (as written), tested by the server's (switched).
        let rules = r#"
alert tcp 10.0.0.2 any <> 192.0.2.9 5555 (msg:"set"; content:"hello"; flowbits:set,greeted; flowbits:noalert; sid:30;)
alert tcp 10.0.0.2 any <> 192.0.2.9 5555 (msg:"answer"; content:"welcome"; flowbits:isset,greeted; sid:31;)
alert tcp 10.0.0.2 any <> 192.0.2.9 5555 (msg:"answer before greeting"; content:"early"; flowbits:isset,greeted; sid:32;)
"#;
        assert_eq!(converse(rules, 5555, &[Server(b"early"), Client(b"hello"), Server(b"welcome")]), vec![31]);
    }

    #[test]
    fn response_without_length_ends_when_the_server_closes() {
        let rules = r#"alert http any any -> any any (msg:"close-delimited body"; flow:to_client; file.data; content:"tail-marker"; endswith; sid:40;)"#;
        let req: &[u8] = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
        let res: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part ";
        // The client closing does not end the body; the server's FIN does.
        assert_eq!(converse(rules, 80, &[Client(req), Server(res), Server(b"and tail-marker"), ClientFin, ServerFin]), vec![40]);
        // Without a FIN the capture's end completes it.
        assert_eq!(converse(rules, 80, &[Client(req), Server(res), Server(b"and tail-marker")]), vec![40]);
        // A RST ends it too.
        assert_eq!(converse(rules, 80, &[Client(req), Server(res), Server(b"and tail-marker"), ServerRst]), vec![40]);
    }

    #[test]
    fn requests_without_protocol_version() {
        let rules = r#"
alert http any any -> any any (msg:"0.9: the line is the request"; http.request_line; content:"GET /old"; endswith; http.uri; content:"/old"; sid:50;)
alert http any any -> any any (msg:"headers of a request missing its version"; http.host; content:"example"; http.request_body; content:"hello"; sid:51;)
alert http any any -> any any (msg:"bytes after a body-less request are its body"; http.request_body; content:"login=foo"; app-layer-event:http.request_body_unexpected; sid:52;)
"#;
        assert_eq!(converse(rules, 80, &[Client(b"GET /old\r\n")]), vec![50]);
        assert_eq!(converse(rules, 80, &[Client(b"POST /up\r\nHost: example\r\nContent-Length: 5\r\n\r\nhello")]), vec![51]);
        assert_eq!(converse(rules, 80, &[Client(b"POST /a HTTP/1.1\r\nHost: h\r\n\r\nlogin=foo&pw=bar"), ClientFin]), vec![52]);
    }

    #[test]
    fn protocol_only_rule_sees_the_protocol_once_the_other_side_acknowledged_it() {
        // Suricata (IDS mode) parses a direction's data when the other side acknowledges it
        // (stream-tcp-reassemble.c: UPDATE_DIR_OPPOSING), and a rule with nothing but its
        // protocol compares it with the flow's at the packet (detect.c: scratch->alproto).
        // The request packet itself does not match; the client's later packets do.
        let rules = "alert http any any -> any any (msg:\"http\"; flow:to_server; sid:60;)\nalert tcp any any -> any any (msg:\"tcp\"; flow:to_server; sid:61;)";
        let sids = converse(rules, 80, &[Client(b"GET / HTTP/1.0\r\n\r\n"), Server(b"HTTP/1.0 200 OK\r\n\r\n"), ClientFin]);
        // Client packets: SYN, ACK, request, ACK of the response, FIN.
        assert_eq!(sids.iter().filter(|&&s| s == 61).count(), 5);
        assert_eq!(sids.iter().filter(|&&s| s == 60).count(), 2);
    }

    #[test]
    fn second_protocol_change_fails_with_an_event_seen_from_both_sides() {
        // SMTP upgraded by STARTTLS, then HTTP where TLS was expected asks to upgrade to h2c:
        // Suricata allows one change per flow (AppLayerRequestProtocolChange), raises
        // http.failed_protocol_change, and a rule without a direction alerts per direction.
        let rules = "alert http any any -> any any (msg:\"failed change\"; flow:established; app-layer-event:http.failed_protocol_change; sid:70;)";
        let steps = [Server(b"220 mx\r\n"), Client(b"EHLO a\r\n"), Server(b"250 mx\r\n"), Client(b"STARTTLS\r\n"), Server(b"220 go\r\n"), Server(b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\n\r\n")];
        assert_eq!(converse(rules, 25, &steps), vec![70, 70]);
        // Without the earlier change the upgrade is a first change: no event.
        assert!(converse(rules, 80, &[Client(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Server(b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\n\r\n")]).is_empty());
    }
}
