//! TCP session tracking and reassembly of one direction: out-of-order segments are held until
//! the gap fills, overlaps keep the bytes that arrived first, retransmits are dropped, and
//! nothing beyond the reassembly depth (1 MiB, Suricata's default) is kept.

use crate::decode_packet::{TcpHdr, TH_ACK, TH_FIN, TH_RST, TH_SYN};
use std::borrow::Cow;
use std::collections::BTreeMap;

pub const REASSEMBLY_DEPTH: u64 = 1024 * 1024;
/// Out-of-order bytes held per direction before we give up on the gap.
const MAX_PENDING: usize = 2 * 1024 * 1024;

#[derive(Default, Debug)]
pub struct StreamDir {
    /// Sequence number of relative offset 0 (ISN + 1); None until the SYN was seen.
    pub base: Option<u32>,
    /// Relative offset of the next byte to deliver.
    pub next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    pub fin: bool,
    pub depth_reached: bool,
    /// Highest relative offset seen so far, to unwrap 32-bit sequence numbers.
    last_rel: u64,
}

impl StreamDir {
    pub fn init(&mut self, isn: u32) {
        self.base = Some(isn.wrapping_add(1));
        self.next = 0;
        self.last_rel = 0;
    }

    /// Unwrap a 32-bit sequence number into a 64-bit offset near the last one seen.
    fn rel(&self, seq: u32) -> Option<u64> {
        let base = self.base?;
        let d = seq.wrapping_sub(base) as u64;
        // Segments from before the base (e.g. a retransmitted SYN) have d close to 2^32.
        let epoch = self.last_rel & !0xffff_ffff;
        let mut cand = epoch | d;
        if cand > self.last_rel + (1 << 31) && cand >= (1 << 32) {
            cand -= 1 << 32;
        } else if cand + (1 << 31) < self.last_rel {
            cand += 1 << 32;
        }
        if d > 0xf000_0000 && epoch == 0 {
            return None; // before the stream start
        }
        Some(cand)
    }

    /// Add a segment; returns the newly contiguous bytes (possibly empty), borrowed from the
    /// segment itself in the common in-order case.
    pub fn add<'a>(&mut self, seq: u32, data: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(mut off) = self.rel(seq) else { return Cow::Borrowed(&[]) };
        let mut data = data;
        if off < self.next {
            // Retransmit or overlap with delivered bytes: keep only the new tail.
            let skip = (self.next - off) as usize;
            if skip >= data.len() {
                return Cow::Borrowed(&[]);
            }
            data = &data[skip..];
            off = self.next;
        }
        if data.is_empty() {
            return Cow::Borrowed(&[]);
        }
        if off >= REASSEMBLY_DEPTH {
            self.depth_reached = true;
            return Cow::Borrowed(&[]);
        }
        let room = (REASSEMBLY_DEPTH - off) as usize;
        if data.len() > room {
            data = &data[..room];
            self.depth_reached = true;
        }
        self.last_rel = self.last_rel.max(off + data.len() as u64);
        if off == self.next && self.pending.is_empty() {
            self.next += data.len() as u64;
            return Cow::Borrowed(data);
        }
        if self.pending_bytes + data.len() > MAX_PENDING {
            return Cow::Borrowed(&[]);
        }
        // Keep first-arrived bytes: insert only the parts not already pending.
        let mut pieces = vec![(off, data.to_vec())];
        for (&po, pd) in self.pending.range(..off + data.len() as u64) {
            let pe = po + pd.len() as u64;
            let mut next_pieces = Vec::new();
            for (o, d) in pieces {
                let e = o + d.len() as u64;
                if pe <= o || po >= e {
                    next_pieces.push((o, d));
                    continue;
                }
                if o < po {
                    next_pieces.push((o, d[..(po - o) as usize].to_vec()));
                }
                if e > pe {
                    next_pieces.push((pe, d[(pe - o) as usize..].to_vec()));
                }
            }
            pieces = next_pieces;
        }
        for (o, d) in pieces {
            if !d.is_empty() {
                self.pending_bytes += d.len();
                self.pending.insert(o, d);
            }
        }
        let mut out = Vec::new();
        while let Some((&o, _)) = self.pending.iter().next() {
            if o > self.next {
                break;
            }
            let Some(d) = self.pending.remove(&o) else { break };
            self.pending_bytes -= d.len();
            let end = o + d.len() as u64;
            if end > self.next {
                out.extend_from_slice(&d[(self.next - o) as usize..]);
                self.next = end;
            }
        }
        Cow::Owned(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpState {
    #[default]
    None,
    SynSent,
    SynRecv,
    Established,
    Closed,
}

/// Both directions of a TCP session; index 0 = client (to_server), 1 = server.
#[derive(Default, Debug)]
pub struct TcpSession {
    pub state: TcpState,
    pub dirs: [StreamDir; 2],
    pub fin_seen: [bool; 2],
}

impl TcpSession {
    /// Whether the session is followed (a SYN was seen): only then are its streams reassembled.
    pub fn tracked(&self) -> bool {
        self.state != TcpState::None
    }

    /// Per direction (0: the client's), the sequence space used so far as Suricata's
    /// stream_size counts it: next expected sequence number minus the ISN (SYN included).
    pub fn stream_size(&self) -> [u64; 2] {
        [0, 1].map(|d| if self.dirs[d].base.is_some() { self.dirs[d].next + 1 } else { 0 })
    }

    /// Whether the handshake completed (a closed session counts: its data was established).
    pub fn established(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::Closed)
    }

    /// One segment of the session (`to_server`: from the client): advance the handshake and
    /// FIN/RST state and reassemble its payload. Returns the bytes that became in-order in the
    /// segment's direction, borrowed from the payload in the common in-order case.
    pub fn on_segment<'a>(&mut self, t: &TcpHdr, payload: &'a [u8], to_server: bool) -> Option<Cow<'a, [u8]>> {
        let d = if to_server { 0 } else { 1 };
        let syn = t.flags & TH_SYN != 0;
        let ack = t.flags & TH_ACK != 0;
        if syn && !ack && to_server && self.state == TcpState::None {
            self.dirs[0].init(t.seq);
            self.state = TcpState::SynSent;
        } else if syn && !ack && !to_server && self.state == TcpState::SynSent && self.dirs[1].base.is_none() {
            // Split handshake: the server answers with its own SYN.
            self.dirs[1].init(t.seq);
        } else if syn && ack && !to_server && matches!(self.state, TcpState::SynSent) {
            self.dirs[1].init(t.seq);
            self.state = TcpState::SynRecv;
        } else if syn && ack && to_server && self.state == TcpState::SynSent && self.dirs[1].base.is_some() {
            // 4/5-way split handshake: the client acknowledges the server's SYN with SYN/ACK.
            self.state = TcpState::SynRecv;
        } else if ack && !syn && self.state == TcpState::SynRecv {
            self.state = TcpState::Established;
        }
        let mut stream = None;
        if self.tracked() && !payload.is_empty() {
            let dir = &mut self.dirs[d];
            if dir.base.is_some() {
                let seq = if syn { t.seq.wrapping_add(1) } else { t.seq };
                let chunk = dir.add(seq, payload);
                if !chunk.is_empty() {
                    stream = Some(chunk);
                }
            }
        }
        if t.flags & (TH_FIN | TH_RST) != 0 {
            self.fin_seen[d] = true;
            if t.flags & TH_RST != 0 || (self.fin_seen[0] && self.fin_seen[1]) {
                if self.state == TcpState::Established {
                    self.state = TcpState::Closed;
                }
            }
        }
        stream
    }
}
