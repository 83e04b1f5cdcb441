//! A rule's tests on the packet itself, before any payload or buffer (Suricata's
//! DetectRunInspectRuleHeader and packet match list): protocol, addresses and ports, the
//! flow keyword, and the packet keywords (ttl, flags, itype, dsize, ...).

use crate::decode_packet::*;
use crate::detect_ctx::PktCtx;
use crate::detect_engine::AddrIndex;
use crate::detect_parse::{Buf, PktMatch, Proto, Rule};
use crate::flow_table::{App, Flow};
use std::net::IpAddr;

/// Addresses and ports, either way for a bidirectional (`<>`) rule.
#[inline]
pub fn header_ok(r: &Rule, p: &Packet) -> bool {
    let fwd = r.src.matches(&p.src) && r.sp.matches(p.sp) && r.dst.matches(&p.dst) && r.dp.matches(p.dp);
    fwd || (r.bidir && r.src.matches(&p.dst) && r.sp.matches(p.dp) && r.dst.matches(&p.src) && r.dp.matches(p.sp))
}

/// Addresses and ports as written (`switched` false) or switched, for the two rules a `<>`
/// rule stands for.
#[inline]
pub fn header_ok_dir(r: &Rule, p: &Packet, switched: bool) -> bool {
    if switched {
        r.src.matches(&p.dst) && r.sp.matches(p.dp) && r.dst.matches(&p.src) && r.dp.matches(p.sp)
    } else {
        r.src.matches(&p.src) && r.sp.matches(p.sp) && r.dst.matches(&p.dst) && r.dp.matches(p.dp)
    }
}

/// The rule's protocol: the packet's for ip/tcp/udp/icmp rules, the flow's app-layer
/// protocol for http/dns/tls rules.
#[inline]
pub fn proto_ok(r: &Rule, p: &Packet, f: &Flow) -> bool {
    if r.hdr_app && p.proto == PROTO_TCP && f.app_vis != 3 {
        return false;
    }
    match r.proto {
        Proto::Ip => true,
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => p.proto == PROTO_TCP,
        Proto::Udp => p.proto == PROTO_UDP,
        Proto::Icmp => p.proto == PROTO_ICMP,
        Proto::Icmpv6 => p.proto == PROTO_ICMPV6,
        Proto::Http => matches!(f.app, App::Http(_)),
        Proto::Dns => matches!(f.app, App::Dns),
        app => f.app.proto().is_some_and(|fp| fp == app || (app == Proto::Dcerpc && fp == Proto::Smb)),
    }
}

/// The flow keyword: direction and connection state.
#[inline]
pub fn flow_ok(r: &Rule, c: &PktCtx) -> bool {
    let fo = &r.flow;
    if fo.to_server && !c.to_server || fo.to_client && c.to_server {
        return false;
    }
    if fo.established && !c.established {
        return false;
    }
    if fo.not_established && c.established {
        return false;
    }
    true
}

/// The rule's flow keywords with state (app-layer-protocol, stream_size) hold.
#[inline]
pub fn flow_keywords_ok(r: &Rule, f: &Flow, c: &PktCtx) -> bool {
    if r.flowm.is_empty() {
        return true;
    }
    let pd_done_now = f.pd_done_now[0] || f.pd_done_now[1];
    if r.pd_only && !pd_done_now {
        return false;
    }
    let v = crate::detect_appkw::FlowView { pd_done_now, alproto: f.alproto, to_server: c.to_server, stream_size: f.tcp.as_ref().map(|t| t.stream_size()) };
    r.flowm.iter().all(|m| m.matches(&v))
}

/// Every packet keyword of the rule holds.
#[inline]
pub fn pkt_ok(r: &Rule, p: &Packet) -> bool {
    r.pkt.iter().all(|m| pkt_match(m, p))
}

/// One packet keyword (urilen is checked with the transaction instead).
#[inline]
pub fn pkt_match(m: &PktMatch, p: &Packet) -> bool {
    {
        let ok = match m {
            PktMatch::Ttl(c) => c.test(p.ttl as u64),
            PktMatch::Itype(c) => p.icmp.as_ref().is_some_and(|i| c.test(i.itype as u64)),
            PktMatch::Icode(c) => p.icmp.as_ref().is_some_and(|i| c.test(i.icode as u64)),
            PktMatch::IcmpId(v) => p.icmp.as_ref().is_some_and(|i| i.id == Some(*v)),
            PktMatch::IcmpSeq(v) => p.icmp.as_ref().is_some_and(|i| i.seq == Some(*v)),
            PktMatch::IpProto(n, neg) => (p.proto == *n) != *neg,
            PktMatch::IpId(v) => p.ip_id == *v,
            PktMatch::Seq(v) => p.tcp.as_ref().is_some_and(|t| t.seq == *v),
            PktMatch::Ack(v) => p.tcp.as_ref().is_some_and(|t| t.ack == *v),
            PktMatch::Window(v, neg) => p.tcp.as_ref().is_some_and(|t| (t.win == *v) != *neg),
            PktMatch::Tos(v, neg) => (p.tos == *v) != *neg,
            PktMatch::Dsize(c) => c.test(p.payload.len() as u64),
            PktMatch::SameIp => p.src == p.dst,
            PktMatch::Flags { set, mask, mode } => match &p.tcp {
                Some(t) => {
                    let f = t.flags & mask;
                    match mode {
                        0 => f == *set,
                        1 => f & set == *set,
                        2 => f & set != 0,
                        _ => f & set == 0,
                    }
                }
                None => false,
            },
            PktMatch::FragBits { bits, mode } => {
                let f = p.frag_bits;
                match mode {
                    0 => f == *bits,
                    1 => f & bits == *bits,
                    2 => f & bits != 0,
                    _ => f & bits == 0,
                }
            }
            PktMatch::Urilen(..) => true, // checked with the transaction
            PktMatch::TcpMss(c) => p.tcp.as_ref().and_then(|t| t.mss).is_some_and(|m| c.test(m as u64)),
        };
        ok
    }
}

/// A header buffer of the packet (ipv4.hdr, tcp.hdr, ...), when the packet has that header.
#[inline]
pub fn header_buf<'a>(b: Buf, p: &'a Packet) -> Option<&'a [u8]> {
    let v: &[u8] = match b {
        Buf::Ipv4Hdr if !p.ipv6 => &p.l3_hdr,
        Buf::Ipv6Hdr if p.ipv6 => &p.l3_hdr,
        Buf::TcpHdr if p.proto == PROTO_TCP => &p.l4_hdr,
        Buf::UdpHdr if p.proto == PROTO_UDP => &p.l4_hdr,
        Buf::Icmpv4Hdr if p.proto == PROTO_ICMP => &p.l4_hdr,
        Buf::Icmpv6Hdr if p.proto == PROTO_ICMPV6 => &p.l4_hdr,
        _ => return None,
    };
    (!v.is_empty()).then_some(v)
}

/// Packet keywords that still make sense on an app-layer match (no payload size etc.).
#[inline]
pub fn pkt_ok_app(r: &Rule, p: &Packet) -> bool {
    r.pkt.iter().all(|m| match m {
        PktMatch::Urilen(..) | PktMatch::Dsize(_) | PktMatch::Flags { .. } => true,
        _ => pkt_match(m, p),
    })
}

/// The flow's address-indexed rules for the packet's direction, looked up and checked against
/// the packet's addresses and ports on the direction's first packet. `group`: the packet's
/// signature group, for the index of packet rules (the same for every packet of a direction).
pub fn addr_rules<'a>(cache: &'a mut [Option<Vec<u32>>; 2], index: &AddrIndex, rules: &[Rule], client: (IpAddr, u16), p: &Packet, group: Option<usize>) -> &'a [u32] {
    let d = usize::from((p.src, p.sp) != client);
    cache[d].get_or_insert_with(|| {
        let mut v = index.lookup(&p.src, &p.dst, group);
        v.retain(|&ri| header_ok(&rules[ri as usize], p));
        v
    })
}
