//! Application-layer rules, once per transaction: an HTTP transaction's request side and
//! response side as each completes, each DNS request, a TLS client hello's server name. The
//! transaction's buffers are prefiltered and the candidate rules evaluated in rule order.

use crate::applayer_dns::{parse_dns, split_tcp};
use crate::applayer_http::HttpTx;
use crate::decode_packet::*;
use crate::detect_alert::{self, Alert};
use crate::detect_buffers;
use crate::detect_ctx::{DetectCtx, PktCtx};
use crate::detect_engine::{eval_buffer, RuleSet};
use crate::detect_flowbits;
use crate::detect_header::{addr_rules, header_ok, pkt_ok_app};
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
        App::Tls(t) => {
            if f.tls_sni_alerted || at_end {
                return;
            }
            let Some(sni) = t.sni.clone() else { return };
            f.tls_sni_alerted = true;
            let bufs = detect_buffers::tls_bufs(&sni);
            eval_tx_rules(det, rules, f, c, &bufs, Proto::Tls, None, None, out);
        }
        _ => {}
    }
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
            Proto::Tls => app == Proto::Tls,
            Proto::Tcp | Proto::Ip => app != Proto::Dns || c.p.proto == PROTO_TCP,
            Proto::Udp => c.p.proto == PROTO_UDP,
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
        if !header_ok(r, c.p) || !pkt_ok_app(r, c.p) || f.tx_alerted.contains(&(tx_id, ri)) {
            continue;
        }
        // urilen
        let mut ok = true;
        for m in &r.pkt {
            if let PktMatch::Urilen(cmp) = m {
                let len = tx.map(|t| t.2.uri_norm.len()).unwrap_or(0);
                ok &= cmp.test(len as u64);
            }
        }
        if !ok {
            continue;
        }
        for (b, items) in &r.bufs {
            if items.is_empty() {
                continue;
            }
            let m = if *b == Buf::Payload {
                !payload.is_empty() && eval_buffer(payload, items)
            } else {
                let xf = r.xforms_for(*b);
                bufs.iter().filter(|(x, _)| x == b).any(|(_, v)| match xf {
                    Some(xs) => {
                        let mut t = v.to_vec();
                        for x in xs {
                            t = x.apply(&t);
                        }
                        eval_buffer(&t, items)
                    }
                    None => eval_buffer(v, items),
                })
            };
            if !m {
                ok = false;
                break;
            }
        }
        if !ok || !detect_flowbits::is_ok(&r.flowbits, &f.bits) {
            continue;
        }
        f.tx_alerted.insert((tx_id, ri));
        detect_flowbits::apply(&r.flowbits, &mut f.bits);
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
