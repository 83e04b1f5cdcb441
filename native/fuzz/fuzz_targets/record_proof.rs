#![no_main]
//! Signed records (native/capture/src/sign_core.rs) on hostile bytes: a genuine send signed
//! here, then fields flipped, cut, swapped, records repeated and reordered as the input says.
//! Nothing may panic, and each verdict of the batch check must be the one the record gets
//! alone from a checker that verified nothing before (the batch path is an optimisation only).
#[path = "../../capture/src/sign_core.rs"]
#[allow(dead_code)]
mod sign_core;

use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use sign_core::{leaf, levels, root_message, Rec, Verifier};

const TOPIC: &[u8] = b"cordon.logs.v1";
const PRODUCER: &[u8] = b"agt-fuzz";

struct Owned {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    sig: Vec<u8>,
    proof: Vec<u8>,
}

/// A send of `values` signed as the agent signs one (record-sign.ts signAll).
fn send(sk: &SigningKey, values: Vec<Vec<u8>>) -> Vec<Owned> {
    let key = b"vm-1|/var/log/auth.log".to_vec();
    let n = values.len() as u32;
    let lv = levels(values.iter().map(|v| leaf(TOPIC, Some(&key), Some(v), PRODUCER)).collect());
    let sig = sk.sign(&root_message(&lv[lv.len() - 1][0], n)).to_bytes().to_vec();
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let mut proof = Vec::new();
            proof.extend_from_slice(&(i as u32).to_be_bytes());
            proof.extend_from_slice(&n.to_be_bytes());
            let mut idx = i;
            for l in &lv[..lv.len() - 1] {
                if (idx ^ 1) < l.len() {
                    proof.extend_from_slice(&l[idx ^ 1]);
                }
                idx >>= 1;
            }
            Owned { key: Some(key.clone()), value: Some(value), sig: sig.clone(), proof }
        })
        .collect()
}

fn rec(o: &Owned) -> Rec<'_> {
    Rec { key: o.key.as_deref(), value: o.value.as_deref(), sig: &o.sig, proof: &o.proof }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let sk = SigningKey::from_bytes(&[7u8; 32]);
    let (a, b) = ((data[0] % 9) as usize + 1, (data[1] % 5) as usize);
    let mut pool = send(&sk, (0..a).map(|i| vec![i as u8; i * 3 + 1]).collect());
    if b > 0 {
        pool.extend(send(&sk, (0..b).map(|i| vec![0xa0 | i as u8; 5]).collect()));
    }
    // the rest, four bytes an operation: which record, what to do, where, with what
    let mut batch: Vec<usize> = (0..pool.len()).collect();
    for op in data[2..].chunks_exact(4) {
        let i = op[0] as usize % pool.len();
        let (at, x) = (op[2] as usize, op[3]);
        match op[1] % 10 {
            0 => {
                if let Some(v) = pool[i].value.as_mut() {
                    if !v.is_empty() {
                        let n = v.len();
                        v[at % n] ^= x | 1;
                    }
                }
            }
            1 => {
                let n = pool[i].sig.len().max(1);
                if let Some(s) = pool[i].sig.get_mut(at % n) {
                    *s ^= x | 1;
                }
            }
            2 => {
                let n = pool[i].proof.len().max(1);
                if let Some(p) = pool[i].proof.get_mut(at % n) {
                    *p ^= x | 1;
                }
            }
            3 => {
                let n = pool[i].proof.len() + 1;
                pool[i].proof.truncate(at % n);
            }
            4 => pool[i].proof.extend_from_slice(&[x; 32]),
            5 => {
                let j = at % pool.len();
                pool[i].sig = pool[j].sig.clone();
            }
            6 => {
                let j = at % pool.len();
                pool[i].proof = pool[j].proof.clone();
            }
            7 => pool[i].key = None,
            8 => batch.push(i),
            _ => {
                let n = batch.len();
                batch.swap(i % n, at % n);
            }
        }
    }
    let recs: Vec<Rec> = batch.iter().map(|&i| rec(&pool[i])).collect();
    let key = sk.verifying_key().to_bytes();
    let got = Verifier::new(&key).unwrap().check(TOPIC, PRODUCER, &recs);
    for (j, r) in recs.iter().enumerate() {
        let alone = Verifier::new(&key).unwrap().one(TOPIC, PRODUCER, r);
        assert_eq!(got[j] == 1, alone, "record {j} of the batch");
    }
    // hostile bytes as the key itself: refused or usable, never a panic
    let _ = Verifier::new(&data[..data.len().min(32)]);
});
