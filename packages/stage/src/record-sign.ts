import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { ProduceRecord } from '@cordon/bus';

/**
 * Records bound to their producer. Kafka does not tell a consumer who wrote a record, so each
 * agent and watchdog signs what it produces with its own Ed25519 key (made at enrollment,
 * registered by the coordinator on `cordon.producers.v1`), and the stage runtime checks the
 * signature and the binding before a stage sees the record (record-trust.ts).
 *
 * The signature covers the topic, the key, the value and the producer id, each with its
 * length in front, so no field can be moved into another and a record cannot be replayed onto
 * another topic or under another producer. Headers other than these two are not covered.
 */
export const PRODUCER_HEADER = 'cordon-agent';
export const SIGNATURE_HEADER = 'cordon-sig';

const DOMAIN = Buffer.from('cordon-record-v1\u0000');

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

/** The bytes a record's signature covers. */
export function signedBytes(topic: string, key: Buffer | null, value: Buffer | null, producer: string): Buffer {
  const t = Buffer.from(topic);
  const p = Buffer.from(producer);
  // 0xffffffff marks an absent key or value (a null is not an empty buffer)
  const k = key ?? Buffer.alloc(0);
  const v = value ?? Buffer.alloc(0);
  return Buffer.concat([DOMAIN, u32(t.length), t, key ? u32(k.length) : u32(0xffffffff), k, value ? u32(v.length) : u32(0xffffffff), v, u32(p.length), p]);
}

/** A producer's signing side: adds the two headers to each record it is given. */
export interface RecordSigner {
  readonly producer: string;
  /** The raw 32-byte Ed25519 public key, as registered. */
  readonly publicKey: Buffer;
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
  if (der.length !== 44 || !der.subarray(0, 12).equals(SPKI_ED25519_PREFIX)) throw new Error('not an Ed25519 public key');
  return Buffer.from(der.subarray(12));
}

export function createRecordSigner(producer: string, privateKey: KeyObject): RecordSigner {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`a record signer needs an Ed25519 key, not ${privateKey.asymmetricKeyType ?? 'a secret key'}`);
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  const id = Buffer.from(producer);
  return {
    producer,
    publicKey,
    sign(topic, record) {
      const sig = sign(null, signedBytes(topic, record.key, record.value, producer), privateKey);
      return { ...record, headers: { ...record.headers, [PRODUCER_HEADER]: id, [SIGNATURE_HEADER]: sig } };
    },
  };
}

/** Whether `sig` is `producer`'s signature of this record under `key`. */
export function verifyRecord(key: KeyObject, topic: string, recordKey: Buffer | null, value: Buffer | null, producer: string, sig: Buffer): boolean {
  if (sig.length !== 64) return false;
  try {
    return verify(null, signedBytes(topic, recordKey, value, producer), key, sig);
  } catch {
    return false;
  }
}
