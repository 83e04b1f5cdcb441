//! IPv4 / IPv6 decoding and fragment reassembly (bounded trackers, bounded datagram size).

use crate::decode_packet::*;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest datagram we reassemble (the IPv4/IPv6 maximum); bigger ones are dropped as evasion.
const MAX_DATAGRAM: usize = 65535 + 40;
const MAX_TRACKERS: usize = 4096;
/// Suricata's default defrag timeout.
const DEFRAG_TIMEOUT_US: i64 = 60_000_000;

#[derive(Hash, PartialEq, Eq, Clone)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct Tracker {
    /// (offset, bytes) in arrival order; the first fragment to cover a byte wins (BSD-like policy
    /// for the common, non-overlapping case).
    frags: Vec<(usize, Vec<u8>)>,
    total: Option<usize>,
    bytes: usize,
    first_seen: i64,
    hdr: FirstHdr,
}

#[derive(Clone, Default)]
struct FirstHdr {
    have: bool,
    ttl: u8,
    tos: u8,
}

#[derive(Default)]
pub struct Defrag {
    trackers: crate::flow_table::FastMap<FragKey, Tracker>,
    pub dropped: u64,
}

impl Defrag {
    fn add(&mut self, key: FragKey, ts: i64, off: usize, more: bool, data: &[u8], hdr: FirstHdr) -> Option<(Vec<u8>, FirstHdr)> {
        if off + data.len() > MAX_DATAGRAM {
            self.dropped += 1;
            return None;
        }
        if self.trackers.len() >= MAX_TRACKERS && !self.trackers.contains_key(&key) {
            // Evict timed-out trackers first; if still full, refuse (counted).
            self.trackers.retain(|_, t| ts - t.first_seen < DEFRAG_TIMEOUT_US);
            if self.trackers.len() >= MAX_TRACKERS {
                self.dropped += 1;
                return None;
            }
        }
        let t = self.trackers.entry(key.clone()).or_insert_with(|| Tracker {
            frags: Vec::new(),
            total: None,
            bytes: 0,
            first_seen: ts,
            hdr: FirstHdr::default(),
        });
        if ts - t.first_seen > DEFRAG_TIMEOUT_US {
            t.frags.clear();
            t.total = None;
            t.bytes = 0;
            t.first_seen = ts;
        }
        if off == 0 {
            t.hdr = hdr;
        }
        if !more {
            t.total = Some(off + data.len());
        }
        t.bytes += data.len();
        if t.bytes > 4 * MAX_DATAGRAM {
            self.trackers.remove(&key);
            self.dropped += 1;
            return None;
        }
        t.frags.push((off, data.to_vec()));
        let total = t.total?;
        // Complete when every byte in [0,total) is covered.
        let mut spans: Vec<(usize, usize)> = t.frags.iter().map(|(o, d)| (*o, o + d.len())).collect();
        spans.sort();
        let mut end = 0;
        for (s, e) in spans {
            if s > end {
                return None;
            }
            end = end.max(e);
        }
        if end < total {
            return None;
        }
        let t = self.trackers.remove(&key)?;
        let mut buf = vec![0u8; total];
        let mut filled = vec![false; total];
        for (o, d) in &t.frags {
            for (i, b) in d.iter().enumerate() {
                let at = o + i;
                if at < total && !filled[at] {
                    buf[at] = *b;
                    filled[at] = true;
                }
            }
        }
        Some((buf, t.hdr))
    }
}

fn empty_packet<'a>(ts: i64, src: IpAddr, dst: IpAddr, ipv6: bool) -> Packet<'a> {
    Packet {
        ts_us: ts,
        src,
        dst,
        ipv6,
        proto: 0,
        ttl: 0,
        tos: 0,
        ip_id: 0,
        frag_bits: 0,
        sp: 0,
        dp: 0,
        tcp: None,
        icmp: None,
        payload: Cow::Borrowed(&[]),
        l3_hdr: Cow::Borrowed(&[]),
        l4_hdr: Cow::Borrowed(&[]),
        bad_checksum: false,
    }
}

/// Decode a whole frame. Ok(None) means "consumed, nothing to inspect yet" (a fragment).
pub fn decode_frame<'a>(defrag: &mut Defrag, linktype: u32, ts: i64, frame: &'a [u8], check: bool) -> Result<Option<Packet<'a>>, DecodeError> {
    let (et, net) = strip_link(linktype, frame).ok_or(DecodeError::Link)?;
    match et {
        0x0800 => decode_ipv4(defrag, ts, net, check),
        0x86dd => decode_ipv6(defrag, ts, net, check),
        _ => Err(DecodeError::Link),
    }
}

fn decode_ipv4<'a>(defrag: &mut Defrag, ts: i64, b: &'a [u8], check: bool) -> Result<Option<Packet<'a>>, DecodeError> {
    if b.len() < 20 {
        return Err(DecodeError::Truncated);
    }
    if b[0] >> 4 != 4 {
        return Err(DecodeError::BadIpVersion);
    }
    let hlen = ((b[0] & 0x0f) as usize) * 4;
    let tot = be16(b, 2).ok_or(DecodeError::Truncated)? as usize;
    if hlen < 20 || tot < hlen || b.len() < hlen {
        return Err(DecodeError::BadIpHeader);
    }
    // Ethernet padding may follow the datagram; a short capture truncates it.
    let end = tot.min(b.len());
    if tot > b.len() {
        return Err(DecodeError::Truncated);
    }
    if check && !ipv4_header_ok(&b[..hlen]) {
        return Err(DecodeError::BadChecksum);
    }
    let src = IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19]));
    let mut p = empty_packet(ts, src, dst, false);
    p.l3_hdr = Cow::Borrowed(&b[..hlen]);
    p.proto = b[9];
    p.ttl = b[8];
    p.tos = b[1];
    p.ip_id = be16(b, 4).unwrap_or(0) as u32;
    let fo = be16(b, 6).unwrap_or(0);
    let more = fo & 0x2000 != 0;
    let off = ((fo & 0x1fff) as usize) * 8;
    p.frag_bits = (more as u8) | (((fo & 0x4000 != 0) as u8) << 1) | (((fo & 0x8000 != 0) as u8) << 2);
    let body = &b[hlen..end];
    if more || off > 0 {
        let key = FragKey { src, dst, id: p.ip_id, proto: p.proto };
        let hdr = FirstHdr { have: true, ttl: p.ttl, tos: p.tos };
        match defrag.add(key, ts, off, more, body, hdr) {
            Some((whole, h)) => {
                if h.have {
                    p.ttl = h.ttl;
                    p.tos = h.tos;
                }
                let (h, r) = decode_l4(&mut p, &whole, check)?;
                p.l4_hdr = Cow::Owned(whole[h].to_vec());
                p.payload = Cow::Owned(whole[r].to_vec());
                return Ok(Some(p));
            }
            None => return Ok(None),
        }
    }
    let (h, r) = decode_l4(&mut p, body, check)?;
    p.l4_hdr = Cow::Borrowed(&body[h]);
    p.payload = Cow::Borrowed(&body[r]);
    Ok(Some(p))
}

fn decode_ipv6<'a>(defrag: &mut Defrag, ts: i64, b: &'a [u8], check: bool) -> Result<Option<Packet<'a>>, DecodeError> {
    if b.len() < 40 {
        return Err(DecodeError::Truncated);
    }
    if b[0] >> 4 != 6 {
        return Err(DecodeError::BadIpVersion);
    }
    let plen = be16(b, 4).ok_or(DecodeError::Truncated)? as usize;
    if 40 + plen > b.len() {
        return Err(DecodeError::Truncated);
    }
    let mut s = [0u8; 16];
    s.copy_from_slice(&b[8..24]);
    let mut d = [0u8; 16];
    d.copy_from_slice(&b[24..40]);
    let src = IpAddr::V6(Ipv6Addr::from(s));
    let dst = IpAddr::V6(Ipv6Addr::from(d));
    let mut p = empty_packet(ts, src, dst, true);
    p.l3_hdr = Cow::Borrowed(&b[..40]);
    p.ttl = b[7];
    p.tos = ((b[0] & 0x0f) << 4) | (b[1] >> 4);
    let body = &b[40..40 + plen];
    let mut nh = b[6];
    let mut o = 0usize;
    let mut frag: Option<(usize, bool, u32)> = None;
    // Walk the extension header chain (bounded by the payload length).
    loop {
        match nh {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let next = *body.get(o).ok_or(DecodeError::BadIpHeader)?;
                let len = (*body.get(o + 1).ok_or(DecodeError::BadIpHeader)? as usize + 1) * 8;
                if o + len > body.len() {
                    return Err(DecodeError::BadIpHeader);
                }
                nh = next;
                o += len;
            }
            51 => {
                let next = *body.get(o).ok_or(DecodeError::BadIpHeader)?;
                let len = (*body.get(o + 1).ok_or(DecodeError::BadIpHeader)? as usize + 2) * 4;
                if o + len > body.len() {
                    return Err(DecodeError::BadIpHeader);
                }
                nh = next;
                o += len;
            }
            44 => {
                if o + 8 > body.len() {
                    return Err(DecodeError::BadIpHeader);
                }
                let next = body[o];
                let fo = be16(body, o + 2).unwrap_or(0);
                let id = be32(body, o + 4).unwrap_or(0);
                frag = Some((((fo >> 3) as usize) * 8, fo & 1 != 0, id));
                nh = next;
                o += 8;
                // The fragmentable part follows; extension headers after it belong to the
                // reassembled payload.
                break;
            }
            _ => break,
        }
    }
    p.proto = nh;
    if let Some((off, more, id)) = frag {
        p.ip_id = id;
        p.frag_bits = more as u8;
        if more || off > 0 {
            let key = FragKey { src, dst, id, proto: nh };
            let hdr = FirstHdr { have: true, ttl: p.ttl, tos: p.tos };
            return match defrag.add(key, ts, off, more, &body[o..], hdr) {
                Some((whole, _)) => {
                    let (proto, l4) = skip_v6_ext(nh, &whole)?;
                    p.proto = proto;
                    let (h, r) = decode_l4(&mut p, l4, check)?;
                    p.l4_hdr = Cow::Owned(l4[h].to_vec());
                    p.payload = Cow::Owned(l4[r].to_vec());
                    Ok(Some(p))
                }
                None => Ok(None),
            };
        }
        // An atomic fragment: the payload is complete.
        let (proto, l4) = skip_v6_ext(nh, &body[o..])?;
        p.proto = proto;
        let (h, r) = decode_l4(&mut p, l4, check)?;
        p.l4_hdr = Cow::Borrowed(&l4[h]);
        p.payload = Cow::Borrowed(&l4[r]);
        return Ok(Some(p));
    }
    let l4 = &body[o..];
    let (h, r) = decode_l4(&mut p, l4, check)?;
    p.l4_hdr = Cow::Borrowed(&l4[h]);
    p.payload = Cow::Borrowed(&l4[r]);
    Ok(Some(p))
}

fn skip_v6_ext(mut nh: u8, b: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    let mut o = 0;
    for _ in 0..16 {
        match nh {
            0 | 43 | 60 => {
                let next = *b.get(o).ok_or(DecodeError::BadIpHeader)?;
                let len = (*b.get(o + 1).ok_or(DecodeError::BadIpHeader)? as usize + 1) * 8;
                nh = next;
                o += len;
            }
            _ => break,
        }
    }
    Ok((nh, b.get(o..).ok_or(DecodeError::BadIpHeader)?))
}
