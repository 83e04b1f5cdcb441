//! Rule set compilation (prefilter automata over fast patterns) and the per-buffer match
//! functions: content with its modifiers, pcre, isdataat, bsize.

use crate::detect_flowbits::Interner;
use crate::detect_keywords::Keywords;
use crate::detect_parse::*;
use crate::detect_vars::Vars;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::collections::HashMap;
use std::net::IpAddr;

/// Backtracking budget per buffer evaluation, so adversarial payloads cannot blow up
/// relative-content matching.
const MATCH_BUDGET: u32 = 4096;

pub struct Prefilter {
    /// Aho-corasick: the matcher without Hyperscan, and always built for the full payload
    /// set (the benchmark's aho-corasick baseline).
    ac: Option<AhoCorasick>,
    #[cfg(feature = "hyperscan")]
    hs: Option<crate::detect_hs::HsDb>,
    /// pattern id → rule indices using it as fast pattern
    pat_rules: Vec<Vec<u32>>,
    /// Ids from here on are riders: another prefilter's patterns, found in the same bytes by
    /// the same scan, recorded in `Scan::riders` (as ids of that prefilter) instead of raising
    /// candidates here.
    riders_from: u32,
    /// Unique in the process: what a `ValueMemo` slot records its scan was made with.
    id: u32,
    /// The longest pattern's length: a pattern across the seam of two pieces of data lies
    /// within this many bytes less one on either side of it.
    pub max_len: usize,
}

static NEXT_PREFILTER_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The last scans of header values that repeat from request to request (user agents, host
/// names, the header block of a client): per slot, the prefilter, the value's bytes and the
/// pattern ids found. A value is looked up by hash and compared in full, so a slot taken by
/// another value (or one an attacker made collide) only costs a scan; values longer than
/// `MEMO_MAX_VALUE` are not kept.
struct ValueMemo {
    hasher: foldhash::fast::RandomState,
    slots: Vec<MemoSlot>,
}

#[derive(Default)]
struct MemoSlot {
    prefilter: u32,
    value: Vec<u8>,
    pats: Vec<u32>,
}

const MEMO_SLOTS: usize = 256;
const MEMO_MAX_VALUE: usize = 512;

impl Default for ValueMemo {
    fn default() -> Self {
        ValueMemo { hasher: Default::default(), slots: Vec::new() }
    }
}

/// Buffers whose values repeat across requests and flows often enough to be worth a memo
/// (URIs and cookies do not).
fn memo_worthy(b: Buf) -> bool {
    matches!(b, Buf::HttpUserAgent | Buf::HttpHost | Buf::HttpRawHost | Buf::HttpHeader | Buf::HttpNamed(_))
}

/// Per-engine scan state reused across packets: candidate rules deduplicated with bitsets
/// (no per-packet allocation, no sort of duplicates).
#[derive(Default)]
pub struct Scan {
    pub cand: Vec<u32>,
    rule_seen: Vec<u64>,
    pat_seen: Vec<u64>,
    /// The buffers of a joint scan, concatenated, and where each lies: (start, end, buffer).
    joint: Vec<u8>,
    segs: Vec<(usize, usize, Buf)>,
    /// The rider ids a packet's scans found (see `Prefilter::riders_from`); packet detection
    /// clears them.
    pub riders: Vec<u32>,
    memo: ValueMemo,
    #[cfg(feature = "hyperscan")]
    hs: crate::detect_hs::Scratch,
}

/// Add rule `r` to the candidates unless already there.
#[inline]
fn add_cand(cand: &mut Vec<u32>, seen: &mut [u64], r: u32) {
    let (w, b) = (r as usize >> 6, 1u64 << (r & 63));
    if seen[w] & b == 0 {
        seen[w] |= b;
        cand.push(r);
    }
}

/// Mark pattern `p` seen; true the first time.
#[inline]
fn first_sight(seen: &mut [u64], p: usize) -> bool {
    let (w, b) = (p >> 6, 1u64 << (p & 63));
    let first = seen[w] & b == 0;
    seen[w] |= b;
    first
}

impl Scan {
    /// Scan state for engines running `rules`: its scratch comes fitted to their matchers.
    pub fn for_rules(rules: &RuleSet) -> Scan {
        #[cfg(feature = "hyperscan")]
        if let Ok(proto) = rules.scratch.lock() {
            return Scan { hs: proto.try_clone(), ..Scan::default() };
        }
        let _ = rules;
        Scan::default()
    }
    /// Start a new candidate list for a rule set of `n` rules.
    pub fn begin(&mut self, n: usize) {
        let words = n.div_ceil(64);
        if self.rule_seen.len() < words {
            self.rule_seen.resize(words, 0);
        }
        for &r in &self.cand {
            self.rule_seen[r as usize >> 6] &= !(1u64 << (r & 63));
        }
        self.cand.clear();
    }
    pub fn add_all(&mut self, rs: &[u32]) {
        for &r in rs {
            add_cand(&mut self.cand, &mut self.rule_seen, r);
        }
    }
    /// Candidates in rule order (the order rules are evaluated in, e.g. for flowbits).
    pub fn finish(&mut self) {
        self.cand.sort_unstable();
    }
    /// Clear the pattern bitset for a matcher of `n` patterns.
    fn reset_pats(&mut self, n: usize) {
        self.pat_seen.clear();
        self.pat_seen.resize(n.div_ceil(64), 0);
    }
}

/// A fast pattern as the prefilter looks for it: its bytes and whether case is ignored.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Lit {
    bytes: Vec<u8>,
    caseless: bool,
}

/// A matcher's patterns: each literal with the rules that use it as their fast pattern.
type PatternSet = Vec<(Lit, Vec<u32>)>;

/// A matcher's patterns in pattern-id order (sorted by literal). Matchers built from the same
/// literals number them alike, which riders (`Prefilter::riders_from`) and the response
/// stream's payload hits rely on: their ids are the app-layer payload prefilter's.
fn pattern_set(m: impl IntoIterator<Item = (Lit, Vec<u32>)>) -> PatternSet {
    let mut v: PatternSet = m.into_iter().collect();
    v.sort_unstable();
    v
}

impl Lit {
    /// The prefilter literal of a rule's fast pattern. A content without `nocase` matches its
    /// exact bytes, so its literal can be exact too: fewer false candidates, and Hyperscan scans
    /// exact literals faster. Case is ignored when the content ignores it, or when a case
    /// transform sits between the scanned buffer and the content.
    fn of(r: &Rule, b: Buf, pat: &[u8], nocase: bool) -> Lit {
        let case_xform = r.xforms_for(b).is_some_and(|xs| xs.iter().any(|x| matches!(x, Xf::ToLower | Xf::ToUpper)));
        let pat = without_attribute_openers(pat);
        if nocase || case_xform {
            Lit { bytes: pat.to_ascii_lowercase(), caseless: true }
        } else {
            Lit { bytes: pat.to_vec(), caseless: false }
        }
    }
}

/// A prefilter literal needs only be a part of its content (the rule's contents are all
/// checked when it is a candidate), and the part matters for speed: Hyperscan's literal matcher
/// confirms every place where a literal's last bytes occur, so a literal ending the way
/// ordinary traffic does costs on every such place. The commonest such ending in web content is
/// an HTML attribute opener (` class="`, ` value='`), found every few dozen bytes of a page: one
/// ET Open `file_data` literal ending in ` class="` was a third of the response-body scan's time.
/// Such openers are cut off the end (repeatedly), as long as 8 bytes or more remain.
fn without_attribute_openers(pat: &[u8]) -> &[u8] {
    let mut p = pat;
    while let [head @ .., b'=', b'"' | b'\''] = p {
        let name = head.iter().rev().take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':')).count();
        let mut k = head.len() - name;
        while k > 0 && head[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        if name == 0 || k < 8 {
            break;
        }
        p = &head[..k];
    }
    p
}

impl Prefilter {
    fn build(pats: PatternSet) -> Option<Prefilter> {
        Self::build_with(pats, false)
    }
    /// `want_ac`: build the aho-corasick automaton even when Hyperscan is available.
    fn build_with(pats: PatternSet, want_ac: bool) -> Option<Prefilter> {
        if pats.is_empty() {
            return None;
        }
        #[cfg(feature = "hyperscan")]
        let hs = {
            let v: Vec<(&[u8], bool)> = pats.iter().map(|(l, _)| (l.bytes.as_slice(), l.caseless)).collect();
            crate::detect_hs::HsDb::build(&v, true).ok()
        };
        #[cfg(feature = "hyperscan")]
        let need_ac = want_ac || hs.is_none();
        #[cfg(not(feature = "hyperscan"))]
        let need_ac = {
            let _ = want_ac;
            true
        };
        // Aho-corasick ignores case for every literal: for exact ones that only adds candidates,
        // which verification rejects.
        let ac = if need_ac {
            Some(AhoCorasickBuilder::new().ascii_case_insensitive(true).match_kind(MatchKind::Standard).build(pats.iter().map(|(l, _)| &l.bytes)).ok()?)
        } else {
            None
        };
        Some(Prefilter {
            ac,
            #[cfg(feature = "hyperscan")]
            hs,
            max_len: pats.iter().map(|(l, _)| l.bytes.len()).max().unwrap_or(0),
            pat_rules: pats.into_iter().map(|(_, r)| r).collect(),
            riders_from: u32::MAX,
            id: NEXT_PREFILTER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }
    /// The ids of the patterns found in `hay` (each once), appended to `out`.
    fn scan_pats(&self, hay: &[u8], sc: &mut Scan, out: &mut Vec<u32>) {
        if hay.is_empty() {
            return;
        }
        #[cfg(feature = "hyperscan")]
        if let Some(hs) = &self.hs {
            hs.scan(&mut sc.hs, hay, |p, _| out.push(p));
            return;
        }
        let Some(ac) = &self.ac else { return };
        sc.reset_pats(self.pat_rules.len());
        for m in ac.find_overlapping_iter(hay) {
            let p = m.pattern().as_usize();
            if first_sight(&mut sc.pat_seen, p) {
                out.push(p as u32);
            }
        }
    }
    /// As `scan`, through the scan's value memo: a value this prefilter scanned lately is not
    /// scanned again.
    fn scan_memo(&self, hay: &[u8], sc: &mut Scan) {
        if hay.is_empty() || hay.len() > MEMO_MAX_VALUE {
            return self.scan(hay, sc);
        }
        use std::hash::BuildHasher;
        if sc.memo.slots.is_empty() {
            sc.memo.slots.resize_with(MEMO_SLOTS, MemoSlot::default);
        }
        let h = sc.memo.hasher.hash_one((self.id, hay));
        let i = h as usize % sc.memo.slots.len();
        let mut slot = std::mem::take(&mut sc.memo.slots[i]);
        if slot.prefilter != self.id || slot.value != hay {
            slot.prefilter = self.id;
            slot.value.clear();
            slot.value.extend_from_slice(hay);
            slot.pats.clear();
            self.scan_pats(hay, sc, &mut slot.pats);
        }
        for &p in &slot.pats {
            for &r in &self.pat_rules[p as usize] {
                add_cand(&mut sc.cand, &mut sc.rule_seen, r);
            }
        }
        sc.memo.slots[i] = slot;
    }
    /// Whether scans record riders (see `riders_from`).
    pub fn has_riders(&self) -> bool {
        self.riders_from != u32::MAX
    }
    /// Add the rules whose fast pattern occurs in hay to the scan's candidates.
    pub fn scan(&self, hay: &[u8], sc: &mut Scan) {
        if hay.is_empty() {
            return;
        }
        let Scan { cand, rule_seen, pat_seen, riders, .. } = sc;
        let mut hit = |p: usize| {
            for &r in &self.pat_rules[p] {
                add_cand(cand, rule_seen, r);
            }
            if p as u32 >= self.riders_from {
                riders.push(p as u32 - self.riders_from);
            }
        };
        #[cfg(feature = "hyperscan")]
        if let Some(hs) = &self.hs {
            // Each pattern is reported once per scan (SINGLEMATCH): no pattern bitset needed.
            hs.scan(&mut sc.hs, hay, |p, _| hit(p as usize));
            return;
        }
        let Some(ac) = &self.ac else { return };
        pat_seen.clear();
        pat_seen.resize(self.pat_rules.len().div_ceil(64), 0);
        for m in ac.find_overlapping_iter(hay) {
            let p = m.pattern().as_usize();
            if first_sight(pat_seen, p) {
                hit(p);
            }
        }
    }
    /// Raw scan throughput helper for the benchmark: count matches only.
    pub fn count(&self, hay: &[u8]) -> usize {
        self.ac.as_ref().map(|ac| ac.find_overlapping_iter(hay).count()).unwrap_or(0)
    }
    /// The same raw scan with Hyperscan (patterns present, each once), when built with it.
    #[cfg(feature = "hyperscan")]
    pub fn count_hs(&self, hay: &[u8], sc: &mut crate::detect_hs::Scratch) -> Option<usize> {
        let hs = self.hs.as_ref()?;
        let mut n = 0usize;
        hs.scan(sc, hay, |_, _| n += 1);
        Some(n)
    }
}

/// What earlier scans of the same bytes already found in a transaction side's buffers: the
/// response stream's scan (`RuleSet::scan_response_stream`) for a response's body and packet
/// data, the packet's own scan (its riders, `Prefilter::riders_from`) for a client packet.
#[derive(Clone, Copy, Default)]
pub struct Found<'a> {
    /// The file_data prefilter's pattern ids found in the body, as a bitset.
    pub body: Option<&'a [u64]>,
    /// The side's payload prefilter's pattern ids found in the packet's data.
    pub payload: Option<&'a [u32]>,
}

/// The payload prefilter's pattern ids the response stream's scan found in the server data of
/// the packet at hand (see `RuleSet::payload_hits`).
#[derive(Default, Debug)]
#[cfg_attr(not(feature = "hyperscan"), allow(dead_code))]
pub struct ChunkHits {
    /// The rule set's generation and the stream offset just past that data.
    key: Option<(u64, u64)>,
    ids: Vec<u32>,
}

/// The joint scan's candidates for one side of a transaction, kept for the side's next
/// inspection: a response is inspected when its headers are complete and again when its body
/// is, and the header-sized buffers the joint scan reads have not changed in between (nor
/// has the rule set: `key` holds both).
#[derive(Default, Clone, Debug)]
pub struct JointMemo {
    key: Option<(u64, u64)>,
    cands: Vec<u32>,
}

/// The app-layer prefilter of one transaction side.
pub struct AppPrefilter {
    /// Buffers with many fast patterns (URI, host, user agent, bodies, ...), each scanned on
    /// its own; sorted by buffer.
    each: Vec<(Buf, Prefilter)>,
    /// Per buffer tag (`Buf::tag`): its index in `each`, NONE, or NAMED (an `HttpNamed`
    /// buffer: search `each` for its name).
    each_at: [u8; 256],
    /// Every other buffer, all in one scan.
    joint: Option<JointPrefilter>,
}

impl Default for AppPrefilter {
    fn default() -> Self {
        AppPrefilter { each: Vec::new(), each_at: [NONE; 256], joint: None }
    }
}

const NONE: u8 = 255;
const NAMED: u8 = 254;

/// A per-tag table of where each of `bufs` is (see AppPrefilter::each_at); `bufs` sorted.
fn tag_table(bufs: impl Iterator<Item = Buf>) -> [u8; 256] {
    let mut t = [NONE; 256];
    for (i, b) in bufs.enumerate() {
        let tag = b.tag() as usize;
        t[tag] = if matches!(b, Buf::HttpNamed(_)) || t[tag] != NONE || i >= NAMED as usize { NAMED } else { i as u8 };
    }
    t
}

/// Buffers with more fast patterns than this get a matcher of their own: in the joint matcher
/// their patterns would slow the scan of every other buffer (a bigger automaton, more hits).
const JOINT_MAX_PATTERNS: usize = 128;

impl AppPrefilter {
    fn build(sets: Vec<(Buf, PatternSet)>) -> AppPrefilter {
        // Bodies and the payload are never joined: copying them would cost more than the scan
        // call saved.
        let (joint, each): (Vec<_>, Vec<_>) = sets.into_iter().partition(|(b, pats)| !matches!(b, Buf::FileData | Buf::HttpClientBody | Buf::Payload) && pats.len() <= JOINT_MAX_PATTERNS);
        let bufs: Vec<Buf> = each.iter().map(|(b, _)| *b).collect();
        let built = build_parallel(each.into_iter().map(|(_, p)| p).collect());
        let each: Vec<(Buf, Prefilter)> = bufs.into_iter().zip(built).filter_map(|(b, p)| p.map(|p| (b, p))).collect();
        AppPrefilter { each_at: tag_table(each.iter().map(|(b, _)| *b)), each, joint: JointPrefilter::build(joint) }
    }
    pub fn is_empty(&self) -> bool {
        self.each.is_empty() && self.joint.is_none()
    }
    /// Add the rules whose fast pattern occurs in its buffer to the scan's candidates:
    /// `bufs` are the transaction's buffers, `payload` the packet data rules see as payload.
    /// `found`: what earlier scans found in the file_data buffer and the payload, in place of
    /// scanning them again. `memo`: the joint scan's candidates of this side's last inspection
    /// and what its buffers were made from (`header_key`, with the rule set's generation);
    /// reused when that is unchanged, else replaced. With a memo, `sc` must hold no candidates
    /// yet.
    pub fn scan(&self, bufs: &[(Buf, &[u8])], payload: &[u8], found: Found, memo: Option<(&mut JointMemo, (u64, u64))>, sc: &mut Scan) {
        if let Some(j) = &self.joint {
            match memo {
                Some((m, key)) if m.key == Some(key) => sc.add_all(&m.cands),
                Some((m, key)) => {
                    debug_assert!(sc.cand.is_empty());
                    j.scan(bufs, sc);
                    m.cands.clear();
                    m.cands.extend_from_slice(&sc.cand);
                    m.key = Some(key);
                }
                None => j.scan(bufs, sc),
            }
        }
        for (b, v) in bufs.iter().chain([(Buf::Payload, payload)].iter()) {
            let at = match self.each_at[b.tag() as usize] {
                NONE => None,
                NAMED => self.each.binary_search_by(|(x, _)| x.cmp(b)).ok(),
                i => Some(i as usize),
            };
            let Some(i) = at else { continue };
            let pf = &self.each[i].1;
            let mut add = |p: usize| {
                for &r in pf.pat_rules.get(p).map(|v| v.as_slice()).unwrap_or(&[]) {
                    add_cand(&mut sc.cand, &mut sc.rule_seen, r);
                }
            };
            match (found, *b) {
                (Found { body: Some(hits), .. }, Buf::FileData) => {
                    for (w, &word) in hits.iter().enumerate() {
                        let mut bits = word;
                        while bits != 0 {
                            add(w * 64 + bits.trailing_zeros() as usize);
                            bits &= bits - 1;
                        }
                    }
                }
                (Found { payload: Some(ids), .. }, Buf::Payload) => ids.iter().for_each(|&p| add(p as usize)),
                _ if memo_worthy(*b) => pf.scan_memo(v, sc),
                _ => pf.scan(v, sc),
            }
        }
    }
}

/// The fast patterns of many small buffers in one matcher, run once over those buffers
/// concatenated: a transaction's dozen header-sized buffers cost one scan instead of one each
/// (a scan's fixed cost dwarfs a 30-byte buffer). Patterns report every occurrence, and one
/// counts only where it lies inside a buffer of its own kind.
struct JointPrefilter {
    /// The buffers it covers, sorted.
    bufs: Vec<Buf>,
    /// `tag_table` of `bufs`.
    bufs_at: [u8; 256],
    /// Per pattern id: the buffer it belongs to and its length.
    pats: Vec<(Buf, usize)>,
    ac: Option<AhoCorasick>,
    #[cfg(feature = "hyperscan")]
    hs: Option<crate::detect_hs::HsDb>,
    pat_rules: Vec<Vec<u32>>,
}

impl JointPrefilter {
    fn build(sets: Vec<(Buf, PatternSet)>) -> Option<JointPrefilter> {
        let mut bufs: Vec<Buf> = sets.iter().map(|(b, _)| *b).collect();
        bufs.sort_unstable();
        let mut lits = Vec::new();
        let mut pats = Vec::new();
        let mut pat_rules = Vec::new();
        for (b, set) in sets {
            for (l, rs) in set {
                pats.push((b, l.bytes.len()));
                lits.push(l);
                pat_rules.push(rs);
            }
        }
        if lits.is_empty() {
            return None;
        }
        #[cfg(feature = "hyperscan")]
        let hs = {
            let v: Vec<(&[u8], bool)> = lits.iter().map(|l| (l.bytes.as_slice(), l.caseless)).collect();
            crate::detect_hs::HsDb::build(&v, false).ok()
        };
        #[cfg(feature = "hyperscan")]
        let need_ac = hs.is_none();
        #[cfg(not(feature = "hyperscan"))]
        let need_ac = true;
        let ac = if need_ac { Some(AhoCorasickBuilder::new().ascii_case_insensitive(true).match_kind(MatchKind::Standard).build(lits.iter().map(|l| &l.bytes)).ok()?) } else { None };
        Some(JointPrefilter {
            bufs_at: tag_table(bufs.iter().copied()),
            bufs,
            pats,
            ac,
            #[cfg(feature = "hyperscan")]
            hs,
            pat_rules,
        })
    }

    fn scan(&self, bufs: &[(Buf, &[u8])], sc: &mut Scan) {
        sc.joint.clear();
        sc.segs.clear();
        let covered = |b: &Buf| match self.bufs_at[b.tag() as usize] {
            NONE => false,
            NAMED => self.bufs.binary_search(b).is_ok(),
            _ => true,
        };
        // http.start is the start line, CRLF, the raw header block and CRLF: when it is
        // scanned, a start line or raw header block equal to its part is not copied and
        // scanned again, its segment lies inside http.start's (segments may then overlap).
        let mut start_seg: Option<(usize, usize)> = None;
        if let Some((b, v)) = bufs.iter().find(|(b, v)| *b == Buf::HttpStart && !v.is_empty() && covered(b)) {
            sc.joint.extend_from_slice(v);
            sc.segs.push((0, v.len(), *b));
            start_seg = Some((0, v.len()));
        }
        let mut overlap = false;
        for (b, v) in bufs {
            if v.is_empty() || *b == Buf::HttpStart && start_seg.is_some() || !covered(b) {
                continue;
            }
            if let (Some((s0, e0)), Buf::HttpRequestLine | Buf::HttpResponseLine | Buf::HttpRawHeader) = (start_seg, *b) {
                let within = &sc.joint[s0..e0];
                let at = if *b == Buf::HttpRawHeader {
                    within.len().checked_sub(v.len() + 2).filter(|&a| within.ends_with(b"\r\n") && &within[a..a + v.len()] == *v)
                } else {
                    within.starts_with(v).then_some(0)
                };
                if let Some(a) = at {
                    sc.segs.push((s0 + a, s0 + a + v.len(), *b));
                    overlap = true;
                    continue;
                }
            }
            let s = sc.joint.len();
            sc.joint.extend_from_slice(v);
            sc.segs.push((s, sc.joint.len(), *b));
        }
        if sc.joint.is_empty() {
            return;
        }
        if overlap {
            sc.segs.sort_unstable_by_key(|s| s.0);
        }
        sc.reset_pats(self.pats.len());
        let Scan { cand, rule_seen, pat_seen, joint, segs, .. } = sc;
        let mut hit = |p: usize, end: usize| {
            let (b, len) = self.pats[p];
            let start = end - len;
            // The segments beginning at or before the match's first byte (sorted by start):
            // one of its buffer must hold the whole match. Without overlaps that is the last
            // of them (segments are then contiguous from 0).
            let n = segs.partition_point(|s| s.0 <= start);
            let inside = if overlap {
                segs[..n].iter().any(|&(_, seg_end, seg_buf)| seg_buf == b && end <= seg_end)
            } else {
                let (_, seg_end, seg_buf) = segs[n - 1];
                seg_buf == b && end <= seg_end
            };
            if inside && first_sight(pat_seen, p) {
                for &r in &self.pat_rules[p] {
                    add_cand(cand, rule_seen, r);
                }
            }
        };
        #[cfg(feature = "hyperscan")]
        if let Some(hs) = &self.hs {
            hs.scan(&mut sc.hs, joint, |p, end| hit(p as usize, end));
            return;
        }
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(&joint[..]) {
                hit(m.pattern().as_usize(), m.end());
            }
        }
    }
}

#[cfg(feature = "hyperscan")]
impl BodyMerged {
    /// For server-to-client TCP groups with both kinds of patterns; `body`: the file_data
    /// set, `pkt`: the group's set, both in their prefilters' pattern order.
    /// `payload`: the response side's app-layer payload set (rules of HTTP transactions with
    /// payload contents), found in the packet's data while it streams by too.
    fn build(group: usize, body: &PatternSet, pkt: &PatternSet, payload: &PatternSet) -> Option<BodyMerged> {
        // Group layout (see pkt_group): class 0 (tcp), direction 1 (to client).
        if group / BUCKETS != 1 || body.is_empty() {
            return None;
        }
        let lits: Vec<(&[u8], bool)> = body.iter().chain(pkt.iter()).chain(payload.iter()).map(|(l, _)| (l.bytes.as_slice(), l.caseless)).collect();
        let db = crate::detect_hs::HsDb::build_stream(&lits).ok()?;
        Some(BodyMerged { db, n_body: body.len() as u32, n_pkt: pkt.len() as u32, lens: lits.iter().map(|(b, _)| b.len() as u32).collect() })
    }
}

impl RuleSet {
    /// Scan server-to-client bytes of an HTTP flow once for both the packet group's payload
    /// patterns and the response file_data patterns, as one stream (so a pattern spanning two
    /// packets of a body is found). `chunk` is the in-order data this packet delivered, already
    /// given to the HTTP parser. Packet candidates (patterns ending inside `chunk`) go to `sc`;
    /// file_data hits are recorded in the transaction whose body, as sent, holds them — its
    /// file_data buffer is then not scanned again (`body_hits`); the response side's app-layer
    /// payload patterns ending inside `chunk` are kept for this packet's inspection of the
    /// transaction (`payload_hits`). Returns None when this group
    /// has no such matcher or the scan failed (the caller scans the packet as usual), else
    /// whether the stream continued from the bytes before `chunk` (so it also found patterns
    /// across that seam; a stream opened here did not).
    #[cfg(feature = "hyperscan")]
    pub fn scan_response_stream(&self, group: usize, st: &mut Option<StreamScan>, h: &mut crate::applayer_http::HttpState, chunk: &[u8], sc: &mut Scan) -> Option<bool> {
        h.res_chunk_hits.key = None;
        let Some(Some(m)) = self.body_merged.get(group) else {
            *st = None;
            return None;
        };
        let end = h.res_fed();
        let Some(start) = end.checked_sub(chunk.len() as u64) else {
            *st = None;
            return None;
        };
        // A stream of another rule set or group, or one that missed bytes, starts over here.
        if st.as_ref().is_some_and(|s| s.generation != self.generation || s.group != group || s.base + s.hs.offset != start) {
            *st = None;
        }
        let continued = st.is_some();
        if st.is_none() {
            *st = crate::detect_hs::HsStream::open(&m.db).map(|hs| StreamScan { hs, base: start, group, generation: self.generation });
        }
        let Some(s) = st.as_mut() else { return None };
        let pkt = self.pkt_groups.get(group).and_then(|g| g.as_ref());
        let base = s.base;
        let Scan { cand, rule_seen, hs, .. } = sc;
        let words = (m.n_body as usize).div_ceil(64);
        let txs = &mut h.txs;
        let chunk_hits = &mut h.res_chunk_hits;
        chunk_hits.ids.clear();
        let n_known = m.n_body + m.n_pkt;
        let ok = s.hs.scan(&m.db, hs, chunk, |id, to| {
            let to = base + to;
            let from = to - m.lens[id as usize] as u64;
            if id < m.n_body {
                // Transactions are few and responses arrive in order: look from the newest.
                let Some(tx) = txs.iter_mut().rev().find(|t| t.res_body_at.is_some_and(|a| a <= from && to <= a + t.res_body_seen)) else { return };
                if tx.res_body_hits.len() < words {
                    tx.res_body_hits.resize(words, 0);
                }
                tx.res_body_hits[id as usize >> 6] |= 1u64 << (id & 63);
            } else if to > start {
                // Ending inside the data: wholly in it, or across the seam with the bytes before
                // it (the engine checks those on the previous data's tail + this data; an
                // app-layer payload hit is a candidate only, so one that began before is fine).
                if id >= n_known {
                    let p = id - n_known;
                    if !chunk_hits.ids.contains(&p) {
                        chunk_hits.ids.push(p);
                    }
                } else if let Some(p) = pkt {
                    for &r in &p.pat_rules[(id - m.n_body) as usize] {
                        add_cand(cand, rule_seen, r);
                    }
                }
            }
        });
        if !ok {
            // The stream's state is unknown: bodies it covered are scanned again at inspection.
            *st = None;
            return None;
        }
        h.res_chunk_hits.key = Some((self.generation, end));
        Some(continued)
    }

    /// The response side's payload patterns found in the packet at hand, when it is the
    /// server data `scan_response_stream` scanned last (its in-order data, the packet's own
    /// payload) with this rule set; None: scan the payload.
    #[cfg(feature = "hyperscan")]
    pub fn payload_hits<'a>(&self, h: &'a crate::applayer_http::HttpState, c: &crate::detect_ctx::PktCtx) -> Option<&'a [u32]> {
        let data = c.stream.as_deref()?;
        let own = !c.to_server && !c.no_payload && data.as_ptr() == c.p.payload.as_ptr() && data.len() == c.p.payload.len();
        (own && h.res_chunk_hits.key == Some((self.generation, h.res_fed()))).then_some(h.res_chunk_hits.ids.as_slice())
    }

    #[cfg(not(feature = "hyperscan"))]
    pub fn payload_hits<'a>(&self, _h: &'a crate::applayer_http::HttpState, _c: &crate::detect_ctx::PktCtx) -> Option<&'a [u32]> {
        None
    }

    /// The file_data hits of a response body scanned as it streamed by with this rule set
    /// (`scan_response_stream`), when the scan saw all of it; None: scan the buffer.
    #[cfg(feature = "hyperscan")]
    pub fn body_hits<'a>(&self, st: &Option<StreamScan>, tx: &'a crate::applayer_http::HttpTx) -> Option<&'a [u64]> {
        let s = st.as_ref()?;
        let a = tx.res_body_at?;
        (s.generation == self.generation && a >= s.base && a + tx.res_body_seen <= s.base + s.hs.offset).then_some(tx.res_body_hits.as_slice())
    }

    #[cfg(not(feature = "hyperscan"))]
    pub fn body_hits<'a>(&self, _st: &Option<StreamScan>, _tx: &'a crate::applayer_http::HttpTx) -> Option<&'a [u64]> {
        None
    }
}

/// Candidate rules by address: for rules without a fast pattern (IP-only lists and the like),
/// each rule is indexed under the narrower of its source/destination address sets, and a
/// packet looks up its source and destination once each (both, so bidirectional rules and
/// either direction are covered; `header_ok` verifies exactly). Rules whose sets are `any` or
/// too wide to index go to `rest`.
#[derive(Default)]
pub struct AddrIndex {
    v4: RangeIndex,
    v6: RangeIndex,
    pub rest: Vec<u32>,
    /// Packet rules only: per rule id, the signature groups (`pkt_group`) it may match, as
    /// bits, so a lookup for one group leaves out rules of other protocols, directions or
    /// server ports (`$HOME_NET` rules for port 22 or 445 are most of a home client's
    /// address matches, and each cost a header check per flow).
    groups: Vec<u32>,
}

const _: () = assert!(GROUPS <= 32, "group masks are u32");

/// Disjoint segments [starts[i], starts[i+1]) of the address space, each with its rules.
#[derive(Default)]
struct RangeIndex {
    starts: Vec<u128>,
    lists: Vec<Vec<u32>>,
}

impl RangeIndex {
    fn build(mut ranges: Vec<(u128, u128, u32)>) -> RangeIndex {
        if ranges.is_empty() {
            return RangeIndex::default();
        }
        let mut starts: Vec<u128> = vec![0];
        for &(lo, hi, _) in &ranges {
            starts.push(lo);
            if let Some(n) = hi.checked_add(1) {
                starts.push(n);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); starts.len()];
        ranges.sort_unstable_by_key(|r| r.2);
        for (lo, hi, r) in ranges {
            let a = starts.partition_point(|&s| s <= lo) - 1;
            let b = starts.partition_point(|&s| s <= hi) - 1;
            for l in &mut lists[a..=b] {
                if l.last() != Some(&r) {
                    l.push(r);
                }
            }
        }
        for l in &mut lists {
            l.shrink_to_fit();
        }
        RangeIndex { starts, lists }
    }
    fn get(&self, ip: u128) -> &[u32] {
        if self.starts.is_empty() {
            return &[];
        }
        let i = self.starts.partition_point(|&s| s <= ip) - 1;
        &self.lists[i]
    }
}

impl AddrIndex {
    /// Packet rules: lookups take the packet's signature group.
    fn build_grouped(rules: &[Rule], ids: &[u32]) -> AddrIndex {
        let mut groups = vec![0u32; rules.len()];
        for &i in ids {
            groups[i as usize] = rule_groups(&rules[i as usize]).iter().fold(0, |m, g| m | 1 << g);
        }
        AddrIndex { groups, ..Self::build(rules, ids) }
    }
    fn build(rules: &[Rule], ids: &[u32]) -> AddrIndex {
        // Wider than this many addresses, a set is not worth indexing (it would land in many
        // segments); such rules are checked on every packet, as before.
        const WIDE_V4: u128 = 1 << 26;
        const WIDE_V6: u128 = 1 << 100;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut rest = Vec::new();
        for &i in ids {
            let r = &rules[i as usize];
            let mut best: Option<(u128, (Vec<(u128, u128)>, Vec<(u128, u128)>))> = None;
            for set in [&r.src, &r.dst] {
                if set.is_any() {
                    continue;
                }
                let (a, b) = set.include_ranges();
                let span4: u128 = a.iter().map(|(l, h)| h - l + 1).sum();
                let span6: u128 = b.iter().fold(0u128, |s, (l, h)| s.saturating_add((h - l).saturating_add(1)));
                if span4 > WIDE_V4 || span6 > WIDE_V6 {
                    continue;
                }
                // Compare in "fraction of the v4 space" terms; v6 spans are scaled down.
                let cost = span4.max(span6 >> 96);
                if best.as_ref().map(|(c, _)| cost < *c).unwrap_or(true) {
                    best = Some((cost, (a, b)));
                }
            }
            match best {
                Some((_, (a, b))) => {
                    v4.extend(a.into_iter().map(|(l, h)| (l, h, i)));
                    v6.extend(b.into_iter().map(|(l, h)| (l, h, i)));
                }
                None => rest.push(i),
            }
        }
        AddrIndex { v4: RangeIndex::build(v4), v6: RangeIndex::build(v6), rest, groups: Vec::new() }
    }
    /// Every rule that may match a packet between `a` and `b` (of signature group `group`, for
    /// an index of packet rules), each once, in rule order.
    pub fn lookup(&self, a: &IpAddr, b: &IpAddr, group: Option<usize>) -> Vec<u32> {
        let keep = |r: &u32| match group {
            Some(g) if !self.groups.is_empty() => self.groups[*r as usize] >> g & 1 != 0,
            _ => true,
        };
        let mut v: Vec<u32> = self.rest.iter().copied().filter(keep).collect();
        for ip in [a, b] {
            v.extend(
                match ip {
                    IpAddr::V4(x) => self.v4.get(u32::from(*x) as u128),
                    IpAddr::V6(x) => self.v6.get(u128::from(*x)),
                }
                .iter()
                .copied()
                .filter(keep),
            );
        }
        v.sort_unstable();
        v.dedup();
        v
    }
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty() && self.v4.starts.is_empty() && self.v6.starts.is_empty()
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
    /// Every packet rule's payload fast pattern in one matcher: the benchmark's raw-scan
    /// baseline (packets are scanned with `pkt_groups`).
    pub pkt_pf: Option<Prefilter>,
    /// Packet rules without a payload fast pattern.
    pub pkt_always: Vec<u32>,
    /// The payload prefilter split into signature groups by protocol, direction and server
    /// port (see `pkt_group`): a packet scans only with the fast patterns of rules that can
    /// match its protocol, direction and port.
    pub pkt_groups: Vec<Option<Prefilter>>,
    /// `pkt_always` indexed by address.
    pub pkt_addr: AddrIndex,
    /// App-layer rules: prefilter per buffer kind plus always-evaluated ones.
    /// Per side (0: request / to_server, 1: response / to_client).
    pub app_pf: [AppPrefilter; 2],
    pub app_always: Vec<u32>,
    pub app_addr: AddrIndex,
    pub bits: Interner,
    /// Some rule uses `=>` (transactions are then also inspected with both directions).
    pub has_bidir_tx: bool,
    /// By buffer tag (`Buf::tag`): whether some rule inspects that buffer. Composed buffers no
    /// rule reads are not composed (`detect_buffers::http_bufs`).
    pub bufs_used: [bool; 256],
    /// Per packet group (server-to-client TCP groups only): the group's payload patterns and
    /// the response file_data patterns in one streaming matcher, so an HTTP response's bytes
    /// are scanned once for both (see `scan_response_stream`).
    #[cfg(feature = "hyperscan")]
    pub body_merged: Vec<Option<BodyMerged>>,
    /// A scratch fitted to every database above, cloned for each engine (`Scan::for_rules`).
    #[cfg(feature = "hyperscan")]
    scratch: std::sync::Mutex<crate::detect_hs::Scratch>,
    /// Distinguishes rule sets (streams opened with one set's matcher are not reused by another).
    pub generation: u64,
}

/// A streaming matcher over a response's bytes: ids below `n_body` are the file_data
/// prefilter's pattern ids, the rest the packet group's pattern ids offset by `n_body`.
#[cfg(feature = "hyperscan")]
pub struct BodyMerged {
    db: crate::detect_hs::HsDb,
    /// Pattern ids: file_data's first, then the group's payload patterns, then the response
    /// side's app-layer payload patterns.
    n_body: u32,
    n_pkt: u32,
    /// Literal length per id (a match's start is its end minus its length).
    lens: Vec<u32>,
}

/// One flow's server-to-client stream scan with a rule set's `BodyMerged` matcher.
#[cfg(feature = "hyperscan")]
pub struct StreamScan {
    hs: crate::detect_hs::HsStream,
    /// Where the scan began, in the HTTP parser's response coordinates (`HttpState::res_fed`).
    base: u64,
    group: usize,
    generation: u64,
}

#[cfg(not(feature = "hyperscan"))]
pub struct StreamScan;

static RULESET_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl RuleSet {
    pub fn load(sources: &[(String, String)]) -> RuleSet {
        let vars = Vars::default();
        let mut bits = Interner::default();
        let keywords = Keywords::new();
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
                let mut ctx = ParseCtx { vars: &vars, bits: &mut bits, keywords: &keywords };
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
        // Suricata's evaluation order (detect-engine-sigorder): by action (pass, drop,
        // reject, alert), then flowbits use (setters, then setters that also test, then
        // testers, then rules without flowbits), then xbits likewise, then priority; the
        // file order otherwise. A rule that sets a bit thus runs before one that tests it
        // on the same packet, whatever their order in the files.
        kept.sort_by_key(|r| (action_rank(&r.action), 3 - bits_kind(&r.flowbits), 3 - xbits_kind(&r.xbits), r.priority));
        let t_build = std::time::Instant::now();
        let mut rs = RuleSet {
            rules: kept,
            errors,
            total,
            pkt_pf: None,
            pkt_always: Vec::new(),
            pkt_groups: Vec::new(),
            pkt_addr: AddrIndex::default(),
            app_pf: Default::default(),
            app_always: Vec::new(),
            app_addr: AddrIndex::default(),
            bits,
            has_bidir_tx: false,
            bufs_used: [false; 256],
            #[cfg(feature = "hyperscan")]
            body_merged: Vec::new(),
            #[cfg(feature = "hyperscan")]
            scratch: Default::default(),
            generation: RULESET_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        rs.has_bidir_tx = rs.rules.iter().any(|r| r.bidir_tx);
        for r in &rs.rules {
            for (b, _) in &r.bufs {
                rs.bufs_used[b.tag() as usize] = true;
            }
        }
        rs.build_prefilters();
        release_free_heap();
        if std::env::var_os("CORDON_DPI_TIMING").is_some() {
            eprintln!("rules: prefilter build {:?}", t_build.elapsed());
            #[cfg(feature = "hyperscan")]
            {
                let hs = |p: &Option<Prefilter>| p.as_ref().and_then(|p| p.hs.as_ref()).map(|h| h.size()).unwrap_or(0);
                let g: usize = rs.pkt_groups.iter().map(hs).sum();
                let a: usize = rs.app_pf.iter().flat_map(|a| &a.each).map(|(_, p)| p.hs.as_ref().map(|h| h.size()).unwrap_or(0)).sum::<usize>()
                    + rs.app_pf.iter().filter_map(|a| a.joint.as_ref()?.hs.as_ref()).map(|h| h.size()).sum::<usize>();
                eprintln!("rules: hyperscan bytes: raw {} groups {} app {}", hs(&rs.pkt_pf), g, a);
            }
        }
        rs
    }

    pub fn matcher(&self) -> &'static str {
        #[cfg(feature = "hyperscan")]
        if self.pkt_pf.as_ref().map(|p| p.hs.is_some()).unwrap_or(false) {
            return "hyperscan";
        }
        "aho-corasick"
    }

    fn build_prefilters(&mut self) {
        let mut pkt: HashMap<Lit, Vec<u32>> = HashMap::new();
        let mut app: [HashMap<Buf, HashMap<Lit, Vec<u32>>>; 2] = [HashMap::new(), HashMap::new()];
        for (i, r) in self.rules.iter().enumerate() {
            let i = i as u32;
            let app_rule = r.has_app_buf();
            match (&r.fast, app_rule) {
                (Some((Buf::Payload, p, nocase)), false) => {
                    pkt.entry(Lit::of(r, Buf::Payload, p, *nocase)).or_default().push(i);
                }
                (_, false) => self.pkt_always.push(i),
                (Some((b, p, nocase)), true) => {
                    // A fast pattern in the payload counts too: the app prefilter scans the
                    // payload the rule would be checked against along with the transaction's
                    // buffers (once per inspection; packets far outnumber inspections, so this
                    // is cheaper than adding these patterns to every packet's scan). The sides
                    // of a transaction the rule can match on: its buffers' side, or its flow
                    // direction; neither → both.
                    let req = r.flow.to_server || r.bufs.iter().any(|(b, _)| b.side() == Some(true));
                    let res = r.flow.to_client || r.bufs.iter().any(|(b, _)| b.side() == Some(false));
                    // `=>` rules: their buffers of both directions are scanned together.
                    let (req, res) = if r.bidir_tx { (true, true) } else { (req, res) };
                    for (side, m) in app.iter_mut().enumerate() {
                        if req == res || (side == 0) == req {
                            m.entry(*b).or_default().entry(Lit::of(r, *b, p, *nocase)).or_default().push(i);
                        }
                    }
                }
                (None, true) => self.app_always.push(i),
            }
        }
        // Signature groups: each payload rule joins every group it can match in.
        let mut groups: Vec<HashMap<Lit, Vec<u32>>> = (0..GROUPS).map(|_| HashMap::new()).collect();
        for (p, rs) in &pkt {
            for &ri in rs {
                let r = &self.rules[ri as usize];
                for g in rule_groups(r) {
                    groups[g].entry(p.clone()).or_default().push(ri);
                }
            }
        }
        let sets: Vec<PatternSet> = groups.into_iter().map(pattern_set).collect();
        #[cfg(feature = "hyperscan")]
        {
            let body: Option<PatternSet> = app[1].get(&Buf::FileData).map(|m| pattern_set(m.clone()));
            let payload: PatternSet = app[1].get(&Buf::Payload).map(|m| pattern_set(m.clone())).unwrap_or_default();
            self.body_merged = sets.iter().enumerate().map(|(g, set)| BodyMerged::build(g, body.as_ref()?, set, &payload)).collect();
        }
        // Riders: the request side's app-layer payload patterns (HTTP rules with payload
        // contents beside their request buffers) go into the TCP to-server groups' matchers, so
        // a request's inspection finds them in the scan its packet had anyway (`Found::payload`).
        let riders: PatternSet = app[0].get(&Buf::Payload).map(|m| pattern_set(m.clone())).unwrap_or_default().into_iter().map(|(l, _)| (l, Vec::new())).collect();
        let mut riders_from = vec![u32::MAX; sets.len()];
        let mut sets = sets;
        if !riders.is_empty() {
            // Group layout (see pkt_group): class 0 (tcp), direction 0 (to server).
            for (g, set) in sets.iter_mut().enumerate().take(BUCKETS) {
                riders_from[g] = set.len() as u32;
                set.extend(riders.iter().cloned());
            }
        }
        self.pkt_groups = build_parallel(sets);
        for (pf, from) in self.pkt_groups.iter_mut().zip(riders_from) {
            if let Some(pf) = pf {
                pf.riders_from = from;
            }
        }
        // The benchmark's raw-scan baseline: every payload fast pattern with the very case
        // flags the engine's groups use, in one database.
        self.pkt_pf = Prefilter::build_with(pattern_set(pkt), true);
        for (side, m) in app.into_iter().enumerate() {
            let mut keyed: Vec<(Buf, PatternSet)> = m.into_iter().map(|(b, m)| (b, pattern_set(m))).collect();
            keyed.sort_by_key(|(b, _)| *b);
            self.app_pf[side] = AppPrefilter::build(keyed);
        }
        self.pkt_addr = AddrIndex::build_grouped(&self.rules, &self.pkt_always);
        self.app_addr = AddrIndex::build(&self.rules, &self.app_always);
        #[cfg(feature = "hyperscan")]
        {
            let groups = self.pkt_groups.iter().flatten();
            let each = self.app_pf.iter().flat_map(|a| a.each.iter().map(|(_, p)| p));
            let dbs = groups.chain(each).filter_map(|p| p.hs.as_ref());
            let joint = self.app_pf.iter().filter_map(|a| a.joint.as_ref()?.hs.as_ref());
            let merged = self.body_merged.iter().flatten().map(|m| &m.db);
            self.scratch = std::sync::Mutex::new(crate::detect_hs::Scratch::fitted_to(dbs.chain(joint).chain(merged)));
        }
    }
}

fn action_rank(a: &str) -> u8 {
    match a {
        "pass" => 0,
        "drop" => 1,
        "reject" | "rejectsrc" | "rejectdst" | "rejectboth" => 2,
        _ => 3,
    }
}

/// 3 sets only, 2 sets and tests, 1 tests only, 0 none (Suricata's flowbits ordering types).
fn bits_kind(ops: &[crate::detect_flowbits::FlowbitOp]) -> u8 {
    use crate::detect_flowbits::FlowbitOp::*;
    let read = ops.iter().any(|o| matches!(o, IsSet(_) | IsNotSet(_) | IsSetAll(_)));
    let write = ops.iter().any(|o| matches!(o, Set(_) | Unset(_) | Toggle(_)));
    match (read, write) {
        (false, true) => 3,
        (true, true) => 2,
        (true, false) => 1,
        _ => 0,
    }
}

fn xbits_kind(ops: &[crate::detect_flowint::XbitOp]) -> u8 {
    use crate::detect_flowint::XCmd::*;
    let read = ops.iter().any(|o| matches!(o.cmd, IsSet | IsNotSet));
    let write = ops.iter().any(|o| matches!(o.cmd, Set | Unset | Toggle));
    match (read, write) {
        (false, true) => 3,
        (true, true) => 2,
        (true, false) => 1,
        _ => 0,
    }
}

/// Return the heap freed by rule parsing and matcher compilation to the system (glibc keeps
/// it otherwise, and the engine's resident size would carry the compiler's peak).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Build prefilters for many pattern sets on a few threads (Hyperscan compilation dominates
/// rule-set load time); results in input order.
fn build_parallel(sets: Vec<PatternSet>) -> Vec<Option<Prefilter>> {
    // Serial by default: compiling on several threads left each thread's malloc arena holding
    // hundreds of MiB and saved little wall time on a busy machine. CORDON_DPI_BUILD_THREADS=N
    // opts in.
    let threads = std::env::var("CORDON_DPI_BUILD_THREADS").ok().and_then(|x| x.parse().ok()).unwrap_or(1usize).clamp(1, 8);
    let n = sets.len();
    if threads == 1 || n < 2 {
        // No thread at all (a spawned thread also leaves glibc's thread-exit bookkeeping
        // behind, which LeakSanitizer reported while fuzzing the rule parser).
        return sets.into_iter().map(Prefilter::build).collect();
    }
    let work: std::sync::Mutex<Vec<(usize, PatternSet)>> = std::sync::Mutex::new(sets.into_iter().enumerate().rev().collect());
    let done: std::sync::Mutex<Vec<(usize, Option<Prefilter>)>> = std::sync::Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some((i, set)) = work.lock().ok().and_then(|mut w| w.pop()) else { break };
                let p = Prefilter::build(set);
                if let Ok(mut d) = done.lock() {
                    d.push((i, p));
                }
            });
        }
    });
    let mut out: Vec<Option<Prefilter>> = (0..n).map(|_| None).collect();
    for (i, p) in done.into_inner().unwrap_or_default() {
        out[i] = p;
    }
    out
}

/// Server ports with their own signature group, per protocol class (tcp, udp, other); every
/// other port of the class shares one group. A packet is grouped by its server-side port (the
/// destination port to the server, the source port to the client), as Suricata groups: rules
/// name the server's port, the client's is ephemeral.
const HOT_PORTS: [&[u16]; 3] = [&[80, 443], &[53], &[]];
const BUCKETS: usize = 3;
/// 3 protocol classes × 2 directions × port buckets (not all used).
const GROUPS: usize = 3 * 2 * BUCKETS;

fn port_bucket(class: usize, p: u16) -> usize {
    let hot = HOT_PORTS[class];
    hot.iter().position(|&h| h == p).unwrap_or(hot.len())
}

/// The group a packet belongs to: protocol class, direction, server-port bucket.
pub fn pkt_group(proto: u8, to_server: bool, sp: u16, dp: u16) -> usize {
    let class = match proto {
        6 => 0,
        17 => 1,
        _ => 2,
    };
    let (dir, server_port) = if to_server { (0, dp) } else { (1, sp) };
    (class * 2 + dir) * BUCKETS + port_bucket(class, server_port)
}

/// Every group a rule may match a packet of (over-approximated; verification is exact).
fn rule_groups(r: &Rule) -> Vec<usize> {
    let classes: &[usize] = match r.proto {
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream | Proto::Http | Proto::Tls | Proto::Ssh | Proto::Ftp | Proto::FtpData | Proto::Smtp | Proto::Smb => &[0],
        Proto::Udp | Proto::Dhcp | Proto::Ntp | Proto::Tftp | Proto::Snmp => &[1],
        Proto::Dns | Proto::Krb5 | Proto::Sip | Proto::Dcerpc => &[0, 1],
        Proto::Icmp | Proto::Icmpv6 => &[2],
        Proto::Ip => &[0, 1, 2],
    };
    let dirs: &[usize] = if r.flow.to_server {
        &[0]
    } else if r.flow.to_client {
        &[1]
    } else {
        &[0, 1]
    };
    let mut out = Vec::new();
    for &c in classes {
        for &d in dirs {
            // The rule's port that meets the packet's server port: its destination port going
            // to the server, its source port coming back (and the other one when bidirectional).
            let (fwd, rev) = if d == 0 { (&r.dp, &r.sp) } else { (&r.sp, &r.dp) };
            let base = (c * 2 + d) * BUCKETS;
            let hot = HOT_PORTS[c];
            for (b, &hp) in hot.iter().enumerate() {
                if fwd.matches(hp) || r.bidir && rev.matches(hp) {
                    out.push(base + b);
                }
            }
            if hot.is_empty() || fwd.may_match_other_than(hot) || r.bidir && rev.may_match_other_than(hot) {
                out.push(base + hot.len());
            }
        }
    }
    out
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

/// What one rule's evaluation carries from item to item and buffer to buffer: the match
/// budget, the variables byte_extract and byte_math set, and the DCE endianness of the data.
pub struct MatchCtx {
    pub budget: u32,
    pub vars: [u64; crate::detect_byte::MAX_VARS],
    /// The DCERPC data inspected is little endian (byte keywords with `dce`).
    pub dce_le: bool,
}

impl Default for MatchCtx {
    fn default() -> MatchCtx {
        MatchCtx { budget: MATCH_BUDGET, vars: [0; crate::detect_byte::MAX_VARS], dce_le: false }
    }
}

/// Where a content may match in `buf`: [lo, hi).
#[inline]
fn content_window(c: &Content, len: i64, prev: i64, vars: &[u64]) -> (i64, i64) {
    let n = c.pat.len() as i64;
    let (mut lo, mut hi) = match &c.vars {
        None if c.relative() => {
            let base = prev + c.distance.unwrap_or(0);
            let hi = match c.within {
                Some(w) => prev + c.distance.unwrap_or(0).max(0) + w,
                None => len,
            };
            let mut lo = base;
            let mut hi = hi;
            if let Some(o) = c.offset {
                lo = lo.max(prev + o);
            }
            if let Some(d) = c.depth {
                hi = hi.min(lo + d);
            }
            (lo, hi)
        }
        None => {
            let off = c.offset.unwrap_or(0);
            (off, c.depth.map(|d| off + d).unwrap_or(len))
        }
        Some(v) => {
            let get = |i: usize, lit: Option<i64>| v[i].map(|x| vars.get(x as usize).copied().unwrap_or(0) as i64).or(lit);
            let (off, dep, dist, win) = (get(0, c.offset), get(1, c.depth), get(2, c.distance), get(3, c.within));
            if dist.is_some() || win.is_some() {
                let d = dist.unwrap_or(0);
                let lo = (prev + d).max(0).max(off.unwrap_or(0));
                let mut hi = len;
                if let Some(w) = win {
                    hi = hi.min(prev + d.max(0) + w);
                }
                if let Some(dp) = dep {
                    hi = hi.min(lo + dp);
                }
                (lo, hi)
            } else {
                let lo = off.unwrap_or(0);
                (lo, dep.map(|d| lo + d).unwrap_or(len))
            }
        }
    };
    if c.startswith {
        lo = 0;
        hi = hi.min(n);
    }
    lo = lo.max(0);
    hi = hi.min(len);
    (lo, hi)
}

/// Evaluate a buffer's item list. `prev` is the end of the previous match (for relative items).
pub fn match_items(buf: &[u8], items: &[Item], prev: usize, ctx: &mut MatchCtx) -> bool {
    let Some(first) = items.first() else { return true };
    if ctx.budget == 0 {
        return false;
    }
    ctx.budget -= 1;
    let rest = &items[1..];
    match first {
        Item::Bsize(c) => c.test(buf.len() as u64) && match_items(buf, rest, prev, ctx),
        Item::IsDataAt { n, relative, negated } => {
            let n = n.get(&ctx.vars);
            let ok = if *relative {
                (prev as i64).saturating_add(n) <= buf.len() as i64
            } else {
                n < buf.len() as i64
            };
            ok != *negated && match_items(buf, rest, prev, ctx)
        }
        Item::ByteTest(t) => t.eval(buf, prev, &ctx.vars, ctx.dce_le) && match_items(buf, rest, prev, ctx),
        Item::ByteJump(j) => match j.eval(buf, prev, &ctx.vars, ctx.dce_le) {
            Some(to) => match_items(buf, rest, to, ctx),
            None => false,
        },
        Item::ByteExtract(e) => match e.eval(buf, prev, ctx.dce_le) {
            Some((v, to)) => {
                ctx.vars[e.var as usize] = v;
                match_items(buf, rest, to, ctx)
            }
            None => false,
        },
        Item::ByteMath(m) => match m.eval(buf, prev, &ctx.vars, ctx.dce_le) {
            Some((v, to)) => {
                ctx.vars[m.var as usize] = v;
                match_items(buf, rest, to, ctx)
            }
            None => false,
        },
        Item::Base64(b) => {
            // Terminal: the decoded bytes' items decide (Suricata's base64_data list).
            let Some(input) = b.input(buf, prev) else { return false };
            let mut decoded = Vec::new();
            crate::detect_byte::base64_decode(input, &mut decoded);
            !decoded.is_empty() && !b.data.is_empty() && match_items(&decoded, &b.data, 0, ctx)
        }
        Item::Pcre(p) => {
            // A relative pcre sees the buffer from the previous match on (so ^ anchors there).
            let start = if p.relative { prev.min(buf.len()) } else { 0 };
            let m = p.re.find(&buf[start..]).ok().flatten();
            match (m, p.negated) {
                (Some(m), false) => match_items(buf, rest, start + m.end(), ctx),
                (None, true) => match_items(buf, rest, prev, ctx),
                _ => false,
            }
        }
        Item::Content(c) => {
            let n = c.pat.len() as i64;
            let (lo, hi) = content_window(c, buf.len() as i64, prev as i64, &ctx.vars);
            if c.negated {
                let found = if hi - lo >= n { find_at(buf, c, lo as usize, hi as usize).is_some() } else { false };
                let found = found && (!c.endswith || find_end(buf, c));
                return !found && match_items(buf, rest, prev, ctx);
            }
            if hi - lo < n {
                return false;
            }
            let mut from = lo as usize;
            while let Some(p) = find_at(buf, c, from, hi as usize) {
                let end = p + c.pat.len();
                if (!c.endswith || end == buf.len()) && match_items(buf, rest, end, ctx) {
                    return true;
                }
                if ctx.budget == 0 {
                    return false;
                }
                // Only worth retrying when a later item depends on where this one matched.
                if !rest.iter().any(|i| i.is_relative()) && !c.endswith {
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

/// Evaluate a buffer's items on their own (a rule without variables).
pub fn eval_buffer(buf: &[u8], items: &[Item]) -> bool {
    let mut ctx = MatchCtx::default();
    match_items(buf, items, 0, &mut ctx)
}

/// Evaluate one of a rule's buffers within the rule's evaluation (its variables carry over
/// from the buffers before); each buffer gets the full match budget.
pub fn eval_buffer_in(buf: &[u8], items: &[Item], ctx: &mut MatchCtx) -> bool {
    ctx.budget = MATCH_BUDGET;
    match_items(buf, items, 0, ctx)
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

    /// Fuzz finding (rules target, LeakSanitizer): loading this text spawned a build thread
    /// whose exit bookkeeping leaked; it must load (and fail to parse) without threads.
    #[test]
    fn fuzz_rules_leak_regression() {
        let s = rs(" \n\0d (@)");
        assert_eq!(s.total, 1);
        assert_eq!(s.errors.len(), 1);
        assert!(s.rules.is_empty());
    }

    fn addr_cands(s: &RuleSet, a: &str, b: &str) -> Vec<u32> {
        s.pkt_addr.lookup(&a.parse().unwrap(), &b.parse().unwrap(), None).iter().map(|&i| s.rules[i as usize].sid).collect()
    }

    #[test]
    fn ip_only_rules_are_indexed_by_address() {
        let s = rs("alert ip [1.2.3.4,5.6.7.0/24] any -> $HOME_NET any (sid:1;)\n\
                    alert tcp any any <> [9.9.9.9,2001:db8::/32] any (sid:2;)\n\
                    alert ip any any -> any any (sid:3;)");
        assert!(s.errors.is_empty());
        assert_eq!(addr_cands(&s, "1.2.3.4", "10.0.0.1"), vec![1, 3]);
        assert_eq!(addr_cands(&s, "10.0.0.1", "5.6.7.200"), vec![1, 3]);
        assert_eq!(addr_cands(&s, "10.0.0.1", "9.9.9.9"), vec![2, 3]);
        assert_eq!(addr_cands(&s, "2001:db8::1", "::1"), vec![2, 3]);
        assert_eq!(addr_cands(&s, "10.0.0.1", "8.8.8.8"), vec![3]);
    }

    #[test]
    fn value_memo_never_answers_for_another_value_or_prefilter() {
        let lit = |b: &[u8]| Lit { bytes: b.to_vec(), caseless: false };
        let ua = Prefilter::build(vec![(lit(b"evil-agent"), vec![0]), (lit(b"other-agent"), vec![1])]).unwrap();
        let host = Prefilter::build(vec![(lit(b"evil-agent"), vec![2])]).unwrap();
        let mut sc = Scan::default();
        // One slot: every value and prefilter lands in it, each replacing the last.
        sc.memo.slots.resize_with(1, MemoSlot::default);
        let mut cands = |p: &Prefilter, v: &[u8]| {
            sc.begin(3);
            p.scan_memo(v, &mut sc);
            sc.finish();
            sc.cand.clone()
        };
        for _ in 0..2 {
            assert_eq!(cands(&ua, b"Mozilla evil-agent"), vec![0]);
            assert_eq!(cands(&ua, b"Mozilla evil-agent"), vec![0]);
            assert_eq!(cands(&ua, b"Mozilla other-agent"), vec![1]);
            assert_eq!(cands(&ua, b"Mozilla plain"), Vec::<u32>::new());
            assert_eq!(cands(&host, b"Mozilla evil-agent"), vec![2]);
            assert_eq!(cands(&ua, b"Mozilla evil-agent"), vec![0]);
            assert_eq!(cands(&ua, b"Mozilla evil-agent other-agent"), vec![0, 1]);
        }
    }

    #[test]
    fn address_lookup_for_a_group_leaves_out_rules_of_other_ports_and_protocols() {
        let s = rs("alert tcp $HOME_NET any -> any 22 (flow:to_server; flags:S; sid:1;)\n\
                    alert udp $HOME_NET any -> any any (sid:2;)\n\
                    alert tcp $HOME_NET any -> any any (flow:to_server; sid:3;)\n\
                    alert ip $HOME_NET any -> any any (sid:4;)\n\
                    alert tcp any 22 -> $HOME_NET any (flow:to_client; sid:5;)");
        assert!(s.errors.is_empty());
        let sids = |g: Option<usize>| s.pkt_addr.lookup(&"10.0.0.1".parse().unwrap(), &"8.8.8.8".parse().unwrap(), g).iter().map(|&i| s.rules[i as usize].sid).collect::<Vec<_>>();
        assert_eq!(sids(None), vec![1, 2, 3, 4, 5]);
        assert_eq!(sids(Some(pkt_group(6, true, 41000, 80))), vec![3, 4]);
        assert_eq!(sids(Some(pkt_group(6, true, 41000, 22))), vec![1, 3, 4]);
        assert_eq!(sids(Some(pkt_group(17, true, 41000, 53))), vec![2, 4]);
        assert_eq!(sids(Some(pkt_group(6, false, 22, 41000))), vec![4, 5]);
    }

    #[test]
    fn payload_rules_join_only_matching_signature_groups() {
        let s = rs("alert tcp any any -> any 80 (flow:to_server; content:\"abc\"; sid:4;)\n\
                    alert tcp any 80 -> any any (flow:to_client; content:\"xyz\"; sid:5;)\n\
                    alert udp any any -> any 53 (content:\"dns\"; sid:6;)\n\
                    alert ip any any -> any any (content:\"any\"; sid:7;)");
        let sids = |proto: u8, to_server: bool, sp: u16, dp: u16, hay: &[u8]| {
            let mut sc = Scan::default();
            sc.begin(s.rules.len());
            if let Some(pf) = &s.pkt_groups[pkt_group(proto, to_server, sp, dp)] {
                pf.scan(hay, &mut sc);
            }
            sc.finish();
            sc.cand.iter().map(|&i| s.rules[i as usize].sid).collect::<Vec<_>>()
        };
        let hay = b"abc xyz dns any";
        assert_eq!(sids(6, true, 41000, 80, hay), vec![4, 7]);
        assert_eq!(sids(6, true, 41000, 8080, hay), vec![7]);
        assert_eq!(sids(6, false, 80, 41000, hay), vec![5, 7]);
        assert_eq!(sids(6, false, 8080, 41000, hay), vec![7]);
        assert_eq!(sids(17, true, 41000, 53, hay), vec![6, 7]);
        assert_eq!(sids(17, true, 41000, 5353, hay), vec![7]);
        assert_eq!(sids(1, true, 0, 0, hay), vec![7]);
    }

    #[test]
    fn prefilter_literals_do_not_end_in_an_attribute_opener() {
        assert_eq!(without_attribute_openers(br#"" action="1.php" method="post" class=""#), br#"" action="1.php" method="post""#);
        assert_eq!(without_attribute_openers(b"<param name=FlashVars value=\"iddqd='"), b"<param name=FlashVars");
        assert_eq!(without_attribute_openers(b"csrftoken\" value=\""), b"csrftoken\"");
        // Nothing to cut, or too little would be left: the literal stays whole.
        for p in [&b"window.location"[..], b"<a href=\"", b"x class=\"", b"abcdefgh =\"", b"=\"", b"\""] {
            assert_eq!(without_attribute_openers(p), p);
        }
        // The rule is still a candidate wherever its content is, and verified in full.
        let s = rs(r#"alert tcp any 80 -> any any (flow:to_client; content:"<form action=|22|x.php|22| class=|22|"; sid:8;)"#);
        assert!(s.errors.is_empty());
        let pf = s.pkt_groups[pkt_group(6, false, 80, 41000)].as_ref().unwrap();
        for (hay, cand, alert) in [(&br#"<form action="x.php" class="a">"#[..], true, true), (br#"<form action="x.php" id="a">"#, true, false), (br#"<div class="a">"#, false, false)] {
            let mut sc = Scan::default();
            sc.begin(s.rules.len());
            pf.scan(hay, &mut sc);
            sc.finish();
            assert_eq!(!sc.cand.is_empty(), cand);
            assert_eq!(eval_buffer(hay, &s.rules[0].bufs[0].1), alert);
        }
    }

    #[test]
    fn unsupported_keywords_are_named() {
        let s = rs(r#"alert tcp any any -> any any (content:"x"; asn1:oversize_length 100; sid:7;)"#);
        assert_eq!(s.errors.len(), 1);
        assert_eq!(s.errors[0].sid, Some(7));
        assert!(s.errors[0].reason.contains("asn1"));
    }
}
