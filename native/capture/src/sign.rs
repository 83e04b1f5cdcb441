//! The check of signed records (packages/stage/src/record-sign.ts holds the format and the
//! signing side): each record's digest, the Merkle tree of a send, one Ed25519 verify per send.
//! Here because the consume loop of every stage pays it for every agent record: in JS the SHA-256
//! calls, the tree's node buffers and OpenSSL's verify cost ~8 µs a 2.5 kB record, as much as
//! the rest of the loop (bench/record-signing.mjs). The verdicts are the same as
//! `verifyRecord` gives each record alone (differential test in packages/stage/test).

use ed25519_dalek::{Signature, VerifyingKey};
use napi::bindgen_prelude::*;
use napi::{Env, JsBuffer, JsObject, JsUnknown, Ref, Task, ValueType};
use napi_derive::napi;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

const DOMAIN: &[u8] = b"cordon-record-v1\0";
const ROOT_DOMAIN: &[u8] = b"cordon-records-root-v1\0";
const MAX_LEAVES: u32 = 4096;
/// Roots verified under one key kept (only successes; oldest first out).
const CACHE_MAX: usize = 8192;

type Hash = [u8; 32];

fn node(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

fn leaf(topic: &[u8], key: Option<&[u8]>, value: Option<&[u8]>, producer: &[u8]) -> Hash {
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

/// The levels of the tree over `leaves`, leaves first (a lone last node goes up unhashed).
fn levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
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

/// One registered producer key: checks that producer's records. Roots verified under this key
/// are remembered (bounded), so the other records of a send that arrive in a later batch cost
/// hashes only; a root is good only under the key that verified it. Shared with the pool
/// threads that run verifyAsync.
#[napi]
pub struct RecordVerifier {
    inner: Arc<Verifier>,
}

struct Verifier {
    key: VerifyingKey,
    cache: Mutex<Cache>,
}

struct Rec<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    sig: &'a [u8],
    proof: &'a [u8],
}

impl Verifier {
    fn root_good(&self, root: &Hash, count: u32, sig: &[u8]) -> bool {
        let Ok(sig64) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        let id = (*root, sig64, count);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.seen.contains(&id) {
            return true;
        }
        let mut msg = Vec::with_capacity(ROOT_DOMAIN.len() + 36);
        msg.extend_from_slice(ROOT_DOMAIN);
        msg.extend_from_slice(&count.to_be_bytes());
        msg.extend_from_slice(root);
        // cofactorless with a canonical s, as OpenSSL's check, and also refusing a small-order R
        // (which no honest signer makes); weak keys are refused when the verifier is made
        if self.key.verify_strict(&msg, &Signature::from_bytes(&sig64)).is_err() {
            return false;
        }
        if cache.order.len() >= CACHE_MAX {
            if let Some(old) = cache.order.pop_front() {
                cache.seen.remove(&old);
            }
        }
        cache.seen.insert(id);
        cache.order.push_back(id);
        true
    }

    fn one(&self, topic: &[u8], producer: &[u8], r: &Rec) -> bool {
        if r.sig.len() != 64 {
            return false;
        }
        match root_of(leaf(topic, r.key, r.value, producer), r.proof) {
            Some((root, count)) => self.root_good(&root, count, r.sig),
            None => false,
        }
    }

    fn check(&self, topic: &[u8], producer: &[u8], recs: &[Rec]) -> Vec<u8> {
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
            let lv = levels(leaves);
            let root = lv[lv.len() - 1][0];
            if !self.root_good(&root, *count, sig) {
                single.extend(at.iter().map(|&(i, _)| i));
                continue;
            }
            // the root is good; a record whose proof does not carry its siblings in this tree
            // gets the verdict it gets alone
            for &(i, idx) in at {
                if proof_matches(&lv, idx as usize, recs[i].proof) {
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

fn buffer_or_null(arr: &JsObject, i: u32) -> Result<Option<JsBuffer>> {
    let v: JsUnknown = arr.get_element(i)?;
    match v.get_type()? {
        ValueType::Null | ValueType::Undefined => Ok(None),
        _ if v.is_buffer()? => Ok(Some(unsafe { v.cast::<JsBuffer>() })),
        t => Err(Error::new(
            Status::InvalidArg,
            format!("element {i} is a {t:?}, not a Buffer or null"),
        )),
    }
}

/// A JS Buffer's bytes, by address: valid while the array holding the Buffer is referenced and
/// left alone (the Buffer cannot be collected, and a Buffer's memory does not move).
#[derive(Clone, Copy)]
struct Raw(*const u8, usize);
unsafe impl Send for Raw {}
impl Raw {
    /// Safety: the Buffer this was taken from is alive and unchanged.
    unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.1 == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.0, self.1)
        }
    }
}

/// The four fields a record of `fields` (key, value, signature, proof), by address.
fn gather(fields: &JsObject) -> Result<Vec<[Option<Raw>; 4]>> {
    let n = fields.get_array_length()?;
    if n % 4 != 0 {
        return Err(Error::new(
            Status::InvalidArg,
            format!("fields holds {n} entries, not four a record"),
        ));
    }
    let mut out = Vec::with_capacity((n / 4) as usize);
    for r in 0..n / 4 {
        let mut rec = [None; 4];
        for (f, slot) in rec.iter_mut().enumerate() {
            if let Some(b) = buffer_or_null(fields, r * 4 + f as u32)? {
                let v = b.into_value()?;
                let s: &[u8] = v.as_ref();
                *slot = Some(Raw(s.as_ptr(), s.len()));
            }
        }
        out.push(rec);
    }
    Ok(out)
}

/// Safety: as Raw::bytes, for every field.
unsafe fn recs_of(raw: &[[Option<Raw>; 4]]) -> Vec<Rec<'_>> {
    raw.iter()
        .map(|c| Rec {
            key: c[0].map(|b| b.bytes()),
            value: c[1].map(|b| b.bytes()),
            sig: c[2].map_or(&[][..], |b| b.bytes()),
            proof: c[3].map_or(&[][..], |b| b.bytes()),
        })
        .collect()
}

/// A check on a pool thread: the fields array is referenced until it is done.
pub struct CheckTask {
    verifier: Arc<Verifier>,
    topic: String,
    producer: String,
    raw: Vec<[Option<Raw>; 4]>,
    held: Option<Held>,
}

struct Held(Ref<()>);
unsafe impl Send for Held {}

impl Task for CheckTask {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> Result<Vec<u8>> {
        // the array (and so each Buffer in it) is referenced until finally()
        let recs = unsafe { recs_of(&self.raw) };
        Ok(self.verifier.check(self.topic.as_bytes(), self.producer.as_bytes(), &recs))
    }

    fn resolve(&mut self, _env: Env, out: Vec<u8>) -> Result<Buffer> {
        Ok(out.into())
    }

    fn finally(&mut self, env: Env) -> Result<()> {
        if let Some(mut h) = self.held.take() {
            h.0.unref(env)?;
        }
        Ok(())
    }
}

#[napi]
impl RecordVerifier {
    /// A raw 32-byte Ed25519 public key. Throws on anything else, and on a weak key (a point of
    /// small order: with one, a signature can be made without the private key).
    #[napi(constructor)]
    pub fn new(raw: Buffer) -> Result<Self> {
        let bytes: [u8; 32] = raw.as_ref().try_into().map_err(|_| {
            Error::new(
                Status::InvalidArg,
                format!("an Ed25519 public key is 32 bytes, not {}", raw.len()),
            )
        })?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| Error::new(Status::InvalidArg, "not an Ed25519 public key (not a curve point)"))?;
        if key.is_weak() {
            return Err(Error::new(
                Status::InvalidArg,
                "a weak Ed25519 public key (a point of small order): anyone could sign as it",
            ));
        }
        Ok(RecordVerifier {
            inner: Arc::new(Verifier {
                key,
                cache: Mutex::new(Cache {
                    seen: HashSet::new(),
                    order: VecDeque::new(),
                }),
            }),
        })
    }

    /// Check `producer`'s records of `topic`: `fields` holds four entries a record — key, value
    /// (a Buffer or null each), signature and proof (a Buffer, or null when the header is
    /// absent). One byte a record back: 1 when it verifies, as verifyRecord would say alone.
    #[napi(ts_args_type = "topic: string, producer: string, fields: Array<Buffer | null>")]
    pub fn verify(&self, topic: String, producer: String, fields: JsObject) -> Result<Buffer> {
        let raw = gather(&fields)?;
        // fields is an argument of this call: alive and untouched until it returns
        let recs = unsafe { recs_of(&raw) };
        Ok(self.inner.check(topic.as_bytes(), producer.as_bytes(), &recs).into())
    }

    /// The same on a pool thread, off the event loop (the stage decodes meanwhile). `fields`
    /// must not be changed until the promise settles.
    #[napi(ts_args_type = "topic: string, producer: string, fields: Array<Buffer | null>")]
    pub fn verify_async(
        &self,
        env: Env,
        topic: String,
        producer: String,
        fields: JsObject,
    ) -> Result<AsyncTask<CheckTask>> {
        let raw = gather(&fields)?;
        let held = Held(env.create_reference(fields)?);
        Ok(AsyncTask::new(CheckTask {
            verifier: self.inner.clone(),
            topic,
            producer,
            raw,
            held: Some(held),
        }))
    }
}
