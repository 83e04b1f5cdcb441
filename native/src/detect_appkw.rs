//! Transaction and flow keywords that are not sticky buffers: tls.version and certificate
//! validity, krb5_msg_type, dcerpc.iface and dcerpc.opnum, ftpdata_command, ftpbounce,
//! app-layer-event, ssh.protoversion (transaction keywords, tested on an `AppTx`), and
//! app-layer-protocol and stream_size (flow keywords, tested on the flow). Each is parsed once
//! by its setup; matching reads the transaction or flow only.

use crate::applayer_tx::{AppTx, Field};
use crate::detect_parse::{Cmp, Proto};

#[derive(Debug, Clone)]
pub enum TxMatch {
    /// A field of the transaction (the inspected direction's, or either) against a test.
    Field { field: Field, test: Cmp, negated: bool },
    /// The field passes one of the tests (dcerpc.opnum lists).
    AnyOf { field: Field, tests: Vec<Cmp> },
    /// dcerpc.iface: the request's context is bound to this interface (and version).
    Iface { uuid: [u8; 16], version: Option<Cmp> },
    /// tls.cert_expired (true) / tls.cert_valid (false): against the packet's time.
    CertExpired(bool),
    /// app-layer-event:<proto>.<name> (`name` is the whole "<proto>.<name>").
    Event { proto: Proto, name: String },
    /// ssh.protoversion (legacy): exact, or "2_compat" (2.0 or 1.99).
    SshProtoVersion(Vec<u8>),
    /// ssh.softwareversion (legacy): the software starts with it.
    SshSoftwareVersion(Vec<u8>),
    /// krb5.ticket_encryption: [!]weak, or a list of etypes (names or numbers).
    Krb5TicketEnc { weak: Option<bool>, etypes: Vec<i64> },
}

impl TxMatch {
    /// The application protocol the keyword belongs to.
    pub fn proto(&self) -> Option<Proto> {
        Some(match self {
            TxMatch::Field { field, .. } | TxMatch::AnyOf { field, .. } => match field {
                Field::TlsVersion | Field::CertNotBefore | Field::CertNotAfter => Proto::Tls,
                Field::Krb5MsgType | Field::Krb5ErrCode | Field::Krb5TicketEtype => Proto::Krb5,
                Field::DceOpnum => Proto::Dcerpc,
                Field::FtpdataCommand => Proto::FtpData,
                Field::FtpBounce => Proto::Ftp,
                Field::SshHasProto => Proto::Ssh,
            },
            TxMatch::Iface { .. } => Proto::Dcerpc,
            TxMatch::CertExpired(_) => Proto::Tls,
            TxMatch::Event { proto, .. } => *proto,
            TxMatch::SshProtoVersion(_) | TxMatch::SshSoftwareVersion(_) => Proto::Ssh,
            TxMatch::Krb5TicketEnc { .. } => Proto::Krb5,
        })
    }

    /// Whether the transaction satisfies the keyword; `dir`: the direction inspected (Some(true)
    /// from the client), None for `=>` rules (either); `now_s`: the packet's time.
    pub fn matches(&self, tx: &AppTx, dir: Option<bool>, now_s: i64) -> bool {
        let side_ok = |s: bool| dir.is_none_or(|d| d == s);
        match self {
            TxMatch::Field { field, test, negated } => {
                let mut seen = false;
                let mut any = false;
                for &(f, s, v) in &tx.fields {
                    if f == *field && (side_ok(s) || !field_is_directional(f)) {
                        seen = true;
                        if test.test(v) {
                            any = true;
                        }
                    }
                }
                seen && any != *negated
            }
            TxMatch::AnyOf { field, tests } => tx.fields.iter().any(|&(f, s, v)| f == *field && (side_ok(s) || !field_is_directional(f)) && tests.iter().any(|t| t.test(v))),
            TxMatch::Iface { uuid, version } => tx.ifaces.iter().any(|(u, v)| u == uuid && version.is_none_or(|c| c.test(*v as u64))),
            TxMatch::CertExpired(expired) => {
                let mut nb = None;
                let mut na = None;
                for &(f, s, v) in &tx.fields {
                    if side_ok(s) {
                        match f {
                            Field::CertNotBefore => nb = Some(v as i64),
                            Field::CertNotAfter => na = Some(v as i64),
                            _ => {}
                        }
                    }
                }
                match (nb, na) {
                    (Some(nb), Some(na)) => {
                        let is_expired = now_s > na;
                        let valid = now_s >= nb && now_s <= na;
                        if *expired {
                            is_expired
                        } else {
                            valid
                        }
                    }
                    _ => false,
                }
            }
            TxMatch::Event { name, .. } => tx.events.iter().any(|e| e == name),
            TxMatch::SshProtoVersion(want) => tx.bufs.iter().any(|(b, s, v)| {
                *b == crate::detect_parse::Buf::SshProto && side_ok(*s) && if want.as_slice() == b"2_compat" { v.as_slice() == b"2.0" || v.as_slice() == b"1.99" } else { v == want }
            }),
            TxMatch::Krb5TicketEnc { weak, etypes } => tx.fields.iter().any(|&(f, _, v)| {
                f == Field::Krb5TicketEtype && {
                    let e = v as i64;
                    match weak {
                        Some(w) => crate::applayer_krb5::weak_etype(e) == *w,
                        None => etypes.contains(&e),
                    }
                }
            }),
            TxMatch::SshSoftwareVersion(want) => tx.bufs.iter().any(|(b, s, v)| *b == crate::detect_parse::Buf::SshSoftware && side_ok(*s) && v.starts_with(want)),
        }
    }
}

/// Fields that exist per direction (the others are of the transaction).
fn field_is_directional(f: Field) -> bool {
    matches!(f, Field::TlsVersion | Field::CertNotBefore | Field::CertNotAfter)
}

/// `krb5_msg_type:[!]<number|name>` and other unsigned keywords: a comparison (Cmp syntax) and
/// whether it is negated.
pub fn parse_uint(v: &str, names: &[(&str, u64)]) -> Result<(Cmp, bool), String> {
    let mut s = v.trim().to_string();
    let mut negated = false;
    if let Some(x) = s.strip_prefix('!') {
        negated = true;
        s = x.trim().to_string();
    }
    for (n, val) in names {
        if s.eq_ignore_ascii_case(n) {
            s = val.to_string();
        }
    }
    Ok((Cmp::parse(&s)?, negated))
}

pub const KRB5_MSG_TYPES: &[(&str, u64)] = &[
    ("AS_REQ", 10),
    ("AS_REP", 11),
    ("TGS_REQ", 12),
    ("TGS_REP", 13),
    ("AP_REQ", 14),
    ("AP_REP", 15),
    ("KRB_SAFE", 20),
    ("KRB_PRIV", 21),
    ("KRB_CRED", 22),
    ("KRB_ERROR", 30),
];

/// `dcerpc.opnum:<n>[,<n>|<a>-<b>]...`: one Cmp per element (ranges inclusive).
pub fn parse_opnums(v: &str) -> Result<Vec<Cmp>, String> {
    let mut out = Vec::new();
    for part in v.split(',') {
        let p = part.trim();
        if let Some((a, b)) = p.split_once('-') {
            let a: u64 = a.trim().parse().map_err(|_| format!("dcerpc.opnum: invalid \"{p}\""))?;
            let b: u64 = b.trim().parse().map_err(|_| format!("dcerpc.opnum: invalid \"{p}\""))?;
            if a > b || b > 65535 {
                return Err(format!("dcerpc.opnum: invalid range \"{p}\""));
            }
            out.push(Cmp::Range(a.saturating_sub(1), b + 1));
        } else {
            let n: u64 = p.parse().map_err(|_| format!("dcerpc.opnum: invalid \"{p}\""))?;
            if n > 65535 {
                return Err(format!("dcerpc.opnum: {n} is out of range"));
            }
            out.push(Cmp::Eq(n));
        }
    }
    if out.is_empty() {
        return Err("dcerpc.opnum needs a value".into());
    }
    Ok(out)
}

/// `dcerpc.iface:<uuid>[,<op><version>][,any_frag]`
pub fn parse_iface(v: &str) -> Result<TxMatch, String> {
    let mut parts = v.split(',').map(|x| x.trim());
    let u = parts.next().unwrap_or("");
    let uuid = parse_uuid(u).ok_or_else(|| format!("dcerpc.iface: invalid uuid \"{u}\""))?;
    let mut version = None;
    for p in parts {
        if p == "any_frag" {
            continue;
        }
        let c = Cmp::parse(p).map_err(|_| format!("dcerpc.iface: invalid version \"{p}\""))?;
        version = Some(c);
    }
    Ok(TxMatch::Iface { uuid, version })
}

/// A UUID as text (8-4-4-4-12 hex) into its bytes in the order the text gives them.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let h: String = s.chars().filter(|c| *c != '-').collect();
    let groups: Vec<&str> = s.split('-').collect();
    if h.len() != 32 || groups.len() != 5 || groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Flow keywords.
#[derive(Debug, Clone)]
pub enum FlowMatch {
    /// app-layer-protocol:[!]<proto>[,<mode>]
    AppProto { proto: AlProto, negated: bool, mode: AlMode },
    /// stream_size:<server|client|both|either>,<op>,<n>
    StreamSize { side: u8, test: Cmp },
}

/// What protocol detection concluded for a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlProto {
    Proto(Proto),
    Failed,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlMode {
    /// The flow's protocol (either direction's).
    Default,
    ToServer,
    ToClient,
    /// The protocol the flow ended with (as Default: no protocol change upgrades here).
    Final,
    Original,
    Either,
    /// The packet's own direction.
    Direction,
}

pub fn parse_app_proto(v: &str) -> Result<FlowMatch, String> {
    let mut parts = v.split(',').map(|x| x.trim());
    let p = parts.next().unwrap_or("");
    let (negated, p) = match p.strip_prefix('!') {
        Some(x) => (true, x.trim()),
        None => (false, p),
    };
    let proto = match p.to_ascii_lowercase().as_str() {
        "failed" => AlProto::Failed,
        "unknown" => AlProto::Unknown,
        "http1" | "http" => AlProto::Proto(Proto::Http),
        x => AlProto::Proto(match Proto::parse(x) {
            Some(pr) if pr.is_app() => pr,
            _ => return Err(format!("app-layer-protocol: unknown protocol \"{x}\"")),
        }),
    };
    let mode = match parts.next().map(|m| m.to_ascii_lowercase()) {
        None => AlMode::Default,
        Some(m) => match m.as_str() {
            "to_server" => AlMode::ToServer,
            "to_client" => AlMode::ToClient,
            "final" => AlMode::Final,
            "original" => AlMode::Original,
            "either" => AlMode::Either,
            "direction" => AlMode::Direction,
            x => return Err(format!("app-layer-protocol: unknown mode \"{x}\"")),
        },
    };
    Ok(FlowMatch::AppProto { proto, negated, mode })
}

pub fn parse_stream_size(v: &str) -> Result<FlowMatch, String> {
    let parts: Vec<&str> = v.split(',').map(|x| x.trim()).collect();
    if parts.len() != 3 {
        return Err("stream_size needs <server|client|both|either>,<operator>,<number>".into());
    }
    let side = match parts[0] {
        "server" => 1,
        "client" => 0,
        "both" => 2,
        "either" => 3,
        x => return Err(format!("stream_size: invalid side \"{x}\"")),
    };
    let n: u64 = parts[2].parse().map_err(|_| format!("stream_size: invalid number \"{}\"", parts[2]))?;
    let test = match parts[1] {
        "<" => Cmp::Lt(n),
        ">" => Cmp::Gt(n),
        "<=" => Cmp::Le(n),
        ">=" => Cmp::Ge(n),
        "=" | "==" => Cmp::Eq(n),
        "!=" => Cmp::Ne(n),
        x => return Err(format!("stream_size: invalid operator \"{x}\"")),
    };
    Ok(FlowMatch::StreamSize { side, test })
}

/// What a flow keyword sees of the flow.
pub struct FlowView {
    /// Protocol detection completed on this packet (per direction): the only packets a rule
    /// made of app-layer-protocol alone matches (Suricata's protocol-detection-only rules).
    pub pd_done_now: bool,
    /// Protocol detected per direction (0: from the client).
    pub alproto: [AlProto; 2],
    /// Whether the packet is from the client.
    pub to_server: bool,
    /// Stream bytes per direction as Suricata's stream_size counts them (sequence space used,
    /// SYN included), None without TCP tracking.
    pub stream_size: Option<[u64; 2]>,
}

impl FlowMatch {
    pub fn is_app_proto(&self) -> bool {
        matches!(self, FlowMatch::AppProto { .. })
    }
    pub fn matches(&self, v: &FlowView) -> bool {
        match self {
            FlowMatch::AppProto { proto, negated, mode } => {
                let is = |a: AlProto| a == *proto;
                let [ts, tc] = v.alproto;
                let r = match mode {
                    AlMode::ToServer => is(ts),
                    AlMode::ToClient => is(tc),
                    AlMode::Direction => is(if v.to_server { ts } else { tc }),
                    AlMode::Either => is(ts) || is(tc),
                    AlMode::Default | AlMode::Final | AlMode::Original => {
                        // The flow's protocol: one a direction recognised; failed once both
                        // directions failed; unknown until then.
                        let flow = match (ts, tc) {
                            (AlProto::Proto(_), _) => ts,
                            (_, AlProto::Proto(_)) => tc,
                            (AlProto::Failed, AlProto::Failed) => AlProto::Failed,
                            _ => AlProto::Unknown,
                        };
                        if *negated && matches!(flow, AlProto::Unknown) {
                            // Suricata only tests a negation once the protocol is known.
                            return false;
                        }
                        is(flow)
                    }
                };
                r != *negated
            }
            FlowMatch::StreamSize { side, test } => {
                let Some([c, s]) = v.stream_size else { return false };
                match side {
                    0 => test.test(c),
                    1 => test.test(s),
                    2 => test.test(c) && test.test(s),
                    _ => test.test(c) || test.test(s),
                }
            }
        }
    }
}

/// Kerberos etype names as Suricata's krb5.ticket_encryption accepts them.
const KRB5_ETYPES: &[(&str, i64)] = &[
    ("des-cbc-crc", 1),
    ("des-cbc-md4", 2),
    ("des-cbc-md5", 3),
    ("des3-cbc-md5", 5),
    ("des3-cbc-sha1", 7),
    ("dsaWithSHA1-CmsOID", 9),
    ("md5WithRSAEncryption-CmsOID", 10),
    ("sha1WithRSAEncryption-CmsOID", 11),
    ("rc2CBC-EnvOID", 12),
    ("rsaEncryption-EnvOID", 13),
    ("rsaES-OAEP-ENV-OID", 14),
    ("des-ede3-cbc-Env-OID", 15),
    ("des3-cbc-sha1-kd", 16),
    ("aes128-cts-hmac-sha1-96", 17),
    ("aes256-cts-hmac-sha1-96", 18),
    ("aes128-cts-hmac-sha256-128", 19),
    ("aes256-cts-hmac-sha384-192", 20),
    ("rc4-hmac", 23),
    ("rc4-hmac-exp", 24),
    ("camellia128-cts-cmac", 25),
    ("camellia256-cts-cmac", 26),
    ("subkey-keymaterial", 65),
    ("rc4-md4", -128),
    ("rc4-plain2", -129),
    ("rc4-lm", -130),
    ("rc4-sha", -131),
    ("des-plain", -132),
    ("rc4-hmac-OLD", -133),
    ("rc4-plain-OLD", -134),
    ("rc4-hmac-OLD-exp", -135),
    ("rc4-plain-OLD-exp", -136),
    ("rc4-plain", -140),
    ("rc4-plain-exp", -141),
];

/// `krb5.ticket_encryption:[!]weak` or `krb5.ticket_encryption:<etype>[,<etype>]...`
pub fn parse_ticket_encryption(v: &str) -> Result<TxMatch, String> {
    let t = v.trim();
    match t {
        "weak" => return Ok(TxMatch::Krb5TicketEnc { weak: Some(true), etypes: Vec::new() }),
        "!weak" => return Ok(TxMatch::Krb5TicketEnc { weak: Some(false), etypes: Vec::new() }),
        _ => {}
    }
    let mut etypes = Vec::new();
    for item in t.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let e = KRB5_ETYPES.iter().find(|(n, _)| *n == item).map(|(_, e)| *e).or_else(|| item.parse::<i64>().ok());
        etypes.push(e.ok_or_else(|| format!("krb5.ticket_encryption: \"{item}\" is not an encryption type"))?);
    }
    if etypes.is_empty() {
        return Err("krb5.ticket_encryption needs a value".into());
    }
    Ok(TxMatch::Krb5TicketEnc { weak: None, etypes })
}
