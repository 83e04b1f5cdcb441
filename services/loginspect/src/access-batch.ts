import { ACCESS_ROW, AccessLines } from '@cordon/native';
import type { LineBytes } from './lines.js';

/**
 * A batch's web access lines decoded natively (native/src/logline.rs: where each field lies),
 * so `decodeLine` builds their events without searching them again: the fields' search was
 * a tenth of the bench's time. Only lines read with their bytes (`forEachLines`) whose
 * characters are their bytes go there; every other line, and every shape the native decoder
 * leaves alone (an IPv6 client, an unusual stamp), is decoded in JavaScript as before.
 */
export class AccessBatch {
  /** Undefined: not loaded yet; null: no native decoder (the engine is not built). */
  private native: AccessLines | null | undefined;
  private lines: readonly string[] = [];
  private lengths = new Int32Array(0);
  private out = new Int32Array(0);

  /** Decode the access lines of `lines`, which lie in `bytes` as `forEachLines` gives them. */
  prepare(lines: readonly string[], bytes: LineBytes | undefined, maxLength: number): void {
    this.lines = [];
    const n = lines.length;
    if (bytes === undefined || bytes.starts.length !== n + 1 || n === 0) return;
    if (this.native === undefined) this.native = AccessLines.create();
    if (this.native === null) return;
    if (this.lengths.length < n) {
      this.lengths = new Int32Array(n);
      this.out = new Int32Array(n * ACCESS_ROW);
    }
    const lengths = this.lengths;
    for (let k = 0; k < n; k++) {
      const len = lines[k]!.length;
      lengths[k] = bytes.bytewise[k] === 1 && len <= maxLength ? len : -1;
    }
    this.native.decode(bytes.data, bytes.starts, lengths.subarray(0, n), this.out);
    this.lines = lines;
  }

  /** The rows, when `raw` is line `k` of the batch (else null: decode it alone). */
  rowsFor(k: number, raw: string): Int32Array | null {
    return k >= 0 && k < this.lines.length && this.lines[k] === raw ? this.out : null;
  }
}
