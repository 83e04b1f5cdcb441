import { createHash, createPublicKey, hash, sign, verify, type KeyObject } from 'node:crypto';
import type { BusHeaders, ProduceRecord } from '@cordon/bus';

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

/** Whether `proof` carries exactly the sibling hashes of the tree `levels` for its leaf. */
function proofMatches(levels: Buffer[][], idx: number, proof: Buffer): boolean {
  let at = 8;
  for (const h of siblings(levels, idx)) {
    if (proof.compare(h, 0, 32, at, at + 32) !== 0) return false;
    at += 32;
  }
  return at === proof.length;
}

/** Sibling hashes a proof of a tree of `count` leaves carries for the leaf at `idx`. */
function proofLength(idx: number, count: number): number {
  let n = count;
  let siblings = 0;
  while (n > 1) {
    if ((idx ^ 1) < n) siblings++;
    idx >>= 1;
    n = (n + 1) >> 1;
  }
  return 8 + 32 * siblings;
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

/**
 * Roots already verified, per key: the other records of a send cost hashes, not a signature
 * check. Bounded; only successes are kept (a failure is never cached as a success, and a root
 * is good only under the key that verified it).
 */
export class VerifiedRoots {
  private readonly seen = new Map<string, true>();
  constructor(private readonly max = 8192) {}
  has(id: string): boolean {
    return this.seen.has(id);
  }
  add(id: string): void {
    if (this.seen.size >= this.max) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(id, true);
  }
}

const rootId = (producer: string, keyId: string, count: number, root: Buffer, sig: Buffer): string =>
  `${producer}\u0000${keyId}\u0000${count}\u0000${root.toString('latin1')}${sig.toString('latin1')}`;

/** A record to check with the others of its batch: its topic, key, value and headers. */
export interface SignedRecord {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: BusHeaders;
}

/** The records of a batch that carry one signature: their places in the batch and in the send. */
interface Send {
  sig: Buffer;
  count: number;
  at: number[];
  idx: number[];
}

/**
 * `verifyRecord` over many records of one producer at once. The records of one send that
 * arrive together (a consumer batch usually holds a whole send: an agent's send goes to one
 * partition, in order) are checked as a tree: every leaf hashed once, the tree built once, one
 * signature check — instead of each record's path to the root (count × depth hashes). A send
 * not whole here, or whose tree does not verify, is checked record by record, so each record
 * gets its own verdict. Returns one boolean per record, as verifyRecord would.
 */
export function verifyRecords(
  key: KeyObject,
  producer: string,
  records: readonly SignedRecord[],
  cache?: VerifiedRoots,
  keyId = '',
): boolean[] {
  const ok = new Array<boolean>(records.length).fill(false);
  // a send's records are grouped by their signature bytes; they usually arrive one after the
  // other, so the send of the record before is tried first (a 64-byte compare) and the map of
  // all sends (a string of the signature a record) only when that is not it
  const sends: Send[] = [];
  let byId: Map<string, Send> | null = null;
  let last: Send | null = null;
  const single: number[] = [];
  for (let i = 0; i < records.length; i++) {
    const headers = records[i]!.headers;
    const sig = headers[SIGNATURE_HEADER];
    const proof = headers[PROOF_HEADER];
    if (!sig || sig.length !== 64 || !proof || proof.length < 8) continue;
    const idx = proof.readUInt32BE(0);
    const count = proof.readUInt32BE(4);
    if (count < 1 || count > MAX_LEAVES || idx >= count || proof.length !== proofLength(idx, count)) continue;
    let s: Send | null = last !== null && last.count === count && last.sig.equals(sig) ? last : null;
    if (s === null) {
      const id = `${count}\u0000${sig.toString('latin1')}`;
      byId ??= new Map();
      s = byId.get(id) ?? null;
      if (s === null) {
        s = { sig, count, at: [], idx: [] };
        byId.set(id, s);
        sends.push(s);
      }
    }
    s.at.push(i);
    s.idx.push(idx);
    last = s;
  }
  for (const s of sends) {
    // whole: every index of the send exactly once
    let whole = s.at.length === s.count;
    const seen = new Uint8Array(s.count);
    for (let j = 0; whole && j < s.at.length; j++) {
      if (seen[s.idx[j]!]) whole = false;
      seen[s.idx[j]!] = 1;
    }
    if (!whole) {
      single.push(...s.at);
      continue;
    }
    const leaves = new Array<Buffer>(s.count);
    for (let j = 0; j < s.at.length; j++) {
      const r = records[s.at[j]!]!;
      leaves[s.idx[j]!] = recordDigest(r.topic, r.key, r.value, producer);
    }
    const levels = treeLevels(leaves);
    const root = levels[levels.length - 1]![0]!;
    const sig = s.sig;
    const id = rootId(producer, keyId, s.count, root, sig);
    let good = cache?.has(id) ?? false;
    if (!good) {
      try {
        good = verify(null, rootMessage(root, s.count), key, sig);
      } catch {
        good = false;
      }
      if (good) cache?.add(id);
    }
    if (!good) {
      single.push(...s.at);
      continue;
    }
    // the root is good; a record whose proof does not carry its siblings in this tree gets the
    // verdict it gets alone (refused), not the send's
    for (let j = 0; j < s.at.length; j++) {
      const i = s.at[j]!;
      if (proofMatches(levels, s.idx[j]!, records[i]!.headers[PROOF_HEADER]!)) ok[i] = true;
      else single.push(i);
    }
  }
  for (const i of single) {
    const r = records[i]!;
    ok[i] = verifyRecord(key, r.topic, r.key, r.value, producer, r.headers, cache, keyId);
  }
  return ok;
}

/** Whether the record's headers hold `producer`'s signature of it under `key`. */
export function verifyRecord(
  key: KeyObject,
  topic: string,
  recordKey: Buffer | null,
  value: Buffer | null,
  producer: string,
  headers: BusHeaders,
  cache?: VerifiedRoots,
  keyId = '',
): boolean {
  const sig = headers[SIGNATURE_HEADER];
  const proof = headers[PROOF_HEADER];
  if (!sig || sig.length !== 64 || !proof) return false;
  const r = rootOf(recordDigest(topic, recordKey, value, producer), proof);
  if (!r) return false;
  const id = rootId(producer, keyId, r.count, r.root, sig);
  if (cache?.has(id)) return true;
  let ok = false;
  try {
    ok = verify(null, rootMessage(r.root, r.count), key, sig);
  } catch {
    ok = false;
  }
  if (ok) cache?.add(id);
  return ok;
}
