//! The rule keyword registry, as Suricata's sigmatch table: each keyword is one entry, its
//! name, flags the parser acts on, and `setup`, which parses the keyword's value once into the
//! rule being built. Nothing here runs per packet: the match side of each keyword is in
//! detect_header (packet keywords, flow), detect_engine (content, pcre, isdataat, bsize),
//! detect_flowbits and detect_threshold.

use crate::detect_flowbits::{self, Interner};
use crate::detect_parse::{Buf, Cmp, Content, Item, Pcre, PktMatch, Rule, Xf};
use crate::detect_threshold;
use std::collections::HashMap;

/// Parse a keyword's value (None for `name;`) into the rule being built.
pub type Setup = fn(&mut RuleDraft, &Keyword, Option<&str>) -> Result<(), String>;

pub struct Keyword {
    /// Lower case; rule text is matched case-insensitively.
    pub name: &'static str,
    pub flags: u8,
    pub setup: Setup,
}

/// Takes no value: the parser rejects `name:value`.
pub const NOOPT: u8 = 1;
/// A buffer name that is a content modifier, as in Suricata (`content:"x"; http_uri;`): it
/// moves the preceding content into its buffer, where a sticky buffer name would select the
/// buffer for the keywords after it.
pub const CONTENT_MODIFIER: u8 = 2;

/// The rule as its options are read: what a keyword's setup changes.
pub struct RuleDraft<'a> {
    pub r: Rule,
    /// Flowbit names → ids, shared by the rule set.
    pub bits: &'a mut Interner,
    pub have_sid: bool,
    /// `priority:` was given: a classtype's priority does not override it.
    pub explicit_priority: bool,
    /// The sticky buffer selected (the payload until one is).
    pub cur: Buf,
    /// Where the last content, pcre or isdataat went: what content modifiers apply to.
    pub last_item_buf: Option<Buf>,
}

impl RuleDraft<'_> {
    /// The content a modifier (nocase, depth, ...) applies to.
    fn preceding_content(&mut self, k: &Keyword) -> Result<&mut Content, String> {
        let lb = self.last_item_buf.ok_or_else(|| format!("{} has no preceding content", k.name))?;
        last_content(&mut self.r, lb).ok_or_else(|| format!("{} has no preceding content", k.name))
    }
}

/// The registry by name; built once per rule set load.
pub struct Keywords {
    by_name: HashMap<&'static str, &'static Keyword>,
}

impl Keywords {
    pub fn new() -> Keywords {
        Keywords { by_name: KEYWORDS.iter().map(|k| (k.name, k)).collect() }
    }
    pub fn get(&self, name: &str) -> Option<&'static Keyword> {
        self.by_name.get(name).copied()
    }
}

impl Default for Keywords {
    fn default() -> Keywords {
        Keywords::new()
    }
}

const fn kw(name: &'static str, flags: u8, setup: Setup) -> Keyword {
    Keyword { name, flags, setup }
}

/// Every keyword a rule may use. One not listed fails the rule ("unsupported keyword").
static KEYWORDS: &[Keyword] = &[
    // Identity and metadata.
    kw("sid", 0, |d, _, v| {
        d.r.sid = v.unwrap_or("").trim().parse().map_err(|_| "invalid sid")?;
        d.have_sid = true;
        Ok(())
    }),
    kw("rev", 0, |d, _, v| {
        d.r.rev = v.unwrap_or("").trim().parse().map_err(|_| "invalid rev")?;
        Ok(())
    }),
    kw("gid", 0, |d, _, v| {
        d.r.gid = v.unwrap_or("").trim().parse().map_err(|_| "invalid gid")?;
        Ok(())
    }),
    kw("priority", 0, |d, _, v| {
        d.r.priority = v.unwrap_or("").trim().parse().map_err(|_| "invalid priority")?;
        d.explicit_priority = true;
        Ok(())
    }),
    // An unknown classtype is kept as no category: a vendor's own classes must not cost the rule.
    kw("classtype", 0, |d, _, v| {
        if let Some((desc, prio)) = crate::detect_classtype::classtype(v.unwrap_or("").trim()) {
            d.r.category = Some(desc);
            if !d.explicit_priority {
                d.r.priority = prio;
            }
        }
        Ok(())
    }),
    kw("msg", 0, |d, _, v| {
        d.r.msg = unquote(v.unwrap_or("")).replace("\\;", ";").replace("\\\"", "\"").replace("\\\\", "\\");
        Ok(())
    }),
    kw("noalert", 0, |d, _, _| {
        d.r.noalert = true;
        Ok(())
    }),
    // Accepted, without effect on matching (metadata, or honoured implicitly).
    kw("reference", 0, no_effect),
    kw("metadata", 0, no_effect),
    kw("target", 0, no_effect),
    kw("prefilter", 0, no_effect),
    kw("rawbytes", 0, no_effect),
    kw("tag", 0, no_effect),
    // Payload matches, into the selected buffer.
    kw("content", 0, |d, _, v| content(d, v, d.cur)),
    kw("uricontent", 0, |d, _, v| content(d, v, Buf::HttpUri)),
    kw("pcre", 0, |d, _, v| {
        let (p, target) = parse_pcre(v.ok_or("pcre needs a value")?, d.cur)?;
        push_item(&mut d.r, target, Item::Pcre(p));
        d.last_item_buf = Some(target);
        Ok(())
    }),
    kw("isdataat", 0, isdataat),
    kw("bsize", 0, |d, _, v| {
        let c = Cmp::parse(v.ok_or("bsize needs a value")?)?;
        push_item(&mut d.r, d.cur, Item::Bsize(c));
        Ok(())
    }),
    // Content modifiers: change the preceding content (found first: a modifier without one
    // fails for that, whatever its value).
    kw("nocase", 0, |d, k, _| {
        d.preceding_content(k)?.nocase = true;
        Ok(())
    }),
    kw("depth", 0, |d, k, v| {
        let c = d.preceding_content(k)?;
        c.depth = Some(parse_int(v, k.name)?);
        Ok(())
    }),
    kw("offset", 0, |d, k, v| {
        let c = d.preceding_content(k)?;
        c.offset = Some(parse_int(v, k.name)?);
        Ok(())
    }),
    kw("distance", 0, |d, k, v| {
        let c = d.preceding_content(k)?;
        c.distance = Some(parse_int(v, k.name)?);
        Ok(())
    }),
    kw("within", 0, |d, k, v| {
        let c = d.preceding_content(k)?;
        c.within = Some(parse_int(v, k.name)?);
        Ok(())
    }),
    kw("startswith", 0, |d, k, _| {
        d.preceding_content(k)?.startswith = true;
        Ok(())
    }),
    kw("endswith", 0, |d, k, _| {
        d.preceding_content(k)?.endswith = true;
        Ok(())
    }),
    // fast_pattern:only and fast_pattern:<offset>,<length> (a slice) use the whole pattern:
    // still correct, only slower.
    kw("fast_pattern", 0, |d, k, _| {
        d.preceding_content(k)?.fast_pattern = true;
        Ok(())
    }),
    // Buffers: sticky buffer names select a buffer for the keywords after them; the legacy
    // content modifier names move the preceding content instead.
    kw("pkt_data", NOOPT, |d, k, _| buffer(d, k, Buf::Payload)),
    kw("http.uri", NOOPT, |d, k, _| buffer(d, k, Buf::HttpUri)),
    kw("http_uri", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpUri)),
    kw("http.uri.normalized", NOOPT, |d, k, _| buffer(d, k, Buf::HttpUri)),
    kw("http.uri.raw", NOOPT, |d, k, _| buffer(d, k, Buf::HttpRawUri)),
    kw("http_raw_uri", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpRawUri)),
    kw("http.method", NOOPT, |d, k, _| buffer(d, k, Buf::HttpMethod)),
    kw("http_method", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpMethod)),
    kw("http.protocol", NOOPT, |d, k, _| buffer(d, k, Buf::HttpProtocol)),
    kw("http_protocol", NOOPT, |d, k, _| buffer(d, k, Buf::HttpProtocol)),
    kw("http.request_line", NOOPT, |d, k, _| buffer(d, k, Buf::HttpRequestLine)),
    kw("http_request_line", NOOPT, |d, k, _| buffer(d, k, Buf::HttpRequestLine)),
    kw("http.response_line", NOOPT, |d, k, _| buffer(d, k, Buf::HttpResponseLine)),
    kw("http_response_line", NOOPT, |d, k, _| buffer(d, k, Buf::HttpResponseLine)),
    kw("http.stat_code", NOOPT, |d, k, _| buffer(d, k, Buf::HttpStatCode)),
    kw("http_stat_code", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpStatCode)),
    kw("http.stat_msg", NOOPT, |d, k, _| buffer(d, k, Buf::HttpStatMsg)),
    kw("http_stat_msg", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpStatMsg)),
    kw("http.header", NOOPT, |d, k, _| buffer(d, k, Buf::HttpHeader)),
    kw("http_header", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpHeader)),
    kw("http.header.raw", NOOPT, |d, k, _| buffer(d, k, Buf::HttpRawHeader)),
    kw("http_raw_header", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpRawHeader)),
    kw("http.cookie", NOOPT, |d, k, _| buffer(d, k, Buf::HttpCookie)),
    kw("http_cookie", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpCookie)),
    kw("http.user_agent", NOOPT, |d, k, _| buffer(d, k, Buf::HttpUserAgent)),
    kw("http_user_agent", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpUserAgent)),
    kw("http.host", NOOPT, |d, k, _| buffer(d, k, Buf::HttpHost)),
    kw("http_host", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpHost)),
    kw("http.host.raw", NOOPT, |d, k, _| buffer(d, k, Buf::HttpRawHost)),
    kw("http_raw_host", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpRawHost)),
    kw("http.header_names", NOOPT, |d, k, _| buffer(d, k, Buf::HttpHeaderNames)),
    kw("http_header_names", NOOPT, |d, k, _| buffer(d, k, Buf::HttpHeaderNames)),
    kw("http.start", NOOPT, |d, k, _| buffer(d, k, Buf::HttpStart)),
    kw("http_start", NOOPT, |d, k, _| buffer(d, k, Buf::HttpStart)),
    kw("http.request_body", NOOPT, |d, k, _| buffer(d, k, Buf::HttpClientBody)),
    kw("http_client_body", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::HttpClientBody)),
    kw("http.response_body", NOOPT, |d, k, _| buffer(d, k, Buf::FileData)),
    kw("http_server_body", NOOPT | CONTENT_MODIFIER, |d, k, _| buffer(d, k, Buf::FileData)),
    kw("file_data", NOOPT, |d, k, _| buffer(d, k, Buf::FileData)),
    kw("file.data", NOOPT, |d, k, _| buffer(d, k, Buf::FileData)),
    kw("http.request_header", NOOPT, |d, k, _| buffer(d, k, Buf::HttpRequestHeader)),
    kw("http.response_header", NOOPT, |d, k, _| buffer(d, k, Buf::HttpResponseHeader)),
    kw("http.accept", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("accept"))),
    kw("http_accept", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("accept"))),
    kw("http.accept_lang", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("accept-language"))),
    kw("http_accept_lang", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("accept-language"))),
    kw("http.accept_enc", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("accept-encoding"))),
    kw("http_accept_enc", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("accept-encoding"))),
    kw("http.referer", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("referer"))),
    kw("http_referer", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("referer"))),
    kw("http.connection", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("connection"))),
    kw("http_connection", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("connection"))),
    kw("http.content_type", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("content-type"))),
    kw("http_content_type", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("content-type"))),
    kw("http.content_len", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("content-length"))),
    kw("http_content_len", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("content-length"))),
    kw("http.server", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("server"))),
    kw("http_server", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("server"))),
    kw("http.location", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("location"))),
    kw("http_location", NOOPT, |d, k, _| buffer(d, k, Buf::HttpNamed("location"))),
    kw("dns.query", NOOPT, |d, k, _| buffer(d, k, Buf::DnsQuery)),
    kw("dns_query", NOOPT, |d, k, _| buffer(d, k, Buf::DnsQuery)),
    kw("tls.sni", NOOPT, |d, k, _| buffer(d, k, Buf::TlsSni)),
    kw("tls_sni", NOOPT, |d, k, _| buffer(d, k, Buf::TlsSni)),
    // Transforms of the selected buffer, before its matches.
    kw("dotprefix", 0, |d, k, _| transform(d, k, Xf::DotPrefix)),
    kw("to_lowercase", 0, |d, k, _| transform(d, k, Xf::ToLower)),
    kw("to_uppercase", 0, |d, k, _| transform(d, k, Xf::ToUpper)),
    kw("strip_whitespace", 0, |d, k, _| transform(d, k, Xf::StripWhitespace)),
    kw("compress_whitespace", 0, |d, k, _| transform(d, k, Xf::CompressWhitespace)),
    // Packet keywords.
    kw("dsize", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::Dsize(Cmp::parse(v.ok_or("dsize needs a value")?)?));
        Ok(())
    }),
    kw("urilen", 0, urilen),
    kw("ttl", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::Ttl(Cmp::parse(v.ok_or("ttl needs a value")?)?));
        Ok(())
    }),
    kw("itype", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::Itype(Cmp::parse(v.ok_or("itype needs a value")?)?));
        Ok(())
    }),
    kw("icode", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::Icode(Cmp::parse(v.ok_or("icode needs a value")?)?));
        Ok(())
    }),
    kw("icmp_id", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::IcmpId(v.unwrap_or("").trim().parse().map_err(|_| "invalid icmp_id")?));
        Ok(())
    }),
    kw("icmp_seq", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::IcmpSeq(v.unwrap_or("").trim().parse().map_err(|_| "invalid icmp_seq")?));
        Ok(())
    }),
    kw("ip_proto", 0, ip_proto),
    kw("id", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::IpId(v.unwrap_or("").trim().parse().map_err(|_| "invalid id")?));
        Ok(())
    }),
    kw("seq", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::Seq(v.unwrap_or("").trim().parse().map_err(|_| "invalid seq")?));
        Ok(())
    }),
    kw("ack", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::Ack(v.unwrap_or("").trim().parse().map_err(|_| "invalid ack")?));
        Ok(())
    }),
    kw("window", 0, window),
    kw("tos", 0, tos),
    kw("sameip", 0, |d, _, _| {
        d.r.pkt.push(PktMatch::SameIp);
        Ok(())
    }),
    kw("flags", 0, |d, _, v| {
        d.r.pkt.push(parse_flags(v.ok_or("flags needs a value")?)?);
        Ok(())
    }),
    kw("fragbits", 0, |d, _, v| {
        d.r.pkt.push(parse_fragbits(v.ok_or("fragbits needs a value")?)?);
        Ok(())
    }),
    // Flow state.
    kw("flow", 0, flow),
    kw("flowbits", 0, |d, _, v| detect_flowbits::setup(&mut d.r, v, d.bits)),
    // Alert rate.
    kw("threshold", 0, |d, _, v| {
        d.r.threshold = Some(detect_threshold::parse(v.ok_or("threshold needs a value")?, false)?);
        Ok(())
    }),
    kw("detection_filter", 0, |d, _, v| {
        d.r.detection_filter = Some(detect_threshold::parse(v.ok_or("detection_filter needs a value")?, true)?);
        Ok(())
    }),
];

fn no_effect(_: &mut RuleDraft, _: &Keyword, _: Option<&str>) -> Result<(), String> {
    Ok(())
}

/// A buffer keyword: select the sticky buffer, or (CONTENT_MODIFIER) move the preceding
/// content into it.
fn buffer(d: &mut RuleDraft, k: &Keyword, b: Buf) -> Result<(), String> {
    if k.flags & CONTENT_MODIFIER != 0 {
        let lb = d.last_item_buf.ok_or_else(|| format!("{} has no preceding content", k.name))?;
        move_last_content(&mut d.r, lb, b)?;
        d.last_item_buf = Some(b);
    } else {
        d.cur = b;
    }
    Ok(())
}

/// The longest content a rule may carry, in bytes after hex and escape decoding. ET Open's
/// longest is 660; a 50,000-byte content of one repeated byte took 86 s to build into the
/// prefilter's automaton, so a longer one is refused at parse time, with a stable code.
pub const MAX_CONTENT_BYTES: usize = 4096;

/// content (into buffer `b`) and uricontent (into http.uri).
fn content(d: &mut RuleDraft, v: Option<&str>, b: Buf) -> Result<(), String> {
    let raw = v.ok_or("content needs a value")?.trim();
    let (negated, raw) = match raw.strip_prefix('!') {
        Some(r) => (true, r.trim()),
        None => (false, raw),
    };
    if !(raw.starts_with('"') && raw.ends_with('"') && raw.len() >= 2) {
        return Err("content must be quoted".into());
    }
    let pat = parse_content_bytes(&raw[1..raw.len() - 1])?;
    if pat.len() > MAX_CONTENT_BYTES {
        return Err(format!("CORDON_ERR_RULE_CONTENT_TOO_LONG: a content of {} bytes is longer than the {MAX_CONTENT_BYTES} allowed", pat.len()));
    }
    let c = Content {
        pat_lc: pat.to_ascii_lowercase(),
        pat,
        nocase: false,
        negated,
        offset: None,
        depth: None,
        distance: None,
        within: None,
        startswith: false,
        endswith: false,
        fast_pattern: false,
    };
    push_item(&mut d.r, b, Item::Content(c));
    d.last_item_buf = Some(b);
    Ok(())
}

fn isdataat(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let v = v.ok_or("isdataat needs a value")?;
    let mut parts = v.split(',');
    let first = parts.next().unwrap_or("").trim();
    let (negated, n) = match first.strip_prefix('!') {
        Some(x) => (true, x),
        None => (false, first),
    };
    let n: i64 = n.trim().parse().map_err(|_| format!("isdataat: \"{n}\" is not a number"))?;
    let relative = parts.any(|p| p.trim() == "relative");
    push_item(&mut d.r, d.cur, Item::IsDataAt { n, relative, negated });
    d.last_item_buf = Some(d.cur);
    Ok(())
}

fn transform(d: &mut RuleDraft, k: &Keyword, xf: Xf) -> Result<(), String> {
    let cur = d.cur;
    if d.r.bufs.iter().any(|(b, v)| *b == cur && !v.is_empty()) {
        return Err(format!("transform {} must come before the buffer's matches", k.name));
    }
    match d.r.xforms.iter_mut().find(|(b, _)| *b == cur) {
        Some((_, v)) => v.push(xf),
        None => d.r.xforms.push((cur, vec![xf])),
    }
    Ok(())
}

fn urilen(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let s = v.ok_or("urilen needs a value")?;
    let s = s.split(',').next().unwrap_or("");
    d.r.pkt.push(PktMatch::Urilen(Cmp::parse(s)?));
    // urilen needs the http.uri buffer of the transaction.
    if !d.r.bufs.iter().any(|(b, _)| *b == Buf::HttpUri) {
        d.r.bufs.push((Buf::HttpUri, Vec::new()));
    }
    Ok(())
}

fn ip_proto(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let s = v.unwrap_or("").trim();
    let (neg, s) = match s.strip_prefix('!') {
        Some(x) => (true, x.trim()),
        None => (false, s),
    };
    let n = match s.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => 58,
        "igmp" => 2,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        x => x.parse().map_err(|_| format!("invalid ip_proto \"{x}\""))?,
    };
    d.r.pkt.push(PktMatch::IpProto(n, neg));
    Ok(())
}

fn window(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let s = v.unwrap_or("").trim();
    let (neg, s) = match s.strip_prefix('!') {
        Some(x) => (true, x),
        None => (false, s),
    };
    d.r.pkt.push(PktMatch::Window(s.trim().parse().map_err(|_| "invalid window")?, neg));
    Ok(())
}

fn tos(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let s = v.unwrap_or("").trim();
    let (neg, s) = match s.strip_prefix('!') {
        Some(x) => (true, x),
        None => (false, s),
    };
    let n = if let Some(h) = s.strip_prefix("0x") { u8::from_str_radix(h, 16).ok() } else { s.parse().ok() };
    d.r.pkt.push(PktMatch::Tos(n.ok_or("invalid tos")?, neg));
    Ok(())
}

fn flow(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let r = &mut d.r;
    for part in v.ok_or("flow needs a value")?.split(',') {
        match part.trim().to_ascii_lowercase().as_str() {
            "to_server" | "from_client" => r.flow.to_server = true,
            "to_client" | "from_server" => r.flow.to_client = true,
            "established" => r.flow.established = true,
            "not_established" => r.flow.not_established = true,
            "stateless" => r.flow.stateless = true,
            "only_stream" => r.flow.only_stream = true,
            "no_stream" => r.flow.no_stream = true,
            "no_frag" | "only_frag" => {}
            x => return Err(format!("unsupported flow option \"{x}\"")),
        }
    }
    if r.flow.to_server && r.flow.to_client {
        return Err("flow: to_server and to_client together never match".into());
    }
    Ok(())
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

/// Decode a content string: `|41 42|` hex blocks and `\` escapes.
pub fn parse_content_bytes(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut hex = false;
    while i < b.len() {
        let c = b[i];
        if hex {
            if c == b'|' {
                hex = false;
                i += 1;
                continue;
            }
            if c == b' ' {
                i += 1;
                continue;
            }
            let h = b.get(i..i + 2).ok_or("odd number of hex digits in content")?;
            let v = u8::from_str_radix(std::str::from_utf8(h).map_err(|_| "bad hex")?, 16).map_err(|_| format!("invalid hex \"{}\" in content", String::from_utf8_lossy(h)))?;
            out.push(v);
            i += 2;
            continue;
        }
        match c {
            b'|' => hex = true,
            b'\\' => {
                let n = *b.get(i + 1).ok_or("content ends with a backslash")?;
                out.push(n);
                i += 1;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    if hex {
        return Err("unterminated hex block in content".into());
    }
    if out.is_empty() {
        return Err("empty content".into());
    }
    Ok(out)
}

fn parse_int(v: Option<&str>, kw: &str) -> Result<i64, String> {
    let v = v.ok_or_else(|| format!("{kw} needs a value"))?;
    v.trim().parse::<i64>().map_err(|_| format!("{kw}: \"{v}\" is not a number (byte_extract variables are not supported)"))
}

fn parse_flags(v: &str) -> Result<PktMatch, String> {
    let (main, mask) = match v.split_once(',') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (v.trim(), None),
    };
    let bit = |c: char| -> Result<u8, String> {
        Ok(match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' | '2' => 0x40,
            'C' | '1' => 0x80,
            '0' => 0,
            x => return Err(format!("invalid tcp flag '{x}'")),
        })
    };
    let mut mode = 0u8; // 0 exact, 1 '+' all of, 2 '*' any of, 3 '!' not
    let mut set = 0u8;
    for c in main.chars() {
        match c {
            '+' => mode = 1,
            '*' => mode = 2,
            '!' => mode = 3,
            c => set |= bit(c)?,
        }
    }
    let mut m = 0xffu8;
    if let Some(mask) = mask {
        for c in mask.chars() {
            m &= !bit(c)?;
        }
    }
    Ok(PktMatch::Flags { set, mask: m, mode })
}

fn parse_fragbits(v: &str) -> Result<PktMatch, String> {
    let mut mode = 0u8;
    let mut bits = 0u8;
    for c in v.trim().chars() {
        match c {
            '+' => mode = 1,
            '*' => mode = 2,
            '!' => mode = 3,
            'M' | 'm' => bits |= 1,
            'D' | 'd' => bits |= 2,
            'R' | 'r' => bits |= 4,
            x => return Err(format!("invalid fragbits '{x}'")),
        }
    }
    Ok(PktMatch::FragBits { bits, mode })
}

fn parse_pcre(v: &str, cur: Buf) -> Result<(Pcre, Buf), String> {
    let v = v.trim();
    let (negated, v) = match v.strip_prefix('!') {
        Some(x) => (true, x.trim()),
        None => (false, v),
    };
    let inner = unquote(v);
    let inner = inner.replace("\\;", ";").replace("\\\"", "\"");
    let start = inner.find('/').ok_or("pcre must be /regex/flags")?;
    let end = inner.rfind('/').ok_or("pcre must be /regex/flags")?;
    if end <= start {
        return Err("pcre must be /regex/flags".into());
    }
    let pat = &inner[start + 1..end];
    let flags = &inner[end + 1..];
    let mut b = pcre2::bytes::RegexBuilder::new();
    b.jit_if_available(true);
    let mut relative = false;
    let mut target = cur;
    for f in flags.chars() {
        match f {
            'i' => {
                b.caseless(true);
            }
            's' => {
                b.dotall(true);
            }
            'm' => {
                b.multi_line(true);
            }
            'x' => {
                b.extended(true);
            }
            'R' => relative = true,
            'U' => target = Buf::HttpUri,
            'I' => target = Buf::HttpRawUri,
            'P' => target = Buf::HttpClientBody,
            'Q' => target = Buf::FileData,
            'H' => target = Buf::HttpHeader,
            'D' => target = Buf::HttpRawHeader,
            'M' => target = Buf::HttpMethod,
            'C' => target = Buf::HttpCookie,
            'S' => target = Buf::HttpStatCode,
            'Y' => target = Buf::HttpStatMsg,
            'V' => target = Buf::HttpUserAgent,
            'W' => target = Buf::HttpHost,
            'Z' => target = Buf::HttpRawHost,
            'B' | 'O' | 'E' | 'A' | 'G' => {
                // A (anchored) and E (dollar end-only) change semantics; express them in the
                // pattern instead of ignoring them.
            }
            x => return Err(format!("unsupported pcre flag '{x}'")),
        }
    }
    let mut pat = pat.to_string();
    if flags.contains('A') {
        pat = format!("^(?:{pat})");
    }
    if flags.contains('G') {
        b.ucp(false);
    }
    let re = b.build(&pat).map_err(|e| format!("pcre does not compile: {e}"))?;
    Ok((Pcre { re, relative, negated, src: inner.clone() }, target))
}

fn push_item(r: &mut Rule, b: Buf, it: Item) {
    if let Some((_, v)) = r.bufs.iter_mut().find(|(x, _)| *x == b) {
        v.push(it);
    } else {
        r.bufs.push((b, vec![it]));
    }
}

fn last_content(r: &mut Rule, b: Buf) -> Option<&mut Content> {
    let (_, v) = r.bufs.iter_mut().find(|(x, _)| *x == b)?;
    v.iter_mut().rev().find_map(|i| match i {
        Item::Content(c) => Some(c),
        _ => None,
    })
}

fn move_last_content(r: &mut Rule, from: Buf, to: Buf) -> Result<(), String> {
    if from == to {
        return Ok(());
    }
    let (_, v) = r.bufs.iter_mut().find(|(x, _)| *x == from).ok_or("modifier without content")?;
    let pos = v.iter().rposition(|i| matches!(i, Item::Content(_))).ok_or("modifier without content")?;
    let it = v.remove(pos);
    if v.is_empty() {
        r.bufs.retain(|(x, _)| *x != from);
    }
    push_item(r, to, it);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_name_in_lower_case() {
        let reg = Keywords::new();
        assert_eq!(reg.by_name.len(), KEYWORDS.len(), "a keyword is listed twice");
        for k in KEYWORDS {
            assert_eq!(k.name, k.name.to_ascii_lowercase(), "names are looked up in lower case");
        }
    }

    #[test]
    fn content_modifier_names_are_buffer_names_without_value() {
        for k in KEYWORDS.iter().filter(|k| k.flags & CONTENT_MODIFIER != 0) {
            assert!(k.flags & NOOPT != 0, "{}", k.name);
        }
        assert_eq!(KEYWORDS.iter().filter(|k| k.flags & CONTENT_MODIFIER != 0).count(), 13);
    }

    #[test]
    fn a_content_longer_than_the_cap_is_refused_quickly_with_its_code_and_sid() {
        let at_cap = format!("alert tcp any any -> any any (content:\"{}\"; sid:1;)", "A".repeat(MAX_CONTENT_BYTES));
        let over = format!("alert tcp any any -> any any (content:\"{}\"; sid:4242;)", "A".repeat(50_000));
        let hex_over = format!("alert tcp any any -> any any (content:\"|{}|\"; sid:4243;)", "41 ".repeat(MAX_CONTENT_BYTES + 1));
        let t = std::time::Instant::now();
        let rs = crate::detect_engine::RuleSet::load(&[("t.rules".into(), [at_cap, over, hex_over].join("\n"))]);
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(rs.rules.len(), 1);
        let failed: Vec<_> = rs.errors.iter().map(|e| (e.sid, e.reason.starts_with("CORDON_ERR_RULE_CONTENT_TOO_LONG"))).collect();
        assert_eq!(failed, vec![(Some(4242), true), (Some(4243), true)]);
    }
}
