import { defineError } from '@cordon/runtime';

/**
 * Errors of file integrity monitoring. Per-file errors never throw out of a scan: they are
 * carried in the FileEvent's `error` field as "<code>: <message>", so the processor and the
 * analyst see which file could not be checked and why.
 */
export const ERR_FIM_POLICY = defineError(
  'CORDON_ERR_FIM_POLICY',
  (detail: string) => `file integrity policy is invalid: ${detail}; fix the "fim" section of the policy`,
);
export const ERR_FIM_STATE_DIR = defineError(
  'CORDON_ERR_FIM_STATE_DIR',
  (dir: string, detail: string) =>
    `file integrity state directory ${dir} is unusable (${detail}); make it writable by the agent`,
);
export const ERR_FIM_BASELINE_CORRUPT = defineError(
  'CORDON_ERR_FIM_BASELINE_CORRUPT',
  (file: string, detail: string) =>
    `file integrity baseline ${file} is corrupt (${detail}); it was set aside and a new baseline is taken (changes made since the old one cannot be reported)`,
);
export const ERR_FIM_UNREADABLE = defineError(
  'CORDON_ERR_FIM_UNREADABLE',
  (path: string, detail: string) =>
    `cannot read ${path} (${detail}); its content is not checked until the agent can read it`,
);
export const ERR_FIM_NOT_REGULAR = defineError(
  'CORDON_ERR_FIM_NOT_REGULAR',
  (path: string, kind: string) =>
    `${path} is a ${kind}; it is never opened (reading it could block or have side effects), only its attributes are checked`,
);
export const ERR_FIM_TOO_LARGE = defineError(
  'CORDON_ERR_FIM_TOO_LARGE',
  (path: string, size: number, cap: number) =>
    `${path} is ${size} bytes, over the ${cap}-byte hashing cap (policy maxHashBytes); its content is not hashed, its other attributes are checked`,
);
export const ERR_FIM_UNSTABLE = defineError(
  'CORDON_ERR_FIM_UNSTABLE',
  (path: string, attempts: number) =>
    `${path} changed or was replaced while being hashed, ${attempts} times in a row; its content is not checked this time (it is being written to)`,
);
export const ERR_FIM_NAME_NOT_UTF8 = defineError(
  'CORDON_ERR_FIM_NAME_NOT_UTF8',
  (dir: string, hex: string) =>
    `${dir} holds an entry whose name is not valid UTF-8 (bytes ${hex}); it is reported under an escaped name, its attributes and content are not checked (a name chosen this way may be hiding something)`,
);
export const ERR_FIM_DIR_UNREADABLE = defineError(
  'CORDON_ERR_FIM_DIR_UNREADABLE',
  (path: string, detail: string) =>
    `cannot list directory ${path} (${detail}); files below it keep their last known state until it can be listed`,
);
export const ERR_FIM_WORKER = defineError(
  'CORDON_ERR_FIM_WORKER',
  (detail: string) =>
    `a file integrity hashing worker failed (${detail}); the scan is aborted and retried at the next schedule`,
);

/** The form a per-file error takes inside a FileEvent. */
export function eventError(err: { code: string; message: string }): string {
  return `${err.code}: ${err.message}`;
}
