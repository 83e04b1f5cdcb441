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
// repr(u8): the variant's tag is the first byte (RFC 2195), read by `tag` for table lookups.
#[repr(u8)]
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
    /// Packet headers as on the wire (options included): ipv4.hdr, ipv6.hdr, tcp.hdr, ...
    Ipv4Hdr,
    Ipv6Hdr,
    TcpHdr,
    UdpHdr,
    Icmpv4Hdr,
    Icmpv6Hdr,
    /// What base64_decode decoded; its items are moved into the decode item (see finalize).
    Base64Data,
    /// TLS: each certificate of the chain (DER), the leaf's fields, JA3/JA3S.
    TlsCerts,
    TlsCertSubject,
    TlsCertIssuer,
    TlsCertSerial,
    TlsCertFingerprint,
    Ja3Hash,
    Ja3String,
    Ja3sHash,
    Ja3sString,
    Ja4Hash,
    SshProto,
    SshSoftware,
    SshHassh,
    SshHasshString,
    SshHasshServer,
    SshHasshServerString,
    SmtpHelo,
    SmtpMailFrom,
    SmtpRcptTo,
    /// email.* header buffers of a mail (SMTP).
    EmailFrom,
    EmailSubject,
    EmailTo,
    EmailCc,
    EmailDate,
    EmailMessageId,
    EmailXMailer,
    EmailUrl,
    FtpCommand,
    FtpCommandData,
    FtpReply,
    SmbShare,
    SmbNamedPipe,
    SmbNtlmsspUser,
    SmbNtlmsspDomain,
    DceStubData,
    Krb5Cname,
    Krb5Sname,
}

impl Buf {
    /// The variant's index (every `HttpNamed` has the same one): a dense key for the
    /// prefilters' per-buffer tables, cheaper than searching a sorted list by `Ord`.
    #[inline]
    pub fn tag(&self) -> u8 {
        // SAFETY: Buf is repr(u8), so its first byte is the variant's tag (RFC 2195).
        unsafe { *(self as *const Buf as *const u8) }
    }
    /// An application-layer buffer (not the payload, not a packet header).
    pub fn is_app(self) -> bool {
        !self.is_pkt()
    }
    /// A buffer of the packet itself: the payload and the header buffers.
    pub fn is_pkt(self) -> bool {
        use Buf::*;
        matches!(self, Payload | Ipv4Hdr | Ipv6Hdr | TcpHdr | UdpHdr | Icmpv4Hdr | Icmpv6Hdr)
    }
    /// The protocol whose transactions offer this buffer (None: several, or the packet).
    pub fn proto(self) -> Option<Proto> {
        use Buf::*;
        Some(match self {
            DnsQuery => Proto::Dns,
            TlsSni | TlsCerts | TlsCertSubject | TlsCertIssuer | TlsCertSerial | TlsCertFingerprint | Ja3Hash | Ja3String | Ja3sHash | Ja3sString | Ja4Hash => Proto::Tls,
            SshProto | SshSoftware | SshHassh | SshHasshString | SshHasshServer | SshHasshServerString => Proto::Ssh,
            SmtpHelo | SmtpMailFrom | SmtpRcptTo | EmailFrom | EmailSubject | EmailTo | EmailCc | EmailDate | EmailMessageId | EmailXMailer | EmailUrl => Proto::Smtp,
            FtpCommand | FtpCommandData | FtpReply => Proto::Ftp,
            SmbShare | SmbNamedPipe | SmbNtlmsspUser | SmbNtlmsspDomain => Proto::Smb,
            DceStubData => Proto::Dcerpc,
            Krb5Cname | Krb5Sname => Proto::Krb5,
            HttpUri | HttpRawUri | HttpMethod | HttpProtocol | HttpRequestLine | HttpResponseLine | HttpStatCode | HttpStatMsg | HttpHeader | HttpRawHeader | HttpCookie
            | HttpUserAgent | HttpHost | HttpRawHost | HttpHeaderNames | HttpStart | HttpClientBody | HttpNamed(_) | HttpRequestHeader | HttpResponseHeader => Proto::Http,
            _ => return None,
        })
    }
    /// The direction a transaction buffer belongs to, where it has one: Some(true) from the
    /// client, Some(false) from the server (None: either side, by the rule's direction).
    pub fn side(self) -> Option<bool> {
        use Buf::*;
        match self {
            Ja3Hash | Ja3String | TlsSni | SshHasshString | SshHassh | SmtpHelo | SmtpMailFrom | SmtpRcptTo | FtpCommand | FtpCommandData => Some(true),
            // krb5.cname/sname: Suricata registers them for responses only.
            Ja3sHash | Ja3sString | SshHasshServer | SshHasshServerString | FtpReply | Krb5Cname | Krb5Sname => Some(false),
            _ => self.http_side(),
        }
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

/// A number of a rule's option: a literal, or a variable set earlier in the rule by
/// byte_extract or byte_math (its index among the rule's variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    Lit(i64),
    Var(u8),
}

impl Num {
    #[inline]
    pub fn get(self, vars: &[u64]) -> i64 {
        match self {
            Num::Lit(v) => v,
            Num::Var(i) => vars.get(i as usize).copied().unwrap_or(0) as i64,
        }
    }
    pub fn is_var(self) -> bool {
        matches!(self, Num::Var(_))
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
    /// offset, depth, distance, within given as byte_extract/byte_math variables (their
    /// index), in that order; the literal field is then None.
    pub vars: Option<Box<[Option<u8>; 4]>>,
}

impl Content {
    pub fn relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some() || self.vars.as_ref().is_some_and(|v| v[2].is_some() || v[3].is_some())
    }
    pub fn has_var(&self) -> bool {
        self.vars.is_some()
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
    IsDataAt { n: Num, relative: bool, negated: bool },
    Bsize(Cmp),
    ByteTest(Box<crate::detect_byte::ByteTest>),
    ByteJump(Box<crate::detect_byte::ByteJump>),
    ByteExtract(Box<crate::detect_byte::ByteExtract>),
    ByteMath(Box<crate::detect_byte::ByteMath>),
    /// base64_decode, with the base64_data items that inspect what it decoded.
    Base64(Box<crate::detect_byte::Base64Decode>),
}

impl Item {
    /// Whether the item starts where the previous match ended (so a content before it may
    /// have to be retried further on when it fails).
    pub fn is_relative(&self) -> bool {
        match self {
            Item::Content(c) => c.relative(),
            Item::Pcre(p) => p.relative,
            Item::IsDataAt { relative, .. } => *relative,
            Item::ByteTest(b) => b.relative,
            Item::ByteJump(b) => b.relative,
            Item::ByteExtract(b) => b.relative,
            Item::ByteMath(b) => b.relative,
            Item::Base64(b) => b.relative,
            Item::Bsize(_) => false,
        }
    }
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
    /// urilen: the normalised (false) or raw (true) URI's length.
    Urilen(Cmp, bool),
    TcpMss(Cmp),
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
    Ssh,
    Ftp,
    FtpData,
    Smtp,
    Smb,
    Dcerpc,
    Krb5,
    Dhcp,
    Snmp,
    Sip,
    Ntp,
    Tftp,
}

impl Proto {
    /// The rule protocol of an application layer (not ip/tcp/udp/icmp).
    pub fn is_app(self) -> bool {
        !matches!(self, Proto::Ip | Proto::Tcp | Proto::TcpPkt | Proto::TcpStream | Proto::Udp | Proto::Icmp | Proto::Icmpv6)
    }
    pub fn parse(s: &str) -> Option<Proto> {
        Some(match s.to_ascii_lowercase().as_str() {
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
            "ssh" => Proto::Ssh,
            "ftp" => Proto::Ftp,
            "ftp-data" => Proto::FtpData,
            "smtp" => Proto::Smtp,
            "smb" => Proto::Smb,
            "dcerpc" => Proto::Dcerpc,
            "krb5" => Proto::Krb5,
            "dhcp" => Proto::Dhcp,
            "snmp" => Proto::Snmp,
            "sip" => Proto::Sip,
            "ntp" => Proto::Ntp,
            "tftp" => Proto::Tftp,
            _ => return None,
        })
    }
    /// The name Suricata gives the protocol (EVE's app_proto, app-layer-protocol values).
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ip => "ip",
            Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmpv6 => "icmpv6",
            Proto::Http => "http",
            Proto::Dns => "dns",
            Proto::Tls => "tls",
            Proto::Ssh => "ssh",
            Proto::Ftp => "ftp",
            Proto::FtpData => "ftp-data",
            Proto::Smtp => "smtp",
            Proto::Smb => "smb",
            Proto::Dcerpc => "dcerpc",
            Proto::Krb5 => "krb5",
            Proto::Dhcp => "dhcp",
            Proto::Snmp => "snmp",
            Proto::Sip => "sip",
            Proto::Ntp => "ntp",
            Proto::Tftp => "tftp",
        }
    }
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
    /// A `<>` rule whose source and destination are the same (Suricata treats it as one
    /// rule, not two).
    pub bidir_same: bool,
    /// `=>` (Suricata 8): one transaction's buffers of both directions in one rule.
    pub bidir_tx: bool,
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
    /// The `metadata` keywords' values by key, keys in order of first use (EVE's `alert.metadata`).
    pub metadata: std::sync::Arc<Vec<(String, Vec<String>)>>,
    /// Transforms per buffer.
    pub xforms: Vec<(Buf, Vec<Xf>)>,
    /// Transaction keywords that are not buffers (krb5_msg_type, dcerpc.opnum, app-layer-event, ...).
    pub tx: Vec<crate::detect_appkw::TxMatch>,
    /// Flow keywords with state (app-layer-protocol, stream_size).
    pub flowm: Vec<crate::detect_appkw::FlowMatch>,
    pub flowints: Vec<crate::detect_flowint::FlowintOp>,
    pub xbits: Vec<crate::detect_flowint::XbitOp>,
    /// Variables the rule's byte_extract and byte_math define.
    pub nvars: u8,
    /// The application protocol whose transactions the rule inspects: the header's, or the
    /// one its buffers and transaction keywords belong to.
    pub app: Option<Proto>,
    /// Nothing but app-layer-protocol (Suricata's PD-only signature): it matches only on the
    /// packet where protocol detection completed.
    pub pd_only: bool,
    /// An application-protocol rule with no buffers or transaction keywords (`alert http
    /// ... (flow:to_server;)`): Suricata checks it against the flow's protocol as the
    /// packet saw it (see `Flow::app_vis`).
    pub hdr_app: bool,
    /// `=>` rules: the direction of each buffer that has none of its own (to the server
    /// unless after bidir.toclient).
    pub bidir_sides: Vec<(Buf, bool)>,
}

impl Rule {
    pub fn xforms_for(&self, b: Buf) -> Option<&[Xf]> {
        self.xforms.iter().find(|(x, _)| *x == b).map(|(_, v)| v.as_slice())
    }
    /// Inspected per transaction: an application buffer or transaction keyword.
    pub fn has_app_buf(&self) -> bool {
        self.bufs.iter().any(|(b, _)| b.is_app()) || !self.tx.is_empty()
    }
    /// The direction a buffer of a `=>` rule is taken from (true: from the client).
    pub fn buf_side(&self, b: Buf) -> bool {
        b.side().or_else(|| self.bidir_sides.iter().find(|(x, _)| *x == b).map(|(_, s)| *s)).unwrap_or(true)
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
/// Suricata's own parser ends an option at the next `;` not preceded by a backslash, quotes
/// or not (SigParseOptions); this one also keeps a quoted `;` inside its value, and falls
/// back to Suricata's reading when the quotes do not pair up (`pcre:"/^["']?post/Ri"`).
fn split_options(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    match split_options_by(s, true) {
        Err(e) if e.starts_with("unterminated") => split_options_by(s, false),
        r => r,
    }
}

fn split_options_by(s: &str, quotes: bool) -> Result<Vec<(String, Option<String>)>, String> {
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
                inq = quotes && !inq;
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
    let proto = Proto::parse(header[1]).ok_or_else(|| format!("unsupported protocol \"{}\"", header[1].to_ascii_lowercase()))?;
    let src = ctx.vars.parse_addr(header[2])?;
    let sp = ctx.vars.parse_ports(header[3])?;
    let (bidir, bidir_tx) = match header[4] {
        "->" => (false, false),
        "<>" => (true, false),
        "=>" => (false, true),
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
        bidir_same: bidir && header[2] == header[5] && header[3] == header[6],
        bidir_tx,
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
        metadata: Default::default(),
        xforms: Vec::new(),
        tx: Vec::new(),
        flowm: Vec::new(),
        flowints: Vec::new(),
        xbits: Vec::new(),
        nvars: 0,
        app: None,
        pd_only: false,
        hdr_app: false,
        bidir_sides: Vec::new(),
    };
    // Each option goes to its keyword's setup, in rule order (a sticky buffer applies to the
    // keywords after it, a content modifier to the content before it).
    let mut d = RuleDraft { r, bits: &mut *ctx.bits, have_sid: false, explicit_priority: false, cur: Buf::Payload, last_item_buf: None, var_names: Vec::new(), bidir_toclient: false };
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
    // base64_data's items inspect what the rule's base64_decode decoded: they move into it.
    if let Some(pos) = r.bufs.iter().position(|(b, _)| *b == Buf::Base64Data) {
        let (_, items) = r.bufs.remove(pos);
        let dec = r.bufs.iter_mut().flat_map(|(_, v)| v.iter_mut()).filter_map(|i| match i {
            Item::Base64(d) => Some(d),
            _ => None,
        });
        match dec.last() {
            Some(d) => d.data = items,
            None => return Err("base64_data without base64_decode".into()),
        }
    }
    // A rule's buffers belong to one application protocol (DCERPC's also to SMB, which
    // carries it), and it to the rule's, when the rule names one.
    let mut app: Option<Proto> = None;
    for (b, _) in &r.bufs {
        let Some(bp) = b.proto() else { continue };
        let fits = |p: Proto| p == bp || (bp == Proto::Dcerpc && p == Proto::Smb) || (bp == Proto::Smb && p == Proto::Dcerpc);
        if r.proto.is_app() && !fits(r.proto) {
            return Err(format!("{} buffer in a {} rule", bp.name(), r.proto.name()));
        }
        if matches!(r.proto, Proto::Udp | Proto::Icmp | Proto::Icmpv6) && !matches!(bp, Proto::Dns | Proto::Krb5 | Proto::Dcerpc) {
            return Err(format!("{} buffer in a {} rule", bp.name(), r.proto.name()));
        }
        match app {
            Some(a) if !fits(a) => return Err(format!("{} and {} buffers in one rule", a.name(), bp.name())),
            Some(Proto::Smb) => {}
            _ => app = Some(bp),
        }
    }
    for m in &r.tx {
        let tp = m.proto();
        match (app, tp) {
            (_, None) => {}
            (None, Some(p)) => app = Some(p),
            (Some(a), Some(p)) if a == p || matches!((a, p), (Proto::Smb, Proto::Dcerpc) | (Proto::Dcerpc, Proto::Smb)) => {}
            (Some(a), Some(p)) => return Err(format!("{} and {} keywords in one rule", a.name(), p.name())),
        }
        if let (true, Some(p)) = (r.proto.is_app(), tp) {
            if p != r.proto && !matches!((r.proto, p), (Proto::Smb, Proto::Dcerpc) | (Proto::Dcerpc, Proto::Smb) | (Proto::Smb, Proto::Smb)) {
                return Err(format!("{} keyword in a {} rule", p.name(), r.proto.name()));
            }
        }
    }
    r.app = if r.proto.is_app() { Some(r.proto) } else { app };
    r.hdr_app = r.proto.is_app() && r.bufs.is_empty() && r.tx.is_empty();
    let f = &r.flow;
    r.pd_only = !r.proto.is_app()
        && !r.flowm.is_empty()
        && r.flowm.iter().all(|m| m.is_app_proto())
        && r.bufs.is_empty()
        && r.tx.is_empty()
        && r.pkt.is_empty()
        && r.flowints.is_empty()
        && r.xbits.is_empty()
        && !(f.to_server || f.to_client || f.established || f.not_established || f.only_stream || f.no_stream || f.stateless)
        && r.flowbits.iter().all(|b| matches!(b, crate::detect_flowbits::FlowbitOp::Set(_)));
    // Choose the fast pattern: an explicit fast_pattern, else the longest positive content
    // (Suricata prefers app buffers over payload too).
    let mut best: Option<(Buf, Vec<u8>, bool, usize)> = None;
    for (b, items) in &r.bufs {
        for it in items {
            if let Item::Content(c) = it {
                if c.negated {
                    continue;
                }
                // Packet headers are not scanned by the prefilter: never their contents.
                if matches!(b, Buf::Ipv4Hdr | Buf::Ipv6Hdr | Buf::TcpHdr | Buf::UdpHdr | Buf::Icmpv4Hdr | Buf::Icmpv6Hdr) {
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

#[cfg(test)]
mod tests {
    use super::split_options;

    #[test]
    fn options_split_as_suricata_when_quotes_do_not_pair() {
        let o = split_options(r#"msg:"a; b"; pcre:"/^["']?post/Ri"; sid:1;"#).unwrap();
        // Balanced quotes keep a quoted `;`; here they do not pair, so every `;` ends an option.
        assert_eq!(o[0], ("msg".to_string(), Some("\"a".to_string())));
        assert_eq!(o[2], ("pcre".to_string(), Some(r#""/^["']?post/Ri""#.to_string())));
        let o = split_options(r#"msg:"a; b"; sid:1;"#).unwrap();
        assert_eq!(o[0], ("msg".to_string(), Some("\"a; b\"".to_string())));
    }
}
