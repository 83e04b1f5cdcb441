/**
 * Batch verification of signed records (RecordChecker, native): a send that arrives whole is
 * checked as one tree with one signature check, anything else record by record — and every
 * verdict is the one verifyRecord (OpenSSL, a record alone) gives, whatever an attacker mixes
 * into the batch; a weak key, which OpenSSL lets anyone sign for, is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { recordVerifier, verifyGroupsAsync } from '@cordon/native';
import {
  createRecordSigner,
  ed25519PublicKey,
  PROOF_HEADER,
  recordDigest,
  SIGNATURE_HEADER,
  checkGroupsAsync,
  RecordChecker,
  verifyRecord,
  type SignedRecord,
} from '../src/index.js';

const TOPIC = 'cordon.logs.v1';
const alice = createRecordSigner('agt-alice', generateKeyPairSync('ed25519').privateKey);
const mallory = createRecordSigner('agt-mallory', generateKeyPairSync('ed25519').privateKey);
const alicePub = ed25519PublicKey(alice.publicKey);
/** A fresh checker of alice's key: nothing verified before. */
const checked = (records: SignedRecord[], checker = new RecordChecker(alice.publicKey)) =>
  checker.check('agt-alice', records);

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
    const checker = new RecordChecker(alice.publicKey);
    assert.deepEqual(checked(records, checker), Array(n).fill(true), `send of ${n}`);
    // the root is now known: each record alone verifies (from the cache), a changed one does not
    assert.ok(records.every((r) => checked([r], checker)[0]));
    assert.deepEqual(checked([{ ...records[0]!, value: Buffer.from('x') }], checker), [false]);
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
    const got = checked(records);
    assert.deepEqual(got, alone(records), what);
  }
  assert.deepEqual(checked([...a.slice(0, 3), tampered, ...a.slice(4)]), [
    true,
    true,
    true,
    false,
    true,
    true,
    true,
    true,
  ]);
  assert.deepEqual(checked(foreign), [false, false, false, false]);
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
  assert.deepEqual(checked([a[0]!, moved, a[2]!, a[3]!]), [true, false, true, true]);
  assert.deepEqual(checked([zero]), [false]);
});

/** The digest as its format is written down (record-sign.ts), built the plain way. */
function digestByTheBook(topic: string, key: Buffer | null, value: Buffer | null, producer: string): Buffer {
  const len = (b: Buffer | null) => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(b ? b.length : 0xffffffff);
    return b ? [n, b] : [n];
  };
  const t = Buffer.from(topic);
  const p = Buffer.from(producer);
  return createHash('sha256')
    .update(
      Buffer.concat([
        Buffer.from([0]),
        Buffer.from('cordon-record-v1\u0000'),
        ...len(t),
        ...len(key),
        ...len(value),
        ...len(p),
      ]),
    )
    .digest();
}

test('a record digest keeps its bytes: what agents signed before still verifies', () => {
  const big = Buffer.alloc(100_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255;
  // made by the implementation agents ran before the digest stopped copying each record
  const vectors: Array<[Parameters<typeof recordDigest>, string]> = [
    [
      ['cordon.logs.v1', Buffer.from('vm-1|/var/log/auth.log'), Buffer.from('hello'), 'agt-alice'],
      '7cd6707529dfc4ab68d7285d9343da4b541b79b17cc99e1d7507d5094f298a46',
    ],
    [
      ['cordon.logs.v1', null, Buffer.from('no key'), 'agt-alice'],
      '718e40a2fd883252479eb1de45eac497a830e97905271f737ce55b52b2d3db45',
    ],
    [
      ['cordon.alerts.v1', Buffer.from(''), null, 'watchdog:hv-1'],
      '768e4f8d98ee6b65b363c60732a58340901b82372b1d1252282de30f154aaef7',
    ],
    // larger than the reused buffer: hashed piece by piece
    [
      ['cordon.logs.v1', Buffer.from('k'), big, 'agt-ünï'],
      '6f63555cbd7e15330eb008698f8ce97607f4482c34fd80535fb43237c2e09180',
    ],
  ];
  for (const [args, hex] of vectors) {
    assert.equal(recordDigest(...args).toString('hex'), hex);
    assert.equal(digestByTheBook(...args).toString('hex'), hex);
  }
  // sizes around the reused buffer's bounds, one after the other (nothing of the one before leaks in)
  for (const size of [0, 1, 2485, 8 * 1024 - 60, 8 * 1024, 64 * 1024 - 70, 64 * 1024, 200_000, 3]) {
    const value = big.subarray(0, Math.min(size, big.length));
    const args: Parameters<typeof recordDigest> = ['cordon.fim.v1', Buffer.from(`vm-${size}`), value, 'agt-x'];
    assert.ok(recordDigest(...args).equals(digestByTheBook(...args)), `value of ${size} B`);
  }
  // a field moved into its neighbour changes the digest
  assert.ok(
    !recordDigest(TOPIC, Buffer.from('ab'), Buffer.from('c'), 'p').equals(
      recordDigest(TOPIC, Buffer.from('a'), Buffer.from('bc'), 'p'),
    ),
  );
});

test('a large record signs and verifies, and tampered with it is refused', () => {
  const value = Buffer.alloc(150_000, 7);
  const [r] = alice.signAll(TOPIC, [{ key: Buffer.from('vm-1|/var/log/big'), value }]);
  const rec: SignedRecord = { topic: TOPIC, key: r!.key, value: r!.value, headers: r!.headers! };
  assert.deepEqual(checked([rec]), [true]);
  const flipped = Buffer.from(value);
  flipped[149_999] = 8;
  assert.deepEqual(checked([{ ...rec, value: flipped }]), [false]);
});

test('sends interleaved, or dressed in another send’s signature, are grouped by what they carry', () => {
  const a = send(alice, 6, 'ia');
  const b = send(alice, 6, 'ib');
  const c = send(alice, 3, 'ic');
  const interleaved = a.flatMap((r, i) => [r, b[i]!]);
  // a record of c carrying a's signature, right after a's records: same bytes as the record
  // before, so grouped with a's send — which then does not verify as a tree; alone it fails
  const dressed = { ...c[0]!, headers: { ...c[0]!.headers, [SIGNATURE_HEADER]: a[0]!.headers[SIGNATURE_HEADER]! } };
  // a's signature with a proof that claims a send of another size: not a's send
  const recount = Buffer.from(c[1]!.headers[PROOF_HEADER]!);
  const miscounted = {
    ...c[1]!,
    headers: { ...c[1]!.headers, [SIGNATURE_HEADER]: a[1]!.headers[SIGNATURE_HEADER]!, [PROOF_HEADER]: recount },
  };
  // a's own record with its value replaced, in the middle of a's send
  const tampered = { ...a[4]!, value: Buffer.from('ia4 rhost=10.0.0.1') };
  const cases: Array<[string, SignedRecord[]]> = [
    ['two sends interleaved', interleaved],
    ['two sends interleaved, reversed', [...interleaved].reverse()],
    ['a record in another send’s signature', [...a, dressed, ...c.slice(1)]],
    ['in the middle of that send', [...a.slice(0, 3), dressed, ...a.slice(3)]],
    ['with another count', [...a.slice(0, 2), miscounted, ...a.slice(2), c[0]!, c[2]!]],
    ['tampered between two sends', [...a.slice(0, 4), tampered, a[5]!, ...b]],
  ];
  for (const [what, records] of cases) {
    const got = checked(records);
    assert.deepEqual(got, alone(records), what);
  }
  assert.deepEqual(checked([...a.slice(0, 3), dressed, ...a.slice(3)]), [true, true, true, false, true, true, true]);
  assert.ok(checked(interleaved).every(Boolean));
});

test('in a whole send, a record whose proof carries wrong sibling hashes is refused as it is alone', () => {
  for (const n of [2, 5, 32]) {
    const records = send(alice, n, `p${n}-`);
    const bad = n - 2;
    const proof = Buffer.from(records[bad]!.headers['cordon-proof']!);
    proof[8] = proof[8]! ^ 0xff; // its first sibling hash; its own bytes, index and count unchanged
    records[bad] = { ...records[bad]!, headers: { ...records[bad]!.headers, 'cordon-proof': proof } };
    const expected = Array.from({ length: n }, (_, i) => i !== bad);
    assert.deepEqual(alone(records), expected, `send of ${n}, alone`);
    assert.deepEqual(checked(records), expected, `send of ${n}`);
  }
});

test('a weak key is refused: under it OpenSSL verifies a signature anyone can make', () => {
  const identity = Buffer.alloc(32);
  identity[0] = 1; // the neutral point
  const order2 = Buffer.from('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex'); // y = -1
  const forged: SignedRecord = {
    topic: TOPIC,
    key: Buffer.from('vm-1|/var/log/auth.log'),
    value: Buffer.from('Failed password for root from 198.51.100.7'),
    headers: {
      // R = the neutral point, s = 0: [s]B = R + [k]A holds for any message when A is neutral
      [SIGNATURE_HEADER]: Buffer.concat([identity, Buffer.alloc(32)]),
      [PROOF_HEADER]: Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]),
    },
  };
  // the flaw the native check closes: OpenSSL takes the forgery
  assert.equal(
    verifyRecord(ed25519PublicKey(identity), forged.topic, forged.key, forged.value, 'agt-x', forged.headers),
    true,
  );
  for (const weak of [identity, order2])
    assert.throws(() => new RecordChecker(weak), { code: 'CORDON_ERR_NATIVE_RECORD_KEY' }, weak.toString('hex'));
  // not a key at all
  assert.throws(() => new RecordChecker(Buffer.alloc(31)), { code: 'CORDON_ERR_NATIVE_RECORD_KEY' });
  // y = 2: (y² - 1) / (d·y² + 1) has no square root, so no point has this encoding
  assert.throws(() => new RecordChecker(Buffer.from('02'.padEnd(64, '0'), 'hex')), {
    code: 'CORDON_ERR_NATIVE_RECORD_KEY',
  });
});

test('random tampering: the native batch check (sync and on a pool thread) and OpenSSL a record alone agree', async () => {
  // a small deterministic generator, so a failure names its seed
  let seed = 0x5eed;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const pool = [
    ...send(alice, 7, 'r1-'),
    ...send(alice, 4, 'r2-'),
    ...send(alice, 1, 'r3-'),
    ...send(alice, 16, 'r4-'),
    ...send(mallory, 3, 'rm-'),
  ];
  const mutate = (r: SignedRecord): SignedRecord => {
    const h = { ...r.headers };
    const flip = (b: Buffer | null | undefined) => {
      if (!b || b.length === 0) return Buffer.from([1]);
      const c = Buffer.from(b);
      const at = rnd(c.length);
      c[at] = c[at]! ^ (1 << rnd(8));
      return c;
    };
    switch (rnd(9)) {
      case 0:
        return { ...r, value: flip(r.value) };
      case 1:
        return { ...r, key: rnd(2) ? flip(r.key) : null };
      case 2:
        return { ...r, headers: { ...h, [SIGNATURE_HEADER]: flip(h[SIGNATURE_HEADER]) } };
      case 3:
        return { ...r, headers: { ...h, [PROOF_HEADER]: flip(h[PROOF_HEADER]) } };
      case 4:
        return { ...r, headers: { ...h, [PROOF_HEADER]: h[PROOF_HEADER]!.subarray(0, rnd(h[PROOF_HEADER]!.length)) } };
      case 5: {
        const other = pool[rnd(pool.length)]!;
        return { ...r, headers: { ...h, [SIGNATURE_HEADER]: other.headers[SIGNATURE_HEADER]! } };
      }
      case 6: {
        const other = pool[rnd(pool.length)]!;
        return { ...r, headers: { ...h, [PROOF_HEADER]: other.headers[PROOF_HEADER]! } };
      }
      case 7:
        return { ...r, topic: 'cordon.fim.v1' };
      default:
        return { ...r, headers: { ...h, [PROOF_HEADER]: Buffer.concat([h[PROOF_HEADER]!, randomBytes(32)]) } };
    }
  };
  const malloryPub = ed25519PublicKey(mallory.publicKey);
  const malloryChecker = new RecordChecker(mallory.publicKey);
  let refused = 0;
  for (let round = 0; round < 300; round++) {
    const start = rnd(pool.length);
    const batch = pool.slice(start, start + 1 + rnd(30)).map((r) => (rnd(4) === 0 ? mutate(r) : r));
    if (rnd(3) === 0) batch.reverse();
    if (rnd(4) === 0) batch.push(batch[rnd(batch.length)]!);
    const want = alone(batch);
    assert.deepEqual(checked(batch), want, `round ${round}`);
    // on a pool thread, beside another producer's check of the same records in the same task
    const [mine, theirs] = await checkGroupsAsync([
      { checker: new RecordChecker(alice.publicKey), producer: 'agt-alice', records: batch },
      { checker: malloryChecker, producer: 'agt-mallory', records: batch },
    ]);
    assert.deepEqual(mine, want, `round ${round}, on a pool thread`);
    assert.deepEqual(
      theirs,
      batch.map((r) => verifyRecord(malloryPub, r.topic, r.key, r.value, 'agt-mallory', r.headers)),
      `round ${round}, mallory's`,
    );
    refused += want.filter((x) => !x).length;
  }
  assert.ok(refused > 100, `the rounds refused ${refused} records: the tampering must reach the check`);
});

test('bad calls into the native checker are coded errors, not crashes', async () => {
  const v = recordVerifier(alice.publicKey);
  assert.throws(
    () => v.verify(TOPIC, 'agt-alice', [1, 2, 3, 4] as unknown as Buffer[]),
    /element 0 is not a Buffer or null/,
  );
  assert.throws(() => v.verify(TOPIC, 'agt-alice', [null, null, null]), /not four a record/);
  assert.deepEqual([...v.verify(TOPIC, 'agt-alice', [null, null, null, null])], [0]);
  await assert.rejects(
    async () =>
      verifyGroupsAsync([
        { verifier: { id: 999_999, verify: v.verify.bind(v) }, topic: TOPIC, producer: 'x', fields: [] },
      ]),
    /no record verifier has id 999999/,
  );
});
