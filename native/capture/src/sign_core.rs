//! The check of signed records without Node: digests, the Merkle tree of a send, Ed25519.
//! The format is written down in packages/stage/src/record-sign.ts (the signing side); sign.rs
//! hands JS Buffers to this, and native/fuzz/fuzz_targets/record_proof.rs feeds it hostile
//! bytes (a batch's verdicts must equal each record's verdict alone, and nothing may panic).

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

const DOMAIN: &[u8] = b"cordon-record-v1\0";
const ROOT_DOMAIN: &[u8] = b"cordon-records-root-v1\0";
const MAX_LEAVES: u32 = 4096;
/// Roots verified under one key kept (only successes; oldest first out).
const CACHE_MAX: usize = 8192;

pub type Hash = [u8; 32];

pub fn node(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

pub fn leaf(topic: &[u8], key: Option<&[u8]>, value: Option<&[u8]>, producer: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(DOMAIN);
    h.update((topic.len() as u32).to_be_bytes());
    h.update(topic);
    for b in [key, value] {
        match b {
            // 0xffffffff marks an absent key or value (a null is not an empty buffer)
            Some(b) => {
                h.update((b.len() as u32).to_be_bytes());
                h.update(b);
            }
            None => h.update(0xffff_ffffu32.to_be_bytes()),
        }
    }
    h.update((producer.len() as u32).to_be_bytes());
    h.update(producer);
    h.finalize().into()
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Sibling hashes a proof carries for the leaf at `idx` of a tree of `count` leaves.
fn proof_len(mut idx: u32, count: u32) -> usize {
    let mut n = count;
    let mut s = 0;
    while n > 1 {
        if (idx ^ 1) < n {
            s += 1;
        }
        idx >>= 1;
        n = (n + 1) >> 1;
    }
    8 + 32 * s
}

/// The root a proof leads to from `digest`, with its count; None when the proof is malformed.
fn root_of(digest: Hash, proof: &[u8]) -> Option<(Hash, u32)> {
    if proof.len() < 8 || (proof.len() - 8) % 32 != 0 {
        return None;
    }
    let mut idx = be32(proof, 0);
    let count = be32(proof, 4);
    if count < 1 || count > MAX_LEAVES || idx >= count {
        return None;
    }
    let (mut h, mut n, mut at) = (digest, count, 8);
    while n > 1 {
        if (idx ^ 1) < n {
            if at + 32 > proof.len() {
                return None;
            }
            let sib: &Hash = proof[at..at + 32].try_into().ok()?;
            at += 32;
            h = if idx & 1 == 1 { node(sib, &h) } else { node(&h, sib) };
        }
        idx >>= 1;
        n = (n + 1) >> 1;
    }
    (at == proof.len()).then_some((h, count))
}

/// What a send's one signature signs: the root of its tree, with its count.
pub fn root_message(root: &Hash, count: u32) -> Vec<u8> {
    let mut msg = Vec::with_capacity(ROOT_DOMAIN.len() + 36);
    msg.extend_from_slice(ROOT_DOMAIN);
    msg.extend_from_slice(&count.to_be_bytes());
    msg.extend_from_slice(root);
    msg
}

/// The levels of the tree over `leaves`, leaves first (a lone last node goes up unhashed).
pub fn levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
    let mut out = vec![leaves];
    while out.last().map_or(0, |l| l.len()) > 1 {
        let l = out.last().unwrap();
        let up: Vec<Hash> = l
            .chunks(2)
            .map(|p| if p.len() == 2 { node(&p[0], &p[1]) } else { p[0] })
            .collect();
        out.push(up);
    }
    out
}

/// Whether `proof` carries exactly the sibling hashes of `levels` for its leaf `idx`.
fn proof_matches(levels: &[Vec<Hash>], mut idx: usize, proof: &[u8]) -> bool {
    let mut at = 8;
    for l in &levels[..levels.len() - 1] {
        let sib = idx ^ 1;
        if sib < l.len() {
            if at + 32 > proof.len() || proof[at..at + 32] != l[sib] {
                return false;
            }
            at += 32;
        }
        idx >>= 1;
    }
    at == proof.len()
}

struct Cache {
    seen: HashSet<(Hash, [u8; 64], u32)>,
    order: VecDeque<(Hash, [u8; 64], u32)>,
}

impl Cache {
    fn remember(&mut self, id: (Hash, [u8; 64], u32)) {
        if !self.seen.insert(id) {
            return;
        }
        if self.order.len() >= CACHE_MAX {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id);
    }
}

/// One registered producer key: checks that producer's records. Roots verified under this key
/// are remembered (bounded), so the other records of a send that arrive in a later batch cost
/// hashes only; a root is good only under the key that verified it.
pub struct Verifier {
    key: VerifyingKey,
    cache: Mutex<Cache>,
}

/// One record's fields: key and value (None: absent), signature and proof headers (empty: absent).
pub struct Rec<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub sig: &'a [u8],
    pub proof: &'a [u8],
}

impl Verifier {
    /// A raw 32-byte Ed25519 public key; refused otherwise, and when weak (a point of small
    /// order: under one, a signature can be made without the private key).
    pub fn new(raw: &[u8]) -> Result<Verifier, String> {
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| format!("an Ed25519 public key is 32 bytes, not {}", raw.len()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "not an Ed25519 public key (not a curve point)".to_string())?;
        if key.is_weak() {
            return Err("a weak Ed25519 public key (a point of small order): anyone could sign as it".into());
        }
        Ok(Verifier {
            key,
            cache: Mutex::new(Cache {
                seen: HashSet::new(),
                order: VecDeque::new(),
            }),
        })
    }

    fn root_good(&self, root: &Hash, count: u32, sig: &[u8]) -> bool {
        let Ok(sig64) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        let id = (*root, sig64, count);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.seen.contains(&id) {
            return true;
        }
        let msg = root_message(root, count);
        // cofactorless with a canonical s, as OpenSSL's check, and also refusing a small-order R
        // (which no honest signer makes); weak keys are refused when the verifier is made
        if self.key.verify_strict(&msg, &Signature::from_bytes(&sig64)).is_err() {
            return false;
        }
        cache.remember(id);
        true
    }

    /// root_good for many roots: those not verified before are checked in one batch (Ed25519
    /// batch verification costs about half a verify per signature for a batch of 64); when the
    /// batch fails, each is checked alone, so a forged signature costs only its own verdict.
    /// Batch verification is not the strict check: a key holder could make a signature one of
    /// the two accepts and the other refuses — for its own records only, which it can sign anyway.
    fn roots_good(&self, roots: &[(Hash, u32, &[u8])]) -> Vec<bool> {
        let mut out = vec![false; roots.len()];
        let mut todo: Vec<(usize, Vec<u8>, Signature)> = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (n, (root, count, sig)) in roots.iter().enumerate() {
                let Ok(sig64) = <[u8; 64]>::try_from(*sig) else { continue };
                if cache.seen.contains(&(*root, sig64, *count)) {
                    out[n] = true;
                } else {
                    todo.push((n, root_message(root, *count), Signature::from_bytes(&sig64)));
                }
            }
        }
        if todo.len() >= 2 {
            let msgs: Vec<&[u8]> = todo.iter().map(|t| t.1.as_slice()).collect();
            let sigs: Vec<Signature> = todo.iter().map(|t| t.2).collect();
            let keys = vec![self.key; todo.len()];
            // a signature with a small-order R is refused alone (verify_strict), so it is here too
            let strict_r = sigs.iter().all(|s| {
                curve25519_dalek::edwards::CompressedEdwardsY(s.r_bytes().to_owned())
                    .decompress()
                    .is_some_and(|r| !r.is_small_order())
            });
            if strict_r && ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                for (n, _, _) in &todo {
                    let (root, count, sig) = roots[*n];
                    if let Ok(sig64) = <[u8; 64]>::try_from(sig) {
                        cache.remember((root, sig64, count));
                    }
                    out[*n] = true;
                }
                return out;
            }
        }
        for (n, _, _) in &todo {
            let (root, count, sig) = roots[*n];
            out[*n] = self.root_good(&root, count, sig);
        }
        out
    }

    pub fn one(&self, topic: &[u8], producer: &[u8], r: &Rec) -> bool {
        if r.sig.len() != 64 {
            return false;
        }
        match root_of(leaf(topic, r.key, r.value, producer), r.proof) {
            Some((root, count)) => self.root_good(&root, count, r.sig),
            None => false,
        }
    }

    pub fn check(&self, topic: &[u8], producer: &[u8], recs: &[Rec]) -> Vec<u8> {
        let mut ok = vec![0u8; recs.len()];
        // the records of a send, grouped by (count, signature); they arrive one after the other
        let mut sends: Vec<(u32, &[u8], Vec<(usize, u32)>)> = Vec::new();
        let mut by_id: HashMap<(u32, &[u8]), usize> = HashMap::new();
        let mut single: Vec<usize> = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            if r.sig.len() != 64 || r.proof.len() < 8 {
                continue;
            }
            let idx = be32(r.proof, 0);
            let count = be32(r.proof, 4);
            if count < 1 || count > MAX_LEAVES || idx >= count || r.proof.len() != proof_len(idx, count) {
                continue;
            }
            let s = match sends.last() {
                Some((c, sig, _)) if *c == count && *sig == r.sig => sends.len() - 1,
                _ => *by_id.entry((count, r.sig)).or_insert_with(|| {
                    sends.push((count, r.sig, Vec::new()));
                    sends.len() - 1
                }),
            };
            sends[s].2.push((i, idx));
        }
        // whole sends: each tree built, then the roots not verified before checked in one batch
        let mut wholes: Vec<(u32, &[u8], &Vec<(usize, u32)>, Vec<Vec<Hash>>)> = Vec::new();
        for (count, sig, at) in &sends {
            let mut whole = at.len() == *count as usize;
            if whole {
                let mut seen = vec![false; *count as usize];
                for &(_, idx) in at {
                    if std::mem::replace(&mut seen[idx as usize], true) {
                        whole = false;
                        break;
                    }
                }
            }
            if !whole {
                single.extend(at.iter().map(|&(i, _)| i));
                continue;
            }
            let mut leaves = vec![[0u8; 32]; *count as usize];
            for &(i, idx) in at {
                let r = &recs[i];
                leaves[idx as usize] = leaf(topic, r.key, r.value, producer);
            }
            wholes.push((*count, *sig, at, levels(leaves)));
        }
        let good = self.roots_good(
            &wholes
                .iter()
                .map(|(count, sig, _, lv)| (lv[lv.len() - 1][0], *count, *sig))
                .collect::<Vec<_>>(),
        );
        for ((_, _, at, lv), good) in wholes.iter().zip(good) {
            if !good {
                single.extend(at.iter().map(|&(i, _)| i));
                continue;
            }
            // the root is good; a record whose proof does not carry its siblings in this tree
            // gets the verdict it gets alone
            for &(i, idx) in at.iter() {
                if proof_matches(lv, idx as usize, recs[i].proof) {
                    ok[i] = 1;
                } else {
                    single.push(i);
                }
            }
        }
        for i in single {
            ok[i] = self.one(topic, producer, &recs[i]) as u8;
        }
        ok
    }
}

