import { createHash, createPublicKey, hash, sign, verify, type KeyObject } from 'node:crypto';
import type { BusHeaders, ProduceRecord } from '@cordon/bus';
import { recordVerifier, verifyGroupsAsync, type NativeRecordVerifier, type VerifyGroup } from '@cordon/native';

/**
 * Records bound to their producer. Kafka does not tell a consumer who wrote a record, so each
 * agent and watchdog signs what it produces with its own Ed25519 key (made at enrollment,
 * registered by the coordinator on `cordon.producers.v1`), and the stage runtime checks the
 * signature and the binding before a stage sees the record (record-trust.ts).
 *
 * What is signed is a record's digest: SHA-256 over the topic, the key, the value and the
 * producer id, each with its length in front, so no field can be moved into another and a
 * record cannot be replayed onto another topic or under another producer. One Ed25519
 * signature covers all the records of one send — the root of a Merkle tree over their digests —
 * and each record carries the signature, its place in the tree and the sibling hashes up to the
 * root (`cordon-proof`): every record still verifies on its own (records of one send land in
 * different partitions and consumers), and a consumer that already verified a root checks the
 * others of its send with hashes only (a verified-roots cache). Ed25519 costs ~50–150 µs a
 * verify; per record that would be most of the bus's own cost (bench/record-signing.mjs).
 * Headers other than these three are not covered.
 */
export const PRODUCER_HEADER = 'cordon-agent';
export const SIGNATURE_HEADER = 'cordon-sig';
export const PROOF_HEADER = 'cordon-proof';

const DOMAIN = Buffer.from('cordon-record-v1\u0000');
const ROOT_DOMAIN = Buffer.from('cordon-records-root-v1\u0000');
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);
/** The most records one signature covers (a send with more is signed in parts). */
const MAX_LEAVES = 4096;

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

/** LEAF, DOMAIN and the topic with its length: the same for every record of a topic. */
const prefixes = new Map<string, Buffer>();
function prefixOf(topic: string): Buffer {
  let p = prefixes.get(topic);
  if (!p) {
    const t = Buffer.from(topic);
    p = Buffer.concat([LEAF, DOMAIN, u32(t.length), t]);
    // topics are few; a caller passing made-up ones must not grow this without bound
    if (prefixes.size >= 256) prefixes.clear();
    prefixes.set(topic, p);
  }
  return p;
}

/**
 * Where a record's fields are laid out to be hashed in one call, reused: a buffer per record
 * (allocUnsafe, then garbage) cost more than the copy. A record larger than this is hashed by
 * a streaming hash instead, so one huge record does not keep a huge buffer alive.
 */
const SCRATCH_MAX = 64 * 1024;
let scratch = Buffer.allocUnsafe(8 * 1024);

/** A record's digest: what its signature covers (as a leaf of its send's tree). */
export function recordDigest(topic: string, key: Buffer | null, value: Buffer | null, producer: string): Buffer {
  const prefix = prefixOf(topic);
  const pl = Buffer.byteLength(producer);
  const size = prefix.length + 12 + (key?.length ?? 0) + (value?.length ?? 0) + pl;
  if (size > SCRATCH_MAX) return streamedDigest(prefix, key, value, producer);
  // one buffer and one native call: a hash object fed eight small updates cost ~2x the hashing
  if (scratch.length < size) scratch = Buffer.allocUnsafe(SCRATCH_MAX);
  const buf = scratch;
  buf.set(prefix, 0);
  let at = prefix.length;
  // 0xffffffff marks an absent key or value (a null is not an empty buffer)
  if (key) {
    at = buf.writeUInt32BE(key.length, at);
    buf.set(key, at);
    at += key.length;
  } else at = buf.writeUInt32BE(0xffffffff, at);
  if (value) {
    at = buf.writeUInt32BE(value.length, at);
    buf.set(value, at);
    at += value.length;
  } else at = buf.writeUInt32BE(0xffffffff, at);
  at = buf.writeUInt32BE(pl, at);
  at += buf.write(producer, at);
  // hash() is synchronous: the scratch buffer is free again when it returns
  return hash('sha256', buf.subarray(0, at), 'buffer') as unknown as Buffer;
}

/** The same digest as recordDigest, fed piece by piece: no copy of a large value. */
function streamedDigest(prefix: Buffer, key: Buffer | null, value: Buffer | null, producer: string): Buffer {
  const h = createHash('sha256').update(prefix);
  for (const b of [key, value]) {
    if (b) h.update(u32(b.length)).update(b);
    else h.update(u32(0xffffffff));
  }
  const id = Buffer.from(producer);
  return h.update(u32(id.length)).update(id).digest();
}

// one-shot: a hash object per node costs more than the hashing of 65 bytes
const node = (l: Buffer, r: Buffer): Buffer =>
  hash('sha256', Buffer.concat([NODE, l, r], 65), 'buffer') as unknown as Buffer;
const rootMessage = (root: Buffer, count: number) => Buffer.concat([ROOT_DOMAIN, u32(count), root]);

/** A producer's signing side: adds the headers to each record it is given. */
export interface RecordSigner {
  readonly producer: string;
  /** The raw 32-byte Ed25519 public key, as registered. */
  readonly publicKey: Buffer;
  /** Sign the records of one send with one signature. */
  signAll(topic: string, records: ProduceRecord[]): ProduceRecord[];
  sign(topic: string, record: ProduceRecord): ProduceRecord;
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A raw 32-byte Ed25519 public key as a KeyObject (throws on anything else). */
export function ed25519PublicKey(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new Error(`an Ed25519 public key is 32 bytes, not ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The raw 32 bytes of an Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  if (der.length !== 44 || !der.subarray(0, 12).equals(SPKI_ED25519_PREFIX))
    throw new Error('not an Ed25519 public key');
  return Buffer.from(der.subarray(12));
}

/** The levels of the tree over `leaves`, leaves first, root last (a lone last node goes up unhashed). */
function treeLevels(leaves: Buffer[]): Buffer[][] {
  const levels = [leaves];
  for (let level = leaves; level.length > 1;) {
    const up: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2)
      up.push(i + 1 < level.length ? node(level[i]!, level[i + 1]!) : level[i]!);
    levels.push((level = up));
  }
  return levels;
}

/** The sibling hashes of the leaf at `idx`, bottom up: what its proof carries after index and count. */
function* siblings(levels: Buffer[][], idx: number): Generator<Buffer> {
  for (let l = 0; l < levels.length - 1; l++) {
    const sib = idx ^ 1;
    if (sib < levels[l]!.length) yield levels[l]![sib]!;
    idx >>= 1;
  }
}

export function createRecordSigner(producer: string, privateKey: KeyObject): RecordSigner {
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new Error(`a record signer needs an Ed25519 key, not ${privateKey.asymmetricKeyType ?? 'a secret key'}`);
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  const id = Buffer.from(producer);
  const signPart = (topic: string, records: ProduceRecord[]): ProduceRecord[] => {
    const n = records.length;
    const levels = treeLevels(records.map((r) => recordDigest(topic, r.key, r.value, producer)));
    const sig = sign(null, rootMessage(levels[levels.length - 1]![0]!, n), privateKey);
    return records.map((r, i) => {
      const path: Buffer[] = [u32(i), u32(n), ...siblings(levels, i)];
      return {
        ...r,
        headers: { ...r.headers, [PRODUCER_HEADER]: id, [SIGNATURE_HEADER]: sig, [PROOF_HEADER]: Buffer.concat(path) },
      };
    });
  };
  const signAll = (topic: string, records: ProduceRecord[]): ProduceRecord[] => {
    if (records.length <= MAX_LEAVES) return signPart(topic, records);
    const out: ProduceRecord[] = [];
    for (let i = 0; i < records.length; i += MAX_LEAVES) out.push(...signPart(topic, records.slice(i, i + MAX_LEAVES)));
    return out;
  };
  return { producer, publicKey, signAll, sign: (topic, record) => signAll(topic, [record])[0]! };
}

/** The root a record's proof leads to, with the count it was signed with; null when the proof is malformed. */
function rootOf(digest: Buffer, proof: Buffer): { root: Buffer; count: number } | null {
  if (proof.length < 8 || (proof.length - 8) % 32 !== 0) return null;
  let idx = proof.readUInt32BE(0);
  const count = proof.readUInt32BE(4);
  if (count < 1 || count > MAX_LEAVES || idx >= count) return null;
  let h = digest;
  let n = count;
  let at = 8;
  while (n > 1) {
    if ((idx ^ 1) < n) {
      if (at + 32 > proof.length) return null;
      const sib = proof.subarray(at, at + 32);
      at += 32;
      h = idx & 1 ? node(sib, h) : node(h, sib);
    }
    idx >>= 1;
    n = (n + 1) >> 1;
  }
  return at === proof.length ? { root: h, count } : null;
}

/** A record to check with the others of its batch: its topic, key, value and headers. */
export interface SignedRecord {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: BusHeaders;
}

/**
 * One registered key's check of its producer's records, a batch at a time, in native code
 * (native/capture/src/sign.rs): the records of one send that arrive together (an agent's send
 * goes to one partition, in order) are checked as a tree — every leaf hashed once, one
 * signature check —, anything else record by record; roots verified are remembered (bounded,
 * under this key only), so the rest of a send split over batches costs hashes. Each verdict is
 * the one `verifyRecord` gives the record alone (packages/stage/test/record-sign.test.ts), except
 * that a weak key is refused outright: `new RecordChecker` throws CORDON_ERR_NATIVE_RECORD_KEY.
 * In JS the same check cost ~8 µs of CPU a 2.5 kB record (SHA-256 calls, node buffers, OpenSSL's
 * verify): as much as the rest of a stage's consume loop (bench/record-signing.mjs).
 */
export class RecordChecker {
  readonly native: NativeRecordVerifier;
  constructor(rawKey: Buffer) {
    this.native = recordVerifier(rawKey);
  }

  /** One verdict per record: whether it holds `producer`'s signature under this key. */
  check(producer: string, records: readonly SignedRecord[]): boolean[] {
    const ok = new Array<boolean>(records.length).fill(false);
    for (const [topic, at, fields] of this.byTopic(records)) {
      const verdicts = this.native.verify(topic, producer, fields);
      for (let j = 0; j < at.length; j++) ok[at[j]!] = verdicts[j] === 1;
    }
    return ok;
  }

  /** The records by topic (a batch holds one, nearly always): their places and their four fields each (for checkGroupsAsync). */
  byTopic(records: readonly SignedRecord[]): Array<[string, number[], Array<Buffer | null>]> {
    const parts = new Map<string, [string, number[], Array<Buffer | null>]>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      let part = parts.get(r.topic);
      if (!part) parts.set(r.topic, (part = [r.topic, [], []]));
      part[1].push(i);
      part[2].push(r.key, r.value, r.headers[SIGNATURE_HEADER] ?? null, r.headers[PROOF_HEADER] ?? null);
    }
    return [...parts.values()];
  }
}

/**
 * RecordChecker.check for several producers at once, on one libuv pool thread, off the event
 * loop: a stage decodes its batch meanwhile (one task a batch, so the event loop keeps the other
 * core). One verdict array per group, in order. The records' buffers must not be changed until
 * it settles (the consume loop never does).
 */
export async function checkGroupsAsync(
  groups: ReadonlyArray<{ checker: RecordChecker; producer: string; records: readonly SignedRecord[] }>,
): Promise<boolean[][]> {
  const parts: Array<{ group: number; at: number[] }> = [];
  const jobs: VerifyGroup[] = [];
  groups.forEach((g, group) => {
    for (const [topic, at, fields] of g.checker.byTopic(g.records)) {
      parts.push({ group, at });
      jobs.push({ verifier: g.checker.native, topic, producer: g.producer, fields });
    }
  });
  const verdicts = await verifyGroupsAsync(jobs);
  const out = groups.map((g) => new Array<boolean>(g.records.length).fill(false));
  parts.forEach(({ group, at }, p) => {
    const v = verdicts[p]!;
    const ok = out[group]!;
    for (let j = 0; j < at.length; j++) ok[at[j]!] = v[j] === 1;
  });
  return out;
}

/**
 * Whether the record's headers hold `producer`'s signature of it under `key`: the plain check of
 * one record with OpenSSL, the reference RecordChecker is tested against. OpenSSL accepts a
 * weak key (under the identity point a signature of zeros verifies anything), so nothing that
 * decides trust uses this: stages and the coordinator check with RecordChecker.
 */
export function verifyRecord(
  key: KeyObject,
  topic: string,
  recordKey: Buffer | null,
  value: Buffer | null,
  producer: string,
  headers: BusHeaders,
): boolean {
  const sig = headers[SIGNATURE_HEADER];
  const proof = headers[PROOF_HEADER];
  if (!sig || sig.length !== 64 || !proof) return false;
  const r = rootOf(recordDigest(topic, recordKey, value, producer), proof);
  if (!r) return false;
  try {
    return verify(null, rootMessage(r.root, r.count), key, sig);
  } catch {
    return false;
  }
}
