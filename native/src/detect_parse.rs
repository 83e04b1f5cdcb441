//! Suricata rule parsing. Each keyword is one registry entry whose `setup` parses its value
//! once into the rule; matching lives in detect_engine (hot path, no parsing, no I/O).
//! A rule that uses anything we cannot honour is rejected with a reason, never half-loaded.

use crate::detect_flowbits::{self, FlowbitOp, Interner};
use crate::detect_threshold::{self, Threshold};
use crate::detect_vars::{AddrSet, PortSet, Vars};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buf {
    /// Packet payload, or reassembled stream data for TCP sessions.
    Payload,
    HttpUri,
    HttpRawUri,
    HttpMethod,
    HttpProtocol,
    HttpRequestLine,
    HttpResponseLine,
    HttpStatCode,
    HttpStatMsg,
    HttpHeader,
    HttpRawHeader,
    HttpCookie,
    HttpUserAgent,
    HttpHost,
    HttpRawHost,
    HttpHeaderNames,
    HttpStart,
    HttpClientBody,
    FileData,
    /// One named header's value (http.accept, http.referer, http.connection, ...).
    HttpNamed(&'static str),
    /// Multi-buffer: each request (or response) header as "Name: value".
    HttpRequestHeader,
    HttpResponseHeader,
    DnsQuery,
    TlsSni,
}

impl Buf {
    pub fn is_app(self) -> bool {
        self != Buf::Payload
    }
    /// Which side of an HTTP transaction the buffer lives on: Some(true) request, Some(false)
    /// response, None either (decided by the rule's flow direction).
    pub fn http_side(self) -> Option<bool> {
        use Buf::*;
        match self {
            HttpUri | HttpRawUri | HttpMethod | HttpRequestLine | HttpUserAgent | HttpHost | HttpRawHost | HttpClientBody
            | HttpRequestHeader => Some(true),
            HttpResponseLine | HttpStatCode | HttpStatMsg | HttpResponseHeader => Some(false),
            HttpNamed(n) => match n {
                "server" | "location" => Some(false),
                "referer" | "accept" | "accept-language" | "accept-encoding" => Some(true),
                _ => None,
            },
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Content {
    pub pat: Vec<u8>,
    /// Lower-cased copy for nocase matching.
    pub pat_lc: Vec<u8>,
    pub nocase: bool,
    pub negated: bool,
    pub offset: Option<i64>,
    pub depth: Option<i64>,
    pub distance: Option<i64>,
    pub within: Option<i64>,
    pub startswith: bool,
    pub endswith: bool,
    pub fast_pattern: bool,
}

impl Content {
    pub fn relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Cmp {
    Eq(u64),
    Ne(u64),
    Lt(u64),
    Le(u64),
    Gt(u64),
    Ge(u64),
    /// Exclusive range a<>b.
    Range(u64, u64),
}

impl Cmp {
    pub fn test(self, v: u64) -> bool {
        match self {
            Cmp::Eq(a) => v == a,
            Cmp::Ne(a) => v != a,
            Cmp::Lt(a) => v < a,
            Cmp::Le(a) => v <= a,
            Cmp::Gt(a) => v > a,
            Cmp::Ge(a) => v >= a,
            Cmp::Range(a, b) => v > a && v < b,
        }
    }
    pub fn parse(s: &str) -> Result<Cmp, String> {
        let s = s.trim();
        let num = |x: &str| x.trim().parse::<u64>().map_err(|_| format!("invalid number \"{x}\""));
        if let Some((a, b)) = s.split_once("<>") {
            return Ok(Cmp::Range(num(a)?, num(b)?));
        }
        if let Some((a, b)) = s.split_once('-') {
            if !a.trim().is_empty() {
                return Ok(Cmp::Range(num(a)?, num(b)?));
            }
        }
        for (p, f) in [("<=", Cmp::Le as fn(u64) -> Cmp), (">=", Cmp::Ge), ("!=", Cmp::Ne), ("!", Cmp::Ne), ("<", Cmp::Lt), (">", Cmp::Gt), ("=", Cmp::Eq)] {
            if let Some(r) = s.strip_prefix(p) {
                return Ok(f(num(r)?));
            }
        }
        Ok(Cmp::Eq(num(s)?))
    }
}

pub struct Pcre {
    pub re: pcre2::bytes::Regex,
    pub relative: bool,
    pub negated: bool,
    /// /E: `$` anchors only at the very end (PCRE2 DOLLAR_ENDONLY); we strip it to $ semantic.
    pub src: String,
}

impl std::fmt::Debug for Pcre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pcre({})", self.src)
    }
}

#[derive(Debug)]
pub enum Item {
    Content(Content),
    Pcre(Pcre),
    IsDataAt { n: i64, relative: bool, negated: bool },
    Bsize(Cmp),
}

#[derive(Debug, Clone)]
pub enum PktMatch {
    Ttl(Cmp),
    Itype(Cmp),
    Icode(Cmp),
    IcmpId(u16),
    IcmpSeq(u16),
    IpProto(u8, bool),
    IpId(u32),
    Seq(u32),
    Ack(u32),
    Window(u16, bool),
    Tos(u8, bool),
    Dsize(Cmp),
    Flags { set: u8, mask: u8, mode: u8 },
    SameIp,
    FragBits { bits: u8, mode: u8 },
    Urilen(Cmp),
}

#[derive(Debug, Clone, Default)]
pub struct FlowOpt {
    pub to_server: bool,
    pub to_client: bool,
    pub established: bool,
    pub not_established: bool,
    pub stateless: bool,
    pub only_stream: bool,
    pub no_stream: bool,
}

/// Buffer transforms (applied in order before the buffer's matches run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xf {
    DotPrefix,
    ToLower,
    ToUpper,
    StripWhitespace,
    CompressWhitespace,
}

impl Xf {
    pub fn apply(self, b: &[u8]) -> Vec<u8> {
        match self {
            Xf::DotPrefix => [b".".as_slice(), b].concat(),
            Xf::ToLower => b.to_ascii_lowercase(),
            Xf::ToUpper => b.to_ascii_uppercase(),
            Xf::StripWhitespace => b.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect(),
            Xf::CompressWhitespace => {
                let mut out = Vec::with_capacity(b.len());
                for &c in b {
                    if c.is_ascii_whitespace() {
                        if out.last().is_some_and(|l: &u8| l.is_ascii_whitespace()) {
                            continue;
                        }
                    }
                    out.push(c);
                }
                out
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Ip,
    Tcp,
    TcpPkt,
    TcpStream,
    Udp,
    Icmp,
    Icmpv6,
    Http,
    Dns,
    Tls,
}

#[derive(Debug)]
pub struct Rule {
    pub sid: u32,
    pub gid: u32,
    pub rev: u32,
    pub msg: String,
    pub action: String,
    pub proto: Proto,
    pub src: AddrSet,
    pub sp: PortSet,
    pub dst: AddrSet,
    pub dp: PortSet,
    pub bidir: bool,
    pub flow: FlowOpt,
    pub pkt: Vec<PktMatch>,
    /// Per-buffer match lists in rule order of first use.
    pub bufs: Vec<(Buf, Vec<Item>)>,
    pub flowbits: Vec<FlowbitOp>,
    pub noalert: bool,
    pub threshold: Option<Threshold>,
    pub detection_filter: Option<Threshold>,
    /// (buffer, pattern, nocase) used by the multi-pattern prefilter.
    pub fast: Option<(Buf, Vec<u8>, bool)>,
    pub priority: u32,
    /// Transforms per buffer.
    pub xforms: Vec<(Buf, Vec<Xf>)>,
}

impl Rule {
    pub fn xforms_for(&self, b: Buf) -> Option<&[Xf]> {
        self.xforms.iter().find(|(x, _)| *x == b).map(|(_, v)| v.as_slice())
    }
    pub fn has_app_buf(&self) -> bool {
        self.bufs.iter().any(|(b, _)| b.is_app())
    }
    pub fn payload_items(&self) -> Option<&Vec<Item>> {
        self.bufs.iter().find(|(b, _)| *b == Buf::Payload).map(|(_, v)| v)
    }
}

pub struct ParseCtx<'a> {
    pub vars: &'a Vars,
    pub bits: &'a mut Interner,
}

/// Split rule options at `;` outside quotes, honouring backslash escapes.
fn split_options(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut inq = false;
    let mut esc = false;
    for ch in s.chars() {
        if esc {
            cur.push('\\');
            cur.push(ch);
            esc = false;
            continue;
        }
        match ch {
            '\\' => esc = true,
            '"' => {
                inq = !inq;
                cur.push(ch);
            }
            ';' if !inq => {
                let t = cur.trim().to_string();
                if !t.is_empty() {
                    out.push(t);
                }
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    if inq {
        return Err("unterminated quoted string in options".into());
    }
    if !cur.trim().is_empty() {
        return Err(format!("option \"{}\" not terminated by ';'", cur.trim()));
    }
    Ok(out
        .into_iter()
        .map(|o| match o.split_once(':') {
            Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
            None => (o.trim().to_string(), None),
        })
        .collect())
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

fn parse_int(v: Option<&String>, kw: &str) -> Result<i64, String> {
    let v = v.ok_or_else(|| format!("{kw} needs a value"))?;
    v.trim().parse::<i64>().map_err(|_| format!("{kw}: \"{v}\" is not a number (byte_extract variables are not supported)"))
}

fn sticky(name: &str) -> Option<Buf> {
    use Buf::*;
    Some(match name {
        "pkt_data" => Payload,
        "http.uri" | "http_uri" | "http.uri.normalized" => HttpUri,
        "http.uri.raw" | "http_raw_uri" => HttpRawUri,
        "http.method" | "http_method" => HttpMethod,
        "http.protocol" | "http_protocol" => HttpProtocol,
        "http.request_line" | "http_request_line" => HttpRequestLine,
        "http.response_line" | "http_response_line" => HttpResponseLine,
        "http.stat_code" | "http_stat_code" => HttpStatCode,
        "http.stat_msg" | "http_stat_msg" => HttpStatMsg,
        "http.header" | "http_header" => HttpHeader,
        "http.header.raw" | "http_raw_header" => HttpRawHeader,
        "http.cookie" | "http_cookie" => HttpCookie,
        "http.user_agent" | "http_user_agent" => HttpUserAgent,
        "http.host" | "http_host" => HttpHost,
        "http.host.raw" | "http_raw_host" => HttpRawHost,
        "http.header_names" | "http_header_names" => HttpHeaderNames,
        "http.start" | "http_start" => HttpStart,
        "http.request_body" | "http_client_body" => HttpClientBody,
        "http.response_body" | "http_server_body" | "file_data" | "file.data" => FileData,
        "http.request_header" => HttpRequestHeader,
        "http.response_header" => HttpResponseHeader,
        "http.accept" | "http_accept" => HttpNamed("accept"),
        "http.accept_lang" | "http_accept_lang" => HttpNamed("accept-language"),
        "http.accept_enc" | "http_accept_enc" => HttpNamed("accept-encoding"),
        "http.referer" | "http_referer" => HttpNamed("referer"),
        "http.connection" | "http_connection" => HttpNamed("connection"),
        "http.content_type" | "http_content_type" => HttpNamed("content-type"),
        "http.content_len" | "http_content_len" => HttpNamed("content-length"),
        "http.server" | "http_server" => HttpNamed("server"),
        "http.location" | "http_location" => HttpNamed("location"),
        "dns.query" | "dns_query" => DnsQuery,
        "tls.sni" | "tls_sni" => TlsSni,
        _ => return None,
    })
}

/// Keywords that change nothing about matching (metadata) or that we honour implicitly.
const IGNORED: &[&str] = &["msg", "sid", "rev", "gid", "classtype", "reference", "metadata", "priority", "target", "prefilter", "rawbytes", "tag"];

/// Keywords we know of but do not implement: named so the load report says exactly why.
fn unsupported_reason(k: &str) -> String {
    format!("unsupported keyword \"{k}\"")
}

pub fn parse_rule(line: &str, ctx: &mut ParseCtx) -> Result<Rule, (Option<u32>, String)> {
    let sid_hint = extract_sid(line);
    parse_rule_inner(line, ctx).map_err(|e| (sid_hint, e))
}

pub fn extract_sid(line: &str) -> Option<u32> {
    let i = line.find("sid:")?;
    let rest = line[i + 4..].trim_start();
    let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    n.parse().ok()
}

fn parse_rule_inner(line: &str, ctx: &mut ParseCtx) -> Result<Rule, String> {
    let open = line.find('(').ok_or("no option list \"(...)\"")?;
    let close = line.rfind(')').ok_or("option list not closed with ')'")?;
    if close < open {
        return Err("malformed option list".into());
    }
    let header: Vec<&str> = line[..open].split_whitespace().collect();
    if header.len() != 7 {
        return Err(format!("header needs 7 fields (action proto src sport dir dst dport), found {}", header.len()));
    }
    let action = header[0].to_string();
    if !matches!(action.as_str(), "alert" | "drop" | "pass" | "reject" | "rejectsrc" | "rejectdst" | "rejectboth") {
        return Err(format!("unsupported action \"{action}\""));
    }
    let proto = match header[1].to_ascii_lowercase().as_str() {
        "ip" | "pkthdr" => Proto::Ip,
        "tcp" => Proto::Tcp,
        "tcp-pkt" => Proto::TcpPkt,
        "tcp-stream" => Proto::TcpStream,
        "udp" => Proto::Udp,
        "icmp" => Proto::Icmp,
        "icmpv6" | "icmp6" => Proto::Icmpv6,
        "http" | "http1" => Proto::Http,
        "dns" => Proto::Dns,
        "tls" => Proto::Tls,
        p => return Err(format!("unsupported protocol \"{p}\"")),
    };
    let src = ctx.vars.parse_addr(header[2])?;
    let sp = ctx.vars.parse_ports(header[3])?;
    let bidir = match header[4] {
        "->" => false,
        "<>" => true,
        d => return Err(format!("invalid direction \"{d}\"")),
    };
    let dst = ctx.vars.parse_addr(header[5])?;
    let dp = ctx.vars.parse_ports(header[6])?;
    let opts = split_options(&line[open + 1..close])?;

    let mut r = Rule {
        sid: 0,
        gid: 1,
        rev: 0,
        msg: String::new(),
        action,
        proto,
        src,
        sp,
        dst,
        dp,
        bidir,
        flow: FlowOpt::default(),
        pkt: Vec::new(),
        bufs: Vec::new(),
        flowbits: Vec::new(),
        noalert: false,
        threshold: None,
        detection_filter: None,
        fast: None,
        priority: 3,
        xforms: Vec::new(),
    };
    let mut have_sid = false;
    // The sticky buffer currently selected (None = payload); legacy modifiers move the last
    // content instead.
    let mut cur: Buf = Buf::Payload;
    let mut last_item_buf: Option<Buf> = None;

    for (k, v) in &opts {
        let kl = k.to_ascii_lowercase();
        let k = kl.as_str();
        if let Some(b) = sticky(k) {
            if v.is_some() {
                return Err(format!("{k} takes no value"));
            }
            // Legacy content modifier form: applies to the preceding content, unless it is
            // written as a sticky buffer before the content (dotted names are always sticky).
            // Only these names are content modifiers in Suricata; every other name is a sticky buffer.
            let legacy = matches!(
                k,
                "http_uri" | "http_raw_uri" | "http_header" | "http_raw_header" | "http_method" | "http_cookie" | "http_user_agent"
                    | "http_host" | "http_raw_host" | "http_client_body" | "http_server_body" | "http_stat_code" | "http_stat_msg"
            );
            if legacy {
                let lb = last_item_buf.ok_or_else(|| format!("{k} has no preceding content"))?;
                move_last_content(&mut r, lb, b)?;
                last_item_buf = Some(b);
            } else {
                cur = b;
            }
            continue;
        }
        match k {
            "sid" => {
                r.sid = v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid sid")?;
                have_sid = true;
            }
            "rev" => r.rev = v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid rev")?,
            "gid" => r.gid = v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid gid")?,
            "priority" => r.priority = v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid priority")?,
            "msg" => r.msg = unquote(v.as_deref().unwrap_or("")).replace("\\;", ";").replace("\\\"", "\"").replace("\\\\", "\\"),
            "content" | "uricontent" => {
                let raw = v.as_deref().ok_or("content needs a value")?.trim();
                let (negated, raw) = match raw.strip_prefix('!') {
                    Some(r) => (true, r.trim()),
                    None => (false, raw),
                };
                if !(raw.starts_with('"') && raw.ends_with('"') && raw.len() >= 2) {
                    return Err("content must be quoted".into());
                }
                let pat = parse_content_bytes(&raw[1..raw.len() - 1])?;
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
                let b = if k == "uricontent" { Buf::HttpUri } else { cur };
                push_item(&mut r, b, Item::Content(c));
                last_item_buf = Some(b);
            }
            "nocase" | "depth" | "offset" | "distance" | "within" | "startswith" | "endswith" | "fast_pattern" => {
                let lb = last_item_buf.ok_or_else(|| format!("{k} has no preceding content"))?;
                let c = last_content(&mut r, lb).ok_or_else(|| format!("{k} has no preceding content"))?;
                match k {
                    "nocase" => c.nocase = true,
                    "depth" => c.depth = Some(parse_int(v.as_ref(), k)?),
                    "offset" => c.offset = Some(parse_int(v.as_ref(), k)?),
                    "distance" => c.distance = Some(parse_int(v.as_ref(), k)?),
                    "within" => c.within = Some(parse_int(v.as_ref(), k)?),
                    "startswith" => c.startswith = true,
                    "endswith" => c.endswith = true,
                    "fast_pattern" => {
                        if let Some(v) = v {
                            if v.trim() != "only" {
                                // fast_pattern:<offset>,<length> selects a slice; using the whole
                                // pattern is still correct (only slower).
                            }
                        }
                        c.fast_pattern = true
                    }
                    _ => {}
                }
            }
            "pcre" => {
                let b = cur;
                let (p, target) = parse_pcre(v.as_deref().ok_or("pcre needs a value")?, b)?;
                push_item(&mut r, target, Item::Pcre(p));
                last_item_buf = Some(target);
            }
            "isdataat" => {
                let v = v.as_deref().ok_or("isdataat needs a value")?;
                let mut parts = v.split(',');
                let first = parts.next().unwrap_or("").trim();
                let (negated, n) = match first.strip_prefix('!') {
                    Some(x) => (true, x),
                    None => (false, first),
                };
                let n: i64 = n.trim().parse().map_err(|_| format!("isdataat: \"{n}\" is not a number"))?;
                let relative = parts.any(|p| p.trim() == "relative");
                push_item(&mut r, cur, Item::IsDataAt { n, relative, negated });
                last_item_buf = Some(cur);
            }
            "bsize" => {
                let c = Cmp::parse(v.as_deref().ok_or("bsize needs a value")?)?;
                push_item(&mut r, cur, Item::Bsize(c));
            }
            "dsize" => r.pkt.push(PktMatch::Dsize(Cmp::parse(v.as_deref().ok_or("dsize needs a value")?)?)),
            "urilen" => {
                let s = v.as_deref().ok_or("urilen needs a value")?;
                let s = s.split(',').next().unwrap_or("");
                r.pkt.push(PktMatch::Urilen(Cmp::parse(s)?));
                // urilen needs the http.uri buffer of the transaction.
                if !r.bufs.iter().any(|(b, _)| *b == Buf::HttpUri) {
                    r.bufs.push((Buf::HttpUri, Vec::new()));
                }
            }
            "ttl" => r.pkt.push(PktMatch::Ttl(Cmp::parse(v.as_deref().ok_or("ttl needs a value")?)?)),
            "itype" => r.pkt.push(PktMatch::Itype(Cmp::parse(v.as_deref().ok_or("itype needs a value")?)?)),
            "icode" => r.pkt.push(PktMatch::Icode(Cmp::parse(v.as_deref().ok_or("icode needs a value")?)?)),
            "icmp_id" => r.pkt.push(PktMatch::IcmpId(v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid icmp_id")?)),
            "icmp_seq" => r.pkt.push(PktMatch::IcmpSeq(v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid icmp_seq")?)),
            "ip_proto" => {
                let s = v.as_deref().unwrap_or("").trim();
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
                r.pkt.push(PktMatch::IpProto(n, neg));
            }
            "id" => r.pkt.push(PktMatch::IpId(v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid id")?)),
            "seq" => r.pkt.push(PktMatch::Seq(v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid seq")?)),
            "ack" => r.pkt.push(PktMatch::Ack(v.as_deref().unwrap_or("").trim().parse().map_err(|_| "invalid ack")?)),
            "window" => {
                let s = v.as_deref().unwrap_or("").trim();
                let (neg, s) = match s.strip_prefix('!') {
                    Some(x) => (true, x),
                    None => (false, s),
                };
                r.pkt.push(PktMatch::Window(s.trim().parse().map_err(|_| "invalid window")?, neg));
            }
            "tos" => {
                let s = v.as_deref().unwrap_or("").trim();
                let (neg, s) = match s.strip_prefix('!') {
                    Some(x) => (true, x),
                    None => (false, s),
                };
                let n = if let Some(h) = s.strip_prefix("0x") { u8::from_str_radix(h, 16).ok() } else { s.parse().ok() };
                r.pkt.push(PktMatch::Tos(n.ok_or("invalid tos")?, neg));
            }
            "sameip" => r.pkt.push(PktMatch::SameIp),
            "flags" => r.pkt.push(parse_flags(v.as_deref().ok_or("flags needs a value")?)?),
            "fragbits" => r.pkt.push(parse_fragbits(v.as_deref().ok_or("fragbits needs a value")?)?),
            "flow" => {
                for part in v.as_deref().ok_or("flow needs a value")?.split(',') {
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
            }
            "flowbits" => detect_flowbits::setup(&mut r, v.as_deref(), ctx.bits)?,
            "noalert" => r.noalert = true,
            "dotprefix" | "to_lowercase" | "to_uppercase" | "strip_whitespace" | "compress_whitespace" => {
                let xf = match k {
                    "dotprefix" => Xf::DotPrefix,
                    "to_lowercase" => Xf::ToLower,
                    "to_uppercase" => Xf::ToUpper,
                    "strip_whitespace" => Xf::StripWhitespace,
                    _ => Xf::CompressWhitespace,
                };
                if r.bufs.iter().any(|(b, v)| *b == cur && !v.is_empty()) {
                    return Err(format!("transform {k} must come before the buffer's matches"));
                }
                match r.xforms.iter_mut().find(|(b, _)| *b == cur) {
                    Some((_, v)) => v.push(xf),
                    None => r.xforms.push((cur, vec![xf])),
                }
            }
            "threshold" => r.threshold = Some(detect_threshold::parse(v.as_deref().ok_or("threshold needs a value")?, false)?),
            "detection_filter" => r.detection_filter = Some(detect_threshold::parse(v.as_deref().ok_or("detection_filter needs a value")?, true)?),
            _ if IGNORED.contains(&k) => {}
            _ => return Err(unsupported_reason(k)),
        }
    }
    if !have_sid {
        return Err("rule has no sid".into());
    }
    // Protocol-implied buffers: `alert dns` / `alert tls` with only payload content inspect the
    // packet payload of flows of that protocol.
    finalize_rule(&mut r)?;
    Ok(r)
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

fn finalize_rule(r: &mut Rule) -> Result<(), String> {
    for (b, items) in &r.bufs {
        let has_dns = *b == Buf::DnsQuery;
        let has_tls = *b == Buf::TlsSni;
        let is_http = b.is_app() && !has_dns && !has_tls;
        match r.proto {
            Proto::Dns if is_http || has_tls => return Err("http/tls buffer in a dns rule".into()),
            Proto::Tls if is_http || has_dns => return Err("http/dns buffer in a tls rule".into()),
            Proto::Udp | Proto::Icmp | Proto::Icmpv6 if is_http => return Err("http buffer in a non-tcp rule".into()),
            _ => {}
        }
        // The first content of a relative chain cannot itself be relative to nothing; Suricata
        // treats it as absolute.
        let _ = items;
    }
    // Choose the fast pattern: an explicit fast_pattern, else the longest positive content
    // (Suricata prefers app buffers over payload too).
    let mut best: Option<(Buf, Vec<u8>, bool, usize)> = None;
    for (b, items) in &r.bufs {
        for it in items {
            if let Item::Content(c) = it {
                if c.negated {
                    continue;
                }
                let score = if c.fast_pattern { usize::MAX } else { c.pat.len() * 2 + usize::from(b.is_app()) };
                if best.as_ref().map(|x| score > x.3).unwrap_or(true) {
                    best = Some((*b, c.pat.clone(), c.nocase, score));
                }
            }
        }
    }
    r.fast = best.map(|(b, p, n, _)| (b, p, n));
    // The prefilter scans untransformed buffers: a pattern that only exists after a transform
    // cannot prefilter (dotprefix: drop the leading dot; whitespace transforms: no prefilter).
    if let Some((b, p, _)) = &mut r.fast {
        if let Some(xs) = r.xforms.iter().find(|(x, _)| x == b).map(|(_, v)| v.clone()) {
            if xs.iter().any(|x| matches!(x, Xf::StripWhitespace | Xf::CompressWhitespace)) {
                r.fast = None;
            } else if xs.contains(&Xf::DotPrefix) && p.first() == Some(&b'.') {
                p.remove(0);
                if p.is_empty() {
                    r.fast = None;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod parse_probe {
    /// Parser refactoring aid: each listed rule file loaded on its own, every rule's parsed form
    /// (Debug) and every failure written to one file, so two builds' parsers can be diffed:
    /// CORDON_PARSE_RULES="a.rules b.rules" CORDON_PARSE_DUMP=out.txt cargo test --release parse_probe
    #[test]
    fn dump_parsed_rules() {
        let (Ok(files), Ok(out)) = (std::env::var("CORDON_PARSE_RULES"), std::env::var("CORDON_PARSE_DUMP")) else { return };
        let mut s = String::new();
        for f in files.split_whitespace() {
            let rs = crate::detect_engine::RuleSet::load(&[(f.to_string(), std::fs::read_to_string(f).unwrap())]);
            s.push_str(&format!("== {f}: {} rules, {} loaded\n", rs.total, rs.rules.len()));
            for r in &rs.rules {
                s.push_str(&format!("{r:?}\n"));
            }
            for e in &rs.errors {
                s.push_str(&format!("failed {}:{} sid {:?}: {}\n", e.file, e.line, e.sid, e.reason));
            }
            let mut bits: Vec<_> = rs.bits.map.iter().collect();
            bits.sort();
            s.push_str(&format!("flowbits {bits:?}\n"));
        }
        std::fs::write(out, s).unwrap();
    }
}
