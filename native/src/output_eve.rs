//! EVE-style JSON for alerts (the subset Suricata's eve.json alert records carry).

use crate::community_id::community_id;
use crate::detect_alert::{Alert, AppMeta, TlsMeta};
use std::fmt::Write;

fn esc(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01, proleptic Gregorian.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub fn timestamp(ts_us: i64) -> String {
    let secs = ts_us.div_euclid(1_000_000);
    let us = ts_us.rem_euclid(1_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}+0000", sod / 3600, (sod / 60) % 60, sod % 60)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "IPv6-ICMP".into(),
        n => n.to_string(),
    }
}

pub fn alert_json(a: &Alert) -> String {
    let mut s = String::with_capacity(384);
    s.push_str("{\"timestamp\":\"");
    s.push_str(&timestamp(a.ts_us));
    let _ = write!(s, "\",\"flow_id\":{},\"event_type\":\"alert\",\"src_ip\":\"{}\"", a.flow_id, a.src);
    // as Suricata: ICMP has a type and code, not ports
    let (cp_src, cp_dst) = match a.icmp {
        Some((t, c)) => {
            let _ = write!(s, ",\"dest_ip\":\"{}\",\"proto\":\"{}\",\"icmp_type\":{t},\"icmp_code\":{c}", a.dst, proto_name(a.proto));
            (t as u16, c as u16)
        }
        None => {
            let _ = write!(s, ",\"src_port\":{},\"dest_ip\":\"{}\",\"dest_port\":{},\"proto\":\"{}\"", a.sp, a.dst, a.dp, proto_name(a.proto));
            (a.sp, a.dp)
        }
    };
    let _ = write!(s, ",\"community_id\":\"{}\"", community_id(0, &a.src, &a.dst, a.proto, cp_src, cp_dst));
    if let Some(ap) = a.app_proto {
        let _ = write!(s, ",\"app_proto\":\"{ap}\"");
    }
    let action = if a.action == "alert" || a.action == "pass" { "allowed" } else { "blocked" };
    let _ = write!(s, ",\"alert\":{{\"action\":\"{action}\",\"gid\":{},\"signature_id\":{},\"rev\":{},\"signature\":", a.gid, a.sid, a.rev);
    esc(&a.msg, &mut s);
    if let Some(c) = a.category {
        s.push_str(",\"category\":");
        esc(c, &mut s);
    }
    let _ = write!(s, ",\"severity\":{}", a.severity);
    if !a.metadata.is_empty() {
        s.push_str(",\"metadata\":{");
        for (i, (k, values)) in a.metadata.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            esc(k, &mut s);
            s.push_str(":[");
            for (j, v) in values.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                esc(v, &mut s);
            }
            s.push(']');
        }
        s.push('}');
    }
    s.push('}');
    if let Some(AppMeta::Tls(t)) = &a.meta {
        tls_json(t, &mut s);
    }
    if let Some(AppMeta::Http(h)) = &a.meta {
        s.push_str(",\"http\":{");
        let mut first = true;
        let mut field = |s: &mut String, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                if !first {
                    s.push(',');
                }
                first = false;
                let _ = write!(s, "\"{k}\":");
                esc(v, s);
            }
        };
        field(&mut s, "hostname", &h.hostname);
        field(&mut s, "url", &h.url);
        field(&mut s, "http_user_agent", &h.user_agent);
        field(&mut s, "http_method", &h.method);
        field(&mut s, "protocol", &h.protocol);
        if let Some(st) = h.status {
            if !first {
                s.push(',');
            }
            let _ = write!(s, "\"status\":{st}");
        }
        s.push('}');
    }
    s.push('}');
    s
}

/// Suricata's time format for certificate validity: UTC, no zone.
fn cert_time(secs: i64) -> String {
    let (y, mo, d) = civil(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, (sod / 60) % 60, sod % 60)
}

/// The EVE `tls` object: the fields that are known.
fn tls_json(t: &TlsMeta, s: &mut String) {
    s.push_str(",\"tls\":{");
    let mut first = true;
    let mut sep = |s: &mut String| {
        if !first {
            s.push(',');
        }
        first = false;
    };
    for (k, v) in [("subject", &t.subject), ("issuerdn", &t.issuerdn), ("serial", &t.serial), ("fingerprint", &t.fingerprint), ("sni", &t.sni), ("version", &t.version)] {
        if let Some(v) = v {
            sep(s);
            let _ = write!(s, "\"{k}\":");
            esc(v, s);
        }
    }
    for (k, v) in [("notbefore", t.notbefore), ("notafter", t.notafter)] {
        if let Some(v) = v {
            sep(s);
            let _ = write!(s, "\"{k}\":\"{}\"", cert_time(v));
        }
    }
    for (k, v) in [("ja3", &t.ja3), ("ja3s", &t.ja3s)] {
        if let Some((h, st)) = v {
            sep(s);
            let _ = write!(s, "\"{k}\":{{\"hash\":");
            esc(h, s);
            s.push_str(",\"string\":");
            esc(st, s);
            s.push('}');
        }
    }
    s.push('}');
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00.000000+0000");
        assert_eq!(super::timestamp(1_500_000_000_123_456), "2017-07-14T02:40:00.123456+0000");
        assert_eq!(super::days_from_civil(2017, 7, 14), 1_500_000_000 / 86400);
        assert_eq!(super::days_from_civil(1970, 1, 1), 0);
        assert_eq!(super::cert_time(1_500_000_000), "2017-07-14T02:40:00");
    }
}
