//! flowbits: the keyword's setup parses `flowbits:cmd[,names]` once into a `FlowbitOp` (bit
//! names interned to small ids shared by the rule set); at match time the conditions
//! (isset, isnotset) are tested on the flow's bits and the actions (set, unset, toggle) of a
//! matching rule applied, in rule order.

use crate::detect_parse::Rule;
use crate::flow_table::FastSet;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub enum FlowbitOp {
    Set(u32),
    Unset(u32),
    Toggle(u32),
    IsSet(Vec<u32>),
    IsNotSet(Vec<u32>),
    /// `isset,a&b`
    IsSetAll(Vec<u32>),
}

/// Interns flowbit names to small ids shared by the whole rule set.
#[derive(Default)]
pub struct Interner {
    pub map: HashMap<String, u32>,
}

impl Interner {
    pub fn id(&mut self, s: &str) -> u32 {
        let n = self.map.len() as u32;
        *self.map.entry(s.trim().to_string()).or_insert(n)
    }
}

/// Setup of `flowbits`: one operation for the rule, or `noalert`.
pub fn setup(r: &mut Rule, v: Option<&str>, bits: &mut Interner) -> Result<(), String> {
    let v = v.ok_or("flowbits needs a value")?;
    let (cmd, arg) = match v.split_once(',') {
        Some((c, a)) => (c.trim().to_ascii_lowercase(), Some(a.trim())),
        None => (v.trim().to_ascii_lowercase(), None),
    };
    let names = |a: Option<&str>, sep: char, bits: &mut Interner| -> Result<Vec<u32>, String> {
        let a = a.ok_or_else(|| format!("flowbits:{cmd} needs a name"))?;
        Ok(a.split(sep).map(|n| bits.id(n)).collect())
    };
    let op = match cmd.as_str() {
        "noalert" => {
            r.noalert = true;
            return Ok(());
        }
        "set" => FlowbitOp::Set(bits.id(arg.ok_or("flowbits:set needs a name")?)),
        "unset" => FlowbitOp::Unset(bits.id(arg.ok_or("flowbits:unset needs a name")?)),
        "toggle" => FlowbitOp::Toggle(bits.id(arg.ok_or("flowbits:toggle needs a name")?)),
        "isset" => {
            if arg.is_some_and(|a| a.contains('&')) {
                FlowbitOp::IsSetAll(names(arg, '&', bits)?)
            } else {
                FlowbitOp::IsSet(names(arg, '|', bits)?)
            }
        }
        "isnotset" => FlowbitOp::IsNotSet(names(arg, '|', bits)?),
        x => return Err(format!("unsupported flowbits command \"{x}\"")),
    };
    r.flowbits.push(op);
    Ok(())
}

/// Whether the rule's conditions (isset, isnotset) hold on the flow's bits.
#[inline]
pub fn is_ok(ops: &[FlowbitOp], bits: &FastSet<u32>) -> bool {
    ops.iter().all(|op| match op {
        FlowbitOp::IsSet(v) => v.iter().any(|b| bits.contains(b)),
        FlowbitOp::IsSetAll(v) => v.iter().all(|b| bits.contains(b)),
        FlowbitOp::IsNotSet(v) => v.iter().any(|b| !bits.contains(b)),
        _ => true,
    })
}

/// A matching rule's actions (set, unset, toggle) on the flow's bits.
#[inline]
pub fn apply(ops: &[FlowbitOp], bits: &mut FastSet<u32>) {
    for op in ops {
        match op {
            FlowbitOp::Set(b) => {
                bits.insert(*b);
            }
            FlowbitOp::Unset(b) => {
                bits.remove(b);
            }
            FlowbitOp::Toggle(b) => {
                if !bits.remove(b) {
                    bits.insert(*b);
                }
            }
            _ => {}
        }
    }
}
