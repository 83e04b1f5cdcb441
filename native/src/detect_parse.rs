//! Suricata rule parsing: the header, the option list split into keywords, and the rule's
//! types. Each keyword is one entry of the registry in detect_keywords, whose `setup` parses
//! its value once into the rule; matching lives in the detect_ match modules (hot path, no
//! parsing, no I/O). A rule that uses anything we cannot honour is rejected with a reason,
//! never half-loaded.

use crate::detect_flowbits::{FlowbitOp, Interner};
use crate::detect_keywords::{Keywords, RuleDraft, NOOPT};
use crate::detect_threshold::Threshold;
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
    /// Suricata's severity: the `priority` keyword, else the priority of the rule's classtype, else 3.
    pub priority: u32,
    /// The classtype's description (EVE's `alert.category`), when the classtype is a known one.
    pub category: Option<&'static str>,
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
    pub keywords: &'a Keywords,
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

    let r = Rule {
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
        category: None,
        xforms: Vec::new(),
    };
    // Each option goes to its keyword's setup, in rule order (a sticky buffer applies to the
    // keywords after it, a content modifier to the content before it).
    let mut d = RuleDraft { r, bits: &mut *ctx.bits, have_sid: false, explicit_priority: false, cur: Buf::Payload, last_item_buf: None };
    for (k, v) in &opts {
        let k = k.to_ascii_lowercase();
        let kw = ctx.keywords.get(&k).ok_or_else(|| unsupported_reason(&k))?;
        if kw.flags & NOOPT != 0 && v.is_some() {
            return Err(format!("{k} takes no value"));
        }
        (kw.setup)(&mut d, kw, v.as_deref())?;
    }
    if !d.have_sid {
        return Err("rule has no sid".into());
    }
    let mut r = d.r;
    // Protocol-implied buffers: `alert dns` / `alert tls` with only payload content inspect the
    // packet payload of flows of that protocol.
    finalize_rule(&mut r)?;
    Ok(r)
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
