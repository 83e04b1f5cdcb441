import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ERR_SECRET } from './errors.js';

/**
 * Secrets come from the environment or from files, never from argv (which `ps` shows every
 * local user), and are checked before use: a key that is short, odd-length (hex decoding
 * would drop its last digit), all one byte (zeros) or not hex at all is refused, never used
 * as a weaker key. A file holding one must be its owner's alone.
 */
export function parseHexKey(text: string, where: string, minBytes = 32): Buffer {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]*$/.test(hex)) throw ERR_SECRET(where, 'it is not hexadecimal');
  if (hex.length % 2 !== 0) throw ERR_SECRET(where, `it has an odd number of hex digits (${hex.length})`);
  if (hex.length < minBytes * 2)
    throw ERR_SECRET(where, `it is ${hex.length / 2} bytes; at least ${minBytes} are needed`);
  const key = Buffer.from(hex, 'hex');
  if (key.every((b) => b === key[0]))
    throw ERR_SECRET(where, `every byte of it is 0x${key[0]!.toString(16).padStart(2, '0')}`);
  return key;
}

/** The contents of a secret file, refused when its group or others may read or write it. */
export function readSecretFile(file: string): string {
  const st = statSync(file);
  if (st.mode & 0o077)
    throw ERR_SECRET(file, `its mode is 0${(st.mode & 0o777).toString(8)}; make it 0600 (chmod 600 ${file})`);
  if (process.getuid && st.uid !== process.getuid())
    throw ERR_SECRET(file, `it belongs to uid ${st.uid}, not to this user`);
  return readFileSync(file, 'utf8');
}

export const ENROLL_SECRET_ENV = 'CORDON_ENROLL_SECRET';

/** The cluster's enrollment secret: CORDON_ENROLL_SECRET (hex), else a key file made once under the data dir. */
export function enrollSecret(dataDir: string, fromEnv: string | undefined): Buffer {
  if (fromEnv) return parseHexKey(fromEnv, ENROLL_SECRET_ENV);
  const file = join(dataDir, 'secrets', 'enroll.key');
  if (!existsSync(file)) {
    mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  }
  return parseHexKey(readSecretFile(file), file);
}
