//! Test support: TCP conversations built frame by frame (handshake, data segments each
//! acknowledged, FINs) and run through an engine with a rule set, for behaviour tests that
//! read like the exchange they describe.

use crate::detect_alert::Alert;
use crate::detect_engine::RuleSet;
use crate::engine::{ChecksumMode, Engine};
use std::sync::Arc;

pub fn frame(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
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

/// One step of a conversation: data from the client (true) or the server, or a FIN/RST.
pub enum Step<'a> {
    Client(&'a [u8]),
    Server(&'a [u8]),
    ClientFin,
    ServerFin,
    ServerRst,
}

/// Run a TCP conversation (client 10.0.0.2:40000, server 192.0.2.9:`port`) and return every
/// alert's sid in order (flow end included).
pub fn converse(rules: &str, port: u16, steps: &[Step]) -> Vec<u32> {
    converse_ports(rules, 40000, port, steps)
}

/// As `converse`, with the client's port chosen too.
pub fn converse_ports(rules: &str, cport: u16, port: u16, steps: &[Step]) -> Vec<u32> {
    let rs = Arc::new(RuleSet::load(&[("t".into(), rules.into())]));
    assert!(rs.errors.is_empty(), "{:?}", rs.errors.iter().map(|e| &e.reason).collect::<Vec<_>>());
    let mut e = Engine::new(rs, ChecksumMode::Off);
    let (c, s) = ([10, 0, 0, 2], [192, 0, 2, 9]);
    let (mut cs, mut ss) = (1000u32, 5000u32);
    let mut out: Vec<Alert> = Vec::new();
    let mut ts = 1_000_000i64;
    let mut send = |e: &mut Engine, f: Vec<u8>, out: &mut Vec<Alert>| {
        ts += 10;
        e.process(1, ts, &f, 0, out);
    };
    send(&mut e, frame(c, s, cport, port, cs, 0, 0x02, b""), &mut out);
    cs += 1;
    send(&mut e, frame(s, c, port, cport, ss, cs, 0x12, b""), &mut out);
    ss += 1;
    send(&mut e, frame(c, s, cport, port, cs, ss, 0x10, b""), &mut out);
    for st in steps {
        match st {
            Step::Client(d) => {
                send(&mut e, frame(c, s, cport, port, cs, ss, 0x18, d), &mut out);
                cs += d.len() as u32;
                send(&mut e, frame(s, c, port, cport, ss, cs, 0x10, b""), &mut out);
            }
            Step::Server(d) => {
                send(&mut e, frame(s, c, port, cport, ss, cs, 0x18, d), &mut out);
                ss += d.len() as u32;
                send(&mut e, frame(c, s, cport, port, cs, ss, 0x10, b""), &mut out);
            }
            Step::ClientFin => {
                send(&mut e, frame(c, s, cport, port, cs, ss, 0x11, b""), &mut out);
                cs += 1;
            }
            Step::ServerFin => {
                send(&mut e, frame(s, c, port, cport, ss, cs, 0x11, b""), &mut out);
                ss += 1;
            }
            Step::ServerRst => send(&mut e, frame(s, c, port, cport, ss, cs, 0x14, b""), &mut out),
        }
    }
    e.finish(&mut out);
    out.iter().map(|a| a.sid).collect()
}
