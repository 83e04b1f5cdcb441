//! The pipeline, and nothing else: decode → flow → stream → app-layer → detect → alerts, each
//! stage's logic in its own module (decode_ip, flow_table, stream_tcp, applayer_dispatch,
//! detect_packet and detect_tx; output_eve writes the alerts). One `Engine` holds the flows
//! and the stages' per-engine state; its rule set can be swapped at any time while flows
//! continue.

use crate::applayer_dispatch;
use crate::decode_ip::{decode_frame, Defrag};
use crate::decode_packet::*;
use crate::detect_alert::Alert;
use crate::detect_ctx::{DetectCtx, PktCtx};
use crate::detect_engine::RuleSet;
use crate::detect_packet;
use crate::detect_tx;
use crate::flow_table::*;
use crate::stream_tcp::TcpSession;
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChecksumMode {
    /// Suricata's "auto": validate, unless the capture looks checksum-offloaded (more than
    /// 10% bad among the first 1000 packets), then stop validating.
    Auto,
    On,
    Off,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: u64,
    pub bad_checksums: u64,
    pub fragments_pending: u64,
    pub flows: u64,
    pub flows_evicted: u64,
    pub alerts: u64,
}

pub struct Engine {
    rules: Arc<RuleSet>,
    /// Boxed: a flow is ~1 KB, and the table's slots (key + pointer) stay small, so the table
    /// growing under churn (hashbrown rehashes into a bigger table when removals left
    /// tombstones) costs tens of bytes a slot, not a flow's size.
    flows: FastMap<FlowKey, Box<Flow>>,
    defrag: Defrag,
    pub mode: ChecksumMode,
    checksum_on: bool,
    auto_seen: u64,
    auto_bad: u64,
    last_gc: i64,
    pub stats: Stats,
    det: DetectCtx,
    salt: u64,
    /// Flows announced by other flows' protocols (FTP data channels).
    expect: Vec<crate::applayer_tx::Expectation>,
    /// Most flows held at once (MAX_FLOWS unless set): beyond it the least recently seen
    /// flows are ended, counted in `stats.flows_evicted`.
    max_flows: usize,
    /// Suricata's `encryption-handling: full`: keep inspecting the payload of encrypted TLS
    /// and SSH flows with content rules (default false: inspection stops, as Suricata's default).
    inspect_encrypted: bool,
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>, mode: ChecksumMode) -> Engine {
        let det = DetectCtx { scan: crate::detect_engine::Scan::for_rules(&rules), ..DetectCtx::default() };
        Engine {
            rules,
            flows: FastMap::default(),
            defrag: Defrag::default(),
            mode,
            // Auto: checksums are counted, but (as Suricata's verify cases show for offloaded
            // captures) packets with bad checksums are still inspected; On drops them.
            checksum_on: mode == ChecksumMode::On,
            auto_seen: 0,
            auto_bad: 0,
            last_gc: 0,
            stats: Stats::default(),
            det,
            salt: 0,
            expect: Vec::new(),
            max_flows: MAX_FLOWS,
            inspect_encrypted: false,
        }
    }

    /// Keep inspecting encrypted TLS/SSH payload with content rules (`full`) or not (`default`,
    /// as Suricata: only header, flow and TLS/SSH keywords see a flow past its handshake).
    pub fn set_inspect_encrypted(&mut self, on: bool) {
        self.inspect_encrypted = on;
    }

    /// Cap the flow table at `n` flows (at least 1).
    pub fn set_max_flows(&mut self, n: usize) {
        self.max_flows = n.max(1);
    }

    /// Run `f` on the engine, containing a panic (a bug met by some input): unwinding into
    /// Node would abort the whole process, every flow of every partition. The engine's state
    /// is then suspect, so it starts afresh with the same rules and mode (its flows are lost,
    /// nothing else) and the panic's message is returned.
    pub fn guarded<T>(&mut self, f: impl FnOnce(&mut Engine) -> T) -> Result<T, String> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(v) => Ok(v),
            Err(p) => {
                let msg = p.downcast_ref::<String>().map(|s| s.as_str()).or_else(|| p.downcast_ref::<&str>().copied()).unwrap_or("panic").to_string();
                let (max_flows, inspect_encrypted) = (self.max_flows, self.inspect_encrypted);
                *self = Engine::new(Arc::clone(&self.rules), self.mode);
                self.max_flows = max_flows;
                self.inspect_encrypted = inspect_encrypted;
                Err(msg)
            }
        }
    }

    /// Swap rules; flows, streams and app state continue. Flowbit ids are per rule set, so
    /// flowbits are cleared (a new set may name bits differently).
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
        for f in self.flows.values_mut() {
            f.bits.clear();
            f.ints.clear();
            f.tx_alerted.clear();
            f.addr_rules = AddrRules::default();
            // Streams scanned with the old set's matchers (their state belongs to it).
            f.res_scan = None;
        }
        self.det.thresh.clear();
        self.det.xbits.clear();
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    pub fn process(&mut self, linktype: u32, ts: i64, frame: &[u8], idx: u32, out: &mut Vec<Alert>) {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        let p = match decode_frame(&mut self.defrag, linktype, ts, frame, self.checksum_on) {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.stats.fragments_pending += 1;
                return;
            }
            Err(DecodeError::BadChecksum) => {
                self.stats.bad_checksums += 1;
                self.auto_account(true);
                return;
            }
            Err(_) => {
                self.stats.decode_errors += 1;
                return;
            }
        };
        self.auto_account(p.bad_checksum);
        if p.bad_checksum && self.checksum_on {
            // Invalid checksums: the packet cannot update stream state (Suricata drops it from
            // the stream engine and does not inspect it).
            self.stats.bad_checksums += 1;
            return;
        }
        if ts - self.last_gc > 10_000_000 || self.flows.len() >= self.max_flows {
            self.gc(ts, out);
        }
        self.handle(p, idx, out);
    }

    fn auto_account(&mut self, bad: bool) {
        if self.mode != ChecksumMode::Auto || self.auto_seen >= 1000 {
            return;
        }
        self.auto_seen += 1;
        if bad {
            self.auto_bad += 1;
        }
        if self.auto_bad * 10 > self.auto_seen && self.auto_bad >= 5 {
            self.checksum_on = false;
        }
    }

    fn gc(&mut self, now: i64, out: &mut Vec<Alert>) {
        self.last_gc = now;
        let expired: Vec<FlowKey> = self.flows.iter().filter(|(_, f)| f.expired(now)).map(|(k, _)| *k).collect();
        for k in expired {
            self.end_flow(k, out);
        }
        // At the cap (a flood of new flows): end the least recently seen flows, a slice of the
        // cap at once, so the table is walked once per `cap / EVICT_FRACTION` new flows rather
        // than on every packet (it was walked twice per packet, ~1 ms each at 200k flows).
        if self.flows.len() >= self.max_flows {
            let want = self.flows.len() + 1 - self.max_flows + self.max_flows.div_ceil(EVICT_FRACTION) - 1;
            let mut by_age: Vec<(i64, FlowKey)> = self.flows.iter().map(|(k, f)| (f.last_ts, *k)).collect();
            let want = want.min(by_age.len());
            if want > 0 && want < by_age.len() {
                by_age.select_nth_unstable_by_key(want - 1, |x| x.0);
            }
            by_age.truncate(want);
            by_age.sort_unstable_by_key(|x| x.0);
            for (_, k) in by_age {
                self.stats.flows_evicted += 1;
                self.end_flow(k, out);
            }
        }
    }

    /// End every flow (end of capture): bodies delimited by close complete and are inspected.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for k in keys {
            self.end_flow(k, out);
        }
    }

    fn end_flow(&mut self, k: FlowKey, out: &mut Vec<Alert>) {
        let Some(mut f) = self.flows.remove(&k) else { return };
        match &mut f.app {
            App::Http(h) => {
                h.close_request();
                h.close_response();
            }
            App::Gen(g) => {
                g.close(true);
                g.close(false);
            }
            _ => {}
        }
        let srv = if f.client == k.a { k.b } else { k.a };
        // A pseudo packet from the server for flow-end inspection.
        let p = Packet {
            ts_us: f.last_ts,
            src: srv.0,
            dst: f.client.0,
            ipv6: srv.0.is_ipv6(),
            proto: f.proto,
            ttl: 0,
            tos: 0,
            ip_id: 0,
            frag_bits: 0,
            sp: srv.1,
            dp: f.client.1,
            tcp: None,
            icmp: None,
            payload: Cow::Borrowed(&[]),
            l3_hdr: Cow::Borrowed(&[]),
            l4_hdr: Cow::Borrowed(&[]),
            bad_checksum: false,
        };
        let established = f.tcp.as_ref().map(TcpSession::established).unwrap_or(true);
        let ctx = PktCtx { p: &p, to_server: false, stream: None, tracked: true, established, idx: u32::MAX, no_payload: f.no_payload };
        let n = out.len();
        detect_tx::run(&mut self.det, &self.rules, &mut f, &ctx, true, out);
        self.stats.alerts += (out.len() - n) as u64;
    }

    fn handle(&mut self, p: Packet, idx: u32, out: &mut Vec<Alert>) {
        let key = FlowKey::new(p.src, p.sp, p.dst, p.dp, p.proto);
        // The table is taken out while the packet runs, so the flow is borrowed from it (one
        // lookup, no move of the flow) while the engine's other state stays usable.
        let mut flows = std::mem::take(&mut self.flows);
        let expect = &mut self.expect;
        let f = flows.entry(key).or_insert_with(|| {
            self.stats.flows += 1;
            // A flow whose first packet is a SYN/ACK is seen from the server's side.
            let synack = p.tcp.as_ref().map(|t| t.flags & (TH_SYN | TH_ACK) == (TH_SYN | TH_ACK)).unwrap_or(false);
            let client = if synack { (p.dst, p.dp) } else { (p.src, p.sp) };
            let mut f = Flow::new(key.hash(self.salt), client, p.proto, p.ts_us);
            if !expect.is_empty() {
                let server = if synack { (p.src, p.sp) } else { (p.dst, p.dp) };
                if let Some(app) = applayer_dispatch::expected(expect, client.0, server, p.ts_us) {
                    let pr = app.proto().map(crate::detect_appkw::AlProto::Proto).unwrap_or(crate::detect_appkw::AlProto::Unknown);
                    f.alproto = [pr; 2];
                    f.app = app;
                    f.app_vis = 3;
                }
            }
            Box::new(f)
        });
        let n = out.len();
        self.handle_in_flow(f, &p, idx, out);
        self.stats.alerts += (out.len() - n) as u64;
        self.flows = flows;
    }

    fn handle_in_flow(&mut self, f: &mut Flow, p: &Packet, idx: u32, out: &mut Vec<Alert>) {
        f.last_ts = p.ts_us;
        let to_server = (p.src, p.sp) == f.client;
        f.pkts[if to_server { 0 } else { 1 }] += 1;
        if f.pd_mismatch {
            // The direction whose protocol disagreed holds it only for its detection packet.
            for d in 0..2 {
                if f.pd_done_now[d] {
                    f.alproto[d] = crate::detect_appkw::AlProto::Failed;
                }
            }
            f.pd_mismatch = false;
        }
        f.pd_done_now = [false, false];
        // Stream: TCP session state and reassembly.
        let mut stream = None;
        let mut tracked = false;
        let mut established = f.pkts[0] > 0 && f.pkts[1] > 0;
        if let Some(t) = &p.tcp {
            if f.app_vis == 1 + u8::from(to_server) && t.flags & TH_SYN == 0 {
                f.app_vis = 3;
            }
            let sess = f.tcp.get_or_insert_with(TcpSession::default);
            stream = sess.on_segment(t, &p.payload, to_server);
            tracked = sess.tracked();
            established = sess.established();
        }
        // App layer: protocol recognition and parsers.
        if let (PROTO_TCP, App::Gen(g)) = (p.proto, &mut f.app) {
            for tx in g.txs_mut().txs.iter_mut() {
                tx.before = tx.gen;
            }
        }
        let app_changed = match p.proto {
            PROTO_TCP => applayer_dispatch::on_tcp(f, p, to_server, stream.as_deref(), &mut self.expect),
            PROTO_UDP => applayer_dispatch::on_udp(f, p, to_server, &mut self.expect),
            _ => false,
        };
        // Encrypted payload: the packet that carried the first application data is still
        // inspected, the flow's later ones are not (Suricata flags the flow while parsing,
        // after the packet's own flags were set).
        let no_payload = f.no_payload;
        if !f.no_payload && !self.inspect_encrypted && matches!(&f.app, App::Gen(g) if g.payload_encrypted()) {
            f.no_payload = true;
        }
        // Detect: packet and stream rules, then transaction rules when the app state moved.
        let ctx = PktCtx { p, to_server, stream, tracked, established, idx, no_payload };
        detect_packet::run(&mut self.det, &self.rules, f, &ctx, out);
        // Generic transactions are looked at on every packet: a direction inspects what the
        // other direction's data changed on its own next packet (as Suricata does).
        if app_changed || matches!(f.app, App::Dns | App::Gen(_)) {
            detect_tx::run(&mut self.det, &self.rules, f, &ctx, false, out);
        }
        self.det.riders_valid = false;
    }
}

#[cfg(test)]
mod debug_tests {
    #[test]
    fn trace_capture() {
        let Ok(path) = std::env::var("CORDON_TRACE_PCAP") else { return };
        let rules = std::fs::read_to_string(std::env::var("CORDON_TRACE_RULES").unwrap_or_default()).unwrap_or_default();
        let rs = std::sync::Arc::new(crate::detect_engine::RuleSet::load(&[("r".into(), rules)]));
        let mut e = super::Engine::new(rs, super::ChecksumMode::Auto);
        let d = std::fs::read(path).unwrap();
        let mut o = 24;
        let lt = u32::from_le_bytes(d[20..24].try_into().unwrap());
        let mut out = Vec::new();
        let mut i = 0;
        while o + 16 <= d.len() {
            let ts = u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as i64 * 1_000_000 + u32::from_le_bytes(d[o + 4..o + 8].try_into().unwrap()) as i64;
            let cl = u32::from_le_bytes(d[o + 8..o + 12].try_into().unwrap()) as usize;
            let f = &d[o + 16..o + 16 + cl];
            let before = e.stats.clone();
            e.process(lt, ts, f, i, &mut out);
            eprintln!("pkt {i}: decode_err {} badcsum {} alerts {}", e.stats.decode_errors - before.decode_errors, e.stats.bad_checksums - before.bad_checksums, out.len());
            o += 16 + cl;
            i += 1;
        }
    }
}

/// Ask the CPU to start fetching `b` into its caches (one hint a cache line). A batch's frames
/// are cold by the time the engine reaches them (the batch was filled long before, and a
/// capture's frames far outgrow the caches): whatever touches a payload first (the HTTP
/// body copy, the stream scan) otherwise stalls on memory. Hinting the frames a few ahead
/// overlaps that fetch with the work on the current one.
#[inline]
pub fn prefetch(b: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut o = 0;
        while o < b.len() {
            // SAFETY: a prefetch hint has no architectural effect; the address is in `b`.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(b.as_ptr().add(o) as *const i8) };
            o += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = b;
}

/// Frames processed ahead of which the next ones are prefetched (see `prefetch`).
pub const PREFETCH_FRAMES: usize = 4;

#[cfg(test)]
mod bench_probe {
    /// Profiling aid: CORDON_BENCH_PCAP=file CORDON_ET_DIR=dir cargo test --release bench_probe -- --nocapture
    #[test]
    fn bench_pcap() {
        let (Ok(path), Ok(dir)) = (std::env::var("CORDON_BENCH_PCAP"), std::env::var("CORDON_ET_DIR")) else { return };
        let mut src = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().map(|x| x == "rules").unwrap_or(false) {
                src.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
            }
        }
        let t = std::time::Instant::now();
        let rs = std::sync::Arc::new(crate::detect_engine::RuleSet::load(&src));
        eprintln!("load {:?} matcher {}", t.elapsed(), rs.matcher());
        let d = std::fs::read(path).unwrap();
        let mut frames = Vec::new();
        let mut o = 24;
        while o + 16 <= d.len() {
            let ts = u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as i64 * 1_000_000 + u32::from_le_bytes(d[o + 4..o + 8].try_into().unwrap()) as i64;
            let cl = u32::from_le_bytes(d[o + 8..o + 12].try_into().unwrap()) as usize;
            frames.push((ts, &d[o + 16..o + 16 + cl]));
            o += 16 + cl;
        }
        let reps: usize = std::env::var("CORDON_BENCH_REPS").ok().and_then(|x| x.parse().ok()).unwrap_or(1);
        let bytes: usize = frames.iter().map(|f| f.1.len()).sum();
        for _ in 0..reps {
            let mut e = super::Engine::new(rs.clone(), super::ChecksumMode::Off);
            let mut out = Vec::new();
            // CPU time of this thread (the machine is shared; wall time is not the engine's).
            let cpu = || std::fs::read_to_string("/proc/thread-self/schedstat").ok().and_then(|x| x.split_whitespace().next().and_then(|n| n.parse::<u64>().ok())).unwrap_or(0);
            let (t, c0) = (std::time::Instant::now(), cpu());
            // As run_batch does (node.rs): frames prefetched PREFETCH_FRAMES ahead (CORDON_PF=0: none).
            let pf: usize = std::env::var("CORDON_PF").ok().and_then(|x| x.parse().ok()).unwrap_or(super::PREFETCH_FRAMES);
            for (i, (ts, f)) in frames.iter().enumerate() {
                if pf > 0 {
                    if let Some((_, nf)) = frames.get(i + pf) {
                        super::prefetch(nf);
                    }
                }
                e.process(1, *ts, f, i as u32, &mut out);
            }
            e.finish(&mut out);
            let s = (cpu() - c0) as f64 / 1e9;
            eprintln!("engine {:.2} Gbit/s {:.0} kpps per cpu-second (wall {:.3}s, cpu {:.3}s) alerts {}", bytes as f64 * 8.0 / s / 1e9, frames.len() as f64 / s / 1e3, t.elapsed().as_secs_f64(), s, out.len());
        }
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn a_panic_resets_the_engine_and_is_reported() {
        let rs = Arc::new(RuleSet::load(&[("t".into(), "alert ip any any -> any any (msg:\"x\"; sid:1;)".into())]));
        let mut e = Engine::new(rs, ChecksumMode::Off);
        let frame = |last: u8| {
            let mut f = vec![0u8; 14];
            f[12] = 0x08;
            f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, last]);
            f.extend_from_slice(&[0, 53, 0, 53, 0, 8, 0, 0]);
            f
        };
        let mut out = Vec::new();
        e.guarded(|e| e.process(1, 1, &frame(2), 0, &mut out)).unwrap();
        assert_eq!(e.flow_count(), 1);
        let err = e.guarded(|_| -> () { panic!("boom on hostile bytes") }).unwrap_err();
        assert!(err.contains("boom on hostile bytes"));
        assert_eq!(e.flow_count(), 0, "state after a panic is not trusted");
        // Still inspecting, with the same rules.
        out.clear();
        e.guarded(|e| e.process(1, 2, &frame(3), 0, &mut out)).unwrap();
        assert_eq!(out.iter().map(|a| a.sid).collect::<Vec<_>>(), vec![1]);
    }
}

#[cfg(test)]
mod flow_cap_tests {
    use super::*;

    /// An Ethernet/IPv4/TCP frame with `flags`, from 10.(src>>8).(src&255).1:`sport` to 192.0.2.1:80.
    fn tcp_frame(src: u16, sport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 6, 0, 0, 10, (src >> 8) as u8, src as u8, 1, 192, 0, 2, 1]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&80u16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// A SYN flood of new flows against a small cap: the table never grows past the cap, every
    /// flow beyond it is evicted and counted, and a flow that keeps talking is not the one evicted.
    #[test]
    fn a_syn_flood_stays_under_the_cap_and_evictions_are_counted() {
        let rs = Arc::new(RuleSet::load(&[("t".into(), "alert tcp any any -> any 80 (msg:\"x\"; content:\"needle\"; sid:1;)".into())]));
        let mut e = Engine::new(rs, ChecksumMode::Off);
        e.set_max_flows(1000);
        let mut out = Vec::new();
        let ts0 = 1_700_000_000_000_000i64;
        // One long-lived flow, active throughout.
        e.process(1, ts0, &tcp_frame(0xffff, 4444, 0x02, &[]), 0, &mut out);
        let mut most = 0;
        for i in 0..20_000u32 {
            let ts = ts0 + 1 + i as i64; // 1 µs apart: nothing times out
            e.process(1, ts, &tcp_frame((i / 60_000) as u16, 1024 + (i % 60_000) as u16, 0x02, &[]), i, &mut out);
            if i % 100 == 0 {
                e.process(1, ts, &tcp_frame(0xffff, 4444, 0x18, b"still here"), i, &mut out);
            }
            most = most.max(e.flow_count());
        }
        assert!(most <= 1000, "the table held {most} flows, over its cap of 1000");
        assert_eq!(e.stats.flows, 20_001, "every SYN opened a flow");
        assert_eq!(e.stats.flows_evicted, e.stats.flows - e.flow_count() as u64, "every flow gone was evicted and counted");
        assert!(e.stats.flows_evicted >= 19_000);
        // The talking flow survived (its packet did not start a new flow: 20,001 flows in all).
        e.process(1, ts0 + 30_000, &tcp_frame(0xffff, 4444, 0x18, b"needle"), 0, &mut out);
        assert_eq!(e.stats.flows, 20_001, "the long-lived flow was evicted by the flood");
        // The newest flood flow is held.
        let before = e.stats.flows;
        e.process(1, ts0 + 30_001, &tcp_frame(0, 1024 + 19_999, 0x10, &[]), 0, &mut out);
        assert_eq!(e.stats.flows, before);
    }
}
