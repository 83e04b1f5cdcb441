//! The application-layer parsers other than HTTP, DNS and TLS, by protocol: which one a
//! recognised protocol gets, UDP protocol recognition, and FTP data channels.

use crate::applayer_tx::{AppLayer, Expectation, ParseEnv};
use crate::detect_parse::Proto;

/// The parser of a recognised protocol, when there is one.
pub fn new_parser(p: Proto) -> Option<Box<dyn AppLayer>> {
    Some(match p {
        Proto::Ssh => Box::new(crate::applayer_ssh::SshState::default()),
        Proto::Krb5 => Box::new(crate::applayer_krb5::Krb5State::new(true)),
        Proto::Smb => Box::new(crate::applayer_smb::SmbState::default()),
        Proto::Ftp => Box::new(crate::applayer_ftp::FtpState::default()),
        Proto::Smtp => Box::new(crate::applayer_smtp::SmtpState::default()),
        Proto::Dcerpc => Box::new(crate::applayer_dcerpc::DcerpcState::default()),
        Proto::Dhcp | Proto::Ntp | Proto::Snmp | Proto::Sip | Proto::Tftp => Box::new(crate::applayer_udp::DatagramState::new(p)),
        _ => return None,
    })
}

/// Recognise a UDP protocol from a datagram (and its ports).
pub fn detect_udp(d: &[u8], sp: u16, dp: u16) -> Option<Proto> {
    crate::applayer_udp::detect(d, sp, dp)
}

/// The parser of a protocol recognised on UDP.
pub fn new_udp_parser(p: Proto) -> Option<Box<dyn AppLayer>> {
    match p {
        Proto::Krb5 => Some(Box::new(crate::applayer_krb5::Krb5State::new(false))),
        Proto::Dcerpc => Some(Box::new(crate::applayer_dcerpc::DcerpcUdpState::default())),
        _ => new_parser(p),
    }
}

/// The parser of an FTP data channel announced by its control channel.
pub fn ftp_data(e: Expectation) -> Option<Box<dyn AppLayer>> {
    Some(Box::new(crate::applayer_ftp::FtpDataState::new(e.link)))
}

/// Feed a parser a conversation encoded for fuzzing: records of [direction byte (bit 0 set:
/// from the client, bit 1 set: close that direction), length (u16 LE), bytes]. A short
/// tail is fed whole to the client side.
pub fn feed_conversation(p: &mut dyn AppLayer, data: &[u8]) {
    let mut expect = Vec::new();
    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    let srv = std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
    let mut o = 0;
    while o < data.len() {
        if data.len() - o < 3 {
            let mut env = ParseEnv { client: (ip, 40000), server: (srv, 445), ts_us: o as i64, expect: &mut expect };
            p.parse(true, &data[o..], &mut env);
            break;
        }
        let d = data[o];
        let len = u16::from_le_bytes([data[o + 1], data[o + 2]]) as usize;
        let body = &data[o + 3..(o + 3 + len).min(data.len())];
        o += 3 + body.len();
        let mut env = ParseEnv { client: (ip, 40000), server: (srv, 445), ts_us: o as i64, expect: &mut expect };
        p.parse(d & 1 != 0, body, &mut env);
        if d & 2 != 0 {
            p.close(d & 1 != 0);
        }
        // What detection reads must stay consistent: buffers and fields of every transaction.
        let n: usize = p.txs().txs.iter().map(|t| t.bufs.len() + t.fields.len()).sum();
        std::hint::black_box(n);
        if expect.len() > 4096 {
            expect.clear();
        }
    }
    p.close(true);
    p.close(false);
}
