//! Alert emission: the record a matching rule raises (what output_eve writes), with the HTTP
//! transaction's fields for app-layer matches. A `noalert` rule (flowbits setters) matches
//! silently.

use crate::applayer_http::HttpTx;
use crate::decode_packet::Packet;
use crate::detect_parse::Rule;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct HttpMeta {
    pub hostname: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub protocol: Option<String>,
    pub status: Option<u32>,
    pub user_agent: Option<String>,
}

/// The TLS fields of an alert on a TLS flow (Suricata's EVE `tls` object).
#[derive(Debug, Clone, Default)]
pub struct TlsMeta {
    pub subject: Option<String>,
    pub issuerdn: Option<String>,
    pub serial: Option<String>,
    pub fingerprint: Option<String>,
    pub sni: Option<String>,
    pub version: Option<String>,
    pub notbefore: Option<i64>,
    pub notafter: Option<i64>,
    pub ja3: Option<(String, String)>,
    pub ja3s: Option<(String, String)>,
}

/// Application-layer fields an alert carries.
#[derive(Debug, Clone)]
pub enum AppMeta {
    Http(HttpMeta),
    Tls(Box<TlsMeta>),
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub sid: u32,
    pub gid: u32,
    pub rev: u32,
    pub action: String,
    pub msg: String,
    /// 1 (most severe) .. 4: the rule's priority.
    pub severity: u32,
    pub category: Option<&'static str>,
    /// The rule's metadata (shared with the rule).
    pub metadata: std::sync::Arc<Vec<(String, Vec<String>)>>,
    /// ICMP type and code (the packet's), for ICMP and ICMPv6.
    pub icmp: Option<(u8, u8)>,
    pub src: IpAddr,
    pub sp: u16,
    pub dst: IpAddr,
    pub dp: u16,
    pub proto: u8,
    pub ts_us: i64,
    pub flow_id: u64,
    pub app_proto: Option<&'static str>,
    pub meta: Option<AppMeta>,
    /// Index of the packet in the batch that raised it (u32::MAX for flow-end alerts).
    pub packet: u32,
}

/// Raise rule `r`'s alert for packet `p` (index `idx` in its batch) of flow `flow_id`.
pub fn emit(r: &Rule, p: &Packet, idx: u32, flow_id: u64, app_proto: Option<&'static str>, meta: Option<AppMeta>, out: &mut Vec<Alert>) {
    if r.noalert {
        return;
    }
    out.push(Alert {
        sid: r.sid,
        gid: r.gid,
        rev: r.rev,
        action: r.action.clone(),
        msg: r.msg.clone(),
        severity: r.priority,
        category: r.category,
        metadata: r.metadata.clone(),
        icmp: p.icmp.as_ref().map(|i| (i.itype, i.icode)),
        src: p.src,
        sp: p.sp,
        dst: p.dst,
        dp: p.dp,
        proto: p.proto,
        ts_us: p.ts_us,
        flow_id,
        app_proto,
        meta,
        packet: idx,
    });
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The alert's http fields, from the transaction.
pub fn http_meta(tx: &HttpTx) -> HttpMeta {
    HttpMeta {
        hostname: tx.req_header("host").map(|h| lossy(h.split(|&c| c == b':').next().unwrap_or(h))),
        url: if tx.uri_raw.is_empty() { None } else { Some(lossy(&tx.uri_raw)) },
        method: if tx.method.is_empty() { None } else { Some(lossy(&tx.method)) },
        protocol: if tx.req_protocol.is_empty() { None } else { Some(lossy(&tx.req_protocol)) },
        status: std::str::from_utf8(&tx.status).ok().and_then(|s| s.trim().parse().ok()),
        user_agent: tx.req_header("user-agent").map(lossy),
    }
}

/// Suricata's name of a TLS version (SSLVersionToString).
fn tls_version_name(v: u64) -> String {
    match v {
        0x0200 => "SSLv2".into(),
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v if v >> 8 == 0x7f => format!("TLS 1.3 draft-{}", v & 0xff),
        _ => "UNDETERMINED".into(),
    }
}

/// The alert's tls fields, from the flow's TLS transaction: the server's certificate and
/// version (the client's when the server sent none), the SNI, JA3 and JA3S.
pub fn tls_meta(tx: &crate::applayer_tx::AppTx) -> TlsMeta {
    use crate::applayer_tx::Field;
    use crate::detect_parse::Buf;
    let buf = |b: Buf, side: Option<bool>| tx.bufs.iter().filter(|(x, s, _)| *x == b && side.is_none_or(|d| d == *s)).map(|(_, _, v)| lossy(v)).next();
    let cert_side = if tx.bufs.iter().any(|(b, s, _)| *b == Buf::TlsCertSubject && !*s) { Some(false) } else { None };
    let field = |f: Field, side: Option<bool>| tx.fields.iter().filter(|(x, s, _)| *x == f && side.is_none_or(|d| d == *s)).map(|(_, _, v)| *v).next();
    let version = field(Field::TlsVersion, Some(false)).or_else(|| field(Field::TlsVersion, Some(true)));
    TlsMeta {
        subject: buf(Buf::TlsCertSubject, cert_side),
        issuerdn: buf(Buf::TlsCertIssuer, cert_side),
        serial: buf(Buf::TlsCertSerial, cert_side),
        fingerprint: buf(Buf::TlsCertFingerprint, cert_side),
        sni: buf(Buf::TlsSni, None),
        version: version.map(tls_version_name),
        notbefore: field(Field::CertNotBefore, cert_side).map(|v| v as i64),
        notafter: field(Field::CertNotAfter, cert_side).map(|v| v as i64),
        ja3: buf(Buf::Ja3Hash, None).zip(buf(Buf::Ja3String, None)),
        ja3s: buf(Buf::Ja3sHash, None).zip(buf(Buf::Ja3sString, None)),
    }
}
