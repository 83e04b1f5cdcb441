/**
 * Batch verification of signed records (verifyRecords): a send that arrives whole is checked
 * as one tree with one signature check, anything else record by record — and every verdict is
 * the one verifyRecord gives the record alone, whatever an attacker mixes into the batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  createRecordSigner,
  ed25519PublicKey,
  PROOF_HEADER,
  SIGNATURE_HEADER,
  verifyRecord,
  verifyRecords,
  VerifiedRoots,
  type SignedRecord,
} from '../src/index.js';

const TOPIC = 'cordon.logs.v1';
const alice = createRecordSigner('agt-alice', generateKeyPairSync('ed25519').privateKey);
const mallory = createRecordSigner('agt-mallory', generateKeyPairSync('ed25519').privateKey);
const alicePub = ed25519PublicKey(alice.publicKey);

function send(signer: typeof alice, n: number, tag: string): SignedRecord[] {
  return signer
    .signAll(
      TOPIC,
      Array.from({ length: n }, (_, i) => ({
        key: Buffer.from('vm-1|/var/log/auth.log'),
        value: Buffer.from(`${tag}${i}`),
      })),
    )
    .map((r) => ({ topic: TOPIC, key: r.key, value: r.value, headers: r.headers! }));
}

/** What each record gets checked alone (no cache: nothing verified before). */
const alone = (records: SignedRecord[]) =>
  records.map((r) => verifyRecord(alicePub, r.topic, r.key, r.value, 'agt-alice', r.headers));

test('a whole send verifies as one tree, in any order, with one signature check cached', () => {
  for (const n of [1, 2, 3, 5, 32, 33, 100]) {
    const records = send(alice, n, `w${n}-`).reverse();
    const cache = new VerifiedRoots();
    assert.deepEqual(verifyRecords(alicePub, 'agt-alice', records, cache), Array(n).fill(true), `send of ${n}`);
    // the root is now known: each record alone verifies from the cache
    assert.ok(records.every((r) => verifyRecord(alicePub, r.topic, r.key, r.value, 'agt-alice', r.headers, cache)));
  }
});

test('attacks mixed into a batch get the verdict each record gets alone', () => {
  const a = send(alice, 8, 'a');
  const b = send(alice, 5, 'b');
  const tampered = { ...a[3]!, value: Buffer.from('rhost=10.0.0.1') };
  const foreign = send(mallory, 4, 'm'); // signed by another agent, presented as alice's
  const badSig = { ...b[0]!, headers: { ...b[0]!.headers, [SIGNATURE_HEADER]: Buffer.alloc(64, 1) } };
  const shortProof = {
    ...b[1]!,
    headers: { ...b[1]!.headers, [PROOF_HEADER]: b[1]!.headers[PROOF_HEADER]!.subarray(0, 40) },
  };
  const noProof = { ...b[2]!, headers: { ...b[2]!.headers } };
  delete noProof.headers[PROOF_HEADER];
  const cases: Array<[string, SignedRecord[]]> = [
    // a whole send with one record's value replaced: only that record fails
    ['tampered in a whole send', [...a.slice(0, 3), tampered, ...a.slice(4)]],
    // a send split over two batches: the part here is checked record by record
    ['part of a send', a.slice(2, 6)],
    // the same genuine record twice: not a whole send, each still genuine
    ['a record replayed inside the batch', [...a, a[0]!]],
    ['another producer’s send', foreign],
    ['a wrong signature, a cut proof, no proof', [badSig, shortProof, noProof, b[3]!, b[4]!]],
    ['everything at once', [...foreign, tampered, ...b, ...a, badSig]],
  ];
  for (const [what, records] of cases) {
    const got = verifyRecords(alicePub, 'agt-alice', records, new VerifiedRoots());
    assert.deepEqual(got, alone(records), what);
  }
  assert.deepEqual(
    verifyRecords(alicePub, 'agt-alice', [...a.slice(0, 3), tampered, ...a.slice(4)], new VerifiedRoots()),
    [true, true, true, false, true, true, true, true],
  );
  assert.deepEqual(verifyRecords(alicePub, 'agt-alice', foreign, new VerifiedRoots()), [false, false, false, false]);
});

test('a proof that claims another place or count in the send is refused', () => {
  const a = send(alice, 4, 'p');
  const proof = Buffer.from(a[1]!.headers[PROOF_HEADER]!);
  proof.writeUInt32BE(2, 0); // claims index 2: its siblings then lead elsewhere
  const moved = { ...a[1]!, headers: { ...a[1]!.headers, [PROOF_HEADER]: proof } };
  const counted = Buffer.from(a[0]!.headers[PROOF_HEADER]!);
  counted.writeUInt32BE(0, 4); // a send of 0
  const zero = { ...a[0]!, headers: { ...a[0]!.headers, [PROOF_HEADER]: counted } };
  // with the claimed index 2 twice the send is not whole: each checked alone, the moved one fails
  assert.deepEqual(verifyRecords(alicePub, 'agt-alice', [a[0]!, moved, a[2]!, a[3]!], new VerifiedRoots()), [
    true,
    false,
    true,
    true,
  ]);
  assert.deepEqual(verifyRecords(alicePub, 'agt-alice', [zero], new VerifiedRoots()), [false]);
});
