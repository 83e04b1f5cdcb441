//! Datagram protocols recognised by port and content whose messages each make one
//! transaction of their direction: DHCP, NTP, SNMP, SIP, TFTP. Rules name them by protocol
//! (`alert dhcp ...`) and inspect their datagrams; no protocol keywords beyond that.

use crate::applayer_tx::{AppLayer, AppTxs, ParseEnv};
use crate::detect_parse::Proto;

#[derive(Debug)]
pub struct DatagramState {
    proto: Proto,
    txs: AppTxs,
}

impl DatagramState {
    pub fn new(proto: Proto) -> DatagramState {
        DatagramState { proto, txs: AppTxs::default() }
    }
}

impl AppLayer for DatagramState {
    fn proto(&self) -> Proto {
        self.proto
    }
    fn parse(&mut self, to_server: bool, _data: &[u8], _env: &mut ParseEnv) -> bool {
        let i = self.txs.begin();
        let tx = &mut self.txs.txs[i];
        tx.only = Some(to_server);
        tx.touch(to_server);
        tx.finish(to_server);
        true
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
}

/// Recognise a datagram protocol by its ports and a look at the content.
pub fn detect(d: &[u8], sp: u16, dp: u16) -> Option<Proto> {
    let port = |p: u16| sp == p || dp == p;
    if (port(67) || port(68)) && d.len() >= 240 && d[236..240] == [0x63, 0x82, 0x53, 0x63] && matches!(d[0], 1 | 2) {
        return Some(Proto::Dhcp);
    }
    if port(88) && crate::applayer_krb5::looks_like_krb5(d) {
        return Some(Proto::Krb5);
    }
    if port(123) && d.len() >= 48 && (1..=4).contains(&((d[0] >> 3) & 7)) {
        return Some(Proto::Ntp);
    }
    if (port(161) || port(162)) && d.first() == Some(&0x30) {
        return Some(Proto::Snmp);
    }
    if port(5060) || port(5061) {
        const M: [&[u8]; 14] = [b"INVITE ", b"ACK ", b"BYE ", b"CANCEL ", b"REGISTER ", b"OPTIONS ", b"PRACK ", b"SUBSCRIBE ", b"NOTIFY ", b"PUBLISH ", b"INFO ", b"REFER ", b"MESSAGE ", b"SIP/2.0 "];
        if M.iter().any(|m| d.starts_with(m)) {
            return Some(Proto::Sip);
        }
    }
    if port(69) && d.len() >= 4 && d[0] == 0 && (1..=5).contains(&d[1]) {
        return Some(Proto::Tftp);
    }
    if crate::applayer_dcerpc::looks_like_udp_pdu(d) {
        return Some(Proto::Dcerpc);
    }
    None
}
