//! The application-layer parsers other than HTTP, DNS and TLS, by protocol: which one a
//! recognised protocol gets, UDP protocol recognition, and FTP data channels.

use crate::applayer_tx::{AppLayer, Expectation};
use crate::detect_parse::Proto;

/// The parser of a recognised protocol, when there is one.
pub fn new_parser(p: Proto) -> Option<Box<dyn AppLayer>> {
    let _ = p;
    None
}

/// Recognise a UDP protocol from a datagram (and its ports).
pub fn detect_udp(d: &[u8], sp: u16, dp: u16) -> Option<Proto> {
    let _ = (d, sp, dp);
    None
}

/// The parser of an FTP data channel announced by its control channel.
pub fn ftp_data(e: Expectation) -> Option<Box<dyn AppLayer>> {
    let _ = e;
    None
}
