//! Rule set compilation (prefilter automata over fast patterns) and the per-buffer match
//! functions: content with its modifiers, pcre, isdataat, bsize.

use crate::detect_parse::*;
use crate::detect_vars::Vars;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::collections::HashMap;

/// Backtracking budget per buffer evaluation, so adversarial payloads cannot blow up
/// relative-content matching.
const MATCH_BUDGET: u32 = 4096;

pub struct Prefilter {
    ac: AhoCorasick,
    /// pattern id → rule indices using it as fast pattern
    pat_rules: Vec<Vec<u32>>,
}

impl Prefilter {
    fn build(pats: Vec<(Vec<u8>, Vec<u32>)>) -> Option<Prefilter> {
        if pats.is_empty() {
            return None;
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(pats.iter().map(|(p, _)| p))
            .ok()?;
        Some(Prefilter { ac, pat_rules: pats.into_iter().map(|(_, r)| r).collect() })
    }
    /// Mark candidate rules whose fast pattern occurs in hay.
    pub fn scan(&self, hay: &[u8], out: &mut Vec<u32>) {
        for m in self.ac.find_overlapping_iter(hay) {
            if let Some(rs) = self.pat_rules.get(m.pattern().as_usize()) {
                out.extend_from_slice(rs);
            }
        }
    }
    /// Raw scan throughput helper for the benchmark: count matches only.
    pub fn count(&self, hay: &[u8]) -> usize {
        self.ac.find_overlapping_iter(hay).count()
    }
}

pub struct LoadError {
    pub sid: Option<u32>,
    pub line: usize,
    pub file: String,
    pub reason: String,
}

pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub errors: Vec<LoadError>,
    pub total: usize,
    /// Prefilter for payload/stream rules, and rules with no payload fast pattern.
    pub pkt_pf: Option<Prefilter>,
    pub pkt_always: Vec<u32>,
    /// App-layer rules: prefilter per buffer kind plus always-evaluated ones.
    pub app_pf: Vec<(Buf, Prefilter)>,
    pub app_always: Vec<u32>,
    pub bits: Interner,
}

impl RuleSet {
    pub fn load(sources: &[(String, String)]) -> RuleSet {
        let vars = Vars::default();
        let mut bits = Interner::default();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let mut total = 0;
        for (file, text) in sources {
            // Join continuation lines ending in a backslash.
            let mut logical: Vec<(usize, String)> = Vec::new();
            let mut acc = String::new();
            let mut start = 0;
            for (i, line) in text.lines().enumerate() {
                if acc.is_empty() {
                    start = i + 1;
                }
                let l = line.trim_end();
                if let Some(x) = l.strip_suffix('\\') {
                    acc.push_str(x);
                    continue;
                }
                acc.push_str(l);
                logical.push((start, std::mem::take(&mut acc)));
            }
            if !acc.is_empty() {
                logical.push((start, acc));
            }
            for (lineno, l) in logical {
                let t = l.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                total += 1;
                let mut ctx = ParseCtx { vars: &vars, bits: &mut bits };
                match parse_rule(t, &mut ctx) {
                    Ok(r) => rules.push(r),
                    Err((sid, reason)) => errors.push(LoadError { sid, line: lineno, file: file.clone(), reason }),
                }
            }
        }
        // Duplicate sids: Suricata refuses the later one.
        let mut seen: HashMap<(u32, u32), ()> = HashMap::new();
        let mut kept = Vec::with_capacity(rules.len());
        for r in rules {
            if seen.insert((r.gid, r.sid), ()).is_some() {
                errors.push(LoadError { sid: Some(r.sid), line: 0, file: String::new(), reason: "duplicate signature id".into() });
                continue;
            }
            kept.push(r);
        }
        let mut rs = RuleSet { rules: kept, errors, total, pkt_pf: None, pkt_always: Vec::new(), app_pf: Vec::new(), app_always: Vec::new(), bits };
        rs.build_prefilters();
        rs
    }

    fn build_prefilters(&mut self) {
        let mut pkt: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
        let mut app: HashMap<Buf, HashMap<Vec<u8>, Vec<u32>>> = HashMap::new();
        for (i, r) in self.rules.iter().enumerate() {
            let i = i as u32;
            let app_rule = r.has_app_buf();
            match (&r.fast, app_rule) {
                (Some((Buf::Payload, p, _)), false) => pkt.entry(p.to_ascii_lowercase()).or_default().push(i),
                (_, false) => self.pkt_always.push(i),
                (Some((b, p, _)), true) if *b != Buf::Payload => app.entry(*b).or_default().entry(p.to_ascii_lowercase()).or_default().push(i),
                (_, true) => self.app_always.push(i),
            }
        }
        self.pkt_pf = Prefilter::build(pkt.into_iter().collect());
        let mut v: Vec<(Buf, Prefilter)> = app.into_iter().filter_map(|(b, m)| Prefilter::build(m.into_iter().collect()).map(|p| (b, p))).collect();
        v.sort_by_key(|(b, _)| *b);
        self.app_pf = v;
    }
}

fn find_at(hay: &[u8], c: &Content, from: usize, to: usize) -> Option<usize> {
    if from > to || to > hay.len() || to - from < c.pat.len() {
        return None;
    }
    let h = &hay[from..to];
    if c.nocase {
        let first = c.pat_lc[0];
        let up = first.to_ascii_uppercase();
        let n = c.pat.len();
        let mut i = 0;
        while i + n <= h.len() {
            let rel = memchr::memchr2(first, up, &h[i..=h.len() - n])?;
            let s = i + rel;
            if h[s..s + n].eq_ignore_ascii_case(&c.pat) {
                return Some(from + s);
            }
            i = s + 1;
        }
        None
    } else {
        memchr::memmem::find(h, &c.pat).map(|p| from + p)
    }
}

/// Evaluate a buffer's item list. `prev` is the end of the previous match (for relative items).
pub fn match_items(buf: &[u8], items: &[Item], prev: usize, budget: &mut u32) -> bool {
    let Some(first) = items.first() else { return true };
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let rest = &items[1..];
    match first {
        Item::Bsize(c) => c.test(buf.len() as u64) && match_items(buf, rest, prev, budget),
        Item::IsDataAt { n, relative, negated } => {
            let ok = if *relative {
                (prev as i64) + *n <= buf.len() as i64
            } else {
                *n < buf.len() as i64
            };
            ok != *negated && match_items(buf, rest, prev, budget)
        }
        Item::Pcre(p) => {
            // A relative pcre sees the buffer from the previous match on (so ^ anchors there).
            let start = if p.relative { prev.min(buf.len()) } else { 0 };
            let m = p.re.find(&buf[start..]).ok().flatten();
            match (m, p.negated) {
                (Some(m), false) => match_items(buf, rest, start + m.end(), budget),
                (None, true) => match_items(buf, rest, prev, budget),
                _ => false,
            }
        }
        Item::Content(c) => {
            let len = buf.len() as i64;
            let n = c.pat.len() as i64;
            let (mut lo, mut hi) = if c.relative() {
                let base = prev as i64 + c.distance.unwrap_or(0);
                let hi = match c.within {
                    Some(w) => prev as i64 + c.distance.unwrap_or(0).max(0) + w,
                    None => len,
                };
                (base, hi)
            } else {
                let off = c.offset.unwrap_or(0);
                let hi = match c.depth {
                    Some(d) => off + d,
                    None => len,
                };
                (off, hi)
            };
            if c.relative() {
                if let Some(o) = c.offset {
                    lo = lo.max(prev as i64 + o);
                }
                if let Some(d) = c.depth {
                    hi = hi.min(lo + d);
                }
            }
            if c.startswith {
                lo = 0;
                hi = hi.min(n);
            }
            lo = lo.max(0);
            hi = hi.min(len);
            if c.negated {
                let found = if hi - lo >= n { find_at(buf, c, lo as usize, hi as usize).is_some() } else { false };
                let found = found && (!c.endswith || find_end(buf, c));
                return !found && match_items(buf, rest, prev, budget);
            }
            if hi - lo < n {
                return false;
            }
            let mut from = lo as usize;
            while let Some(p) = find_at(buf, c, from, hi as usize) {
                let end = p + c.pat.len();
                if (!c.endswith || end == buf.len()) && match_items(buf, rest, end, budget) {
                    return true;
                }
                if *budget == 0 {
                    return false;
                }
                // Only worth retrying when a later item depends on where this one matched.
                if !rest.iter().any(|i| matches!(i, Item::Content(c) if c.relative()) || matches!(i, Item::Pcre(p) if p.relative) || matches!(i, Item::IsDataAt{relative: true, ..})) && !c.endswith {
                    return false;
                }
                from = p + 1;
            }
            false
        }
    }
}

fn find_end(buf: &[u8], c: &Content) -> bool {
    buf.len() >= c.pat.len() && {
        let t = &buf[buf.len() - c.pat.len()..];
        if c.nocase {
            t.eq_ignore_ascii_case(&c.pat)
        } else {
            t == c.pat.as_slice()
        }
    }
}

pub fn eval_buffer(buf: &[u8], items: &[Item]) -> bool {
    let mut budget = MATCH_BUDGET;
    match_items(buf, items, 0, &mut budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(text: &str) -> RuleSet {
        RuleSet::load(&[("t".into(), text.into())])
    }

    #[test]
    fn relative_content_backtracks() {
        let s = rs(r#"alert tcp any any -> any any (content:"a"; content:"b"; distance:1; within:1; sid:1;)"#);
        assert!(s.errors.is_empty());
        let items = &s.rules[0].bufs[0].1;
        assert!(eval_buffer(b"aa ab axb", items));
        assert!(!eval_buffer(b"ab", items));
    }

    #[test]
    fn isdataat_semantics() {
        let s = rs("alert icmp any any -> any any (isdataat:31; sid:1;)\nalert icmp any any -> any any (isdataat:32,relative; sid:2;)");
        let d = [0u8; 32];
        assert!(eval_buffer(&d, &s.rules[0].bufs[0].1));
        assert!(eval_buffer(&d, &s.rules[1].bufs[0].1));
    }

    #[test]
    fn unsupported_keywords_are_named() {
        let s = rs(r#"alert tcp any any -> any any (content:"x"; byte_test:4,>,1,0; sid:7;)"#);
        assert_eq!(s.errors.len(), 1);
        assert_eq!(s.errors[0].sid, Some(7));
        assert!(s.errors[0].reason.contains("byte_test"));
    }
}
