//! Kerberos 5 (UDP datagrams, or TCP records behind a 4-byte length): each KDC message is
//! one transaction of its direction, as in Suricata: AS-REQ/TGS-REQ (cname, sname from the
//! request body), AS-REP/TGS-REP (cname, the ticket's sname), KRB-ERROR (error code, names).
//! Messages are read with a small bounded DER reader (tag, length, contents).

use crate::applayer_tx::{AppLayer, AppTxs, Field, ParseEnv};
use crate::detect_parse::{Buf, Proto};

/// A TCP record larger than this is not reassembled.
const MAX_RECORD: usize = 64 * 1024;

/// One DER element: (class+constructed+tag byte, tag number, contents, rest).
struct Tlv<'a> {
    /// Identifier octet's class bits (0x00 universal, 0x40 application, 0x80 context).
    class: u8,
    tag: u32,
    body: &'a [u8],
}

/// Read one element; (element, what follows it).
fn tlv(b: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let id = *b.first()?;
    let mut o = 1;
    let mut tag = (id & 0x1f) as u32;
    if tag == 0x1f {
        tag = 0;
        loop {
            let x = *b.get(o)?;
            o += 1;
            tag = tag.checked_mul(128)?.checked_add((x & 0x7f) as u32)?;
            if x & 0x80 == 0 {
                break;
            }
            if o > 5 {
                return None;
            }
        }
    }
    let l0 = *b.get(o)?;
    o += 1;
    let len = if l0 & 0x80 == 0 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut l = 0usize;
        for _ in 0..n {
            l = (l << 8) | *b.get(o)? as usize;
            o += 1;
        }
        l
    };
    let body = b.get(o..o.checked_add(len)?)?;
    Some((Tlv { class: id & 0xc0, tag, body }, &b[o + len..]))
}

/// The fields of a SEQUENCE's body by context tag [n].
fn ctx_fields(seq: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    let mut rest = seq;
    while let Some((t, r)) = tlv(rest) {
        if t.class == 0x80 {
            out.push((t.tag, t.body));
        }
        rest = r;
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// The SEQUENCE inside an explicit tag, or the body itself.
fn seq_body(b: &[u8]) -> Option<&[u8]> {
    let (t, _) = tlv(b)?;
    (t.class == 0 && t.tag == 16).then_some(t.body)
}

fn int(b: &[u8]) -> Option<i64> {
    let (t, _) = tlv(b)?;
    if t.class != 0 || t.tag != 2 || t.body.is_empty() || t.body.len() > 8 {
        return None;
    }
    let mut v: i64 = if t.body[0] & 0x80 != 0 { -1 } else { 0 };
    for &x in t.body {
        v = (v << 8) | x as i64;
    }
    Some(v)
}

/// PrincipalName ::= SEQUENCE { name-type [0], name-string [1] SEQUENCE OF KerberosString }
fn principal(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(seq) = seq_body(b) else { return out };
    for (tag, v) in ctx_fields(seq) {
        if tag == 1 {
            let Some(list) = seq_body(v) else { continue };
            let mut rest = list;
            while let Some((t, r)) = tlv(rest) {
                out.push(t.body.to_vec());
                rest = r;
                if out.len() > 16 {
                    break;
                }
            }
        }
    }
    out
}

/// What one message says.
#[derive(Default, Debug, PartialEq)]
pub struct Krb5Msg {
    pub msg_type: u32,
    pub cname: Vec<Vec<u8>>,
    pub sname: Vec<Vec<u8>>,
    pub error_code: Option<i64>,
    /// KDC-REP: the etype of the ticket's encrypted part, and of the reply's own.
    pub ticket_etype: Option<i64>,
    pub reply_etype: Option<i64>,
}

/// EncryptedData ::= SEQUENCE { etype [0] Int32, kvno [1] OPTIONAL, cipher [2] }: the etype.
fn enc_etype(b: &[u8]) -> Option<i64> {
    let seq = seq_body(b)?;
    ctx_fields(seq).into_iter().find(|(t, _)| *t == 0).and_then(|(_, v)| int(v))
}

/// Suricata's test_weak_encryption: anything but AES and Camellia is weak.
pub fn weak_etype(e: i64) -> bool {
    !matches!(e, 17 | 18 | 19 | 20 | 25 | 26)
}

/// Parse a Kerberos message (an APPLICATION-tagged element).
pub fn parse_msg(b: &[u8]) -> Option<Krb5Msg> {
    let (app, _) = tlv(b)?;
    if app.class != 0x40 {
        return None;
    }
    let mut m = Krb5Msg { msg_type: app.tag, ..Default::default() };
    let seq = seq_body(app.body)?;
    let f = ctx_fields(seq);
    match app.tag {
        10 | 12 => {
            // KDC-REQ: req-body [4] { cname [1], realm [2], sname [3], ... }
            let body = f.iter().find(|(t, _)| *t == 4).and_then(|(_, v)| seq_body(v))?;
            for (t, v) in ctx_fields(body) {
                match t {
                    1 => m.cname = principal(v),
                    3 => m.sname = principal(v),
                    _ => {}
                }
            }
        }
        11 | 13 => {
            // KDC-REP: cname [4], ticket [5] (APPLICATION 1 { ..., sname [2] })
            for (t, v) in &f {
                match t {
                    4 => m.cname = principal(v),
                    5 => {
                        if let Some((tk, _)) = tlv(v) {
                            if let Some(ts) = seq_body(tk.body) {
                                for (t, tv) in ctx_fields(ts) {
                                    match t {
                                        2 => m.sname = principal(tv),
                                        3 => m.ticket_etype = enc_etype(tv),
                                        _ => {}
                                    }
                                }
                            }
                        }
                    }
                    6 => m.reply_etype = enc_etype(v),
                    _ => {}
                }
            }
        }
        30 => {
            for (t, v) in &f {
                match t {
                    6 => m.error_code = int(v),
                    8 => m.cname = principal(v),
                    10 => m.sname = principal(v),
                    _ => {}
                }
            }
        }
        14 | 15 => {}
        _ => return None,
    }
    Some(m)
}

#[derive(Debug, Default)]
pub struct Krb5State {
    txs: AppTxs,
    /// TCP: record bytes of each direction not yet complete.
    pending: [Vec<u8>; 2],
    tcp: bool,
}

impl Krb5State {
    pub fn new(tcp: bool) -> Krb5State {
        Krb5State { tcp, ..Default::default() }
    }

    fn message(&mut self, to_server: bool, b: &[u8]) -> bool {
        let Some(m) = parse_msg(b) else {
            if tlv(b).is_none_or(|(t, _)| t.class != 0x40) {
                return false;
            }
            let i = self.txs.begin();
            let tx = &mut self.txs.txs[i];
            tx.only = Some(to_server);
            tx.event("krb5.malformed_data", to_server);
            return true;
        };
        if matches!(m.msg_type, 14 | 15) {
            return false;
        }
        let i = self.txs.begin();
        let tx = &mut self.txs.txs[i];
        tx.only = Some(to_server);
        tx.set_field(Field::Krb5MsgType, to_server, m.msg_type as u64);
        if let Some(e) = m.error_code {
            tx.set_field(Field::Krb5ErrCode, to_server, e as u64);
        }
        if let Some(e) = m.ticket_etype {
            tx.set_field(Field::Krb5TicketEtype, to_server, e as u64);
        }
        if m.reply_etype.is_some_and(weak_etype) {
            tx.event("krb5.weak_encryption", to_server);
        }
        for c in &m.cname {
            tx.push_buf(Buf::Krb5Cname, to_server, c);
        }
        for s in &m.sname {
            tx.push_buf(Buf::Krb5Sname, to_server, s);
        }
        tx.finish(to_server);
        true
    }
}

impl AppLayer for Krb5State {
    fn proto(&self) -> Proto {
        Proto::Krb5
    }
    fn parse(&mut self, to_server: bool, data: &[u8], _env: &mut ParseEnv) -> bool {
        if !self.tcp {
            return self.message(to_server, data);
        }
        let d = usize::from(!to_server);
        let mut buf = std::mem::take(&mut self.pending[d]);
        buf.extend_from_slice(data);
        let mut o = 0;
        let mut changed = false;
        while buf.len() - o >= 4 {
            let len = u32::from_be_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]) as usize & 0x7fff_ffff;
            if len > MAX_RECORD {
                o = buf.len();
                break;
            }
            if buf.len() - o - 4 < len {
                break;
            }
            let rec = buf[o + 4..o + 4 + len].to_vec();
            changed |= self.message(to_server, &rec);
            o += 4 + len;
        }
        buf.drain(..o);
        self.pending[d] = buf;
        changed
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
}

/// Whether a UDP datagram (on the Kerberos port) looks like a KDC message.
pub fn looks_like_krb5(d: &[u8]) -> bool {
    tlv(d).is_some_and(|(t, _)| t.class == 0x40 && matches!(t.tag, 10..=15 | 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 128 {
            v.push(body.len() as u8);
        } else {
            v.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
        }
        v.extend_from_slice(body);
        v
    }

    fn principal_der(names: &[&[u8]]) -> Vec<u8> {
        let strs: Vec<u8> = names.iter().flat_map(|n| der(0x1b, n)).collect();
        der(0x30, &[der(0xa0, &der(0x02, &[1])), der(0xa1, &der(0x30, &strs))].concat())
    }

    #[test]
    fn as_req_names() {
        let body = der(0x30, &[der(0xa0, &der(0x03, &[0, 0, 0, 0, 0])), der(0xa1, &principal_der(&[b"user01"])), der(0xa2, &der(0x1b, b"REALM")), der(0xa3, &principal_der(&[b"krbtgt", b"REALM"]))].concat());
        let req = der(0x6a, &der(0x30, &[der(0xa1, &der(0x02, &[5])), der(0xa2, &der(0x02, &[10])), der(0xa4, &body)].concat()));
        let m = parse_msg(&req).unwrap();
        assert_eq!(m.msg_type, 10);
        assert_eq!(m.cname, vec![b"user01".to_vec()]);
        assert_eq!(m.sname, vec![b"krbtgt".to_vec(), b"REALM".to_vec()]);
        // Truncated: no panic, no message.
        for n in 0..req.len() {
            let _ = parse_msg(&req[..n]);
        }
    }
}
