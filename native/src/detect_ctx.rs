//! What detection works with: the packet's view (`PktCtx`, built by the pipeline for each
//! packet) and one engine's reusable detection state (`DetectCtx`, Suricata's
//! DetectEngineThreadCtx): candidate scan state, scratch buffers, threshold counters.

use crate::decode_packet::Packet;
use crate::detect_engine::Scan;
use crate::detect_threshold::Thresholds;
use std::borrow::Cow;

/// What the current packet brings to detection.
pub struct PktCtx<'a> {
    pub p: &'a Packet<'a>,
    pub to_server: bool,
    /// New in-order stream bytes delivered by this packet (TCP sessions only).
    pub stream: Option<Cow<'a, [u8]>>,
    pub tracked: bool,
    pub established: bool,
    pub idx: u32,
    /// The flow carries encrypted application data (TLS after its handshake): rules that
    /// inspect the packet or stream payload do not see this packet (Suricata's
    /// `encryption-handling: default`); header, flow and app-layer keywords still do.
    pub no_payload: bool,
}

/// One engine's detection state, reused from packet to packet (no per-packet allocation).
#[derive(Default)]
pub struct DetectCtx {
    pub scan: Scan,
    /// Reused storage for composed app-layer buffers (arena2: the other side's, for `=>` rules).
    pub arena: Vec<u8>,
    pub arena2: Vec<u8>,
    /// Reused storage for the seam between two segments' data.
    pub seam_buf: Vec<u8>,
    pub thresh: Thresholds,
    /// xbits, kept per host and host pair across flows.
    pub xbits: crate::detect_flowint::Xbits,
    /// `scan.riders` hold what the packet at hand's scans found of the request side's payload
    /// patterns (set by packet detection, for the transaction inspection of the same packet;
    /// cleared after it).
    pub riders_valid: bool,
}
