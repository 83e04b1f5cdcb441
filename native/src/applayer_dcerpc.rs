//! DCERPC (connection-oriented, version 5): PDUs reassembled from a TCP stream or from an SMB
//! named pipe's reads and writes; BIND/ALTER_CONTEXT and their acknowledgements give each
//! presentation context its interface (UUID, version) once accepted; each REQUEST is a
//! transaction (opnum, the interfaces of its context, stub data reassembled across
//! fragments) that its RESPONSE (same call id) completes with the response's stub data.

use crate::applayer_tx::{AppLayer, AppTx, AppTxs, Field, ParseEnv};
use crate::detect_parse::{Buf, Proto};

/// A PDU larger than this is not reassembled (DCERPC's own maximum is 65535).
const MAX_PDU: usize = 65535;
/// Stub data kept per call and direction.
const MAX_STUB: usize = 1024 * 1024;

const PT_REQUEST: u8 = 0;
const PT_RESPONSE: u8 = 2;
const PT_FAULT: u8 = 3;
const PT_BIND: u8 = 11;
const PT_BIND_ACK: u8 = 12;
const PT_ALTER: u8 = 14;
const PT_ALTER_RESP: u8 = 15;

const PFC_LAST_FRAG: u8 = 0x02;

/// A call in progress: its transaction (by `AppTx::key`), stub bytes per direction.
#[derive(Debug, Default)]
struct Call {
    call_id: u32,
    stub: [Vec<u8>; 2],
}

/// One DCERPC association (a TCP connection, or one SMB pipe).
#[derive(Debug, Default)]
pub struct DceAssoc {
    /// Contexts the client proposed: (ctx id, interface uuid as written, major version).
    proposed: Vec<(u16, [u8; 16], u16)>,
    /// Contexts the server accepted.
    accepted: Vec<(u16, [u8; 16], u16)>,
    /// PDU bytes not yet complete, per direction (0: from the client).
    pending: [Vec<u8>; 2],
    calls: Vec<Call>,
}

fn u16e(b: &[u8], o: usize, le: bool) -> Option<u16> {
    let x = [*b.get(o)?, *b.get(o + 1)?];
    Some(if le { u16::from_le_bytes(x) } else { u16::from_be_bytes(x) })
}

fn u32e(b: &[u8], o: usize, le: bool) -> Option<u32> {
    let x = [*b.get(o)?, *b.get(o + 1)?, *b.get(o + 2)?, *b.get(o + 3)?];
    Some(if le { u32::from_le_bytes(x) } else { u32::from_be_bytes(x) })
}

/// A UUID as on the wire (its first three fields in the PDU's byte order) → in text order.
fn uuid_text_order(b: &[u8], le: bool) -> Option<[u8; 16]> {
    let mut u: [u8; 16] = b.get(..16)?.try_into().ok()?;
    if le {
        u[..4].reverse();
        u[4..6].reverse();
        u[6..8].reverse();
    }
    Some(u)
}

/// Whether bytes start like a DCERPC PDU header.
pub fn looks_like_pdu(d: &[u8]) -> bool {
    d.len() >= 10 && d[0] == 5 && d[1] == 0 && matches!(d[2], 0..=20)
}

impl DceAssoc {
    /// Stream (or pipe) bytes of one direction; new transactions and changes go to `txs`.
    /// Returns whether a transaction changed.
    pub fn feed(&mut self, to_server: bool, data: &[u8], txs: &mut AppTxs) -> bool {
        let d = usize::from(!to_server);
        let mut buf = std::mem::take(&mut self.pending[d]);
        buf.extend_from_slice(data);
        let mut o = 0;
        let mut changed = false;
        while buf.len() - o >= 16 {
            let h = &buf[o..];
            if h[0] != 5 || h[1] != 0 {
                // Not (or no longer) DCERPC: drop what is left.
                o = buf.len();
                break;
            }
            let le = h[4] & 0x10 != 0;
            let frag_len = u16e(h, 8, le).unwrap_or(0) as usize;
            if !(16..=MAX_PDU).contains(&frag_len) {
                o = buf.len();
                break;
            }
            if h.len() < frag_len {
                break;
            }
            let pdu = buf[o..o + frag_len].to_vec();
            changed |= self.pdu(to_server, &pdu, txs);
            o += frag_len;
        }
        buf.drain(..o);
        if buf.len() > MAX_PDU {
            buf.clear();
        }
        self.pending[d] = buf;
        changed
    }

    /// One whole PDU.
    pub fn pdu(&mut self, to_server: bool, p: &[u8], txs: &mut AppTxs) -> bool {
        if p.len() < 16 {
            return false;
        }
        let ptype = p[2];
        let flags = p[3];
        let le = p[4] & 0x10 != 0;
        let call_id = u32e(p, 12, le).unwrap_or(0);
        // Stub data is everything after the request header (as Suricata takes it: the
        // authentication trailer included) and after the common header of a response.
        let body = &p[16..];
        match ptype {
            PT_BIND | PT_ALTER if to_server => {
                self.proposed.clear();
                self.parse_bind(body, le);
                false
            }
            PT_BIND_ACK | PT_ALTER_RESP if !to_server => {
                self.parse_bind_ack(body, le);
                false
            }
            PT_REQUEST if to_server => {
                let Some(ctx) = u16e(body, 4, le) else { return false };
                let Some(opnum) = u16e(body, 6, le) else { return false };
                // An object UUID (PFC_OBJECT_UUID) stays in the stub data, as Suricata keeps it.
                let stub = body.get(8..).unwrap_or(&[]);
                let ci = match self.calls.iter().position(|c| c.call_id == call_id) {
                    Some(i) => i,
                    None => {
                        let i = txs.begin();
                        let tx = &mut txs.txs[i];
                        tx.key = call_id as u64 | 1 << 40;
                        tx.dce_le = le;
                        tx.set_field(Field::DceOpnum, true, opnum as u64);
                        for &(c, u, v) in &self.accepted {
                            if c == ctx {
                                tx.ifaces.push((u, v));
                            }
                        }
                        if self.calls.len() >= 256 {
                            self.calls.remove(0);
                        }
                        self.calls.push(Call { call_id, stub: Default::default() });
                        self.calls.len() - 1
                    }
                };
                let call = &mut self.calls[ci];
                let room = MAX_STUB.saturating_sub(call.stub[0].len());
                call.stub[0].extend_from_slice(&stub[..stub.len().min(room)]);
                if flags & PFC_LAST_FRAG != 0 {
                    let stub = std::mem::take(&mut call.stub[0]);
                    if let Some(tx) = find(txs, call_id) {
                        tx.push_buf(Buf::DceStubData, true, &stub);
                        tx.finish(true);
                        return true;
                    }
                }
                false
            }
            PT_RESPONSE | PT_FAULT if !to_server => {
                let stub = if ptype == PT_RESPONSE { body } else { &[] };
                let Some(ci) = self.calls.iter().position(|c| c.call_id == call_id) else { return false };
                let call = &mut self.calls[ci];
                let room = MAX_STUB.saturating_sub(call.stub[1].len());
                call.stub[1].extend_from_slice(&stub[..stub.len().min(room)]);
                if flags & PFC_LAST_FRAG != 0 || ptype == PT_FAULT {
                    let stub = std::mem::take(&mut call.stub[1]);
                    self.calls.remove(ci);
                    if let Some(tx) = find(txs, call_id) {
                        if ptype == PT_RESPONSE {
                            tx.push_buf(Buf::DceStubData, false, &stub);
                        } else {
                            tx.touch(false);
                        }
                        tx.finish(false);
                        return true;
                    }
                }
                false
            }
            _ => false,
        }
    }

    fn parse_bind(&mut self, b: &[u8], le: bool) {
        // max_xmit(2) max_recv(2) assoc_group(4) n_ctx(1) pad(3), then the contexts.
        let Some(&n) = b.get(8) else { return };
        let mut o = 12;
        for _ in 0..n {
            let Some(ctx) = u16e(b, o, le) else { return };
            let Some(&nts) = b.get(o + 2) else { return };
            let Some(uuid) = b.get(o + 4..o + 20).and_then(|u| uuid_text_order(u, le)) else { return };
            let Some(ver) = u16e(b, o + 20, le) else { return };
            self.proposed.push((ctx, uuid, ver));
            o += 24 + 20 * nts as usize;
            if self.proposed.len() > 64 {
                return;
            }
        }
    }

    fn parse_bind_ack(&mut self, b: &[u8], le: bool) {
        // max_xmit(2) max_recv(2) assoc_group(4) sec_addr_len(2) sec_addr, pad to 4, n_results(1) pad(3), results.
        let Some(sal) = u16e(b, 8, le) else { return };
        let mut o = 10 + sal as usize;
        o = (o + 3) & !3;
        let Some(&n) = b.get(o) else { return };
        o += 4;
        let proposed = std::mem::take(&mut self.proposed);
        for i in 0..n as usize {
            let Some(result) = u16e(b, o, le) else { break };
            if result == 0 {
                if let Some(&p) = proposed.get(i) {
                    self.accepted.retain(|a| a.0 != p.0);
                    self.accepted.push(p);
                }
            }
            o += 24;
        }
    }
}

fn find(txs: &mut AppTxs, call_id: u32) -> Option<&mut AppTx> {
    txs.txs.iter_mut().rev().find(|t| t.key == call_id as u64 | 1 << 40)
}

/// DCERPC directly over TCP.
#[derive(Debug, Default)]
pub struct DcerpcState {
    assoc: DceAssoc,
    txs: AppTxs,
}

impl AppLayer for DcerpcState {
    fn proto(&self) -> Proto {
        Proto::Dcerpc
    }
    fn parse(&mut self, to_server: bool, data: &[u8], _env: &mut ParseEnv) -> bool {
        self.assoc.feed(to_server, data, &mut self.txs)
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(ptype: u8, flags: u8, call: u32, body: &[u8]) -> Vec<u8> {
        let mut p = vec![5, 0, ptype, flags, 0x10, 0, 0, 0];
        p.extend_from_slice(&((16 + body.len()) as u16).to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&call.to_le_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn bind_ack_request_response() {
        let uuid = crate::detect_appkw::parse_uuid("367abb81-9844-35f1-ad32-98f038001003").unwrap();
        let mut wire_uuid = uuid;
        wire_uuid[..4].reverse();
        wire_uuid[4..6].reverse();
        wire_uuid[6..8].reverse();
        let mut bind = vec![0xb8, 0x10, 0xb8, 0x10, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0];
        bind.extend_from_slice(&wire_uuid);
        bind.extend_from_slice(&[2, 0, 0, 0]);
        bind.extend_from_slice(&[0; 20]);
        let mut ack = vec![0xb8, 0x10, 0xb8, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        ack.extend_from_slice(&[0; 24]);
        let mut req = vec![0, 0, 0, 0, 0, 0, 15, 0];
        req.extend_from_slice(b"stub!");
        let mut a = DcerpcState::default();
        let mut e = Vec::new();
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let mut env = ParseEnv { client: (ip, 0), server: (ip, 0), ts_us: 0, expect: &mut e };
        a.parse(true, &hdr(PT_BIND, 3, 1, &bind), &mut env);
        a.parse(false, &hdr(PT_BIND_ACK, 3, 1, &ack), &mut env);
        let r = hdr(PT_REQUEST, 3, 2, &req);
        assert!(!a.parse(true, &r[..20], &mut env));
        assert!(a.parse(true, &r[20..], &mut env));
        let tx = &a.txs.txs[0];
        assert_eq!(tx.ifaces, vec![(uuid, 2)]);
        assert!(tx.fields.contains(&(Field::DceOpnum, true, 15)));
        assert_eq!(tx.bufs[0].2, b"stub!");
        let mut resp = vec![0u8; 8];
        resp.extend_from_slice(b"ok");
        assert!(a.parse(false, &hdr(PT_RESPONSE, 3, 2, &resp), &mut env));
        assert_eq!(a.txs.txs[0].bufs[1].2.len(), 10, "a response's stub starts after the common header");
    }
}

/// Connectionless DCERPC (version 4, over UDP): each datagram is a PDU whose header names
/// the interface itself; a request and its response (same activity and sequence number)
/// are one transaction.
#[derive(Debug, Default)]
pub struct DcerpcUdpState {
    txs: AppTxs,
}

/// Whether a datagram is a connectionless DCERPC PDU (a whole one).
pub fn looks_like_udp_pdu(d: &[u8]) -> bool {
    if d.len() < 80 || d[0] != 4 || d[1] > 10 {
        return false;
    }
    let le = d[4] & 0x10 != 0;
    u16e(d, 74, le).is_some_and(|len| 80 + len as usize == d.len())
}

impl AppLayer for DcerpcUdpState {
    fn proto(&self) -> Proto {
        Proto::Dcerpc
    }
    fn parse(&mut self, to_server: bool, d: &[u8], _env: &mut ParseEnv) -> bool {
        if d.len() < 80 || d[0] != 4 {
            return false;
        }
        let le = d[4] & 0x10 != 0;
        let ptype = d[1];
        let Some(len) = u16e(d, 74, le) else { return false };
        let stub = d.get(80..80 + len as usize).unwrap_or(&d[80..]);
        // The call: activity id and sequence number.
        let mut key: u64 = 3 << 60;
        for &b in &d[40..56] {
            key = key.wrapping_mul(31).wrapping_add(b as u64);
        }
        let seq = u32e(d, 64, le).unwrap_or(0) as u64;
        let key = (key ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 3 << 60;
        match ptype {
            0 if to_server => {
                let (Some(uuid), Some(ver), Some(opnum)) = (uuid_text_order(&d[24..40], le), u32e(d, 60, le), u16e(d, 68, le)) else { return false };
                let i = self.txs.begin();
                let tx = &mut self.txs.txs[i];
                tx.key = key;
                tx.dce_le = le;
                tx.ifaces.push((uuid, ver as u16));
                tx.set_field(Field::DceOpnum, true, opnum as u64);
                tx.push_buf(Buf::DceStubData, true, stub);
                tx.finish(true);
                true
            }
            2 if !to_server => {
                let Some(tx) = self.txs.txs.iter_mut().rev().find(|t| t.key == key) else { return false };
                tx.push_buf(Buf::DceStubData, false, stub);
                tx.finish(false);
                true
            }
            _ => false,
        }
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
}
