//! threshold and detection_filter: the keyword's setup parses its value once into a
//! `Threshold`; at match time `Thresholds` counts a rule's matches per tracked address (or
//! flow) within the time window and says whether the alert goes out.

use crate::decode_packet::Packet;
use crate::detect_parse::Rule;
use crate::flow_table::FastMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    BySrc,
    ByDst,
    ByRule,
    ByBoth,
    ByFlow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreshKind {
    Limit,
    Threshold,
    Both,
    DetectionFilter,
}

#[derive(Debug, Clone)]
pub struct Threshold {
    pub kind: ThreshKind,
    pub track: Track,
    pub count: u64,
    pub seconds: u64,
    /// detection_filter unique_on: 1 = src_port, 2 = dst_port
    pub unique_on: u8,
}

/// Setup of `threshold` (df false) and `detection_filter` (df true).
pub fn parse(v: &str, df: bool) -> Result<Threshold, String> {
    let mut t = Threshold { kind: if df { ThreshKind::DetectionFilter } else { ThreshKind::Limit }, track: Track::BySrc, count: 1, seconds: 60, unique_on: 0 };
    let mut have_type = df;
    for part in v.split(',') {
        let mut it = part.split_whitespace();
        let key = it.next().unwrap_or("");
        let val = it.next().unwrap_or("");
        match key {
            "type" => {
                have_type = true;
                t.kind = match val {
                    "limit" => ThreshKind::Limit,
                    "threshold" => ThreshKind::Threshold,
                    "both" => ThreshKind::Both,
                    x => return Err(format!("unsupported threshold type \"{x}\"")),
                }
            }
            "track" => {
                t.track = match val {
                    "by_src" => Track::BySrc,
                    "by_dst" => Track::ByDst,
                    "by_rule" => Track::ByRule,
                    "by_both" => Track::ByBoth,
                    "by_flow" => Track::ByFlow,
                    x => return Err(format!("unsupported threshold track \"{x}\"")),
                }
            }
            "count" => t.count = val.parse().map_err(|_| "invalid threshold count")?,
            "seconds" => t.seconds = val.parse().map_err(|_| "invalid threshold seconds")?,
            "unique_on" => {
                t.unique_on = match val {
                    "src_port" => 1,
                    "dst_port" => 2,
                    x => return Err(format!("unsupported unique_on \"{x}\"")),
                }
            }
            "" => {}
            x => return Err(format!("unknown threshold option \"{x}\"")),
        }
    }
    if !have_type {
        return Err("threshold needs a type".into());
    }
    Ok(t)
}

struct ThreshState {
    start: i64,
    count: u64,
    ports: Vec<u16>,
}

/// One engine's threshold counters: per (rule index, 0 threshold / 1 detection_filter,
/// tracked key). Rule indices belong to a rule set, so a new set starts afresh (`clear`).
#[derive(Default)]
pub struct Thresholds {
    state: FastMap<(u32, u32, u128), ThreshState>,
}

impl Thresholds {
    pub fn clear(&mut self) {
        self.state.clear();
    }

    /// Count this match of rule `ri` (threshold, then detection_filter); true when the alert
    /// goes out.
    pub fn check(&mut self, ri: u32, r: &Rule, p: &Packet, flow_id: u64) -> bool {
        let mut ok = true;
        for (slot, t) in [(0u32, &r.threshold), (1u32, &r.detection_filter)] {
            let Some(t) = t else { continue };
            let key = match t.track {
                Track::BySrc => key_ip(&p.src),
                Track::ByDst => key_ip(&p.dst),
                Track::ByRule => 0,
                Track::ByBoth => key_ip(&p.src).wrapping_mul(31).wrapping_add(key_ip(&p.dst)),
                Track::ByFlow => flow_id as u128,
            };
            let win = t.seconds as i64 * 1_000_000;
            let st = self.state.entry((ri, slot, key)).or_insert(ThreshState { start: p.ts_us, count: 0, ports: Vec::new() });
            if p.ts_us - st.start > win {
                st.start = p.ts_us;
                st.count = 0;
                st.ports.clear();
            }
            if t.unique_on != 0 {
                let port = if t.unique_on == 1 { p.sp } else { p.dp };
                if !st.ports.contains(&port) {
                    if st.ports.len() < 1024 {
                        st.ports.push(port);
                    }
                    st.count += 1;
                }
            } else {
                st.count += 1;
            }
            let c = st.count;
            let pass = match t.kind {
                ThreshKind::Limit => c <= t.count,
                ThreshKind::Threshold => {
                    if c >= t.count {
                        st.count = 0;
                        st.start = p.ts_us;
                        true
                    } else {
                        false
                    }
                }
                ThreshKind::Both => c == t.count,
                ThreshKind::DetectionFilter => c > t.count,
            };
            ok &= pass;
        }
        ok
    }
}

fn key_ip(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(*v) as u128,
        IpAddr::V6(v) => u128::from(*v),
    }
}
