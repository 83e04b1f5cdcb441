//! The check of signed records (packages/stage/src/record-sign.ts holds the format and the
//! signing side): each record's digest, the Merkle tree of a send, one Ed25519 verify per send.
//! Here because the consume loop of every stage pays it for every agent record: in JS the SHA-256
//! calls, the tree's node buffers and OpenSSL's verify cost ~8 µs a 2.5 kB record, as much as
//! the rest of the loop (bench/record-signing.mjs). The verdicts are the same as
//! `verifyRecord` gives each record alone (differential test in packages/stage/test).

use crate::sign_core::{Rec, Verifier};
use napi::bindgen_prelude::*;
use napi::{check_status, sys, Env, JsObject, NapiRaw, Ref, Task};
use napi_derive::napi;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

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

/// The four fields a record of `fields` (key, value, signature, proof), by address: two N-API
/// calls a field (the element, its bytes) — a type check only for one that is not a Buffer.
fn gather(env: &Env, fields: &JsObject) -> Result<Vec<[Option<Raw>; 4]>> {
    let n = fields.get_array_length()?;
    if n % 4 != 0 {
        return Err(Error::new(
            Status::InvalidArg,
            format!("fields holds {n} entries, not four a record"),
        ));
    }
    let (env, arr) = (env.raw(), unsafe { fields.raw() });
    let mut out = Vec::with_capacity((n / 4) as usize);
    for r in 0..n / 4 {
        let mut rec = [None; 4];
        for (f, slot) in rec.iter_mut().enumerate() {
            let i = r * 4 + f as u32;
            let mut v = std::ptr::null_mut();
            check_status!(unsafe { sys::napi_get_element(env, arr, i, &mut v) })?;
            let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
            if unsafe { sys::napi_get_buffer_info(env, v, &mut data, &mut len) } == sys::Status::napi_ok {
                *slot = Some(Raw(data as *const u8, len));
                continue;
            }
            let mut t = 0;
            check_status!(unsafe { sys::napi_typeof(env, v, &mut t) })?;
            if t != sys::ValueType::napi_null && t != sys::ValueType::napi_undefined {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("element {i} is not a Buffer or null"),
                ));
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

/// One producer's records of one topic, checked on a pool thread.
struct Group {
    verifier: Arc<Verifier>,
    topic: String,
    producer: String,
    raw: Vec<[Option<Raw>; 4]>,
}

/// The checks of a batch on one pool thread (a stage's batch holds many producers: one task, so
/// the event loop keeps the other core): each fields array is referenced until it is done.
pub struct CheckTask {
    groups: Vec<Group>,
    held: Vec<Held>,
}

struct Held(Ref<()>);
unsafe impl Send for Held {}

impl Task for CheckTask {
    type Output = Vec<Vec<u8>>;
    type JsValue = Vec<Buffer>;

    fn compute(&mut self) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .groups
            .iter()
            .map(|g| {
                // the array (and so each Buffer in it) is referenced until finally()
                let recs = unsafe { recs_of(&g.raw) };
                g.verifier.check(g.topic.as_bytes(), g.producer.as_bytes(), &recs)
            })
            .collect())
    }

    fn resolve(&mut self, _env: Env, out: Vec<Vec<u8>>) -> Result<Vec<Buffer>> {
        Ok(out.into_iter().map(Buffer::from).collect())
    }

    fn finally(&mut self, env: Env) -> Result<()> {
        for mut h in self.held.drain(..) {
            h.0.unref(env)?;
        }
        Ok(())
    }
}

/// Live verifiers by id: verifyGroupsAsync names them by number (a class instance cannot be
/// read back from an array element safely); an entry goes with its verifier.
fn registry() -> &'static Mutex<HashMap<u32, Weak<Verifier>>> {
    static R: OnceLock<Mutex<HashMap<u32, Weak<Verifier>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// Check several producers' records on one pool thread: group `i` is `fields[i]` (four entries a
/// record, as verify takes them) of `producers[i]` on `topics[i]`, checked by the verifier whose
/// id is `ids[i]`. One verdict buffer a group back.
#[napi(
    ts_args_type = "ids: number[], topics: string[], producers: string[], fields: Array<Array<Buffer | null>>",
    ts_return_type = "Promise<Buffer[]>"
)]
pub fn verify_groups_async(
    env: Env,
    ids: Vec<u32>,
    topics: Vec<String>,
    producers: Vec<String>,
    fields: JsObject,
) -> Result<AsyncTask<CheckTask>> {
    let n = ids.len();
    if topics.len() != n || producers.len() != n || fields.get_array_length()? as usize != n {
        return Err(Error::new(
            Status::InvalidArg,
            "ids, topics, producers and fields must be as long as each other",
        ));
    }
    let mut groups = Vec::with_capacity(n);
    let mut held = Vec::with_capacity(n);
    let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    for (i, ((id, topic), producer)) in ids.into_iter().zip(topics).zip(producers).enumerate() {
        let verifier = reg.get(&id).and_then(Weak::upgrade).ok_or_else(|| {
            Error::new(Status::InvalidArg, format!("no record verifier has id {id}"))
        })?;
        let f: JsObject = fields.get_element(i as u32)?;
        let raw = gather(&env, &f)?;
        held.push(Held(env.create_reference(f)?));
        groups.push(Group { verifier, topic, producer, raw });
    }
    Ok(AsyncTask::new(CheckTask { groups, held }))
}

/// One registered producer key's checker (sign_core::Verifier), shared with the pool threads
/// that run the async checks.
#[napi]
pub struct RecordVerifier {
    inner: Arc<Verifier>,
    id: u32,
}

impl Drop for RecordVerifier {
    fn drop(&mut self) {
        registry().lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

#[napi]
impl RecordVerifier {
    /// A raw 32-byte Ed25519 public key. Throws on anything else, and on a weak key (a point of
    /// small order: with one, a signature can be made without the private key).
    #[napi(constructor)]
    pub fn new(raw: Buffer) -> Result<Self> {
        let v = Verifier::new(raw.as_ref()).map_err(|e| Error::new(Status::InvalidArg, e))?;
        let inner = Arc::new(v);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::downgrade(&inner));
        Ok(RecordVerifier { inner, id })
    }

    /// What verifyGroupsAsync names this verifier by.
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Check `producer`'s records of `topic`: `fields` holds four entries a record — key, value
    /// (a Buffer or null each), signature and proof (a Buffer, or null when the header is
    /// absent). One byte a record back: 1 when it verifies, as verifyRecord would say alone.
    #[napi(ts_args_type = "topic: string, producer: string, fields: Array<Buffer | null>")]
    pub fn verify(&self, env: Env, topic: String, producer: String, fields: JsObject) -> Result<Buffer> {
        let raw = gather(&env, &fields)?;
        // fields is an argument of this call: alive and untouched until it returns
        let recs = unsafe { recs_of(&raw) };
        Ok(self.inner.check(topic.as_bytes(), producer.as_bytes(), &recs).into())
    }
}

