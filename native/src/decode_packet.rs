//! Link, network and transport decoding. Every read is bounds-checked: hostile bytes produce
//! a decode error event (counted), never a panic.

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// DLT_RAW as some BSDs number it.
pub const LINKTYPE_RAW_BSD: u32 = 12;
pub const LINKTYPE_RAW_OPENBSD: u32 = 14;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

pub const TH_FIN: u8 = 0x01;
pub const TH_SYN: u8 = 0x02;
pub const TH_RST: u8 = 0x04;
pub const TH_PUSH: u8 = 0x08;
pub const TH_ACK: u8 = 0x10;
pub const TH_URG: u8 = 0x20;
pub const TH_ECE: u8 = 0x40;
pub const TH_CWR: u8 = 0x80;

#[inline]
pub fn be16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(o)?, *b.get(o + 1)?]))
}
#[inline]
pub fn be32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(o)?, *b.get(o + 1)?, *b.get(o + 2)?, *b.get(o + 3)?]))
}

/// Where the network layer starts inside a link-layer frame.
pub fn strip_link(linktype: u32, frame: &[u8]) -> Option<(u16, &[u8])> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut et = be16(frame, 12)?;
            let mut off = 14;
            // 802.1Q / 802.1ad / QinQ: any depth, bounded by the frame.
            let mut depth = 0;
            while (et == 0x8100 || et == 0x88a8 || et == 0x9100) && depth < 8 {
                et = be16(frame, off + 2)?;
                off += 4;
                depth += 1;
            }
            Some((et, frame.get(off..)?))
        }
        LINKTYPE_LINUX_SLL => {
            let mut et = be16(frame, 14)?;
            let mut off = 16;
            if et == 0x8100 {
                et = be16(frame, off + 2)?;
                off += 4;
            }
            Some((et, frame.get(off..)?))
        }
        LINKTYPE_LINUX_SLL2 => Some((be16(frame, 0)?, frame.get(20..)?)),
        LINKTYPE_RAW | LINKTYPE_RAW_BSD | LINKTYPE_RAW_OPENBSD | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            let v = frame.first()? >> 4;
            Some((if v == 6 { 0x86dd } else { 0x0800 }, frame))
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            // The family is in host byte order of the capturing machine: accept both.
            let fam = u32::from_le_bytes(frame.get(0..4)?.try_into().ok()?);
            let fam = if fam > 0xffff { fam.swap_bytes() } else { fam };
            let et = match fam {
                2 => 0x0800,
                24 | 28 | 30 => 0x86dd,
                _ => return None,
            };
            Some((et, frame.get(4..)?))
        }
        _ => None,
    }
}

#[derive(Clone, Debug, Default)]
pub struct TcpHdr {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub win: u16,
    pub hlen: usize,
    pub wscale: Option<u8>,
    pub has_ts: bool,
    /// The MSS option's value, when the header carries one.
    pub mss: Option<u16>,
}

#[derive(Clone, Debug, Default)]
pub struct IcmpHdr {
    pub itype: u8,
    pub icode: u8,
    pub id: Option<u16>,
    pub seq: Option<u16>,
}

/// A decoded packet. `payload` is the L4 payload (or the IP payload for other protocols),
/// borrowed from the frame; only a reassembled datagram owns its bytes.
#[derive(Clone, Debug)]
pub struct Packet<'a> {
    pub ts_us: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ipv6: bool,
    pub proto: u8,
    pub ttl: u8,
    pub tos: u8,
    pub ip_id: u32,
    pub frag_bits: u8, // bit0 = MF, bit1 = DF, bit2 = reserved
    pub sp: u16,
    pub dp: u16,
    pub tcp: Option<TcpHdr>,
    pub icmp: Option<IcmpHdr>,
    pub payload: Cow<'a, [u8]>,
    /// The IP header as on the wire (IPv4 with options; IPv6's fixed 40 bytes): ipv4.hdr, ipv6.hdr.
    pub l3_hdr: Cow<'a, [u8]>,
    /// The transport header as on the wire (TCP with options, UDP, ICMP's first 8 bytes at most).
    pub l4_hdr: Cow<'a, [u8]>,
    /// L4 checksum verified bad (only set when validation is on and the value was checkable).
    pub bad_checksum: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Link,
    Truncated,
    BadIpVersion,
    BadIpHeader,
    BadL4,
    BadChecksum,
    FragmentPending,
}

fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

pub fn ipv4_header_ok(h: &[u8]) -> bool {
    fold(sum16(0, h)) == 0
}

/// L4 checksum over the pseudo header; returns true when correct.
pub fn l4_checksum_ok(src: &IpAddr, dst: &IpAddr, proto: u8, seg: &[u8]) -> bool {
    let mut acc = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(acc, &s.octets());
            acc = sum16(acc, &d.octets());
            acc += proto as u32;
            acc += seg.len() as u32;
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = sum16(acc, &s.octets());
            acc = sum16(acc, &d.octets());
            acc += (seg.len() as u32) & 0xffff;
            acc += (seg.len() as u32) >> 16;
            acc += proto as u32;
        }
        _ => return false,
    }
    fold(sum16(acc, seg)) == 0
}

/// Decode transport headers from an assembled IP payload; returns where the transport header
/// and the payload lie in `l4` (the caller borrows them from the frame, or copies them out of a
/// reassembled datagram).
pub fn decode_l4(p: &mut Packet, l4: &[u8], check: bool) -> Result<(Range<usize>, Range<usize>), DecodeError> {
    let payload;
    let mut hdr = 0..0;
    match p.proto {
        PROTO_TCP => {
            if l4.len() < 20 {
                return Err(DecodeError::BadL4);
            }
            let hlen = ((l4[12] >> 4) as usize) * 4;
            if hlen < 20 || hlen > l4.len() {
                return Err(DecodeError::BadL4);
            }
            let mut t = TcpHdr {
                seq: be32(l4, 4).ok_or(DecodeError::BadL4)?,
                ack: be32(l4, 8).ok_or(DecodeError::BadL4)?,
                flags: l4[13],
                win: be16(l4, 14).ok_or(DecodeError::BadL4)?,
                hlen,
                wscale: None,
                has_ts: false,
                mss: None,
            };
            // Options: only what stream tracking needs (window scale, timestamps).
            let mut o = 20;
            while o < hlen {
                let kind = l4[o];
                if kind == 0 {
                    break;
                }
                if kind == 1 {
                    o += 1;
                    continue;
                }
                let len = *l4.get(o + 1).unwrap_or(&0) as usize;
                if len < 2 || o + len > hlen {
                    break;
                }
                match kind {
                    2 if len == 4 => t.mss = be16(l4, o + 2),
                    3 if len == 3 => t.wscale = Some(l4[o + 2].min(14)),
                    8 => t.has_ts = true,
                    _ => {}
                }
                o += len;
            }
            p.sp = be16(l4, 0).ok_or(DecodeError::BadL4)?;
            p.dp = be16(l4, 2).ok_or(DecodeError::BadL4)?;
            if check && !l4_checksum_ok(&p.src, &p.dst, PROTO_TCP, l4) {
                p.bad_checksum = true;
            }
            payload = hlen..l4.len();
            p.tcp = Some(t);
            hdr = 0..hlen;
        }
        PROTO_UDP => {
            if l4.len() < 8 {
                return Err(DecodeError::BadL4);
            }
            p.sp = be16(l4, 0).ok_or(DecodeError::BadL4)?;
            p.dp = be16(l4, 2).ok_or(DecodeError::BadL4)?;
            let ulen = be16(l4, 4).ok_or(DecodeError::BadL4)? as usize;
            if ulen < 8 || ulen > l4.len() {
                return Err(DecodeError::BadL4);
            }
            let csum = be16(l4, 6).unwrap_or(0);
            // UDP over IPv4 may omit the checksum (zero).
            if check && (csum != 0 || p.ipv6) && !l4_checksum_ok(&p.src, &p.dst, PROTO_UDP, &l4[..ulen]) {
                p.bad_checksum = true;
            }
            // Trailing bytes after the UDP length are not payload.
            payload = 8..ulen;
            hdr = 0..8;
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            if l4.len() < 4 {
                return Err(DecodeError::BadL4);
            }
            let mut ic = IcmpHdr { itype: l4[0], icode: l4[1], id: None, seq: None };
            let echo = if p.proto == PROTO_ICMP {
                matches!(ic.itype, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
            } else {
                matches!(ic.itype, 128 | 129)
            };
            if echo && l4.len() >= 8 {
                ic.id = be16(l4, 4);
                ic.seq = be16(l4, 6);
            }
            if check {
                let ok = if p.proto == PROTO_ICMP {
                    fold(sum16(0, l4)) == 0
                } else {
                    l4_checksum_ok(&p.src, &p.dst, PROTO_ICMPV6, l4)
                };
                p.bad_checksum = !ok;
            }
            payload = l4.len().min(8)..l4.len();
            p.icmp = Some(ic);
            hdr = 0..l4.len().min(8);
        }
        _ => payload = 0..l4.len(),
    }
    Ok((hdr, payload))
}
