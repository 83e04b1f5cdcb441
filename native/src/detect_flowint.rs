//! flowint (integer variables of a flow) and xbits (bits kept per host or host pair, with an
//! expiry): each keyword's setup parses `name,op[,value]` once (names interned with the rule
//! set's flowbit names, in their own namespaces); at match time the conditions are tested and
//! a matching rule's modifications applied, in rule order, like flowbits.

use crate::detect_flowbits::Interner;
use crate::flow_table::FastMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntVal {
    Lit(u32),
    /// Another flowint variable.
    Var(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOp {
    Set,
    Add,
    Sub,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    IsSet,
    NotSet,
}

#[derive(Debug, Clone)]
pub struct FlowintOp {
    pub var: u32,
    pub op: IntOp,
    pub val: IntVal,
}

impl FlowintOp {
    pub fn is_modifier(&self) -> bool {
        matches!(self.op, IntOp::Set | IntOp::Add | IntOp::Sub)
    }
}

/// `flowint:<name>,<op>[,<value>]`
pub fn parse_flowint(v: &str, names: &mut Interner) -> Result<FlowintOp, String> {
    let parts: Vec<&str> = v.split(',').map(|x| x.trim()).collect();
    if parts.len() < 2 || parts[0].is_empty() {
        return Err("flowint needs <name>,<operator>[,<value>]".into());
    }
    let op = match parts[1] {
        "=" => IntOp::Set,
        "+" => IntOp::Add,
        "-" => IntOp::Sub,
        "==" => IntOp::Eq,
        "!=" => IntOp::Ne,
        "<" => IntOp::Lt,
        "<=" => IntOp::Le,
        ">" => IntOp::Gt,
        ">=" => IntOp::Ge,
        "isset" => IntOp::IsSet,
        "notset" | "isnotset" => IntOp::NotSet,
        x => return Err(format!("flowint: invalid operator \"{x}\"")),
    };
    let var = names.id(&format!("flowint:{}", parts[0]));
    let val = match (op, parts.get(2)) {
        (IntOp::IsSet | IntOp::NotSet, None) => IntVal::Lit(0),
        (IntOp::IsSet | IntOp::NotSet, Some(_)) => return Err("flowint: isset/notset take no value".into()),
        (_, None) => return Err(format!("flowint: \"{}\" needs a value", parts[1])),
        (_, Some(x)) => match x.parse::<u32>() {
            Ok(n) => IntVal::Lit(n),
            Err(_) if x.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) => IntVal::Var(names.id(&format!("flowint:{x}"))),
            Err(_) => return Err(format!("flowint: invalid value \"{x}\"")),
        },
    };
    Ok(FlowintOp { var, op, val })
}

fn value(v: IntVal, ints: &FastMap<u32, u32>) -> Option<u32> {
    match v {
        IntVal::Lit(n) => Some(n),
        IntVal::Var(i) => ints.get(&i).copied(),
    }
}

/// Whether the rule's flowint conditions hold.
pub fn is_ok(ops: &[FlowintOp], ints: &FastMap<u32, u32>) -> bool {
    ops.iter().all(|o| {
        let cur = ints.get(&o.var).copied();
        match o.op {
            IntOp::IsSet => cur.is_some(),
            IntOp::NotSet => cur.is_none(),
            IntOp::Set | IntOp::Add | IntOp::Sub => true,
            _ => {
                let (Some(c), Some(t)) = (cur, value(o.val, ints)) else { return false };
                match o.op {
                    IntOp::Eq => c == t,
                    IntOp::Ne => c != t,
                    IntOp::Lt => c < t,
                    IntOp::Le => c <= t,
                    IntOp::Gt => c > t,
                    _ => c >= t,
                }
            }
        }
    })
}

/// A matching rule's modifications.
pub fn apply(ops: &[FlowintOp], ints: &mut FastMap<u32, u32>) {
    for o in ops.iter().filter(|o| o.is_modifier()) {
        let Some(t) = value(o.val, ints) else { continue };
        let cur = ints.get(&o.var).copied();
        let n = match (o.op, cur) {
            (IntOp::Set, _) => t,
            (IntOp::Add, Some(c)) => c.wrapping_add(t),
            (IntOp::Add, None) => t,
            (IntOp::Sub, Some(c)) => c.wrapping_sub(t),
            (IntOp::Sub, None) => 0,
            _ => continue,
        };
        ints.insert(o.var, n);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XTrack {
    Src,
    Dst,
    Pair,
    /// Per transaction in Suricata; kept per flow here (a flow's transactions share them).
    Tx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XCmd {
    Set,
    Unset,
    Toggle,
    IsSet,
    IsNotSet,
}

#[derive(Debug, Clone)]
pub struct XbitOp {
    pub cmd: XCmd,
    pub bit: u32,
    pub track: XTrack,
    /// Seconds a set bit lives.
    pub expire: u32,
}

/// `xbits:<set|unset|toggle|isset|isnotset>,<name>,track <ip_src|ip_dst|ip_pair|tx>[,expire <s>]`
pub fn parse_xbits(v: &str, names: &mut Interner) -> Result<XbitOp, String> {
    let parts: Vec<&str> = v.split(',').map(|x| x.trim()).collect();
    if parts.len() < 3 {
        return Err("xbits needs <command>,<name>,track <ip_src|ip_dst|ip_pair>".into());
    }
    let cmd = match parts[0].to_ascii_lowercase().as_str() {
        "set" => XCmd::Set,
        "unset" => XCmd::Unset,
        "toggle" => XCmd::Toggle,
        "isset" => XCmd::IsSet,
        "isnotset" => XCmd::IsNotSet,
        x => return Err(format!("xbits: invalid command \"{x}\"")),
    };
    let bit = names.id(&format!("xbits:{}", parts[1]));
    let mut track = None;
    let mut expire = 30;
    for p in &parts[2..] {
        let mut w = p.split_whitespace();
        match (w.next(), w.next()) {
            (Some("track"), Some(t)) => {
                track = Some(match t {
                    "ip_src" => XTrack::Src,
                    "ip_dst" => XTrack::Dst,
                    "ip_pair" => XTrack::Pair,
                    "tx" => XTrack::Tx,
                    x => return Err(format!("xbits: invalid track \"{x}\"")),
                })
            }
            (Some("expire"), Some(e)) => expire = e.parse().map_err(|_| format!("xbits: invalid expire \"{e}\""))?,
            _ => return Err(format!("xbits: invalid option \"{p}\"")),
        }
    }
    let track = track.ok_or("xbits needs a track")?;
    Ok(XbitOp { cmd, bit, track, expire })
}

/// Where an xbit lives: a host, an (unordered) host pair, or a flow.
#[derive(Hash, PartialEq, Eq, Clone, Copy, Debug)]
enum XKey {
    Host(IpAddr),
    Pair(IpAddr, IpAddr),
    Flow(u64),
}

/// The engine's xbits: (bit, where) → expiry (µs).
#[derive(Default)]
pub struct Xbits {
    bits: FastMap<(u32, XKey), i64>,
}

/// xbits kept at most; past this the expired ones are dropped, then the set stops growing.
const MAX_XBITS: usize = 1 << 20;

impl Xbits {
    fn key(track: XTrack, src: IpAddr, dst: IpAddr, flow: u64) -> XKey {
        match track {
            XTrack::Src => XKey::Host(src),
            XTrack::Dst => XKey::Host(dst),
            XTrack::Pair => {
                if src <= dst {
                    XKey::Pair(src, dst)
                } else {
                    XKey::Pair(dst, src)
                }
            }
            XTrack::Tx => XKey::Flow(flow),
        }
    }
    fn is_set(&self, k: (u32, XKey), now: i64) -> bool {
        self.bits.get(&k).is_some_and(|&e| e >= now)
    }
    pub fn is_ok(&self, ops: &[XbitOp], src: IpAddr, dst: IpAddr, flow: u64, now: i64) -> bool {
        ops.iter().all(|o| {
            let k = (o.bit, Self::key(o.track, src, dst, flow));
            match o.cmd {
                XCmd::IsSet => self.is_set(k, now),
                XCmd::IsNotSet => !self.is_set(k, now),
                _ => true,
            }
        })
    }
    pub fn apply(&mut self, ops: &[XbitOp], src: IpAddr, dst: IpAddr, flow: u64, now: i64) {
        for o in ops {
            let k = (o.bit, Self::key(o.track, src, dst, flow));
            let exp = now + o.expire as i64 * 1_000_000;
            match o.cmd {
                XCmd::Set => self.set(k, exp, now),
                XCmd::Unset => {
                    self.bits.remove(&k);
                }
                XCmd::Toggle => {
                    if self.is_set(k, now) {
                        self.bits.remove(&k);
                    } else {
                        self.set(k, exp, now);
                    }
                }
                _ => {}
            }
        }
    }
    fn set(&mut self, k: (u32, XKey), exp: i64, now: i64) {
        if self.bits.len() >= MAX_XBITS && !self.bits.contains_key(&k) {
            self.bits.retain(|_, e| *e >= now);
            if self.bits.len() >= MAX_XBITS {
                return;
            }
        }
        self.bits.insert(k, exp);
    }
    pub fn clear(&mut self) {
        self.bits.clear();
    }
}
