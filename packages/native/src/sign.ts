/**
 * The check of signed records in native code (native/capture/src/sign.rs): a record's digest,
 * its send's Merkle tree and the send's one Ed25519 verify, for a batch in one call. The format
 * and the signing side are in @cordon/stage (record-sign.ts).
 */
import { loadHostAddon } from './capture.js';
import { ERR_NATIVE_RECORD_KEY } from './errors.js';

export interface NativeRecordVerifier {
  /**
   * `fields`: four a record — key, value (Buffer or null), signature, proof (Buffer, or null when
   * the header is absent). One byte a record back: 1 when it verifies.
   */
  verify(topic: string, producer: string, fields: Array<Buffer | null>): Buffer;
  /** What verifyGroupsAsync names it by. */
  readonly id: number;
}

/** One producer's records of one topic, for verifyGroupsAsync. */
export interface VerifyGroup {
  verifier: NativeRecordVerifier;
  topic: string;
  producer: string;
  /** Four entries a record, as verify takes them. */
  fields: Array<Buffer | null>;
}

interface RecordVerifierAddon {
  RecordVerifier: new (raw: Buffer) => NativeRecordVerifier;
  verifyGroupsAsync(ids: number[], topics: string[], producers: string[], fields: Array<Array<Buffer | null>>): Promise<Buffer[]>;
}

/**
 * Several groups checked on one libuv pool thread (one task for a stage's batch, so the event
 * loop keeps the other core); one verdict buffer a group. The groups' arrays and Buffers must be
 * left alone until it settles.
 */
export function verifyGroupsAsync(groups: readonly VerifyGroup[]): Promise<Buffer[]> {
  if (groups.length === 0) return Promise.resolve([]);
  return hostAddon().verifyGroupsAsync(
    groups.map((g) => g.verifier.id),
    groups.map((g) => g.topic),
    groups.map((g) => g.producer),
    groups.map((g) => g.fields),
  );
}

function hostAddon(): RecordVerifierAddon {
  const addon = loadHostAddon() as unknown as Partial<RecordVerifierAddon>;
  if (!addon.RecordVerifier || !addon.verifyGroupsAsync)
    throw ERR_NATIVE_RECORD_KEY('the host addon has no record verifier (rebuild it: bash native/capture/build.sh)');
  return addon as RecordVerifierAddon;
}

/**
 * A verifier of one registered key's records. Throws CORDON_ERR_NATIVE_RECORD_KEY on anything but
 * a 32-byte Ed25519 public key, and on a weak one (a point of small order: under such a key a
 * signature verifies without the private key — OpenSSL accepts it).
 */
export function recordVerifier(raw: Buffer): NativeRecordVerifier {
  const addon = hostAddon();
  try {
    return new addon.RecordVerifier(raw);
  } catch (err) {
    throw ERR_NATIVE_RECORD_KEY.withCause(err, (err as Error).message);
  }
}
