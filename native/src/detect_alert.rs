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
    pub src: IpAddr,
    pub sp: u16,
    pub dst: IpAddr,
    pub dp: u16,
    pub proto: u8,
    pub ts_us: i64,
    pub flow_id: u64,
    pub app_proto: Option<&'static str>,
    pub http: Option<HttpMeta>,
    /// Index of the packet in the batch that raised it (u32::MAX for flow-end alerts).
    pub packet: u32,
}

/// Raise rule `r`'s alert for packet `p` (index `idx` in its batch) of flow `flow_id`.
pub fn emit(r: &Rule, p: &Packet, idx: u32, flow_id: u64, app_proto: Option<&'static str>, http: Option<HttpMeta>, out: &mut Vec<Alert>) {
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
        src: p.src,
        sp: p.sp,
        dst: p.dst,
        dp: p.dp,
        proto: p.proto,
        ts_us: p.ts_us,
        flow_id,
        app_proto,
        http,
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
