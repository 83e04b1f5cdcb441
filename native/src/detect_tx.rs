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
use crate::detect_engine::{eval_buffer_in, MatchCtx, RuleSet};
use crate::detect_flowbits;
use crate::detect_flowint;
use crate::detect_header::{addr_rules, flow_keywords_ok, header_buf, header_ok, pkt_ok_app};
use crate::detect_parse::{Buf, PktMatch, Proto};
use crate::flow_table::{App, Flow};

/// Application-layer rules, once per transaction.
pub fn run(det: &mut DetectCtx, rules: &RuleSet, f: &mut Flow, c: &PktCtx, at_end: bool, out: &mut Vec<Alert>) {
    if rules.app_always.is_empty() && rules.app_pf.iter().all(|a| a.is_empty()) {
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
                eval_tx_rules(det, rules, f, c, &bufs, Proto::Dns, None, None, out);
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
        let bufs: Vec<(Buf, &[u8])> = tx.bufs.iter().map(|(b, _, v)| (*b, v.as_slice())).collect();
        let sides: Vec<bool> = tx.bufs.iter().map(|(_, s, _)| *s).collect();
        let mut inspected = false;
        for &dir in dirs {
            if tx.only.is_some_and(|o| o != dir) {
                continue;
            }
            let key = gen_key(tx.id, u64::from(!dir));
            let seen = f.tx_seen.get(&key).copied();
            let now = (tx.gen[0], tx.gen[1]);
            // On packets: anything new since this direction looked. At flow end: only what
            // this direction itself added since (Suricata's end-of-flow inspection runs for a
            // direction with data left to inspect).
            let changed = match seen {
                None => true,
                Some(s) if at_end => if dir { s.0 != now.0 } else { s.1 != now.1 },
                Some(s) => s != now,
            };
            if !changed {
                continue;
            }
            f.tx_seen.insert(key, now);
            inspected = true;
            let tctx = PktCtx { p: c.p, to_server: dir, stream: None, tracked: c.tracked, established: c.established, idx: c.idx };
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
    sc.begin(rules.rules.len());
    sc.add_all(addr_rules(&mut f.addr_rules.app, &rules.app_addr, &rules.rules, f.client, c.p));
    let side_ix = usize::from(dir == Some(false));
    let payload: &[u8] = c.stream.as_deref().unwrap_or(&c.p.payload);
    rules.app_pf[side_ix].scan(bufs, payload, None, &mut sc);
    if dir.is_none() {
        rules.app_pf[1].scan(bufs, payload, None, &mut sc);
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
        if !header_ok(r, c.p) || !pkt_ok_app(r, c.p) || !flow_keywords_ok(r, f, c) || f.tx_alerted.contains(&(alert_key, ri)) {
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
                for (i, (x, v)) in bufs.iter().enumerate() {
                    if x != b || dir.is_some_and(|d| sides[i] != d) {
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
        detect_alert::emit(r, c.p, c.idx, f.id, Some(proto.name()), None, out);
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
        let req_new = tx.req_headers_done && tx.req_gen != seen.0;
        let res_new = tx.res_headers_done && tx.res_gen != seen.1;
        if !req_new && !res_new {
            continue;
        }
        f.tx_seen.insert(id, (tx.req_gen, tx.res_gen));
        // Request side, then response side (as the directions progress). Composed
        // buffers (header blocks, lowercased host, ...) go into one reused arena.
        let mut arena = std::mem::take(&mut det.arena);
        if req_new {
            let bufs = detect_buffers::http_bufs(tx, true, &mut arena);
            let tctx = PktCtx { p: c.p, to_server: true, stream: None, tracked: c.tracked, established: c.established, idx: c.idx };
            let pc = if c.to_server { c } else { &tctx };
            eval_tx_rules(det, rules, f, pc, &bufs, Proto::Http, Some((id, true, tx)), None, out);
        }
        if res_new {
            let bufs = detect_buffers::http_bufs(tx, false, &mut arena);
            let tctx = PktCtx { p: c.p, to_server: false, stream: None, tracked: c.tracked, established: c.established, idx: c.idx };
            let body_hits = rules.body_hits(&f.res_scan, tx);
            eval_tx_rules(det, rules, f, &tctx, &bufs, Proto::Http, Some((id, false, tx)), body_hits, out);
        }
        det.arena = arena;
        // Both sides complete and inspected: nothing will look at this transaction's
        // buffers again, so release them (a long keep-alive flow must not hoard bodies).
        if tx.req_done && tx.res_done {
            h.txs[i].release();
        }
    }
    let _ = at_end;
    f.app = App::Http(h);
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
    body_hits: Option<&[u64]>,
    out: &mut Vec<Alert>,
) {
    let mut sc = std::mem::take(&mut det.scan);
    sc.begin(rules.rules.len());
    sc.add_all(addr_rules(&mut f.addr_rules.app, &rules.app_addr, &rules.rules, f.client, c.p));
    let request_side = tx.map(|t| t.1).unwrap_or(c.to_server);
    let payload: &[u8] = c.stream.as_deref().unwrap_or(&c.p.payload);
    rules.app_pf[if request_side { 0 } else { 1 }].scan(bufs, payload, body_hits, &mut sc);
    sc.finish();
    let tx_id = tx.map(|t| t.0).unwrap_or(f.dns_tx + (1 << 40));
    for &ri in &sc.cand {
        let r = &rules.rules[ri as usize];
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
        // Every app buffer the rule uses must exist on this side of the transaction
        // (bodies are only offered once complete, or at flow end).
        let mut side_ok = true;
        for (b, _) in &r.bufs {
            if *b == Buf::Payload {
                continue;
            }
            if matches!(b.http_side(), Some(s) if s != request_side) || !bufs.iter().any(|(x, _)| x == b) {
                side_ok = false;
                break;
            }
        }
        if !side_ok {
            continue;
        }
        if r.flow.established && !c.established || r.flow.not_established && c.established {
            continue;
        }
        if !header_ok(r, c.p) || !pkt_ok_app(r, c.p) || !flow_keywords_ok(r, f, c) || f.tx_alerted.contains(&(tx_id, ri)) {
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
        let meta = tx.map(|t| detect_alert::http_meta(t.2));
        detect_alert::emit(r, c.p, c.idx, f.id, ap, meta, out);
    }
    det.scan = sc;
}
