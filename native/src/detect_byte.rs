//! Byte keywords: byte_test, byte_jump, byte_extract, byte_math and base64_decode. Each is
//! parsed once (`parse_*`, called by the keyword's setup) into a value the buffer's item list
//! holds; matching (`ByteTest::eval`, ...) reads numbers out of the buffer at the rule's offset
//! (absolute, or relative to the previous match), never past its end, and byte_extract and
//! byte_math store theirs in the rule's variables, which later keywords of the rule (in any
//! buffer) read as offsets, depths, values and so on.

use crate::detect_parse::{Item, Num};

/// Variables a rule may define (byte_extract and byte_math results).
pub const MAX_VARS: usize = 16;

/// How numbers are read: binary big/little endian, DCE (the DCERPC header's endianness), or
/// as text in a base (0: C's strtoull auto-detection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Big,
    Little,
    Dce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    And,
    Xor,
}

#[derive(Debug, Clone)]
pub struct ByteTest {
    pub nbytes: u8,
    pub op: Op,
    pub negated: bool,
    pub value: Num,
    pub offset: Num,
    pub relative: bool,
    pub endian: Endian,
    /// Some(base) when the bytes are a number in text.
    pub string: Option<u32>,
    pub bitmask: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ByteJump {
    pub nbytes: u8,
    pub offset: Num,
    pub relative: bool,
    pub endian: Endian,
    pub string: Option<u32>,
    pub multiplier: u64,
    pub align: bool,
    pub from_beginning: bool,
    pub from_end: bool,
    pub post_offset: i64,
    pub bitmask: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ByteExtract {
    pub nbytes: u8,
    pub offset: i64,
    pub var: u8,
    pub relative: bool,
    pub endian: Endian,
    pub string: Option<u32>,
    pub multiplier: u64,
    pub align: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    Add,
    Sub,
    Mul,
    Div,
    Shl,
    Shr,
}

#[derive(Debug, Clone)]
pub struct ByteMath {
    pub nbytes: Num,
    pub offset: i64,
    pub op: MathOp,
    pub rvalue: Num,
    pub var: u8,
    pub relative: bool,
    pub endian: Endian,
    pub string: Option<u32>,
    pub bitmask: Option<u32>,
}

#[derive(Debug)]
pub struct Base64Decode {
    /// Bytes of input to decode (0: the rest of the buffer).
    pub bytes: u32,
    pub offset: u32,
    pub relative: bool,
    /// The base64_data items, run on the decoded bytes.
    pub data: Vec<Item>,
}

/// The variable lookup of a rule being parsed: a known name's index.
pub type VarLookup<'a> = &'a dyn Fn(&str) -> Option<u8>;

/// A number, or a variable name (starts with a letter).
fn num_or_var(s: &str, vars: VarLookup, what: &str) -> Result<Num, String> {
    let s = s.trim();
    if s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return vars(s).map(Num::Var).ok_or_else(|| format!("{what}: unknown byte_extract variable \"{s}\""));
    }
    parse_c_int(s).map(Num::Lit).ok_or_else(|| format!("{what}: invalid number \"{s}\""))
}

/// An integer as strtol/strtoull with base 0 reads it in a rule: decimal, 0x hex, 0 octal.
pub fn parse_c_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, t) = match s.strip_prefix('-') {
        Some(x) => (true, x),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse::<u64>().ok()?
    };
    let v = v as i64;
    Some(if neg { v.wrapping_neg() } else { v })
}

fn parse_mask(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    u32::from_str_radix(t, 16).map_err(|_| format!("invalid bitmask \"{s}\""))
}

fn base_of(s: &str) -> Option<u32> {
    match s.to_ascii_lowercase().as_str() {
        "dec" => Some(10),
        "hex" => Some(16),
        "oct" => Some(8),
        _ => None,
    }
}

fn split_args(v: &str) -> Vec<&str> {
    v.split(',').map(|x| x.trim()).collect()
}

/// The number of bytes a keyword reads; 0 with `string` reads the number written at the
/// offset whatever its length (as Suricata does, to compare a whole numeric buffer).
fn check_nbytes(nbytes: u64, string: Option<u32>, kw: &str) -> Result<u8, String> {
    if nbytes == 0 && string.is_none() {
        return Err(format!("{kw}: the number of bytes must be at least 1"));
    }
    match string {
        Some(_) if nbytes > 23 => Err(format!("{kw}: cannot read more than 23 bytes as a string")),
        None if nbytes > 8 => Err(format!("{kw}: cannot read more than 8 bytes without \"string\"")),
        _ => Ok(nbytes as u8),
    }
}

/// `byte_test:<bytes>, [!]<op>, <value>, <offset> [, relative] [, big|little|dce] [, string [, dec|hex|oct]] [, bitmask <mask>]`
pub fn parse_byte_test(v: &str, vars: VarLookup) -> Result<ByteTest, String> {
    let a = split_args(v);
    if a.len() < 4 {
        return Err("byte_test needs bytes, operator, value and offset".into());
    }
    let nbytes: u64 = a[0].parse().map_err(|_| format!("byte_test: invalid number of bytes \"{}\"", a[0]))?;
    let mut op_s = a[1];
    let negated = op_s.starts_with('!');
    if negated {
        op_s = op_s[1..].trim();
    }
    let op = match op_s {
        "=" => Op::Eq,
        "" if negated => Op::Eq,
        "<" => Op::Lt,
        ">" => Op::Gt,
        "<=" => Op::Le,
        ">=" => Op::Ge,
        "&" => Op::And,
        "^" => Op::Xor,
        x => return Err(format!("byte_test: invalid operator \"{x}\"")),
    };
    let value = num_or_var(a[2], vars, "byte_test value")?;
    let offset = num_or_var(a[3], vars, "byte_test offset")?;
    let mut t = ByteTest { nbytes: 0, op, negated, value, offset, relative: false, endian: Endian::Big, string: None, bitmask: None };
    let mut base = None;
    let mut string = false;
    for o in &a[4..] {
        let lo = o.to_ascii_lowercase();
        match lo.as_str() {
            "relative" => t.relative = true,
            "big" => t.endian = Endian::Big,
            "little" => t.endian = Endian::Little,
            "dce" => t.endian = Endian::Dce,
            "string" => string = true,
            "dec" | "hex" | "oct" => base = base_of(&lo),
            x if x.starts_with("bitmask") => t.bitmask = Some(parse_mask(&x["bitmask".len()..])?),
            x => return Err(format!("byte_test: unknown option \"{x}\"")),
        }
    }
    if base.is_some() && !string {
        return Err("byte_test: a base needs \"string\"".into());
    }
    if string {
        t.string = Some(base.unwrap_or(0));
    }
    if t.endian == Endian::Dce && t.string.is_some() {
        return Err("byte_test: dce cannot be combined with string".into());
    }
    t.nbytes = check_nbytes(nbytes, t.string, "byte_test")?;
    Ok(t)
}

/// `byte_jump:<bytes>, <offset> [, relative] [, multiplier <n>] [, big|little|dce] [, string [, dec|hex|oct]] [, align] [, from_beginning|from_end] [, post_offset <n>] [, bitmask <mask>]`
pub fn parse_byte_jump(v: &str, vars: VarLookup) -> Result<ByteJump, String> {
    let a = split_args(v);
    if a.len() < 2 {
        return Err("byte_jump needs bytes and offset".into());
    }
    let nbytes: u64 = a[0].parse().map_err(|_| format!("byte_jump: invalid number of bytes \"{}\"", a[0]))?;
    let offset = num_or_var(a[1], vars, "byte_jump offset")?;
    let mut j = ByteJump {
        nbytes: 0,
        offset,
        relative: false,
        endian: Endian::Big,
        string: None,
        multiplier: 1,
        align: false,
        from_beginning: false,
        from_end: false,
        post_offset: 0,
        bitmask: None,
    };
    let mut base = None;
    let mut string = false;
    for o in &a[2..] {
        let lo = o.to_ascii_lowercase();
        let mut words = lo.split_whitespace();
        let key = words.next().unwrap_or("");
        let val = words.next();
        match (key, val) {
            ("relative", None) => j.relative = true,
            ("big", None) => j.endian = Endian::Big,
            ("little", None) => j.endian = Endian::Little,
            ("dce", None) => j.endian = Endian::Dce,
            ("string", None) => string = true,
            ("dec" | "hex" | "oct", None) => base = base_of(key),
            ("align", None) => j.align = true,
            ("from_beginning", None) => j.from_beginning = true,
            ("from_end", None) => j.from_end = true,
            ("multiplier", Some(m)) => j.multiplier = m.parse().map_err(|_| format!("byte_jump: invalid multiplier \"{m}\""))?,
            ("post_offset", Some(p)) => j.post_offset = p.parse().map_err(|_| format!("byte_jump: invalid post_offset \"{p}\""))?,
            ("bitmask", Some(m)) => j.bitmask = Some(parse_mask(m)?),
            _ => return Err(format!("byte_jump: unknown option \"{o}\"")),
        }
    }
    if j.from_beginning && j.from_end {
        return Err("byte_jump: from_beginning and from_end together".into());
    }
    if base.is_some() && !string {
        return Err("byte_jump: a base needs \"string\"".into());
    }
    if string {
        j.string = Some(base.unwrap_or(0));
    }
    if j.endian == Endian::Dce && (j.string.is_some() || j.from_beginning || j.from_end) {
        return Err("byte_jump: dce cannot be combined with string, from_beginning or from_end".into());
    }
    j.nbytes = check_nbytes(nbytes, j.string, "byte_jump")?;
    Ok(j)
}

/// `byte_extract:<bytes>, <offset>, <name> [, relative] [, multiplier <n>] [, big|little|dce] [, string [, dec|hex|oct]] [, align <2|4>]`
/// Returns the parsed keyword and the variable's name (the caller assigns `var`).
pub fn parse_byte_extract(v: &str) -> Result<(ByteExtract, String), String> {
    let a = split_args(v);
    if a.len() < 3 {
        return Err("byte_extract needs bytes, offset and a variable name".into());
    }
    let nbytes: u64 = a[0].parse().map_err(|_| format!("byte_extract: invalid number of bytes \"{}\"", a[0]))?;
    let offset: i64 = a[1].parse().map_err(|_| format!("byte_extract: invalid offset \"{}\"", a[1]))?;
    if !(-65535..=65535).contains(&offset) {
        return Err("byte_extract: offset out of range".into());
    }
    let name = a[2].to_string();
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(format!("byte_extract: invalid variable name \"{name}\""));
    }
    let mut e = ByteExtract { nbytes: 0, offset, var: 0, relative: false, endian: Endian::Big, string: None, multiplier: 1, align: 0 };
    let mut string = false;
    let mut base = None;
    for o in &a[3..] {
        let lo = o.to_ascii_lowercase();
        let mut words = lo.split_whitespace();
        let key = words.next().unwrap_or("");
        let val = words.next();
        match (key, val) {
            ("relative", None) => e.relative = true,
            ("big", None) => e.endian = Endian::Big,
            ("little", None) => e.endian = Endian::Little,
            ("dce", None) => e.endian = Endian::Dce,
            ("string", None) => string = true,
            ("dec" | "hex" | "oct", None) => {
                if !string {
                    return Err("byte_extract: the base follows \"string\"".into());
                }
                base = base_of(key)
            }
            ("multiplier", Some(m)) => {
                let m: u64 = m.parse().map_err(|_| format!("byte_extract: invalid multiplier \"{m}\""))?;
                if !(1..=65535).contains(&m) {
                    return Err("byte_extract: multiplier out of range".into());
                }
                e.multiplier = m
            }
            ("align", Some(n)) => {
                e.align = match n {
                    "2" => 2,
                    "4" => 4,
                    _ => return Err("byte_extract: align is 2 or 4".into()),
                }
            }
            _ => return Err(format!("byte_extract: unknown option \"{o}\"")),
        }
    }
    if string {
        let b = base.unwrap_or(10);
        let max = match b {
            8 => 23,
            10 => 20,
            _ => 14,
        };
        if nbytes > max {
            return Err(format!("byte_extract: at most {max} bytes as a base {b} string"));
        }
        e.string = Some(b);
    }
    e.nbytes = check_nbytes(nbytes, e.string, "byte_extract")?;
    Ok((e, name))
}

/// `byte_math:bytes <n|var>, offset <n>, oper <+|-|*|/|<<|>>>, rvalue <n|var>, result <name> [, relative] [, endian big|little|dce] [, dce] [, string dec|hex|oct] [, bitmask <mask>]`
/// in any order. Returns the keyword and the result variable's name.
pub fn parse_byte_math(v: &str, vars: VarLookup) -> Result<(ByteMath, String), String> {
    let mut m = ByteMath { nbytes: Num::Lit(0), offset: 0, op: MathOp::Add, rvalue: Num::Lit(0), var: 0, relative: false, endian: Endian::Big, string: None, bitmask: None };
    let (mut have_bytes, mut have_off, mut have_op, mut have_rv) = (false, false, false, false);
    let mut result = None;
    for o in split_args(v) {
        let (key, val) = match o.split_once(char::is_whitespace) {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (o, ""),
        };
        match key {
            "bytes" => {
                m.nbytes = num_or_var(val, vars, "byte_math bytes")?;
                if let Num::Lit(n) = m.nbytes {
                    if !(1..=10).contains(&n) {
                        return Err("byte_math: bytes must be 1 to 10".into());
                    }
                }
                have_bytes = true;
            }
            "offset" => {
                m.offset = val.parse().map_err(|_| format!("byte_math: invalid offset \"{val}\""))?;
                if !(-65535..=65535).contains(&m.offset) {
                    return Err("byte_math: offset out of range".into());
                }
                have_off = true;
            }
            "oper" => {
                m.op = match val {
                    "+" => MathOp::Add,
                    "-" => MathOp::Sub,
                    "*" => MathOp::Mul,
                    "/" => MathOp::Div,
                    "<<" => MathOp::Shl,
                    ">>" => MathOp::Shr,
                    x => return Err(format!("byte_math: invalid operator \"{x}\"")),
                };
                have_op = true;
            }
            "rvalue" => {
                m.rvalue = num_or_var(val, vars, "byte_math rvalue")?;
                if let Num::Lit(n) = m.rvalue {
                    if !(0..=u32::MAX as i64).contains(&n) {
                        return Err("byte_math: rvalue out of range".into());
                    }
                }
                have_rv = true;
            }
            "result" => {
                if !val.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
                    return Err(format!("byte_math: invalid result name \"{val}\""));
                }
                result = Some(val.to_string());
            }
            "relative" => m.relative = true,
            "dce" => m.endian = Endian::Dce,
            "endian" => {
                m.endian = match val {
                    "big" => Endian::Big,
                    "little" => Endian::Little,
                    "dce" => Endian::Dce,
                    x => return Err(format!("byte_math: invalid endian \"{x}\"")),
                }
            }
            "string" => m.string = Some(base_of(val).ok_or_else(|| format!("byte_math: invalid string base \"{val}\""))?),
            "bitmask" => m.bitmask = Some(parse_mask(val)?),
            x => return Err(format!("byte_math: unknown option \"{x}\"")),
        }
    }
    let Some(result) = result else { return Err("byte_math needs a result".into()) };
    if !(have_bytes && have_off && have_op && have_rv) {
        return Err("byte_math needs bytes, offset, oper and rvalue".into());
    }
    if matches!(m.op, MathOp::Shl | MathOp::Shr) && matches!(m.nbytes, Num::Lit(n) if n > 4) {
        return Err("byte_math: bytes must be 1 to 4 with << and >>".into());
    }
    Ok((m, result))
}

/// `base64_decode[:[bytes <n>][, offset <n>][, relative]]`
pub fn parse_base64_decode(v: Option<&str>) -> Result<Base64Decode, String> {
    let mut d = Base64Decode { bytes: 0, offset: 0, relative: false, data: Vec::new() };
    let Some(v) = v else { return Ok(d) };
    for o in split_args(v) {
        if o.is_empty() {
            continue;
        }
        let (key, val) = match o.split_once(char::is_whitespace) {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (o, ""),
        };
        match key {
            "bytes" => d.bytes = val.parse().map_err(|_| format!("base64_decode: invalid bytes \"{val}\""))?,
            "offset" => d.offset = val.parse().map_err(|_| format!("base64_decode: invalid offset \"{val}\""))?,
            "relative" => d.relative = true,
            x => return Err(format!("base64_decode: unknown option \"{x}\"")),
        }
    }
    if d.bytes == 0 && v.contains("bytes") {
        return Err("base64_decode: bytes must be above 0".into());
    }
    Ok(d)
}

/// Where a keyword reads: `offset` from the buffer start, or from `prev` when relative. None
/// when the start lies outside the buffer or fewer than `nbytes` remain.
#[inline]
fn start_at(buf_len: usize, prev: usize, offset: i64, relative: bool, nbytes: usize) -> Option<usize> {
    let base = if relative { prev as i64 } else { 0 };
    let at = base.checked_add(offset)?;
    if at < 0 || (relative && at >= buf_len as i64) {
        return None;
    }
    let at = at as usize;
    (at <= buf_len && buf_len - at >= nbytes).then_some(at)
}

/// Read `n` bytes as a binary number.
#[inline]
fn read_bin(b: &[u8], little: bool) -> u64 {
    let mut v = 0u64;
    if little {
        for &x in b.iter().rev() {
            v = (v << 8) | x as u64;
        }
    } else {
        for &x in b {
            v = (v << 8) | x as u64;
        }
    }
    v
}

/// Read a number written in text the way C's strtoull reads it (leading space and sign, `0x`
/// for hex, base 0 detecting the base), stopping at the first non-digit. Returns the value and
/// how many bytes it took; None when no digit was read or the value overflows.
pub fn read_string(b: &[u8], base: u32) -> Option<(u64, usize)> {
    // The text ends at the first NUL (the C string it would be).
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let mut base = base;
    let has_0x = i + 1 < b.len() && b[i] == b'0' && (b[i + 1] | 0x20) == b'x' && b.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit());
    if (base == 0 || base == 16) && has_0x {
        i += 2;
        base = 16;
    } else if base == 0 {
        base = if i < b.len() && b[i] == b'0' { 8 } else { 10 };
    }
    let start = i;
    let mut v: u64 = 0;
    while i < b.len() {
        let d = match (b[i] as char).to_digit(base) {
            Some(d) => d as u64,
            None => break,
        };
        v = v.checked_mul(base as u64)?.checked_add(d)?;
        i += 1;
    }
    if i == start {
        return None;
    }
    Some((if neg { v.wrapping_neg() } else { v }, i))
}

/// Read the keyword's number at `at`: (value, bytes consumed).
#[inline]
fn read_num(buf: &[u8], at: usize, nbytes: usize, string: Option<u32>, endian: Endian, dce_le: bool) -> Option<(u64, usize)> {
    let b = if nbytes == 0 { &buf[at..] } else { &buf[at..at + nbytes] };
    match string {
        Some(base) => read_string(b, base),
        None => Some((read_bin(b, endian == Endian::Little || (endian == Endian::Dce && dce_le)), nbytes)),
    }
}

#[inline]
fn apply_mask(v: u64, mask: Option<u32>) -> u64 {
    match mask {
        Some(m) => {
            let v = v & m as u64;
            if v != 0 && m != 0 {
                v >> m.trailing_zeros()
            } else {
                v
            }
        }
        None => v,
    }
}

impl ByteTest {
    pub fn eval(&self, buf: &[u8], prev: usize, vars: &[u64], dce_le: bool) -> bool {
        let offset = self.offset.get(vars);
        let Some(at) = start_at(buf.len(), prev, offset, self.relative, self.nbytes as usize) else { return false };
        let Some((v, _)) = read_num(buf, at, self.nbytes as usize, self.string, self.endian, dce_le) else { return false };
        let v = apply_mask(v, self.bitmask);
        let want = self.value.get(vars) as u64;
        let m = match self.op {
            Op::Eq => v == want,
            Op::Lt => v < want,
            Op::Gt => v > want,
            Op::Le => v <= want,
            Op::Ge => v >= want,
            Op::And => v & want != 0,
            Op::Xor => v ^ want != 0,
        };
        m != self.negated
    }
}

impl ByteJump {
    /// The new position of the inspection pointer, if the jump lands inside the buffer.
    pub fn eval(&self, buf: &[u8], prev: usize, vars: &[u64], dce_le: bool) -> Option<usize> {
        let offset = self.offset.get(vars);
        let at = start_at(buf.len(), prev, offset, self.relative, self.nbytes as usize)?;
        let (v, used) = read_num(buf, at, self.nbytes as usize, self.string, self.endian, dce_le)?;
        let mut v = apply_mask(v, self.bitmask) as i128 * self.multiplier as i128;
        if self.align && v % 4 != 0 {
            v += 4 - v.rem_euclid(4);
        }
        v += self.post_offset as i128;
        let pos = if self.from_beginning {
            v
        } else if self.from_end {
            buf.len() as i128 + v
        } else {
            (at + used) as i128 + v
        };
        (0..=buf.len() as i128).contains(&pos).then_some(pos as usize)
    }
}

impl ByteExtract {
    /// (value, the position after the bytes read).
    pub fn eval(&self, buf: &[u8], prev: usize, dce_le: bool) -> Option<(u64, usize)> {
        let at = start_at(buf.len(), prev, self.offset, self.relative, self.nbytes as usize)?;
        let (v, used) = read_num(buf, at, self.nbytes as usize, self.string, self.endian, dce_le)?;
        let mut v = v.wrapping_mul(self.multiplier);
        if self.align > 0 && v % self.align != 0 {
            v = v.wrapping_add(self.align - v % self.align);
        }
        Some((v, at + used))
    }
}

impl ByteMath {
    /// (result, the position after the bytes read); None when the bytes are not there or the
    /// operation is undefined (division by zero).
    pub fn eval(&self, buf: &[u8], prev: usize, vars: &[u64], dce_le: bool) -> Option<(u64, usize)> {
        let nbytes = self.nbytes.get(vars);
        let max = if self.string.is_some() { 10 } else { 8 };
        if !(1..=max).contains(&nbytes) {
            return None;
        }
        let at = start_at(buf.len(), prev, self.offset, self.relative, nbytes as usize)?;
        let (v, used) = read_num(buf, at, nbytes as usize, self.string, self.endian, dce_le)?;
        let r = self.rvalue.get(vars) as u64;
        let v = match self.op {
            MathOp::Add => v.wrapping_add(r),
            MathOp::Sub => v.wrapping_sub(r),
            MathOp::Mul => v.wrapping_mul(r),
            MathOp::Div => v.checked_div(r)?,
            MathOp::Shl => v.checked_shl(r.min(64) as u32).unwrap_or(0),
            MathOp::Shr => v.checked_shr(r.min(64) as u32).unwrap_or(0),
        };
        Some((apply_mask(v, self.bitmask), at + used))
    }
}

/// Decode base64 the way Suricata's base64_decode keyword does (RFC 4648): decoding stops at
/// the first character outside the alphabet or at padding; a partial last group yields its
/// whole bytes.
pub fn base64_decode(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut acc = 0u32;
    let mut n = 0;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => break,
        };
        acc = (acc << 6) | v as u32;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
}

impl Base64Decode {
    /// The bytes to decode: from `offset` (after `prev` when relative), `bytes` of them.
    pub fn input<'a>(&self, buf: &'a [u8], prev: usize) -> Option<&'a [u8]> {
        let start = if self.relative { prev } else { 0 } + self.offset as usize;
        if start >= buf.len() {
            return None;
        }
        let rest = &buf[start..];
        Some(if self.bytes > 0 { &rest[..rest.len().min(self.bytes as usize)] } else { rest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<u8> {
        None
    }

    #[test]
    fn strings_read_like_strtoull() {
        assert_eq!(read_string(b"13When", 0), Some((13, 2)));
        assert_eq!(read_string(b" 0x1f", 0), Some((31, 5)));
        assert_eq!(read_string(b"017", 0), Some((15, 3)));
        assert_eq!(read_string(b"017", 10), Some((17, 3)));
        assert_eq!(read_string(b"ab", 10), None);
        assert_eq!(read_string(b"99999999999999999999999", 10), None);
    }

    #[test]
    fn byte_test_with_bitmask_shifts_by_trailing_zeros() {
        let t = parse_byte_test("1,=,0x9,0, bitmask 0xf8", &none).unwrap();
        assert!(t.eval(b"HTTP", 0, &[], false));
        let t = parse_byte_test("2,=,0x90a,0, bitmask 0xf8f8", &none).unwrap();
        assert!(t.eval(b"HTTP", 0, &[], false));
        let t = parse_byte_test("1,!&,128,1,relative", &none).unwrap();
        assert!(t.eval(b"\x00\x00\x7f", 1, &[], false));
        assert!(!t.eval(b"\x00\x00\x80", 1, &[], false));
        assert!(parse_byte_test("9,=,1,0", &none).is_err());
        assert!(parse_byte_test("4,=,1,0,hex", &none).is_err());
    }

    #[test]
    fn byte_jump_from_end_with_negative_post_offset() {
        let buf = b"Question?13When will the pandemic end?";
        let j = parse_byte_jump("2,0,relative,string,from_end,post_offset -26", &none).unwrap();
        assert_eq!(j.eval(buf, 9, &[], false), Some(25));
        let j = parse_byte_jump("0,0,relative,string,from_end,post_offset -3", &none).unwrap();
        assert_eq!(j.eval(buf, 9, &[], false), None);
        assert!(parse_byte_jump("0,0", &none).is_err());
    }

    #[test]
    fn byte_math_and_division_by_zero() {
        let vars = |s: &str| (s == "x").then_some(0u8);
        let (m, name) = parse_byte_math("bytes 1, offset 0, oper /, rvalue x, result r", &vars).unwrap();
        assert_eq!(name, "r");
        assert_eq!(m.eval(b"\x10", 0, &[0], false), None);
        assert_eq!(m.eval(b"\x10", 0, &[4], false), Some((4, 1)));
        let (m, _) = parse_byte_math("bytes 1, offset 1, oper <<, rvalue 2, result r", &none).unwrap();
        assert_eq!(m.eval(b"\x00\x22", 0, &[], false), Some((0x88, 2)));
    }

    #[test]
    fn base64() {
        let mut o = Vec::new();
        base64_decode(b"aGVsbG8gd29ybGQ=", &mut o);
        assert_eq!(o, b"hello world");
        base64_decode(b"aGVsbG8'more", &mut o);
        assert_eq!(o, b"hello");
    }
}
