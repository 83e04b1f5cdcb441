//! The rule keyword registry, as Suricata's sigmatch table: each keyword is one entry, its
//! name, flags the parser acts on, and `setup`, which parses the keyword's value once into the
//! rule being built. Nothing here runs per packet: the match side of each keyword is in
//! detect_header (packet keywords, flow), detect_engine (content, pcre, isdataat, bsize),
//! detect_flowbits and detect_threshold.

use crate::applayer_tx::Field;
use crate::detect_appkw::{self, TxMatch};
use crate::detect_byte::{self, MAX_VARS};
use crate::detect_flowbits::{self, Interner};
use crate::detect_flowint;
use crate::detect_parse::{Buf, Cmp, Content, Item, Num, Pcre, PktMatch, Proto, Rule, Xf};
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
    /// Names of the variables byte_extract and byte_math defined so far (index = variable).
    pub var_names: Vec<String>,
    /// `=>` rules: buffers selected from here on are the response's (bidir.toclient).
    pub bidir_toclient: bool,
}

impl RuleDraft<'_> {
    fn var(&self, name: &str) -> Option<u8> {
        self.var_names.iter().rposition(|n| n == name).map(|i| i as u8)
    }
    /// Define a variable; its index.
    fn define_var(&mut self, name: String) -> Result<u8, String> {
        if let Some(i) = self.var(&name) {
            return Ok(i);
        }
        if self.var_names.len() >= MAX_VARS {
            return Err(format!("more than {MAX_VARS} byte_extract/byte_math variables"));
        }
        self.var_names.push(name);
        self.r.nvars = self.var_names.len() as u8;
        Ok((self.var_names.len() - 1) as u8)
    }
    /// The buffer a payload keyword goes to: the sticky buffer, else (relative) the buffer of
    /// the content it is relative to, else the payload.
    fn item_buf(&self, relative: bool) -> Buf {
        if self.cur != Buf::Payload || !relative {
            self.cur
        } else {
            self.last_item_buf.unwrap_or(self.cur)
        }
    }
    /// A content modifier's number: a literal, or a variable defined earlier.
    fn num(&self, v: Option<&str>, kw: &str) -> Result<Num, String> {
        let v = v.ok_or_else(|| format!("{kw} needs a value"))?.trim();
        if v.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return self.var(v).map(Num::Var).ok_or_else(|| format!("{kw}: unknown byte_extract variable \"{v}\""));
        }
        v.parse::<i64>().map(Num::Lit).map_err(|_| format!("{kw}: \"{v}\" is not a number"))
    }
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
    // "key value, key value": a key may repeat (its values become a list); an entry without a value
    // is ignored, as Suricata ignores it.
    kw("metadata", 0, |d, _, v| {
        let md = std::sync::Arc::make_mut(&mut d.r.metadata);
        for entry in v.unwrap_or("").split(',') {
            let Some((key, value)) = entry.trim().split_once(' ') else { continue };
            let value = value.trim();
            match md.iter_mut().find(|(k, _)| k == key) {
                Some((_, values)) => values.push(value.to_string()),
                None => md.push((key.to_string(), vec![value.to_string()])),
            }
        }
        Ok(())
    }),
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
    kw("depth", 0, |d, k, v| content_num(d, k, v, 1)),
    kw("offset", 0, |d, k, v| content_num(d, k, v, 0)),
    kw("distance", 0, |d, k, v| content_num(d, k, v, 2)),
    kw("within", 0, |d, k, v| content_num(d, k, v, 3)),
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
    kw("tls.certs", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCerts)),
    kw("tls.cert_subject", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertSubject)),
    kw("tls_cert_subject", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertSubject)),
    kw("tls.cert_issuer", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertIssuer)),
    kw("tls_cert_issuer", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertIssuer)),
    kw("tls.cert_serial", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertSerial)),
    kw("tls_cert_serial", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertSerial)),
    kw("tls.cert_fingerprint", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertFingerprint)),
    kw("tls_cert_fingerprint", NOOPT, |d, k, _| buffer(d, k, Buf::TlsCertFingerprint)),
    kw("ja3.hash", NOOPT, |d, k, _| buffer(d, k, Buf::Ja3Hash)),
    kw("ja3_hash", NOOPT, |d, k, _| buffer(d, k, Buf::Ja3Hash)),
    kw("ja3.string", NOOPT, |d, k, _| buffer(d, k, Buf::Ja3String)),
    kw("ja3_string", NOOPT, |d, k, _| buffer(d, k, Buf::Ja3String)),
    kw("ja3s.hash", NOOPT, |d, k, _| buffer(d, k, Buf::Ja3sHash)),
    kw("ja3s.string", NOOPT, |d, k, _| buffer(d, k, Buf::Ja3sString)),
    kw("ja4.hash", NOOPT, |d, k, _| buffer(d, k, Buf::Ja4Hash)),
    // Legacy TLS keywords with a value: the buffer holds it (subject/issuer contain it, the
    // fingerprint is it, in any case).
    kw("tls.subject", 0, |d, _, v| legacy_tls(d, v, Buf::TlsCertSubject, false)),
    kw("tls.issuerdn", 0, |d, _, v| legacy_tls(d, v, Buf::TlsCertIssuer, false)),
    kw("tls.fingerprint", 0, |d, _, v| legacy_tls(d, v, Buf::TlsCertFingerprint, true)),
    kw("tls.version", 0, tls_version),
    kw("tls.cert_expired", NOOPT, |d, _, _| tx(d, TxMatch::CertExpired(true))),
    kw("tls_cert_expired", NOOPT, |d, _, _| tx(d, TxMatch::CertExpired(true))),
    kw("tls.cert_valid", NOOPT, |d, _, _| tx(d, TxMatch::CertExpired(false))),
    kw("tls_cert_valid", NOOPT, |d, _, _| tx(d, TxMatch::CertExpired(false))),
    kw("tls_cert_notbefore", 0, |d, _, v| cert_date(d, v, Field::CertNotBefore)),
    kw("tls.cert_notbefore", 0, |d, _, v| cert_date(d, v, Field::CertNotBefore)),
    kw("tls_cert_notafter", 0, |d, _, v| cert_date(d, v, Field::CertNotAfter)),
    kw("tls.cert_notafter", 0, |d, _, v| cert_date(d, v, Field::CertNotAfter)),
    // SSH.
    kw("ssh.proto", NOOPT, |d, k, _| buffer(d, k, Buf::SshProto)),
    kw("ssh_proto", NOOPT, |d, k, _| buffer(d, k, Buf::SshProto)),
    kw("ssh.software", NOOPT, |d, k, _| buffer(d, k, Buf::SshSoftware)),
    kw("ssh_software", NOOPT, |d, k, _| buffer(d, k, Buf::SshSoftware)),
    kw("ssh.hassh", NOOPT, |d, k, _| buffer(d, k, Buf::SshHassh)),
    kw("ssh.hassh.string", NOOPT, |d, k, _| buffer(d, k, Buf::SshHasshString)),
    kw("ssh.hassh.server", NOOPT, |d, k, _| buffer(d, k, Buf::SshHasshServer)),
    kw("ssh.hassh.server.string", NOOPT, |d, k, _| buffer(d, k, Buf::SshHasshServerString)),
    kw("ssh.protoversion", 0, |d, _, v| tx(d, TxMatch::SshProtoVersion(unquote(v.unwrap_or("")).into_bytes()))),
    kw("ssh.softwareversion", 0, |d, _, v| tx(d, TxMatch::SshSoftwareVersion(unquote(v.unwrap_or("")).into_bytes()))),
    // SMTP and mail.
    kw("smtp.helo", NOOPT, |d, k, _| buffer(d, k, Buf::SmtpHelo)),
    kw("smtp.mail_from", NOOPT, |d, k, _| buffer(d, k, Buf::SmtpMailFrom)),
    kw("smtp.rcpt_to", NOOPT, |d, k, _| buffer(d, k, Buf::SmtpRcptTo)),
    kw("email.from", NOOPT, |d, k, _| buffer(d, k, Buf::EmailFrom)),
    kw("email.subject", NOOPT, |d, k, _| buffer(d, k, Buf::EmailSubject)),
    kw("email.to", NOOPT, |d, k, _| buffer(d, k, Buf::EmailTo)),
    kw("email.cc", NOOPT, |d, k, _| buffer(d, k, Buf::EmailCc)),
    kw("email.date", NOOPT, |d, k, _| buffer(d, k, Buf::EmailDate)),
    kw("email.message_id", NOOPT, |d, k, _| buffer(d, k, Buf::EmailMessageId)),
    kw("email.x_mailer", NOOPT, |d, k, _| buffer(d, k, Buf::EmailXMailer)),
    kw("email.url", NOOPT, |d, k, _| buffer(d, k, Buf::EmailUrl)),
    // FTP.
    kw("ftp.command", NOOPT, |d, k, _| buffer(d, k, Buf::FtpCommand)),
    kw("ftp.command_data", NOOPT, |d, k, _| buffer(d, k, Buf::FtpCommandData)),
    kw("ftp.reply", NOOPT, |d, k, _| buffer(d, k, Buf::FtpReply)),
    kw("ftpbounce", NOOPT, |d, _, _| tx(d, TxMatch::Field { field: Field::FtpBounce, test: Cmp::Eq(1), negated: false })),
    kw("ftpdata_command", 0, |d, _, v| {
        let n = match v.unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "stor" => 1,
            "retr" => 2,
            x => return Err(format!("ftpdata_command: \"{x}\" is neither stor nor retr")),
        };
        tx(d, TxMatch::Field { field: Field::FtpdataCommand, test: Cmp::Eq(n), negated: false })
    }),
    // SMB and DCERPC.
    kw("smb.share", NOOPT, |d, k, _| buffer(d, k, Buf::SmbShare)),
    kw("smb_share", NOOPT, |d, k, _| buffer(d, k, Buf::SmbShare)),
    kw("smb.named_pipe", NOOPT, |d, k, _| buffer(d, k, Buf::SmbNamedPipe)),
    kw("smb_named_pipe", NOOPT, |d, k, _| buffer(d, k, Buf::SmbNamedPipe)),
    kw("smb.ntlmssp_user", NOOPT, |d, k, _| buffer(d, k, Buf::SmbNtlmsspUser)),
    kw("smb.ntlmssp_domain", NOOPT, |d, k, _| buffer(d, k, Buf::SmbNtlmsspDomain)),
    kw("dcerpc.stub_data", NOOPT, |d, k, _| buffer(d, k, Buf::DceStubData)),
    kw("dce_stub_data", NOOPT, |d, k, _| buffer(d, k, Buf::DceStubData)),
    kw("dcerpc.iface", 0, |d, _, v| tx(d, detect_appkw::parse_iface(v.ok_or("dcerpc.iface needs a value")?)?)),
    kw("dce_iface", 0, |d, _, v| tx(d, detect_appkw::parse_iface(v.ok_or("dce_iface needs a value")?)?)),
    kw("dcerpc.opnum", 0, opnum),
    kw("dce_opnum", 0, opnum),
    // Kerberos.
    kw("krb5.cname", NOOPT, |d, k, _| buffer(d, k, Buf::Krb5Cname)),
    kw("krb5_cname", NOOPT, |d, k, _| buffer(d, k, Buf::Krb5Cname)),
    kw("krb5.sname", NOOPT, |d, k, _| buffer(d, k, Buf::Krb5Sname)),
    kw("krb5_sname", NOOPT, |d, k, _| buffer(d, k, Buf::Krb5Sname)),
    kw("krb5_msg_type", 0, |d, _, v| {
        let (test, negated) = detect_appkw::parse_uint(v.ok_or("krb5_msg_type needs a value")?, detect_appkw::KRB5_MSG_TYPES)?;
        tx(d, TxMatch::Field { field: Field::Krb5MsgType, test, negated })
    }),
    kw("krb5.msg_type", 0, |d, _, v| {
        let (test, negated) = detect_appkw::parse_uint(v.ok_or("krb5.msg_type needs a value")?, detect_appkw::KRB5_MSG_TYPES)?;
        tx(d, TxMatch::Field { field: Field::Krb5MsgType, test, negated })
    }),
    kw("krb5.ticket_encryption", 0, |d, _, v| tx(d, detect_appkw::parse_ticket_encryption(v.ok_or("krb5.ticket_encryption needs a value")?)?)),
    kw("krb5_err_code", 0, |d, _, v| {
        let (test, negated) = detect_appkw::parse_uint(v.ok_or("krb5_err_code needs a value")?, &[])?;
        tx(d, TxMatch::Field { field: Field::Krb5ErrCode, test, negated })
    }),
    // Protocol and anomaly keywords.
    kw("app-layer-event", 0, app_layer_event),
    kw("app-layer-protocol", 0, |d, _, v| {
        d.r.flowm.push(detect_appkw::parse_app_proto(v.ok_or("app-layer-protocol needs a value")?)?);
        Ok(())
    }),
    kw("stream_size", 0, |d, _, v| {
        d.r.flowm.push(detect_appkw::parse_stream_size(v.ok_or("stream_size needs a value")?)?);
        Ok(())
    }),
    // `=>` rules: the direction of the buffers that follow.
    kw("bidir.toclient", NOOPT, |d, _, _| bidir_dir(d, true)),
    kw("bidir.toserver", NOOPT, |d, _, _| bidir_dir(d, false)),
    // Packet header buffers.
    kw("ipv4.hdr", NOOPT, |d, k, _| buffer(d, k, Buf::Ipv4Hdr)),
    kw("ipv6.hdr", NOOPT, |d, k, _| buffer(d, k, Buf::Ipv6Hdr)),
    kw("tcp.hdr", NOOPT, |d, k, _| buffer(d, k, Buf::TcpHdr)),
    kw("udp.hdr", NOOPT, |d, k, _| buffer(d, k, Buf::UdpHdr)),
    kw("icmpv4.hdr", NOOPT, |d, k, _| buffer(d, k, Buf::Icmpv4Hdr)),
    kw("icmpv6.hdr", NOOPT, |d, k, _| buffer(d, k, Buf::Icmpv6Hdr)),
    // Byte keywords and base64.
    kw("byte_test", 0, |d, _, v| {
        let vars = |n: &str| d.var(n);
        let t = detect_byte::parse_byte_test(v.ok_or("byte_test needs a value")?, &vars)?;
        let b = d.item_buf(t.relative);
        push_payload_item(d, b, Item::ByteTest(Box::new(t)));
        Ok(())
    }),
    kw("byte_jump", 0, |d, _, v| {
        let vars = |n: &str| d.var(n);
        let j = detect_byte::parse_byte_jump(v.ok_or("byte_jump needs a value")?, &vars)?;
        let b = d.item_buf(j.relative);
        push_payload_item(d, b, Item::ByteJump(Box::new(j)));
        Ok(())
    }),
    kw("byte_extract", 0, |d, _, v| {
        let (mut e, name) = detect_byte::parse_byte_extract(v.ok_or("byte_extract needs a value")?)?;
        e.var = d.define_var(name)?;
        let b = d.item_buf(e.relative);
        push_payload_item(d, b, Item::ByteExtract(Box::new(e)));
        Ok(())
    }),
    kw("byte_math", 0, |d, _, v| {
        let vars = |n: &str| d.var(n);
        let (mut m, name) = detect_byte::parse_byte_math(v.ok_or("byte_math needs a value")?, &vars)?;
        m.var = d.define_var(name)?;
        let b = d.item_buf(m.relative);
        push_payload_item(d, b, Item::ByteMath(Box::new(m)));
        Ok(())
    }),
    kw("base64_decode", 0, |d, _, v| {
        let b64 = detect_byte::parse_base64_decode(v)?;
        let b = d.item_buf(b64.relative);
        push_payload_item(d, b, Item::Base64(Box::new(b64)));
        Ok(())
    }),
    kw("base64_data", NOOPT, |d, _, _| {
        d.cur = Buf::Base64Data;
        Ok(())
    }),
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
    kw("tcp.mss", 0, |d, _, v| {
        d.r.pkt.push(PktMatch::TcpMss(Cmp::parse(v.ok_or("tcp.mss needs a value")?)?));
        Ok(())
    }),
    kw("fragbits", 0, |d, _, v| {
        d.r.pkt.push(parse_fragbits(v.ok_or("fragbits needs a value")?)?);
        Ok(())
    }),
    // Flow state.
    kw("flow", 0, flow),
    kw("flowbits", 0, |d, _, v| detect_flowbits::setup(&mut d.r, v, d.bits)),
    kw("flowint", 0, |d, _, v| {
        let op = detect_flowint::parse_flowint(v.ok_or("flowint needs a value")?, d.bits)?;
        d.r.flowints.push(op);
        Ok(())
    }),
    kw("xbits", 0, |d, _, v| {
        let op = detect_flowint::parse_xbits(v.ok_or("xbits needs a value")?, d.bits)?;
        d.r.xbits.push(op);
        Ok(())
    }),
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
    // `=>` rules: a buffer without a direction of its own is taken from the direction
    // bidir.toserver/bidir.toclient chose (to the server by default); once only.
    if d.r.bidir_tx && b.side().is_none() && b.is_app() {
        let side = !d.bidir_toclient;
        match d.r.bidir_sides.iter().find(|(x, _)| *x == b) {
            Some((_, s)) if *s != side => return Err(format!("{} used for both directions in one => rule", k.name)),
            Some(_) => {}
            None => d.r.bidir_sides.push((b, side)),
        }
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
        vars: None,
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
    let n = d.num(Some(n), "isdataat")?;
    let mut relative = false;
    for p in parts {
        match p.trim() {
            "relative" => relative = true,
            "rawbytes" => {}
            x => return Err(format!("isdataat: unknown option \"{x}\"")),
        }
    }
    let b = d.item_buf(relative);
    push_item(&mut d.r, b, Item::IsDataAt { n, relative, negated });
    d.last_item_buf = Some(b);
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
    let mut parts = s.split(',');
    let c = Cmp::parse(parts.next().unwrap_or(""))?;
    let raw = match parts.next().map(|x| x.trim()) {
        None | Some("norm") => false,
        Some("raw") => true,
        Some(x) => return Err(format!("urilen: unknown option \"{x}\"")),
    };
    d.r.pkt.push(PktMatch::Urilen(c, raw));
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

/// offset (0), depth (1), distance (2), within (3) of the preceding content: a number, or a
/// variable defined earlier in the rule.
fn content_num(d: &mut RuleDraft, k: &Keyword, v: Option<&str>, which: usize) -> Result<(), String> {
    // Found first: a modifier without a content fails for that, whatever its value.
    d.preceding_content(k)?;
    let n = d.num(v, k.name)?;
    let c = d.preceding_content(k)?;
    let lit = match n {
        Num::Lit(x) => Some(x),
        Num::Var(i) => {
            c.vars.get_or_insert_with(|| Box::new([None; 4]))[which] = Some(i);
            None
        }
    };
    if let Some(vs) = c.vars.as_mut() {
        if lit.is_some() {
            vs[which] = None;
        }
    }
    match which {
        0 => c.offset = lit,
        1 => c.depth = lit,
        2 => c.distance = lit,
        _ => c.within = lit,
    }
    Ok(())
}

/// A byte keyword or base64_decode into buffer `b` (what content modifiers see as the last item).
fn push_payload_item(d: &mut RuleDraft, b: Buf, it: Item) {
    push_item(&mut d.r, b, it);
    d.last_item_buf = Some(b);
}

fn bidir_dir(d: &mut RuleDraft, toclient: bool) -> Result<(), String> {
    if !d.r.bidir_tx {
        return Err("bidir.toclient/bidir.toserver need a => rule".into());
    }
    d.bidir_toclient = toclient;
    Ok(())
}

fn tx(d: &mut RuleDraft, m: TxMatch) -> Result<(), String> {
    d.r.tx.push(m);
    Ok(())
}

/// tls.subject:"...", tls.issuerdn:"...", tls.fingerprint:"..." (optionally negated): a content
/// on the buffer (the fingerprint compared whole and without case).
fn legacy_tls(d: &mut RuleDraft, v: Option<&str>, b: Buf, whole: bool) -> Result<(), String> {
    let v = v.ok_or("needs a value")?.trim();
    let (negated, v) = match v.strip_prefix('!') {
        Some(x) => (true, x.trim()),
        None => (false, v),
    };
    let text = unquote(v);
    if text.is_empty() {
        return Err("empty value".into());
    }
    let pat = if whole { text.to_ascii_lowercase().into_bytes() } else { text.into_bytes() };
    let c = Content {
        pat_lc: pat.to_ascii_lowercase(),
        pat,
        nocase: whole,
        negated,
        offset: None,
        depth: None,
        distance: None,
        within: None,
        startswith: whole,
        endswith: whole,
        fast_pattern: false,
        vars: None,
    };
    push_item(&mut d.r, b, Item::Content(c));
    Ok(())
}

/// `tls.version:<1.0|1.1|1.2|1.3|ssl3|0xNNNN>`
fn tls_version(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let s = unquote(v.ok_or("tls.version needs a value")?);
    let (negated, s) = match s.strip_prefix('!') {
        Some(x) => (true, x.trim().to_string()),
        None => (false, s.trim().to_string()),
    };
    let ver = match s.as_str() {
        "1.0" => 0x0301,
        "1.1" => 0x0302,
        "1.2" => 0x0303,
        "1.3" => 0x0304,
        "3" | "3.0" | "ssl3" | "sslv3" => 0x0300,
        "2" | "2.0" | "ssl2" | "sslv2" => 0x0200,
        x => match x.strip_prefix("0x").map(|h| u64::from_str_radix(h, 16)) {
            Some(Ok(n)) => n,
            _ => return Err(format!("tls.version: invalid version \"{x}\"")),
        },
    };
    tx(d, TxMatch::Field { field: Field::TlsVersion, test: Cmp::Eq(ver), negated })
}

/// `tls_cert_notbefore:[<|>]<date>[<>date]`: dates as YYYY-MM-DD[THH:MM:SS].
fn cert_date(d: &mut RuleDraft, v: Option<&str>, f: Field) -> Result<(), String> {
    let s = v.ok_or("needs a date")?.trim();
    let date = |x: &str| -> Result<u64, String> { parse_date(x.trim()).ok_or_else(|| format!("invalid date \"{x}\"")) };
    let test = if let Some((a, b)) = s.split_once("<>") {
        Cmp::Range(date(a)?, date(b)?)
    } else if let Some(x) = s.strip_prefix('<') {
        Cmp::Lt(date(x)?)
    } else if let Some(x) = s.strip_prefix('>') {
        Cmp::Gt(date(x)?)
    } else {
        Cmp::Eq(date(s)?)
    };
    tx(d, TxMatch::Field { field: f, test, negated: false })
}

/// YYYY[-MM[-DD[THH[:MM[:SS]]]]] (UTC) as seconds since the epoch.
fn parse_date(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T').unwrap_or((s, ""));
    let mut dp = date.split('-').map(|x| x.parse::<i64>());
    let y = dp.next()?.ok()?;
    let m = dp.next().unwrap_or(Ok(1)).ok()?;
    let dd = dp.next().unwrap_or(Ok(1)).ok()?;
    let mut tp = time.split(':').filter(|x| !x.is_empty()).map(|x| x.parse::<i64>());
    let h = tp.next().unwrap_or(Ok(0)).ok()?;
    let mi = tp.next().unwrap_or(Ok(0)).ok()?;
    let se = tp.next().unwrap_or(Ok(0)).ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    let days = crate::output_eve::days_from_civil(y, m as u32, dd as u32);
    u64::try_from(days * 86400 + h * 3600 + mi * 60 + se).ok()
}

fn opnum(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let tests = detect_appkw::parse_opnums(v.ok_or("dcerpc.opnum needs a value")?)?;
    tx(d, TxMatch::AnyOf { field: Field::DceOpnum, tests })
}

/// `app-layer-event:<proto>.<event>`: events of the application layers parsed here.
fn app_layer_event(d: &mut RuleDraft, _: &Keyword, v: Option<&str>) -> Result<(), String> {
    let v = v.ok_or("app-layer-event needs a value")?.trim();
    let (p, name) = v.split_once('.').ok_or_else(|| format!("app-layer-event: \"{v}\" is not <protocol>.<event>"))?;
    let proto = match Proto::parse(p) {
        Some(pr) if pr.is_app() => pr,
        _ => return Err(format!("app-layer-event: unsupported protocol \"{p}\"")),
    };
    if !crate::applayer_events::known(proto, name) {
        return Err(format!("app-layer-event: unsupported event \"{v}\""));
    }
    tx(d, TxMatch::Event { proto, name: format!("{}.{name}", proto.name()) })
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
