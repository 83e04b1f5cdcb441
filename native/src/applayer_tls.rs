//! TLS (SSLv3, TLS 1.0-1.3, and the SSLv2-format ClientHello older clients send): records of
//! both directions, handshake messages reassembled across records (bounded), the ClientHello
//! (SNI, JA3, version), the ServerHello (JA3S, negotiated version) and the Certificate message
//! (the chain, and the first certificate that decodes: subject, issuer, serial, SHA-1
//! fingerprint, validity), with certificates decoded by x509-parser. After a direction's
//! ChangeCipherSpec (or a TLS 1.3 ServerHello) its handshake is encrypted and only counted.
//! One transaction per flow, as in Suricata; anomalies are app-layer events.

use crate::applayer_tx::{AppLayer, AppTxs, Field, ParseEnv};
use crate::decode_packet::be16;
use crate::detect_parse::{Buf, Proto};
use md5::{Digest, Md5};
use sha1::Sha1;

/// A handshake message larger than this is not reassembled (certificate chains are a few KiB).
const MAX_HS: usize = 256 * 1024;
/// Record bytes held while waiting for the rest of a record.
const MAX_REC: usize = 64 * 1024;

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;

#[derive(Default, Debug)]
struct Dir {
    /// Record bytes not yet complete.
    rec: Vec<u8>,
    /// A handshake message being reassembled across records.
    hs: Vec<u8>,
    /// After ChangeCipherSpec: handshake records are encrypted.
    encrypted: bool,
    /// Parsing stopped (not TLS, or beyond what is worth parsing).
    stopped: bool,
    /// The first record was seen (an SSLv2-format hello may only come first).
    started: bool,
    /// A Certificate message was decoded (a second one, e.g. on renegotiation, is ignored).
    certs_done: bool,
    hello_done: bool,
}

#[derive(Debug)]
pub struct TlsState {
    dirs: [Dir; 2],
    txs: AppTxs,
    /// The client's server name (kept for the TLS fuzz target and EVE).
    pub sni: Option<Vec<u8>>,
    /// The server negotiated TLS 1.3: its handshake after the ServerHello is encrypted.
    tls13: bool,
}

impl Default for TlsState {
    fn default() -> Self {
        let mut txs = AppTxs::default();
        txs.begin();
        TlsState { dirs: Default::default(), txs, sni: None, tls13: false }
    }
}

/// GREASE values (RFC 8701) are left out of JA3.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn join(v: &[u16]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("-")
}

impl TlsState {
    /// Feed client bytes; true when the SNI became known (the fuzz target's entry point).
    pub fn parse_client(&mut self, data: &[u8]) -> bool {
        let had = self.sni.is_some();
        let mut expect = Vec::new();
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let mut env = ParseEnv { client: (ip, 0), server: (ip, 0), ts_us: 0, expect: &mut expect };
        self.parse(true, data, &mut env);
        !had && self.sni.is_some()
    }

    fn event(&mut self, e: &'static str, to_server: bool) {
        self.txs.current().event(e, to_server);
    }

    fn feed(&mut self, to_server: bool, data: &[u8]) -> bool {
        let d = usize::from(!to_server);
        if self.dirs[d].stopped {
            return false;
        }
        let gen_before = self.txs.txs.first().map(|t| t.gen).unwrap_or_default();
        let mut rec = std::mem::take(&mut self.dirs[d].rec);
        rec.extend_from_slice(data);
        let mut o = 0;
        let mut records = 0;
        while o < rec.len() && !self.dirs[d].stopped {
            let b = &rec[o..];
            // SSLv2-format record (a client's first message): 2-byte length with the top bit set.
            if !self.dirs[d].started && b[0] & 0x80 != 0 {
                if b.len() < 3 {
                    break;
                }
                let len = (((b[0] & 0x7f) as usize) << 8) | b[1] as usize;
                if b.len() < 2 + len {
                    break;
                }
                self.dirs[d].started = true;
                self.sslv2(to_server, &b[2..2 + len]);
                o += 2 + len;
                continue;
            }
            if b.len() < 5 {
                break;
            }
            let ct = b[0];
            let ver = u16::from_be_bytes([b[1], b[2]]);
            let len = u16::from_be_bytes([b[3], b[4]]) as usize;
            if !(CT_CCS..=CT_HEARTBEAT).contains(&ct) {
                self.event("tls.invalid_record_type", to_server);
                self.dirs[d].stopped = true;
                break;
            }
            if ver >> 8 != 3 {
                self.event("tls.invalid_record_version", to_server);
                self.dirs[d].stopped = true;
                break;
            }
            if b.len() < 5 + len {
                if len > MAX_REC {
                    self.dirs[d].stopped = true;
                }
                break;
            }
            self.dirs[d].started = true;
            records += 1;
            let body = &b[5..5 + len];
            match ct {
                CT_HANDSHAKE => {
                    if !self.dirs[d].encrypted {
                        let body = body.to_vec();
                        self.handshake_record(to_server, &body);
                    }
                }
                CT_CCS => self.dirs[d].encrypted = true,
                CT_APPDATA => {
                    // Application data: this direction's handshake is over.
                    self.dirs[d].encrypted = true;
                    self.txs.current().finish(to_server);
                }
                CT_ALERT | CT_HEARTBEAT => {}
                _ => {}
            }
            o += 5 + len;
        }
        if records > 255 {
            self.event("tls.too_many_records_in_packet", to_server);
        }
        rec.drain(..o.min(rec.len()));
        if rec.len() > MAX_REC {
            rec.clear();
            self.dirs[d].stopped = true;
        }
        self.dirs[d].rec = rec;
        self.txs.txs.first().map(|t| t.gen).unwrap_or_default() != gen_before
    }

    /// Handshake bytes of one record: reassemble messages and handle each complete one.
    fn handshake_record(&mut self, to_server: bool, body: &[u8]) {
        let d = usize::from(!to_server);
        let mut hs = std::mem::take(&mut self.dirs[d].hs);
        hs.extend_from_slice(body);
        let mut o = 0;
        while hs.len() - o >= 4 {
            let t = hs[o];
            let mlen = ((hs[o + 1] as usize) << 16) | ((hs[o + 2] as usize) << 8) | hs[o + 3] as usize;
            if !matches!(t, 0 | 1 | 2 | 4 | 8 | 11 | 12 | 13 | 14 | 15 | 16 | 20 | 21 | 22) {
                // Not a handshake message Suricata knows: skip what the record holds of it.
                self.event("tls.invalid_handshake_message", to_server);
                o = hs.len();
                break;
            }
            if mlen > MAX_HS {
                self.event("tls.handshake_invalid_length", to_server);
                self.dirs[d].stopped = true;
                o = hs.len();
                break;
            }
            if hs.len() - o - 4 < mlen {
                break;
            }
            let msg = hs[o + 4..o + 4 + mlen].to_vec();
            o += 4 + mlen;
            self.message(to_server, t, &msg);
            if self.dirs[d].encrypted {
                o = hs.len();
                break;
            }
        }
        hs.drain(..o);
        self.dirs[d].hs = hs;
    }

    fn message(&mut self, to_server: bool, t: u8, m: &[u8]) {
        match t {
            HS_CLIENT_HELLO if to_server => self.client_hello(m),
            HS_SERVER_HELLO if !to_server => self.server_hello(m),
            HS_CERTIFICATE => self.certificate(to_server, m),
            _ => {}
        }
    }

    fn client_hello(&mut self, m: &[u8]) {
        if self.dirs[0].hello_done {
            return;
        }
        self.dirs[0].hello_done = true;
        let Some(h) = parse_hello(m, true) else {
            self.event("tls.handshake_invalid_length", true);
            return;
        };
        let tx = self.txs.current();
        tx.set_field(Field::TlsVersion, true, h.version as u64);
        for e in &h.events {
            tx.event(e, true);
        }
        if let Some(sni) = &h.sni {
            tx.push_buf(Buf::TlsSni, true, sni);
            self.sni = Some(sni.clone());
        }
        let ciphers: Vec<u16> = h.ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
        let exts: Vec<u16> = h.exts.iter().copied().filter(|c| !is_grease(*c)).collect();
        let groups: Vec<u16> = h.groups.iter().copied().filter(|c| !is_grease(*c)).collect();
        let pf: Vec<u16> = h.point_formats.iter().map(|&x| x as u16).collect();
        let ja3 = format!("{},{},{},{},{}", h.version, join(&ciphers), join(&exts), join(&groups), join(&pf));
        let tx = self.txs.current();
        tx.push_buf(Buf::Ja3Hash, true, hex(&Md5::digest(ja3.as_bytes())).as_bytes());
        tx.push_buf(Buf::Ja3String, true, ja3.as_bytes());
    }

    fn server_hello(&mut self, m: &[u8]) {
        if self.dirs[1].hello_done {
            return;
        }
        self.dirs[1].hello_done = true;
        let Some(h) = parse_hello(m, false) else {
            self.event("tls.handshake_invalid_length", false);
            return;
        };
        let negotiated = h.selected_version.unwrap_or(h.version);
        let exts: Vec<u16> = h.exts.iter().copied().filter(|c| !is_grease(*c)).collect();
        let ja3s = format!("{},{},{}", h.version, h.ciphers.first().copied().unwrap_or(0), join(&exts));
        let tx = self.txs.current();
        tx.set_field(Field::TlsVersion, false, negotiated as u64);
        tx.push_buf(Buf::Ja3sHash, false, hex(&Md5::digest(ja3s.as_bytes())).as_bytes());
        tx.push_buf(Buf::Ja3sString, false, ja3s.as_bytes());
        if negotiated == 0x0304 || negotiated >> 8 == 0x7f {
            // TLS 1.3: everything after the ServerHello is encrypted.
            self.tls13 = true;
            self.dirs[1].encrypted = true;
        }
    }

    /// A Certificate message: the chain, and the fields of its first certificate that decodes.
    fn certificate(&mut self, to_server: bool, m: &[u8]) {
        let d = usize::from(!to_server);
        if self.dirs[d].certs_done || m.len() < 3 {
            return;
        }
        self.dirs[d].certs_done = true;
        let chain_len = ((m[0] as usize) << 16) | ((m[1] as usize) << 8) | m[2] as usize;
        let Some(chain) = m.get(3..3 + chain_len) else {
            self.event("tls.invalid_handshake_message", to_server);
            return;
        };
        let mut o = 0;
        let mut have_leaf = false;
        let mut failed = false;
        let mut event_sent = false;
        while o < chain.len() {
            if chain.len() - o < 3 {
                self.event("tls.invalid_certificate", to_server);
                failed = true;
                break;
            }
            let clen = ((chain[o] as usize) << 16) | ((chain[o + 1] as usize) << 8) | chain[o + 2] as usize;
            let Some(der) = chain.get(o + 3..o + 3 + clen) else {
                self.event("tls.invalid_certificate", to_server);
                failed = true;
                break;
            };
            o += 3 + clen;
            if !have_leaf {
                match leaf_fields(der) {
                    Ok(f) => {
                        have_leaf = true;
                        let tx = self.txs.current();
                        tx.push_buf(Buf::TlsCertSubject, to_server, f.subject.as_bytes());
                        tx.push_buf(Buf::TlsCertIssuer, to_server, f.issuer.as_bytes());
                        tx.push_buf(Buf::TlsCertSerial, to_server, f.serial.as_bytes());
                        tx.push_buf(Buf::TlsCertFingerprint, to_server, f.fingerprint.as_bytes());
                        tx.set_field(Field::CertNotBefore, to_server, f.not_before as u64);
                        tx.set_field(Field::CertNotAfter, to_server, f.not_after as u64);
                    }
                    Err(e) => {
                        if !event_sent {
                            self.event(e, to_server);
                            event_sent = true;
                        }
                        failed = true;
                        continue;
                    }
                }
            }
            self.txs.current().push_buf(Buf::TlsCerts, to_server, der);
        }
        if failed {
            self.event("tls.invalid_handshake_message", to_server);
        }
    }

    /// An SSLv2-format record: the ClientHello of a client that also speaks SSLv3/TLS.
    fn sslv2(&mut self, to_server: bool, r: &[u8]) {
        if to_server && r.first() == Some(&1) && r.len() >= 9 && !self.dirs[0].hello_done {
            self.dirs[0].hello_done = true;
            let ver = u16::from_be_bytes([r[1], r[2]]);
            self.txs.current().set_field(Field::TlsVersion, true, ver as u64);
        }
    }
}

impl AppLayer for TlsState {
    fn proto(&self) -> Proto {
        Proto::Tls
    }
    fn parse(&mut self, to_server: bool, data: &[u8], _env: &mut ParseEnv) -> bool {
        self.feed(to_server, data)
    }
    fn close(&mut self, to_server: bool) -> bool {
        self.txs.current().finish(to_server);
        false
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
}

#[derive(Default)]
struct Hello {
    version: u16,
    ciphers: Vec<u16>,
    exts: Vec<u16>,
    groups: Vec<u16>,
    point_formats: Vec<u8>,
    sni: Option<Vec<u8>>,
    /// ServerHello supported_versions: the negotiated version.
    selected_version: Option<u16>,
    events: Vec<&'static str>,
}

/// A ClientHello (`client`) or ServerHello body.
fn parse_hello(b: &[u8], client: bool) -> Option<Hello> {
    let mut h = Hello { version: be16(b, 0)?, ..Default::default() };
    let mut o = 2 + 32;
    let sid = *b.get(o)? as usize;
    o += 1 + sid;
    if client {
        let cl = be16(b, o)? as usize;
        o += 2;
        let cs = b.get(o..o + cl)?;
        h.ciphers = cs.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        o += cl;
        let cm = *b.get(o)? as usize;
        o += 1 + cm;
    } else {
        h.ciphers = vec![be16(b, o)?];
        o += 2 + 1;
    }
    if o > b.len() {
        return None;
    }
    if o == b.len() {
        return Some(h);
    }
    let el = be16(b, o)? as usize;
    o += 2;
    let end = o + el;
    if end > b.len() {
        return None;
    }
    let mut sni_seen = false;
    while o + 4 <= end {
        let et = be16(b, o)?;
        let l = be16(b, o + 2)? as usize;
        let ext = b.get(o + 4..o + 4 + l)?;
        h.exts.push(et);
        match et {
            0 if client => {
                if sni_seen {
                    h.events.push("tls.multiple_sni_extensions");
                }
                sni_seen = true;
                // server_name list: the first host_name entry.
                if ext.len() >= 2 {
                    let mut p = 2;
                    while p + 3 <= ext.len() {
                        let nt = ext[p];
                        let nl = be16(ext, p + 1)? as usize;
                        let Some(name) = ext.get(p + 3..p + 3 + nl) else {
                            h.events.push("tls.invalid_sni_length");
                            break;
                        };
                        if nt != 0 {
                            h.events.push("tls.invalid_sni_type");
                        } else if h.sni.is_none() {
                            h.sni = Some(name.to_vec());
                        }
                        p += 3 + nl;
                    }
                }
            }
            10 if client => {
                if ext.len() >= 2 {
                    h.groups = ext[2..].chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                }
            }
            11 if client => {
                if let Some(&n) = ext.first() {
                    h.point_formats = ext.get(1..1 + n as usize).unwrap_or(&ext[1..]).to_vec();
                }
            }
            43 if !client => h.selected_version = be16(ext, 0),
            _ => {}
        }
        o += 4 + l;
    }
    Some(h)
}

struct Leaf {
    subject: String,
    issuer: String,
    serial: String,
    fingerprint: String,
    not_before: i64,
    not_after: i64,
}

/// Decode a certificate into the fields rules and EVE use; Err: the app-layer event.
fn leaf_fields(der: &[u8]) -> Result<Leaf, &'static str> {
    use x509_parser::error::X509Error;
    let cert = match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => c,
        Err(x509_parser::nom::Err::Incomplete(_)) => return Err("tls.certificate_invalid_length"),
        Err(x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e)) => {
            return Err(match e {
                X509Error::InvalidVersion => "tls.certificate_invalid_version",
                X509Error::InvalidSerial => "tls.certificate_invalid_serial",
                X509Error::InvalidAlgorithmIdentifier => "tls.certificate_invalid_algorithmidentifier",
                X509Error::InvalidX509Name => "tls.certificate_invalid_x509name",
                X509Error::InvalidDate => "tls.certificate_invalid_date",
                X509Error::InvalidExtensions => "tls.certificate_invalid_extensions",
                X509Error::Der(x509_parser::der_parser::error::BerError::Incomplete(_)) => "tls.certificate_invalid_length",
                X509Error::Der(_) => "tls.certificate_invalid_der",
                _ => "tls.invalid_certificate",
            })
        }
    };
    let serial = cert.tbs_certificate.raw_serial().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let fp = Sha1::digest(der).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    Ok(Leaf {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial,
        fingerprint: fp,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }

    #[test]
    fn client_hello_split_across_records_gives_sni_and_ja3() {
        // ClientHello: version 0x0303, 1 cipher, SNI "a.example", groups, point formats.
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 4, 0x0a, 0x0a, 0xc0, 0x2f]);
        body.extend_from_slice(&[1, 0]);
        let name = b"a.example";
        let mut exts = Vec::new();
        let sn_len = 5 + name.len();
        exts.extend_from_slice(&[0, 0]);
        exts.extend_from_slice(&(sn_len as u16).to_be_bytes());
        exts.extend_from_slice(&((3 + name.len()) as u16).to_be_bytes());
        exts.push(0);
        exts.extend_from_slice(&(name.len() as u16).to_be_bytes());
        exts.extend_from_slice(name);
        exts.extend_from_slice(&[0, 10, 0, 4, 0, 2, 0, 23]);
        exts.extend_from_slice(&[0, 11, 0, 2, 1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let (a, b) = hs.split_at(20);
        let mut wire = Vec::new();
        for part in [a, b] {
            wire.extend_from_slice(&[22, 3, 1]);
            wire.extend_from_slice(&(part.len() as u16).to_be_bytes());
            wire.extend_from_slice(part);
        }
        let mut t = TlsState::default();
        for c in wire.chunks(7) {
            t.parse_client(c);
        }
        assert_eq!(t.sni.as_deref(), Some(&name[..]));
        let tx = &t.txs.txs[0];
        let ja3 = tx.bufs.iter().find(|(b, _, _)| *b == Buf::Ja3String).map(|(_, _, v)| String::from_utf8_lossy(v).into_owned());
        assert_eq!(ja3.as_deref(), Some("771,49199,0-10-11,23,0"));
    }
}
