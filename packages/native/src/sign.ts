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
  /** The same on a libuv pool thread; `fields` and its Buffers must be left alone until it settles. */
  verifyAsync(topic: string, producer: string, fields: Array<Buffer | null>): Promise<Buffer>;
}

export interface RecordVerifierAddon {
  RecordVerifier: new (raw: Buffer) => NativeRecordVerifier;
}

/**
 * A verifier of one registered key's records. Throws CORDON_ERR_NATIVE_RECORD_KEY on anything but
 * a 32-byte Ed25519 public key, and on a weak one (a point of small order: under such a key a
 * signature verifies without the private key — OpenSSL accepts it).
 */
export function recordVerifier(raw: Buffer): NativeRecordVerifier {
  const addon = loadHostAddon() as unknown as Partial<RecordVerifierAddon>;
  if (!addon.RecordVerifier)
    throw ERR_NATIVE_RECORD_KEY('the host addon has no record verifier (rebuild it: bash native/capture/build.sh)');
  try {
    return new addon.RecordVerifier(raw);
  } catch (err) {
    throw ERR_NATIVE_RECORD_KEY.withCause(err, (err as Error).message);
  }
}
