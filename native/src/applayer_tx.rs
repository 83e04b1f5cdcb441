//! The transactions of the application layers other than HTTP (TLS, SSH, SMTP, FTP, SMB,
//! DCERPC, Kerberos, DHCP, ...), in one shape detection reads: each transaction holds the
//! sticky buffers its parser filled (tagged with the direction they came from), the numbers
//! transaction keywords test (krb5_msg_type, dcerpc.opnum, ...) and the anomaly events it
//! raised (app-layer-event). A parser bumps a direction's generation when it added to a
//! transaction; detection inspects a transaction again only then.

use crate::detect_parse::Buf;

/// A number a transaction keyword tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// TLS: the version of the record layer / hello of a direction (0x0303 ...).
    TlsVersion,
    /// Certificate validity, seconds since the epoch (of the direction's leaf certificate).
    CertNotBefore,
    CertNotAfter,
    Krb5MsgType,
    Krb5ErrCode,
    /// The etype of a KDC reply's ticket (as i64 in two's complement: etypes may be negative).
    Krb5TicketEtype,
    DceOpnum,
    /// ftpdata_command: 1 STOR, 2 RETR.
    FtpdataCommand,
    /// ftpbounce: a PORT command naming another host than the client.
    FtpBounce,
    /// ssh.protoversion as a number: 2 for "2.0", 1 for "1.99" etc. is kept in a buffer.
    SshHasProto,
}

pub const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
pub const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Bytes as hex digits, with `sep` between bytes when given (a table, not a format call per
/// byte: JA3 and HASSH hashes and certificate fingerprints are built for every handshake).
pub fn hex_with(b: &[u8], digits: &[u8; 16], sep: Option<char>) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if let (Some(c), true) = (sep, i > 0) {
            s.push(c);
        }
        s.push(digits[usize::from(x >> 4)] as char);
        s.push(digits[usize::from(x & 15)] as char);
    }
    s
}

/// Bytes as lower-case hex digits (JA3, JA3S and HASSH hashes).
pub fn hex(b: &[u8]) -> String {
    hex_with(b, HEX_LOWER, None)
}

/// One transaction.
#[derive(Debug, Default)]
pub struct AppTx {
    pub id: u64,
    /// (buffer, from the client, bytes).
    pub bufs: Vec<(Buf, bool, Vec<u8>)>,
    /// (field, from the client, value).
    pub fields: Vec<(Field, bool, u64)>,
    /// DCERPC: the interfaces (uuid, major version) bound to the request's context.
    pub ifaces: Vec<([u8; 16], u16)>,
    /// app-layer-event names, e.g. "tls.invalid_handshake_message".
    pub events: Vec<&'static str>,
    /// DCERPC: the data representation is little endian (byte keywords with `dce`).
    pub dce_le: bool,
    /// Per direction (0: from the client): changes not yet inspected.
    pub gen: [u32; 2],
    /// `gen` as it stood before the packet at hand (TCP), for `wait_reply`.
    pub before: [u32; 2],
    /// What the packet's own data changed is inspected from that direction's next packet
    /// on: Suricata (IDS mode) parses stream data once the other side acknowledged it and
    /// inspects it on the direction's next packet, by when the reply may have changed what
    /// a buffer means (an SMB tree connect turns out to be a named pipe, not a share).
    pub wait_reply: bool,
    /// Per direction: nothing more will be added.
    pub done: [bool; 2],
    /// The parser's own key for the transaction (a DCERPC call id, an SMB message id, ...).
    pub key: u64,
    /// A transaction of one direction only (a Kerberos or DHCP message): it is inspected in
    /// that direction only, and the other counts as done.
    pub only: Option<bool>,
}

impl AppTx {
    pub fn new(id: u64) -> AppTx {
        AppTx { id, ..Default::default() }
    }
    /// Add a buffer from one direction (the transaction changed on that side).
    pub fn push_buf(&mut self, b: Buf, to_server: bool, v: &[u8]) {
        self.bufs.push((b, to_server, v.to_vec()));
        self.touch(to_server);
    }
    pub fn set_field(&mut self, f: Field, to_server: bool, v: u64) {
        self.fields.push((f, to_server, v));
        self.touch(to_server);
    }
    pub fn event(&mut self, e: &'static str, to_server: bool) {
        if !self.events.contains(&e) {
            self.events.push(e);
        }
        self.touch(to_server);
    }
    pub fn touch(&mut self, to_server: bool) {
        self.gen[usize::from(!to_server)] += 1;
    }
    /// Nothing more will come from this direction (it is not a change to inspect: what
    /// completed it was added with its data).
    pub fn finish(&mut self, to_server: bool) {
        self.done[usize::from(!to_server)] = true;
    }
    pub fn has_buf(&self, b: Buf) -> bool {
        self.bufs.iter().any(|(x, _, _)| *x == b)
    }
}

/// A flow's transactions of one protocol, oldest first; bounded (the oldest are dropped).
#[derive(Debug, Default)]
pub struct AppTxs {
    pub txs: Vec<AppTx>,
    next_id: u64,
}

/// Transactions kept per flow: older ones are inspected by then, or never will be.
const MAX_TXS: usize = 64;

impl AppTxs {
    /// Start a transaction; returns its index.
    pub fn begin(&mut self) -> usize {
        if self.txs.len() >= MAX_TXS {
            self.txs.remove(0);
        }
        self.txs.push(AppTx::new(self.next_id));
        self.next_id += 1;
        self.txs.len() - 1
    }
    pub fn last(&mut self) -> Option<&mut AppTx> {
        self.txs.last_mut()
    }
    /// The newest transaction, or a new one when there is none.
    pub fn current(&mut self) -> &mut AppTx {
        if self.txs.is_empty() {
            self.begin();
        }
        let i = self.txs.len() - 1;
        &mut self.txs[i]
    }
    /// The newest transaction whose direction `to_server` is not done, else a new one.
    pub fn open(&mut self, to_server: bool) -> &mut AppTx {
        let d = usize::from(!to_server);
        let i = match self.txs.iter().rposition(|t| !t.done[d]) {
            Some(i) => i,
            None => self.begin(),
        };
        &mut self.txs[i]
    }
    /// Drop transactions complete in both directions and inspected (`seen` says which).
    pub fn prune(&mut self, seen: impl Fn(&AppTx) -> bool) {
        if self.txs.len() > 1 {
            let last = self.txs.len() - 1;
            let mut i = 0;
            self.txs.retain(|t| {
                let keep = i == last || !(t.done[0] && t.done[1] && seen(t));
                i += 1;
                keep
            });
        }
    }
}

/// What a parser may need besides the bytes: where the flow goes (FTP data channels name
/// their endpoints) and the channels it announces for later flows.
pub struct ParseEnv<'a> {
    pub client: (std::net::IpAddr, u16),
    pub server: (std::net::IpAddr, u16),
    pub ts_us: i64,
    /// Flows announced by this one (FTP PASV/PORT): the engine gives them their parser.
    pub expect: &'a mut Vec<Expectation>,
}

/// A flow announced by another flow's protocol (an FTP data channel).
#[derive(Debug, Clone)]
pub struct Expectation {
    /// The side that will accept the connection and its port (the other side's port is
    /// unknown); `from`: the host that will connect.
    pub to: (std::net::IpAddr, u16),
    pub from: std::net::IpAddr,
    /// Announced at (µs); unused ones expire.
    pub ts_us: i64,
    /// What the control channel learns about the data (STOR/RETR and the file name).
    pub link: std::sync::Arc<std::sync::Mutex<crate::applayer_ftp::FtpLink>>,
}

/// An application-layer parser with transactions in the shape detection reads (`AppTxs`).
pub trait AppLayer: Send {
    fn proto(&self) -> crate::detect_parse::Proto;
    /// In-order stream bytes (TCP) or one datagram (UDP) of a direction; true when a
    /// transaction changed.
    fn parse(&mut self, to_server: bool, data: &[u8], env: &mut ParseEnv) -> bool;
    /// The direction ended (FIN, RST, flow end); true when a transaction changed.
    fn close(&mut self, _to_server: bool) -> bool {
        false
    }
    fn txs(&self) -> &AppTxs;
    fn txs_mut(&mut self) -> &mut AppTxs;
    /// The stream now carries another protocol (STARTTLS, AUTH TLS accepted): detection
    /// starts again on the data that follows.
    fn switches_protocol(&self) -> bool {
        false
    }
    /// The stream now carries encrypted application data (TLS after its handshake, SSH after
    /// both NEWKEYS): its payload is noise to content rules, and Suricata's default stops
    /// inspecting it, keeping the protocol's own keywords.
    fn payload_encrypted(&self) -> bool {
        false
    }
}
