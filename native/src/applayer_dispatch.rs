//! The app layer of a flow: recognise the protocol from each direction's first in-order bytes
//! (by content, so app-layer-protocol and the parsers work on any port; the port only breaks
//! ties such as a "220" banner that SMTP and FTP share), then hand each direction's data to
//! that protocol's parser. Returns whether the flow's app-layer state changed, i.e. whether
//! detection has transactions to look at.

use crate::applayer_http::{looks_like_request, looks_like_response, HttpState};
use crate::applayer_tls::TlsState;
use crate::applayer_tx::{Expectation, ParseEnv};
use crate::decode_packet::{Packet, TH_FIN, TH_RST};
use crate::detect_appkw::AlProto;
use crate::detect_parse::Proto;
use crate::flow_table::{App, Flow};

/// Bytes of a direction looked at before protocol detection gives up on it.
const PD_LIMIT: usize = 4096;

/// What a direction's first bytes say.
enum Pd {
    Found(Proto),
    /// Could still become one (a banner both SMTP and FTP send, a short start).
    More,
    No,
}

/// Recognise the protocol of a TCP direction from its first bytes.
fn detect_tcp(to_server: bool, d: &[u8], sp: u16, dp: u16) -> Pd {
    let port = |p: u16| sp == p || dp == p;
    if d.is_empty() {
        return Pd::More;
    }
    // TLS record (handshake), or an SSLv2-format ClientHello.
    if d[0] == 0x16 {
        return match d.get(1) {
            None => Pd::More,
            Some(3) => Pd::Found(Proto::Tls),
            _ => Pd::No,
        };
    }
    if to_server && d[0] & 0x80 != 0 && d.len() >= 5 && d[2] == 1 && (d[3] == 3 || d[3] == 2) {
        return Pd::Found(Proto::Tls);
    }
    if to_server && looks_like_request(d) || !to_server && looks_like_response(d) {
        return Pd::Found(Proto::Http);
    }
    if d.starts_with(b"SSH-") {
        return Pd::Found(Proto::Ssh);
    }
    if b"SSH-".starts_with(&d[..d.len().min(4)]) {
        return Pd::More;
    }
    // SMB over NetBIOS session service (or direct TCP): a message whose body is an SMB header.
    if d.len() >= 8 && (d[0] == 0 || d[0] == 0x85) && matches!(&d[4..8], b"\xffSMB" | b"\xfeSMB" | b"\xfdSMB") {
        return Pd::Found(Proto::Smb);
    }
    if d.len() < 8 && d[0] == 0 && port(445) {
        return Pd::More;
    }
    if d[0] == 0x81 && port(139) {
        return Pd::Found(Proto::Smb);
    }
    // DCERPC connection-oriented PDU: version 5.0, a known packet type.
    if d.len() >= 16 && d[0] == 5 && d[1] == 0 && matches!(d[2], 0 | 2 | 3 | 11 | 12 | 13 | 14 | 15 | 16) && u16::from_le_bytes([d[8], d[9]]) as usize >= 16 {
        return Pd::Found(Proto::Dcerpc);
    }
    // Kerberos over TCP: a 4-byte length, then an application-tagged message.
    if d.len() >= 6 && (port(88)) && d[0] & 0x80 == 0 && matches!(d[4], 0x6a | 0x6b | 0x6c | 0x6d | 0x7e) {
        return Pd::Found(Proto::Krb5);
    }
    if to_server {
        let up = |n: usize| d[..d.len().min(n)].to_ascii_uppercase();
        let w = up(5);
        if w.starts_with(b"EHLO") || w.starts_with(b"HELO") {
            return Pd::Found(Proto::Smtp);
        }
        if w.starts_with(b"USER ") || w.starts_with(b"PASS ") || w.starts_with(b"AUTH ") && port(21) || w.starts_with(b"FEAT") || w.starts_with(b"SYST") {
            return Pd::Found(Proto::Ftp);
        }
        if (w.starts_with(b"MAIL ") || w.starts_with(b"QUIT") || w.starts_with(b"STARTTLS") || w.starts_with(b"AUTH ")) && (port(25) || port(587) || port(2525)) {
            return Pd::Found(Proto::Smtp);
        }
    } else if d.starts_with(b"220") {
        // The greeting SMTP and FTP share: the port, the banner or the client's first command.
        let line = &d[..d.iter().position(|&c| c == b'\n').unwrap_or(d.len())];
        let has = |n: &[u8]| line.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
        if port(21) || has(b"FTP") && !has(b"SMTP") {
            return Pd::Found(Proto::Ftp);
        }
        if port(25) || port(587) || port(2525) || has(b"SMTP") {
            return Pd::Found(Proto::Smtp);
        }
        return Pd::More;
    }
    if port(53) {
        return Pd::Found(Proto::Dns);
    }
    Pd::No
}

/// A parser for a recognised protocol.
fn new_app(p: Proto) -> App {
    match p {
        Proto::Http => App::Http(Box::new(HttpState::new())),
        Proto::Dns => App::Dns,
        Proto::Tls => App::Gen(Box::new(TlsState::default())),
        _ => match crate::applayer_parsers::new_parser(p) {
            Some(g) => App::Gen(g),
            None => App::Failed,
        },
    }
}

/// A TCP packet: the in-order stream bytes it delivered (if any), and a FIN/RST, which ends
/// that direction (a response delimited by the connection's close completes).
pub fn on_tcp(f: &mut Flow, p: &Packet, to_server: bool, stream: Option<&[u8]>, expect: &mut Vec<Expectation>) -> bool {
    let mut app_changed = false;
    if let Some(data) = stream {
        app_changed = feed_tcp(f, to_server, data, p, expect);
    }
    if let Some(t) = &p.tcp {
        if t.flags & (TH_FIN | TH_RST) != 0 {
            match &mut f.app {
                App::Http(h) if !to_server => {
                    h.close_response();
                    app_changed = true;
                }
                App::Gen(g) => app_changed |= g.close(to_server),
                _ => {}
            }
        }
    }
    app_changed
}

/// A UDP packet: DNS by port (its messages are parsed where they are inspected); other
/// protocols by port and content, each datagram one parser input.
pub fn on_udp(f: &mut Flow, p: &Packet, to_server: bool, expect: &mut Vec<Expectation>) -> bool {
    if matches!(f.app, App::Unknown) {
        let proto = if p.sp == 53 || p.dp == 53 {
            Some(Proto::Dns)
        } else {
            crate::applayer_parsers::detect_udp(&p.payload, p.sp, p.dp)
        };
        match proto {
            Some(pr) => {
                f.app = match pr {
                    Proto::Dns => App::Dns,
                    _ => crate::applayer_parsers::new_udp_parser(pr).map(App::Gen).unwrap_or(App::Failed),
                };
                let d = usize::from(!to_server);
                f.alproto = [AlProto::Proto(pr); 2];
                f.pd_done_now[d] = true;
            }
            None => {
                f.app = App::Failed;
                f.alproto = [AlProto::Failed; 2];
            }
        }
    }
    let (client, server) = endpoints(f, p, to_server);
    match &mut f.app {
        App::Dns => !p.payload.is_empty(),
        App::Gen(g) if !p.payload.is_empty() => {
            let mut env = ParseEnv { client, server, ts_us: p.ts_us, expect };
            g.parse(to_server, &p.payload, &mut env)
        }
        _ => false,
    }
}

fn endpoints(f: &Flow, p: &Packet, to_server: bool) -> ((std::net::IpAddr, u16), (std::net::IpAddr, u16)) {
    let server = if to_server { (p.dst, p.dp) } else { (p.src, p.sp) };
    (f.client, server)
}

/// Stream data of a TCP flow: recognise the protocol on the first data, then parse it; true
/// when a parser took the data.
fn feed_tcp(f: &mut Flow, to_server: bool, data: &[u8], p: &Packet, expect: &mut Vec<Expectation>) -> bool {
    if std::mem::take(&mut f.redetect) {
        f.app = App::Unknown;
        f.alproto = [AlProto::Unknown; 2];
        f.pd_buf = [Vec::new(), Vec::new()];
        // The next parser numbers its transactions from 0 again.
        f.tx_alerted.clear();
        f.tx_seen.clear();
        f.res_scan = None;
        f.app_vis = 0;
        f.switched = true;
    }
    let d = usize::from(!to_server);
    // Each direction's protocol is recognised on its own (app-layer-protocol tests them apart).
    if f.alproto[d] == AlProto::Unknown {
        let buffered = !f.pd_buf[d].is_empty();
        let r = if buffered {
            f.pd_buf[d].extend_from_slice(&data[..data.len().min(PD_LIMIT)]);
            detect_tcp(to_server, &f.pd_buf[d], p.sp, p.dp)
        } else {
            detect_tcp(to_server, data, p.sp, p.dp)
        };
        match r {
            Pd::Found(pr) => {
                f.alproto[d] = AlProto::Proto(pr);
                f.pd_done_now[d] = true;
                if matches!(f.alproto[1 - d], AlProto::Proto(o) if o != pr) {
                    // The directions disagree (an HTTP client meets an SSH server): Suricata
                    // raises a mismatch and this direction's protocol holds for this packet
                    // only; afterwards the direction counts as failed.
                    f.pd_mismatch = true;
                }
            }
            Pd::More if f.pd_buf[d].len() + if buffered { 0 } else { data.len() } < PD_LIMIT => {
                if !buffered {
                    f.pd_buf[d].extend_from_slice(data);
                }
            }
            _ => {
                f.alproto[d] = AlProto::Failed;
            }
        }
    }
    if matches!(f.app, App::Unknown) {
        match f.alproto[d] {
            AlProto::Proto(pr) => {
                f.app = new_app(pr);
                if let (true, App::Http(h)) = (f.switched, &mut f.app) {
                    h.after_switch = true;
                }
                if f.app_vis == 0 {
                    f.app_vis = if to_server { 1 } else { 2 };
                }
                // Bytes of the other direction seen before detection, then this direction's.
                let o = 1 - d;
                if !f.pd_buf[o].is_empty() && f.alproto[o] == AlProto::Unknown {
                    f.alproto[o] = AlProto::Proto(pr);
                }
                let early = std::mem::take(&mut f.pd_buf[o]);
                let mut changed = false;
                if !early.is_empty() {
                    changed |= parse(f, !to_server, &early, p, expect);
                }
                let mine = std::mem::take(&mut f.pd_buf[d]);
                let input: &[u8] = if mine.is_empty() { data } else { &mine };
                changed |= parse(f, to_server, input, p, expect);
                return changed;
            }
            AlProto::Failed => {
                // Client data nobody recognises ends detection (as it always did); a server's
                // unrecognised data waits for the client's.
                if to_server || f.alproto[0] == AlProto::Failed {
                    f.app = App::Failed;
                    f.pd_buf = [Vec::new(), Vec::new()];
                }
                return false;
            }
            AlProto::Unknown => return false,
        }
    }
    f.pd_buf[d].clear();
    parse(f, to_server, data, p, expect)
}

fn parse(f: &mut Flow, to_server: bool, data: &[u8], p: &Packet, expect: &mut Vec<Expectation>) -> bool {
    let (client, server) = endpoints(f, p, to_server);
    match &mut f.app {
        App::Http(h) => {
            if to_server {
                h.parse_request(data);
            } else {
                h.parse_response(data);
                f.redetect = h.tunnel_open();
            }
            true
        }
        App::Gen(g) => {
            let mut env = ParseEnv { client, server, ts_us: p.ts_us, expect };
            let changed = g.parse(to_server, data, &mut env);
            f.redetect = g.switches_protocol();
            changed
        }
        App::Dns => true,
        _ => false,
    }
}

/// A new flow that an earlier flow announced (an FTP data channel): its parser, if so.
pub fn expected(expect: &mut Vec<Expectation>, src: std::net::IpAddr, dst: (std::net::IpAddr, u16), ts_us: i64) -> Option<App> {
    // Announcements are used once and live a minute.
    expect.retain(|e| ts_us - e.ts_us < 60_000_000);
    let i = expect.iter().position(|e| e.to == dst && e.from == src)?;
    let e = expect.remove(i);
    crate::applayer_parsers::ftp_data(e).map(App::Gen)
}
