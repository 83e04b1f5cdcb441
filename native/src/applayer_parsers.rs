//! The application-layer parsers other than HTTP, DNS and TLS, by protocol: which one a
//! recognised protocol gets, UDP protocol recognition, and FTP data channels.

use crate::applayer_tx::{AppLayer, Expectation};
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
        _ => new_parser(p),
    }
}

/// The parser of an FTP data channel announced by its control channel.
pub fn ftp_data(e: Expectation) -> Option<Box<dyn AppLayer>> {
    Some(Box::new(crate::applayer_ftp::FtpDataState::new(e.link)))
}
