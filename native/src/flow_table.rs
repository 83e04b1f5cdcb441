//! The flow table: symmetric keys (both directions → one flow), idle timeouts and a hard cap
//! on the number of flows (oldest-idle evicted first, counted).

use crate::applayer_http::HttpState;
use crate::applayer_tx::AppLayer;
use crate::detect_parse::Proto;
use crate::stream_tcp::TcpSession;

/// Hash maps keyed by packet-derived values (flows, transactions, bits): foldhash, fast and
/// seeded at random per map, so keys crafted on the wire cannot be aimed at a table's buckets.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::net::IpAddr;

#[derive(Hash, PartialEq, Eq, Clone, Copy, Debug)]
pub struct FlowKey {
    pub a: (IpAddr, u16),
    pub b: (IpAddr, u16),
    pub proto: u8,
}

impl FlowKey {
    /// The same key for both directions: endpoints ordered.
    pub fn new(src: IpAddr, sp: u16, dst: IpAddr, dp: u16, proto: u8) -> FlowKey {
        let x = (src, sp);
        let y = (dst, dp);
        if x <= y {
            FlowKey { a: x, b: y, proto }
        } else {
            FlowKey { a: y, b: x, proto }
        }
    }
    /// Stable symmetric hash (FNV-1a over the ordered key), used as EVE flow_id.
    pub fn hash(&self, salt: u64) -> u64 {
        let mut h: u64 = 0xcbf29ce484222325 ^ salt;
        let mut eat = |b: &[u8]| {
            for &x in b {
                h ^= x as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
        };
        for (ip, port) in [self.a, self.b] {
            match ip {
                IpAddr::V4(v) => eat(&v.octets()),
                IpAddr::V6(v) => eat(&v.octets()),
            }
            eat(&port.to_be_bytes());
        }
        eat(&[self.proto]);
        h & ((1u64 << 51) - 1)
    }
}

pub enum App {
    Unknown,
    Http(Box<HttpState>),
    Dns,
    /// TLS, SSH, SMTP, FTP, SMB, DCERPC, Kerberos, DHCP, ...: parsers with `AppTxs`.
    Gen(Box<dyn AppLayer>),
    /// Detection failed or gave up: no application parsing on this flow.
    Failed,
}

impl App {
    pub fn proto(&self) -> Option<Proto> {
        match self {
            App::Http(_) => Some(Proto::Http),
            App::Dns => Some(Proto::Dns),
            App::Gen(g) => Some(g.proto()),
            _ => None,
        }
    }
    pub fn name(&self) -> Option<&'static str> {
        self.proto().map(Proto::name)
    }
}

pub struct Flow {
    pub id: u64,
    pub client: (IpAddr, u16),
    pub proto: u8,
    pub tcp: Option<TcpSession>,
    pub app: App,
    pub bits: FastSet<u32>,
    /// flowint variables.
    pub ints: FastMap<u32, u32>,
    /// What protocol detection concluded per direction (0: from the client).
    pub alproto: [crate::detect_appkw::AlProto; 2],
    pub last_ts: i64,
    pub pkts: [u64; 2],
    /// Bytes of each direction seen while detecting the protocol (0: from the client), kept
    /// (bounded) so the parser chosen later also sees them.
    pub pd_buf: [Vec<u8>; 2],
    /// Protocol detection finished on this packet, per direction: app-layer-protocol rules
    /// without other keywords match only then (Suricata's PD-only signatures).
    pub pd_done_now: [bool; 2],
    /// The directions recognised different protocols (see applayer_dispatch).
    pub pd_mismatch: bool,
    /// The stream switched protocols (STARTTLS, CONNECT): detection starts again on the
    /// next data, once this packet's transactions were inspected.
    pub redetect: bool,
    /// When the recognised protocol becomes visible to rules that check only it: Suricata
    /// (IDS mode) parses a direction's stream data when the other side acknowledges it, so
    /// the flow's protocol is known from the first non-SYN packet the other way. 0: not yet
    /// recognised; 1: recognised on client data; 2: on server data; 3: visible.
    pub app_vis: u8,
    /// The stream changed protocols once already (see `redetect`).
    pub switched: bool,
    /// (tx id, rule index) pairs that already alerted: one alert per transaction.
    pub tx_alerted: FastSet<(u64, u32)>,
    /// Per tx: last generation inspected for each side.
    pub tx_seen: FastMap<u64, (u32, u32)>,
    /// DNS transactions seen (each message is one).
    pub dns_tx: u64,
    /// Rules found by address (IP-only lists, rules without a fast pattern) whose addresses
    /// and ports fit the flow, per packet direction (0: from the client); looked up on the
    /// direction's first packet, as neither can change within a flow. Valid for one rule set.
    pub addr_rules: AddrRules,
    /// The server-to-client byte stream scanned once for packet and file_data patterns
    /// (HTTP flows; see `RuleSet::scan_response_stream`).
    pub res_scan: Option<crate::detect_engine::StreamScan>,
    /// The last stream bytes of each direction (0: from the client), for contents split
    /// across segments.
    pub stream_tail: [Vec<u8>; 2],
    /// The flow carries encrypted application data (TLS once an application-data record
    /// passed): packet and stream payloads are no longer inspected (see `PktCtx::no_payload`).
    pub no_payload: bool,
}

#[derive(Default)]
pub struct AddrRules {
    /// Packet rules, per direction.
    pub pkt: [Option<Vec<u32>>; 2],
    /// Application-layer rules, per direction of the packet that triggers inspection.
    pub app: [Option<Vec<u32>>; 2],
}

/// Suricata's default timeouts (seconds): new 30, established 300 (tcp 3600 est is for
/// stream; 300 keeps memory bounded on long captures).
pub const TIMEOUT_NEW_US: i64 = 30_000_000;
pub const TIMEOUT_EST_US: i64 = 300_000_000;
pub const MAX_FLOWS: usize = 200_000;
/// At the cap, 1/EVICT_FRACTION of it is evicted at once (oldest first).
pub const EVICT_FRACTION: usize = 64;
/// A TCP session closed by FIN/FIN or RST is kept this long for late packets (Suricata's
/// tcp closed timeout), not the established timeout.
pub const TIMEOUT_CLOSED_US: i64 = 60_000_000;

impl Flow {
    pub fn new(id: u64, client: (IpAddr, u16), proto: u8, ts: i64) -> Flow {
        Flow {
            id,
            client,
            proto,
            tcp: None,
            app: App::Unknown,
            bits: FastSet::default(),
            ints: FastMap::default(),
            alproto: [crate::detect_appkw::AlProto::Unknown; 2],
            last_ts: ts,
            pkts: [0, 0],
            pd_buf: [Vec::new(), Vec::new()],
            pd_done_now: [false, false],
            pd_mismatch: false,
            redetect: false,
            app_vis: 0,
            switched: false,
            tx_alerted: FastSet::default(),
            tx_seen: FastMap::default(),
            dns_tx: 0,
            addr_rules: AddrRules::default(),
            res_scan: None,
            stream_tail: [Vec::new(), Vec::new()],
            no_payload: false,
        }
    }
    pub fn expired(&self, now: i64) -> bool {
        let est = self.pkts[0] > 0 && self.pkts[1] > 0;
        let closed = self.tcp.as_ref().is_some_and(|t| t.state == crate::stream_tcp::TcpState::Closed);
        now - self.last_ts > if closed { TIMEOUT_CLOSED_US } else if est { TIMEOUT_EST_US } else { TIMEOUT_NEW_US }
    }
}
