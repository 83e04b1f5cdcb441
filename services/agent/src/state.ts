import {
  chmodSync,
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '@cordon/runtime';
import { ERR_AGENT_STATE } from './errors.js';

/**
 * Small JSON state files, written atomically (temp + fsync + rename) so a crash never leaves
 * half a file; the agent's alone (directory 0700, file 0600): its identity and log positions
 * are nobody else's to read or change.
 */
export function writeState(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  chmodSync(dirname(file), 0o700);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, JSON.stringify(value));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Read a state file; an unreadable one is set aside (kept for inspection) and `fallback` used. */
export function readState<T>(file: string, fallback: T, log: Logger): T {
  if (!existsSync(file)) return fallback;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    const aside = `${file}.corrupt-${Date.now()}`;
    try {
      renameSync(file, aside);
    } catch {
      // nothing more to do: the fallback is used either way
    }
    log.error(
      { err: ERR_AGENT_STATE.withCause(err, file, (err as Error).message), aside },
      'Agent state was unreadable.',
    );
    return fallback;
  }
}
