//! TLS (SSLv3, TLS 1.0-1.3, and the SSLv2-format ClientHello older clients send): records of
//! both directions, handshake messages reassembled across records (bounded), the ClientHello
//! (SNI, JA3, version), the ServerHello (JA3S, negotiated version) and the Certificate message
//! (the chain, and the first certificate that decodes: subject, issuer, serial, SHA-1
//! fingerprint, validity), with certificates decoded by x509-parser. After a direction's
//! ChangeCipherSpec (or a TLS 1.3 ServerHello) its handshake is encrypted and only counted.
//! One transaction per flow, as in Suricata; anomalies are app-layer events.

use crate::applayer_tx::{hex, hex_with, AppLayer, AppTxs, Field, ParseEnv, HEX_LOWER, HEX_UPPER};
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
    /// Bytes still to pass over of a record whose body is not read (see `feed`), and its type.
    skip: usize,
    skip_ct: u8,
}

#[derive(Debug)]
pub struct TlsState {
    dirs: [Dir; 2],
    txs: AppTxs,
    /// The client's server name (kept for the TLS fuzz target and EVE).
    pub sni: Option<Vec<u8>>,
    /// The server negotiated TLS 1.3: its handshake after the ServerHello is encrypted.
    tls13: bool,
    /// An application-data record passed: the flow's payload is encrypted from here on.
    app_data: bool,
    /// The server's hello was seen.
    server_hello: bool,
    /// The client offered TLS 1.3 early data (0-RTT): application data before the server's
    /// hello does not end the handshake then (as in Suricata).
    early_data: bool,
}

impl Default for TlsState {
    fn default() -> Self {
        let mut txs = AppTxs::default();
        txs.begin();
        TlsState { dirs: Default::default(), txs, sni: None, tls13: false, app_data: false, server_hello: false, early_data: false }
    }
}

/// GREASE values (RFC 8701) are left out of JA3.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// JA3's decimal lists: values joined by '-'.
fn join(v: &[u16]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(v.len() * 6);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        let _ = write!(s, "{x}");
    }
    s
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

    /// An application-data record: the handshake is over, unless it is 0-RTT early data
    /// ahead of the server's hello.
    fn note_app_data(&mut self) {
        self.app_data |= self.server_hello || !self.early_data;
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
        let mut data = data;
        let mut records = 0;
        // The rest of a record whose body nothing reads, passed over as it arrives.
        if self.dirs[d].skip > 0 {
            let n = self.dirs[d].skip.min(data.len());
            self.dirs[d].skip -= n;
            data = &data[n..];
            if self.dirs[d].skip > 0 {
                return false;
            }
            records += 1;
            let ct = std::mem::take(&mut self.dirs[d].skip_ct);
            self.record_done(to_server, ct, &[]);
        }
        // Bytes are copied only when a record is still incomplete: the rest of one held
        // from before is appended to it, and an incomplete tail is kept for the next call.
        let mut rec = std::mem::take(&mut self.dirs[d].rec);
        let held = !rec.is_empty();
        if held {
            rec.extend_from_slice(data);
        }
        let buf: &[u8] = if held { &rec } else { data };
        let mut o = 0;
        while o < buf.len() && !self.dirs[d].stopped {
            let b = &buf[o..];
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
                } else if (ct != CT_HANDSHAKE || self.dirs[d].encrypted) && 5 + len <= MAX_REC {
                    // Application data and other bodies nothing reads (encrypted handshake,
                    // alerts): the record completes when its last byte passes, unbuffered.
                    self.dirs[d].skip = 5 + len - b.len();
                    self.dirs[d].skip_ct = ct;
                    o = buf.len();
                    if ct == CT_APPDATA {
                        // the record's header says what follows: encrypted data (Suricata
                        // decides on the header too)
                        self.note_app_data();
                    }
                }
                break;
            }
            records += 1;
            self.record_done(to_server, ct, &b[5..5 + len]);
            o += 5 + len;
        }
        if records > 255 {
            self.event("tls.too_many_records_in_packet", to_server);
        }
        let o = o.min(buf.len());
        if buf.len() - o > MAX_REC {
            rec.clear();
            self.dirs[d].stopped = true;
        } else if held {
            rec.drain(..o);
        } else {
            rec.extend_from_slice(&data[o..]);
        }
        self.dirs[d].rec = rec;
        self.txs.txs.first().map(|t| t.gen).unwrap_or_default() != gen_before
    }

    /// A complete record of type `ct` (`body` is empty when it was passed over unread).
    fn record_done(&mut self, to_server: bool, ct: u8, body: &[u8]) {
        let d = usize::from(!to_server);
        self.dirs[d].started = true;
        match ct {
            CT_HANDSHAKE if !self.dirs[d].encrypted => self.handshake_record(to_server, body),
            CT_CCS => self.dirs[d].encrypted = true,
            CT_APPDATA => {
                // Application data: this direction's handshake is over.
                self.dirs[d].encrypted = true;
                self.txs.current().finish(to_server);
                self.note_app_data();
            }
            CT_ALERT | CT_HEARTBEAT => {}
            _ => {}
        }
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
        // early_data (RFC 8446, extension 42)
        self.early_data = h.exts.contains(&42);
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
        self.server_hello = true;
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
    fn payload_encrypted(&self) -> bool {
        self.app_data
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
    let serial = hex_with(cert.tbs_certificate.raw_serial(), HEX_UPPER, Some(':'));
    let fp = hex_with(&Sha1::digest(der), HEX_LOWER, Some(':'));
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
    fn hex_and_decimal_lists_read_as_their_format_spellings() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let fmt = |f: &dyn Fn(&u8) -> String, sep: &str| bytes.iter().map(f).collect::<Vec<_>>().join(sep);
        assert_eq!(hex(&bytes), fmt(&|b| format!("{b:02x}"), ""));
        assert_eq!(hex_with(&bytes, HEX_UPPER, Some(':')), fmt(&|b| format!("{b:02X}"), ":"));
        assert_eq!(hex_with(&bytes, HEX_LOWER, Some(':')), fmt(&|b| format!("{b:02x}"), ":"));
        assert_eq!(hex_with(&[], HEX_LOWER, Some(':')), "");
        assert_eq!(join(&[]), "");
        assert_eq!(join(&[0, 7, 65535, 4865]), "0-7-65535-4865");
    }

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

    fn record(ct: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ct, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn records_read_the_same_in_any_chunking_and_unread_bodies_are_not_held() {
        // A ClientHello, ChangeCipherSpec, application data of several sizes (one spanning
        // many packets), an encrypted handshake record and an alert.
        let mut hello = vec![3, 3];
        hello.extend_from_slice(&[7; 32]);
        hello.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]);
        let mut hs = vec![1, 0, 0, hello.len() as u8];
        hs.extend_from_slice(&hello);
        let mut wire = record(22, &hs);
        wire.extend(record(20, &[1]));
        for n in [0usize, 1, 300, 5000, 16384] {
            wire.extend(record(23, &vec![0xab; n]));
        }
        wire.extend(record(22, &[0x55; 40]));
        wire.extend(record(21, &[1, 0]));
        let whole = {
            let mut t = TlsState::default();
            t.parse_client(&wire);
            format!("{t:?}")
        };
        assert!(whole.contains("encrypted: true") && whole.contains("done: [true, false]"), "{whole}");
        for size in [1, 2, 5, 7, 100, 1400, 4096] {
            let mut t = TlsState::default();
            for c in wire.chunks(size) {
                t.parse_client(c);
                assert!(t.dirs[0].rec.len() < 5 + hs.len(), "chunks of {size}: {} bytes held", t.dirs[0].rec.len());
            }
            assert_eq!(format!("{t:?}"), whole, "chunks of {size}");
        }
        // Part of a 5000-byte application data record: passed over, nothing held.
        let mut t = TlsState::default();
        t.parse_client(&wire[..hs.len() + 5 + 6]);
        let at = wire.windows(5).position(|w| w == [23, 3, 3, 0x13, 0x88]).unwrap();
        t.parse_client(&wire[hs.len() + 5 + 6..at + 100]);
        assert!(t.dirs[0].rec.is_empty());
        assert_eq!(t.dirs[0].skip, 5005 - 100);
        // Records completed in one call are still counted there, passed over or not.
        for tail in [0usize, 3] {
            let mut t = TlsState::default();
            let mut many = wire[..hs.len() + 5].to_vec();
            for _ in 0..300 {
                many.extend(record(23, &[]));
            }
            many.extend(&record(23, &[9; 10])[..5 + tail]);
            t.parse_client(&many[..hs.len() + 5]);
            t.parse_client(&many[hs.len() + 5..]);
            assert_eq!(t.txs.txs[0].events, vec!["tls.too_many_records_in_packet"]);
        }
    }
}
