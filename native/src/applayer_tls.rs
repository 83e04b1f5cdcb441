//! TLS ClientHello parsing for the SNI. Handshake messages are reassembled across records
//! (a ClientHello may be split over several), bounded to 64 KiB.

use crate::decode_packet::be16;

const MAX_HS: usize = 64 * 1024;

#[derive(Default, Debug)]
pub struct TlsState {
    rec_buf: Vec<u8>,
    hs_buf: Vec<u8>,
    pub sni: Option<Vec<u8>>,
    pub done: bool,
}

impl TlsState {
    /// Feed client bytes; returns true when the SNI became known.
    pub fn parse_client(&mut self, data: &[u8]) -> bool {
        if self.done {
            return false;
        }
        self.rec_buf.extend_from_slice(data);
        let mut o = 0;
        let mut found = false;
        while self.rec_buf.len() >= o + 5 {
            let ct = self.rec_buf[o];
            let len = be16(&self.rec_buf, o + 3).unwrap_or(0) as usize;
            if self.rec_buf.len() < o + 5 + len {
                break;
            }
            if ct == 22 {
                let frag = self.rec_buf[o + 5..o + 5 + len].to_vec();
                self.hs_buf.extend_from_slice(&frag);
            } else {
                self.done = true;
            }
            o += 5 + len;
            if self.hs_buf.len() >= 4 {
                let hl = ((self.hs_buf[1] as usize) << 16) | ((self.hs_buf[2] as usize) << 8) | self.hs_buf[3] as usize;
                if self.hs_buf.len() >= 4 + hl {
                    if self.hs_buf[0] == 1 {
                        self.sni = parse_client_hello(&self.hs_buf[4..4 + hl]);
                        found = self.sni.is_some();
                    }
                    self.done = true;
                }
            }
            if self.hs_buf.len() > MAX_HS || self.done {
                self.done = true;
                break;
            }
        }
        self.rec_buf.drain(..o.min(self.rec_buf.len()));
        if self.rec_buf.len() > MAX_HS {
            self.done = true;
        }
        found
    }
}

pub fn parse_client_hello(b: &[u8]) -> Option<Vec<u8>> {
    let mut o = 2 + 32; // version, random
    let sid = *b.get(o)? as usize;
    o += 1 + sid;
    let cs = be16(b, o)? as usize;
    o += 2 + cs;
    let cm = *b.get(o)? as usize;
    o += 1 + cm;
    let el = be16(b, o)? as usize;
    o += 2;
    let end = (o + el).min(b.len());
    while o + 4 <= end {
        let et = be16(b, o)?;
        let l = be16(b, o + 2)? as usize;
        let ext = b.get(o + 4..o + 4 + l)?;
        if et == 0 {
            // server_name list: take the first host_name entry
            let mut p = 2;
            while p + 3 <= ext.len() {
                let nt = ext[p];
                let nl = be16(ext, p + 1)? as usize;
                let name = ext.get(p + 3..p + 3 + nl)?;
                if nt == 0 {
                    return Some(name.to_vec());
                }
                p += 3 + nl;
            }
        }
        o += 4 + l;
    }
    None
}
