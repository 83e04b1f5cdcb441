//! The app layer of a flow: recognise the protocol from the first in-order bytes (or the
//! port), then hand each direction's data to that protocol's parser. Returns whether the
//! flow's app-layer state changed, i.e. whether detection has transactions to look at.

use crate::applayer_http::{looks_like_request, looks_like_response, HttpState};
use crate::applayer_tls::TlsState;
use crate::decode_packet::{Packet, TH_FIN, TH_RST};
use crate::flow_table::{App, Flow};

/// A TCP packet: the in-order stream bytes it delivered (if any), and a server FIN/RST, which
/// ends a response delimited by the connection's close.
pub fn on_tcp(f: &mut Flow, p: &Packet, to_server: bool, stream: Option<&[u8]>) -> bool {
    let mut app_changed = false;
    if let Some(data) = stream {
        app_changed = feed_tcp(f, to_server, data, p);
    }
    if let (Some(t), App::Http(h)) = (&p.tcp, &mut f.app) {
        if t.flags & (TH_FIN | TH_RST) != 0 && !to_server {
            h.close_response();
            app_changed = true;
        }
    }
    app_changed
}

/// A UDP packet: DNS by port; its messages are parsed where they are inspected.
pub fn on_udp(f: &mut Flow, p: &Packet) -> bool {
    if matches!(f.app, App::Unknown) {
        f.app = if p.sp == 53 || p.dp == 53 { App::Dns } else { App::Failed };
    }
    matches!(f.app, App::Dns) && !p.payload.is_empty()
}

/// Stream data of a TCP flow: recognise the protocol on the first data, then parse it; true
/// when a parser took the data.
fn feed_tcp(f: &mut Flow, to_server: bool, data: &[u8], p: &Packet) -> bool {
    if matches!(f.app, App::Unknown) {
        if to_server && looks_like_request(data) || !to_server && looks_like_response(data) {
            f.app = App::Http(Box::new(HttpState::new()));
        } else if to_server && data.len() >= 3 && data[0] == 0x16 && data[1] == 3 {
            f.app = App::Tls(Box::new(TlsState::default()));
        } else if p.sp == 53 || p.dp == 53 {
            f.app = App::Dns;
        } else {
            f.detect_bytes += data.len();
            if f.detect_bytes > 4096 || to_server {
                f.app = App::Failed;
            }
            return false;
        }
    }
    match &mut f.app {
        App::Http(h) => {
            if to_server {
                h.parse_request(data);
            } else {
                h.parse_response(data);
            }
            true
        }
        App::Tls(t) => to_server && t.parse_client(data),
        App::Dns => true,
        _ => false,
    }
}
